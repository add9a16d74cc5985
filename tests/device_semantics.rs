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

fn epoch_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn wait_for_vital_signs(gw: &Gateway, n: i64) {
    wait_until_async(Duration::from_secs(20), || {
        gw.column::<i64>("SELECT count(*) FROM events WHERE kind = 'vital_sign'") == [n]
    })
    .await
    .unwrap_or_else(|_| panic!("{n} readings were not journaled:\n{}", gw.log_text()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_clock_11_minutes_ahead_is_flagged_and_does_not_shorten_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let hub = Publisher::connect(broker.port, "ble-hub").await;
    let schema = schema();
    let now = epoch_s();
    let heart_rate_alerts =
        || gw.column::<i64>("SELECT count(*) FROM events WHERE kind = 'heart_rate_abnormal'")[0];

    // Pulse 140 scores 3 on NEWS2; persistence asks for 3 readings (or 60 s of them).
    hub.send("dusun_pub", oximeter(now, 97, 140)).await;
    wait_for_vital_signs(&gw, 1).await;
    // The second reading claims to be 11 minutes later: the device's clock has jumped.
    hub.send("dusun_pub", oximeter(now + 660, 97, 140)).await;
    wait_for_vital_signs(&gw, 2).await;
    assert_eq!(
        heart_rate_alerts(),
        0,
        "the device's clock satisfied the 60 s window after 2 readings 1 s apart"
    );
    let skews = gw.column::<i64>(
        "SELECT coalesce(json_extract(json, '$.data.clock_skew_s'), 0) FROM events
         WHERE kind = 'vital_sign' ORDER BY seq",
    );
    assert_eq!(skews[0], 0, "a clock within max_clock_skew is not flagged");
    assert!((655..=665).contains(&skews[1]), "skew flagged as {skews:?}");
    let times =
        gw.column::<i64>("SELECT time_ms FROM events WHERE kind = 'vital_sign' ORDER BY seq");
    assert_eq!(
        times[1],
        (now + 660) * 1000,
        "the event keeps the device's time"
    );
    wait_until(Duration::from_secs(10), || {
        gw.log_text().contains("clock") && gw.log_text().contains("ble:ff23041920b4")
    })
    .unwrap_or_else(|_| panic!("no warning naming the device:\n{}", gw.log_text()));

    hub.send("dusun_pub", oximeter(now + 661, 97, 140)).await;
    wait_until_async(Duration::from_secs(20), || heart_rate_alerts() == 1)
        .await
        .unwrap_or_else(|_| panic!("the third reading did not raise:\n{}", gw.log_text()));
    let c = gw.journal();
    let mut s = c.prepare("SELECT json FROM events").unwrap();
    for json in s.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        assert_schema_valid(&schema, &serde_json::from_str(&json.unwrap()).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unworn_watchs_zero_spo2_raises_nothing_and_is_journaled_absent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start(dir.path(), &everything_alerts(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let hub = Publisher::connect(broker.port, "ble-hub").await;
    let now = epoch_s();
    for i in 0..4 {
        hub.send("dusun_pub", oximeter(now + i, 0, 0)).await;
    }
    wait_for_vital_signs(&gw, 4).await;
    // The rules ran in the same transactions as the readings.
    assert_eq!(
        gw.column::<String>("SELECT kind FROM events WHERE kind != 'vital_sign'"),
        Vec::<String>::new(),
        "an impossible reading raised an alarm"
    );
    assert_eq!(gw.column::<i64>("SELECT count(*) FROM alerts"), [0]);
    let spo2 = gw.column::<String>(
        "SELECT json_extract(json, '$.data.observations[0]') FROM events ORDER BY seq LIMIT 1",
    );
    let spo2: serde_json::Value = serde_json::from_str(&spo2[0]).unwrap();
    assert_eq!(spo2["name"], "spo2");
    assert_eq!(spo2["absent_reason"], "error");
    assert!(spo2.get("value").is_none(), "{spo2}");
}

async fn resolve(api: &str, token: &str, id: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .post(format!("{api}/alerts/{id}/resolve"))
        .bearer_auth(token)
        .json(&serde_json::json!({"by": "carer-7", "outcome": "no_action", "note": "battery ordered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_battery_is_raised_again_after_it_was_resolved_and_every_low_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (api_block, api, token) = api_block(dir.path());
    let gw = Gateway::start(
        dir.path(),
        &everything_alerts(dir.path(), broker.port, &api_block),
    );
    gw.wait_subscribed().await;
    let pendant = Publisher::connect(broker.port, "pendant").await;
    let topic = "zigbee2mqtt/0xa4c13899607febd1";
    let battery_alerts = || {
        gw.column::<String>(
            "SELECT id || ' ' || status FROM alerts WHERE kind = 'low_battery' ORDER BY raised_ms",
        )
    };

    pendant
        .send(topic, r#"{"battery":50,"battery_low":false}"#)
        .await;
    pendant
        .send(topic, r#"{"battery":5,"battery_low":true}"#)
        .await;
    wait_until_async(Duration::from_secs(20), || battery_alerts().len() == 1)
        .await
        .unwrap_or_else(|_| panic!("5 % raised no alert:\n{}", gw.log_text()));
    let first = battery_alerts()[0].split(' ').next().unwrap().to_owned();
    resolve(&api, &token, &first).await;

    pendant
        .send(topic, r#"{"battery":2,"battery_low":true}"#)
        .await;
    wait_until_async(Duration::from_secs(20), || battery_alerts().len() == 2)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "2 % after the resolve raised nothing: {:?}\n{}",
                battery_alerts(),
                gw.log_text()
            )
        });
    assert!(
        battery_alerts()[1].ends_with(" open"),
        "{:?}",
        battery_alerts()
    );
    assert_eq!(
        gw.column::<f64>(
            "SELECT json_extract(json, '$.data.battery.percent') FROM events
             WHERE kind = 'low_battery' AND source LIKE '%:zigbee' ORDER BY seq"
        ),
        [5.0, 2.0],
        "each low reading is journaled"
    );

    // The pendant's own alarm tells the carer its battery is going.
    pendant
        .send(
            topic,
            r#"{"action":"emergency","battery":2,"battery_low":true}"#,
        )
        .await;
    let press = || {
        gw.column::<String>(
            "SELECT json_extract(json, '$.data.message') FROM events WHERE kind = 'pendant_press'",
        )
    };
    wait_until_async(Duration::from_secs(20), || !press().is_empty())
        .await
        .unwrap_or_else(|_| panic!("no press:\n{}", gw.log_text()));
    assert!(press()[0].ends_with("(battery low 2%)"), "{:?}", press());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oximeter_that_only_reports_finger_out_raises_not_reading_and_clears_on_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let extra = r#"
[vitals]
not_reading_after = "1h"

[[device]]
id = "oximeter-16"
adapter = "zigbee"
match = { device = "ff23041920b4" }
location = { area = "west", room = "16" }
not_reading_after = "2s"                 # this device's own, replacing [vitals]
"#;
    let gw = Gateway::start(
        dir.path(),
        &everything_alerts(dir.path(), broker.port, extra),
    );
    gw.wait_subscribed().await;
    let hub = Publisher::connect(broker.port, "ble-hub").await;
    let faults = || {
        gw.column::<String>(
            "SELECT phase || ' ' || priority || ' ' || json_extract(json, '$.data.message')
             FROM events WHERE kind = 'device_fault' AND source LIKE '%:rules' ORDER BY seq",
        )
    };
    // 127 is the hub's "finger out": readings arrive, none can be measured.
    for _ in 0..4 {
        hub.send("dusun_pub", oximeter(epoch_s(), 127, 127)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(faults().is_empty(), "raised before 2 s: {:?}", faults());
    for _ in 0..4 {
        hub.send("dusun_pub", oximeter(epoch_s(), 127, 127)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_until_async(Duration::from_secs(20), || !faults().is_empty())
        .await
        .unwrap_or_else(|_| panic!("not-reading never raised:\n{}", gw.log_text()));
    assert_eq!(
        faults(),
        ["raised low Oximeter not reading - Room 16, west"],
        "raised once, low priority"
    );
    assert_eq!(
        gw.column::<String>("SELECT status FROM alerts WHERE kind = 'device_fault'"),
        ["open"]
    );

    hub.send("dusun_pub", oximeter(epoch_s(), 97, 72)).await;
    wait_until_async(Duration::from_secs(20), || faults().len() == 2)
        .await
        .unwrap_or_else(|_| panic!("a reading did not clear it: {:?}", faults()));
    assert_eq!(
        faults()[1],
        "cleared low Oximeter reading again - Room 16, west"
    );
}
