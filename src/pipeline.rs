//! The pipeline: what happens to an event inside its journal transaction, in the order the
//! data path reads (adapter → ingest → **pipeline** → outbox → sink). A submission's dedupe key
//! and adapter state are written, its drafts sealed into events (envelope and registry), the
//! vital-sign rules derive what they imply, and the alert engine sees each event; every row
//! lands in the open transaction through [`Batch`], so it commits or rolls back with the event.
//! The journal writer (`journal::writer`) owns the connection, the group commit and the
//! replies; it opens a batch, calls into here, and commits.

use atgw_sdk::event::EventDraft;
use atgw_sdk::ingest::{Committed, Submission};
use rusqlite::{OptionalExtension, params};

use crate::alerts;
use crate::envelope;

pub mod batch;

pub use batch::{Batch, Setup};

impl<'t> Batch<'t> {
    /// Seals an adapter's drafts into events, journals them and lets the alert engine see
    /// each one.
    pub(crate) fn device_events(
        &mut self,
        adapter: &str,
        drafts: Vec<EventDraft>,
    ) -> rusqlite::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(drafts.len());
        if drafts.is_empty() {
            return Ok(ids);
        }
        let source = envelope::source(&self.setup.gateway_id, adapter);
        for draft in drafts {
            let n = self.next_sequence(&source);
            let mut event = envelope::seal(
                &self.setup.registry,
                &self.setup.gateway_id,
                adapter,
                draft,
                self.now,
                n,
            );
            envelope::flag_clock_skew(&mut event, self.setup.max_clock_skew);
            self.seen.insert(
                event.data.device.id.clone(),
                (
                    adapter.to_owned(),
                    event.data.device.registered,
                    self.now.as_millisecond(),
                ),
            );
            ids.push(event.id.clone());
            let derived = crate::rules::derive(self, &self.setup.vitals.clone(), &event)?;
            alerts::on_device_event(self, event)?;
            for e in derived {
                alerts::on_device_event(self, e)?;
            }
        }
        Ok(ids)
    }

    /// Journals an event the gateway observed about an adapter's device (supervision): sealed
    /// under that adapter so the registry places it, and run through the alert engine.
    pub fn gateway_observation(
        &mut self,
        adapter: &str,
        draft: EventDraft,
    ) -> rusqlite::Result<()> {
        let source = envelope::source(&self.setup.gateway_id, adapter);
        let n = self.next_sequence(&source);
        let event = envelope::seal(
            &self.setup.registry,
            &self.setup.gateway_id,
            adapter,
            draft,
            self.now,
            n,
        );
        alerts::on_device_event(self, event)
    }

    pub(crate) fn apply_submission(
        &mut self,
        adapter: &str,
        s: Submission,
    ) -> rusqlite::Result<Committed> {
        if let Some(key) = &s.dedupe_key {
            let now = self.now.as_millisecond();
            // The adapter's retransmission window, at most the journal's.
            let window = s.dedupe_window.map_or(self.setup.dedupe_window, |w| {
                w.min(self.setup.dedupe_window)
            });
            let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            let journal_ms =
                i64::try_from(self.setup.dedupe_window.as_millis()).unwrap_or(i64::MAX);
            // Until when the key counts: its own expiry, or (a row from before expiries were
            // kept) its sighting plus the journal's window. A first delivery is never a
            // duplicate, so its key is not looked up (one B-tree seek per event saved).
            if !s.first_delivery {
                let until: Option<i64> = self
                    .tx
                    .prepare_cached(
                        "SELECT coalesce(until_ms, seen_ms + ?2) FROM dedupe WHERE key = ?1",
                    )?
                    .query_row(params![key, journal_ms], |r| r.get(0))
                    .optional()?;
                if until.is_some_and(|until| now < until) {
                    return Ok(Committed::Duplicate);
                }
            }
            self.tx
                .prepare_cached(
                    "INSERT INTO dedupe (key, seen_ms, until_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key) DO UPDATE SET seen_ms = excluded.seen_ms,
                                                    until_ms = excluded.until_ms",
                )?
                .execute(params![key, now, now.saturating_add(window_ms)])?;
        }
        for u in &s.state {
            match &u.value {
                Some(v) => self
                    .tx
                    .prepare_cached(
                        "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(adapter, key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![adapter, u.key, v])?,
                None => self
                    .tx
                    .prepare_cached("DELETE FROM adapter_state WHERE adapter = ?1 AND key = ?2")?
                    .execute(params![adapter, u.key])?,
            };
        }
        for d in &s.seen {
            let registered = self.setup.registry.resolve(adapter, &d.registry_keys);
            let id = registered
                .map(|e| e.id.clone())
                .unwrap_or_else(|| d.device_id.clone());
            self.seen.insert(
                id,
                (
                    adapter.to_owned(),
                    registered.is_some(),
                    self.now.as_millisecond(),
                ),
            );
        }
        let ids = self.device_events(adapter, s.events)?;
        Ok(Committed::Stored { ids })
    }
}
