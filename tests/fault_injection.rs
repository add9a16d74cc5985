//! Fault injection (issue "Fault-injection suite"): the real binary, a private Mosquitto and
//! DC-09 over real TCP, under mixed load — pendant presses that open alerts (a policy pages the
//! carers' webhook), telemetry, and now and then a malformed message — with one fault per
//! scenario:
//! - `kill -9` twenty times at seeded random moments (`ATGW_FAULT_SEED` repeats a schedule);
//! - the device broker (which also carries the upstream sink) stopped and started twice;
//! - sink outages: the webhook refusing connections, then answering 500; the upstream broker
//!   (a second one) stopped;
//! - disk full: `data_dir` on a 64 MiB tmpfs filled by another file (kept full while held),
//!   with a supervised device whose missed check-in falls due meanwhile;
//! - a journal file with pages overwritten in the middle while the daemon is stopped;
//! - 1,000 idle TCP connections on the DC-09 port from 241 loopback addresses, each re-opened
//!   when the daemon closes it (here every panel frame must also be ACKed, not only not lost).
//!
//! Each scenario ends with loss accounting, printed and added to the suite's report
//! (`$CARGO_TARGET_TMPDIR/fault-report.txt`, which `.ci/run` prints after the tests):
//! - **accepted**: an MQTT message the broker PUBACKed to its device (QoS 1; atgw PUBACKs the
//!   broker only after commit, so anything it let go uncommitted is missing below); a DC-09
//!   frame atgw ACKed. Messages without an acknowledgement do not count, whatever became of
//!   them. Malformed messages are accounted apart: each must be in `dead_letters` exactly once.
//! - **journaled**: the accepted message's stable key has a row in `events` (MQTT: the `seq`
//!   the payload carries; DC-09: the frame's message text, which holds account, seq, event and
//!   timestamp).
//! - **delivered**: that row's event id reached every stream sink (upstream MQTT and the file).
//! - **lost**: accepted but not journaled, or journaled but never delivered.
//! - **alerts**: alerts in the journal; each one's `raised` event must reach the carers' webhook
//!   and upstream.
//! - **dup alerts**: a second alert for one incident (device and kind; no alert is resolved in
//!   these runs, so a later press must attach to the open alert), counted from the `alerts`
//!   table and from distinct `raised` event ids seen anywhere.
//! - **redeliveries**: the same event id received again by a sink: allowed (at-least-once;
//!   receivers deduplicate by id), reported separately.
//!
//! Where nothing can commit any more (the daemon just killed, the disk held full), every DC-09
//! ACK given so far is also checked against the journal at that moment: an ACK before its
//! commit would show there even if a later retransmission filled the gap.
//!
//! Loads are modest (about 140 messages/s together) so the whole suite stays within a few
//! minutes on two shared cores in a debug build.
//!
//! # Layout
//! This file holds the scenarios; the harness is in `fault_injection/`:
//! - `devices`: MQTT devices and DC-09 panels under load, and the ledger of what was accepted.
//! - `sinks`: the carers' webhook.
//! - `world`: one scenario's daemon, brokers, tmpfs and config; kill, restart, broker control.
//! - `accounting`: what the journal holds, and accepted vs journaled vs delivered.
//! - `report`: the loss table and the no-loss assertions.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atgw_sia_dc09::frame::Token;
use common::*;
use rand::{Rng, SeedableRng};

#[path = "fault_injection/accounting.rs"]
mod accounting;
#[path = "fault_injection/devices.rs"]
mod devices;
#[path = "fault_injection/report.rs"]
mod report;
#[path = "fault_injection/sinks.rs"]
mod sinks;
#[path = "fault_injection/world.rs"]
mod world;

use accounting::*;
use devices::*;
use report::*;
use world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_under_mixed_load_loses_no_accepted_message_and_raises_each_alert_once()
{
    let seed: u64 = std::env::var("ATGW_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill -9 schedule seed {seed} (ATGW_FAULT_SEED={seed} repeats the schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut w = World::start(Setup::default()).await.unwrap();
    let load = Load::start(&w, "k", &ACCOUNTS[..3]).await;
    let mut violations = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..1_500))).await;
        w.gw.kill9();
        violations.extend(tokio::task::block_in_place(|| acked_but_not_journaled(&w)));
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        w.restart_gateway();
    }
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    let took = w.started.elapsed();
    let (_, _, resent, _) = w.ledger.summary();
    report(
        1,
        "kill -9 x20",
        &row(
            "kill -9 x20",
            &a,
            took,
            &format!("seed {seed}; {resent} messages sent again by devices"),
        ),
    );
    assert!(
        violations.is_empty(),
        "DC-09 frames ACKed but not journaled when the daemon died: {violations:?}"
    );
    assert_no_loss("kill -9 x20", &w, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_broker_stopped_and_started_twice_under_load_loses_nothing() {
    let mut w = World::start(Setup::default()).await.unwrap();
    let load = Load::start(&w, "b", &ACCOUNTS[..3]).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| w.broker.stop());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        tokio::task::block_in_place(|| w.broker.restart()).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    let (_, _, resent, _) = w.ledger.summary();
    report(
        2,
        "broker stop/start x2",
        &row(
            "broker stop/start x2",
            &a,
            w.started.elapsed(),
            &format!("ingress and upstream on the stopped broker; {resent} sent again"),
        ),
    );
    assert!(
        w.gw.log_text().contains("broker connection lost"),
        "the outage was noticed"
    );
    assert_no_loss("broker stop/start", &w, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_outages_webhook_500_then_refused_and_upstream_broker_down_lose_nothing() {
    let mut w = World::start(Setup {
        separate_upstream: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let load = Load::start(&w, "s", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Refused first (its failure is the first one logged), then up but answering 500.
    w.hook.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.hook.status.store(500, Ordering::SeqCst);
    w.hook.up().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.hook.status.store(200, Ordering::SeqCst);
    let up_broker = w.up_broker.as_mut().expect("separate upstream broker");
    tokio::task::block_in_place(|| up_broker.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| up_broker.restart()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    let refused = w.hook.refused_answers();
    report(
        3,
        "sink outages",
        &row(
            "sink outages",
            &a,
            w.started.elapsed(),
            &format!(
                "webhook refused connections 3s, then 500 for 3s ({refused} requests); upstream broker down 3s"
            ),
        ),
    );
    assert!(refused > 0, "the webhook's 500 phase was exercised");
    assert!(
        w.gw.log_text()
            .contains("webhook delivery failed, will retry: cannot connect"),
        "the webhook's refused phase was exercised:\n{}",
        w.log_tail()
    );
    assert!(
        w.gw.log_text().contains("upstream broker connection lost"),
        "the upstream broker outage was noticed"
    );
    assert_no_loss("sink outages", &w, &a);
}

/// The gateway's own alerts about its sinks (`sink:<name>`), raised ones.
fn sink_alerts_raised(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM events WHERE kind = 'device_fault' AND phase = 'raised'
                 AND json_extract(json, '$.source') = 'urn:atgw:gw-test:gateway'
                 AND json_extract(json, '$.data.device.id') LIKE 'sink:%'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(-1)
}

/// A short `sink_failing_alert_after`, so a quiet period longer than it fits in a test.
const SINK_ALERT_AFTER_2S: &str = "\n[alerts]\nsink_failing_alert_after = \"2s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_period_longer_than_the_sink_alert_threshold_then_alarms_raises_no_gateway_alert() {
    let w = World::start(Setup {
        extra_config: SINK_ALERT_AFTER_2S,
        ..Default::default()
    })
    .await
    .unwrap();
    // Nothing to deliver for twice the threshold, then the mixed load, twice (on other panels
    // the second time: a panel that starts again starts its sequence numbers again).
    for (round, accounts) in [("q", &ACCOUNTS[..3]), ("q2-", &ACCOUNTS[3..])] {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let load = Load::start(&w, round, accounts).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        load.finish().await;
    }
    let a = settle(&w, &JournalView::default()).await;
    let false_alerts = sink_alerts_raised(&w.journal_path());
    let error_lines = w.gw.log_text().matches(" ERROR ").count();
    report(
        6,
        "quiet period then alarm",
        &row(
            "quiet period then alarm",
            &a,
            w.started.elapsed(),
            &format!(
                "2 x (4s with nothing to deliver, sink_failing_alert_after 2s, then 3s of load): \
                 {false_alerts} false gateway alerts, {error_lines} ERROR lines"
            ),
        ),
    );
    assert_eq!(
        false_alerts,
        0,
        "a quiet period raised gateway sink alerts:\n{}",
        w.log_tail()
    );
    assert_eq!(error_lines, 0, "errors logged:\n{}", w.log_tail());
    assert_no_loss("quiet period then alarm", &w, &a);
}

/// `device_offline` alerts of the silent panel.
fn silent_panel_alerts(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM alerts WHERE device_id = 'silent-panel' AND kind = 'device_offline'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// The gateway's alerts about the journal (raised ones): their `codes.vendor`.
fn journal_outage_alerts(db: &Path) -> Vec<String> {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut s) = c.prepare(
        "SELECT json_extract(json, '$.data.codes.vendor') FROM events
         WHERE json_extract(json, '$.data.device.id') = 'gateway:gw-test:journal'
         AND json_extract(json, '$.source') = 'urn:atgw:gw-test:gateway' AND phase = 'raised'",
    ) else {
        return Vec::new();
    };
    s.query_map([], |r| r.get::<_, Option<String>>(0))
        .map(|rows| rows.filter_map(|r| r.ok().flatten()).collect())
        .unwrap_or_default()
}

/// A supervised panel that never reports: its `device_offline` falls due while the disk is full.
const SILENT_PANEL: &str = r#"
[[device]]
id = "silent-panel"
adapter = "alarms"
match = { account = "4009" }
location = { area = "north", room = "9" }
check_in = "5s"

[[policy]]
name = "supervision"
match = { kind = ["device_offline"] }
notify = ["carers"]
"#;
/// Its check-in interval.
const SILENT_PANEL_CHECK_IN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_withholds_acks_keeps_running_and_recovers_without_loss_when_space_returns() {
    let mut w = match World::start(Setup {
        tmpfs_mib: Some(64),
        extra_config: SILENT_PANEL,
        audit_in_data_dir: true,
        api: true,
        ..Default::default()
    })
    .await
    {
        Ok(w) => w,
        Err(e) if std::env::var_os("CI").is_none() => {
            // Mounting needs root (CAP_SYS_ADMIN); CI runs as root and must run this.
            eprintln!("SKIPPED disk-full scenario: cannot mount a tmpfs here ({e})");
            report(
                4,
                "disk full (tmpfs)",
                &format!(
                    "{:<25} | skipped: cannot mount a tmpfs ({e})",
                    "disk full (tmpfs)"
                ),
            );
            return;
        }
        Err(e) => panic!("the disk-full scenario mounts a tmpfs and could not: {e}"),
    };
    let load = Load::start(&w, "f", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failures_before = w.gw.log_text().matches("journal commit failed").count();
    let ballast = w.dir.path().join("state/ballast");
    let mut filled = fill_filesystem(&ballast);
    let full_at = Instant::now();
    // Wait until the journal hits the wall, then keep the disk full a while longer, taking
    // back whatever space frees up (as the other writer that filled it would).
    let hit = wait_until_async(Duration::from_secs(30), || {
        filled += fill_filesystem(&ballast);
        w.gw.log_text().matches("journal commit failed").count() > failures_before
    })
    .await;
    let dc09_acked = |w: &World| {
        w.ledger
            .accepted()
            .iter()
            .filter(|k| k.starts_with('d'))
            .count()
    };
    let (acked_at_wall, resent_at_wall) = (dc09_acked(&w), w.ledger.summary().2);
    // While commits fail: the journal is not ready, and a transmitter hears a NAK, not silence.
    // (Now and then a commit fits into space the WAL already holds, so both are probed until
    // seen; an ACK a probe gets then is for a committed frame.)
    let mut ready_while_full = w.journal_ready().await;
    let mut answers_while_full = vec![dc09_answer(w.dc09, ACCOUNTS[5], 0).await];
    let mut violations = std::collections::BTreeSet::new();
    let mut probes = 0;
    // Held at least 4 s, and past the silent panel's missed check-in.
    let hold_until = (Instant::now() + Duration::from_secs(4))
        .max(w.started + SILENT_PANEL_CHECK_IN + Duration::from_millis(1_500));
    let due_while_full = full_at < w.started + SILENT_PANEL_CHECK_IN;
    while Instant::now() < hold_until {
        filled += fill_filesystem(&ballast);
        if ready_while_full != (503, false) {
            ready_while_full = w.journal_ready().await;
        }
        if !answers_while_full.contains(&Some(Token::Nak)) {
            let n = answers_while_full.len() as u64;
            answers_while_full.push(dc09_answer(w.dc09, ACCOUNTS[5], n).await);
        }
        // Whatever a panel was ACKed must be committed, full disk or not.
        violations.extend(tokio::task::block_in_place(|| {
            let acked = w.ledger.accepted();
            let j = scan_journal(&w.journal_path(), &w.ledger);
            acked
                .into_iter()
                .filter(|k| k.starts_with('d') && !j.by_key.contains_key(k))
                .collect::<Vec<_>>()
        }));
        probes += 1;
        assert!(
            w.gw.is_running(),
            "atgw exited on a full disk:\n{}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let acked_while_full = dc09_acked(&w) - acked_at_wall;
    let resent_while_full = w.ledger.summary().2 - resent_at_wall;
    let failures = w.gw.log_text().matches("journal commit failed").count() - failures_before;
    let failed_batches = w.commit_failures().await;
    std::fs::remove_file(&ballast).unwrap();
    let full_for = full_at.elapsed();
    let ready_again = wait_until_async(Duration::from_secs(20), || {
        !journal_outage_alerts(&w.journal_path()).is_empty()
    })
    .await;
    let outage_alerts = journal_outage_alerts(&w.journal_path());
    let ready_after = w.journal_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    assert!(w.gw.is_running(), "atgw exited:\n{}", w.log_tail());
    // The check-in the silent panel missed while the disk was full still raises, once.
    let offline = wait_until_async(Duration::from_secs(10), || {
        silent_panel_alerts(&w.journal_path()) > 0
    })
    .await;
    let offline_alerts = silent_panel_alerts(&w.journal_path());

    // The journal survived: a clean stop, an intact file, and a restart that keeps it.
    let status = tokio::task::block_in_place(|| w.gw.terminate());
    let integrity: String = rusqlite::Connection::open_with_flags(
        w.journal_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    .unwrap_or_else(|e| e.to_string());
    w.restart_gateway();
    let moved_aside = w.gw.log_text().contains("journal was corrupt");
    let notes = format!(
        "tmpfs 64 MiB, full for {:.1}s ({} MiB ballast): {failed_batches} commits failed (ENOSPC), \
         {failures} log lines; /readyz while full {ready_while_full:?}, after {ready_after:?}; \
         probe frames got {answers_while_full:?}; in the \
         4s held full {acked_while_full} DC-09 ACKs ({} not journaled at the time) and \
         {resent_while_full} frames retransmitted for lack of one; after: {status}, \
         integrity_check {integrity}, reopened as is; check-in missed while full: \
         {offline_alerts} device_offline alert; audit file (same disk): {} garbled lines",
        full_for.as_secs_f64(),
        filled >> 20,
        violations.len(),
        audit_garbled(&w.audit),
    );
    report(
        4,
        "disk full (tmpfs)",
        &row("disk full (tmpfs)", &a, w.started.elapsed(), &notes),
    );
    assert!(
        hit.is_ok(),
        "the journal never hit the full disk ({filled} bytes of ballast):\n{}",
        w.log_tail()
    );
    assert!(probes > 0);
    assert_eq!(
        ready_while_full,
        (503, false),
        "/readyz reports the journal not ready while commits fail"
    );
    assert!(
        answers_while_full.contains(&Some(Token::Nak))
            && answers_while_full
                .iter()
                .all(|a| matches!(a, Some(Token::Nak | Token::Ack))),
        "a DC-09 frame that cannot be committed gets a NAK, never silence: {answers_while_full:?}"
    );
    assert!(
        failed_batches >= 5 && failures * 5 <= failed_batches as usize,
        "{failed_batches} failed commits counted, {failures} `journal commit failed` log lines: \
         the log is rate-limited and the counter counts them all"
    );
    assert!(
        ready_again.is_ok() && outage_alerts.len() == 1,
        "one gateway alert about the outage once commits succeed: {outage_alerts:?}\n{}",
        w.log_tail()
    );
    assert!(
        outage_alerts[0].starts_with("journal commits failed for ")
            && outage_alerts[0].contains("batches refused"),
        "{outage_alerts:?}"
    );
    assert!(
        ready_after.1,
        "the journal is ready again once commits succeed"
    );
    assert!(
        due_while_full,
        "the silent panel's check-in fell due before the disk was full; the test timing is off"
    );
    assert!(
        offline.is_ok() && offline_alerts == 1,
        "a check-in missed while the disk was full raised {offline_alerts} device_offline alerts \
         once space returned (want 1):\n{}",
        w.log_tail()
    );
    assert!(
        violations.is_empty(),
        "DC-09 frames ACKed while the disk was full but not journaled: {violations:?}"
    );
    assert!(
        status.success(),
        "atgw stopped cleanly after the disk-full episode: {status}"
    );
    assert_eq!(
        integrity, "ok",
        "the journal is intact after the disk-full episode"
    );
    assert!(
        !moved_aside,
        "the journal was not taken for corrupt after the episode"
    );
    assert_no_loss("disk full", &w, &a);
}

/// What the journal owed and held when the gateway stopped: rows per sink still in the
/// outbox, unresolved alerts, and those of them with a timer.
fn owed(db: &Path) -> (i64, i64, i64, i64) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    (
        q("SELECT count(*) FROM events"),
        q("SELECT count(*) FROM outbox"),
        q("SELECT count(*) FROM alerts WHERE status != 'resolved'"),
        q(
            "SELECT count(*) FROM alerts a WHERE status IN ('open', 'acknowledged')
           AND EXISTS (SELECT 1 FROM alert_timers t WHERE t.alert_id = a.id)",
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_corrupted_while_deliveries_are_owed_is_salvaged_alerted_and_loses_nothing() {
    let mut w = World::start(Setup {
        separate_upstream: true,
        // Into the alarms policy: every open alert has a timer (that must survive).
        extra_config: "repeat = \"1h\"\n",
        ..Default::default()
    })
    .await
    .unwrap();
    let load = Load::start(&w, "c", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Both sinks go away while devices go on: what they are owed is only in the journal.
    let up_broker = w.up_broker.as_mut().expect("separate upstream broker");
    tokio::task::block_in_place(|| up_broker.stop());
    w.hook.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.finish().await;
    let accepted_before = w.ledger.accepted().len();
    let status = tokio::task::block_in_place(|| w.gw.terminate());
    assert!(status.success());
    let path = w.journal_path();
    let (events, outbox, live_alerts, timed_alerts) = owed(&path);
    assert!(
        outbox > 300 && live_alerts > 0 && timed_alerts > 0,
        "at stake: {outbox} deliveries owed, {live_alerts} unresolved alerts ({timed_alerts} with timers)"
    );

    // Overwrite the root page of every index (the outbox's lanes, the alerts' live index,
    // the events' unique ids …): the file still opens, quick_check fails, and every table row
    // is still on its own pages. (Damage to table pages themselves costs the rows on them:
    // `journal::salvage`'s own tests show it is exactly those, and that they are reported.)
    let roots: Vec<i64> = {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut s = c
            .prepare("SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND rootpage > 0")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let mut bytes = std::fs::read(&path).unwrap();
    for &p in &roots {
        let at = (p as usize - 1) * 4096;
        for b in &mut bytes[at..at + 4096] {
            *b = 0xA5;
        }
    }
    std::fs::write(&path, &bytes).unwrap();

    let up_broker = w.up_broker.as_mut().expect("separate upstream broker");
    tokio::task::block_in_place(|| up_broker.restart()).unwrap();
    w.hook.up().await;
    w.restart_gateway();
    let kept: Vec<String> = std::fs::read_dir(w.dir.path().join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("atgw.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .collect();
    let fault = wait_until_async(Duration::from_secs(20), || {
        w.upstream.events().iter().any(|e| {
            e["source"] == "urn:atgw:gw-test:gateway" && e["data"]["kind"] == "device_fault"
        })
    })
    .await;
    // The event says what happened and where the file is; the quick_check dump stays in the
    // log, on one line (escaped and capped), and in the file itself.
    for e in w.upstream.events().iter().filter(|e| {
        e["source"] == "urn:atgw:gw-test:gateway" && e["data"]["kind"] == "device_fault"
    }) {
        let vendor = e["data"]["codes"]["vendor"].as_str().unwrap_or("");
        assert!(
            vendor.len() < 200 && vendor.contains("moved aside to"),
            "codes.vendor is {} bytes: {vendor:?}",
            vendor.len()
        );
        let message = e["data"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("all {events} events recovered")),
            "{message:?}"
        );
    }
    let log = w.gw.log_text();
    let corrupt_lines: Vec<&str> = log.lines().filter(|l| l.contains("quick_check")).collect();
    assert_eq!(
        corrupt_lines.len(),
        1,
        "one line for the corrupt journal:\n{log}"
    );
    assert!(corrupt_lines[0].len() < 3 * 1024, "{}", corrupt_lines[0]);
    assert!(
        log.contains(&format!(
            "salvaged {events} events and {live_alerts} unresolved alerts; every row was readable"
        )),
        "the salvage is logged:\n{}",
        w.log_tail()
    );
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[10] == b'T',
            "a log line that is not an event of its own: {line:?}"
        );
    }
    // The alerts that were open are open in the new journal, still timed (they go on
    // escalating), not forgotten with the old file.
    let (_, _, live_after, timed_after) = owed(&path);
    assert!(
        live_after >= live_alerts && timed_after >= timed_alerts,
        "unresolved alerts {live_alerts} -> {live_after}, timed {timed_alerts} -> {timed_after}"
    );
    w.gw.wait_subscribed().await;
    let load = Load::start(&w, "c2-", &ACCOUNTS[3..]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    load.finish().await;
    // Everything is counted from the new journal alone: what was owed before the damage has
    // to have been salvaged into it and delivered from it.
    let a = settle(&w, &JournalView::default()).await;
    report(
        5,
        "corrupt journal",
        &row(
            "corrupt journal",
            &a,
            w.started.elapsed(),
            &format!(
                "both sinks down, then {} index root pages overwritten while stopped with {outbox} \
                 deliveries owed and {live_alerts} alerts unresolved; salvaged into a fresh \
                 journal (old one kept: {kept:?}) and delivered from it",
                roots.len()
            ),
        ),
    );
    assert_eq!(kept.len(), 1, "the corrupt journal is kept for inspection");
    assert!(
        fault.is_ok(),
        "no gateway device_fault event upstream:\n{}",
        w.log_tail()
    );
    assert!(
        a.accepted > accepted_before + 300,
        "devices flowed after the restart"
    );
    assert_no_loss("corrupt journal", &w, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_held_under_load_lose_nothing() {
    let w = World::start(Setup::default()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The attackers first (they fill max_connections), then the transmitters.
    let (idle, closed) = idle_connections(w.dc09, 1000, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let load = Load::start(&w, "i", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    load.finish().await;
    stop.store(true, Ordering::Relaxed);
    for t in idle {
        let _ = t.await;
    }
    let a = settle(&w, &JournalView::default()).await;
    let (_, _, resent, _) = w.ledger.summary();
    report(
        6,
        "1,000 idle connections",
        &row(
            "1,000 idle connections",
            &a,
            w.started.elapsed(),
            &format!(
                "1,000 idle TCP connections from 241 addresses held, re-opened when closed ({} \
                 closed by the daemon); {resent} sent again",
                closed.load(Ordering::Relaxed)
            ),
        ),
    );
    // Loss accounting counts accepted frames only; here every frame must also be accepted: a
    // panel refused for the whole run would lose nothing "accepted" and still be unheard.
    let (dc09_sent, dc09_acked) = {
        let l = w.ledger.inner.lock().unwrap();
        let sent: Vec<&String> = l.sent.iter().filter(|k| k.starts_with("di")).collect();
        let acked = sent.iter().filter(|k| l.accepted.contains(**k)).count();
        (sent.len(), acked)
    };
    assert!(dc09_sent > 300, "the panels kept sending: {dc09_sent}");
    assert_eq!(
        dc09_acked, dc09_sent,
        "every frame the panels sent was ACKed while 1,000 idle connections were held"
    );
    assert_no_loss("1,000 idle connections", &w, &a);
}
