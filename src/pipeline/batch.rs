//! One transaction's worth of work ([`Batch`]) and what the pipeline knows about the gateway
//! ([`Setup`]): the rows every engine writes through (events with their outbox rows, sequence
//! numbers, device sightings), so they commit or roll back together. The engines (alerts,
//! rules) and the pipeline's own steps (`pipeline`) build on it; it calls none of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::clock::SharedClock;
use atgw_sdk::event::Event;
use atgw_sdk::sink::Delivery;
use jiff::Timestamp;
use rusqlite::{Transaction, params};

use crate::alerts::policy::Policies;
use crate::envelope;
use crate::registry::Registry;

/// What the pipeline (and the writer that runs it) knows about the gateway.
pub struct Setup {
    pub gateway_id: String,
    /// Every sink, with the hand-off that wakes its dispatcher.
    pub sinks: Vec<(String, Arc<crate::outbox::SinkWake>)>,
    pub registry: Arc<Registry>,
    pub policies: Arc<Policies>,
    /// People, teams and who is on shift when ([`crate::rota`]).
    pub rota: Arc<crate::rota::Rota>,
    pub vitals: Arc<crate::rules::vitals::config::VitalRules>,
    pub dedupe_window: Duration,
    pub dead_letter_bytes: usize,
    /// `[gateway] max_clock_skew`: device times further from `now` are flagged.
    pub max_clock_skew: Duration,
    /// Dead letters kept at most; the oldest beyond it are deleted and counted.
    pub max_dead_letters: usize,
    /// Unregistered devices the journal keeps a `devices` row for; the least recently heard
    /// beyond it are forgotten and counted ([`crate::journal::unregistered`]).
    pub max_unregistered_devices: usize,
    /// `[alerts] link_down_alert_after`: how long an adapter's link may be down before the
    /// gateway alert about it ([`crate::supervision`]).
    pub link_down_alert_after: Duration,
    /// `[journal]` retention windows ([`crate::journal::retention`]).
    pub retention: crate::journal::retention::Retention,
    /// `[journal] max_bytes`, resolved (`None`: no budget could be set).
    pub max_bytes: Option<u64>,
    pub clock: SharedClock,
    /// Counts what each batch committed (events in, dead letters, acks, commit latency).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether commits succeed, for `/readyz` ([`crate::journal::commits`]).
    pub commits: Arc<crate::journal::commits::CommitHealth>,
}

/// Bytes of a shed event kept in its dead letter: enough to see what it was.
pub const SHED_RAW_BYTES: usize = 256;

/// A device heard in this batch: (adapter, registered, last seen ms).
pub(crate) type Heard = HashMap<String, (String, bool, i64)>;

/// One transaction's worth of work: the open transaction and what it has touched so far.
/// The alert engine writes through it so its rows commit (or roll back) with the events.
pub struct Batch<'t> {
    pub tx: &'t Transaction<'t>,
    pub setup: &'t Setup,
    pub now: Timestamp,
    pub(crate) committed: &'t HashMap<String, u64>,
    /// Sequence counters touched in this batch, applied only if the batch commits.
    pub(crate) touched: HashMap<String, u64>,
    pub(crate) seen: Heard,
    /// Per sink, the outbox rows this batch added (lane, delivery): handed to its dispatcher
    /// after the commit; only sinks that got rows are woken.
    pub(crate) handed: Vec<Vec<(usize, Delivery)>>,
    /// The journal is at its disk budget: telemetry is shed ([`crate::journal::budget`]).
    pub(crate) shedding: bool,
    /// Telemetry events shed in this batch.
    pub(crate) shed: u64,
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
        self.insert_for(event, sinks, &HashMap::new())
    }

    /// Journals an event and queues it for the given sinks, each row for the people `people`
    /// names for its sink (by `[[person]]` name: who was on shift in a route's team).
    pub fn insert_for(
        &mut self,
        event: &Event,
        sinks: &[String],
        people: &HashMap<String, Vec<String>>,
    ) -> rusqlite::Result<i64> {
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
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO outbox (sink, event_seq, lane, people) VALUES (?1, ?2, ?3, ?4)",
        )?;
        // What the dispatcher would read back for this row (`Reader::outbox_after`).
        let mut delivery: Option<Delivery> = None;
        for sink in sinks {
            let names = people.get(sink).filter(|p| !p.is_empty());
            let names_json = names
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            stmt.execute(params![sink, seq, lane, names_json])?;
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
                    recipients: Default::default(),
                });
                d.outbox_id = outbox_id;
                // Names here; the dispatcher turns them into the sink's kind of address.
                d.recipients = names.map(|n| Arc::from(n.as_slice())).unwrap_or_default();
                self.handed[i].push((lane as usize, d.clone()));
            }
        }
        Ok(seq)
    }

    /// Sheds a telemetry event at the disk budget: a dead letter (`shed`, the first
    /// [`SHED_RAW_BYTES`] of the event) instead of an event row; the device is still answered
    /// and still counts as heard.
    pub(crate) fn shed(&mut self, event: &Event) -> rusqlite::Result<()> {
        let json = serde_json::to_string(event)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let keep = json
            .len()
            .min(SHED_RAW_BYTES.min(self.setup.dead_letter_bytes));
        self.tx
            .prepare_cached(
                "INSERT INTO dead_letters (adapter, reason, detail, origin, raw, raw_len, recorded_ms)
                 VALUES (?1, 'shed', ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                event.data.device.adapter,
                format!(
                    "journal at [journal] max_bytes: {} from {} not journaled (telemetry is shed, alarms never)",
                    event.data.kind.as_str(),
                    event.data.device.id
                ),
                event.source,
                &json.as_bytes()[..keep],
                json.len() as i64,
                self.now.as_millisecond()
            ])?;
        self.shed += 1;
        Ok(())
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
