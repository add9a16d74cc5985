//! The metrics registry (DESIGN §2: every drop, expiry and overflow is counted) and its
//! Prometheus text exposition for `/metrics`.
//!
//! One [`Metrics`] is built at start and shared (`Arc`) with whoever records: the journal
//! writer (events in, dead letters, commit latency, time to acknowledge; all recorded only once
//! the batch is committed, so a rolled-back batch counts nothing but its failure), the outbox dispatchers
//! (events out), and the local API (which renders it). The encoding is `prometheus-client`'s.
//!
//! Three kinds of value are read rather than recorded, at scrape time:
//! - Gauges that live in the journal (outbox depth and oldest age per sink, unresolved alerts
//!   by priority) come from a read-only connection ([`Metrics::refresh_from_journal`]). The
//!   writer is the gateway's one throughput bottleneck and owns the only write connection, so
//!   it is not asked to maintain them: a scrape costs a handful of indexed queries (the depth
//!   is an index range count, the oldest row one index seek per lane) on a WAL snapshot that
//!   never blocks the writer, and nothing at all when nobody scrapes.
//! - Per-component connection state, reconnects and refusals come from each adapter's and
//!   sink's [`Health`] ([`Metrics::watch`]), which the components already keep as atomics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use atgw_sdk::Health;
use atgw_sdk::event::Priority;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::journal::Reader;

/// `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Distinct dead-letter reasons kept as labels; later ones count as `other`. Reasons are
/// machine keys chosen by adapter code (`invalid_json`, `bad_crc`, …), so this is a guard
/// against a bug turning free text into unbounded series, not a limit reached in practice.
const MAX_REASONS: usize = 64;

/// Time-to-acknowledge buckets (seconds): care-team response from seconds to an hour.
const TTA_BUCKETS: &[f64] = &[
    5.0, 10.0, 15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdapterLabel {
    adapter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabel {
    what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabel {
    priority: String,
}

fn tta_histogram() -> Histogram {
    Histogram::new(TTA_BUCKETS.iter().copied())
}

/// The gateway's metrics. Recording is lock-free or takes a short uncontended lock; encoding
/// happens only on scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_in: Family<AdapterLabel, Counter>,
    events_out: Family<SinkLabel, Counter>,
    dead_letters: Family<ReasonLabel, Counter>,
    outbox_depth: Family<SinkLabel, Gauge>,
    outbox_oldest_age: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    open_alerts: Family<PriorityLabel, Gauge>,
    commit_latency: Histogram,
    commit_failures: Counter,
    time_to_ack: Family<PriorityLabel, Histogram, fn() -> Histogram>,
    api_auth_failures: Counter,
    api_connections_capped: Counter,
    console_logins: Family<OutcomeLabel, Counter>,
    console_csrf_refused: Counter,
    unregistered_evicted: Counter,
    unregistered_devices: Gauge,
    events_shed: Counter,
    journal_bytes: Gauge,
    journal_max_bytes: Gauge,
    pruned: Family<WhatLabel, Counter>,
    prune_cycles: Counter,
    prune_finished: Gauge,
    prune_step: Histogram,
    sinks: Vec<String>,
    /// Dead-letter reasons in use as labels (at most [`MAX_REASONS`]).
    reasons: Mutex<BTreeSet<String>>,
    components: Arc<RwLock<BTreeMap<String, Arc<Health>>>>,
}

/// What one writer batch did, recorded only if it commits.
#[derive(Debug, Default)]
pub struct BatchTally {
    events_in: BTreeMap<String, u64>,
    dead_letters: Vec<String>,
    /// First acknowledgements: (alert priority, seconds since the alert was raised).
    acks: Vec<(String, f64)>,
    /// Unregistered devices forgotten by the cap.
    unregistered_evicted: u64,
    /// Telemetry shed at the disk budget.
    shed: u64,
}

impl BatchTally {
    /// `n` events journaled from `adapter`.
    pub fn events_in(&mut self, adapter: &str, n: u64) {
        if n > 0 {
            *self.events_in.entry(adapter.to_owned()).or_default() += n;
        }
    }
    /// One input dead-lettered with `reason`.
    pub fn dead_letter(&mut self, reason: &str) {
        self.dead_letters.push(reason.to_owned());
    }
    /// `n` telemetry events shed at `[journal] max_bytes` (dead-lettered as `shed`).
    pub fn shed(&mut self, n: u64) {
        self.shed += n;
        for _ in 0..n {
            self.dead_letters.push("shed".to_owned());
        }
    }
    /// `n` unregistered devices forgotten by `[journal] max_unregistered_devices`.
    pub fn unregistered_evicted(&mut self, n: u64) {
        self.unregistered_evicted += n;
    }
    /// An alert of `priority` got its first acknowledgement `waited` after it was raised.
    pub fn acknowledged(&mut self, priority: &str, waited: Duration) {
        self.acks.push((priority.to_owned(), waited.as_secs_f64()));
    }
}

/// Journal-resident values, as read at scrape (or readiness) time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalGauges {
    /// Per sink: undelivered rows, and the age (s) of the oldest one when there is one.
    pub outbox: BTreeMap<String, (i64, Option<f64>)>,
    /// Unresolved alerts (open, acknowledged or cleared by the device, awaiting a person).
    pub open_alerts: BTreeMap<String, i64>,
}

impl JournalGauges {
    /// Reads the outbox of `sinks` and (when `alerts`) the unresolved alerts.
    pub fn read(
        reader: &Reader,
        sinks: &[String],
        alerts: bool,
        now: jiff::Timestamp,
    ) -> rusqlite::Result<JournalGauges> {
        let mut g = JournalGauges::default();
        for sink in sinks {
            let depth = reader.outbox_depth(sink)?;
            let oldest = reader
                .outbox_oldest_recorded_ms(sink)?
                .map(|ms| (now.as_millisecond() - ms).max(0) as f64 / 1000.0);
            g.outbox.insert(sink.clone(), (depth, oldest));
        }
        if alerts {
            g.open_alerts = reader
                .unresolved_alerts_by_priority()?
                .into_iter()
                .collect();
        }
        Ok(g)
    }
}

impl Metrics {
    /// Builds the registry with every series the gateway reports. Adapters and sinks are
    /// pre-created at zero so `rate()` works from the first scrape.
    pub fn new(adapters: &[String], sinks: &[String]) -> Metrics {
        let mut registry = Registry::default();
        let events_in = Family::<AdapterLabel, Counter>::default();
        let events_out = Family::<SinkLabel, Counter>::default();
        let dead_letters = Family::<ReasonLabel, Counter>::default();
        let outbox_depth = Family::<SinkLabel, Gauge>::default();
        let outbox_oldest_age = Family::<SinkLabel, Gauge<f64, AtomicU64>>::default();
        let open_alerts = Family::<PriorityLabel, Gauge>::default();
        // 0.5 ms … ~4 s: a group commit is one fsync plus the batch's inserts.
        let commit_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let commit_failures = Counter::default();
        let time_to_ack: Family<PriorityLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(tta_histogram);
        registry.register(
            "atgw_events_in",
            "Device events journaled, by adapter (gateway: events the gateway raised itself)",
            events_in.clone(),
        );
        registry.register(
            "atgw_events_out",
            "Outbox rows a sink confirmed delivered, by sink",
            events_out.clone(),
        );
        registry.register(
            "atgw_dead_letters",
            "Inputs dead-lettered in the journal, by reason",
            dead_letters.clone(),
        );
        registry.register(
            "atgw_outbox_depth",
            "Undelivered outbox rows, by sink (read from the journal at scrape time)",
            outbox_depth.clone(),
        );
        registry.register(
            "atgw_outbox_oldest_age_seconds",
            "Age of the oldest undelivered event by its receipt time, by sink (0 when empty)",
            outbox_oldest_age.clone(),
        );
        registry.register(
            "atgw_open_alerts",
            "Alerts not yet resolved (open, acknowledged or cleared awaiting a person), by priority",
            open_alerts.clone(),
        );
        registry.register(
            "atgw_commit_latency_seconds",
            "Journal group commit: transaction start to durable commit (fsync included)",
            commit_latency.clone(),
        );
        registry.register(
            "atgw_journal_commit_failures",
            "Journal batches that failed to commit (full disk, I/O error); nothing in them was acknowledged",
            commit_failures.clone(),
        );
        registry.register(
            "atgw_time_to_acknowledge_seconds",
            "From an alert being raised (or raised again after a clear) to its first acknowledgement, by alert priority",
            time_to_ack.clone(),
        );
        let api_auth_failures = Counter::default();
        registry.register(
            "atgw_api_auth_failures",
            "Local API requests refused for a missing or wrong bearer token",
            api_auth_failures.clone(),
        );
        let api_connections_capped = Counter::default();
        registry.register(
            "atgw_api_connections_capped",
            "Times the local API went to accept a client with all max_connections slots taken (the client waits for one to free)",
            api_connections_capped.clone(),
        );
        let console_logins = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "atgw_console_logins",
            "Console login attempts by outcome (ok, wrong_password, unknown_user, locked_out, disabled, rate_limited)",
            console_logins.clone(),
        );
        for o in [
            "ok",
            "wrong_password",
            "unknown_user",
            "locked_out",
            "disabled",
            "rate_limited",
        ] {
            console_logins.get_or_create_owned(&OutcomeLabel {
                outcome: o.to_owned(),
            });
        }
        let console_csrf_refused = Counter::default();
        registry.register(
            "atgw_console_csrf_refused",
            "Console state changes refused for a missing or wrong CSRF token",
            console_csrf_refused.clone(),
        );
        let unregistered_evicted = Counter::default();
        registry.register(
            "atgw_unregistered_devices_evicted",
            "Unregistered devices forgotten (least recently heard first) because [journal] max_unregistered_devices was reached; their events were journaled",
            unregistered_evicted.clone(),
        );
        let unregistered_devices = Gauge::default();
        registry.register(
            "atgw_unregistered_devices",
            "Unregistered devices the journal keeps a row for (at most [journal] max_unregistered_devices)",
            unregistered_devices.clone(),
        );
        let events_shed = Counter::default();
        registry.register(
            "atgw_events_shed",
            "Telemetry events not journaled because the journal was at [journal] max_bytes (dead-lettered as shed; alarms are never shed)",
            events_shed.clone(),
        );
        let journal_bytes = Gauge::default();
        registry.register(
            "atgw_journal_bytes",
            "Bytes of the journal file in use (pages minus free pages), as the writer last measured",
            journal_bytes.clone(),
        );
        let journal_max_bytes = Gauge::default();
        registry.register(
            "atgw_journal_max_bytes",
            "The journal's disk budget ([journal] max_bytes, or half the filesystem)",
            journal_max_bytes.clone(),
        );
        let pruned = Family::<WhatLabel, Counter>::default();
        registry.register(
            "atgw_journal_pruned",
            "Rows retention deleted (telemetry, events, alerts, dead_letters) and free pages returned (pages)",
            pruned.clone(),
        );
        let prune_cycles = Counter::default();
        registry.register(
            "atgw_journal_prune_cycles",
            "Retention cycles finished ([journal] prune_every), whether or not they deleted anything",
            prune_cycles.clone(),
        );
        let prune_finished = Gauge::default();
        registry.register(
            "atgw_journal_prune_finished_timestamp_seconds",
            "When the latest retention cycle finished (Unix seconds): alert on it growing old",
            prune_finished.clone(),
        );
        // 0.1 ms … ~0.4 s: one retention step is one small transaction.
        let prune_step = Histogram::new(exponential_buckets(0.0001, 2.0, 12));
        registry.register(
            "atgw_journal_prune_step_seconds",
            "One retention step (a transaction run between batches)",
            prune_step.clone(),
        );
        let components = Arc::new(RwLock::new(BTreeMap::new()));
        registry.register_collector(Box::new(HealthCollector {
            components: components.clone(),
        }));
        // `_owned`: creates the series without holding a lock guard.
        for a in adapters {
            events_in.get_or_create_owned(&AdapterLabel { adapter: a.clone() });
        }
        for s in sinks {
            let l = SinkLabel { sink: s.clone() };
            events_out.get_or_create_owned(&l);
            outbox_depth.get_or_create_owned(&l);
            outbox_oldest_age.get_or_create_owned(&l);
        }
        for p in Priority::ALL {
            open_alerts.get_or_create_owned(&PriorityLabel {
                priority: p.as_str().to_owned(),
            });
        }
        Metrics {
            registry,
            events_in,
            events_out,
            dead_letters,
            outbox_depth,
            outbox_oldest_age,
            open_alerts,
            commit_latency,
            commit_failures,
            time_to_ack,
            api_auth_failures,
            api_connections_capped,
            console_logins,
            console_csrf_refused,
            unregistered_evicted,
            unregistered_devices,
            events_shed,
            journal_bytes,
            journal_max_bytes,
            pruned,
            prune_cycles,
            prune_finished,
            prune_step,
            sinks: sinks.to_vec(),
            reasons: Mutex::new(BTreeSet::new()),
            components,
        }
    }

    /// Reports the connection state, reconnects and refusals of these adapters and sinks
    /// (keyed `adapter:<name>`, `sink:<name>`, `control:<name>`), replacing any earlier set.
    pub fn watch(&self, components: &BTreeMap<String, Arc<Health>>) {
        if let Ok(mut c) = self.components.write() {
            *c = components.clone();
        }
    }

    /// Records a committed writer batch and how long its commit took.
    pub fn record_batch(&self, tally: BatchTally, commit: Duration) {
        self.commit_latency.observe(commit.as_secs_f64());
        for (adapter, n) in tally.events_in {
            self.events_in
                .get_or_create(&AdapterLabel { adapter })
                .inc_by(n);
        }
        for reason in tally.dead_letters {
            let label = ReasonLabel {
                reason: self.reason_label(reason),
            };
            self.dead_letters.get_or_create(&label).inc();
        }
        if tally.unregistered_evicted > 0 {
            self.unregistered_evicted.inc_by(tally.unregistered_evicted);
        }
        if tally.shed > 0 {
            self.events_shed.inc_by(tally.shed);
        }
        for (priority, secs) in tally.acks {
            self.time_to_ack
                .get_or_create(&PriorityLabel { priority })
                .observe(secs);
        }
    }

    /// One local API request refused for its bearer token.
    pub fn api_auth_failure(&self) {
        self.api_auth_failures.inc();
    }

    /// A console login attempt ended with `outcome`.
    pub fn console_login(&self, outcome: &str) {
        self.console_logins
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A console state change came without its session's CSRF token.
    pub fn console_csrf_refused(&self) {
        self.console_csrf_refused.inc();
    }

    /// A local API client has to wait: `max_connections` connections are open.
    pub fn api_connections_capped(&self) {
        self.api_connections_capped.inc();
    }

    /// The journal's size in use and its budget, as the writer measured them.
    pub fn journal_bytes(&self, used: u64, max: u64) {
        self.journal_bytes
            .set(i64::try_from(used).unwrap_or(i64::MAX));
        self.journal_max_bytes
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// One retention step took `took`.
    pub fn prune_step(&self, took: Duration) {
        self.prune_step.observe(took.as_secs_f64());
    }

    /// Retention cycles finished since the start.
    pub fn prune_cycles(&self) -> u64 {
        self.prune_cycles.get()
    }

    /// A retention cycle finished at `at`, and what it deleted.
    pub fn pruned(&self, p: &crate::journal::retention::Pruned, at: jiff::Timestamp) {
        self.prune_cycles.inc();
        self.prune_finished.set(at.as_second());
        for (what, n) in [
            ("telemetry", p.telemetry),
            ("events", p.events),
            ("alerts", p.alerts),
            ("dead_letters", p.dead_letters),
            ("pages", p.pages),
        ] {
            if n > 0 {
                self.pruned
                    .get_or_create(&WhatLabel { what: what.into() })
                    .inc_by(n);
            }
        }
    }

    /// How many unregistered devices the journal keeps a row for now.
    pub fn unregistered_devices(&self, n: i64) {
        self.unregistered_devices.set(n);
    }

    /// A writer batch failed to commit (and so recorded nothing else).
    pub fn commit_failed(&self) {
        self.commit_failures.inc();
    }

    /// `n` rows a sink confirmed delivered.
    pub fn delivered(&self, sink: &str, n: u64) {
        self.events_out
            .get_or_create(&SinkLabel {
                sink: sink.to_owned(),
            })
            .inc_by(n);
    }

    /// Sinks whose outbox is reported.
    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }

    /// Sets the journal-resident gauges from a fresh read (blocking: run off the async workers).
    pub fn refresh_from_journal(&self, reader: &Reader) -> rusqlite::Result<()> {
        let g = JournalGauges::read(reader, &self.sinks, true, jiff::Timestamp::now())?;
        for (sink, (depth, oldest)) in g.outbox {
            let l = SinkLabel { sink };
            self.outbox_depth.get_or_create(&l).set(depth);
            self.outbox_oldest_age
                .get_or_create(&l)
                .set(oldest.unwrap_or(0.0));
        }
        for p in Priority::ALL {
            let n = g.open_alerts.get(p.as_str()).copied().unwrap_or(0);
            self.open_alerts
                .get_or_create(&PriorityLabel {
                    priority: p.as_str().to_owned(),
                })
                .set(n);
        }
        Ok(())
    }

    /// The Prometheus text exposition of everything registered.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Metrics {
    /// `reason` as a label value if it is a well-formed key and one of the first
    /// [`MAX_REASONS`] seen; `other` otherwise.
    fn reason_label(&self, reason: String) -> String {
        if !well_formed_reason(&reason) {
            return "other".into();
        }
        match self.reasons.lock() {
            Ok(seen) if seen.contains(&reason) => reason,
            Ok(mut seen) if seen.len() < MAX_REASONS => {
                seen.insert(reason.clone());
                reason
            }
            _ => "other".into(),
        }
    }
}

/// A machine key: short snake_case, never free text.
fn well_formed_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason.len() <= 48
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Per-component series read from each [`Health`] at scrape time.
#[derive(Debug)]
struct HealthCollector {
    components: Arc<RwLock<BTreeMap<String, Arc<Health>>>>,
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots: Vec<(String, atgw_sdk::health::HealthSnapshot)> =
            match self.components.read() {
                Ok(c) => c.iter().map(|(k, h)| (k.clone(), h.snapshot())).collect(),
                Err(_) => return Ok(()),
            };
        {
            let mut m = encoder.encode_descriptor(
                "atgw_component_connected",
                "1 while the component's connection is up (adapters, sinks, MQTT control).",
                None,
                MetricType::Gauge,
            )?;
            for (name, s) in &snapshots {
                let labels = [("component", name.as_str())];
                ConstGauge::new(i64::from(s.connected)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "atgw_reconnects",
                "Connections lost and retried, by component.",
                None,
                MetricType::Counter,
            )?;
            for (name, s) in &snapshots {
                let labels = [("component", name.as_str())];
                ConstCounter::new(s.reconnects).encode(m.encode_family(&labels)?)?;
            }
        }
        for (family, help, value) in [
            (
                "atgw_sink_bundles",
                "Bundled messages a sink's server accepted (several notifications to the same \
                 people in one email or SMS), by component.",
                (|s: &atgw_sdk::health::HealthSnapshot| s.bundles) as fn(&_) -> u64,
            ),
            (
                "atgw_sink_bundled_notifications",
                "Notifications delivered inside a bundled message, by component.",
                |s: &atgw_sdk::health::HealthSnapshot| s.bundled,
            ),
        ] {
            let mut m = encoder.encode_descriptor(family, help, None, MetricType::Counter)?;
            for (name, s) in snapshots.iter().filter(|(n, _)| n.starts_with("sink:")) {
                let labels = [("component", name.as_str())];
                ConstCounter::new(value(s)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "atgw_profile_path_absent",
                "Messages a profile rule took that left nothing, because none of the fields it \
                 reads was in them (a wrong `path`?), by component and `profile/rule`.",
                None,
                MetricType::Counter,
            )?;
            for (name, s) in &snapshots {
                for (rule, n) in s.path_absent.iter().take(MAX_REASONS) {
                    let labels = [("component", name.as_str()), ("rule", rule.as_str())];
                    ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "atgw_rejected",
                "Inputs a component refused, by reason: dead letters and drops that leave no \
                 row (connection_limit, rate_limited, overloaded).",
                None,
                MetricType::Counter,
            )?;
            for (name, s) in &snapshots {
                let mut kept = 0usize;
                let mut other = 0u64;
                for (reason, n) in &s.rejected {
                    let ok = kept < MAX_REASONS && well_formed_reason(reason);
                    if ok {
                        kept += 1;
                        let labels = [("component", name.as_str()), ("reason", reason.as_str())];
                        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
                    } else {
                        other += n;
                    }
                }
                if other > 0 {
                    let labels = [("component", name.as_str()), ("reason", "other")];
                    ConstCounter::new(other).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (Vec<String>, Vec<String>) {
        (vec!["zigbee".into()], vec!["upstream".into()])
    }

    #[test]
    fn a_batch_is_counted_by_adapter_reason_and_priority() {
        let (a, s) = names();
        let m = Metrics::new(&a, &s);
        let mut t = BatchTally::default();
        t.events_in("zigbee", 3);
        t.dead_letter("invalid_json");
        t.dead_letter("invalid_json");
        t.acknowledged("high", Duration::from_secs(12));
        m.record_batch(t, Duration::from_millis(2));
        m.delivered("upstream", 2);
        let text = m.encode().unwrap();
        assert!(
            text.contains("atgw_events_in_total{adapter=\"zigbee\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("atgw_dead_letters_total{reason=\"invalid_json\"} 2\n"));
        assert!(text.contains("atgw_events_out_total{sink=\"upstream\"} 2\n"));
        assert!(
            text.contains(
                "atgw_time_to_acknowledge_seconds_bucket{priority=\"high\",le=\"10\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "atgw_time_to_acknowledge_seconds_bucket{priority=\"high\",le=\"15\"} 1\n"
            )
        );
        assert!(text.contains("atgw_commit_latency_seconds_count 1\n"));
        assert!(text.contains("atgw_open_alerts{priority=\"info\"} 0\n"));
    }

    #[test]
    fn dead_letter_reasons_are_bounded_and_free_text_is_other() {
        let (a, s) = names();
        let m = Metrics::new(&a, &s);
        let mut t = BatchTally::default();
        t.dead_letter("Some free text: with spaces");
        for i in 0..(MAX_REASONS + 10) {
            t.dead_letter(&format!("reason_{i}"));
        }
        m.record_batch(t, Duration::ZERO);
        let text = m.encode().unwrap();
        assert_eq!(
            text.matches("atgw_dead_letters_total{").count(),
            MAX_REASONS + 1,
            "bounded: {text}"
        );
        // The first MAX_REASONS keys get their own label; the 10 after them and the free
        // text join `other`.
        assert!(
            text.contains("atgw_dead_letters_total{reason=\"other\"} 11\n"),
            "{text}"
        );
        assert!(text.contains(&format!("reason=\"reason_{}\"", MAX_REASONS - 1)));
        assert!(!text.contains(&format!("reason=\"reason_{}\"", MAX_REASONS)));
        assert!(!text.contains("free text"));
    }

    #[test]
    fn component_health_is_reported_per_component() {
        let (a, s) = names();
        let m = Metrics::new(&a, &s);
        let h = Arc::new(Health::default());
        h.set_connected(true);
        h.reconnected();
        h.reconnected();
        h.rejected("rate_limited");
        let mut map = BTreeMap::new();
        map.insert("adapter:zigbee".to_owned(), h);
        m.watch(&map);
        let text = m.encode().unwrap();
        assert!(text.contains("atgw_component_connected{component=\"adapter:zigbee\"} 1\n"));
        assert!(text.contains("atgw_reconnects_total{component=\"adapter:zigbee\"} 2\n"));
        assert!(
            text.contains(
                "atgw_rejected_total{component=\"adapter:zigbee\",reason=\"rate_limited\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn bundles_are_counted_per_sink() {
        let (a, s) = names();
        let m = Metrics::new(&a, &s);
        let h = Arc::new(Health::default());
        h.bundle_delivered(3);
        h.bundle_delivered(2);
        let mut map = BTreeMap::new();
        map.insert("sink:night-team".to_owned(), h);
        map.insert("adapter:zigbee".to_owned(), Arc::new(Health::default()));
        m.watch(&map);
        let text = m.encode().unwrap();
        assert!(
            text.contains("atgw_sink_bundles_total{component=\"sink:night-team\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "atgw_sink_bundled_notifications_total{component=\"sink:night-team\"} 5\n"
            ),
            "{text}"
        );
        assert!(!text.contains("atgw_sink_bundles_total{component=\"adapter:zigbee\"}"));
    }
}
