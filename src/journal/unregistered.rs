//! The cap on unregistered devices (`[journal] max_unregistered_devices`).
//!
//! Anyone who can publish to the broker can invent device ids: 50,000 topics made 50,000
//! `devices` rows, kept forever. So the bookkeeping kept for devices nobody registered is
//! bounded: beyond the cap the least recently heard unregistered devices are forgotten (their
//! `devices` row is deleted), counted in `adapter_state` (`gateway` /
//! [`EVICTED_KEY`]) and in `atgw_unregistered_devices_evicted_total`, and the first time in a
//! run the writer logs it once and raises one gateway alert.
//!
//! What is bounded is bookkeeping, never what a device said: the event of a device beyond the
//! cap is journaled, routed and alerted like any other (it may be an alarm), and a forgotten
//! device that speaks again simply gets a new row. Registered `[[device]]` entries never count
//! and are never forgotten. Unregistered devices are not supervised, so a forgotten row loses
//! its "last seen" time and, in the journal, the edge state its profile kept
//! (`<profile>|<device>|<field>` keys in `adapter_state`). The adapter keeps its own copy in
//! memory until it restarts; after that a forgotten device's next report counts as a first
//! sight: a standing alarm value raises again (it attaches to the open alert as a repeat) and a
//! first "normal" value clears nothing, so the open alert waits for a person. Both err towards
//! telling someone.
//!
//! The writer keeps the ids of the unregistered rows in memory (at most the cap, plus one
//! batch), loaded at start, so telling a new device from a known one costs no query; the
//! oldest are found through the partial index `devices_unregistered_seen`.

use std::collections::HashSet;

use rusqlite::{Connection, Transaction, params};

/// `adapter_state` key (gateway adapter) counting unregistered devices forgotten by the cap.
pub const EVICTED_KEY: &str = "unregistered_devices.evicted";

/// The unregistered devices the journal holds a row for.
#[derive(Debug)]
pub struct Unregistered {
    known: HashSet<String>,
    max: usize,
    /// The cap was reached in this run (logged and alerted once).
    capped: bool,
}

/// What one batch changes, applied to memory only once the batch commits.
#[derive(Debug, Default)]
pub struct Bounded {
    added: Vec<String>,
    /// Rows that no longer count: registered now (the registry changed since they were
    /// written).
    promoted: Vec<String>,
    evicted: Vec<String>,
    /// Edge-state rows (`adapter_state`) of the forgotten devices that were deleted.
    state_dropped: u64,
}

impl Bounded {
    /// Devices forgotten by this batch.
    pub fn evicted(&self) -> u64 {
        self.evicted.len() as u64
    }

    /// Edge-state rows deleted with the forgotten devices.
    pub fn state_dropped(&self) -> u64 {
        self.state_dropped
    }
}

impl Unregistered {
    /// Loads the ids of the unregistered rows.
    pub fn load(conn: &Connection, max: usize) -> rusqlite::Result<Unregistered> {
        let mut stmt =
            conn.prepare("SELECT device_id FROM devices WHERE registered = 0 AND adapter != ?1")?;
        let known = stmt
            .query_map([crate::GATEWAY_ADAPTER], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<HashSet<String>>>()?;
        Ok(Unregistered {
            known,
            max,
            capped: false,
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many unregistered devices the journal holds a row for.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// After this batch's `devices` rows were written (`heard`: every device id of the batch,
    /// its adapter and whether it is registered), deletes the least recently heard unregistered rows
    /// beyond the cap and counts them. Nothing changes in memory until [`Self::committed`].
    pub fn bound<'a>(
        &self,
        tx: &Transaction<'_>,
        heard: impl Iterator<Item = (&'a str, &'a str, bool)>,
    ) -> rusqlite::Result<Bounded> {
        let mut b = Bounded::default();
        for (id, adapter, registered) in heard {
            // The gateway's own components (`sink:…`, `gateway:…`) are not outside input.
            let counted = !registered && adapter != crate::GATEWAY_ADAPTER;
            match (counted, self.known.contains(id)) {
                (true, false) => b.added.push(id.to_owned()),
                (false, true) => b.promoted.push(id.to_owned()),
                _ => {}
            }
        }
        let held = self.known.len() + b.added.len() - b.promoted.len();
        let excess = held.saturating_sub(self.max);
        if excess == 0 {
            return Ok(b);
        }
        let mut stmt = tx.prepare_cached(
            "DELETE FROM devices WHERE device_id IN (
                 SELECT device_id FROM devices WHERE registered = 0 AND adapter != ?2
                 ORDER BY last_seen_ms, device_id LIMIT ?1)
             RETURNING device_id, adapter",
        )?;
        let evicted = stmt
            .query_map(params![excess as i64, crate::GATEWAY_ADAPTER], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
        b.state_dropped = drop_edge_state(tx, &evicted)?;
        b.evicted = evicted.into_iter().map(|(id, _)| id).collect();
        if !b.evicted.is_empty() {
            tx.prepare_cached(
                "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(adapter, key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?3 AS TEXT)",
            )?
            .execute(params![
                crate::GATEWAY_ADAPTER,
                EVICTED_KEY,
                b.evicted.len() as i64
            ])?;
        }
        Ok(b)
    }
}

/// Deletes the edge state of the forgotten devices. One pass over each adapter's state:
/// bounded, since the state of forgotten devices goes with them.
fn drop_edge_state(tx: &Transaction<'_>, evicted: &[(String, String)]) -> rusqlite::Result<u64> {
    let mut by_adapter: std::collections::BTreeMap<&str, HashSet<&str>> = Default::default();
    for (id, adapter) in evicted {
        by_adapter.entry(adapter).or_default().insert(id);
    }
    let mut dropped = 0;
    for (adapter, ids) in by_adapter {
        let keys: Vec<String> = tx
            .prepare_cached("SELECT key FROM adapter_state WHERE adapter = ?1")?
            .query_map([adapter], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?
            .into_iter()
            .filter(|k| atgw_profile::state_key_device(k).is_some_and(|d| ids.contains(d)))
            .collect();
        let mut del =
            tx.prepare_cached("DELETE FROM adapter_state WHERE adapter = ?1 AND key = ?2")?;
        for k in keys {
            dropped += del.execute(params![adapter, k])? as u64;
        }
    }
    Ok(dropped)
}

impl Unregistered {
    /// Whether this batch reaches the cap for the first time in this run (its one log line
    /// and gateway alert are due).
    pub fn first_cap(&self, b: &Bounded) -> bool {
        !self.capped && !b.evicted.is_empty()
    }

    /// The batch committed: its changes stand.
    pub fn committed(&mut self, b: Bounded) {
        if !b.evicted.is_empty() {
            self.capped = true;
        }
        for id in b.promoted {
            self.known.remove(&id);
        }
        self.known.extend(b.added);
        for id in b.evicted {
            self.known.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::journal::schema::migrate(&mut c).unwrap();
        c
    }

    fn hear(c: &mut Connection, u: &mut Unregistered, devices: &[(&str, bool)], ms: i64) -> u64 {
        let tx = c.transaction().unwrap();
        for (id, registered) in devices {
            tx.execute(
                "INSERT INTO devices (device_id, adapter, registered, last_seen_ms)
                 VALUES (?1, 'zigbee', ?2, ?3)
                 ON CONFLICT(device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
                                                      registered = excluded.registered",
                params![id, registered, ms],
            )
            .unwrap();
        }
        let b = u
            .bound(&tx, devices.iter().map(|(d, r)| (*d, "zigbee", *r)))
            .unwrap();
        let n = b.evicted();
        tx.commit().unwrap();
        u.committed(b);
        n
    }

    /// A device of the gateway's own (`sink:…`, `gateway:…`): unregistered, never counted.
    fn gateway_heard(c: &mut Connection, u: &mut Unregistered, id: &str, ms: i64) {
        let tx = c.transaction().unwrap();
        tx.execute(
            "INSERT INTO devices (device_id, adapter, registered, last_seen_ms)
             VALUES (?1, ?2, 0, ?3)",
            params![id, crate::GATEWAY_ADAPTER, ms],
        )
        .unwrap();
        let b = u
            .bound(&tx, [(id, crate::GATEWAY_ADAPTER, false)].into_iter())
            .unwrap();
        tx.commit().unwrap();
        u.committed(b);
    }

    fn rows(c: &Connection) -> Vec<String> {
        c.prepare("SELECT device_id FROM devices ORDER BY device_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn the_least_recently_heard_unregistered_devices_go_first_and_registered_ones_never() {
        let mut c = journal();
        let mut u = Unregistered::load(&c, 2).unwrap();
        assert_eq!(hear(&mut c, &mut u, &[("reg", true), ("a", false)], 1), 0);
        gateway_heard(&mut c, &mut u, "gateway:gw-test:journal", 1);
        assert_eq!(hear(&mut c, &mut u, &[("b", false)], 2), 0);
        // `a` is heard again, so `b` is now the least recently heard.
        assert_eq!(hear(&mut c, &mut u, &[("a", false)], 3), 0);
        assert!(!u.first_cap(&Bounded::default()));
        assert_eq!(hear(&mut c, &mut u, &[("c", false)], 4), 1);
        assert_eq!(rows(&c), ["a", "c", "gateway:gw-test:journal", "reg"]);
        assert_eq!(hear(&mut c, &mut u, &[("d", false), ("e", false)], 5), 2);
        assert_eq!(rows(&c), ["d", "e", "gateway:gw-test:journal", "reg"]);
        assert_eq!(u.len(), 2);
        let evicted: String = c
            .query_row(
                "SELECT value FROM adapter_state WHERE adapter = ?1 AND key = ?2",
                params![crate::GATEWAY_ADAPTER, EVICTED_KEY],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(evicted, "3", "every forgotten device is counted");
    }

    #[test]
    fn a_forgotten_device_takes_its_edge_state_with_it_and_no_one_else_s() {
        let mut c = journal();
        let mut u = Unregistered::load(&c, 1).unwrap();
        let state = [
            ("zigbee", "zigbee2mqtt|a|water_leak"),
            ("zigbee", "zigbee2mqtt|a|water_leak|test"),
            ("zigbee", "zigbee2mqtt|a|battery"),
            ("zigbee", "zigbee2mqtt|ab|water_leak"),
            ("zigbee", "zigbee2mqtt|b|water_leak"),
            ("zigbee", "zigbee2mqtt|reg|smoke"),
            ("other", "zigbee2mqtt|a|water_leak"),
            (crate::GATEWAY_ADAPTER, EVICTED_KEY),
        ];
        for (adapter, key) in state {
            c.execute(
                "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, 'true')",
                params![adapter, key],
            )
            .unwrap();
        }
        hear(&mut c, &mut u, &[("reg", true), ("a", false)], 1);
        let tx = c.transaction().unwrap();
        tx.execute(
            "INSERT INTO devices (device_id, adapter, registered, last_seen_ms)
             VALUES ('b', 'zigbee', 0, 2)",
            [],
        )
        .unwrap();
        let b = u.bound(&tx, [("b", "zigbee", false)].into_iter()).unwrap();
        assert_eq!((b.evicted(), b.state_dropped()), (1, 3));
        tx.commit().unwrap();
        u.committed(b);
        let kept: Vec<String> = c
            .prepare("SELECT adapter || ' ' || key FROM adapter_state ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            kept,
            [
                "gateway unregistered_devices.evicted",
                "other zigbee2mqtt|a|water_leak",
                "zigbee zigbee2mqtt|ab|water_leak",
                "zigbee zigbee2mqtt|b|water_leak",
                "zigbee zigbee2mqtt|reg|smoke",
            ]
        );
    }

    #[test]
    fn a_batch_that_rolls_back_changes_nothing_in_memory() {
        let mut c = journal();
        let mut u = Unregistered::load(&c, 1).unwrap();
        hear(&mut c, &mut u, &[("a", false)], 1);
        {
            let tx = c.transaction().unwrap();
            tx.execute(
                "INSERT INTO devices (device_id, adapter, registered, last_seen_ms)
                 VALUES ('b', 'zigbee', 0, 2)",
                [],
            )
            .unwrap();
            let b = u.bound(&tx, [("b", "zigbee", false)].into_iter()).unwrap();
            assert_eq!(b.evicted(), 1);
            assert!(u.first_cap(&b));
            // Dropped without commit: rolled back.
        }
        assert_eq!(rows(&c), ["a"]);
        assert_eq!(u.len(), 1);
        assert_eq!(hear(&mut c, &mut u, &[("b", false)], 3), 1);
        assert_eq!(rows(&c), ["b"]);
    }

    #[test]
    fn the_known_set_is_loaded_at_start_and_a_row_registered_since_stops_counting() {
        let mut c = journal();
        let mut u = Unregistered::load(&c, 10).unwrap();
        hear(&mut c, &mut u, &[("a", false), ("b", false)], 1);
        let mut again = Unregistered::load(&c, 10).unwrap();
        assert_eq!(again.len(), 2);
        // `a` is in the registry now.
        hear(&mut c, &mut again, &[("a", true)], 2);
        assert_eq!(again.len(), 1);
    }
}
