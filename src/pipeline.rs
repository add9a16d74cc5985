//! The pipeline: what happens to an event inside its journal transaction, in the order the
//! data path reads (adapter → ingest → **pipeline** → outbox → sink). A submission's dedupe key
//! and adapter state are written, its drafts sealed into events (envelope and registry), the
//! vital-sign rules derive what they imply, and the alert engine sees each event; every row
//! lands in the open transaction through [`Batch`], so it commits or rolls back with the event.
//! The journal writer (`journal::writer`) owns the connection, the group commit and the
//! replies; it opens a batch, calls into here, and commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::clock::SharedClock;
use atgw_sdk::event::{Event, EventDraft};
use atgw_sdk::ingest::{Committed, Submission};
use atgw_sdk::sink::Delivery;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::alerts::{self, Policies};
use crate::envelope;
use crate::registry::Registry;

/// What the pipeline (and the writer that runs it) knows about the gateway.
pub struct Setup {
    pub gateway_id: String,
    /// Every sink, with the hand-off that wakes its dispatcher.
    pub sinks: Vec<(String, Arc<crate::outbox::SinkWake>)>,
    pub registry: Arc<Registry>,
    pub policies: Arc<Policies>,
    pub vitals: Arc<crate::rules::VitalRules>,
    pub dedupe_window: Duration,
    pub dead_letter_bytes: usize,
    /// `[gateway] max_clock_skew`: device times further from `now` are flagged.
    pub max_clock_skew: Duration,
    /// Dead letters kept at most; the oldest beyond it are deleted and counted.
    pub max_dead_letters: usize,
    /// Unregistered devices the journal keeps a `devices` row for; the least recently heard
    /// beyond it are forgotten and counted ([`crate::journal::unregistered`]).
    pub max_unregistered_devices: usize,
    pub clock: SharedClock,
    /// Counts what each batch committed (events in, dead letters, acks, commit latency).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether commits succeed, for `/readyz` ([`crate::journal::commits`]).
    pub commits: Arc<crate::journal::commits::CommitHealth>,
}

/// A device heard in this batch: (adapter, registered, last seen ms).
pub(crate) type Seen = HashMap<String, (String, bool, i64)>;

/// One transaction's worth of work: the open transaction and what it has touched so far.
/// The alert engine writes through it so its rows commit (or roll back) with the events.
pub struct Batch<'t> {
    pub tx: &'t Transaction<'t>,
    pub setup: &'t Setup,
    pub now: Timestamp,
    pub(crate) committed: &'t HashMap<String, u64>,
    /// Sequence counters touched in this batch, applied only if the batch commits.
    pub(crate) touched: HashMap<String, u64>,
    pub(crate) seen: Seen,
    /// Per sink, the outbox rows this batch added (lane, delivery): handed to its dispatcher
    /// after the commit; only sinks that got rows are woken.
    pub(crate) handed: Vec<Vec<(usize, Delivery)>>,
}

impl<'t> Batch<'t> {
    /// The next sequence number of `source`.
    pub fn next_sequence(&mut self, source: &str) -> u64 {
        let next = self
            .touched
            .get(source)
            .or_else(|| self.committed.get(source))
            .copied()
            .unwrap_or(0)
            + 1;
        self.touched.insert(source.to_owned(), next);
        next
    }

    /// Journals an event and queues it for the given sinks.
    pub fn insert(&mut self, event: &Event, sinks: &[String]) -> rusqlite::Result<i64> {
        let json = serde_json::to_string(event)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let source_seq: i64 = event.sequence.parse().unwrap_or(0);
        self.tx
            .prepare_cached(
                "INSERT INTO events (id, source, source_seq, kind, phase, priority, device_id, test,
                                     time_ms, recorded_ms, correlation_id, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                event.id,
                event.source,
                source_seq,
                event.data.kind.as_str(),
                event.data.phase.as_str(),
                event.data.priority.as_str(),
                event.data.device.id,
                event.data.test,
                event.time.as_millisecond(),
                event.recordedtime.as_millisecond(),
                event.correlationid,
                json,
            ])?;
        let seq = self.tx.last_insert_rowid();
        let lane = event.data.priority.lane();
        let mut stmt = self
            .tx
            .prepare_cached("INSERT INTO outbox (sink, event_seq, lane) VALUES (?1, ?2, ?3)")?;
        // What the dispatcher would read back for this row (`Reader::outbox_after`).
        let mut delivery: Option<Delivery> = None;
        for sink in sinks {
            stmt.execute(params![sink, seq, lane])?;
            let outbox_id = self.tx.last_insert_rowid();
            if let Some(i) = self.setup.sinks.iter().position(|(n, _)| n == sink) {
                let d = delivery.get_or_insert_with(|| Delivery {
                    outbox_id,
                    event_id: Arc::from(event.id.as_str()),
                    kind: event.data.kind,
                    priority: event.data.priority,
                    device_id: Arc::from(event.data.device.id.as_str()),
                    json: Arc::from(json.as_str()),
                    attempt: 0,
                    alert_id: event.correlationid.as_deref().map(Arc::from),
                    lifecycle: envelope::is_alert_lifecycle(&event.source),
                });
                d.outbox_id = outbox_id;
                self.handed[i].push((lane as usize, d.clone()));
            }
        }
        Ok(seq)
    }

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
            // kept) its sighting plus the journal's window.
            let until: Option<i64> = self
                .tx
                .prepare_cached(
                    "SELECT coalesce(until_ms, seen_ms + ?2) FROM dedupe WHERE key = ?1",
                )?
                .query_row(params![key, journal_ms], |r| r.get(0))
                .optional()?;
            if let Some(until) = until
                && !s.first_delivery
                && now < until
            {
                return Ok(Committed::Duplicate);
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

    pub(crate) fn write_seen(&self) -> rusqlite::Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO devices (device_id, adapter, registered, last_seen_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
                                                  registered = excluded.registered",
        )?;
        for (id, (adapter, registered, ms)) in &self.seen {
            stmt.execute(params![id, adapter, registered, ms])?;
        }
        Ok(())
    }
}
