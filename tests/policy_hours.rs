//! A policy's hours through the real binary and a real broker (site time, Europe/London): a
//! condition raised before its hours begin only journals then, and if still raised when they
//! begin it is alerted at that moment, not lost as a repeat; one that cleared meanwhile is not.

mod common;

use std::time::Duration;

use common::*;

fn london_hhmm(t: jiff::Timestamp, minutes: i64) -> String {
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let dt = tz.to_datetime(t + jiff::SignedDuration::from_mins(minutes));
    format!("{:02}:{:02}", dt.hour(), dt.minute())
}

/// Alerts of `kind` in the journal, as (device, raised_ms).
fn alerts(gw: &Gateway, kind: &str) -> Vec<(String, i64)> {
    let devices: Vec<String> = gw.column(&format!(
        "SELECT device_id FROM alerts WHERE kind = '{kind}' ORDER BY opened_ms"
    ));
    let times: Vec<i64> = gw.column(&format!(
        "SELECT opened_ms FROM alerts WHERE kind = '{kind}' ORDER BY opened_ms"
    ));
    devices.into_iter().zip(times).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_still_raised_when_the_policys_hours_begin_is_alerted_then() {
    // The hours begin at the next whole minute (site time), at least 10 s away.
    let mut begins = jiff::Timestamp::now()
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Minute)
                .mode(jiff::RoundMode::Ceil),
        )
        .unwrap();
    if begins.duration_since(jiff::Timestamp::now()).as_secs() < 10 {
        begins += jiff::SignedDuration::from_mins(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let config = alert_config(dir.path(), broker.port, "1h", "1h").replace(
        "[[policy]]\nname = \"alarms\"",
        &format!(
            "[[policy]]\nname = \"leaks-in-hours\"\nmatch = {{ kind = [\"water_leak\"], hours = \"{}-{}\" }}\nnotify = [\"carers\"]\n\n[[policy]]\nname = \"alarms\"",
            london_hhmm(begins, 0),
            london_hhmm(begins, 60)
        ),
    );
    let gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "hours-devices").await;
    // Two leaks before the hours: one stays wet, one dries before they begin.
    devices
        .send("zigbee2mqtt/0xa4c1389960701001", r#"{"water_leak":true}"#)
        .await;
    devices
        .send("zigbee2mqtt/0xa4c1389960701002", r#"{"water_leak":true}"#)
        .await;
    wait_until_async(Duration::from_secs(10), || {
        gw.column::<i64>("SELECT count(*) FROM held_conditions")[0] == 2
    })
    .await
    .unwrap_or_else(|_| panic!("the leaks were not held for the hours:\n{}", gw.log_text()));
    devices
        .send("zigbee2mqtt/0xa4c1389960701002", r#"{"water_leak":false}"#)
        .await;
    wait_until_async(Duration::from_secs(10), || {
        gw.column::<i64>("SELECT count(*) FROM held_conditions")[0] == 1
    })
    .await
    .unwrap_or_else(|_| panic!("the dried leak is still held:\n{}", gw.log_text()));
    assert!(
        jiff::Timestamp::now() < begins,
        "the test needs the leaks before the hours"
    );
    assert!(
        alerts(&gw, "water_leak").is_empty(),
        "no alert outside the hours"
    );

    // The hours begin: the leak still wet is alerted at once; the device says nothing new.
    let wait = begins.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(Duration::from_millis(wait.as_millis().max(0) as u64)).await;
    wait_until_async(Duration::from_secs(10), || {
        !alerts(&gw, "water_leak").is_empty()
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the still-wet leak was not alerted when the hours began:\n{}",
            gw.log_text()
        )
    });
    let opened = alerts(&gw, "water_leak");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].0.ends_with("0xa4c1389960701001"), "{opened:?}");
    let late = opened[0].1 - begins.as_millisecond();
    assert!(
        (0..3_000).contains(&late),
        "alerted {late} ms after the hours began"
    );
    wait_until_async(Duration::from_secs(10), || {
        carers
            .events()
            .iter()
            .any(|e| e["type"] == "atgw.alert.raised" && e["data"]["kind"] == "water_leak")
    })
    .await
    .unwrap_or_else(|_| panic!("the carers were not told"));
    // Its cause is the event that raised it before the hours.
    let cause: Vec<String> = gw.column(
        "SELECT json_extract(json, '$.causationid') FROM events
         WHERE json_extract(json, '$.data.alert.reason') = 'raised' AND kind = 'water_leak'",
    );
    let raised: Vec<String> = gw.column(
        "SELECT id FROM events WHERE kind = 'water_leak' AND phase = 'raised'
           AND device_id LIKE '%701001' AND source NOT LIKE '%:alerts'",
    );
    assert_eq!(cause, raised);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        alerts(&gw, "water_leak").len(),
        1,
        "the dried leak stays quiet"
    );
}
