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
    // 2: alerts, their timers, and device supervision state.
    r#"
    CREATE TABLE alerts (
        id           TEXT PRIMARY KEY,
        policy       TEXT NOT NULL,
        device_id    TEXT NOT NULL,
        kind         TEXT NOT NULL,
        status       TEXT NOT NULL,
        priority     TEXT NOT NULL,
        confidence   TEXT,
        level        INTEGER NOT NULL,
        raised_ms    INTEGER NOT NULL,
        updated_ms   INTEGER NOT NULL,
        acked_ms     INTEGER,
        acked_by     TEXT,
        resolved_ms  INTEGER,
        resolved_by  TEXT,
        outcome      TEXT,
        note         TEXT,
        area         TEXT,
        snapshot     TEXT NOT NULL
    );
    CREATE INDEX alerts_live ON alerts(device_id, kind, status);
    CREATE INDEX alerts_raised ON alerts(raised_ms);

    CREATE TABLE alert_timers (
        alert_id TEXT NOT NULL REFERENCES alerts(id),
        timer    TEXT NOT NULL,
        due_ms   INTEGER NOT NULL,
        PRIMARY KEY (alert_id, timer)
    ) WITHOUT ROWID;
    CREATE INDEX alert_timers_due ON alert_timers(due_ms);

    ALTER TABLE devices ADD COLUMN offline_raised INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: an alert's identity includes the device component; repeats are counted; the routes
    // told so far are kept (a policy change must not forget them); fail-safe and restore flags.
    r#"
    ALTER TABLE alerts ADD COLUMN component TEXT;
    ALTER TABLE alerts ADD COLUMN presses INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE alerts ADD COLUMN opened_ms INTEGER;
    ALTER TABLE alerts ADD COLUMN told TEXT;
    ALTER TABLE alerts ADD COLUMN failsafe INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN restored_ms INTEGER;
    "#,
    // 4: the least recently heard unregistered devices, found without a scan
    //    (`[journal] max_unregistered_devices`).
    r#"
    CREATE INDEX devices_unregistered_seen ON devices(last_seen_ms) WHERE registered = 0;
    "#,
    // 5: reminders sent since the last acknowledgement (capped by the policy's max_reminders).
    r#"
    ALTER TABLE alerts ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
    "#,
    // 6: a dedupe key is kept for its adapter's retransmission window, not the journal's
    //    longest (an MQTT key lives minutes, not a day); rows from before keep `seen_ms`
    //    and the journal's window.
    r#"
    ALTER TABLE dedupe ADD COLUMN until_ms INTEGER;
    CREATE INDEX dedupe_until ON dedupe(until_ms) WHERE until_ms IS NOT NULL;
    "#,
    // 7: shelves (a device's technical alerts held by a person, for a bounded time, with a
    //    reason) and which alerts are held by one.
    r#"
    CREATE TABLE shelves (
        id         TEXT PRIMARY KEY,
        device_id  TEXT NOT NULL,
        by         TEXT NOT NULL,
        reason     TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        until_ms   INTEGER NOT NULL,
        ended_ms   INTEGER,
        ended_by   TEXT
    );
    CREATE INDEX shelves_live ON shelves(device_id) WHERE ended_ms IS NULL;
    CREATE INDEX shelves_until ON shelves(until_ms) WHERE ended_ms IS NULL;
    ALTER TABLE alerts ADD COLUMN shelved INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX alerts_shelved ON alerts(device_id) WHERE shelved = 1;
    "#,
    // 8: the people a notification is for (whoever was on shift in a route's team when it
    //    was sent), by `[[person]]` name; their addresses stay in the config.
    r#"
    ALTER TABLE outbox ADD COLUMN people TEXT;
    "#,
    // 9: conditions raised outside a policy's hours, alerted when the hours begin if still
    //    raised then (component '' when the device has none).
    r#"
    CREATE TABLE held_conditions (
        device_id TEXT NOT NULL,
        component TEXT NOT NULL,
        kind      TEXT NOT NULL,
        event_seq INTEGER NOT NULL REFERENCES events(seq),
        due_ms    INTEGER NOT NULL,
        PRIMARY KEY (device_id, component, kind)
    ) WITHOUT ROWID;
    CREATE INDEX held_conditions_due ON held_conditions(due_ms);
    "#,
    // 10: retention. What pruned telemetry said, per device and local day (the report adds
    //     these to the events still held), and the outbox by event, so pruning can tell an
    //     owed row without a scan.
    r#"
    CREATE TABLE device_days (
        device_id    TEXT NOT NULL,
        day          TEXT NOT NULL,
        events       INTEGER NOT NULL,
        first_ms     INTEGER,
        last_ms      INTEGER,
        low_readings INTEGER NOT NULL,
        min_percent  REAL,
        adapter      TEXT,
        registered   INTEGER,
        PRIMARY KEY (device_id, day)
    ) WITHOUT ROWID;
    CREATE INDEX device_days_day ON device_days(day);
    CREATE INDEX outbox_event ON outbox(event_seq);
    "#,
    // 11: console accounts (Argon2id PHC hashes; failures counted for the lockout), what each
    //     user did (logins, refusals, acknowledgements, resolutions), their sessions (a restart
    //     logs nobody out; the secret's SHA-256 only), and an alert's lifecycle
    //     events found without a scan (the console shows each open alert's history).
    r#"
    CREATE TABLE users (
        name            TEXT PRIMARY KEY,
        role            TEXT NOT NULL,
        hash            TEXT NOT NULL,
        disabled        INTEGER NOT NULL DEFAULT 0,
        failed_logins   INTEGER NOT NULL DEFAULT 0,
        last_failed_ms  INTEGER,
        last_login_ms   INTEGER,
        created_ms      INTEGER NOT NULL,
        changed_ms      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE user_audit (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms   INTEGER NOT NULL,
        user    TEXT NOT NULL,
        action  TEXT NOT NULL,
        detail  TEXT NOT NULL
    );
    CREATE INDEX user_audit_user ON user_audit(user, at_ms);
    CREATE TABLE console_sessions (
        id          TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        user        TEXT NOT NULL,
        role        TEXT NOT NULL,
        csrf        TEXT NOT NULL,
        created_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX events_correlation ON events(correlation_id, seq)
        WHERE correlation_id IS NOT NULL;
    "#,
    // 12: `dedupe(seen_ms)` is read only to prune rows from before migration 6 (no
    //     `until_ms`), yet every key paid an entry in it, rewritten on each sighting: it now
    //     holds those rows alone (`housekeeping::prune_if_due`'s second statement).
    r#"
    DROP INDEX dedupe_age;
    CREATE INDEX dedupe_legacy_seen ON dedupe(seen_ms) WHERE until_ms IS NULL;
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
        assert_eq!(migrate(&mut c).unwrap(), 12);
        assert_eq!(migrate(&mut c).unwrap(), 12);
        let v: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 12);
    }

    /// A file at version `v`, as a release of that schema left it.
    fn journal_at(v: usize) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..v] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", v as u32).unwrap();
        c
    }

    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn a_version_11_journal_migrates_keeping_its_undelivered_rows_and_legacy_dedupe_keys() {
        let mut c = journal_at(11);
        c.execute_batch(
            "INSERT INTO events (id, source, source_seq, kind, phase, priority, device_id, test,
                                 time_ms, recorded_ms, json)
             VALUES ('e1', 'urn:atgw:gw:a', 1, 'pendant_press', 'point', 'high', 'd1', 0, 1, 1, '{}');
             INSERT INTO outbox (sink, event_seq, lane) VALUES ('upstream', 1, 0), ('audit', 1, 0);
             INSERT INTO dedupe (key, seen_ms) VALUES ('legacy', 5);
             INSERT INTO dedupe (key, seen_ms, until_ms) VALUES ('new', 5, 500);",
        )
        .unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 12);
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(
            count("SELECT count(*) FROM outbox"),
            2,
            "undelivered rows kept"
        );
        assert_eq!(count("SELECT count(*) FROM events"), 1);
        assert_eq!(count("SELECT count(*) FROM dedupe"), 2);
        // Pruning still finds legacy keys without a scan, and the rest as before.
        let legacy = "DELETE FROM dedupe WHERE until_ms IS NULL AND seen_ms < 10";
        assert!(
            plan(&c, legacy).contains("USING INDEX dedupe_legacy_seen"),
            "{}",
            plan(&c, legacy)
        );
        let expired = "DELETE FROM dedupe WHERE until_ms < 10";
        assert!(
            plan(&c, expired).contains("dedupe_until"),
            "{}",
            plan(&c, expired)
        );
        assert_eq!(c.execute(legacy, []).unwrap(), 1);
        assert_eq!(
            count("SELECT count(*) FROM dedupe WHERE key = 'new'"),
            1,
            "a key with its own expiry is not pruned by the legacy rule"
        );
        // A key with its own expiry takes no entry in the legacy index.
        let entries = count(
            "SELECT count(*) FROM dedupe INDEXED BY dedupe_legacy_seen WHERE until_ms IS NULL AND seen_ms >= 0",
        );
        assert_eq!(entries, 0);
    }
}
