//! The single writer. It owns the write connection on a dedicated thread, takes whatever
//! requests are waiting (group commit: one transaction and one fsync for the whole batch, no
//! artificial wait), commits, and only then answers. While one batch is being synced the next
//! one queues up, so throughput grows with load instead of paying one fsync per event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::clock::SharedClock;
use atgw_sdk::event::{Event, EventDraft};
use atgw_sdk::ingest::{
    Committed, DeadLetter, IngestError, IngestReceiver, IngestRequest, Submission,
};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::envelope;
use crate::registry::Registry;

/// Requests at most per transaction; bounds latency of the last one in a burst.
const MAX_BATCH: usize = 2048;
/// How often expired dedupe keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Work for the writer that does not come from adapters.
#[derive(Debug)]
pub enum WriterCmd {
    /// Rows a sink delivered: they leave the outbox.
    Delivered { ids: Vec<i64> },
    /// A delivery attempt failed; recorded for operators (the retry schedule lives in memory).
    Failed { id: i64, error: String },
    /// An event the gateway raises about itself (corrupt journal, unknown transmitter, …).
    Gateway {
        draft: Box<EventDraft>,
        reply: Option<oneshot::Sender<Result<String, IngestError>>>,
    },
    /// Answers once everything sent before it is committed.
    Flush { reply: oneshot::Sender<()> },
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

    /// Waits until everything sent before this call is committed.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(WriterCmd::Flush { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// What the writer needs to know about the gateway.
pub struct WriterSetup {
    pub gateway_id: String,
    /// Sink names; every event gets one outbox row per sink.
    pub sinks: Vec<(String, Arc<Notify>)>,
    pub registry: Arc<Registry>,
    pub dedupe_window: Duration,
    pub dead_letter_bytes: usize,
    pub clock: SharedClock,
}

/// Starts the writer thread. It stops when the ingest channel and every `WriterHandle` are gone.
pub fn spawn(
    conn: Connection,
    setup: WriterSetup,
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
                    tracing::error!("journal writer cannot load sequence counters: {e}");
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
    Flush(oneshot::Sender<()>),
}

struct Writer {
    conn: Connection,
    setup: WriterSetup,
    /// Last sequence number per source, as committed.
    sequences: HashMap<String, u64>,
    last_prune: Option<Timestamp>,
}

/// A device heard in this batch: (adapter, registered, last seen ms).
type Seen = HashMap<String, (String, bool, i64)>;

impl Writer {
    fn new(conn: Connection, setup: WriterSetup) -> rusqlite::Result<Writer> {
        let mut sequences = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT source, last_seq FROM sources")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (s, n) = row?;
                sequences.insert(s, n.max(0) as u64);
            }
        }
        Ok(Writer {
            conn,
            setup,
            sequences,
            last_prune: None,
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
            let first = tokio::select! {
                biased;
                c = cmds.recv(), if cmds_open => match c {
                    Some(c) => Item::Cmd(c),
                    None => { cmds_open = false; continue; }
                },
                r = ingest.recv(), if ingest_open => match r {
                    Some(r) => Item::Ingest(r),
                    None => { ingest_open = false; continue; }
                },
            };
            batch.push(first);
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

    fn commit_batch(&mut self, items: Vec<Item>) {
        let now = self.setup.clock.now();
        // Sequence counters touched in this batch, applied only if the batch commits.
        let mut sequences: HashMap<String, u64> = HashMap::new();
        let mut replies = Vec::with_capacity(items.len());
        let mut inserted = 0usize;
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            let mut seen: Seen = HashMap::new();
            for item in items {
                match item {
                    Item::Ingest(IngestRequest::Submit {
                        adapter,
                        submissions,
                        reply,
                    }) => {
                        let mut outcomes = Vec::with_capacity(submissions.len());
                        for s in submissions {
                            let c = apply_submission(
                                &tx,
                                &self.setup,
                                &self.sequences,
                                &mut sequences,
                                &adapter,
                                s,
                                now,
                                &mut seen,
                            )?;
                            if let Committed::Stored { ids } = &c {
                                inserted += ids.len();
                            }
                            outcomes.push(c);
                        }
                        replies.push(Reply::Submit(reply, outcomes));
                    }
                    Item::Ingest(IngestRequest::Reject {
                        adapter,
                        letter,
                        reply,
                    }) => {
                        insert_dead_letter(
                            &tx,
                            &adapter,
                            &letter,
                            self.setup.dead_letter_bytes,
                            now,
                        )?;
                        replies.push(Reply::Reject(reply));
                    }
                    Item::Ingest(IngestRequest::LoadState { adapter, reply }) => {
                        let mut stmt = tx.prepare_cached(
                            "SELECT key, value FROM adapter_state WHERE adapter = ?1",
                        )?;
                        let rows = stmt
                            .query_map([&*adapter], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
                        replies.push(Reply::State(reply, rows));
                    }
                    Item::Cmd(WriterCmd::Delivered { ids }) => {
                        let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
                        for id in ids {
                            stmt.execute([id])?;
                        }
                    }
                    Item::Cmd(WriterCmd::Failed { id, error }) => {
                        tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1")?
                            .execute(params![id, error])?;
                    }
                    Item::Cmd(WriterCmd::Gateway { draft, reply }) => {
                        let ids = insert_events(
                            &tx,
                            &self.setup,
                            &self.sequences,
                            &mut sequences,
                            crate::GATEWAY_ADAPTER,
                            vec![*draft],
                            now,
                            &mut seen,
                        )?;
                        inserted += ids.len();
                        replies.push(Reply::Gateway(
                            reply,
                            ids.into_iter().next().unwrap_or_default(),
                        ));
                    }
                    Item::Cmd(WriterCmd::Flush { reply }) => replies.push(Reply::Flush(reply)),
                }
            }
            write_seen(&tx, &seen)?;
            for (source, n) in &sequences {
                tx.prepare_cached(
                    "INSERT INTO sources (source, last_seq) VALUES (?1, ?2)
                     ON CONFLICT(source) DO UPDATE SET last_seq = excluded.last_seq",
                )?
                .execute(params![source, *n as i64])?;
            }
            prune_if_due(&tx, &mut self.last_prune, self.setup.dedupe_window, now)?;
            tx.commit()
        })();
        match result {
            Ok(()) => {
                self.sequences.extend(sequences);
                for r in replies {
                    match r {
                        Reply::Submit(tx, out) => drop(tx.send(Ok(out))),
                        Reply::Reject(tx) => drop(tx.send(Ok(()))),
                        Reply::State(tx, rows) => drop(tx.send(Ok(rows))),
                        Reply::Gateway(Some(tx), id) => drop(tx.send(Ok(id))),
                        Reply::Gateway(None, _) => {}
                        Reply::Flush(tx) => drop(tx.send(())),
                    }
                }
                if inserted > 0 {
                    for (_, n) in &self.setup.sinks {
                        n.notify_one();
                    }
                }
            }
            Err(e) => {
                tracing::error!(
                    "journal commit failed, nothing from this batch was acknowledged: {e}"
                );
                let err = IngestError::Storage(e.to_string());
                for r in replies {
                    match r {
                        Reply::Submit(tx, _) => drop(tx.send(Err(err.clone()))),
                        Reply::Reject(tx) => drop(tx.send(Err(err.clone()))),
                        Reply::State(tx, _) => drop(tx.send(Err(err.clone()))),
                        Reply::Gateway(Some(tx), _) => drop(tx.send(Err(err.clone()))),
                        Reply::Gateway(None, _) => {}
                        Reply::Flush(tx) => drop(tx.send(())),
                    }
                }
            }
        }
    }

    fn checkpoint(&self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!("journal checkpoint at shutdown failed: {e}");
        }
    }
}

/// Drops dedupe keys older than the window, at most once a minute.
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
        tx.prepare_cached("DELETE FROM dedupe WHERE seen_ms < ?1")?
            .execute([cutoff])?;
        *last = Some(now);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn apply_submission(
    tx: &Transaction<'_>,
    setup: &WriterSetup,
    committed: &HashMap<String, u64>,
    touched: &mut HashMap<String, u64>,
    adapter: &str,
    s: Submission,
    now: Timestamp,
    seen: &mut Seen,
) -> rusqlite::Result<Committed> {
    if let Some(key) = &s.dedupe_key {
        let known: Option<i64> = tx
            .prepare_cached("SELECT seen_ms FROM dedupe WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        if known.is_some() && !s.first_delivery {
            return Ok(Committed::Duplicate);
        }
        tx.prepare_cached(
            "INSERT INTO dedupe (key, seen_ms) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET seen_ms = excluded.seen_ms",
        )?
        .execute(params![key, now.as_millisecond()])?;
    }
    for u in &s.state {
        match &u.value {
            Some(v) => tx
                .prepare_cached(
                    "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(adapter, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![adapter, u.key, v])?,
            None => tx
                .prepare_cached("DELETE FROM adapter_state WHERE adapter = ?1 AND key = ?2")?
                .execute(params![adapter, u.key])?,
        };
    }
    for d in &s.seen {
        let registered = setup.registry.resolve(adapter, &d.registry_keys);
        let id = registered
            .map(|e| e.id.clone())
            .unwrap_or_else(|| d.device_id.clone());
        seen.insert(
            id,
            (
                adapter.to_owned(),
                registered.is_some(),
                now.as_millisecond(),
            ),
        );
    }
    let ids = insert_events(tx, setup, committed, touched, adapter, s.events, now, seen)?;
    Ok(Committed::Stored { ids })
}

#[allow(clippy::too_many_arguments)]
fn insert_events(
    tx: &Transaction<'_>,
    setup: &WriterSetup,
    committed: &HashMap<String, u64>,
    touched: &mut HashMap<String, u64>,
    adapter: &str,
    drafts: Vec<EventDraft>,
    now: Timestamp,
    seen: &mut Seen,
) -> rusqlite::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(drafts.len());
    if drafts.is_empty() {
        return Ok(ids);
    }
    let source = envelope::source(&setup.gateway_id, adapter);
    for draft in drafts {
        let next = touched
            .get(&source)
            .or_else(|| committed.get(&source))
            .copied()
            .unwrap_or(0)
            + 1;
        touched.insert(source.clone(), next);
        let event = envelope::seal(
            &setup.registry,
            &setup.gateway_id,
            adapter,
            draft,
            now,
            next,
        );
        let json = serde_json::to_string(&event)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let seq = insert_event(tx, &event, next, &json)?;
        let lane = event.data.priority.lane();
        let mut stmt =
            tx.prepare_cached("INSERT INTO outbox (sink, event_seq, lane) VALUES (?1, ?2, ?3)")?;
        for (sink, _) in &setup.sinks {
            stmt.execute(params![sink, seq, lane])?;
        }
        seen.insert(
            event.data.device.id.clone(),
            (
                adapter.to_owned(),
                event.data.device.registered,
                now.as_millisecond(),
            ),
        );
        ids.push(event.id);
    }
    Ok(ids)
}

fn insert_event(
    tx: &Transaction<'_>,
    e: &Event,
    source_seq: u64,
    json: &str,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO events (id, source, source_seq, kind, phase, priority, device_id, test,
                             time_ms, recorded_ms, correlation_id, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        e.id,
        e.source,
        source_seq as i64,
        e.data.kind.as_str(),
        e.data.phase.as_str(),
        e.data.priority.as_str(),
        e.data.device.id,
        e.data.test,
        e.time.as_millisecond(),
        e.recordedtime.as_millisecond(),
        e.correlationid,
        json,
    ])?;
    Ok(tx.last_insert_rowid())
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

fn write_seen(tx: &Transaction<'_>, seen: &Seen) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO devices (device_id, adapter, registered, last_seen_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
                                              registered = excluded.registered",
    )?;
    for (id, (adapter, registered, ms)) in seen {
        stmt.execute(params![id, adapter, registered, ms])?;
    }
    Ok(())
}
