//! No resident id and no secret in the log (DESIGN §9, issue "Run it on a care-home gateway"): a
//! full run of the real binary at its default log level, once as text and once with
//! `--log-format json`, with every secret atgw has (MQTT password, DC-09 keys in hex and ASCII,
//! webhook signing secret, API token) and resident ids on registered devices. The run drives
//! events, alerts, acknowledgements and failures (bad payloads, wrong DC-09 key, plaintext from
//! a keyed account, unknown account, wrong API token, webhook 500s, a malformed MQTT ack), then
//! the whole log is searched for every one of those values in every form.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use atgw_sia_dc09::crypto::{AesKey, KeyFormat};
use atgw_sia_dc09::simulator::{SimPayload, SimReport, SimulatorConfig, Transport, simulate};
use common::*;
use serde_json::{Value, json};

const RESIDENTS: [&str; 4] = [
    "res-SECRET-0042",
    "res-SECRET-0043",
    "res-SECRET-0044",
    "res-SECRET-0045",
];
const MQTT_PASSWORD: &str = "mqtt-SECRET-pw-7731-Kq";
const API_TOKEN: &str = "api-SECRET-token-5b2e9c71d04a4f3e8a61";
/// `whsec_` + base64 of [`WEBHOOK_KEY`].
const WEBHOOK: &str = "whsec_d2ViaG9vay1TRUNSRVQta2V5LWJ5dGVzLTAwNDIhIQ==";
const WEBHOOK_KEY: &str = "webhook-SECRET-key-bytes-0042!!";
const DC09_HEX: &str = "5EC2E7000102A0B0C0D0E0F0DEADBEEF";
const DC09_ASCII: &str = "SECRETascii-0042";

/// Every form in which a secret or resident id could show up in a log line.
fn forbidden() -> Vec<String> {
    let mut v: Vec<String> = RESIDENTS.iter().map(|s| s.to_string()).collect();
    v.extend(
        [
            MQTT_PASSWORD,
            API_TOKEN,
            WEBHOOK,
            WEBHOOK_KEY,
            DC09_HEX,
            DC09_ASCII,
        ]
        .map(String::from),
    );
    v.push(
        WEBHOOK
            .trim_start_matches("whsec_")
            .trim_end_matches('=')
            .into(),
    );
    v.push(DC09_HEX.to_ascii_lowercase());
    let ascii_hex: String = DC09_ASCII.bytes().map(|b| format!("{b:02x}")).collect();
    v.push(ascii_hex.to_ascii_uppercase());
    v.push(ascii_hex);
    // Every value above carries this marker (the hex key in its bytes, not its text).
    v.push("SECRET".into());
    v
}

fn config_text(
    dir: &std::path::Path,
    auth_port: u16,
    dc09_port: u16,
    hook: &str,
    api_port: u16,
) -> String {
    let d = dir.display();
    write_private(&dir.join("mqtt-password"), MQTT_PASSWORD);
    write_private(&dir.join("api-token"), API_TOKEN);
    write_private(&dir.join("webhook-secret"), WEBHOOK);
    write_private(&dir.join("dc09-1234.key"), DC09_HEX);
    write_private(&dir.join("dc09-5678.key"), DC09_ASCII);
    format!(
        r#"
[gateway]
id = "gw-scrub"
site = "oakview"
data_dir = "{d}/state"
profiles_dir = "{profiles}"
timezone = "Europe/London"

[api]
listen = "127.0.0.1:{api_port}"
token_file = "{d}/api-token"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = {auth_port}
username = "atgw"
password_file = "{d}/mqtt-password"
topics = ["zigbee2mqtt/#", "dusun_pub"]
profiles = {PROFILES}
max_payload = 2048
reconnect_min = "100ms"
reconnect_max = "1s"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:{dc09_port}"
listen_udp = "127.0.0.1:{dc09_port}"
accounts = [{{ account = "1234", key_file = "{d}/dc09-1234.key" }}, {{ account = "5678", key_file = "{d}/dc09-5678.key", key_format = "ascii" }}]

[[device]]
id = "pendant-12"
adapter = "zigbee"
match = {{ device = "0xa4c13899607febd1" }}
resident = "{r0}"
location = {{ area = "east", room = "12" }}
check_in = "25h"

[[device]]
id = "dc09-pendant-3"
adapter = "alarms"
match = {{ account = "1234", zone = "003" }}
resident = "{r1}"
location = {{ area = "west", room = "3" }}

[[device]]
id = "oximeter-14"
adapter = "zigbee"
match = {{ device = "ff23041920b4" }}
resident = "{r2}"
location = {{ area = "east", room = "14" }}

[[device]]
id = "dc09-pendant-9"
adapter = "alarms"
match = {{ account = "5678", zone = "001" }}
resident = "{r3}"

[[resident]]
id = "{r2}"
spo2_scale = 1

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = {auth_port}
username = "atgw"
password_file = "{d}/mqtt-password"
topic_prefix = "atgw/oakview"
reconnect_min = "100ms"
reconnect_max = "1s"

[[sink]]
name = "carers"
type = "webhook"
url = "{hook}"
allow_http = true
secret_file = "{d}/webhook-secret"
timeout = "2s"

[[route]]
name = "carers"
sinks = ["carers"]

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["carers"]
repeat = "2s"

[[policy]]
name = "vitals"
match = {{ kind = ["spo2_low"] }}
notify = ["carers"]
"#,
        profiles = profiles_dir().display(),
        r0 = RESIDENTS[0],
        r1 = RESIDENTS[1],
        r2 = RESIDENTS[2],
        r3 = RESIDENTS[3],
    )
}

/// A broker with an anonymous listener for the test's clients and a password-protected one for
/// atgw (per-listener settings, as a site broker would have).
fn broker(dir: &std::path::Path) -> (Mosquitto, u16) {
    let passwd = dir.join("broker-passwd");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["atgw", MQTT_PASSWORD])
        .status()
        .expect("mosquitto_passwd (part of the mosquitto package)");
    assert!(status.success());
    let auth_port = atgw::tools::mosquitto::free_port().unwrap();
    let extra = format!(
        "listener {auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        passwd.display()
    );
    let m =
        Mosquitto::start_with(&dir.join("broker"), "per_listener_settings true", &extra).unwrap();
    (m, auth_port)
}

async fn dc09(target: SocketAddr, account: &str, key: Option<AesKey>, cid: &str) -> SimReport {
    let mut cfg = SimulatorConfig::new(target, account);
    cfg.transport = Transport::Tcp;
    cfg.key = key;
    cfg.payload = SimPayload::ContactId(cid.into());
    simulate(cfg).await.expect("DC-09 receiver reachable")
}

async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Runs the whole scenario and returns the complete log.
async fn full_run(args: &[&str]) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, auth_port) = broker(dir.path());
    let carers = Receiver::start().await;
    carers.set_status(500);
    let dc09_port = free_tcp_udp_port();
    let api_port = atgw::tools::mosquitto::free_port().unwrap();
    let text = config_text(dir.path(), auth_port, dc09_port, &carers.url(), api_port);
    let mut gw = Gateway::start_with_args(dir.path(), &text, args);
    gw.wait_subscribed().await;
    let log = |gw: &Gateway| gw.log_text();

    // MQTT devices (over the anonymous listener): a pendant press, an oximeter going low,
    // then input that must be dead-lettered.
    let devices = Publisher::connect(broker.port, "scrub-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    let t0 = 1_836_946_958u64;
    for (i, spo2) in [96, 88, 88, 88].into_iter().enumerate() {
        let t = t0 + 10 * i as u64;
        devices
            .send(
                "dusun_pub",
                format!(
                    r#"{{"time":{t},"type":"reportAttribute","mac":"DC:DA:0C:5A:80:44","data":{{"attribute":"Oximeter JUMPER","value":{{"device_list":[{{"scan_time":{t},"ble_addr":"ff23041920b4","pulse":104,"spo2":{spo2},"pi":40}}]}}}}}}"#
                ),
            )
            .await;
    }
    devices
        .send("zigbee2mqtt/0xa4c13899607febd1", "{not json")
        .await;
    devices
        .send("zigbee2mqtt/0xa4c13899607febd1", vec![b'x'; 4096])
        .await;

    // DC-09: encrypted frames with the hex and the ASCII key are acknowledged; the wrong key,
    // plaintext from a keyed account and an unknown account are not.
    let target = SocketAddr::from(([127, 0, 0, 1], dc09_port));
    let hex = AesKey::parse(DC09_HEX, KeyFormat::Hex).unwrap();
    let ascii = AesKey::parse(DC09_ASCII, KeyFormat::Ascii).unwrap();
    let wrong = AesKey::parse("000102030405060708090A0B0C0D0E0F", KeyFormat::Hex).unwrap();
    assert_eq!(
        dc09(target, "1234", Some(hex), "1101 01 003").await.acked,
        1
    );
    assert_eq!(
        dc09(target, "5678", Some(ascii), "1101 01 001").await.acked,
        1
    );
    assert_eq!(
        dc09(target, "1234", Some(wrong), "1101 01 003").await.acked,
        0
    );
    assert_eq!(dc09(target, "1234", None, "1101 01 003").await.acked, 0);
    assert_eq!(dc09(target, "4321", None, "1101 01 002").await.acked, 0);

    // The webhook answers 500 for a while, then recovers.
    wait_until_async(Duration::from_secs(20), || {
        carers.received().iter().any(|r| r.answered == 500)
    })
    .await
    .unwrap_or_else(|_| panic!("no webhook attempt:\n{}", log(&gw)));
    wait_until_async(Duration::from_secs(20), || {
        log(&gw).contains("webhook delivery failed")
    })
    .await
    .unwrap_or_else(|_| panic!("the 500 is not logged:\n{}", log(&gw)));
    carers.set_status(200);
    // The resident ids were really in play: each reaches the care team, just not the log.
    let reached = |r: &str| serde_json::to_string(&carers.delivered()).is_ok_and(|d| d.contains(r));
    wait_until_async(Duration::from_secs(30), || {
        RESIDENTS.iter().all(|r| reached(r))
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "webhook never recovered or an alert is missing:\n{}",
            log(&gw)
        )
    });

    // The local API: a wrong token, then a carer acknowledging and resolving.
    let base = format!("http://127.0.0.1:{api_port}/api/v1");
    let (status, _) = api(&base, "wrong-token", reqwest::Method::GET, "/alerts", None).await;
    assert_eq!(status, 401);
    let mut alerts = Vec::new();
    for _ in 0..200 {
        let (s, v) = api(&base, API_TOKEN, reqwest::Method::GET, "/alerts", None).await;
        alerts = v["alerts"].as_array().cloned().unwrap_or_default();
        if s == 200 && alerts.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alerts.len() >= 3, "alerts: {alerts:?}\n{}", log(&gw));
    let ids: Vec<String> = alerts
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    let note = format!("seen {} in room 12", RESIDENTS[0]);
    let (status, body) = api(
        &base,
        API_TOKEN,
        reqwest::Method::POST,
        &format!("/alerts/{}/ack", ids[0]),
        Some(json!({ "by": "carer-7", "note": note })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &base,
        API_TOKEN,
        reqwest::Method::POST,
        &format!("/alerts/{}/resolve", ids[0]),
        Some(json!({ "by": "carer-7", "outcome": "assisted", "note": note })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = api(
        &base,
        API_TOKEN,
        reqwest::Method::POST,
        "/alerts/not-an-alert/ack",
        Some(json!({ "by": "carer-7" })),
    )
    .await;
    assert!(status >= 400);

    // Acknowledgements over MQTT (upstream broker, anonymous listener), one malformed.
    let carer_app = Publisher::connect(broker.port, "scrub-carer-app").await;
    carer_app
        .send(
            &format!("atgw/oakview/alerts/{}/ack", ids[1]),
            json!({ "by": "carer-8", "note": format!("{} is fine", RESIDENTS[1]) }).to_string(),
        )
        .await;
    carer_app
        .send(
            &format!("atgw/oakview/alerts/{}/ack", ids[2]),
            format!("{{by: {}", RESIDENTS[2]),
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        let l = log(&gw);
        l.contains("alert updated over MQTT") && l.contains("alert command")
    })
    .await
    .unwrap_or_else(|_| panic!("MQTT acks not handled:\n{}", log(&gw)));

    // Failures were logged, so their silence about secrets means something.
    let l = log(&gw);
    for expected in ["dead-lettered", "webhook delivery failed", "local API on"] {
        assert!(l.contains(expected), "`{expected}` not logged:\n{l}");
    }
    assert!(gw.terminate().success());
    broker.stop();
    let text = gw.log_text();
    if let Some(keep) = std::env::var_os("SCRUB_KEEP_LOG") {
        std::fs::write(
            std::path::Path::new(&keep).join(format!("scrub{}.log", args.len())),
            &text,
        )
        .unwrap();
    }
    text
}

fn assert_clean(log: &str) {
    let leaks: Vec<(String, Vec<&str>)> = forbidden()
        .into_iter()
        .filter_map(|f| {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(&f)).collect();
            (!lines.is_empty()).then_some((f, lines))
        })
        .collect();
    assert!(leaks.is_empty(), "leaked into the log: {leaks:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_resident_id_or_secret_as_text() {
    let log = full_run(&[]).await;
    assert!(log.contains("atgw stopped"), "{log}");
    assert_clean(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_resident_id_or_secret_as_json() {
    let log = full_run(&["--log-format", "json"]).await;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    assert!(log.contains("atgw stopped"), "{log}");
    assert_clean(&log);
}

/// Secrets that cannot be used stop their component with a message naming the file, never its
/// content: a DC-09 key that is not hex, a TLS client key that is not PEM, a webhook secret
/// that is not base64.
#[test]
fn malformed_secrets_are_refused_without_being_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_private(&d.join("dc09.key"), "5EC2E7000102A0B0C0D0E0F0DEADBEXZ");
    write_private(&d.join("client.key"), "SECRET-not-a-pem-private-key");
    write_private(&d.join("hook"), "whsec_!!SECRET-not-base64");
    std::fs::write(
        d.join("client.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let head = format!(
        "[gateway]\nid = \"gw\"\nsite = \"s\"\ndata_dir = \"{}/state\"\nprofiles_dir = \"{}\"\n",
        d.display(),
        profiles_dir().display()
    );
    let run = |name: &str, body: &str| {
        let path = d.join(name);
        std::fs::write(&path, format!("{head}{body}")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
            .args(["run", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let dc09 = run(
        "dc09.toml",
        &format!(
            "[[adapter]]\nname = \"alarms\"\ntype = \"sia-dc09\"\nlisten_tcp = \"127.0.0.1:{}\"\n\
             accounts = [{{ account = \"1234\", key_file = \"dc09.key\" }}]\n",
            free_tcp_udp_port()
        ),
    );
    let tls = run(
        "tls.toml",
        "[[sink]]\nname = \"up\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = 9\ntopic_prefix = \"x\"\n\
         tls = { cert_file = \"client.pem\", key_file = \"client.key\" }\n",
    );
    for (out, says) in [(&dc09, "dc09.key"), (&tls, "client.key")] {
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains(says), "names the file: {text}");
        assert!(
            !text.contains("SECRET") && !text.contains("DEADBE"),
            "{text}"
        );
    }

    // A webhook sink with an unusable secret stops alone; the gateway runs on.
    let (mut broker, _) = broker(d);
    let text = config(
        d,
        broker.port,
        "\n[[sink]]\nname = \"carers\"\ntype = \"webhook\"\nurl = \"https://care.example/h\"\nsecret_file = \"hook\"\n",
    );
    let gw = Gateway::start_with_args(d, &text, &[]);
    wait_until(Duration::from_secs(20), || {
        gw.log_text().contains("webhook sink stopped")
    })
    .unwrap_or_else(|_| panic!("{}", gw.log_text()));
    let log = gw.log_text();
    assert!(log.contains("secret_file"), "{log}");
    assert!(!log.contains("SECRET"), "{log}");
    broker.stop();
}

/// A device value with a newline in it cannot forge a log line (issue 11, item 5): the
/// availability payload below reaches the log through a dead letter's detail (`unmapped_value`);
/// it comes out escaped (newline, carriage return, ESC), one event per line. (Topics cannot
/// carry control characters: Mosquitto refuses them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_value_with_a_newline_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start_with_args(dir.path(), &config(dir.path(), broker.port, ""), &[]);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "hostile").await;
    devices
        .send(
            "zigbee2mqtt/0xhall/availability",
            r#"{"state":"off\n2026-12-02T06:00:00Z ERROR forged\r\u001b"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        dead_letters(&gw).contains_key("unmapped_value")
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not dead-lettered: {:?}\n{}",
            dead_letters(&gw),
            gw.log_text()
        )
    });
    // The warning is logged after the commit; give it a moment.
    wait_until_async(Duration::from_secs(5), || {
        gw.log_text().contains("dead-lettered")
    })
    .await
    .unwrap_or_else(|_| panic!("{}", gw.log_text()));
    broker.stop();

    let log = gw.log_text();
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("2026-12-02T06:00:0"),
            "a forged line: {line:?}\n{log}"
        );
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("dead-lettered") && l.contains(r"off\n2026-12-02T06:00:00Z ERROR")),
        "the value is in the log, escaped, on the line of its event:\n{log}"
    );
}
