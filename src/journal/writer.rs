//! The single writer. It owns the write connection on a dedicated thread, takes whatever
//! requests are waiting (group commit: one transaction and one fsync for the whole batch, no
//! artificial wait), commits, and only then answers. While one batch is being synced the next
//! one queues up, so throughput grows with load instead of paying one fsync per event.
//!
//! Everything that must be atomic with an event happens in the event's transaction, which the
//! writer opens and hands to [`crate::pipeline`] (dedupe keys, adapter state, device check-ins,
//! outbox rows, rules, and the alert engine's transitions and timers); the writer keeps the
//! queue, the group commit, the caps' bookkeeping and the replies. Alert timers also wake the
//! writer when they fall due.

use std::collections::HashMap;
use std::time::Duration;

use atgw_sdk::event::EventDraft;
use atgw_sdk::ingest::{Committed, DeadLetter, IngestError, IngestReceiver, IngestRequest};
use atgw_sdk::sink::Delivery;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use crate::alerts::{self, AlertCommand, AlertError, AlertView};
use crate::pipeline::{Batch, Setup};

/// Requests at most per transaction; bounds latency of the last one in a burst.
const MAX_BATCH: usize = 2048;
/// How often expired dedupe keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// After a failed commit, due timers are retried this much later, not in a tight loop (a timer
/// whose firing rolled back is still due).
const TIMER_RETRY: Duration = Duration::from_secs(1);
/// `adapter_state` key (under the reserved `gateway` adapter) of the watchdog's heartbeat:
/// the wall-clock time (ms) of the last heartbeat commit.
pub const HEARTBEAT_KEY: &str = "watchdog.heartbeat_ms";

/// Work for the writer that does not come from adapters.
#[derive(Debug)]
pub enum WriterCmd {
    /// Rows a sink delivered: they leave the outbox.
    Delivered { ids: Vec<i64> },
    /// A delivery attempt failed; recorded for operators (the retry schedule lives in memory).
    Failed { id: i64, error: String },
    /// Repeated attempts to deliver a notification of this alert failed: escalate now.
    DeliveryFailing { alert_id: String },
    /// An event the gateway raises about itself (corrupt journal, disabled sink, …).
    Gateway {
        draft: Box<EventDraft>,
        reply: Option<oneshot::Sender<Result<String, IngestError>>>,
    },
    /// A person acknowledges or resolves an alert (API, MQTT, CLI).
    Alert {
        cmd: AlertCommand,
        reply: oneshot::Sender<Result<AlertView, AlertError>>,
    },
    /// Answers once everything sent before it is committed.
    Flush { reply: oneshot::Sender<()> },
    /// The systemd watchdog's liveness probe: writes a heartbeat row and answers `Ok` only
    /// once that transaction committed, so a wedged writer or an unwritable journal starves
    /// the watchdog.
    Heartbeat {
        reply: oneshot::Sender<Result<(), IngestError>>,
    },
}

/// Sends commands to the writer.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    tx: mpsc::UnboundedSender<WriterCmd>,
}

impl WriterHandle {
    pub fn send(&self, cmd: WriterCmd) {
        // The writer outlives every sender it serves; after shutdown there is nobody to tell.
        let _ = self.tx.send(cmd);
    }

    /// Journals a gateway event; resolves with its id once committed.
    pub async fn gateway_event(&self, draft: EventDraft) -> Result<String, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::Gateway {
                draft: Box::new(draft),
                reply: Some(reply),
            })
            .map_err(|_| IngestError::Closed)?;
        rx.await.map_err(|_| IngestError::Closed)?
    }

    /// Applies an acknowledgement or resolution; resolves once it is committed.
    pub async fn alert(&self, cmd: AlertCommand) -> Result<AlertView, AlertError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::Alert { cmd, reply })
            .map_err(|_| AlertError::Unavailable)?;
        rx.await.map_err(|_| AlertError::Unavailable)?
    }

    /// Writes a heartbeat row; resolves once it is committed (the watchdog's probe).
    pub async fn heartbeat(&self) -> Result<(), IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::Heartbeat { reply })
            .map_err(|_| IngestError::Closed)?;
        rx.await.map_err(|_| IngestError::Closed)?
    }

    /// Waits until everything sent before this call is committed.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(WriterCmd::Flush { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A handle whose commands land in the returned receiver (for tests of code that talks to the
/// writer).
#[cfg(test)]
pub(crate) fn test_handle() -> (WriterHandle, mpsc::UnboundedReceiver<WriterCmd>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (WriterHandle { tx }, rx)
}

/// Starts the writer thread. It stops when the ingest channel and every `WriterHandle` are gone.
pub fn spawn(
    conn: Connection,
    setup: Setup,
    ingest: IngestReceiver,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = std::thread::Builder::new()
        .name("atgw-journal".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("journal writer cannot start its runtime: {e}");
                    return;
                }
            };
            let mut w = match Writer::new(conn, setup) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!("journal writer cannot load its state: {e}");
                    return;
                }
            };
            rt.block_on(w.run(ingest, rx));
            w.checkpoint();
        })?;
    Ok((WriterHandle { tx }, handle))
}

enum Item {
    Ingest(IngestRequest),
    Cmd(WriterCmd),
}

/// A reply to send once the batch's fate is known.
enum Reply {
    Submit(
        oneshot::Sender<Result<Vec<Committed>, IngestError>>,
        Vec<Committed>,
    ),
    Reject(oneshot::Sender<Result<(), IngestError>>),
    State(
        oneshot::Sender<Result<Vec<(String, String)>, IngestError>>,
        Vec<(String, String)>,
    ),
    Gateway(Option<oneshot::Sender<Result<String, IngestError>>>, String),
    Alert(
        oneshot::Sender<Result<AlertView, AlertError>>,
        Box<Result<AlertView, AlertError>>,
    ),
    Flush(oneshot::Sender<()>),
    Heartbeat(oneshot::Sender<Result<(), IngestError>>),
}

struct Writer {
    conn: Connection,
    setup: Setup,
    /// Last sequence number per source, as committed.
    sequences: HashMap<String, u64>,
    last_prune: Option<Timestamp>,
    /// When the earliest alert timer falls due (ms), as committed.
    next_timer: Option<i64>,
    supervisor: crate::supervision::Supervisor,
    /// Set by a failed commit: due timers wait until then (ms since the epoch).
    timers_held_until: Option<i64>,
    /// Gateway events nobody waits for whose batch failed: journaled first in the next one.
    unjournaled: Vec<EventDraft>,
    /// Outbox bookkeeping (`Delivered`, `DeliveryFailing`) whose batch failed: applied again
    /// first in the next one, so a failed commit neither redelivers forever nor forgets to
    /// escalate.
    held: Vec<WriterCmd>,
    /// The current run of failed commits, if any.
    outages: super::commits::Outages,
    /// The dead-letter cap was reached in this run (its gateway alert is raised once).
    dead_letters_capped: bool,
    /// The unregistered devices that have a `devices` row, and their cap.
    unregistered: super::unregistered::Unregistered,
}

/// What a committed batch changed in the writer's memory.
struct BatchResult {
    touched: HashMap<String, u64>,
    handed: Vec<Vec<(usize, Delivery)>>,
    next_timer: Option<i64>,
}

impl Writer {
    fn new(conn: Connection, setup: Setup) -> rusqlite::Result<Writer> {
        let mut sequences = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT source, last_seq FROM sources")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (s, n) = row?;
                sequences.insert(s, n.max(0) as u64);
            }
        }
        let rearmed =
            alerts::rearm_untimed(&conn, &setup.policies, setup.clock.now().as_millisecond())?;
        if rearmed > 0 {
            tracing::warn!("{rearmed} unresolved alerts had lost their timers; re-armed them");
        }
        let next_timer = alerts::next_due(&conn)?;
        let unregistered =
            super::unregistered::Unregistered::load(&conn, setup.max_unregistered_devices)?;
        setup
            .metrics
            .unregistered_devices(unregistered.len() as i64);
        let supervisor = crate::supervision::Supervisor::load(
            &conn,
            &setup.registry,
            setup.clock.now().as_millisecond(),
        )?;
        Ok(Writer {
            conn,
            setup,
            sequences,
            last_prune: None,
            next_timer,
            supervisor,
            timers_held_until: None,
            unjournaled: Vec::new(),
            held: Vec::new(),
            outages: Default::default(),
            dead_letters_capped: false,
            unregistered,
        })
    }

    async fn run(
        &mut self,
        mut ingest: IngestReceiver,
        mut cmds: mpsc::UnboundedReceiver<WriterCmd>,
    ) {
        let mut ingest_open = true;
        let mut cmds_open = true;
        let mut batch: Vec<Item> = Vec::with_capacity(256);
        while ingest_open || cmds_open {
            let timer = self.timer_sleep();
            tokio::select! {
                biased;
                c = cmds.recv(), if cmds_open => match c {
                    Some(c) => batch.push(Item::Cmd(c)),
                    None => { cmds_open = false; continue; }
                },
                r = ingest.recv(), if ingest_open => match r {
                    Some(r) => batch.push(Item::Ingest(r)),
                    None => { ingest_open = false; continue; }
                },
                // An alert timer fell due: an empty batch fires it.
                _ = timer => {}
            };
            while batch.len() < MAX_BATCH {
                if let Ok(c) = cmds.try_recv() {
                    batch.push(Item::Cmd(c));
                } else if let Ok(r) = ingest.try_recv() {
                    batch.push(Item::Ingest(r));
                } else {
                    break;
                }
            }
            self.commit_batch(std::mem::take(&mut batch));
        }
    }

    /// Sleeps until the next alert timer (wall clock, so it survives restarts unchanged).
    fn timer_sleep(&self) -> impl std::future::Future<Output = ()> + use<> {
        // The end of a commit outage is due too: its alert is journaled then.
        let settles = self.outages.settles_at().map(|t| t.as_millisecond());
        let due = [self.next_timer, self.supervisor.next_due(), settles]
            .into_iter()
            .flatten()
            .min();
        // Unjournaled gateway events are due now (held, like timers, after a failed commit).
        let due = match (due, self.unjournaled.is_empty() && self.held.is_empty()) {
            (d, true) => d,
            (Some(d), false) => Some(d.min(self.setup.clock.now().as_millisecond())),
            (None, false) => Some(self.setup.clock.now().as_millisecond()),
        };
        let due = due.map(|d| d.max(self.timers_held_until.unwrap_or(d)));
        let wait = due.map(|due| {
            let now = self.setup.clock.now().as_millisecond();
            Duration::from_millis(due.saturating_sub(now).max(0) as u64)
        });
        async move {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        }
    }

    fn commit_batch(&mut self, mut items: Vec<Item>) {
        if let Some(ended) = self.outages.settled(self.setup.clock.now()) {
            tracing::warn!(
                "journal commits succeed again after failing for {}s ({} batches refused; last error: {}); raising a gateway alert about it",
                ended.lasted.as_secs(),
                ended.batches,
                ended.error
            );
            let device = format!("gateway:{}:journal", self.setup.gateway_id);
            self.unjournaled.extend(ended.alert(&device));
        }
        if !self.unjournaled.is_empty() {
            let retry = self.unjournaled.drain(..).map(|draft| {
                Item::Cmd(WriterCmd::Gateway {
                    draft: Box::new(draft),
                    reply: None,
                })
            });
            items.splice(0..0, retry);
        }
        if !self.held.is_empty() {
            let held: Vec<Item> = self.held.drain(..).map(Item::Cmd).collect();
            items.splice(0..0, held);
        }
        let now = self.setup.clock.now();
        let changes_before = self.conn.total_changes();
        let mut replies = Vec::with_capacity(items.len());
        let started = std::time::Instant::now();
        let mut tally = crate::metrics::BatchTally::default();
        let mut unreplied: Vec<EventDraft> = Vec::new();
        // Commands nobody waits for that must not be lost with a failed transaction: kept and
        // applied again with the next batch.
        let mut held: Vec<WriterCmd> = Vec::new();
        // Items not reached when a statement failed: each still gets its answer (an error),
        // never a dropped reply, which a caller could not tell from "shutting down".
        let mut queue: std::collections::VecDeque<Item> = items.into();
        let mut lettered = false;
        let mut capped_now = false;
        let mut bounded = super::unregistered::Bounded::default();
        let outcome = (|| -> rusqlite::Result<BatchResult> {
            let tx = self.conn.transaction()?;
            let mut b = Batch {
                tx: &tx,
                setup: &self.setup,
                now,
                committed: &self.sequences,
                touched: HashMap::new(),
                seen: HashMap::new(),
                handed: vec![Vec::new(); self.setup.sinks.len()],
            };
            while let Some(item) = queue.pop_front() {
                match item {
                    Item::Ingest(IngestRequest::Submit {
                        adapter,
                        submissions,
                        reply,
                    }) => {
                        // The reply is registered first, so a failing statement answers it.
                        replies.push(Reply::Submit(reply, Vec::new()));
                        let mut outcomes = Vec::with_capacity(submissions.len());
                        for s in submissions {
                            outcomes.push(b.apply_submission(&adapter, s)?);
                        }
                        tally.events_in(&adapter, stored(&outcomes));
                        if let Some(Reply::Submit(_, out)) = replies.last_mut() {
                            *out = outcomes;
                        }
                    }
                    Item::Ingest(IngestRequest::Reject {
                        adapter,
                        letter,
                        reply,
                    }) => {
                        replies.push(Reply::Reject(reply));
                        insert_dead_letter(
                            b.tx,
                            &adapter,
                            &letter,
                            b.setup.dead_letter_bytes,
                            now,
                        )?;
                        tally.dead_letter(&letter.reason);
                        lettered = true;
                    }
                    Item::Ingest(IngestRequest::LoadState { adapter, reply }) => {
                        replies.push(Reply::State(reply, Vec::new()));
                        let mut stmt = b.tx.prepare_cached(
                            "SELECT key, value FROM adapter_state WHERE adapter = ?1",
                        )?;
                        let rows = stmt
                            .query_map([&*adapter], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
                        if let Some(Reply::State(_, r)) = replies.last_mut() {
                            *r = rows;
                        }
                    }
                    Item::Cmd(WriterCmd::Delivered { ids }) => {
                        held.push(WriterCmd::Delivered { ids: ids.clone() });
                        let mut stmt = b.tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
                        for id in ids {
                            stmt.execute([id])?;
                        }
                    }
                    Item::Cmd(WriterCmd::Failed { id, error }) => {
                        b.tx.prepare_cached(
                            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                        )?
                        .execute(params![id, error])?;
                    }
                    Item::Cmd(WriterCmd::DeliveryFailing { alert_id }) => {
                        held.push(WriterCmd::DeliveryFailing {
                            alert_id: alert_id.clone(),
                        });
                        alerts::on_delivery_failing(&mut b, &alert_id)?;
                    }
                    Item::Cmd(WriterCmd::Gateway { draft, reply }) => {
                        // Nobody waits to hear of a failure: keep it to journal again then
                        // (a gateway alert must not depend on the disk having room now).
                        if reply.is_none() {
                            unreplied.push((*draft).clone());
                        }
                        replies.push(Reply::Gateway(reply, String::new()));
                        let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![*draft])?;
                        tally.events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
                        if let Some(Reply::Gateway(_, id)) = replies.last_mut() {
                            *id = ids.into_iter().next().unwrap_or_default();
                        }
                    }
                    Item::Cmd(WriterCmd::Alert { cmd, reply }) => {
                        replies.push(Reply::Alert(
                            reply,
                            Box::new(Err(AlertError::Storage("not reached".into()))),
                        ));
                        let unacked = match &cmd {
                            AlertCommand::Ack { id, .. } => unacknowledged(b.tx, id)?,
                            AlertCommand::Resolve { .. } => None,
                        };
                        let result = alerts::on_command(&mut b, cmd)?;
                        if let (Some((priority, raised_ms)), Ok(_)) = (unacked, &result) {
                            let waited = now.as_millisecond().saturating_sub(raised_ms).max(0);
                            tally.acknowledged(&priority, Duration::from_millis(waited as u64));
                        }
                        if let Some(Reply::Alert(_, r)) = replies.last_mut() {
                            **r = result;
                        }
                    }
                    Item::Cmd(WriterCmd::Flush { reply }) => replies.push(Reply::Flush(reply)),
                    Item::Cmd(WriterCmd::Heartbeat { reply }) => {
                        replies.push(Reply::Heartbeat(reply));
                        // A real write, so the commit proves the journal still takes data.
                        b.tx.prepare_cached(
                            "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
                             ON CONFLICT(adapter, key) DO UPDATE SET value = excluded.value",
                        )?
                        .execute(params![
                            crate::GATEWAY_ADAPTER,
                            HEARTBEAT_KEY,
                            now.as_millisecond().to_string()
                        ])?;
                    }
                }
            }
            if lettered {
                let pruned = prune_dead_letters(b.tx, b.setup.max_dead_letters)?;
                if pruned > 0 && !self.dead_letters_capped {
                    capped_now = true;
                    tracing::warn!(
                        max_dead_letters = b.setup.max_dead_letters,
                        "dead letters reached max_dead_letters ({}); the oldest are deleted from now on and counted (adapter_state gateway/{DEAD_LETTERS_PRUNED_KEY}); raising a gateway alert",
                        b.setup.max_dead_letters
                    );
                    let d = crate::gateway_alerts::cap_reached(
                        &b.setup.gateway_id,
                        "dead_letters",
                        format!(
                            "Gateway dead letters reached their cap ({}); the oldest are being deleted (input nobody could read is arriving fast)",
                            b.setup.max_dead_letters
                        ),
                        "dead_letters_capped",
                    );
                    let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
                    tally.events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
                }
            }
            alerts::fire_due(&mut b)?;
            let heard: Vec<(String, i64)> = b
                .seen
                .iter()
                .map(|(id, (_, _, ms))| (id.clone(), *ms))
                .collect();
            for (id, ms) in heard {
                self.supervisor.heard(&mut b, &id, ms)?;
            }
            self.supervisor.fire_due(&mut b)?;
            b.write_seen()?;
            bounded = self.unregistered.bound(
                b.tx,
                b.seen.iter().map(|(id, (adapter, registered, _))| {
                    (id.as_str(), adapter.as_str(), *registered)
                }),
            )?;
            tally.unregistered_evicted(bounded.evicted());
            if self.unregistered.first_cap(&bounded) {
                unregistered_capped(&mut b, &mut tally, self.unregistered.max())?;
                // The alert's own device (the gateway's, never counted) gets its row too.
                b.write_seen()?;
            }
            for (source, n) in &b.touched {
                b.tx.prepare_cached(
                    "INSERT INTO sources (source, last_seq) VALUES (?1, ?2)
                     ON CONFLICT(source) DO UPDATE SET last_seq = excluded.last_seq",
                )?
                .execute(params![source, *n as i64])?;
            }
            prune_if_due(b.tx, &mut self.last_prune, self.setup.dedupe_window, now)?;
            let next_timer = alerts::next_due(b.tx)?;
            let (touched, handed) = (b.touched, b.handed);
            tx.commit()?;
            Ok(BatchResult {
                touched,
                handed,
                next_timer,
            })
        })();
        match outcome {
            Ok(BatchResult {
                touched,
                handed,
                next_timer,
            }) => {
                self.setup.metrics.record_batch(tally, started.elapsed());
                self.dead_letters_capped |= capped_now;
                self.unregistered.committed(std::mem::take(&mut bounded));
                self.setup
                    .metrics
                    .unregistered_devices(self.unregistered.len() as i64);
                // An empty transaction commits on a full disk too: only a write proves much.
                if self.conn.total_changes() > changes_before {
                    self.outages.committed(now, &self.setup.commits);
                }
                self.supervisor.committed();
                self.timers_held_until = None;
                self.sequences.extend(touched);
                self.next_timer = next_timer;
                for r in replies {
                    match r {
                        Reply::Submit(tx, out) => drop(tx.send(Ok(out))),
                        Reply::Reject(tx) => drop(tx.send(Ok(()))),
                        Reply::State(tx, rows) => drop(tx.send(Ok(rows))),
                        Reply::Gateway(Some(tx), id) => drop(tx.send(Ok(id))),
                        Reply::Gateway(None, _) => {}
                        Reply::Alert(tx, result) => drop(tx.send(*result)),
                        Reply::Flush(tx) => drop(tx.send(())),
                        Reply::Heartbeat(tx) => drop(tx.send(Ok(()))),
                    }
                }
                for ((_, wake), rows) in self.setup.sinks.iter().zip(handed) {
                    if !rows.is_empty() {
                        wake.committed(rows);
                    }
                }
            }
            Err(e) => {
                self.setup.metrics.commit_failed();
                if let Some(line) = self
                    .outages
                    .failed(now, &e.to_string(), &self.setup.commits)
                {
                    tracing::error!("{line}");
                }
                // Its supervision changes (a device_offline raised or cleared) were rolled back
                // with it: raise or clear them again in the next batch.
                self.supervisor.rolled_back();
                self.unjournaled.append(&mut unreplied);
                self.held.append(&mut held);
                for item in queue {
                    self.not_reached(item, &mut replies);
                }
                self.timers_held_until =
                    Some(now.as_millisecond() + TIMER_RETRY.as_millis() as i64);
                let err = IngestError::Storage(e.to_string());
                for r in replies {
                    match r {
                        Reply::Submit(tx, _) => drop(tx.send(Err(err.clone()))),
                        Reply::Reject(tx) => drop(tx.send(Err(err.clone()))),
                        Reply::State(tx, _) => drop(tx.send(Err(err.clone()))),
                        Reply::Gateway(Some(tx), _) => drop(tx.send(Err(err.clone()))),
                        Reply::Gateway(None, _) => {}
                        Reply::Alert(tx, _) => {
                            drop(tx.send(Err(AlertError::Storage(e.to_string()))))
                        }
                        Reply::Flush(tx) => drop(tx.send(())),
                        Reply::Heartbeat(tx) => drop(tx.send(Err(err.clone()))),
                    }
                }
            }
        }
    }

    /// An item the failed transaction never reached: its caller is answered with an error
    /// (pushed to `replies`), and what nobody waits for is kept for the next batch.
    fn not_reached(&mut self, item: Item, replies: &mut Vec<Reply>) {
        match item {
            Item::Ingest(IngestRequest::Submit { reply, .. }) => {
                replies.push(Reply::Submit(reply, Vec::new()))
            }
            Item::Ingest(IngestRequest::Reject { reply, .. }) => replies.push(Reply::Reject(reply)),
            Item::Ingest(IngestRequest::LoadState { reply, .. }) => {
                replies.push(Reply::State(reply, Vec::new()))
            }
            Item::Cmd(WriterCmd::Gateway { draft, reply: None }) => self.unjournaled.push(*draft),
            Item::Cmd(WriterCmd::Gateway {
                reply: Some(reply), ..
            }) => replies.push(Reply::Gateway(Some(reply), String::new())),
            Item::Cmd(WriterCmd::Alert { reply, .. }) => replies.push(Reply::Alert(
                reply,
                Box::new(Err(AlertError::Storage("not reached".into()))),
            )),
            Item::Cmd(WriterCmd::Flush { reply }) => replies.push(Reply::Flush(reply)),
            Item::Cmd(WriterCmd::Heartbeat { reply }) => replies.push(Reply::Heartbeat(reply)),
            // Bookkeeping only (the attempt count shown to operators).
            Item::Cmd(WriterCmd::Failed { .. }) => {}
            Item::Cmd(cmd @ (WriterCmd::Delivered { .. } | WriterCmd::DeliveryFailing { .. })) => {
                self.held.push(cmd)
            }
        }
    }

    fn checkpoint(&self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!("journal checkpoint at shutdown failed: {e}");
        }
    }
}

/// The unregistered-device cap was reached for the first time in this run: one log line and
/// one gateway alert, journaled in the same batch.
fn unregistered_capped(
    b: &mut Batch<'_>,
    tally: &mut crate::metrics::BatchTally,
    max: usize,
) -> rusqlite::Result<()> {
    tracing::warn!(
        max_unregistered_devices = max,
        "unregistered devices reached max_unregistered_devices ({max}); from now on the least recently heard are forgotten (their events are still journaled and alerted) and counted (adapter_state gateway/{}, atgw_unregistered_devices_evicted_total); add the real ones as [[device]] entries, or find out who publishes under invented device ids; raising a gateway alert",
        super::unregistered::EVICTED_KEY
    );
    let d = crate::gateway_alerts::cap_reached(
        &b.setup.gateway_id,
        "unregistered_devices",
        format!(
            "Unregistered devices reached their cap ({max}); the least recently heard are forgotten (their events still count)"
        ),
        "unregistered_devices_capped",
    );
    let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
    tally.events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
    Ok(())
}

/// Events journaled by a submit request.
fn stored(outcomes: &[Committed]) -> u64 {
    outcomes
        .iter()
        .map(|c| match c {
            Committed::Stored { ids } => ids.len() as u64,
            Committed::Duplicate => 0,
        })
        .sum()
}

/// Priority and raise time of an alert that has no acknowledgement yet (for time to ack).
fn unacknowledged(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<(String, i64)>> {
    tx.prepare_cached(
        "SELECT priority, raised_ms FROM alerts WHERE id = ?1 AND acked_ms IS NULL
                                                  AND status != 'resolved'",
    )?
    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Drops dedupe keys past their expiry (rows from before expiries were kept: older than the
/// journal's window), at most once a minute.
fn prune_if_due(
    tx: &Transaction<'_>,
    last: &mut Option<Timestamp>,
    window: Duration,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let due = match last {
        None => true,
        Some(t) => now.duration_since(*t).as_secs() >= PRUNE_EVERY.as_secs() as i64,
    };
    if due {
        let cutoff = now.as_millisecond() - window.as_millis() as i64;
        tx.prepare_cached("DELETE FROM dedupe WHERE until_ms < ?1")?
            .execute([now.as_millisecond()])?;
        tx.prepare_cached("DELETE FROM dedupe WHERE until_ms IS NULL AND seen_ms < ?1")?
            .execute([cutoff])?;
        *last = Some(now);
    }
    Ok(())
}

/// `adapter_state` key (gateway adapter) counting dead letters deleted by the cap.
pub const DEAD_LETTERS_PRUNED_KEY: &str = "dead_letters.pruned";

/// Deletes the oldest dead letters beyond `max` (ids only grow, so the newest `max` are the
/// ids above `max(id) - max`) and adds how many to the persistent count; returns how many.
fn prune_dead_letters(tx: &Transaction<'_>, max: usize) -> rusqlite::Result<u64> {
    let newest: Option<i64> = tx
        .prepare_cached("SELECT max(id) FROM dead_letters")?
        .query_row([], |r| r.get(0))?;
    let Some(newest) = newest else { return Ok(0) };
    let n = tx
        .prepare_cached("DELETE FROM dead_letters WHERE id <= ?1")?
        .execute([newest.saturating_sub(max as i64)])? as u64;
    if n > 0 {
        tx.prepare_cached(
            "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(adapter, key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?3 AS TEXT)",
        )?
        .execute(params![crate::GATEWAY_ADAPTER, DEAD_LETTERS_PRUNED_KEY, n as i64])?;
    }
    Ok(n)
}

fn insert_dead_letter(
    tx: &Transaction<'_>,
    adapter: &str,
    l: &DeadLetter,
    max_bytes: usize,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let kept = &l.raw[..l.raw.len().min(max_bytes)];
    tx.prepare_cached(
        "INSERT INTO dead_letters (adapter, reason, detail, origin, raw, raw_len, recorded_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        adapter,
        l.reason,
        l.detail,
        l.origin,
        kept,
        l.raw.len() as i64,
        now.as_millisecond()
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Policies;
    use crate::config::DeviceConfig;
    use crate::registry::Registry;
    use atgw_sdk::ingest::Submission;
    use std::sync::Arc;

    /// A writer on a fresh journal whose commits fail while the `fail` table has a row (a
    /// trigger aborts every event insert), with one supervised device that is never heard.
    fn failing_writer(dir: &std::path::Path) -> (WriterHandle, std::thread::JoinHandle<()>) {
        failing_writer_reporting(
            dir,
            Arc::new(crate::metrics::Metrics::new(&[], &[])),
            Arc::default(),
        )
    }

    /// [`failing_writer`] recording into these metrics and commit health.
    fn failing_writer_reporting(
        dir: &std::path::Path,
        metrics: Arc<crate::metrics::Metrics>,
        commits: Arc<super::super::commits::CommitHealth>,
    ) -> (WriterHandle, std::thread::JoinHandle<()>) {
        let path = dir.join(crate::journal::FILE_NAME);
        let opened = crate::journal::open(&path).unwrap();
        opened
            .conn
            .execute_batch(
                "CREATE TABLE fail (x);
                 INSERT INTO fail VALUES (1);
                 CREATE TRIGGER fail_events BEFORE INSERT ON events
                 WHEN EXISTS (SELECT 1 FROM fail)
                 BEGIN SELECT RAISE(ABORT, 'database or disk is full (injected)'); END;",
            )
            .unwrap();
        let device = DeviceConfig {
            id: "silent-panel".into(),
            adapter: "alarms".into(),
            match_keys: [("account".to_string(), "4009".to_string())].into(),
            resident: None,
            location: Default::default(),
            check_in: Some(Duration::from_millis(200)),
            not_reading_after: None,
        };
        let setup = Setup {
            gateway_id: "gw-test".into(),
            sinks: Vec::new(),
            registry: Arc::new(Registry::new("oakview", &[device])),
            policies: Arc::new(Policies::default()),
            vitals: Arc::new(crate::rules::VitalRules {
                config: Default::default(),
                residents: HashMap::new(),
                not_reading_after: Default::default(),
            }),
            dedupe_window: Duration::from_secs(3600),
            dead_letter_bytes: 1024,
            max_clock_skew: Duration::from_secs(120),
            max_unregistered_devices: 1000,
            max_dead_letters: 10_000,
            clock: Arc::new(atgw_sdk::clock::SystemClock),
            metrics,
            commits,
        };
        let (_ingest, rx) = atgw_sdk::ingest::channel(4);
        spawn(opened.conn, setup, rx).unwrap()
    }

    /// A writer on a fresh journal (`dedupe_window` 1 h) reading `clock`, and its ingest handle.
    fn writer_at(
        dir: &std::path::Path,
        clock: atgw_sdk::clock::ManualClock,
    ) -> (atgw_sdk::Ingest, WriterHandle, std::thread::JoinHandle<()>) {
        let opened = crate::journal::open(&dir.join(crate::journal::FILE_NAME)).unwrap();
        let setup = Setup {
            gateway_id: "gw-test".into(),
            sinks: Vec::new(),
            registry: Arc::new(Registry::new("oakview", &[])),
            policies: Arc::new(Policies::default()),
            vitals: Arc::new(crate::rules::VitalRules {
                config: Default::default(),
                residents: HashMap::new(),
                not_reading_after: Default::default(),
            }),
            dedupe_window: Duration::from_secs(3600),
            dead_letter_bytes: 1024,
            max_clock_skew: Duration::from_secs(120),
            max_unregistered_devices: 1000,
            max_dead_letters: 10_000,
            clock: Arc::new(clock),
            metrics: Arc::new(crate::metrics::Metrics::new(&[], &[])),
            commits: Arc::default(),
        };
        let (ingest, rx) = atgw_sdk::ingest::channel(4);
        let (writer, thread) = spawn(opened.conn, setup, rx).unwrap();
        (ingest.for_adapter("alarms"), writer, thread)
    }

    #[tokio::test]
    async fn a_dedupe_key_counts_as_a_retransmission_only_within_its_submission_window() {
        let dir = tempfile::tempdir().unwrap();
        let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let (ingest, writer, thread) = writer_at(dir.path(), clock.clone());
        let sub = |key: &str, window: Option<Duration>| Submission {
            events: vec![EventDraft::new(
                atgw_sdk::Kind::PendantPress,
                atgw_sdk::Phase::Point,
                "dc09:1234",
                "alarms",
            )],
            dedupe_key: Some(key.into()),
            dedupe_window: window,
            ..Submission::default()
        };
        let five_min = Some(Duration::from_secs(300));
        let stored = |c: &Committed| matches!(c, Committed::Stored { .. });
        assert!(stored(&ingest.submit(sub("k", five_min)).await.unwrap()));
        clock.advance(jiff::SignedDuration::from_secs(60));
        assert_eq!(
            ingest.submit(sub("k", five_min)).await.unwrap(),
            Committed::Duplicate,
            "within the adapter's window: a retransmission"
        );
        clock.advance(jiff::SignedDuration::from_secs(300));
        assert!(
            stored(&ingest.submit(sub("k", five_min)).await.unwrap()),
            "after the adapter's window the same key is a new event"
        );
        // Without a window of its own the journal's (1 h) applies; a longer one is capped to it.
        assert!(stored(&ingest.submit(sub("j", None)).await.unwrap()));
        clock.advance(jiff::SignedDuration::from_secs(1800));
        assert_eq!(
            ingest.submit(sub("j", None)).await.unwrap(),
            Committed::Duplicate
        );
        assert!(stored(
            &ingest
                .submit(sub("l", Some(Duration::from_secs(86_400))))
                .await
                .unwrap()
        ));
        clock.advance(jiff::SignedDuration::from_secs(3700));
        assert!(stored(
            &ingest
                .submit(sub("l", Some(Duration::from_secs(86_400))))
                .await
                .unwrap()
        ));
        drop((ingest, writer));
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_dedupe_key_is_kept_for_its_own_window_not_the_journals() {
        let dir = tempfile::tempdir().unwrap();
        let clock = atgw_sdk::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let (ingest, writer, thread) = writer_at(dir.path(), clock.clone());
        let sub = |key: &str, window: Option<Duration>| Submission {
            events: vec![EventDraft::new(
                atgw_sdk::Kind::PendantPress,
                atgw_sdk::Phase::Point,
                "dc09:1234",
                "alarms",
            )],
            dedupe_key: Some(key.into()),
            dedupe_window: window,
            ..Submission::default()
        };
        let keys = || -> Vec<String> {
            let c = Connection::open(dir.path().join(crate::journal::FILE_NAME)).unwrap();
            let mut s = c.prepare("SELECT key FROM dedupe ORDER BY key").unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        for n in 0..100 {
            ingest
                .submit(sub(
                    &format!("short-{n:03}"),
                    Some(Duration::from_secs(600)),
                ))
                .await
                .unwrap();
        }
        ingest.submit(sub("long", None)).await.unwrap();
        assert_eq!(keys().len(), 101);
        // Past the short window (and the once-a-minute prune): only the long key is left.
        clock.advance(jiff::SignedDuration::from_secs(11 * 60));
        ingest
            .submit(sub("later", Some(Duration::from_secs(600))))
            .await
            .unwrap();
        assert_eq!(keys(), vec!["later".to_owned(), "long".to_owned()]);
        drop((ingest, writer));
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    fn offline_raised(path: &std::path::Path) -> i64 {
        let c = Connection::open(path).unwrap();
        c.query_row(
            "SELECT count(*) FROM events WHERE device_id = 'silent-panel'
             AND kind = 'device_offline' AND phase = 'raised'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_missed_check_in_whose_commit_failed_is_raised_once_when_commits_succeed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let (writer, thread) = failing_writer(dir.path());
        // The check-in falls due and its raise fails to commit (retried about once a second).
        std::thread::sleep(Duration::from_millis(1_500));
        assert_eq!(offline_raised(&path), 0);
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::from_secs(5)).unwrap();
        other.execute("DELETE FROM fail", []).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while offline_raised(&path) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1_200));
        assert_eq!(
            offline_raised(&path),
            1,
            "the raise rolled back with its batch must be made again, once"
        );
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn a_gateway_alert_nobody_waits_for_is_journaled_once_commits_succeed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let (writer, thread) = failing_writer(dir.path());
        let mut draft = EventDraft::new(
            atgw_sdk::Kind::DeviceFault,
            atgw_sdk::Phase::Raised,
            "sink:carers",
            crate::GATEWAY_ADAPTER,
        );
        draft.data.message = Some("Alert channel `carers` disabled by its receiver".into());
        writer.send(WriterCmd::Gateway {
            draft: Box::new(draft),
            reply: None,
        });
        let faults = || -> i64 {
            let c = Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c.query_row(
                "SELECT count(*) FROM events WHERE json_extract(json, '$.data.device.id') = 'sink:carers'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        std::thread::sleep(Duration::from_millis(1_500));
        assert_eq!(faults(), 0, "nothing commits while the disk is full");
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::from_secs(5)).unwrap();
        other.execute("DELETE FROM fail", []).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while faults() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1_200));
        assert_eq!(faults(), 1, "journaled after the failure, once");
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn every_item_of_a_failed_batch_is_answered_and_bookkeeping_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let (writer, thread) = failing_writer(dir.path());
        // Hold SQLite's write lock so the writer is busy while the items below queue up: they
        // then form one batch whose first statement fails.
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::from_secs(5)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (hb, _hb_rx) = oneshot::channel();
        writer.send(WriterCmd::Heartbeat { reply: hb });
        std::thread::sleep(Duration::from_millis(100));
        let gateway = |device: &str| {
            let mut d = EventDraft::new(
                atgw_sdk::Kind::DeviceFault,
                atgw_sdk::Phase::Raised,
                device,
                crate::GATEWAY_ADAPTER,
            );
            d.data.message = Some(format!("{device} fault"));
            Box::new(d)
        };
        let (first, first_rx) = oneshot::channel();
        writer.send(WriterCmd::Gateway {
            draft: gateway("sink:first"),
            reply: Some(first),
        });
        let (ack, ack_rx) = oneshot::channel();
        writer.send(WriterCmd::Alert {
            cmd: AlertCommand::Ack {
                id: "no-such-alert".into(),
                by: "carer".into(),
                note: None,
            },
            reply: ack,
        });
        writer.send(WriterCmd::Gateway {
            draft: gateway("sink:later"),
            reply: None,
        });
        std::thread::sleep(Duration::from_millis(200));
        other.execute_batch("ROLLBACK").unwrap();

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (first, ack) = rt.block_on(async {
            let t = Duration::from_secs(10);
            (
                tokio::time::timeout(t, first_rx).await.unwrap(),
                tokio::time::timeout(t, ack_rx).await.unwrap(),
            )
        });
        assert!(
            matches!(first, Ok(Err(IngestError::Storage(_)))),
            "the failing item is answered with the storage error: {first:?}"
        );
        assert!(
            matches!(ack, Ok(Err(AlertError::Storage(_)))),
            "an item after the failure is answered 'not committed', never dropped: {ack:?}"
        );
        // The gateway event nobody waits for, queued after the failure, is kept and
        // journaled once commits succeed.
        other.execute("DELETE FROM fail", []).unwrap();
        let later = || -> i64 {
            let c = Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c.query_row(
                "SELECT count(*) FROM events WHERE json_extract(json, '$.data.device.id') = 'sink:later'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while later() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1_200));
        assert_eq!(later(), 1, "journaled after the failure, once");
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn failing_commits_make_the_journal_not_ready_are_counted_and_journal_a_gateway_alert_once_commits_succeed()
     {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let metrics = Arc::new(crate::metrics::Metrics::new(&[], &[]));
        let commits = Arc::new(super::super::commits::CommitHealth::default());
        let (writer, thread) =
            failing_writer_reporting(dir.path(), metrics.clone(), commits.clone());
        let failures = || -> u64 {
            let text = metrics.encode().unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("atgw_journal_commit_failures_total "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        // The silent panel's missed check-in fails to commit, retried about once a second.
        std::thread::sleep(Duration::from_millis(1_500));
        assert!(
            commits.failing_since().is_some(),
            "not ready while commits fail"
        );
        assert!(failures() >= 1, "failed commits are counted");
        let journal_alerts = || -> Vec<(String, Option<String>)> {
            let c = Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut s = c
                .prepare(
                    "SELECT phase, json_extract(json, '$.data.codes.vendor') FROM events
                     WHERE json_extract(json, '$.data.device.id') = 'gateway:gw-test:journal'
                     ORDER BY seq",
                )
                .unwrap();
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        assert_eq!(
            journal_alerts(),
            [],
            "nothing commits while the disk is full"
        );
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::from_secs(5)).unwrap();
        other.execute("DELETE FROM fail", []).unwrap();
        // Journaled once commits have kept succeeding for `commits::SETTLE`.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while journal_alerts().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let alerts = journal_alerts();
        assert_eq!(alerts.len(), 2, "raised and cleared: {alerts:?}");
        assert_eq!(alerts[0].0, "raised");
        let code = alerts[0].1.as_deref().unwrap_or_default();
        assert!(
            code.starts_with("journal commits failed for ")
                && code.contains("database or disk is full (injected)")
                && code.ends_with(&format!("; {} batches refused", failures())),
            "{code}"
        );
        assert_eq!(alerts[1].0, "cleared");
        assert_eq!(commits.failing_since(), None, "ready again");
        drop(writer);
        thread.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_letters_beyond_the_cap_delete_the_oldest_are_counted_and_alerted_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let opened = crate::journal::open(&path).unwrap();
        let setup = Setup {
            gateway_id: "gw-test".into(),
            sinks: Vec::new(),
            registry: Arc::new(Registry::new("oakview", &[])),
            policies: Arc::new(Policies::default()),
            vitals: Arc::new(crate::rules::VitalRules {
                config: Default::default(),
                residents: HashMap::new(),
                not_reading_after: Default::default(),
            }),
            dedupe_window: Duration::from_secs(3600),
            dead_letter_bytes: 1024,
            max_dead_letters: 3,
            max_clock_skew: Duration::from_secs(120),
            max_unregistered_devices: 1000,
            clock: Arc::new(atgw_sdk::clock::SystemClock),
            metrics: Arc::new(crate::metrics::Metrics::new(&[], &[])),
            commits: Arc::default(),
        };
        let (ingest, rx) = atgw_sdk::ingest::channel(4);
        let (writer, thread) = spawn(opened.conn, setup, rx).unwrap();
        let garbage = ingest.for_adapter("alarms");
        for n in 0..7 {
            garbage
                .reject(DeadLetter {
                    reason: "bad_crc".into(),
                    detail: format!("garbage {n}"),
                    origin: "udp:127.0.0.1:9".into(),
                    raw: vec![0x5a; 100],
                })
                .await
                .unwrap();
        }
        let c = Connection::open(&path).unwrap();
        let kept: Vec<String> = c
            .prepare("SELECT detail FROM dead_letters ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            kept,
            ["garbage 4", "garbage 5", "garbage 6"],
            "the newest are kept"
        );
        let pruned: String = c
            .query_row(
                "SELECT value FROM adapter_state WHERE adapter = ?1 AND key = ?2",
                params![crate::GATEWAY_ADAPTER, DEAD_LETTERS_PRUNED_KEY],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(pruned, "4", "what was deleted is counted");
        let alerts: i64 = c
            .query_row(
                "SELECT count(*) FROM events
                 WHERE json_extract(json, '$.data.device.id') = 'gateway:gw-test:dead_letters'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(alerts, 1, "one gateway alert when the cap is reached");
        drop((garbage, ingest, writer));
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}
