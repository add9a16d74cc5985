//! The single writer. It owns the write connection on a dedicated thread, takes whatever
//! requests are waiting (group commit: one transaction and one fsync for the whole batch, no
//! artificial wait), commits, and only then answers. While one batch is being synced the next
//! one queues up, so throughput grows with load instead of paying one fsync per event. The
//! one wait: releases (outbox rows a sink delivered) alone do not make a batch; they ride in
//! the next one, or commit together after [`RELEASE_DELAY`] (a lost release is a redelivery).
//!
//! Everything that must be atomic with an event happens in the event's transaction, which the
//! writer opens and hands to [`crate::pipeline`] (dedupe keys, adapter state, device check-ins,
//! outbox rows, rules, and the alert engine's transitions and timers); the writer keeps the
//! queue, the group commit, the caps' bookkeeping and the replies. Alert timers also wake the
//! writer when they fall due. Inside: [`apply`] does one request's work in the transaction,
//! [`housekeeping`] the caps and pruning, [`reply`] the answers sent once the batch's fate is
//! known.

use std::collections::HashMap;
use std::time::Duration;

use atgw_sdk::event::EventDraft;
use atgw_sdk::ingest::{IngestError, IngestReceiver, IngestRequest};
use atgw_sdk::sink::Delivery;
use jiff::Timestamp;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::alerts::shelf::{ShelfCommand, ShelfView};
use crate::alerts::{self, AlertCommand, AlertError, AlertView};
use reply::Reply;

mod apply;
mod housekeeping;
mod reply;
#[cfg(test)]
mod tests;

use crate::pipeline::{Batch, Setup};
pub use housekeeping::DEAD_LETTERS_PRUNED_KEY;

/// Requests at most per transaction; bounds latency of the last one in a burst.
const MAX_BATCH: usize = 2048;
/// How often expired dedupe keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// After a failed commit, due timers are retried this much later, not in a tight loop (a timer
/// whose firing rolled back is still due).
const TIMER_RETRY: Duration = Duration::from_secs(1);
/// The first pruning cycle starts this long after the writer (or `prune_every`, if shorter).
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(60);
/// Releases (rows a sink delivered) wait at most this long for a batch with other work to
/// carry them, instead of each PUBACK costing its own commit: its fsync and, on an SD card,
/// whole WAL pages written twice (WAL, then checkpoint) for a few deleted rows. A release lost
/// to a crash in that time is a redelivery, which at-least-once allows (receivers deduplicate
/// by event id); the dispatcher never re-reads a row it has handed on (its cursor is past it).
const RELEASE_DELAY: Duration = Duration::from_secs(1);
/// Releases held at most; more are committed at once.
const RELEASE_MAX: usize = 8192;
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
    /// A person shelves a device's technical alerts or takes them off the shelf.
    Shelf {
        cmd: ShelfCommand,
        reply: oneshot::Sender<Result<ShelfView, AlertError>>,
    },
    /// An adapter's link to its devices went down or came back (its health, as the runtime
    /// polls it): device supervision holds or resumes that adapter's missed check-ins.
    Link {
        adapter: String,
        up: bool,
        at_ms: i64,
    },
    /// A console login, refusal, logout or action, for the user's audit trail and lockout count.
    Account(Box<crate::console::accounts::AccountEvent>),
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
    /// Bumped after every committed batch: readers that follow the journal (the console's
    /// live stream) wake on it instead of polling.
    commits: watch::Receiver<u64>,
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

    /// Applies a shelf request; resolves once it is committed.
    pub async fn shelf(&self, cmd: ShelfCommand) -> Result<ShelfView, AlertError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::Shelf { cmd, reply })
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

    /// Changes after every committed batch (its value counts them); the journal stays the
    /// source of truth, this only says when to read it.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
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
    let commits = watch::channel(0).1;
    (WriterHandle { tx, commits }, rx)
}

/// Starts the writer thread. It stops when the ingest channel and every `WriterHandle` are gone.
pub fn spawn(
    conn: Connection,
    setup: Setup,
    ingest: IngestReceiver,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (committed, commits) = watch::channel(0);
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
            w.committed = committed;
            rt.block_on(w.run(ingest, rx));
            w.mark_clean_stop();
            w.checkpoint();
        })?;
    Ok((WriterHandle { tx, commits }, handle))
}

enum Item {
    Ingest(IngestRequest),
    Cmd(WriterCmd),
}

/// Telemetry submissions at least this many events large are committed after what else was
/// gathered with them (see [`split_urgent`]); smaller ones cost an alarm nothing to wait for.
const BULK_EVENTS: usize = 32;

/// Splits a gathered batch into what commits first (everything else, in order) and the bulk
/// telemetry submitted with it (in order), when there is both; otherwise all of it is
/// "urgent" and commits as one. Bulk: a `Submit` of at least [`BULK_EVENTS`] events, none
/// above info priority. Reordering them is safe: requests in one batch were in flight at the
/// same time (an adapter waits for each answer before its next request), and each keeps its
/// own atomicity.
fn split_urgent(items: Vec<Item>) -> (Vec<Item>, Vec<Item>) {
    let bulk: Vec<bool> = items
        .iter()
        .map(|i| match i {
            Item::Ingest(IngestRequest::Submit { submissions, .. }) => {
                let mut events = submissions.iter().flat_map(|s| &s.events);
                submissions.iter().map(|s| s.events.len()).sum::<usize>() >= BULK_EVENTS
                    && events.all(|e| e.data.priority == atgw_sdk::Priority::Info)
            }
            _ => false,
        })
        .collect();
    if !bulk.contains(&true) || !bulk.contains(&false) {
        return (items, Vec::new());
    }
    let (mut urgent, mut rest) = (Vec::new(), Vec::new());
    for (item, is_bulk) in items.into_iter().zip(bulk) {
        if is_bulk {
            rest.push(item)
        } else {
            urgent.push(item)
        }
    }
    (urgent, rest)
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
    /// The disk budget and where the journal stands against it (`None`: no budget).
    budget: Option<super::budget::Budget>,
    /// The pruning cycle under way, and when the next one starts (ms).
    cycle: Option<super::retention::Cycle>,
    next_cycle_ms: i64,
    /// Where the last cycle left its event phases.
    resume: super::retention::Resume,
    /// Rate limit for pruning's failure log line.
    prune_log: atgw_sdk::ratelimit::LogLimiter,
    /// Told after every commit ([`WriterHandle::commits`]).
    committed: watch::Sender<u64>,
    /// Outbox rows delivered but not yet deleted: carried by the next batch, or committed
    /// alone at `releases_due` ([`RELEASE_DELAY`]).
    releases: Vec<i64>,
    releases_due: Option<tokio::time::Instant>,
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
        let budget = setup.max_bytes.map(super::budget::Budget::new);
        // The first cycle a minute after start: start-up is not the moment to prune.
        let next_cycle_ms = setup.clock.now().as_millisecond()
            + FIRST_PRUNE_AFTER.min(setup.retention.every).as_millis() as i64;
        let supervisor = crate::supervision::Supervisor::load(
            &conn,
            &setup.registry,
            setup.clock.now().as_millisecond(),
            setup.link_down_alert_after,
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
            budget,
            cycle: None,
            next_cycle_ms,
            resume: Default::default(),
            prune_log: atgw_sdk::ratelimit::LogLimiter::new(Duration::from_secs(300)),
            committed: watch::channel(0).0,
            releases: Vec::new(),
            releases_due: None,
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
            let prune = self.prune_sleep();
            let release = self.release_sleep();
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
                // Releases waited their longest: an empty batch carries them.
                _ = release => {}
                // Nothing waiting: one pruning step, then look again.
                _ = prune => {
                    self.prune_step();
                    continue;
                }
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
            if self.defer_releases(&mut batch) {
                continue;
            }
            // An alarm gathered with a bulk of telemetry (an MQTT adapter draining a backlog
            // submits hundreds of readings at once) gets its own, short transaction first,
            // instead of waiting for the bulk to be applied in one transaction with it.
            // (An empty batch commits too: it fires due timers and carries held releases.)
            let (urgent, bulk) = split_urgent(std::mem::take(&mut batch));
            self.commit_batch(urgent);
            if !bulk.is_empty() {
                self.commit_batch(bulk);
            }
        }
        // Nothing more will come: what was delivered is released before the writer stops.
        if !self.releases.is_empty() {
            self.commit_batch(Vec::new());
        }
    }

    /// Takes over a batch of nothing but releases, which then wait for the next batch (at most
    /// [`RELEASE_DELAY`], at most [`RELEASE_MAX`] rows). True when nothing is to be committed
    /// now; otherwise `commit_batch` carries the held releases.
    fn defer_releases(&mut self, batch: &mut Vec<Item>) -> bool {
        let only_releases = !batch.is_empty()
            && batch
                .iter()
                .all(|i| matches!(i, Item::Cmd(WriterCmd::Delivered { .. })));
        if !only_releases {
            return false;
        }
        for item in batch.drain(..) {
            if let Item::Cmd(WriterCmd::Delivered { ids }) = item {
                self.releases.extend(ids);
            }
        }
        let due = *self
            .releases_due
            .get_or_insert_with(|| tokio::time::Instant::now() + RELEASE_DELAY);
        self.releases.len() < RELEASE_MAX && tokio::time::Instant::now() < due
    }

    /// Sleeps until held releases are due, if any are held.
    fn release_sleep(&self) -> impl std::future::Future<Output = ()> + use<> {
        let due = self.releases_due.filter(|_| !self.releases.is_empty());
        async move {
            match due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
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

    /// Sleeps until pruning has work: now while a cycle is under way, else when the next
    /// one starts.
    fn prune_sleep(&self) -> impl std::future::Future<Output = ()> + use<> {
        let now = self.setup.clock.now().as_millisecond();
        let due = if self.cycle.is_some() {
            now
        } else {
            self.next_cycle_ms
        };
        let due = due.max(self.timers_held_until.unwrap_or(due));
        let wait = Duration::from_millis(due.saturating_sub(now).max(0) as u64);
        tokio::time::sleep(wait)
    }

    /// One retention step in its own transaction ([`super::retention`]).
    fn prune_step(&mut self) {
        let now = self.setup.clock.now();
        let (retention, resume) = (&self.setup.retention, self.resume);
        let cycle = self
            .cycle
            .get_or_insert_with(|| super::retention::Cycle::start(retention, now, resume));
        let started = std::time::Instant::now();
        let outcome = (|| -> rusqlite::Result<bool> {
            let tx = self.conn.transaction()?;
            let more = super::retention::step(&tx, retention, cycle)?;
            tx.commit()?;
            Ok(more)
        })();
        self.setup.metrics.prune_step(started.elapsed());
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                let p = cycle.pruned;
                self.resume = cycle.resume();
                self.cycle = None;
                self.next_cycle_ms = now.as_millisecond() + retention.every.as_millis() as i64;
                self.setup.metrics.pruned(&p, now);
                if p != Default::default() {
                    tracing::info!(
                        telemetry = p.telemetry,
                        events = p.events,
                        alerts = p.alerts,
                        dead_letters = p.dead_letters,
                        pages = p.pages,
                        "journal retention: pruned {} telemetry events past telemetry_retention, {} events and {} resolved alerts past alert_retention, {} dead letters; returned {} free pages",
                        p.telemetry,
                        p.events,
                        p.alerts,
                        p.dead_letters,
                        p.pages
                    );
                }
            }
            Err(e) => {
                self.cycle = None;
                self.next_cycle_ms = now.as_millisecond() + FIRST_PRUNE_AFTER.as_millis() as i64;
                if let Some(skipped) = self.prune_log.allow("prune") {
                    tracing::warn!(
                        "journal retention step failed (tried again in a minute; {skipped} such lines skipped): {e}"
                    );
                }
            }
        }
    }

    /// Measures the journal against its budget; the gateway alert to journal in this batch
    /// if the level changed.
    fn measure_budget(&mut self) -> Option<EventDraft> {
        let budget = self.budget.as_mut()?;
        match super::budget::used_bytes(&self.conn) {
            Ok(used) => budget.used = used,
            Err(e) => {
                tracing::debug!("journal size unreadable: {e}");
                return None;
            }
        }
        self.setup
            .metrics
            .journal_bytes(budget.used, budget.max_bytes);
        let level = budget.level();
        let what = format!(
            "{} of its {} budget ([journal] max_bytes)",
            super::budget::human(budget.used),
            super::budget::human(budget.max_bytes)
        );
        use super::budget::Level;
        let gw = &self.setup.gateway_id;
        match (level, budget.warned, budget.shed_announced) {
            (Level::Fine, true, _) => Some(crate::gateway_alerts::journal_space(
                gw,
                atgw_sdk::Phase::Cleared,
                false,
                format!("Gateway journal is back within its disk budget: {what}"),
            )),
            (Level::Warn, false, _) => Some(crate::gateway_alerts::journal_space(
                gw,
                atgw_sdk::Phase::Raised,
                false,
                format!(
                    "Gateway journal is filling its disk: {what}; at the budget readings will be dropped (alarms never are). Shorten [journal] telemetry_retention, raise max_bytes, or free disk"
                ),
            )),
            (Level::Full, _, false) => Some(crate::gateway_alerts::journal_space(
                gw,
                atgw_sdk::Phase::Raised,
                true,
                format!(
                    "Gateway journal is at its disk budget: {what}; readings (telemetry) are being dropped and counted; alarms are still journaled. Shorten [journal] telemetry_retention, raise max_bytes, or free disk"
                ),
            )),
            _ => None,
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
        // Held releases ride in this batch (kept in `held` by `apply` should it fail).
        self.releases_due = None;
        if !self.releases.is_empty() {
            let ids = std::mem::take(&mut self.releases);
            items.insert(0, Item::Cmd(WriterCmd::Delivered { ids }));
        }
        let space_alert = self.measure_budget();
        let shedding = self.budget.as_ref().is_some_and(|b| b.shedding());
        let now = self.setup.clock.now();
        let changes_before = self.conn.total_changes();
        let started = std::time::Instant::now();
        let mut applied = apply::Applied {
            replies: Vec::with_capacity(items.len()),
            ..Default::default()
        };
        // Items not reached when a statement failed: each still gets its answer (an error),
        // never a dropped reply, which a caller could not tell from "shutting down".
        let mut queue: std::collections::VecDeque<Item> = items.into();
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
                shedding,
                shed: 0,
            };
            if let Some(d) = space_alert {
                let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
                applied
                    .tally
                    .events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
            }
            while let Some(item) = queue.pop_front() {
                apply::apply(&mut b, item, now, &mut applied)?;
            }
            if b.shed > 0 {
                housekeeping::count_shed(b.tx, b.shed)?;
                applied.tally.shed(b.shed);
            }
            if (applied.lettered || b.shed > 0)
                && housekeeping::cap_dead_letters(&b)?
                && !self.dead_letters_capped
            {
                capped_now = true;
                housekeeping::dead_letters_capped(&mut b, &mut applied.tally)?;
            }
            alerts::fire_due(&mut b)?;
            for (adapter, up, at_ms) in std::mem::take(&mut applied.links) {
                self.supervisor.link(&mut b, &adapter, up, at_ms)?;
            }
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
            applied.tally.unregistered_evicted(bounded.evicted());
            if self.unregistered.first_cap(&bounded) {
                housekeeping::unregistered_capped(
                    &mut b,
                    &mut applied.tally,
                    self.unregistered.max(),
                )?;
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
            housekeeping::prune_if_due(b.tx, &mut self.last_prune, self.setup.dedupe_window, now)?;
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
                self.setup
                    .metrics
                    .record_batch(applied.tally, started.elapsed());
                self.dead_letters_capped |= capped_now;
                if let Some(budget) = self.budget.as_mut() {
                    budget.committed();
                }
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
                for r in applied.replies {
                    r.committed();
                }
                self.committed.send_modify(|n| *n = n.wrapping_add(1));
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
                self.unjournaled.append(&mut applied.unreplied);
                self.held.append(&mut applied.held);
                for item in queue {
                    self.not_reached(item, &mut applied.replies);
                }
                self.timers_held_until =
                    Some(now.as_millisecond() + TIMER_RETRY.as_millis() as i64);
                let error = e.to_string();
                for r in applied.replies {
                    r.rolled_back(&error);
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
            Item::Cmd(WriterCmd::Shelf { reply, .. }) => replies.push(Reply::Shelf(
                reply,
                Box::new(Err(AlertError::Storage("not reached".into()))),
            )),
            Item::Cmd(WriterCmd::Flush { reply }) => replies.push(Reply::Flush(reply)),
            Item::Cmd(WriterCmd::Heartbeat { reply }) => replies.push(Reply::Heartbeat(reply)),
            // Bookkeeping only (the attempt count shown to operators).
            Item::Cmd(WriterCmd::Failed { .. }) => {}
            Item::Cmd(
                cmd @ (WriterCmd::Delivered { .. }
                | WriterCmd::DeliveryFailing { .. }
                | WriterCmd::Link { .. }
                | WriterCmd::Account(_)),
            ) => self.held.push(cmd),
        }
    }

    /// Everything was committed and nobody is left to send more: the next start may skip the
    /// full check ([`super::CLEAN_STOP_KEY`]). Not set when the last batch failed.
    fn mark_clean_stop(&self) {
        if !self.unjournaled.is_empty() || !self.held.is_empty() {
            return;
        }
        if let Err(e) = self.conn.execute(
            "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(adapter, key) DO UPDATE SET value = excluded.value",
            params![
                crate::GATEWAY_ADAPTER,
                super::CLEAN_STOP_KEY,
                self.setup.clock.now().as_millisecond().to_string()
            ],
        ) {
            tracing::warn!("journal stop mark not written (the next start checks the file): {e}");
        }
    }

    fn checkpoint(&self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!("journal checkpoint at shutdown failed: {e}");
        }
    }
}
