//! Read-only access to the journal: the outbox for sink dispatchers, and queries for the CLI
//! and tests. Each reader has its own connection; WAL lets it read while the writer commits.

use std::path::Path;
use std::sync::Arc;

use atgw_sdk::event::{Kind, Priority};
use atgw_sdk::sink::Delivery;
use rusqlite::{Connection, OpenFlags, params};

/// A read-only connection.
pub struct Reader {
    conn: Connection,
}

impl Reader {
    pub fn open(path: &Path) -> rusqlite::Result<Reader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Reader { conn })
    }

    /// The connection, for a module's own read queries (the console's views).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Outbox rows of one sink and lane after `after_id`, oldest first.
    pub fn outbox_after(
        &self,
        sink: &str,
        lane: i64,
        after_id: i64,
        limit: usize,
    ) -> rusqlite::Result<Vec<Delivery>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.id, o.attempts, e.id, e.kind, e.priority, e.device_id, e.json,
                    e.correlation_id, e.source, o.people
             FROM outbox o JOIN events e ON e.seq = o.event_seq
             WHERE o.sink = ?1 AND o.lane = ?2 AND o.id > ?3
             ORDER BY o.id LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![sink, lane, after_id, limit as i64], |r| {
            let kind: String = r.get(3)?;
            let priority: String = r.get(4)?;
            Ok(Delivery {
                outbox_id: r.get(0)?,
                attempt: r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
                event_id: Arc::from(r.get::<_, String>(2)?),
                kind: kind.parse().unwrap_or(Kind::Unknown),
                priority: priority.parse().unwrap_or(Priority::Info),
                device_id: Arc::from(r.get::<_, String>(5)?),
                json: Arc::from(r.get::<_, String>(6)?),
                alert_id: r.get::<_, Option<String>>(7)?.map(Arc::from),
                lifecycle: crate::envelope::is_alert_lifecycle(&r.get::<_, String>(8)?),
                // `[[person]]` names; the dispatcher turns them into addresses.
                recipients: r
                    .get::<_, Option<String>>(9)?
                    .and_then(|j| serde_json::from_str::<Vec<String>>(&j).ok())
                    .map(Arc::from)
                    .unwrap_or_default(),
            })
        })?;
        rows.collect()
    }

    /// Undelivered rows of one sink.
    pub fn outbox_depth(&self, sink: &str) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE sink = ?1")?
            .query_row([sink], |r| r.get(0))
    }

    /// Receipt time (ms) of the oldest undelivered event of one sink: one index seek per lane
    /// on `outbox(sink, lane, id)`, since outbox ids grow with journal order.
    pub fn outbox_oldest_recorded_ms(&self, sink: &str) -> rusqlite::Result<Option<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT min(e.recorded_ms) FROM (
                 SELECT (SELECT event_seq FROM outbox WHERE sink = ?1 AND lane = l.lane
                         ORDER BY id LIMIT 1) AS seq
                 FROM (SELECT 0 AS lane UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) l
             ) o JOIN events e ON e.seq = o.seq",
        )?;
        stmt.query_row([sink], |r| r.get(0))
    }

    /// Unresolved alerts (open, acknowledged, or cleared and awaiting a person) per priority.
    pub fn unresolved_alerts_by_priority(&self) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT priority, count(*) FROM alerts WHERE status != 'resolved' GROUP BY priority",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    pub fn event_count(&self) -> rusqlite::Result<i64> {
        self.conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
    }

    /// Dead letters per reason.
    pub fn dead_letters_by_reason(&self) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// Dead letters newest first, at most `limit`, with ids below `before` (paging) and of
    /// this adapter and reason, when given.
    pub fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> rusqlite::Result<Vec<DeadLetterRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, recorded_ms, adapter, reason, detail, origin, raw, raw_len FROM dead_letters
             WHERE id < ?1 AND (?2 IS NULL OR adapter = ?2) AND (?3 IS NULL OR reason = ?3)
               AND recorded_ms >= ?4
             ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                filter.before.unwrap_or(i64::MAX),
                filter.adapter,
                filter.reason,
                filter.since_ms.unwrap_or(i64::MIN),
                limit as i64
            ],
            dead_letter_row,
        )?;
        rows.collect()
    }

    /// One dead letter.
    pub fn dead_letter(&self, id: i64) -> rusqlite::Result<Option<DeadLetterRow>> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached(
                "SELECT id, recorded_ms, adapter, reason, detail, origin, raw, raw_len
                 FROM dead_letters WHERE id = ?1",
            )?
            .query_row([id], dead_letter_row)
            .optional()
    }

    /// Alerts, newest first; unresolved only unless `all`.
    pub fn alerts(
        &self,
        all: bool,
        limit: usize,
    ) -> rusqlite::Result<Vec<crate::alerts::AlertView>> {
        crate::alerts::list(&self.conn, all, limit)
    }

    /// Shelves not yet ended, soonest end first.
    pub fn shelves(&self) -> rusqlite::Result<Vec<crate::alerts::shelf::ShelfView>> {
        crate::alerts::shelf::live(&self.conn)
    }

    /// Devices the gateway has heard from, with their last check-in: a page of at most `limit`
    /// in id order, after the id `after` (`""` for the first page).
    pub fn devices(&self, after: &str, limit: usize) -> rusqlite::Result<Vec<serde_json::Value>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device_id, adapter, registered, last_seen_ms, offline_raised FROM devices
             WHERE device_id > ?1 ORDER BY device_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            let ms: i64 = r.get(3)?;
            let seen = jiff::Timestamp::from_millisecond(ms)
                .map(|t| atgw_sdk::event::rfc3339_ms::format(&t))
                .unwrap_or_default();
            Ok(serde_json::json!({
                "id": r.get::<_, String>(0)?,
                "adapter": r.get::<_, String>(1)?,
                "registered": r.get::<_, bool>(2)?,
                "last_seen": seen,
                "offline": r.get::<_, bool>(4)?,
            }))
        })?;
        rows.collect()
    }

    /// Every event's JSON in journal order (tests and small exports).
    pub fn events_json(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> rusqlite::Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, json FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect()
    }
}

/// Which dead letters to list.
#[derive(Clone, Debug, Default)]
pub struct DeadLetterFilter {
    pub adapter: Option<String>,
    pub reason: Option<String>,
    /// Only those recorded at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only ids below this one: the next page after a listing that ended at `before`.
    pub before: Option<i64>,
}

/// A dead letter as the journal keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRow {
    pub id: i64,
    pub recorded_ms: i64,
    pub adapter: String,
    pub reason: String,
    pub detail: String,
    pub origin: String,
    /// The bytes kept (`[journal] dead_letter_bytes` at most).
    pub raw: Vec<u8>,
    /// How long the message really was.
    pub raw_len: i64,
}

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetterRow> {
    Ok(DeadLetterRow {
        id: r.get(0)?,
        recorded_ms: r.get(1)?,
        adapter: r.get(2)?,
        reason: r.get(3)?,
        detail: r.get(4)?,
        origin: r.get(5)?,
        raw: r.get(6)?,
        raw_len: r.get(7)?,
    })
}
