//! MQTT acknowledgements wait for the journal, shown deterministically rather than by `kill -9`
//! statistics: the test holds SQLite's write lock on the journal so no commit can happen, and
//! reads the broker's own log (`log_type all`) to see whether atgw sent the PUBACK. While the
//! lock is held there must be none; then atgw is killed, the lock released, and the restarted
//! gateway must receive the message again from its persistent session and journal it once.
//!
//! Both MQTT paths into the journal are covered: a device's alarm on the adapter connection, and
//! a carer's acknowledgement on the sink's control connection.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Where the broker handed `topic` to a gateway connection: (line number, client id, packet id).
fn delivery(broker_log: &str, topic: &str) -> Option<(usize, String, String)> {
    broker_log.lines().enumerate().find_map(|(i, l)| {
        if !l.contains(&format!("'{topic}'")) {
            return None;
        }
        let rest = l.split("Sending PUBLISH to ").nth(1)?;
        let client = rest.split_whitespace().next()?.to_owned();
        // "(d0, q1, r0, m7, 'topic', ...": the packet id follows "m".
        let mid = rest.split(", m").nth(1)?.split(',').next()?.to_owned();
        Some((i, client, mid))
    })
}

/// Whether the broker logged, after line `from`, a PUBACK from `client` for packet `mid`.
fn pubacked(broker_log: &str, from: usize, client: &str, mid: &str) -> bool {
    let needle = format!("Received PUBACK from {client} (Mid: {mid},");
    broker_log.lines().skip(from).any(|l| l.contains(&needle))
}

fn broker_log(broker_dir: &std::path::Path) -> String {
    std::fs::read_to_string(broker_dir.join("mosquitto.log")).unwrap_or_default()
}

/// Holds SQLite's write lock on the journal until dropped (or `release`d).
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(gw: &Gateway) -> WriteLock {
        let c = rusqlite::Connection::open(gw.dir.join("state/atgw.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        WriteLock(c)
    }

    fn release(self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

/// Waits until the broker has handed `topic` to a gateway connection.
async fn wait_delivered(
    broker_dir: &std::path::Path,
    topic: &str,
    gw: &Gateway,
) -> (usize, String, String) {
    wait_until_async(Duration::from_secs(20), || {
        delivery(&broker_log(broker_dir), topic).is_some()
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the broker never delivered {topic}:\n{}\n{}",
            broker_log(broker_dir),
            gw.log_text()
        )
    });
    delivery(&broker_log(broker_dir), topic).unwrap()
}

/// While the journal cannot commit, the gateway must not PUBACK: checked for `hold`.
async fn assert_no_puback_while_locked(
    broker_dir: &std::path::Path,
    (line, client, mid): &(usize, String, String),
    hold: Duration,
    gw: &Gateway,
) {
    let start = Instant::now();
    while start.elapsed() < hold {
        assert!(
            !pubacked(&broker_log(broker_dir), *line, client, mid),
            "{client} sent a PUBACK while the journal could not commit:\n{}\n{}",
            broker_log(broker_dir),
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_message_is_pubacked_only_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    let broker = Mosquitto::start(&broker_dir, "log_type all").unwrap();
    let mut gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "held-devices").await;
    let topic = "zigbee2mqtt/0xa4c13899607feb01";
    let pressed = |g: &Gateway| -> i64 {
        g.journal()
            .query_row(
                "SELECT count(*) FROM events WHERE kind = 'pendant_press'
                   AND json_extract(json, '$.data.raw.topic') = ?1",
                [topic],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };

    let lock = WriteLock::take(&gw);
    devices
        .send(topic, r#"{"action":"emergency","battery":90}"#)
        .await;
    let delivered = wait_delivered(&broker_dir, topic, &gw).await;
    assert_no_puback_while_locked(&broker_dir, &delivered, Duration::from_secs(3), &gw).await;

    // The gateway dies with the message unacknowledged; the broker keeps it for the session.
    gw.kill9();
    lock.release();
    assert_eq!(pressed(&gw), 0, "nothing was committed while locked");
    gw.restart();
    wait_until_async(Duration::from_secs(20), || pressed(&gw) >= 1)
        .await
        .unwrap_or_else(|_| panic!("the alarm was lost:\n{}", gw.log_text()));
    // Redelivered to the same session after the restart, and acknowledged this time.
    let (line, client, _) = &delivered;
    wait_until_async(Duration::from_secs(10), || {
        let log = broker_log(&broker_dir);
        log.lines()
            .skip(*line + 1)
            .any(|l| l.contains(&format!("Received PUBACK from {client} ")))
    })
    .await
    .unwrap_or_else(|_| panic!("no PUBACK after the commit:\n{}", broker_log(&broker_dir)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pressed(&gw), 1, "journaled exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carers_acknowledgement_is_pubacked_only_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    let broker = Mosquitto::start(&broker_dir, "log_type all").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let mut gw = Gateway::start(
        dir.path(),
        &alert_config(dir.path(), broker.port, "10m", "10m"),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "held-carer").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607feb02",
            r#"{"action":"emergency","battery":90}"#,
        )
        .await;
    let raised = |up: &Upstream| {
        up.events()
            .iter()
            .find(|e| e["type"] == "atgw.alert.raised")
            .and_then(|e| e["correlationid"].as_str().map(str::to_owned))
    };
    wait_until_async(Duration::from_secs(20), || raised(&carers).is_some())
        .await
        .unwrap_or_else(|_| panic!("no alert:\n{}", gw.log_text()));
    let id = raised(&carers).unwrap();
    let status = |g: &Gateway| -> String {
        g.journal()
            .query_row("SELECT status FROM alerts WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap()
    };

    let lock = WriteLock::take(&gw);
    let topic = format!("atgw/oakview/alerts/{id}/ack");
    devices.send(&topic, r#"{"by":"carer-4"}"#).await;
    let delivered = wait_delivered(&broker_dir, &topic, &gw).await;
    assert!(
        delivered.1.ends_with("-control"),
        "delivered to the control connection, not {}",
        delivered.1
    );
    assert_no_puback_while_locked(&broker_dir, &delivered, Duration::from_secs(3), &gw).await;

    gw.kill9();
    lock.release();
    assert_eq!(
        status(&gw),
        "open",
        "the ack was not committed while locked"
    );
    gw.restart();
    wait_until_async(Duration::from_secs(20), || status(&gw) == "acknowledged")
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the acknowledgement was lost:\n{}\n{}",
                gw.log_text(),
                broker_log(&broker_dir)
            )
        });
    // Redelivered to the same session after the restart, and acknowledged this time.
    let (line, client, _) = &delivered;
    wait_until_async(Duration::from_secs(10), || {
        let log = broker_log(&broker_dir);
        log.lines()
            .skip(*line + 1)
            .any(|l| l.contains(&format!("Received PUBACK from {client} ")))
    })
    .await
    .unwrap_or_else(|_| panic!("no PUBACK after the commit:\n{}", broker_log(&broker_dir)));
}
