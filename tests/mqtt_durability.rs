//! No alert is lost: the daemon acknowledges a device only after commit, so `kill -9` mid-stream
//! and broker restarts lose nothing, and redeliveries are journaled once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Every journaled event's raw payload `seq`, and the source sequence numbers.
fn journal_seqs(g: &Gateway) -> (Vec<i64>, Vec<i64>) {
    let c = g.journal();
    let mut s = c
        .prepare("SELECT json, source_seq FROM events WHERE source = 'urn:atgw:gw-test:zigbee'")
        .unwrap();
    let rows: Vec<(String, i64)> = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut payload_seqs = Vec::new();
    let mut source_seqs = Vec::new();
    for (json, sseq) in rows {
        let v: Value = serde_json::from_str(&json).unwrap();
        if let Some(n) = v["data"]["raw"]["payload"]["seq"].as_i64() {
            payload_seqs.push(n);
        }
        source_seqs.push(sseq);
    }
    (payload_seqs, source_seqs)
}

fn assert_exactly_once(label: &str, seqs: &[i64], n: i64) {
    let distinct: HashSet<i64> = seqs.iter().copied().collect();
    assert_eq!(
        distinct.len() as i64,
        n,
        "{label}: distinct messages journaled"
    );
    assert_eq!(
        seqs.len() as i64,
        n,
        "{label}: a message was journaled twice"
    );
}

fn assert_sequence_gapless(source_seqs: &mut [i64]) {
    source_seqs.sort_unstable();
    for (i, s) in source_seqs.iter().enumerate() {
        assert_eq!(
            *s,
            i as i64 + 1,
            "source sequence numbers are unique and gapless"
        );
    }
}

fn upstream_distinct(up: &Upstream) -> HashSet<String> {
    up.events()
        .iter()
        .filter(|e| e["source"] == "urn:atgw:gw-test:zigbee")
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect()
}

fn journal_ids(g: &Gateway) -> HashSet<String> {
    g.column::<String>("SELECT id FROM events WHERE source = 'urn:atgw:gw-test:zigbee'")
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_journals_each_message_once() {
    const N: i64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let mut gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "load-devices").await;

    let publishing = {
        let client = devices.client.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let topic = format!("zigbee2mqtt/pendant-{}", i % 25);
                let body = format!(r#"{{"action":"emergency","seq":{i}}}"#);
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, body)
                    .await
                    .unwrap();
            }
        })
    };
    // Kill it while it is busy: some messages committed, many in flight, many still queued.
    wait_until_async(Duration::from_secs(60), || gw.event_count() >= 2_000)
        .await
        .expect("progress before kill");
    gw.kill9();
    let at_kill = gw.event_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.restart();
    publishing.await.unwrap();
    wait_until_async(Duration::from_secs(60), || devices.acked() >= N as u64)
        .await
        .expect("broker accepted all");

    wait_until_async(Duration::from_secs(120), || gw.event_count() >= N)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "journaled {} of {N} (at kill: {at_kill})\n{}",
                gw.event_count(),
                gw.log_text()
            )
        });
    // Give any redelivery a chance to (wrongly) add a row before we count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (payload_seqs, mut source_seqs) = journal_seqs(&gw);
    assert_exactly_once("after kill -9", &payload_seqs, N);
    assert_sequence_gapless(&mut source_seqs);
    assert!(
        at_kill < N,
        "the kill happened mid-stream ({at_kill} of {N} journaled)"
    );

    let ids = journal_ids(&gw);
    wait_until_async(Duration::from_secs(120), || {
        upstream_distinct(&upstream).len() >= N as usize
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "upstream received {} distinct of {N}",
            upstream_distinct(&upstream).len()
        )
    });
    assert_eq!(
        upstream_distinct(&upstream),
        ids,
        "upstream holds exactly the journaled event ids"
    );
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing_in_either_direction() {
    const HALF: i64 = 1_500;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "restart-devices").await;

    for i in 0..HALF {
        devices
            .send(
                &format!("zigbee2mqtt/pull-cord-{}", i % 10),
                format!(r#"{{"action":"emergency","seq":{i}}}"#),
            )
            .await;
    }
    wait_until_async(Duration::from_secs(30), || devices.acked() >= HALF as u64)
        .await
        .unwrap();
    // Stop the broker while atgw is still consuming and publishing upstream.
    wait_until_async(Duration::from_secs(30), || gw.event_count() >= 100)
        .await
        .unwrap();
    broker.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    broker.restart().unwrap();
    for i in HALF..2 * HALF {
        devices
            .send(
                &format!("zigbee2mqtt/pull-cord-{}", i % 10),
                format!(r#"{{"action":"emergency","seq":{i}}}"#),
            )
            .await;
    }
    wait_until_async(Duration::from_secs(60), || {
        devices.acked() >= 2 * HALF as u64
    })
    .await
    .expect("broker accepted all");
    wait_until_async(Duration::from_secs(60), || gw.event_count() >= 2 * HALF)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "journaled {} of {}\n{}",
                gw.event_count(),
                2 * HALF,
                gw.log_text()
            )
        });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (payload_seqs, _) = journal_seqs(&gw);
    assert_exactly_once("after broker restart", &payload_seqs, 2 * HALF);
    let ids = journal_ids(&gw);
    wait_until_async(Duration::from_secs(60), || {
        upstream_distinct(&upstream).len() >= ids.len()
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "upstream received {} of {}",
            upstream_distinct(&upstream).len(),
            ids.len()
        )
    });
    assert_eq!(upstream_distinct(&upstream), ids);
    assert!(
        gw.log_text().contains("broker connection lost"),
        "the outage was noticed"
    );
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_restored_when_the_broker_forgot_the_session() {
    let dir = tempfile::tempdir().unwrap();
    // No persistence: a restarted broker has forgotten every session and subscription.
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "persistence false").unwrap();
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    {
        gw.wait_subscribed().await;
        let devices = Publisher::connect(broker.port, "forgetful-devices").await;
        devices
            .send("zigbee2mqtt/pendant-a", r#"{"action":"emergency","seq":1}"#)
            .await;
        wait_until_async(Duration::from_secs(20), || gw.event_count() >= 1)
            .await
            .unwrap();
    }
    broker.restart().unwrap();
    wait_until_async(Duration::from_secs(20), || {
        gw.log_text().matches("session_present=false").count() >= 4
    })
    .await
    .unwrap_or_else(|_| panic!("atgw did not reconnect:\n{}", gw.log_text()));
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let devices = Publisher::connect(broker.port, "forgetful-devices-2").await;
    for i in 2..=50 {
        devices
            .send(
                "zigbee2mqtt/pendant-a",
                format!(r#"{{"action":"emergency","seq":{i}}}"#),
            )
            .await;
    }
    wait_until_async(Duration::from_secs(30), || gw.event_count() >= 50)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "resubscribe failed: {} journaled\n{}",
                gw.event_count(),
                gw.log_text()
            )
        });
    wait_until_async(Duration::from_secs(30), || upstream.count() >= 49)
        .await
        .unwrap_or_else(|_| panic!("upstream got {} of 49", upstream.count()));
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_without_a_broker_and_connects_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    broker.stop();
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    wait_until_async(Duration::from_secs(20), || {
        gw.log_text().contains("unreachable")
    })
    .await
    .unwrap_or_else(|_| panic!("the missing broker is reported:\n{}", gw.log_text()));
    broker.restart().unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let devices = Publisher::connect(broker.port, "late-devices").await;
    // The broker keeps messages for atgw's session only once atgw has subscribed.
    wait_until_async(Duration::from_secs(20), || {
        gw.log_text().contains("subscribed to")
    })
    .await
    .unwrap_or_else(|_| panic!("never subscribed:\n{}", gw.log_text()));
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || upstream.count() >= 1)
        .await
        .unwrap_or_else(|_| panic!("nothing flowed:\n{}", gw.log_text()));
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_is_kept_aside_and_a_gateway_alert_raised() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let garbage = b"SQLite format 3\0 but then nonsense ".repeat(500);
    std::fs::write(dir.path().join("state/atgw.db"), &garbage).unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("atgw.db.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "the corrupt file is kept for inspection");
    assert_eq!(
        std::fs::read(dir.path().join("state").join(&kept[0])).unwrap(),
        garbage
    );
    wait_until_async(Duration::from_secs(20), || {
        upstream.events().iter().any(|e| {
            e["data"]["kind"] == "device_fault" && e["source"] == "urn:atgw:gw-test:gateway"
        })
    })
    .await
    .unwrap_or_else(|_| panic!("no gateway alert upstream:\n{}", gw.log_text()));
    // And alarms keep flowing on the fresh journal.
    let devices = Publisher::connect(broker.port, "after-corruption").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        upstream
            .events()
            .iter()
            .any(|e| e["data"]["kind"] == "pendant_press")
    })
    .await
    .unwrap();
    broker.stop();
}

/// The adapter holds at most `max_held_bytes` of messages between read and commit and stops
/// reading when it is full (the broker keeps the rest). A backlog many times that size, queued
/// while the gateway was down, must still drain completely and exactly once: the window returns
/// its room after each commit, and nothing waits on the poll task that would need to poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_many_times_the_memory_window_drains_exactly_once() {
    const N: i64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    // 64 KiB: room for about 260 of these messages (payload, topic and 192 bytes each).
    let cfg = config(dir.path(), broker.port, "").replacen(
        "reconnect_max = \"1s\"\n",
        "reconnect_max = \"1s\"\nmax_held_bytes = 65536\n",
        1,
    );
    assert!(
        cfg.contains("max_held_bytes = 65536\n\n[[sink]]"),
        "in the adapter's table"
    );
    let mut gw = Gateway::start(dir.path(), &cfg);
    gw.wait_subscribed().await;
    gw.kill9();
    let devices = Publisher::connect(broker.port, "backlog-devices").await;
    for i in 0..N {
        devices
            .client
            .publish(
                format!("zigbee2mqtt/pendant-{}", i % 25),
                rumqttc::QoS::AtLeastOnce,
                false,
                format!(r#"{{"action":"emergency","seq":{i}}}"#),
            )
            .await
            .unwrap();
    }
    wait_until_async(Duration::from_secs(60), || devices.acked() >= N as u64)
        .await
        .expect("broker queued the backlog");
    gw.restart();
    wait_until_async(Duration::from_secs(120), || gw.event_count() >= N)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "journaled {} of {N} through a 64 KiB window\n{}",
                gw.event_count(),
                gw.log_text()
            )
        });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (payload_seqs, mut source_seqs) = journal_seqs(&gw);
    assert_exactly_once("through the window", &payload_seqs, N);
    assert_sequence_gapless(&mut source_seqs);
    broker.stop();
}
