//! Alert timers across a crash, through the real binary and a real broker: a kill -9 just after
//! a timer fired does not fire it again; a restart after a due time has passed fires it once,
//! at start; a restart during repeats and reminders keeps their cadence (no burst, no gap).

mod common;

use std::time::Duration;

use common::*;

const ALERTS: &str = "urn:atgw:gw-test:alerts";

/// Lifecycle events in the journal with this reason, as their times (ms), oldest first.
fn journaled(gw: &Gateway, reason: &str) -> Vec<i64> {
    gw.column(&format!(
        "SELECT time_ms FROM events WHERE source = '{ALERTS}'
           AND json_extract(json, '$.data.alert.reason') = '{reason}' ORDER BY time_ms"
    ))
}

/// Distinct event ids a subscriber received with this reason (redeliveries of one id are
/// at-least-once and allowed; a second id is a second notification).
fn received(up: &Upstream, reason: &str) -> usize {
    let ids: std::collections::HashSet<String> = up
        .events()
        .iter()
        .filter(|e| e["data"]["alert"]["reason"] == reason)
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    ids.len()
}

async fn press(port: u16, client: &str, device: &str) -> Publisher {
    let devices = Publisher::connect(port, client).await;
    devices
        .send(
            &format!("zigbee2mqtt/{device}"),
            r#"{"action":"emergency","battery":90}"#,
        )
        .await;
    devices
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_an_escalation_fired_does_not_fire_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let mut gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "2s", "1h"),
    );
    gw.wait_subscribed().await;
    let _devices = press(broker.port, "timer-devices-1", "0xa4c13899607fe001").await;
    // Killed the moment the escalation is committed (polled every 25 ms).
    wait_until_async(Duration::from_secs(20), || {
        !journaled(&gw, "ack_timeout").is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("no escalation:\n{}", gw.log_text()));
    gw.kill9();
    gw.restart();
    wait_until_async(Duration::from_secs(20), || {
        received(&senior, "ack_timeout") >= 1
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the escalation never reached the senior:\n{}",
            gw.log_text()
        )
    });
    // Well past another tier delay: still one escalation, journaled and received.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(journaled(&gw, "ack_timeout").len(), 1, "journaled once");
    assert_eq!(received(&senior, "ack_timeout"), 1, "the senior told once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_the_due_time_passed_escalates_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let mut gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "2s", "1h"),
    );
    gw.wait_subscribed().await;
    let _devices = press(broker.port, "timer-devices-2", "0xa4c13899607fe002").await;
    wait_until_async(Duration::from_secs(20), || {
        !journaled(&gw, "raised").is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("no alert:\n{}", gw.log_text()));
    gw.kill9();
    // Down for longer than the escalation delay: the timer falls due while nobody runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(journaled(&gw, "ack_timeout").is_empty());
    let restarted_ms = jiff::Timestamp::now().as_millisecond();
    gw.restart();
    wait_until_async(Duration::from_secs(20), || {
        received(&senior, "ack_timeout") >= 1
    })
    .await
    .unwrap_or_else(|_| panic!("the overdue escalation was forgotten:\n{}", gw.log_text()));
    let fired = journaled(&gw, "ack_timeout");
    assert!(
        fired[0] - restarted_ms < 3_000,
        "fired at start, {} ms after the restart",
        fired[0] - restarted_ms
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(journaled(&gw, "ack_timeout").len(), 1, "once");
    assert_eq!(received(&senior, "ack_timeout"), 1, "the senior told once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_repeats_keeps_their_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let mut gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "1h", "2s"),
    );
    gw.wait_subscribed().await;
    let _devices = press(broker.port, "timer-devices-3", "0xa4c13899607fe003").await;
    wait_until_async(Duration::from_secs(20), || {
        journaled(&gw, "repeat").len() >= 2
    })
    .await
    .unwrap_or_else(|_| panic!("no repeats:\n{}", gw.log_text()));
    gw.kill9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    gw.restart();
    let before = journaled(&gw, "repeat").len();
    wait_until_async(Duration::from_secs(20), || {
        journaled(&gw, "repeat").len() >= before + 2
    })
    .await
    .unwrap_or_else(|_| panic!("repeats stopped after the restart:\n{}", gw.log_text()));
    let times = journaled(&gw, "repeat");
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (1_900..=4_000).contains(&gap),
            "repeats every 2 s across the restart, got a {gap} ms gap: {times:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_before_a_reminder_is_due_reminds_once_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let config = alert_config(dir.path(), broker.port, "1h", "1h")
        .replace("repeat = \"1h\"", "repeat = \"1h\"\nremind = \"3s\"");
    let mut gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;
    let devices = press(broker.port, "timer-devices-4", "0xa4c13899607fe004").await;
    let id = || {
        carers
            .events()
            .iter()
            .find(|e| e["type"] == "atgw.alert.raised")
            .and_then(|e| e["correlationid"].as_str().map(str::to_owned))
    };
    wait_until_async(Duration::from_secs(20), || id().is_some())
        .await
        .unwrap_or_else(|_| panic!("no alert:\n{}", gw.log_text()));
    devices
        .send(
            &format!("atgw/oakview/alerts/{}/ack", id().unwrap()),
            r#"{"by":"carer-2"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        !journaled(&gw, "acknowledged").is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("ack not applied:\n{}", gw.log_text()));
    let acked = journaled(&gw, "acknowledged")[0];
    gw.kill9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    gw.restart();
    wait_until_async(Duration::from_secs(20), || {
        received(&carers, "not_resolved") >= 1
    })
    .await
    .unwrap_or_else(|_| panic!("no reminder after the restart:\n{}", gw.log_text()));
    let reminded = journaled(&gw, "not_resolved");
    let after = reminded[0] - acked;
    assert!(
        (3_000..6_000).contains(&after),
        "reminded {after} ms after the ack (remind = 3s)"
    );
    assert_eq!(reminded.len(), 1, "reminded once so far: {reminded:?}");
}

/// The current status of one alert, from the journal.
fn status(gw: &Gateway, id: &str) -> String {
    gw.column::<String>(&format!("SELECT status FROM alerts WHERE id = '{id}'"))
        .pop()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_but_not_attended_reopens_and_escalates_also_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let config = alert_config(dir.path(), broker.port, "5s", "1h")
        .replace("repeat = \"1h\"", "repeat = \"1h\"\nattend_within = \"3s\"");
    let mut gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;
    let devices = press(broker.port, "timer-devices-5", "0xa4c13899607fe005").await;
    let id = || {
        carers
            .events()
            .iter()
            .find(|e| e["type"] == "atgw.alert.raised")
            .and_then(|e| e["correlationid"].as_str().map(str::to_owned))
    };
    wait_until_async(Duration::from_secs(20), || id().is_some())
        .await
        .unwrap_or_else(|_| panic!("no alert:\n{}", gw.log_text()));
    let id = id().unwrap();
    devices
        .send(
            &format!("atgw/oakview/alerts/{id}/ack"),
            r#"{"by":"carer-2"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        !journaled(&gw, "acknowledged").is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("ack not applied:\n{}", gw.log_text()));
    let acked = journaled(&gw, "acknowledged")[0];
    assert_eq!(status(&gw, &id), "acknowledged");
    // Killed at once, and down past `attend_within`: nobody resolved it.
    gw.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(journaled(&gw, "not_attended").is_empty());
    gw.restart();
    wait_until_async(Duration::from_secs(20), || {
        received(&carers, "not_attended") >= 1
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the forgotten acknowledgement never came back:\n{}",
            gw.log_text()
        )
    });
    let reopened = journaled(&gw, "not_attended");
    assert_eq!(reopened.len(), 1, "reopened once: {reopened:?}");
    assert!(reopened[0] - acked >= 3_000, "not before attend_within");
    assert_eq!(status(&gw, &id), "open");
    let text = carers
        .events()
        .into_iter()
        .find(|e| e["data"]["alert"]["reason"] == "not_attended")
        .and_then(|e| e["data"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(text.starts_with("NOT ATTENDED"), "{text}");
    // It escalates again: the senior hears it its tier delay (5 s) after it reopened.
    wait_until_async(Duration::from_secs(20), || {
        received(&senior, "ack_timeout") >= 1
    })
    .await
    .unwrap_or_else(|_| panic!("no escalation after reopening:\n{}", gw.log_text()));
    let escalated = journaled(&gw, "ack_timeout");
    let after = escalated[0] - reopened[0];
    assert!(
        (4_900..8_000).contains(&after),
        "escalated {after} ms after reopening (tier after 5s)"
    );
    // Acknowledged again and resolved: nothing more comes back.
    devices
        .send(
            &format!("atgw/oakview/alerts/{id}/resolve"),
            r#"{"by":"carer-2","outcome":"assisted"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || status(&gw, &id) == "resolved")
        .await
        .unwrap_or_else(|_| panic!("not resolved:\n{}", gw.log_text()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(journaled(&gw, "not_attended").len(), 1);
}
