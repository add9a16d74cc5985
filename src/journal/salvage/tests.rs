//! Salvage against real SQLite files damaged on disk, page by page.

use super::*;
use crate::journal::{FILE_NAME, open};
use rusqlite::params;

const EVENTS: i64 = 600;
const SINK: &str = "upstream";
/// Marks event rows, so a test can tell an events page from any other.
const MARK: &str = "salvage-test-event";

/// A journal with `EVENTS` events, the newer half still owed to `SINK`, and three open alerts
/// with a timer each. Returns its path (closed).
fn journal(dir: &Path) -> std::path::PathBuf {
    let path = dir.join(FILE_NAME);
    let mut o = open(&path).unwrap();
    let tx = o.conn.transaction().unwrap();
    for seq in 1..=EVENTS {
        let json = format!("{{\"{MARK}\":{seq},\"pad\":\"{}\"}}", "x".repeat(900));
        tx.execute(
            "INSERT INTO events (seq, id, source, source_seq, kind, phase, priority, device_id,
                                 test, time_ms, recorded_ms, correlation_id, json)
             VALUES (?1, ?2, 'urn:test', ?1, 'fall', 'raised', ?3, 'dev', 0, ?4, ?4, NULL, ?5)",
            params![
                seq,
                format!("ev-{seq}"),
                if seq % 2 == 0 { "high" } else { "info" },
                1_000_000 + seq,
                json
            ],
        )
        .unwrap();
        if seq > EVENTS / 2 {
            tx.execute(
                "INSERT INTO outbox (sink, event_seq, lane) VALUES (?1, ?2, 0)",
                params![SINK, seq],
            )
            .unwrap();
        }
    }
    for i in 0..3 {
        tx.execute(
            "INSERT INTO alerts (id, policy, device_id, kind, status, priority, level, raised_ms,
                                 updated_ms, snapshot)
             VALUES (?1, 'default', 'dev', 'fall', 'open', 'high', 0, 1, 1, '{}')",
            [format!("al-{i}")],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO alert_timers (alert_id, timer, due_ms) VALUES (?1, 'escalate', 5)",
            [format!("al-{i}")],
        )
        .unwrap();
    }
    tx.execute(
        "INSERT INTO sources (source, last_seq) VALUES ('urn:test', ?1)",
        [EVENTS],
    )
    .unwrap();
    tx.commit().unwrap();
    o.conn
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(o);
    path
}

fn page_size(path: &Path) -> usize {
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

/// Overwrites page `n` (1-based) with a pattern that is no valid b-tree page.
fn damage(path: &Path, n: usize) {
    let size = page_size(path);
    let mut bytes = std::fs::read(path).unwrap();
    for b in &mut bytes[(n - 1) * size..n * size] {
        *b = 0xA5;
    }
    std::fs::write(path, &bytes).unwrap();
}

/// The 1-based numbers of table-leaf pages (type byte 0x0D) whose bytes contain `needle`.
fn leaves_with(path: &Path, needle: &[u8], without: &[u8]) -> Vec<usize> {
    let size = page_size(path);
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks(size)
        .enumerate()
        .skip(1)
        .filter(|(_, p)| {
            p[0] == 0x0D
                && p.windows(needle.len()).any(|w| w == needle)
                && !p.windows(without.len()).any(|w| w == without)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

fn root_pages(path: &Path, kind: &str) -> Vec<usize> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT rootpage FROM sqlite_schema WHERE type = ?1 AND rootpage > 0")
        .unwrap();
    s.query_map([kind], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as usize)
        .collect()
}

/// Opens the damaged file as the daemon would (moved aside, fresh journal) and salvages it.
fn reopen(path: &Path) -> (Connection, Salvaged) {
    let mut o = open(path).unwrap();
    let (aside, _) = o.moved_aside.take().expect("the damage is detected");
    let s = salvage(&aside, &mut o.conn, &[SINK.to_owned(), "file".to_owned()]).unwrap();
    (o.conn, s)
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn damaged_indexes_lose_nothing() {
    let d = tempfile::tempdir().unwrap();
    let path = journal(d.path());
    for p in root_pages(&path, "index") {
        damage(&path, p);
    }
    let (c, s) = reopen(&path);
    assert!(s.complete(), "{}", s.summary());
    assert_eq!(s.events(), EVENTS as u64);
    assert_eq!(count(&c, "SELECT count(*) FROM events"), EVENTS);
    assert_eq!(count(&c, "SELECT count(*) FROM outbox"), EVENTS / 2);
    assert_eq!(s.live_alerts, 3);
    assert_eq!(count(&c, "SELECT count(*) FROM alert_timers"), 3);
    // Original keys: the outbox still points at the same events, the ids are the same.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox o JOIN events e ON e.seq = o.event_seq
             WHERE e.id = 'ev-' || e.seq AND e.seq > 300"
        ),
        EVENTS / 2
    );
    // The fresh journal is sound and numbering goes on after the recovered rows.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pragma_quick_check WHERE quick_check != 'ok'"
        ),
        0
    );
    c.execute(
        "INSERT INTO events (id, source, source_seq, kind, phase, priority, device_id, test,
                             time_ms, recorded_ms, json)
         VALUES ('new', 'urn:test', 0, 'fall', 'raised', 'high', 'dev', 0, 0, 0, '{}')",
        [],
    )
    .unwrap();
    assert_eq!(c.last_insert_rowid(), EVENTS + 1);
    assert_eq!(
        count(&c, "SELECT last_seq FROM sources WHERE source = 'urn:test'"),
        EVENTS
    );
}

#[test]
fn a_damaged_events_page_costs_only_its_rows_and_says_which() {
    let d = tempfile::tempdir().unwrap();
    let path = journal(d.path());
    let leaves = leaves_with(&path, MARK.as_bytes(), SINK.as_bytes());
    assert!(leaves.len() > 20, "{} event leaves", leaves.len());
    // Two pages in the undelivered half, apart from each other.
    let (a, b) = (leaves[leaves.len() * 2 / 3], leaves[leaves.len() * 5 / 6]);
    damage(&path, a);
    damage(&path, b);
    let (c, s) = reopen(&path);
    let recovered = count(&c, "SELECT count(*) FROM events");
    assert!(!s.complete());
    let lost = s.events_lost() as i64;
    assert!(lost > 0 && lost < 20, "lost {lost}: {}", s.summary());
    assert_eq!(
        recovered + lost,
        EVENTS,
        "every row is either recovered or inside a reported gap: {}",
        s.summary()
    );
    let gaps = &s
        .tables
        .iter()
        .find(|(n, _)| *n == "events")
        .unwrap()
        .1
        .gaps;
    assert_eq!(gaps.len(), 2, "{}", s.summary());
    // Exactly the rows inside the gaps are missing.
    for g in gaps {
        let (lo, hi) = (g.after.unwrap(), g.before.unwrap());
        assert_eq!(
            count(
                &c,
                &format!("SELECT count(*) FROM events WHERE seq > {lo} AND seq < {hi}")
            ),
            0
        );
        assert_eq!(
            count(
                &c,
                &format!("SELECT count(*) FROM events WHERE seq IN ({lo}, {hi})")
            ),
            2
        );
    }
    // The lost events' outbox rows are refused (dropped), the rest still owed.
    let outbox = count(&c, "SELECT count(*) FROM outbox");
    assert_eq!(outbox, EVENTS / 2 - lost, "{}", s.summary());
    assert_eq!(s.requeued, 0, "the outbox itself was intact");
    assert!(
        s.summary().contains("events: rows after"),
        "{}",
        s.summary()
    );
}

#[test]
fn a_damaged_outbox_page_queues_its_events_again_for_every_sink() {
    let d = tempfile::tempdir().unwrap();
    let path = journal(d.path());
    let leaves = leaves_with(&path, SINK.as_bytes(), MARK.as_bytes());
    assert!(leaves.len() >= 2, "{} outbox leaves", leaves.len());
    damage(&path, leaves[leaves.len() / 2]);
    let (c, s) = reopen(&path);
    assert_eq!(s.events(), EVENTS as u64, "{}", s.summary());
    assert!(s.requeued > 0, "{}", s.summary());
    // Every event that was owed to the sink is owed to it again (some maybe twice over:
    // at-least-once), none is forgotten.
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT count(*) FROM events e WHERE e.seq > {} AND NOT EXISTS
                 (SELECT 1 FROM outbox o WHERE o.event_seq = e.seq AND o.sink = '{SINK}')",
                EVENTS / 2
            )
        ),
        0,
        "{}",
        s.summary()
    );
    // The sink that had nothing owed is given the lost range too (its rows may have been on
    // the lost page), in the lane its priority takes.
    assert!(count(&c, "SELECT count(*) FROM outbox WHERE sink = 'file'") > 0);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox o JOIN events e ON e.seq = o.event_seq
             WHERE o.sink = 'file' AND o.lane != CASE e.priority WHEN 'high' THEN 0 ELSE 3 END"
        ),
        0
    );
}

#[test]
fn a_file_that_is_no_database_any_more_reports_everything_unreadable() {
    let d = tempfile::tempdir().unwrap();
    let path = journal(d.path());
    std::fs::write(&path, vec![0x5Au8; 64 * 1024]).unwrap();
    let (c, s) = reopen(&path);
    assert_eq!(s.events(), 0);
    assert!(s.lost_at_end() && !s.complete(), "{}", s.summary());
    assert_eq!(count(&c, "SELECT count(*) FROM events"), 0);
}
