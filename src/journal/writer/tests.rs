//! The writer against real journal files: group commit, replies, caps, timers, dedupe.

use super::*;
use crate::alerts::Policies;
use crate::config::DeviceConfig;
use crate::registry::Registry;
use atgw_sdk::ingest::Submission;
use atgw_sdk::ingest::{Committed, DeadLetter};
use rusqlite::params;
use std::sync::Arc;

/// The gateway `gw-test` at site `oakview` with no sinks, devices or policies, a 1 h dedupe
/// window and the default caps, on the system clock; tests override what they are about.
fn test_setup() -> Setup {
    Setup {
        gateway_id: "gw-test".into(),
        sinks: Vec::new(),
        registry: Arc::new(Registry::new("oakview", &[])),
        rota: std::sync::Arc::new(crate::rota::Rota::new(&[], &[], jiff::tz::TimeZone::UTC)),
        policies: Arc::new(Policies::default()),
        vitals: Arc::new(crate::rules::VitalRules::default()),
        dedupe_window: Duration::from_secs(3600),
        dead_letter_bytes: 1024,
        max_clock_skew: Duration::from_secs(120),
        max_unregistered_devices: 1000,
        link_down_alert_after: std::time::Duration::from_secs(60),
        retention: Default::default(),
        max_bytes: None,
        max_dead_letters: 10_000,
        clock: Arc::new(atgw_sdk::clock::SystemClock),
        metrics: Arc::new(crate::metrics::Metrics::new(&[], &[])),
        commits: Arc::default(),
    }
}

/// A writer on a fresh journal whose commits fail while the `fail` table has a row (a
/// trigger aborts every event insert), with one supervised device that is never heard.
fn failing_writer(dir: &std::path::Path) -> (WriterHandle, std::thread::JoinHandle<()>) {
    failing_writer_reporting(
        dir,
        Arc::new(crate::metrics::Metrics::new(&[], &[])),
        Arc::default(),
    )
}

/// [`failing_writer`] recording into these metrics and commit health.
fn failing_writer_reporting(
    dir: &std::path::Path,
    metrics: Arc<crate::metrics::Metrics>,
    commits: Arc<super::super::commits::CommitHealth>,
) -> (WriterHandle, std::thread::JoinHandle<()>) {
    let path = dir.join(crate::journal::FILE_NAME);
    let opened = crate::journal::open(&path).unwrap();
    opened
        .conn
        .execute_batch(
            "CREATE TABLE fail (x);
             INSERT INTO fail VALUES (1);
             CREATE TRIGGER fail_events BEFORE INSERT ON events
             WHEN EXISTS (SELECT 1 FROM fail)
             BEGIN SELECT RAISE(ABORT, 'database or disk is full (injected)'); END;",
        )
        .unwrap();
    let device = DeviceConfig {
        id: "silent-panel".into(),
        adapter: "alarms".into(),
        match_keys: [("account".to_string(), "4009".to_string())].into(),
        resident: None,
        location: Default::default(),
        check_in: Some(Duration::from_millis(200)),
        not_reading_after: None,
        fhir_patient: None,
        fhir_device: None,
    };
    let setup = Setup {
        registry: Arc::new(Registry::new("oakview", &[device])),
        clock: Arc::new(atgw_sdk::clock::SystemClock),
        metrics,
        commits,
        ..test_setup()
    };
    let (_ingest, rx) = atgw_sdk::ingest::channel(4);
    spawn(opened.conn, setup, rx).unwrap()
}

/// A writer on a fresh journal (`dedupe_window` 1 h) reading `clock`, and its ingest handle.
fn writer_at(
    dir: &std::path::Path,
    clock: atgw_sdk::clock::ManualClock,
) -> (atgw_sdk::Ingest, WriterHandle, std::thread::JoinHandle<()>) {
    let opened = crate::journal::open(&dir.join(crate::journal::FILE_NAME)).unwrap();
    let setup = Setup {
        clock: Arc::new(clock),
        ..test_setup()
    };
    let (ingest, rx) = atgw_sdk::ingest::channel(4);
    let (writer, thread) = spawn(opened.conn, setup, rx).unwrap();
    (ingest.for_adapter("alarms"), writer, thread)
}

/// A pendant press carrying dedupe `key`, retransmitted within `window`.
fn press(key: &str, window: Option<Duration>) -> Submission {
    Submission {
        events: vec![EventDraft::new(
            atgw_sdk::Kind::PendantPress,
            atgw_sdk::Phase::Point,
            "dc09:1234",
            "alarms",
        )],
        dedupe_key: Some(key.into()),
        dedupe_window: window,
        ..Submission::default()
    }
}

#[tokio::test]
async fn a_dedupe_key_counts_as_a_retransmission_only_within_its_submission_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let (ingest, writer, thread) = writer_at(dir.path(), clock.clone());
    let five_min = Some(Duration::from_secs(300));
    let stored = |c: &Committed| matches!(c, Committed::Stored { .. });
    assert!(stored(&ingest.submit(press("k", five_min)).await.unwrap()));
    clock.advance(jiff::SignedDuration::from_secs(60));
    assert_eq!(
        ingest.submit(press("k", five_min)).await.unwrap(),
        Committed::Duplicate,
        "within the adapter's window: a retransmission"
    );
    clock.advance(jiff::SignedDuration::from_secs(300));
    assert!(
        stored(&ingest.submit(press("k", five_min)).await.unwrap()),
        "after the adapter's window the same key is a new event"
    );
    // Without a window of its own the journal's (1 h) applies; a longer one is capped to it.
    assert!(stored(&ingest.submit(press("j", None)).await.unwrap()));
    clock.advance(jiff::SignedDuration::from_secs(1800));
    assert_eq!(
        ingest.submit(press("j", None)).await.unwrap(),
        Committed::Duplicate
    );
    assert!(stored(
        &ingest
            .submit(press("l", Some(Duration::from_secs(86_400))))
            .await
            .unwrap()
    ));
    clock.advance(jiff::SignedDuration::from_secs(3700));
    assert!(stored(
        &ingest
            .submit(press("l", Some(Duration::from_secs(86_400))))
            .await
            .unwrap()
    ));
    drop((ingest, writer));
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dedupe_key_is_kept_for_its_own_window_not_the_journals() {
    let dir = tempfile::tempdir().unwrap();
    let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let (ingest, writer, thread) = writer_at(dir.path(), clock.clone());
    let keys = || -> Vec<String> {
        let c = Connection::open(dir.path().join(crate::journal::FILE_NAME)).unwrap();
        let mut s = c.prepare("SELECT key FROM dedupe ORDER BY key").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    for n in 0..100 {
        ingest
            .submit(press(
                &format!("short-{n:03}"),
                Some(Duration::from_secs(600)),
            ))
            .await
            .unwrap();
    }
    ingest.submit(press("long", None)).await.unwrap();
    assert_eq!(keys().len(), 101);
    // Past the short window (and the once-a-minute prune): only the long key is left.
    clock.advance(jiff::SignedDuration::from_secs(11 * 60));
    ingest
        .submit(press("later", Some(Duration::from_secs(600))))
        .await
        .unwrap();
    assert_eq!(keys(), vec!["later".to_owned(), "long".to_owned()]);
    drop((ingest, writer));
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}

fn offline_raised(path: &std::path::Path) -> i64 {
    let c = Connection::open(path).unwrap();
    c.query_row(
        "SELECT count(*) FROM events WHERE device_id = 'silent-panel'
         AND kind = 'device_offline' AND phase = 'raised'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_missed_check_in_whose_commit_failed_is_raised_once_when_commits_succeed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let (writer, thread) = failing_writer(dir.path());
    // The check-in falls due and its raise fails to commit (retried about once a second).
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(offline_raised(&path), 0);
    let other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute("DELETE FROM fail", []).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while offline_raised(&path) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(
        offline_raised(&path),
        1,
        "the raise rolled back with its batch must be made again, once"
    );
    drop(writer);
    thread.join().unwrap();
}

#[test]
fn a_gateway_alert_nobody_waits_for_is_journaled_once_commits_succeed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let (writer, thread) = failing_writer(dir.path());
    let mut draft = EventDraft::new(
        atgw_sdk::Kind::DeviceFault,
        atgw_sdk::Phase::Raised,
        "sink:carers",
        crate::GATEWAY_ADAPTER,
    );
    draft.data.message = Some("Alert channel `carers` disabled by its receiver".into());
    writer.send(WriterCmd::Gateway {
        draft: Box::new(draft),
        reply: None,
    });
    let faults = || -> i64 {
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.query_row(
            "SELECT count(*) FROM events WHERE json_extract(json, '$.data.device.id') = 'sink:carers'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(faults(), 0, "nothing commits while the disk is full");
    let other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute("DELETE FROM fail", []).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while faults() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(faults(), 1, "journaled after the failure, once");
    drop(writer);
    thread.join().unwrap();
}

#[test]
fn every_item_of_a_failed_batch_is_answered_and_bookkeeping_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let (writer, thread) = failing_writer(dir.path());
    // Hold SQLite's write lock so the writer is busy while the items below queue up: they
    // then form one batch whose first statement fails.
    let other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (hb, _hb_rx) = oneshot::channel();
    writer.send(WriterCmd::Heartbeat { reply: hb });
    std::thread::sleep(Duration::from_millis(100));
    let gateway = |device: &str| {
        let mut d = EventDraft::new(
            atgw_sdk::Kind::DeviceFault,
            atgw_sdk::Phase::Raised,
            device,
            crate::GATEWAY_ADAPTER,
        );
        d.data.message = Some(format!("{device} fault"));
        Box::new(d)
    };
    let (first, first_rx) = oneshot::channel();
    writer.send(WriterCmd::Gateway {
        draft: gateway("sink:first"),
        reply: Some(first),
    });
    let (ack, ack_rx) = oneshot::channel();
    writer.send(WriterCmd::Alert {
        cmd: AlertCommand::Ack {
            id: "no-such-alert".into(),
            by: "carer".into(),
            note: None,
        },
        reply: ack,
    });
    writer.send(WriterCmd::Gateway {
        draft: gateway("sink:later"),
        reply: None,
    });
    std::thread::sleep(Duration::from_millis(200));
    other.execute_batch("ROLLBACK").unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (first, ack) = rt.block_on(async {
        let t = Duration::from_secs(10);
        (
            tokio::time::timeout(t, first_rx).await.unwrap(),
            tokio::time::timeout(t, ack_rx).await.unwrap(),
        )
    });
    assert!(
        matches!(first, Ok(Err(IngestError::Storage(_)))),
        "the failing item is answered with the storage error: {first:?}"
    );
    assert!(
        matches!(ack, Ok(Err(AlertError::Storage(_)))),
        "an item after the failure is answered 'not committed', never dropped: {ack:?}"
    );
    // The gateway event nobody waits for, queued after the failure, is kept and
    // journaled once commits succeed.
    other.execute("DELETE FROM fail", []).unwrap();
    let later = || -> i64 {
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.query_row(
            "SELECT count(*) FROM events WHERE json_extract(json, '$.data.device.id') = 'sink:later'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while later() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(later(), 1, "journaled after the failure, once");
    drop(writer);
    thread.join().unwrap();
}

#[test]
fn failing_commits_make_the_journal_not_ready_are_counted_and_journal_a_gateway_alert_once_commits_succeed()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let metrics = Arc::new(crate::metrics::Metrics::new(&[], &[]));
    let commits = Arc::new(super::super::commits::CommitHealth::default());
    let (writer, thread) = failing_writer_reporting(dir.path(), metrics.clone(), commits.clone());
    let failures = || -> u64 {
        let text = metrics.encode().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("atgw_journal_commit_failures_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    // The silent panel's missed check-in fails to commit, retried about once a second.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        commits.failing_since().is_some(),
        "not ready while commits fail"
    );
    assert!(failures() >= 1, "failed commits are counted");
    let journal_alerts = || -> Vec<(String, Option<String>)> {
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut s = c
            .prepare(
                "SELECT phase, json_extract(json, '$.data.codes.vendor') FROM events
                 WHERE json_extract(json, '$.data.device.id') = 'gateway:gw-test:journal'
                 ORDER BY seq",
            )
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(
        journal_alerts(),
        [],
        "nothing commits while the disk is full"
    );
    let other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute("DELETE FROM fail", []).unwrap();
    // Journaled once commits have kept succeeding for `commits::SETTLE`.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while journal_alerts().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alerts = journal_alerts();
    assert_eq!(alerts.len(), 2, "raised and cleared: {alerts:?}");
    assert_eq!(alerts[0].0, "raised");
    let code = alerts[0].1.as_deref().unwrap_or_default();
    assert!(
        code.starts_with("journal commits failed for ")
            && code.contains("database or disk is full (injected)")
            && code.ends_with(&format!("; {} batches refused", failures())),
        "{code}"
    );
    assert_eq!(alerts[1].0, "cleared");
    assert_eq!(commits.failing_since(), None, "ready again");
    drop(writer);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_beyond_the_cap_delete_the_oldest_are_counted_and_alerted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let opened = crate::journal::open(&path).unwrap();
    let setup = Setup {
        max_dead_letters: 3,
        ..test_setup()
    };
    let (ingest, rx) = atgw_sdk::ingest::channel(4);
    let (writer, thread) = spawn(opened.conn, setup, rx).unwrap();
    let garbage = ingest.for_adapter("alarms");
    for n in 0..7 {
        garbage
            .reject(DeadLetter {
                reason: "bad_crc".into(),
                detail: format!("garbage {n}"),
                origin: "udp:127.0.0.1:9".into(),
                raw: vec![0x5a; 100],
            })
            .await
            .unwrap();
    }
    let c = Connection::open(&path).unwrap();
    let kept: Vec<String> = c
        .prepare("SELECT detail FROM dead_letters ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        kept,
        ["garbage 4", "garbage 5", "garbage 6"],
        "the newest are kept"
    );
    let pruned: String = c
        .query_row(
            "SELECT value FROM adapter_state WHERE adapter = ?1 AND key = ?2",
            params![crate::GATEWAY_ADAPTER, DEAD_LETTERS_PRUNED_KEY],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pruned, "4", "what was deleted is counted");
    let alerts: i64 = c
        .query_row(
            "SELECT count(*) FROM events
             WHERE json_extract(json, '$.data.device.id') = 'gateway:gw-test:dead_letters'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alerts, 1, "one gateway alert when the cap is reached");
    drop((garbage, ingest, writer));
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn every_commit_wakes_the_journal_followers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let (ingest, writer, thread) = writer_at(dir.path(), clock);
    let mut commits = writer.commits();
    commits.borrow_and_update();
    ingest.submit(press("k", None)).await.unwrap();
    assert!(
        commits.has_changed().unwrap(),
        "a committed event did not wake the console's live stream"
    );
    drop((ingest, writer));
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}

/// Rows of `outbox` in the journal at `path`, read by another connection.
fn outbox_rows(path: &std::path::Path) -> i64 {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn releases_alone_wait_for_the_next_batch_or_their_delay_and_a_flush_carries_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let (ingest, writer, thread) = writer_at(dir.path(), clock);
    ingest.submit(press("a", None)).await.unwrap();
    ingest.submit(press("b", None)).await.unwrap();
    // Two undelivered rows (the test setup has no sinks, so they are added beside it).
    let ids: Vec<i64> = {
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.execute(
            "INSERT INTO outbox (sink, event_seq, lane) SELECT 'upstream', seq, 0 FROM events",
            [],
        )
        .unwrap();
        let mut s = c.prepare("SELECT id FROM outbox ORDER BY id").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(ids.len(), 2);

    // A release alone is held, then committed by itself once its delay has passed.
    let sent = std::time::Instant::now();
    writer.send(WriterCmd::Delivered { ids: vec![ids[0]] });
    tokio::time::sleep(Duration::from_millis(100)).await;
    if sent.elapsed() < RELEASE_DELAY / 2 {
        assert_eq!(outbox_rows(&path), 2, "a lone release waits for company");
    }
    let deadline = sent + RELEASE_DELAY + Duration::from_secs(5);
    while outbox_rows(&path) == 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outbox_rows(&path), 1, "released within its delay");

    // Any other work carries held releases: here a flush, answered after their commit.
    writer.send(WriterCmd::Delivered { ids: vec![ids[1]] });
    writer.flush().await;
    assert_eq!(outbox_rows(&path), 0, "the flush's batch released the row");
    drop((ingest, writer));
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn releases_held_when_the_writer_stops_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::journal::FILE_NAME);
    let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let (ingest, writer, thread) = writer_at(dir.path(), clock);
    ingest.submit(press("a", None)).await.unwrap();
    let id: i64 = {
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.query_row(
            "INSERT INTO outbox (sink, event_seq, lane) SELECT 'upstream', seq, 0 FROM events
             RETURNING id",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    writer.send(WriterCmd::Delivered { ids: vec![id] });
    drop((ingest, writer));
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        outbox_rows(&path),
        0,
        "released at the stop, not redelivered next start"
    );
}

fn submit(submissions: Vec<Submission>) -> Item {
    let (reply, _) = oneshot::channel();
    Item::Ingest(IngestRequest::Submit {
        adapter: "a".into(),
        submissions,
        reply,
    })
}

fn readings(n: usize) -> Submission {
    let mut e = EventDraft::new(
        atgw_sdk::Kind::VitalSign,
        atgw_sdk::Phase::Point,
        "ble:1",
        "zigbee",
    );
    e.data.priority = atgw_sdk::Priority::Info;
    Submission {
        events: vec![e; n],
        ..Submission::default()
    }
}

fn sizes(items: &[Item]) -> Vec<usize> {
    items
        .iter()
        .map(|i| match i {
            Item::Ingest(IngestRequest::Submit { submissions, .. }) => {
                submissions.iter().map(|s| s.events.len()).sum()
            }
            _ => usize::MAX,
        })
        .collect()
}

#[test]
fn an_alarm_gathered_with_bulk_telemetry_commits_first_and_alone() {
    let (urgent, bulk) = split_urgent(vec![
        submit(vec![readings(BULK_EVENTS)]),
        submit(vec![press("k", None)]),
        Item::Cmd(WriterCmd::Delivered { ids: vec![1] }),
        submit(vec![readings(3)]),
    ]);
    assert_eq!(
        sizes(&urgent),
        [1, usize::MAX, 3],
        "in their order, small telemetry too"
    );
    assert_eq!(sizes(&bulk), [BULK_EVENTS]);
    // Only bulk, or no bulk: one commit, as gathered.
    let (urgent, bulk) = split_urgent(vec![
        submit(vec![readings(BULK_EVENTS)]),
        submit(vec![readings(BULK_EVENTS)]),
    ]);
    assert_eq!((urgent.len(), bulk.len()), (2, 0));
    let (urgent, bulk) = split_urgent(vec![
        submit(vec![press("k", None)]),
        submit(vec![readings(3)]),
    ]);
    assert_eq!((urgent.len(), bulk.len()), (2, 0));
    // A bulk submission carrying one alarm is not bulk: it commits with the urgent.
    let mut mixed = readings(BULK_EVENTS);
    mixed.events.extend(press("k2", None).events);
    let (urgent, bulk) = split_urgent(vec![
        submit(vec![mixed]),
        submit(vec![readings(BULK_EVENTS)]),
    ]);
    assert_eq!(
        (sizes(&urgent), sizes(&bulk)),
        (vec![BULK_EVENTS + 1], vec![BULK_EVENTS])
    );
}
