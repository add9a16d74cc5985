//! What device reports mean for residents, end to end: the real binary, a real broker, the
//! journal read from its SQLite file. Test reports, device clocks, impossible readings, low
//! batteries and sensors that report but cannot measure.

mod common;

use std::time::Duration;

use common::*;

/// A route and a policy that turn every non-test event at or above `low` priority into an
/// alert, so a test can see which events open alerts.
fn everything_alerts(dir: &std::path::Path, port: u16, extra: &str) -> String {
    config(
        dir,
        port,
        &format!(
            r#"
[[sink]]
name = "carers"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topic_prefix = "atgw/carers"
accept_acks = false

[[route]]
name = "carers"
sinks = ["carers"]

[[policy]]
name = "everything"
match = {{ priority = ["high", "medium", "low"] }}
notify = ["carers"]
{extra}
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_leak_report_does_not_hide_the_real_leak_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start(dir.path(), &everything_alerts(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "leak-sensor").await;
    let topic = "zigbee2mqtt/0x00158d0004a1b2c3";
    devices
        .send(topic, r#"{"water_leak":false,"test":false}"#)
        .await;
    devices
        .send(topic, r#"{"water_leak":true,"test":true}"#)
        .await;
    devices
        .send(topic, r#"{"water_leak":true,"test":false}"#)
        .await;
    let real_leak_alerts = || {
        gw.column::<String>(
            "SELECT a.id FROM alerts a JOIN events e ON e.correlation_id = a.id
             WHERE a.kind = 'water_leak' AND e.kind = 'water_leak' AND e.test = 0
               AND e.phase = 'raised'",
        )
    };
    wait_until_async(Duration::from_secs(20), || !real_leak_alerts().is_empty())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the real leak raised no alert; events: {:?}\n{}",
                gw.column::<String>("SELECT kind || ' ' || phase || ' test=' || test FROM events"),
                gw.log_text()
            )
        });
    // The test leak itself was journaled as a test and opened nothing.
    assert_eq!(
        gw.column::<i64>("SELECT count(*) FROM events WHERE kind = 'water_leak' AND test = 1"),
        [1]
    );
    assert_eq!(gw.column::<i64>("SELECT count(*) FROM alerts"), [1]);
}
