//! Alerts reach a care team's mailboxes through the real binary: `[[sink]] type = "email"` is
//! loaded from the config, routed by a policy, and delivers to a real SMTP server (aiosmtpd,
//! `adapters/email/tests/smtp_server.py`). A pendant press arrives as a subject a carer can act
//! on; the acknowledgement made through the local API follows in the same thread; no log line
//! names a recipient.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The aiosmtpd test server, plain SMTP on loopback; stopped when dropped.
struct Smtp {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Smtp {
    fn start() -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .env(
                "PYTHONPATH",
                python_path_with("aiosmtpd", "aiosmtpd==1.4.6"),
            )
            .arg(repo().join("adapters/email/tests/smtp_server.py"))
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP test server did not start: {line:?}"));
        Smtp { port, dir, child }
    }

    /// The messages accepted so far, as Python's `email` parser read them.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("attempt-") && n.ends_with(".json"))
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
            .filter(|m| m["code"] == 250)
            .collect()
    }

    fn subjects(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| header(m, "subject"))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header(m: &Value, name: &str) -> String {
    m["headers"][name][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pendant_press_is_emailed_and_its_acknowledgement_follows_in_the_same_thread() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let smtp = Smtp::start();
    let (api_cfg, api, token) = api_block(dir.path());
    let extra = format!(
        r#"
[[sink]]
name = "night-team"
type = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Oakview alerts <atgw@oakview.example>"
to = ["night@oakview.example", "duty@oakview.example"]
timeout = "5s"

[[route]]
name = "night"
sinks = ["night-team"]

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["night"]

[[device]]
id = "pendant-12"
adapter = "zigbee"
match = {{ device = "0xa4c13899607febd1" }}
location = {{ area = "East wing", room = "12" }}
{api_cfg}"#,
        port = smtp.port
    );
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &extra));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "email-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#.to_owned(),
        )
        .await;

    wait_until_async(Duration::from_secs(20), || !smtp.messages().is_empty())
        .await
        .unwrap_or_else(|_| panic!("no email for the press:\n{}", gw.log_text()));
    let raise = smtp.messages()[0].clone();
    assert_eq!(
        header(&raise, "subject"),
        "HIGH: Emergency button pressed – Room 12, East wing"
    );
    assert_eq!(
        raise["rcpt_tos"],
        json!(["night@oakview.example", "duty@oakview.example"])
    );
    let alert_id = header(&raise, "x-atgw-alert-id");
    assert_eq!(
        header(&raise, "message-id"),
        format!("<alert.{alert_id}@oakview.example>"),
        "the raise is the alert's thread"
    );
    let body = raise["body"].as_str().unwrap_or_default();
    assert!(body.contains("Where:      Room 12, East wing"), "{body}");
    assert!(body.contains(" UTC)"), "the site's zone and UTC: {body}");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .post(format!("{api}/alerts/{alert_id}/ack"))
        .bearer_auth(&token)
        .json(&json!({"by": "carer-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let acked = "Acknowledged by carer-3: Emergency button pressed – Room 12, East wing";
    wait_until_async(Duration::from_secs(20), || {
        smtp.subjects().iter().any(|s| s == acked)
    })
    .await
    .unwrap_or_else(|_| panic!("no acknowledgement email: {:?}", smtp.subjects()));
    let messages = smtp.messages();
    let ack = messages
        .iter()
        .find(|m| header(m, "subject") == acked)
        .unwrap();
    assert_eq!(header(ack, "in-reply-to"), header(&raise, "message-id"));
    assert_eq!(header(ack, "references"), header(&raise, "message-id"));

    let log = gw.log_text();
    assert!(
        !log.contains("night@oakview.example") && !log.contains("duty@oakview.example"),
        "a recipient in the log:\n{log}"
    );
}

/// Local `HH:MM` in Europe/London of `t` shifted by `minutes`.
fn london_hhmm(t: jiff::Timestamp, minutes: i64) -> String {
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let dt = tz.to_datetime(t + jiff::SignedDuration::from_mins(minutes));
    format!("{:02}:{:02}", dt.hour(), dt.minute())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_route_emails_whoever_is_on_shift_when_each_alert_is_raised() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The shift change is the next whole minute (site time), at least 10 s away.
    let mut change = jiff::Timestamp::now()
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Minute)
                .mode(jiff::RoundMode::Ceil),
        )
        .unwrap();
    if change.duration_since(jiff::Timestamp::now()).as_secs() < 10 {
        change += jiff::SignedDuration::from_mins(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let smtp = Smtp::start();
    let extra = format!(
        r#"
[[sink]]
name = "team-mail"
type = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Oakview alerts <atgw@oakview.example>"
timeout = "5s"

[[person]]
name = "Nina"
role = "carer"
contact = {{ email = "nina@oakview.example", sms = "+447700900001" }}

[[person]]
name = "Dev"
role = "carer"
contact = {{ email = "dev@oakview.example" }}

[[person]]
name = "Maria"
role = "manager"
contact = {{ email = "maria@oakview.example" }}

[[team]]
name = "east-carers"
manager = "Maria"
[[team.shift]]
name = "ending"
start = "{ending_start}"
end = "{change_at}"
people = ["Nina"]
[[team.shift]]
name = "starting"
start = "{change_at}"
end = "{starting_end}"
people = ["Dev"]

[[route]]
name = "on-shift"
sinks = ["team-mail"]
team = "east-carers"

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["on-shift"]

[[device]]
id = "pendant-3"
adapter = "zigbee"
match = {{ device = "0xa4c1389960700003" }}
location = {{ area = "East wing", room = "3" }}

[[device]]
id = "pendant-4"
adapter = "zigbee"
match = {{ device = "0xa4c1389960700004" }}
location = {{ area = "East wing", room = "4" }}
"#,
        port = smtp.port,
        ending_start = london_hhmm(change, -120),
        change_at = london_hhmm(change, 0),
        starting_end = london_hhmm(change, 120),
    );
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &extra));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "rota-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c1389960700003",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(10), || !smtp.messages().is_empty())
        .await
        .unwrap_or_else(|_| panic!("no email before the change:\n{}", gw.log_text()));
    assert!(
        jiff::Timestamp::now() < change,
        "the first alert must be raised before the shift change"
    );
    assert_eq!(
        smtp.messages()[0]["rcpt_tos"],
        json!(["nina@oakview.example"])
    );

    // After the change, the next alert goes to whoever is on shift then.
    let wait = change.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(Duration::from_millis(
        wait.as_millis().max(0) as u64 + 1_000,
    ))
    .await;
    devices
        .send(
            "zigbee2mqtt/0xa4c1389960700004",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(10), || {
        smtp.subjects().iter().any(|s| s.contains("Room 4"))
    })
    .await
    .unwrap_or_else(|_| panic!("no email after the change: {:?}", smtp.subjects()));
    let second = smtp
        .messages()
        .into_iter()
        .find(|m| header(m, "subject").contains("Room 4"))
        .unwrap();
    assert_eq!(second["rcpt_tos"], json!(["dev@oakview.example"]));
    let log = gw.log_text();
    assert!(
        !log.contains("nina@") && !log.contains("dev@") && !log.contains("+447700900001"),
        "a person's address in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_refusing_for_good_escalates_the_alert_to_the_next_tier() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let smtp = Smtp::start();
    std::fs::write(smtp.dir.path().join("mode"), "permfail").unwrap();
    let extra = format!(
        r#"
[[sink]]
name = "carers-mail"
type = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Oakview alerts <atgw@oakview.example>"
to = ["carers@oakview.example"]
timeout = "5s"

[[sink]]
name = "senior"
type = "mqtt"
host = "127.0.0.1"
port = {broker}
topic_prefix = "atgw/senior"
accept_acks = false

[[route]]
name = "carers"
sinks = ["carers-mail"]

[[route]]
name = "senior"
sinks = ["senior"]

[alerts]
escalate_after_failed_attempts = 2

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["carers"]
escalate = [{{ after = "1h", notify = ["senior"] }}]
"#,
        port = smtp.port,
        broker = broker.port
    );
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &extra));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "email-5xx-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c1389960700021",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(30), || {
        senior
            .events()
            .iter()
            .any(|e| e["data"]["alert"]["reason"] == "delivery_failed")
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "a 554 did not escalate the alert to the senior:\n{}",
            gw.log_text()
        )
    });
    assert!(smtp.messages().is_empty(), "nothing was accepted");
    let refused: Vec<i64> =
        gw.column("SELECT attempts FROM outbox WHERE sink = 'carers-mail' AND attempts > 0");
    assert!(!refused.is_empty() && refused[0] >= 2, "{refused:?}");
}

/// The email sink with `bundle_window`, a policy for water leaks (medium) and one for high
/// alarms, and two leak detectors with rooms.
fn bundle_config(dir: &std::path::Path, broker: u16, smtp: u16, window: &str) -> String {
    let extra = format!(
        r#"
[[sink]]
name = "night-team"
type = "email"
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "Oakview alerts <atgw@oakview.example>"
to = ["night@oakview.example"]
timeout = "5s"
bundle_window = "{window}"

[alerts]
# Far below the hold: a held row must not count as a failing sink.
sink_failing_alert_after = "1s"

[[route]]
name = "night"
sinks = ["night-team"]

[[policy]]
name = "leaks"
match = {{ kind = ["water_leak"] }}
notify = ["night"]

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["night"]

[[device]]
id = "leak-4"
adapter = "zigbee"
match = {{ device = "0xa4c1389960704444" }}
location = {{ area = "East wing", room = "4" }}

[[device]]
id = "leak-7"
adapter = "zigbee"
match = {{ device = "0xa4c1389960707777" }}
location = {{ area = "East wing", room = "7" }}
"#
    );
    config(dir, broker, &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_leaks_held_across_a_kill_9_are_sent_with_the_pendant_press_that_is_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let smtp = Smtp::start();
    // A window far longer than the test: whatever arrives was not held for it.
    let cfg = bundle_config(dir.path(), broker.port, smtp.port, "10m");
    let mut gw = Gateway::start(dir.path(), &cfg);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "bundle-devices").await;
    for d in ["0xa4c1389960704444", "0xa4c1389960707777"] {
        devices
            .send(&format!("zigbee2mqtt/{d}"), r#"{"water_leak":true}"#)
            .await;
    }
    // Both notifications are committed and owed to the mail sink, which holds them.
    let owed = "SELECT COUNT(*) FROM outbox WHERE sink = 'night-team'";
    wait_until_async(Duration::from_secs(20), || gw.column::<i64>(owed) == [2])
        .await
        .unwrap_or_else(|_| panic!("two leak notifications not owed:\n{}", gw.log_text()));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        smtp.messages().is_empty(),
        "not held: {:?}",
        smtp.subjects()
    );
    // Held longer than `sink_failing_alert_after`: not a fault (no false alarm).
    assert!(
        !gw.log_text().contains("raising a gateway alert"),
        "a held bundle raised the sink alert:\n{}",
        gw.log_text()
    );
    gw.kill9();

    // After the restart the rows are still owed and held again (a fresh bundle).
    gw.restart();
    gw.wait_subscribed().await;
    assert_eq!(gw.column::<i64>(owed), [2], "{}", gw.log_text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        smtp.messages().is_empty(),
        "not held: {:?}",
        smtp.subjects()
    );

    // A pendant press for the same people goes at once, alone, and takes the bundle with it.
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || smtp.messages().len() >= 2)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the press and the held leaks did not arrive: {:?}\n{}",
                smtp.subjects(),
                gw.log_text()
            )
        });
    wait_until_async(Duration::from_secs(20), || gw.column::<i64>(owed) == [0])
        .await
        .unwrap_or_else(|_| panic!("rows still owed:\n{}", gw.log_text()));
    let mut subjects = smtp.subjects();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "2 alerts: Water leak – Room 4, East wing, Water leak – Room 7, East wing",
            "HIGH: Emergency button pressed – device zigbee:0xa4c13899607febd1",
        ]
    );
    let bundle = smtp
        .messages()
        .into_iter()
        .find(|m| header(m, "subject").starts_with("2 alerts"))
        .unwrap();
    assert_eq!(header(&bundle, "x-atgw-bundle"), "2");
    assert!(header(&bundle, "in-reply-to").is_empty());
}
