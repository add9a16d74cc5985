//! Outbox dispatch: one task per sink feeds that sink its undelivered rows, alarms first, and
//! records what it delivered. Each sink has its own cursors, so a slow sink never delays another.
//!
//! Rows are read in lanes by priority (high, medium, low, info) and the sink's in-flight window
//! is always filled from the highest lane that has work, so a high-priority alert waits for at
//! most one window of telemetry, never for a backlog. A row leaves the outbox only when the sink
//! says `Delivered`; failures are retried with capped exponential backoff and jitter (or after
//! the receiver's `Retry-After`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_sdk::Shutdown;
use atgw_sdk::sink::{Delivery, Outcome};
use rand::Rng;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::journal::{Reader, WriterCmd, WriterHandle};

const LANES: usize = 4;
/// Rows fetched per lane per read.
const FETCH: usize = 512;
/// Refill a lane's buffer when it holds fewer rows than this.
const LOW_WATER: usize = 128;
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Everything a dispatcher needs.
pub struct Dispatch {
    pub sink: String,
    pub journal: PathBuf,
    /// Deliveries in flight at most (sent to the sink, no outcome yet).
    pub window: usize,
    pub notify: Arc<Notify>,
    pub writer: WriterHandle,
    pub to_sink: mpsc::Sender<Delivery>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
    pub shutdown: Shutdown,
    /// Counts rows the sink confirmed (`atgw_events_out_total`).
    pub metrics: Arc<crate::metrics::Metrics>,
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

    loop {
        // Refill lanes that run low and may have more rows.
        for lane in 0..LANES {
            if !disabled && !exhausted[lane] && buffers[lane].len() < LOW_WATER {
                let (sink, after) = (d.sink.clone(), cursors[lane]);
                let r = reader.clone();
                let rows = tokio::task::spawn_blocking(move || {
                    let r = r.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
                    r.outbox_after(&sink, lane as i64, after, FETCH)
                })
                .await
                .map_err(|_| rusqlite::Error::InvalidQuery)??;
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
        let next_retry = retries.keys().next().copied();
        tokio::select! {
            biased;
            _ = d.shutdown.cancelled() => break,
            o = d.outcomes.recv() => {
                let Some(o) = o else { break };
                let mut next = Some(o);
                while let Some(o) = next {
                    if let Some(reason) = handle(o, &d, &mut inflight, &mut retries, &mut delivered)
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
            _ = d.notify.notified() => exhausted = [false; LANES],
            _ = sleep_until_opt(next_retry) => {}
        }
    }
    // Drain: give in-flight deliveries a bounded time to be confirmed.
    let deadline = Instant::now() + drain;
    while !inflight.is_empty() {
        match tokio::time::timeout_at(deadline, d.outcomes.recv()).await {
            Ok(Some(o)) => {
                handle(o, &d, &mut inflight, &mut retries, &mut delivered);
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
) -> Option<String> {
    match o {
        Outcome::Delivered(id) => {
            if inflight.remove(&id).is_some() {
                delivered.push(id);
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
