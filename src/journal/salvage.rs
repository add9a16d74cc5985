//! Salvage: what can still be read from a corrupt journal is copied into the fresh one, so
//! that events devices were acknowledged for, the outbox that still owes them to sinks, open
//! alerts and their timers survive damage to some pages.
//!
//! Every table is copied row by row with its original keys (event `seq`, outbox `id`), so the
//! outbox still points at its events and sinks see the same event ids (delivery stays
//! at-least-once with a stable id). A read that fails marks a gap: the copy seeks past it
//! (exponential, then binary search on the rowid) and goes on, so one damaged page costs the
//! rows on that page, not the rest of the table. `WITHOUT ROWID` tables are read forward and
//! then backward from the end, which recovers both sides of the first damaged page.
//!
//! What could not be read is reported ([`Salvaged::summary`]) for the log and the gateway
//! alert. Where outbox rows were lost, the events they may have owed are queued again for
//! every sink (sinks deduplicate by event id); the alert engine re-arms open alerts whose
//! timers were lost when the writer starts ([`crate::alerts::rearm_untimed`]).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use atgw_sdk::event::Priority;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Transaction, params_from_iter};

/// Tables in the order they are copied: a row's foreign key is copied before it.
const TABLES: &[&str] = &[
    "events",
    "sources",
    "outbox",
    "alerts",
    "alert_timers",
    "held_conditions",
    "dedupe",
    "dead_letters",
    "adapter_state",
    "devices",
    "shelves",
    "device_days",
    "users",
    "user_audit",
    "console_sessions",
];

/// Where the lower bound of a lost outbox range is unknown (the damage is before the first
/// readable row), events recorded this long before the newest are queued again.
const REQUEUE_UNBOUNDED_MS: i64 = 24 * 3600 * 1000;

/// Gaps named per table in [`Salvaged::summary`].
const SUMMARY_GAPS: usize = 8;

/// A run of rows that could not be read: rowids strictly between `after` and `before`
/// (`None`: the start or the end of the table).
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    pub after: Option<i64>,
    pub before: Option<i64>,
}

/// What one table gave up.
#[derive(Clone, Debug, Default)]
pub struct TableSalvage {
    pub copied: u64,
    /// Rows read but refused by the fresh journal (an outbox row whose event was lost).
    pub dropped: u64,
    pub gaps: Vec<Gap>,
    /// The table could not be read at all (its schema or root page is gone).
    pub unreadable: bool,
}

/// What the salvage recovered and what it could not.
#[derive(Clone, Debug, Default)]
pub struct Salvaged {
    pub tables: Vec<(&'static str, TableSalvage)>,
    /// Outbox rows queued again because rows of the outbox were lost.
    pub requeued: u64,
    /// Unresolved alerts recovered.
    pub live_alerts: u64,
}

impl Salvaged {
    fn table(&self, name: &str) -> Option<&TableSalvage> {
        self.tables.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// Events recovered.
    pub fn events(&self) -> u64 {
        self.table("events").map_or(0, |t| t.copied)
    }

    /// At most this many events were lost (event sequence numbers inside the gaps; a gap at
    /// the end of the table counts as unknown, reported by [`Salvaged::lost_at_end`]).
    pub fn events_lost(&self) -> u64 {
        self.table("events").map_or(0, |t| {
            t.gaps
                .iter()
                .map(|g| match (g.after, g.before) {
                    (a, Some(b)) => (b - a.unwrap_or(0) - 1).max(0) as u64,
                    (_, None) => 0,
                })
                .sum()
        })
    }

    /// Whether the end of some table could not be read (how much was there is unknown).
    pub fn lost_at_end(&self) -> bool {
        self.tables
            .iter()
            .any(|(_, t)| t.unreadable || t.gaps.iter().any(|g| g.before.is_none()))
    }

    /// Whether everything was read.
    pub fn complete(&self) -> bool {
        self.tables
            .iter()
            .all(|(_, t)| !t.unreadable && t.gaps.is_empty())
    }

    /// One line for the log: counts, then each gap.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "salvaged {} events and {} unresolved alerts",
            self.events(),
            self.live_alerts
        );
        if self.complete() {
            s.push_str("; every row was readable");
            return s;
        }
        for (name, t) in &self.tables {
            if t.unreadable {
                let _ = write!(s, "; {name}: unreadable");
            }
            // The log line stays short whatever the damage; the kept file has the rest.
            for g in t.gaps.iter().take(SUMMARY_GAPS) {
                let bound = |b: Option<i64>| b.map_or("?".to_owned(), |v| v.to_string());
                let _ = write!(
                    s,
                    "; {name}: rows after {} before {} unreadable",
                    bound(g.after),
                    bound(g.before)
                );
            }
            if t.gaps.len() > SUMMARY_GAPS {
                let _ = write!(s, "; {name}: {} more gaps", t.gaps.len() - SUMMARY_GAPS);
            }
            if t.dropped > 0 {
                let _ = write!(
                    s,
                    "; {name}: {} rows dropped (their event was lost)",
                    t.dropped
                );
            }
        }
        if self.requeued > 0 {
            let _ = write!(s, "; {} deliveries queued again", self.requeued);
        }
        s
    }
}

/// Copies what is readable from the corrupt journal at `old` into `new` (fresh and migrated),
/// in one transaction. `sinks` are the configured sinks, for events whose outbox rows were
/// lost.
pub fn salvage(old: &Path, new: &mut Connection, sinks: &[String]) -> rusqlite::Result<Salvaged> {
    let mut out = Salvaged::default();
    let src = match Connection::open_with_flags(
        old,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    ) {
        Ok(c) => c,
        Err(_) => {
            // Not even a database any more: nothing to copy, and every table is lost.
            out.tables = TABLES
                .iter()
                .map(|t| {
                    (
                        *t,
                        TableSalvage {
                            unreadable: true,
                            ..Default::default()
                        },
                    )
                })
                .collect();
            return Ok(out);
        }
    };
    let tx = new.transaction()?;
    for table in TABLES {
        let t = copy_table(&src, &tx, table)?;
        out.tables.push((table, t));
    }
    // The per-source sequence goes on from the highest recovered, whatever `sources` kept.
    tx.execute(
        "INSERT INTO sources (source, last_seq) SELECT source, max(source_seq) FROM events
         WHERE true GROUP BY source
         ON CONFLICT(source) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
        [],
    )?;
    // An outbox row whose alert-timer or event went missing is refused by the foreign key
    // (counted as dropped); timers of a lost alert likewise.
    out.requeued = requeue(&tx, out.table("outbox"), sinks)?;
    out.live_alerts = tx.query_row(
        "SELECT count(*) FROM alerts WHERE status != 'resolved'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    tx.commit()?;
    Ok(out)
}

/// The columns of `table` in the old file, and whether it has a rowid.
fn columns(src: &Connection, table: &str) -> rusqlite::Result<(Vec<String>, Vec<String>, bool)> {
    let mut stmt = src.prepare(&format!("PRAGMA table_info({table})"))?;
    let mut cols = Vec::new();
    let mut pk = Vec::new();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?;
    let mut pk_order = Vec::new();
    for row in rows {
        let (name, pk_pos) = row?;
        if pk_pos > 0 {
            pk_order.push((pk_pos, name.clone()));
        }
        cols.push(name);
    }
    pk_order.sort();
    pk.extend(pk_order.into_iter().map(|(_, n)| n));
    let sql: String = src.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    let rowid = !sql.to_ascii_uppercase().contains("WITHOUT ROWID");
    Ok((cols, pk, rowid))
}

fn copy_table(
    src: &Connection,
    tx: &Transaction<'_>,
    table: &'static str,
) -> rusqlite::Result<TableSalvage> {
    let mut t = TableSalvage::default();
    let Ok((cols, pk, rowid)) = columns(src, table) else {
        t.unreadable = true;
        return Ok(t);
    };
    if cols.is_empty() {
        // The table did not exist in the old file (an older version): nothing to copy.
        return Ok(t);
    }
    // Only the columns the fresh table has (the old file may be an older version).
    let new_cols: HashSet<String> = {
        let mut stmt = tx.prepare(&format!("PRAGMA table_info({table})"))?;
        stmt.query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<_>>()?
    };
    let cols: Vec<String> = cols.into_iter().filter(|c| new_cols.contains(c)).collect();
    let list = cols.join(", ");
    let marks = vec!["?"; cols.len()].join(", ");
    let insert = format!("INSERT OR IGNORE INTO {table} ({list}) VALUES ({marks})");
    let mut put = |values: Vec<Value>, t: &mut TableSalvage| -> rusqlite::Result<()> {
        match tx
            .prepare_cached(&insert)?
            .execute(params_from_iter(values))
        {
            Ok(n) => t.copied += n as u64,
            // A foreign key to a row that was lost.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                t.dropped += 1
            }
            Err(e) => return Err(e),
        }
        Ok(())
    };
    if rowid {
        copy_by_rowid(src, table, &list, cols.len(), &mut t, &mut put)?;
    } else {
        copy_by_key(src, table, &list, &pk, cols.len(), &mut t, &mut put)?;
    }
    Ok(t)
}

type Put<'a> = dyn FnMut(Vec<Value>, &mut TableSalvage) -> rusqlite::Result<()> + 'a;

/// Reads rows with rowid >= `from` in order, handing each to `put`; returns the last rowid
/// read and whether the read ended in an error. (Inclusive: a seek to `> r - 1` would land on
/// the damaged page before `r`.)
fn read_from(
    src: &Connection,
    table: &str,
    list: &str,
    n: usize,
    from: i64,
    t: &mut TableSalvage,
    put: &mut Put<'_>,
) -> rusqlite::Result<(Option<i64>, bool)> {
    let mut last = None;
    let Ok(mut stmt) = src.prepare(&format!(
        "SELECT rowid, {list} FROM {table} WHERE rowid >= ?1 ORDER BY rowid"
    )) else {
        return Ok((last, true));
    };
    let Ok(mut rows) = stmt.query([from]) else {
        return Ok((last, true));
    };
    loop {
        match rows.next() {
            Ok(Some(r)) => {
                let values: rusqlite::Result<(i64, Vec<Value>)> = (|| {
                    let id: i64 = r.get(0)?;
                    let v = (1..=n)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<Result<_, _>>()?;
                    Ok((id, v))
                })();
                let Ok((id, v)) = values else {
                    return Ok((last, true));
                };
                put(v, t)?;
                last = Some(id);
            }
            Ok(None) => return Ok((last, false)),
            Err(_) => return Ok((last, true)),
        }
    }
}

fn copy_by_rowid(
    src: &Connection,
    table: &str,
    list: &str,
    n: usize,
    t: &mut TableSalvage,
    put: &mut Put<'_>,
) -> rusqlite::Result<()> {
    let mut from = i64::MIN;
    // The last row copied, for the gap's lower bound.
    let mut copied: Option<i64> = None;
    loop {
        let (last, failed) = read_from(src, table, list, n, from, t, put)?;
        copied = last.or(copied);
        if !failed {
            return Ok(());
        }
        // Past the row that failed: the last copied one, or (nothing copied this turn) the
        // row the seek resumed at.
        let next = match last {
            Some(l) => l + 1,
            None if from == i64::MIN => i64::MIN,
            None => from + 1,
        };
        let resume = seek_readable(src, table, list, next);
        t.gaps.push(Gap {
            after: copied,
            before: resume,
        });
        match resume {
            Some(r) => from = r,
            None => return Ok(()),
        }
    }
}

/// The first rowid at or after `from` whose row reads whole, or `None` when nothing beyond
/// `from` can be read.
fn seek_readable(src: &Connection, table: &str, list: &str, from: i64) -> Option<i64> {
    // Ok(Some(rowid)): the first row at or after `p` reads; Ok(None): there is none; Err: the
    // way to it is damaged.
    let probe = |p: i64| -> Result<Option<i64>, ()> {
        let sql =
            format!("SELECT rowid, {list} FROM {table} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1");
        let mut stmt = src.prepare(&sql).map_err(|_| ())?;
        let mut rows = stmt.query([p]).map_err(|_| ())?;
        match rows.next() {
            Ok(Some(r)) => {
                let n = r.as_ref().column_count();
                for i in 1..n {
                    r.get::<_, Value>(i).map_err(|_| ())?;
                }
                r.get::<_, i64>(0).map(Some).map_err(|_| ())
            }
            Ok(None) => Ok(None),
            Err(_) => Err(()),
        }
    };
    // Exponential: find a readable point beyond the damage.
    let start = if from == i64::MIN { 0 } else { from };
    let mut bad = start;
    if let Ok(found) = probe(start) {
        return found;
    }
    let mut step: i64 = 1;
    let good = loop {
        let p = start.checked_add(step)?;
        match probe(p) {
            Ok(Some(r)) => break (p, r),
            // The end of the table is readable from here: everything after `bad` is gone
            // or was never there; look for the first readable row between them.
            Ok(None) => break (p, i64::MAX),
            Err(()) => {
                bad = p;
                step = step.checked_mul(2)?;
            }
        }
    };
    // Binary: the smallest point past `bad` that reads.
    let (mut lo, mut hi, mut found) = (bad, good.0, good.1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match probe(mid) {
            Ok(Some(r)) => {
                hi = mid;
                found = r;
            }
            Ok(None) => {
                hi = mid;
                found = i64::MAX;
            }
            Err(()) => lo = mid,
        }
    }
    (found != i64::MAX).then_some(found)
}

/// `WITHOUT ROWID` tables: forward until an error, then backward until an error (rows already
/// copied are ignored by the insert).
fn copy_by_key(
    src: &Connection,
    table: &str,
    list: &str,
    pk: &[String],
    n: usize,
    t: &mut TableSalvage,
    put: &mut Put<'_>,
) -> rusqlite::Result<()> {
    let order = |dir: &str| {
        pk.iter()
            .map(|c| format!("{c} {dir}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut failed_any = false;
    for dir in ["ASC", "DESC"] {
        let failed = (|| -> rusqlite::Result<bool> {
            let Ok(mut stmt) = src.prepare(&format!(
                "SELECT {list} FROM {table} ORDER BY {}",
                order(dir)
            )) else {
                return Ok(true);
            };
            let Ok(mut rows) = stmt.query([]) else {
                return Ok(true);
            };
            loop {
                match rows.next() {
                    Ok(Some(r)) => {
                        let Ok(v) = (0..n).map(|i| r.get::<_, Value>(i)).collect() else {
                            return Ok(true);
                        };
                        put(v, t)?;
                    }
                    Ok(None) => return Ok(false),
                    Err(_) => return Ok(true),
                }
            }
        })()?;
        if !failed {
            break;
        }
        failed_any = true;
    }
    if failed_any {
        // Keys are not numbered: the gap is known to exist, not where.
        t.gaps.push(Gap {
            after: None,
            before: None,
        });
    }
    Ok(())
}

/// Queues again, for every sink, the events whose outbox rows may have been lost: those
/// between the readable outbox rows on either side of each gap.
fn requeue(
    tx: &Transaction<'_>,
    outbox: Option<&TableSalvage>,
    sinks: &[String],
) -> rusqlite::Result<u64> {
    let Some(outbox) = outbox else { return Ok(0) };
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    let newest: Option<(i64, i64)> = tx
        .query_row(
            "SELECT seq, recorded_ms FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok(Some((r.get(0)?, r.get(1)?))),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some((max_seq, newest_ms)) = newest else {
        return Ok(0);
    };
    let unbounded_from = || -> rusqlite::Result<i64> {
        tx.query_row(
            "SELECT coalesce(min(seq), 0) FROM events WHERE recorded_ms >= ?1",
            [newest_ms - REQUEUE_UNBOUNDED_MS],
            |r| r.get(0),
        )
    };
    let seq_of = |id: i64, dir: &str| -> rusqlite::Result<Option<i64>> {
        let sql = if dir == "before" {
            "SELECT event_seq FROM outbox WHERE id <= ?1 ORDER BY id DESC LIMIT 1"
        } else {
            "SELECT event_seq FROM outbox WHERE id >= ?1 ORDER BY id LIMIT 1"
        };
        match tx.query_row(sql, [id], |r| r.get(0)) {
            Ok(s) => Ok(Some(s)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e),
        }
    };
    if outbox.unreadable {
        ranges.push((unbounded_from()?, max_seq));
    }
    for g in &outbox.gaps {
        let lo = match g.after {
            Some(a) => seq_of(a, "before")?,
            None => None,
        };
        let hi = match g.before {
            Some(b) => seq_of(b, "after")?,
            None => None,
        };
        let lo = match lo {
            Some(s) => s,
            None => unbounded_from()?,
        };
        ranges.push((lo, hi.unwrap_or(max_seq)));
    }
    let mut queued = 0u64;
    let mut events = tx.prepare("SELECT seq, priority FROM events WHERE seq BETWEEN ?1 AND ?2")?;
    let mut queued_already =
        tx.prepare("SELECT sink, event_seq FROM outbox WHERE event_seq BETWEEN ?1 AND ?2")?;
    let mut put = tx.prepare("INSERT INTO outbox (sink, event_seq, lane) VALUES (?1, ?2, ?3)")?;
    for (lo, hi) in ranges {
        let already: HashSet<(String, i64)> = queued_already
            .query_map([lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let rows: Vec<(i64, String)> = events
            .query_map([lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (seq, priority) in rows {
            // Unknown priority: the most urgent lane, never the slowest.
            let lane = priority
                .parse::<Priority>()
                .unwrap_or(Priority::High)
                .lane();
            for sink in sinks {
                if !already.contains(&(sink.clone(), seq)) {
                    queued += put.execute(rusqlite::params![sink, seq, lane])? as u64;
                }
            }
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests;
