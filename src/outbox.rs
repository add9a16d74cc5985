//! Outbox dispatch: one task per sink feeds that sink its undelivered rows, alarms first, and
//! records what it delivered. Each sink has its own cursors, so a slow sink never delays another.
//!
//! Rows are read in lanes by priority (high, medium, low, info) and the sink's in-flight window
//! is always filled from the highest lane that has work, so a high-priority alert waits for at
//! most one window of telemetry, never for a backlog. A row leaves the outbox only when the sink
//! says `Delivered`; failures are retried with capped exponential backoff and jitter (or after
//! the receiver's `Retry-After`).
//!
//! Rows reach the dispatcher two ways. The journal writer hands over the rows it has just
//! committed ([`SinkWake`]), so an alarm does not wait for a read-back; the outbox table stays
//! the truth, read whenever a lane has rows the dispatcher has not seen (at start, behind a
//! backlog, after a hand-off overflowed).
//!
//! Failure is also reported to people, because a notification nobody receives is an alert
//! lost in practice: when one notification of an open alert has failed
//! `escalate_after_failed_attempts` times the alert engine tells its next tier now, and a sink
//! whose oldest undelivered row has waited `sink_failing_alert_after` raises a gateway
//! `device_fault` alert (`sink:<name>`), cleared once it has delivered what was late
//! ([`Lateness`]). Time since the last delivery never counts: a quiet night is not a fault.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_sdk::sink::{Delivery, Outcome};
use atgw_sdk::{Phase, Shutdown};
use rand::Rng;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::journal::{Reader, WriterCmd, WriterHandle};

const LANES: usize = 4;
/// Rows fetched per lane per read.
const FETCH: usize = 512;
/// Refill a lane's buffer when it holds fewer rows than this.
const LOW_WATER: usize = 128;
/// Rows handed over but not yet taken, at most; beyond it the dispatcher reads the table.
const HANDOFF_MAX: usize = 4096;
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// How the journal writer tells one sink's dispatcher that it committed rows for it: a
/// wake-up, and the rows themselves (lane and delivery), which saves reading them back.
#[derive(Debug, Default)]
pub struct SinkWake {
    notify: Notify,
    handed: Mutex<Handed>,
}

#[derive(Debug, Default)]
struct Handed {
    rows: Vec<(usize, Delivery)>,
    /// Rows were dropped (too many untaken): the dispatcher must read the table.
    overflowed: bool,
}

impl SinkWake {
    /// Called by the writer after the commit that made these rows durable, in commit order.
    pub fn committed(&self, rows: Vec<(usize, Delivery)>) {
        match self.handed.lock() {
            Ok(mut h) if !h.overflowed && h.rows.len() + rows.len() <= HANDOFF_MAX => {
                h.rows.extend(rows)
            }
            Ok(mut h) => {
                h.overflowed = true;
                h.rows = Vec::new();
            }
            // A poisoned lock hands nothing over; `take` then reports an overflow.
            Err(_) => {}
        }
        self.notify.notify_one();
    }

    fn take(&self) -> Handed {
        match self.handed.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => Handed {
                rows: Vec::new(),
                overflowed: true,
            },
        }
    }
}

/// Everything a dispatcher needs.
pub struct Dispatch {
    pub sink: String,
    pub journal: PathBuf,
    /// Deliveries in flight at most (sent to the sink, no outcome yet).
    pub window: usize,
    pub wake: Arc<SinkWake>,
    pub writer: WriterHandle,
    pub to_sink: mpsc::Sender<Delivery>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
    pub shutdown: Shutdown,
    /// Counts rows the sink confirmed (`atgw_events_out_total`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed attempts at one alert notification before its next tier is told (0: never).
    pub escalate_after_failed_attempts: u32,
    /// How long a row may wait undelivered before the gateway raises an alert about the sink.
    pub failing_alert_after: Duration,
    /// Whose addresses a row's people have, and which of them this sink uses: its type
    /// (`email`, `sms`), the key of a `[[person]]`'s `contact` table.
    pub rota: Arc<crate::rota::Rota>,
    pub channel: &'static str,
}

impl Dispatch {
    /// The delivery as the sink gets it: the row's people (by name) turned into their
    /// addresses for this sink's channel, now (a contact changed by a reload is used). A person
    /// without one for this channel is left out; the sink's own recipients still are told.
    fn addressed(&self, mut d: Delivery) -> Delivery {
        if !d.recipients.is_empty() {
            let addresses: Vec<String> = d
                .recipients
                .iter()
                .filter_map(|name| self.rota.contact(name, self.channel).map(str::to_owned))
                .collect();
            d.recipients = Arc::from(addresses);
        }
        d
    }
}

/// Whether the sink is keeping up, for the gateway's alert about it (DESIGN §6). What counts is
/// how long the oldest row this dispatcher holds for the sink (buffered, in flight, or waiting
/// for a retry) has gone undelivered, never the time since the last delivery: a sink with
/// nothing to do is never late, however long the quiet lasted.
///
/// A row waits from the moment the dispatcher took it (read from the table or handed over by
/// the writer), not from its commit: a backlog left from before a restart is not late before
/// the sink has had its chance at it, and unread rows behind a backlog are not counted twice.
///
/// The alert is raised once, when the oldest row reaches `after`, and cleared on a delivery
/// that leaves no row older than `after / 2` (the half keeps a sink hovering around the
/// threshold from raising and clearing on every row).
#[derive(Debug)]
struct Lateness {
    after: Duration,
    since: HashMap<i64, Instant>,
    oldest: BTreeSet<(Instant, i64)>,
    raised: bool,
    last_error: String,
}

impl Lateness {
    fn new(after: Duration) -> Self {
        Lateness {
            after,
            since: HashMap::new(),
            oldest: BTreeSet::new(),
            raised: false,
            last_error: String::new(),
        }
    }

    /// The dispatcher holds this row now; a row it already holds keeps its age.
    fn took(&mut self, outbox_id: i64, now: Instant) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.since.entry(outbox_id) {
            v.insert(now);
            self.oldest.insert((now, outbox_id));
        }
    }

    /// The row left the dispatcher's hands (delivered, or its sink was disabled).
    fn finished(&mut self, outbox_id: i64) {
        if let Some(t) = self.since.remove(&outbox_id) {
            self.oldest.remove(&(t, outbox_id));
        }
    }

    fn oldest(&self) -> Option<Instant> {
        self.oldest.first().map(|&(t, _)| t)
    }

    /// When the oldest row becomes late, while the alert is not raised: the dispatcher wakes then.
    fn due(&self) -> Option<Instant> {
        if self.raised {
            return None;
        }
        self.oldest().map(|t| t + self.after)
    }

    /// How long the oldest row has waited, if that is long enough to raise the alert now.
    fn raise(&mut self, now: Instant) -> Option<Duration> {
        let waited = now.saturating_duration_since(self.oldest()?);
        if self.raised || waited < self.after {
            return None;
        }
        self.raised = true;
        Some(waited)
    }

    /// The sink delivered this row; true when that clears the raised alert.
    fn delivered(&mut self, outbox_id: i64, now: Instant) -> bool {
        self.finished(outbox_id);
        let caught_up = self
            .oldest()
            .is_none_or(|t| now.saturating_duration_since(t) < self.after / 2);
        if self.raised && caught_up {
            self.raised = false;
            self.last_error.clear();
            return true;
        }
        false
    }
}

/// Runs until shutdown. Returns after in-flight deliveries have had `drain` to finish.
pub async fn run(mut d: Dispatch, drain: Duration) -> Result<(), rusqlite::Error> {
    let reader = Arc::new(Mutex::new(Reader::open(&d.journal)?));
    let mut cursors = [0i64; LANES];
    let mut buffers: [VecDeque<Delivery>; LANES] = Default::default();
    let mut exhausted = [false; LANES];
    let mut inflight: HashMap<i64, Delivery> = HashMap::new();
    // Retries by due time; the Vec keeps rows due at the same instant.
    let mut retries: BTreeMap<Instant, Vec<Delivery>> = BTreeMap::new();
    let mut delivered: Vec<i64> = Vec::new();
    // Set when the receiver disabled this sink: nothing more is offered until a restart.
    let mut disabled = false;
    let mut lateness = Lateness::new(d.failing_alert_after);

    loop {
        // Refill lanes that run low and may have more rows: one trip to the blocking pool for
        // all of them, because a wake-up after a commit is on an alarm's path.
        let wanted: Vec<(usize, i64)> = (0..LANES)
            .filter(|&lane| !disabled && !exhausted[lane] && buffers[lane].len() < LOW_WATER)
            .map(|lane| (lane, cursors[lane]))
            .collect();
        if !wanted.is_empty() {
            let (sink, r) = (d.sink.clone(), reader.clone());
            let fetched = tokio::task::spawn_blocking(move || {
                let r = r.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
                wanted
                    .into_iter()
                    .map(|(lane, after)| {
                        Ok((lane, r.outbox_after(&sink, lane as i64, after, FETCH)?))
                    })
                    .collect::<Result<Vec<_>, rusqlite::Error>>()
            })
            .await
            .map_err(|_| rusqlite::Error::InvalidQuery)??;
            let now = Instant::now();
            for (lane, rows) in fetched {
                exhausted[lane] = rows.len() < FETCH;
                if let Some(last) = rows.last() {
                    cursors[lane] = last.outbox_id;
                }
                for row in &rows {
                    lateness.took(row.outbox_id, now);
                }
                buffers[lane].extend(rows);
            }
        }
        // Fill the window: due retries, then lanes in priority order.
        let now = Instant::now();
        while !disabled && inflight.len() < d.window {
            let next = match retries.first_entry() {
                Some(mut e) if *e.key() <= now => {
                    let item = e.get_mut().pop();
                    if e.get().is_empty() {
                        e.remove();
                    }
                    item
                }
                _ => buffers.iter_mut().find_map(|b| b.pop_front()),
            };
            let Some(delivery) = next else { break };
            inflight.insert(delivery.outbox_id, delivery.clone());
            if d.to_sink.send(d.addressed(delivery)).await.is_err() {
                tracing::error!(sink = %d.sink, "sink task stopped; undelivered rows stay in the outbox");
                return Ok(());
            }
        }
        let alarm_at = lateness.due().filter(|_| !disabled);
        let next_retry = retries.keys().next().copied();
        let wake = match (next_retry, alarm_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            biased;
            _ = d.shutdown.cancelled() => break,
            o = d.outcomes.recv() => {
                let Some(o) = o else { break };
                let mut next = Some(o);
                while let Some(o) = next {
                    if let Some(reason) = handle(o, &d, &mut inflight, &mut retries, &mut delivered, &mut lateness)
                        && !disabled
                    {
                        disabled = true;
                        disable(&d, &reason);
                    }
                    next = d.outcomes.try_recv().ok();
                }
                if !delivered.is_empty() {
                    d.metrics.delivered(&d.sink, delivered.len() as u64);
                    d.writer.send(WriterCmd::Delivered { ids: std::mem::take(&mut delivered) });
                }
            }
            _ = d.wake.notify.notified() => {
                let handed = d.wake.take();
                if handed.overflowed {
                    exhausted = [false; LANES];
                }
                for (lane, row) in handed.rows {
                    if disabled || lane >= LANES || row.outbox_id <= cursors[lane] {
                        continue; // already read from the table, or not wanted
                    }
                    if exhausted[lane] {
                        // Everything before it in this lane has been read: take it as is.
                        cursors[lane] = row.outbox_id;
                        lateness.took(row.outbox_id, Instant::now());
                        buffers[lane].push_back(row);
                    } else {
                        // Unread rows come first; the table read will return this one too.
                    }
                }
            }
            _ = sleep_until_opt(wake) => {
                if alarm_at.is_some()
                    && let Some(waited) = lateness.raise(Instant::now())
                {
                    sink_fault(&d, Phase::Raised, waited, &lateness.last_error);
                }
            }
        }
    }
    // Drain: give in-flight deliveries a bounded time to be confirmed.
    let deadline = Instant::now() + drain;
    while !inflight.is_empty() {
        match tokio::time::timeout_at(deadline, d.outcomes.recv()).await {
            Ok(Some(o)) => {
                handle(
                    o,
                    &d,
                    &mut inflight,
                    &mut retries,
                    &mut delivered,
                    &mut lateness,
                );
            }
            _ => break,
        }
    }
    if !delivered.is_empty() {
        d.metrics.delivered(&d.sink, delivered.len() as u64);
        d.writer.send(WriterCmd::Delivered { ids: delivered });
    }
    Ok(())
}

fn handle(
    o: Outcome,
    d: &Dispatch,
    inflight: &mut HashMap<i64, Delivery>,
    retries: &mut BTreeMap<Instant, Vec<Delivery>>,
    delivered: &mut Vec<i64>,
    lateness: &mut Lateness,
) -> Option<String> {
    match o {
        Outcome::Delivered(id) => {
            if inflight.remove(&id).is_some() {
                delivered.push(id);
            }
            if lateness.delivered(id, Instant::now()) {
                sink_fault(d, Phase::Cleared, Duration::ZERO, "");
            }
        }
        Outcome::Disabled { outbox_id, reason } => {
            inflight.remove(&outbox_id);
            lateness.finished(outbox_id);
            d.writer.send(WriterCmd::Failed {
                id: outbox_id,
                error: format!("disabled: {reason}"),
            });
            return Some(reason);
        }
        Outcome::Retry {
            outbox_id,
            after,
            reason,
        } => {
            if let Some(mut delivery) = inflight.remove(&outbox_id) {
                delivery.attempt = delivery.attempt.saturating_add(1);
                let wait = after.unwrap_or_else(|| backoff(delivery.attempt));
                tracing::debug!(sink = %d.sink, outbox_id, attempt = delivery.attempt, ?wait, "delivery failed: {reason}");
                if delivery.lifecycle
                    && delivery.attempt == d.escalate_after_failed_attempts
                    && let Some(alert_id) = &delivery.alert_id
                {
                    tracing::warn!(sink = %d.sink, alert = %alert_id, attempts = delivery.attempt, "cannot deliver an alert notification ({reason}); telling its next escalation tier now");
                    d.writer.send(WriterCmd::DeliveryFailing {
                        alert_id: alert_id.to_string(),
                    });
                }
                lateness.last_error.clone_from(&reason);
                d.writer.send(WriterCmd::Failed {
                    id: outbox_id,
                    error: reason,
                });
                retries
                    .entry(Instant::now() + wait)
                    .or_default()
                    .push(delivery);
            }
        }
    }
    None
}

/// A row has waited undelivered for too long (raised), or the sink has delivered what was late
/// (cleared): a gateway alert so that people know their alert channel is down.
fn sink_fault(d: &Dispatch, phase: Phase, waited: Duration, last_error: &str) {
    let mut draft = atgw_sdk::EventDraft::new(
        atgw_sdk::Kind::DeviceFault,
        phase,
        format!("sink:{}", d.sink),
        crate::GATEWAY_ADAPTER,
    );
    draft.data.priority = atgw_sdk::Priority::High;
    draft.data.message = Some(if phase == Phase::Cleared {
        format!("Alert channel `{}` delivers again", d.sink)
    } else {
        let why = if last_error.is_empty() {
            "no answer from the sink"
        } else {
            last_error
        };
        tracing::error!(sink = %d.sink, waited_s = waited.as_secs(), "an event has waited {}s undelivered ({why}); raising a gateway alert", waited.as_secs());
        format!(
            "Alert channel `{}` has an event undelivered for {}s",
            d.sink,
            waited.as_secs()
        )
    });
    if !last_error.is_empty() {
        draft.data.codes.vendor = Some(format!("sink_failing: {last_error}"));
    }
    d.writer.send(WriterCmd::Gateway {
        draft: Box::new(draft),
        reply: None,
    });
}

/// The receiver asked to be left alone (HTTP 410): stop feeding it, keep its rows, tell people.
fn disable(d: &Dispatch, reason: &str) {
    tracing::error!(sink = %d.sink, "the receiver disabled this sink ({reason}); its undelivered events stay in the outbox until it is re-enabled and atgw restarted");
    let mut draft = atgw_sdk::EventDraft::new(
        atgw_sdk::Kind::DeviceFault,
        atgw_sdk::Phase::Raised,
        format!("sink:{}", d.sink),
        crate::GATEWAY_ADAPTER,
    );
    draft.data.priority = atgw_sdk::Priority::High;
    draft.data.message = Some(format!(
        "Alert channel `{}` disabled by its receiver",
        d.sink
    ));
    draft.data.codes.vendor = Some(format!("sink_disabled: {reason}"));
    d.writer.send(WriterCmd::Gateway {
        draft: Box::new(draft),
        reply: None,
    });
}

/// Capped exponential backoff with full jitter in its upper half.
pub fn backoff(attempt: u32) -> Duration {
    let exp = RETRY_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(RETRY_MAX);
    let half = exp / 2;
    half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis() as u64))
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> (usize, Delivery) {
        (
            0,
            Delivery {
                outbox_id: id,
                event_id: Arc::from("e"),
                kind: atgw_sdk::Kind::PendantPress,
                priority: atgw_sdk::Priority::High,
                device_id: Arc::from("d"),
                json: Arc::from("{}"),
                attempt: 0,
                alert_id: None,
                lifecycle: false,
                recipients: Default::default(),
            },
        )
    }

    #[test]
    fn handed_rows_are_taken_once_in_commit_order() {
        let wake = SinkWake::default();
        wake.committed(vec![row(1), row(2)]);
        wake.committed(vec![row(3)]);
        let h = wake.take();
        assert!(!h.overflowed);
        let ids: Vec<i64> = h.rows.iter().map(|(_, d)| d.outbox_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(wake.take().rows.is_empty(), "taken once");
    }

    #[test]
    fn a_hand_off_nobody_takes_overflows_into_a_table_read() {
        let wake = SinkWake::default();
        wake.committed((1..=HANDOFF_MAX as i64).map(row).collect());
        wake.committed(vec![row(HANDOFF_MAX as i64 + 1)]);
        // Dropped rows are not lost: they are in the outbox table, which the flag says to read.
        wake.committed(vec![row(HANDOFF_MAX as i64 + 2)]);
        let h = wake.take();
        assert!(h.overflowed && h.rows.is_empty());
        wake.committed(vec![row(9)]);
        let h = wake.take();
        assert!(!h.overflowed && h.rows.len() == 1, "reset by the take");
    }

    /// Time is passed in: `t(s)` is `s` seconds after an arbitrary start.
    fn clock() -> impl Fn(u64) -> Instant {
        let start = Instant::now();
        move |s| start + Duration::from_secs(s)
    }

    #[test]
    fn an_event_after_a_quiet_period_longer_than_the_threshold_is_not_late() {
        let t = clock();
        let mut l = Lateness::new(Duration::from_secs(120));
        assert_eq!(l.due(), None, "an idle sink has nothing to be late with");
        assert_eq!(l.raise(t(3600)), None);
        // An hour of silence, then an alarm: it has waited nothing yet.
        l.took(1, t(3600));
        assert_eq!(l.raise(t(3600)), None);
        assert_eq!(l.due(), Some(t(3600 + 120)));
        assert!(!l.delivered(1, t(3600)));
        assert_eq!(l.due(), None);
    }

    #[test]
    fn a_sink_keeping_up_under_steady_load_is_never_late() {
        let t = clock();
        let mut l = Lateness::new(Duration::from_secs(120));
        for s in 0..1000 {
            l.took(s as i64, t(s));
            assert_eq!(l.raise(t(s + 1)), None);
            assert!(!l.delivered(s as i64, t(s + 1)));
        }
    }

    #[test]
    fn a_row_undelivered_for_the_threshold_raises_once_and_its_delivery_clears() {
        let t = clock();
        let mut l = Lateness::new(Duration::from_secs(120));
        l.took(7, t(0));
        // Retried and read again: it keeps the age it had.
        l.took(7, t(60));
        assert_eq!(l.raise(t(119)), None);
        assert_eq!(l.due(), Some(t(120)));
        assert_eq!(l.raise(t(121)), Some(Duration::from_secs(121)));
        assert_eq!(l.due(), None, "raised once");
        assert_eq!(l.raise(t(500)), None);
        assert!(l.delivered(7, t(501)), "cleared once delivery resumed");
        assert!(!l.delivered(7, t(502)));
    }

    #[test]
    fn delivering_newer_rows_does_not_clear_while_an_older_one_is_still_late() {
        let t = clock();
        let mut l = Lateness::new(Duration::from_secs(120));
        l.took(1, t(0));
        l.took(2, t(100));
        assert!(l.raise(t(120)).is_some());
        l.took(3, t(130));
        assert!(!l.delivered(2, t(130)), "row 1 still waits");
        assert!(!l.delivered(3, t(131)));
        assert!(l.delivered(1, t(140)), "nothing late is left");
        // A late row the sink gave up on (disabled) leaves the count without a clear.
        l.took(4, t(200));
        assert!(l.raise(t(320)).is_some());
        l.finished(4);
        assert_eq!(l.due(), None);
    }

    #[test]
    fn the_clear_waits_until_the_remaining_rows_are_well_under_the_threshold() {
        let t = clock();
        let mut l = Lateness::new(Duration::from_secs(120));
        l.took(1, t(0));
        l.took(2, t(50));
        assert!(l.raise(t(120)).is_some());
        // Row 2 has waited 71 s, more than half the threshold: not caught up yet.
        assert!(!l.delivered(1, t(121)));
        l.took(3, t(121));
        assert!(l.delivered(2, t(122)), "row 3 is fresh");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= RETRY_MIN / 2 && backoff(0) <= RETRY_MIN);
        assert!(backoff(3) >= Duration::from_secs(2));
        for a in [10, 20, 1000] {
            assert!(backoff(a) <= RETRY_MAX);
            assert!(backoff(a) >= RETRY_MAX / 2);
        }
    }
}
