//! Safe alarm semantics through the real binary (issue 12 items 1–6, 9 and 13): DC-09 panels and
//! MQTT devices on real sockets, care teams as webhook receivers, alerts read through the local
//! API. No alarm is quietly unrouted, merged, downgraded, closed or forgotten; an unregistered
//! device is found; what carers read says what happened, where (room and area) and how often.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use atgw_sia_dc09::simulator::{SimPayload, SimulatorConfig, build_frame};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Rig {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    gw: Gateway,
    carers: Receiver,
    senior: Receiver,
    api: String,
    token: String,
    dc09: SocketAddr,
}

/// Carers and senior webhook routes, the API, a DC-09 receiver (accounts 1234 and 2222) and
/// the MQTT adapter of [`config`]; `policies` and `devices` are appended.
async fn rig(policies: &str, devices: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Receiver::start().await;
    let senior = Receiver::start().await;
    let (api_cfg, api, token) = api_block(dir.path());
    let port = free_tcp_udp_port();
    let text = config(
        dir.path(),
        broker.port,
        &format!(
            "{}{}\n[[route]]\nname = \"carers\"\nsinks = [\"carers\"]\n\n[[route]]\nname = \"senior\"\nsinks = [\"senior\"]\n{policies}{api_cfg}{devices}
[[adapter]]
name = \"alarms\"
type = \"sia-dc09\"
listen_tcp = \"127.0.0.1:{port}\"
accounts = [{{ account = \"1234\" }}, {{ account = \"2222\" }}]
",
            webhook_sink(dir.path(), "carers", &carers.url()),
            webhook_sink(dir.path(), "senior", &senior.url()),
        ),
    );
    let gw = Gateway::start(dir.path(), &text);
    gw.wait_subscribed().await;
    Rig {
        _dir: dir,
        broker,
        gw,
        carers,
        senior,
        api,
        token,
        dc09: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// A sheltered-housing panel registered by its account alone, and a pendant registered by
/// account and zone.
const DEVICES: &str = r#"
[[device]]
id = "panel-sheltered"
adapter = "alarms"
match = { account = "2222" }
location = { area = "sheltered" }

[[device]]
id = "pendant-12"
adapter = "alarms"
match = { account = "1234", zone = "003" }
resident = "res-0042"
location = { area = "east", room = "12" }

[[device]]
id = "leak-12"
adapter = "alarms"
match = { account = "1234", zone = "009" }
location = { area = "east", room = "12" }
"#;

const ALARMS: &str = r#"
[[policy]]
name = "alarms"
match = { priority = ["high"] }
notify = ["carers"]
escalate = [{ after = "2s", notify = ["senior"] }]
"#;

impl Rig {
    /// One Contact ID event (`"1101 01 003"`) from `account` with sequence `seq`, over TCP;
    /// panics unless it is ACKed.
    async fn cid(&self, account: &str, seq: u32, event: &str) {
        let mut cfg = SimulatorConfig::new(self.dc09, account);
        cfg.payload = SimPayload::ContactId(event.into());
        let frame = build_frame(
            &cfg,
            &format!("{seq:04}"),
            jiff::Timestamp::now(),
            &mut rand::rng(),
        );
        let mut s = tokio::net::TcpStream::connect(self.dc09).await.unwrap();
        s.write_all(&frame).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while !got.contains(&b'\r') {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            read.is_ok() && text.contains("\"ACK\""),
            "{event} from {account} not ACKed: {text:?}\n{}",
            self.gw.log_text()
        );
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn alerts(&self) -> Vec<Value> {
        self.api(reqwest::Method::GET, "/alerts?all=true", None)
            .await["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn ack(&self, id: &str) -> Value {
        self.api(
            reqwest::Method::POST,
            &format!("/alerts/{id}/ack"),
            Some(json!({"by": "carer-3"})),
        )
        .await
    }

    /// Waits until the API lists alerts for which `pick` holds, and returns them.
    async fn alerts_where(
        &self,
        what: &str,
        within_secs: u64,
        pick: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(within_secs);
        loop {
            let a = self.alerts().await;
            if pick(&a) {
                return a;
            }
            if std::time::Instant::now() > deadline {
                panic!("{what}: {a:#?}\n{}", self.gw.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `who` has a lifecycle event for which `pick` holds.
    async fn told(
        &self,
        who: &Receiver,
        what: &str,
        within_secs: u64,
        pick: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut found = None;
        let _ = wait_until_async(Duration::from_secs(within_secs), || {
            found = who.delivered().into_iter().find(|e| pick(e));
            found.is_some()
        })
        .await;
        found.unwrap_or_else(|| panic!("{what}: {:#?}\n{}", notes(who), self.gw.log_text()))
    }
}

/// (kind, reason, message) of each lifecycle event a receiver got.
fn notes(r: &Receiver) -> Vec<(String, String, String)> {
    r.delivered()
        .iter()
        .map(|e| {
            (
                e["data"]["kind"].as_str().unwrap_or("").to_owned(),
                e["data"]["alert"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                e["data"]["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn reason_is<'a>(kind: &'a str, reason: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["data"]["kind"] == kind && e["data"]["alert"]["reason"] == reason
}

fn of_kind<'a>(alerts: &'a [Value], kind: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["kind"] == kind).collect()
}

const PENDANT_ONLY: &str = r#"
[[policy]]
name = "calls"
match = { kind = ["pendant_press"] }
notify = ["carers"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_and_a_co_alarm_no_policy_matches_open_fail_safe_alerts_to_every_route() {
    let rig = rig(PENDANT_ONLY, DEVICES).await;
    rig.cid("2222", 1, "1111 01 007").await;
    rig.cid("2222", 2, "1162 01 008").await;
    let alerts = rig
        .alerts_where("no alert for the fire and the CO alarm", 20, |a| {
            !of_kind(a, "smoke").is_empty() && !of_kind(a, "co").is_empty()
        })
        .await;
    for kind in ["smoke", "co"] {
        let a = of_kind(&alerts, kind)[0];
        assert_eq!(a["policy"], "fail-safe", "{a}");
        assert_eq!(a["failsafe"], true, "{a}");
        assert_eq!(a["status"], "open", "{a}");
        // No default_route: every route hears it.
        rig.told(
            &rig.carers,
            "carers not told",
            20,
            reason_is(kind, "raised"),
        )
        .await;
        rig.told(
            &rig.senior,
            "senior not told",
            20,
            reason_is(kind, "raised"),
        )
        .await;
    }
    let log = rig.gw.log_text();
    assert!(
        log.contains("no [[policy]] matches this smoke"),
        "a gateway warning names the unrouted kind:\n{log}"
    );
    assert_eq!(
        log.matches("no [[policy]] matches this smoke").count(),
        1,
        "one warning per kind, not per event"
    );
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_route_takes_the_unmatched_life_safety_alarm_alone() {
    let rig = rig(
        &format!("{PENDANT_ONLY}\n[alerts]\ndefault_route = \"senior\"\n"),
        DEVICES,
    )
    .await;
    rig.cid("2222", 1, "1111 01 007").await;
    rig.told(
        &rig.senior,
        "senior (the default route) not told",
        20,
        reason_is("smoke", "raised"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        notes(&rig.carers).is_empty(),
        "only the default route: {:?}",
        notes(&rig.carers)
    );
    drop(rig);
}

#[test]
fn check_config_warns_and_audit_fails_when_a_life_safety_kind_has_no_policy() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        dir.path(),
        1883,
        &format!(
            "{}\n[[route]]\nname = \"carers\"\nsinks = [\"carers\"]\n{PENDANT_ONLY}",
            webhook_sink(dir.path(), "carers", "http://127.0.0.1:9/hook")
        ),
    );
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, &text).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "still a valid file: {stderr}");
    for kind in ["smoke", "co", "gas", "fall", "assistance_call", "medical"] {
        assert!(
            stderr.contains("warning") && stderr.contains(&format!("`{kind}`")),
            "{kind} not warned about: {stderr}"
        );
    }
    assert!(!stderr.contains("`pendant_press`"), "{stderr}");

    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["audit", "--json", "--config"])
        .arg(&path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&audit.stderr)));
    let f: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "life-safety-routing")
        .collect();
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["status"], "fail", "{:#}", f[0]);
    assert!(
        f[0]["found"].as_str().unwrap().contains("smoke"),
        "{:#}",
        f[0]
    );
    assert_eq!(audit.status.code(), Some(1));

    // With a policy for every high-priority event the same check passes.
    std::fs::write(
        &path,
        text.replace("kind = [\"pendant_press\"]", "priority = [\"high\"]"),
    )
    .unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&check.stderr).contains("warning"),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pendant_restore_is_recorded_and_the_alert_stays_open_and_escalates_but_a_dried_leak_clears()
 {
    let rig = rig(
        &format!("{ALARMS}\n[[policy]]\nname = \"leaks\"\nmatch = {{ kind = [\"water_leak\"] }}\nnotify = [\"carers\"]\n"),
        DEVICES,
    )
    .await;
    rig.cid("1234", 1, "1101 01 003").await;
    rig.told(
        &rig.carers,
        "no raise",
        20,
        reason_is("pendant_press", "raised"),
    )
    .await;
    rig.cid("1234", 2, "3101 01 003").await;
    let note = rig
        .told(
            &rig.carers,
            "the restore was not told",
            20,
            reason_is("pendant_press", "device_restored"),
        )
        .await;
    assert_eq!(note["type"], "atgw.alert.point");
    assert_eq!(note["data"]["alert"]["status"], "open");
    let message = note["data"]["message"].as_str().unwrap();
    assert!(message.contains("check the resident"), "{message}");
    rig.told(
        &rig.senior,
        "no escalation after the restore",
        20,
        reason_is("pendant_press", "ack_timeout"),
    )
    .await;
    let alerts = rig.alerts().await;
    let press = of_kind(&alerts, "pendant_press")[0];
    assert_eq!(press["status"], "open", "{press}");
    assert!(press["restored_at"].is_string(), "{press}");
    let acked = rig.ack(press["id"].as_str().unwrap()).await;
    assert_eq!(
        acked["status"], "acknowledged",
        "a person closes it: {acked}"
    );

    // A device's own condition: the restore closes it.
    rig.cid("1234", 3, "1154 01 009").await;
    rig.told(
        &rig.carers,
        "no leak alert",
        20,
        reason_is("water_leak", "raised"),
    )
    .await;
    rig.cid("1234", 4, "3154 01 009").await;
    rig.told(
        &rig.carers,
        "the dried leak did not clear",
        20,
        reason_is("water_leak", "device_cleared"),
    )
    .await;
    let alerts = rig.alerts().await;
    assert_eq!(of_kind(&alerts, "water_leak")[0]["status"], "cleared");
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_may_let_a_pendant_restore_close_the_alert() {
    let rig = rig(
        &ALARMS.replace(
            "notify = [\"carers\"]",
            "notify = [\"carers\"]\nclear_on_restore = [\"pendant_press\"]",
        ),
        DEVICES,
    )
    .await;
    rig.cid("1234", 1, "1101 01 003").await;
    rig.cid("1234", 2, "3101 01 003").await;
    rig.told(
        &rig.carers,
        "the loosened restore did not clear",
        20,
        reason_is("pendant_press", "device_cleared"),
    )
    .await;
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_one_zone_is_recorded_on_its_call_and_never_touches_the_fire_in_another() {
    let rig = rig(ALARMS, DEVICES).await;
    rig.cid("2222", 1, "1111 01 007").await;
    rig.cid("2222", 2, "1101 01 005").await;
    rig.alerts_where("two alerts", 20, |a| a.len() == 2).await;
    rig.cid("2222", 3, "1406 01 005").await;
    rig.told(
        &rig.carers,
        "the cancel was not recorded",
        20,
        reason_is("pendant_press", "cancelled"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts = rig.alerts().await;
    let fire = of_kind(&alerts, "smoke")[0];
    assert_eq!(fire["status"], "open", "the fire is untouched: {fire}");
    assert!(fire["restored_at"].is_null(), "{fire}");
    let call = of_kind(&alerts, "pendant_press")[0];
    assert_eq!(call["status"], "open", "recorded, not closed: {call}");
    assert!(call["restored_at"].is_string(), "{call}");
    assert!(
        !notes(&rig.carers)
            .iter()
            .any(|(k, r, _)| k == "smoke" && r != "raised"),
        "{:?}",
        notes(&rig.carers)
    );
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_zones_of_one_panel_are_two_alerts_named_by_zone_and_one_ack_closes_only_its_own() {
    let rig = rig(ALARMS, DEVICES).await;
    rig.cid("2222", 1, "1101 01 701").await;
    rig.cid("2222", 2, "1101 01 702").await;
    let alerts = rig
        .alerts_where("not two alerts", 20, |a| {
            of_kind(a, "pendant_press").len() == 2
        })
        .await;
    let zone = |z: &str| -> Value {
        (*of_kind(&alerts, "pendant_press")
            .into_iter()
            .find(|a| a["component"] == z)
            .unwrap_or_else(|| panic!("no alert for zone {z}: {alerts:#?}")))
        .clone()
    };
    let (a701, a702) = (zone("701"), zone("702"));
    assert!(
        a701["message"].as_str().unwrap().contains("zone 701"),
        "{a701}"
    );
    assert!(
        a702["message"].as_str().unwrap().contains("zone 702"),
        "{a702}"
    );
    rig.ack(a701["id"].as_str().unwrap()).await;
    let alerts = rig.alerts().await;
    let status =
        |id: &Value| -> Value { alerts.iter().find(|a| a["id"] == *id).unwrap()["status"].clone() };
    assert_eq!(status(&a701["id"]), "acknowledged");
    assert_eq!(
        status(&a702["id"]),
        "open",
        "the other resident still waits"
    );
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspected_fall_confirmed_moves_to_the_stricter_policy_and_its_restore_is_only_recorded()
{
    let rig = rig(
        &format!(
            "{ALARMS}\n[[policy]]\nname = \"routine\"\nmatch = {{ priority = [\"medium\"] }}\nnotify = [\"carers\"]\nescalate = [{{ after = \"1h\", notify = [\"senior\"] }}]\n"
        ),
        "",
    )
    .await;
    let devices = Publisher::connect(rig.broker.port, "semantics-radar").await;
    let radar = |status: &str| format!(r#"{{"fall_down_status":"{status}","presence":true}}"#);
    devices
        .send("zigbee2mqtt/0xdc8e95fffe4dc3dd", radar("maybe_fall"))
        .await;
    let raised = rig
        .told(
            &rig.carers,
            "no suspected fall",
            20,
            reason_is("fall", "raised"),
        )
        .await;
    assert_eq!(raised["data"]["alert"]["policy"], "routine");
    devices
        .send("zigbee2mqtt/0xdc8e95fffe4dc3dd", radar("fall"))
        .await;
    let up = rig
        .told(&rig.carers, "no upgrade", 20, reason_is("fall", "upgraded"))
        .await;
    assert_eq!(up["data"]["alert"]["policy"], "alarms", "{up}");
    rig.told(
        &rig.senior,
        "the senior was never told of the confirmed fall",
        20,
        reason_is("fall", "ack_timeout"),
    )
    .await;
    let alerts = rig.alerts().await;
    assert_eq!(of_kind(&alerts, "fall")[0]["policy"], "alarms");

    devices
        .send("zigbee2mqtt/0xdc8e95fffe4dc3dd", radar("none"))
        .await;
    let note = rig
        .told(
            &rig.senior,
            "the radar's restore was not told",
            20,
            reason_is("fall", "device_restored"),
        )
        .await;
    assert!(
        note["data"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer reports a fall"),
        "{note}"
    );
    let alerts = rig.alerts().await;
    assert_eq!(of_kind(&alerts, "fall")[0]["status"], "open");
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_presses_tell_everyone_again_with_a_count_also_after_acknowledgement() {
    let rig = rig(
        "\n[[policy]]\nname = \"alarms\"\nmatch = { priority = [\"high\"] }\nnotify = [\"carers\"]\n",
        DEVICES,
    )
    .await;
    for seq in 1..=3 {
        rig.cid("1234", seq, "1101 01 003").await;
    }
    let third = rig
        .told(&rig.carers, "the 3rd press was not told", 20, |e| {
            e["data"]["alert"]["reason"] == "repeated"
                && e["data"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("3rd time")
        })
        .await;
    assert!(
        third["data"]["message"]
            .as_str()
            .unwrap()
            .starts_with("PRESSED AGAIN - 3rd time in "),
        "{third}"
    );
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1, "one alert: {alerts:#?}");
    assert_eq!(alerts[0]["presses"], 3);
    rig.ack(alerts[0]["id"].as_str().unwrap()).await;
    rig.cid("1234", 4, "1101 01 003").await;
    rig.told(&rig.carers, "a press after the ack was not told", 20, |e| {
        e["data"]["alert"]["reason"] == "repeated"
            && e["data"]["alert"]["status"] == "acknowledged"
            && e["data"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("4th time")
    })
    .await;
    let alerts = rig.alerts().await;
    assert_eq!(alerts[0]["presses"], 4);
    assert_eq!(alerts[0]["status"], "acknowledged");
    let schema = schema();
    for e in rig.carers.delivered() {
        assert_schema_valid(&schema, &e);
    }
    drop(rig);
}

/// A third care-team endpoint for the commissioning route, with its sink and route blocks.
async fn commissioning(dir: &std::path::Path) -> (Receiver, String) {
    let r = Receiver::start().await;
    let block = format!(
        "{}\n[[route]]\nname = \"commissioning\"\nsinks = [\"commissioning\"]\n",
        webhook_sink(dir, "commissioning", &r.url())
    );
    (r, block)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_pendant_says_its_location_is_unknown_and_also_tells_the_commissioning_route()
 {
    let secrets = tempfile::tempdir().unwrap();
    let (commissioners, block) = commissioning(secrets.path()).await;
    let rig = rig(
        &format!("{ALARMS}{block}\n[alerts]\nunregistered_route = \"commissioning\"\n"),
        DEVICES,
    )
    .await;
    let devices = Publisher::connect(rig.broker.port, "semantics-unregistered").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    let unregistered = |e: &Value| {
        e["data"]["alert"]["reason"] == "raised"
            && e["data"]["device"]["id"] == "zigbee:0xa4c13899607febd1"
    };
    let to_carers = rig
        .told(&rig.carers, "carers not told", 20, &unregistered)
        .await;
    let message = to_carers["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("location unknown")
            && message.contains("zigbee:0xa4c13899607febd1 not registered"),
        "{message}"
    );
    let to_commissioning = rig
        .told(
            &commissioners,
            "the commissioning route was not told of the unregistered device's alarm",
            20,
            &unregistered,
        )
        .await;
    assert_eq!(
        to_commissioning["data"]["alert"]["id"],
        to_carers["data"]["alert"]["id"]
    );
    // It hears the rest of that alert's life too.
    let id = to_carers["data"]["alert"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rig.ack(&id).await;
    rig.told(&commissioners, "not told of the ack", 20, |e| {
        e["data"]["alert"]["id"] == id.as_str() && e["data"]["alert"]["reason"] == "acknowledged"
    })
    .await;

    // A registered pendant's alarm is the carers' business only.
    rig.cid("1234", 1, "1101 01 003").await;
    rig.told(&rig.carers, "no registered press", 20, |e| {
        e["data"]["device"]["id"] == "pendant-12"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !commissioners
            .delivered()
            .iter()
            .any(|e| e["data"]["device"]["id"] == "pendant-12"),
        "{:?}",
        notes(&commissioners)
    );
    drop(rig);
}

#[test]
fn check_config_refuses_an_unknown_unregistered_route_and_notes_and_audit_warns_when_unset() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(
        dir.path(),
        1883,
        &format!(
            "{}\n[[route]]\nname = \"carers\"\nsinks = [\"carers\"]\n\n[[policy]]\nmatch = {{ priority = [\"high\"] }}\nnotify = [\"carers\"]\n",
            webhook_sink(dir.path(), "carers", "http://127.0.0.1:9/hook")
        ),
    );
    let path = dir.path().join("atgw.toml");
    let run = |args: &[&str], text: &str| {
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
            .args(args)
            .arg("--config")
            .arg(&path)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .unwrap()
    };
    let finding = |text: &str| -> Value {
        let out = run(&["audit", "--json"], text);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "unregistered-routing")
            .cloned()
            .unwrap_or_else(|| panic!("no unregistered-routing finding: {report:#}"))
    };

    let wrong = format!("{base}\n[alerts]\nunregistered_route = \"commisioning\"\n");
    let out = run(&["check-config"], &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alerts.unregistered_route") && stderr.contains("`commisioning`"),
        "{stderr}"
    );

    let out = run(&["check-config"], &base);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note") && stderr.contains("unregistered_route is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("go only to the routes their policy names"),
        "{stderr}"
    );
    let f = finding(&base);
    assert_eq!(f["status"], "warn", "{f:#}");

    let set = format!("{base}\n[alerts]\nunregistered_route = \"carers\"\n");
    let out = run(&["check-config"], &set);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unregistered_route"),
        "{out:?}"
    );
    assert_eq!(finding(&set)["status"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_says_what_was_restored_and_where_with_the_area() {
    let rig = rig(
        &format!("{ALARMS}\n[[policy]]\nname = \"leaks\"\nmatch = {{ kind = [\"water_leak\"] }}\nnotify = [\"carers\"]\n"),
        DEVICES,
    )
    .await;
    rig.cid("1234", 1, "1154 01 009").await;
    let raised = rig
        .told(
            &rig.carers,
            "no leak",
            20,
            reason_is("water_leak", "raised"),
        )
        .await;
    assert_eq!(
        raised["data"]["message"], "ALERT: Water leak - Room 12, east",
        "the room with its area"
    );
    rig.cid("1234", 2, "3154 01 009").await;
    let cleared = rig
        .told(
            &rig.carers,
            "the leak did not clear",
            20,
            reason_is("water_leak", "device_cleared"),
        )
        .await;
    assert_eq!(
        cleared["data"]["message"], "CLEARED - Water leak restored - Room 12, east",
        "{cleared}"
    );

    rig.cid("1234", 3, "1101 01 003").await;
    rig.cid("1234", 4, "3101 01 003").await;
    let note = rig
        .told(
            &rig.carers,
            "the pendant restore was not told",
            20,
            reason_is("pendant_press", "device_restored"),
        )
        .await;
    assert_eq!(
        note["data"]["message"],
        "STILL OPEN - pendant alarm restored, check the resident: Personal emergency - Room 12, east"
    );
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_contact_id_code_is_named_by_its_code_and_class() {
    let rig = rig(ALARMS, DEVICES).await;
    rig.cid("1234", 1, "1131 01 003").await;
    let mut messages = Vec::new();
    let _ = wait_until_async(Duration::from_secs(20), || {
        messages = rig.gw.column::<String>(
            "SELECT json_extract(json, '$.data.message') FROM events WHERE kind = 'unknown'",
        );
        !messages.is_empty()
    })
    .await;
    assert_eq!(
        messages,
        ["Contact ID 1131 (unmapped alarm) - Room 12, east"],
        "{}",
        rig.gw.log_text()
    );
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_check_in_names_the_device_its_room_and_its_area() {
    let rig = rig(
        ALARMS,
        r#"
[[device]]
id = "pendant-9"
adapter = "zigbee"
match = { device = "0xa4c1389960700009" }
location = { area = "West wing", room = "9" }
check_in = "2s"
"#,
    )
    .await;
    let devices = Publisher::connect(rig.broker.port, "semantics-silent").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c1389960700009",
            r#"{"action":"emergency"}"#,
        )
        .await;
    let offline = |phase: &'static str| {
        format!(
            "SELECT json_extract(json, '$.data.message') FROM events
             WHERE kind = 'device_offline' AND phase = '{phase}'"
        )
    };
    let mut silent = Vec::new();
    let _ = wait_until_async(Duration::from_secs(20), || {
        silent = rig.gw.column::<String>(&offline("raised"));
        !silent.is_empty()
    })
    .await;
    assert_eq!(silent.len(), 1, "{silent:?}\n{}", rig.gw.log_text());
    let m = &silent[0];
    assert!(
        m.starts_with("Pendant pendant-9")
            && m.contains("silent for ")
            && m.contains("(check-in missed)"),
        "{m}"
    );
    assert!(m.ends_with(" - Room 9, West wing"), "{m}");
    devices
        .send("zigbee2mqtt/0xa4c1389960700009", r#"{"linkquality":80}"#)
        .await;
    let mut back = Vec::new();
    let _ = wait_until_async(Duration::from_secs(20), || {
        back = rig.gw.column::<String>(&offline("cleared"));
        !back.is_empty()
    })
    .await;
    assert_eq!(back, ["Pendant pendant-9 back online - Room 9, West wing"]);
    drop(rig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_stop_after_max_reminders_and_the_last_one_says_so() {
    let rig = rig(
        "\n[[policy]]\nname = \"alarms\"\nmatch = { priority = [\"high\"] }\nnotify = [\"carers\"]\nremind = \"1s\"\n",
        DEVICES,
    )
    .await;
    rig.cid("1234", 1, "1101 01 003").await;
    let raised = rig
        .told(
            &rig.carers,
            "no press",
            20,
            reason_is("pendant_press", "raised"),
        )
        .await;
    rig.ack(raised["data"]["alert"]["id"].as_str().unwrap())
        .await;
    let reminders = || -> Vec<String> {
        rig.carers
            .delivered()
            .iter()
            .filter(|e| e["data"]["alert"]["reason"] == "not_resolved")
            .map(|e| e["data"]["message"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let _ = wait_until_async(Duration::from_secs(20), || reminders().len() >= 3).await;
    // Three more reminder intervals: none comes after the last.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = reminders();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].starts_with("REMINDER (1 of 3, not resolved)"),
        "{got:?}"
    );
    assert!(
        got[2].starts_with("LAST REMINDER (3 of 3, no more will be sent; not resolved)"),
        "{got:?}"
    );
    drop(rig);
}
