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
//! that has had undeliverable work for `sink_failing_alert_after` raises a gateway
//! `device_fault` alert (`sink:<name>`), cleared by its next delivery.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// How long work may wait undelivered before the gateway raises an alert about the sink.
    pub failing_alert_after: Duration,
}

/// Whether the sink is keeping up, for the gateway's alert about it.
struct Progress {
    /// The last delivery, or the last moment the sink had nothing to do.
    last: Instant,
    /// The gateway alert about this sink is raised and not yet cleared.
    alarmed: bool,
    last_error: String,
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
    let mut progress = Progress {
        last: Instant::now(),
        alarmed: false,
        last_error: String::new(),
    };

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
            for (lane, rows) in fetched {
                exhausted[lane] = rows.len() < FETCH;
                if let Some(last) = rows.last() {
                    cursors[lane] = last.outbox_id;
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
            if d.to_sink.send(delivery).await.is_err() {
                tracing::error!(sink = %d.sink, "sink task stopped; undelivered rows stay in the outbox");
                return Ok(());
            }
        }
        let idle =
            inflight.is_empty() && retries.is_empty() && buffers.iter().all(|b| b.is_empty());
        if idle {
            progress.last = Instant::now();
        }
        let alarm_at = (!idle && !disabled && !progress.alarmed)
            .then(|| progress.last + d.failing_alert_after);
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
                    if let Some(reason) = handle(o, &d, &mut inflight, &mut retries, &mut delivered, &mut progress)
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
                        buffers[lane].push_back(row);
                    } else {
                        // Unread rows come first; the table read will return this one too.
                    }
                }
            }
            _ = sleep_until_opt(wake) => {
                if alarm_at.is_some_and(|t| t <= Instant::now()) {
                    progress.alarmed = true;
                    sink_fault(&d, Phase::Raised, &progress.last_error);
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
                    &mut progress,
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
    progress: &mut Progress,
) -> Option<String> {
    match o {
        Outcome::Delivered(id) => {
            if inflight.remove(&id).is_some() {
                delivered.push(id);
            }
            progress.last = Instant::now();
            if std::mem::take(&mut progress.alarmed) {
                sink_fault(d, Phase::Cleared, "");
            }
        }
        Outcome::Disabled { outbox_id, reason } => {
            inflight.remove(&outbox_id);
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
                progress.last_error.clone_from(&reason);
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

/// The sink has had work it could not deliver for too long (raised), or delivers again
/// (cleared): a gateway alert so that people know their alert channel is down.
fn sink_fault(d: &Dispatch, phase: Phase, last_error: &str) {
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
        tracing::error!(sink = %d.sink, "nothing delivered for {:?} ({last_error}); raising a gateway alert", d.failing_alert_after);
        format!(
            "Alert channel `{}` has not delivered for {}s",
            d.sink,
            d.failing_alert_after.as_secs()
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
