//! The journal's tables and their numbered migrations. `PRAGMA user_version` records how far a
//! file has been migrated; each migration runs once, in its own transaction.

use rusqlite::Connection;

/// Migrations in order; index + 1 is the version a file has after running it.
const MIGRATIONS: &[&str] = &[
    // 1: events, their per-source sequence, dedupe keys, per-sink outbox, dead letters,
    //    adapter state (edge detection) and device check-ins.
    r#"
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT NOT NULL UNIQUE,
        source         TEXT NOT NULL,
        source_seq     INTEGER NOT NULL,
        kind           TEXT NOT NULL,
        phase          TEXT NOT NULL,
        priority       TEXT NOT NULL,
        device_id      TEXT NOT NULL,
        test           INTEGER NOT NULL,
        time_ms        INTEGER NOT NULL,
        recorded_ms    INTEGER NOT NULL,
        correlation_id TEXT,
        json           TEXT NOT NULL
    );
    CREATE INDEX events_recorded ON events(recorded_ms);
    CREATE INDEX events_device ON events(device_id, seq);

    CREATE TABLE sources (
        source   TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE dedupe (
        key      TEXT PRIMARY KEY,
        seen_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dedupe_age ON dedupe(seen_ms);

    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        sink       TEXT NOT NULL,
        event_seq  INTEGER NOT NULL REFERENCES events(seq),
        lane       INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX outbox_lane ON outbox(sink, lane, id);

    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        adapter     TEXT NOT NULL,
        reason      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        origin      TEXT NOT NULL,
        raw         BLOB NOT NULL,
        raw_len     INTEGER NOT NULL,
        recorded_ms INTEGER NOT NULL
    );

    CREATE TABLE adapter_state (
        adapter TEXT NOT NULL,
        key     TEXT NOT NULL,
        value   TEXT NOT NULL,
        PRIMARY KEY (adapter, key)
    ) WITHOUT ROWID;

    CREATE TABLE devices (
        device_id    TEXT PRIMARY KEY,
        adapter      TEXT NOT NULL,
        registered   INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
];

/// Brings a file to the newest version.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(MIGRATIONS.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 1);
        assert_eq!(migrate(&mut c).unwrap(), 1);
        let v: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
}
