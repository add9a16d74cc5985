//! Alerts reach a person and escalate until someone acknowledges, with timers that survive a
//! crash; test calls never page carers. Real binary, real broker; acknowledgements over MQTT.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn alert_id(up: &Upstream) -> Option<String> {
    up.events()
        .iter()
        .find(|e| e["type"] == "atgw.alert.raised")
        .and_then(|e| e["correlationid"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pendant_press_escalates_repeats_and_stops_when_acknowledged_over_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "2s", "3s"),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "alert-devices").await;
    let schema = schema();

    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency","battery":90}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || alert_id(&carers).is_some())
        .await
        .unwrap_or_else(|_| panic!("carers were not told:\n{}", gw.log_text()));
    let id = alert_id(&carers).unwrap();
    assert!(
        lifecycle(&senior).is_empty(),
        "senior is not told before the delay"
    );

    // Nobody acknowledges: tier 2 after 2 s, and a repeat to everyone after 3 s.
    wait_until_async(Duration::from_secs(20), || {
        lifecycle(&senior)
            .iter()
            .any(|(t, r, l)| t == "atgw.alert.escalated" && r == "ack_timeout" && *l == 1)
    })
    .await
    .unwrap_or_else(|_| panic!("no escalation: {:?}", lifecycle(&senior)));
    // Not before its delay: the escalation's own time is at least 2 s after the raise's.
    let time_of = |up: &Upstream, ty: &str| -> jiff::Timestamp {
        up.events()
            .iter()
            .find(|e| e["type"] == ty)
            .and_then(|e| e["time"].as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("no {ty} with a time"))
    };
    let delay = time_of(&senior, "atgw.alert.escalated")
        .duration_since(time_of(&carers, "atgw.alert.raised"));
    assert!(
        delay >= jiff::SignedDuration::from_millis(1_950),
        "senior told {delay:?} after the raise, before the 2 s delay"
    );
    wait_until_async(Duration::from_secs(20), || {
        lifecycle(&carers).iter().any(|(_, r, _)| r == "repeat")
    })
    .await
    .unwrap_or_else(|_| panic!("no repeat: {:?}", lifecycle(&carers)));

    // A carer acknowledges over MQTT.
    devices
        .send(
            &format!("atgw/oakview/alerts/{id}/ack"),
            r#"{"by":"carer-7","note":"on my way"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        lifecycle(&senior)
            .iter()
            .any(|(t, _, _)| t == "atgw.alert.acknowledged")
    })
    .await
    .unwrap_or_else(|_| panic!("ack not propagated:\n{}", gw.log_text()));
    let acked_at = lifecycle(&carers).len();
    // Past another repeat period and tier delay: nothing more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: Vec<_> = lifecycle(&carers)[acked_at..].to_vec();
    assert!(
        after.is_empty(),
        "escalation and repeats stopped after the ack: {after:?}"
    );

    let c = gw.journal();
    let (status, by): (String, String) = c
        .query_row(
            "SELECT status, acked_by FROM alerts WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), by.as_str()), ("acknowledged", "carer-7"));
    for e in carers.events().iter().chain(senior.events().iter()) {
        assert_schema_valid(&schema, e);
        assert_eq!(
            e["correlationid"],
            Value::String(id.clone()),
            "one alert, one correlation id"
        );
    }
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_raise_and_escalation_escalates_once_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let mut gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "3s", "1h"),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "crash-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xdc8e95fffe4dc3dd",
            r#"{"fall_down_status":"fall","presence":true}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        gw.journal()
            .query_row("SELECT count(*) FROM alert_timers", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_or(0)
            > 0
    })
    .await
    .expect("alert raised and its timer stored");
    let raised_ms: i64 = gw
        .journal()
        .query_row("SELECT raised_ms FROM alerts", [], |r| r.get(0))
        .unwrap();
    gw.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.restart();

    wait_until_async(Duration::from_secs(20), || !lifecycle(&senior).is_empty())
        .await
        .unwrap_or_else(|_| panic!("no escalation after restart:\n{}", gw.log_text()));
    // Well past the due time: still exactly one escalation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let escalations: Vec<i64> = gw.column(
        "SELECT time_ms FROM events WHERE source = 'urn:atgw:gw-test:alerts' AND json LIKE '%\"ack_timeout\"%'",
    );
    assert_eq!(escalations.len(), 1, "escalated exactly once");
    let late = escalations[0] - raised_ms;
    assert!(late >= 3_000, "not before its delay ({late} ms)");
    assert!(late < 8_000, "on time, not forgotten ({late} ms)");
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_calls_reach_the_test_route_and_never_the_carers() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let maintenance = Upstream::start(broker.port, "atgw/maintenance/#").await;
    let gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "2s", "1h"),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "test-call-devices").await;
    devices
        .send(
            "zigbee2mqtt/0x847127fffe0542eb",
            r#"{"action":"emergency","test":true}"#,
        )
        .await;
    // A real press afterwards: once it reaches the carers, the test call had its chance too.
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || alert_id(&carers).is_some())
        .await
        .unwrap_or_else(|_| panic!("the real press did not arrive:\n{}", gw.log_text()));
    wait_until_async(Duration::from_secs(20), || maintenance.count() >= 1)
        .await
        .expect("test call reached maintenance");
    let tests: Vec<Value> = maintenance.events();
    assert!(tests.iter().all(|e| e["data"]["test"] == true), "{tests:?}");
    assert!(
        carers
            .events()
            .iter()
            .all(|e| e["data"]["device"]["id"] != "zigbee:0x847127fffe0542eb"),
        "a test call reached the carers"
    );
    let alerts: i64 = gw
        .journal()
        .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(alerts, 1, "the test call opened no alert");
    broker.stop();
}

/// The upstream broker keeps only live alerts (issue 20): an alert's state is retained at
/// `<prefix>/alerts/<id>` while it is open or acknowledged, and its resolution clears it, so a
/// console connecting later sees the open alert and not the resolved one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_alert_leaves_no_retained_state_and_an_open_one_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "1h", "1h"),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "retained-devices").await;
    let alert_of = |device: &str| {
        gw.column::<String>(&format!(
            "SELECT id FROM alerts WHERE device_id = '{device}' ORDER BY raised_ms DESC LIMIT 1"
        ))
        .pop()
    };
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    devices
        .send("zigbee2mqtt/0xa4c1aaaa", r#"{"action":"emergency"}"#)
        .await;
    wait_until_async(Duration::from_secs(20), || {
        lifecycle(&carers)
            .iter()
            .filter(|(t, _, _)| t == "atgw.alert.raised")
            .count()
            == 2
    })
    .await
    .unwrap_or_else(|_| panic!("carers were not told:\n{}", gw.log_text()));
    let resolved = alert_of("zigbee:0xa4c13899607febd1").unwrap();
    let open = alert_of("zigbee:0xa4c1aaaa").unwrap();
    devices
        .send(
            &format!("atgw/oakview/alerts/{resolved}/resolve"),
            r#"{"by":"carer-7","outcome":"assisted"}"#,
        )
        .await;
    // The resolution itself reaches the subscribers that are listening.
    wait_until_async(Duration::from_secs(20), || {
        carers
            .events()
            .iter()
            .any(|e| e["type"] == "atgw.alert.resolved" && e["correlationid"] == resolved.as_str())
    })
    .await
    .unwrap_or_else(|_| panic!("resolution not published:\n{}", gw.log_text()));
    // Its row is released only once the clear is acknowledged too.
    wait_until_async(Duration::from_secs(20), || {
        gw.column::<i64>("SELECT count(*) FROM outbox WHERE sink = 'carers'") == [0]
    })
    .await
    .unwrap_or_else(|_| panic!("carers' outbox not drained:\n{}", gw.log_text()));

    // A console connecting now gets the retained states: the open alert's, not the other's.
    let console = Upstream::start(broker.port, "atgw/carers/alerts/#").await;
    wait_until_async(Duration::from_secs(10), || !console.events().is_empty())
        .await
        .expect("the open alert's retained state");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = console
        .events()
        .iter()
        .map(|e| e["correlationid"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids, [open], "retained: only the open alert");
    broker.stop();
}
