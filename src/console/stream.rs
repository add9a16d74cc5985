//! The live stream: Server-Sent Events of every alert transition after a journal sequence.
//!
//! Each event's `id` is the transition's journal `seq`. A browser's `EventSource` sends the
//! last one it saw as `Last-Event-ID` when it reconnects (after a dropped Wi-Fi or a gateway
//! restart), and the stream resumes right after it: no transition is missed or shown twice.
//! The first connection names its starting point as `?since=` (the `seq` of the snapshot the
//! page loaded, [`super::views::snapshot`]).
//!
//! One [`Hub`] reads the journal for every open console when the writer says it committed
//! ([`crate::journal::WriterHandle::commits`]; at least every [`FALLBACK`], in case a wake is
//! ever missed) and broadcasts each transition, serialised once; a stream first replays from its own starting point with a read
//! of its own, then follows the hub, skipping what it already sent. Subscribing before the
//! replay is what makes the hand-over gapless: whatever commits after the replay's read the
//! hub broadcasts to it. A stream that falls behind the broadcast buffer replays again.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::ApiState;

/// How often the journal is read when no commit woke the hub: a safety net only (the journal
/// is the source of truth; the wake just says when to look).
pub const FALLBACK: Duration = Duration::from_secs(2);
/// Transitions read at once (a reconnect after a long gap catches up in pages of this).
const PAGE: usize = 200;
/// What the browser waits before it reconnects.
const RETRY: Duration = Duration::from_millis(1000);
/// How often an idle stream checks that its session is still live and tells the page it is.
const SESSION_CHECK: Duration = Duration::from_secs(5);
/// Transitions the hub keeps for a slow stream before it has to replay.
const BUFFER: usize = 1024;

/// A transition as sent: its sequence and its JSON.
#[derive(Debug)]
pub struct Sent {
    seq: i64,
    json: String,
}

/// The one journal reader behind every open console.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Sent>>,
}

impl Hub {
    /// Starts broadcasting what commits after `from` (the journal's newest sequence now: a
    /// cursor fixed before any stream subscribes, so nothing falls between a stream's replay
    /// and the hub); the task ends with the hub.
    pub fn start(journal: PathBuf, mut commits: watch::Receiver<u64>, from: i64) -> Hub {
        let (tx, _) = broadcast::channel(BUFFER);
        let weak = tx.downgrade();
        tokio::spawn(async move {
            let mut after = from;
            let mut reader: Option<crate::journal::Reader> = None;
            let mut more = false;
            loop {
                // A full page read means more is waiting: read on without waiting.
                if !more {
                    tokio::select! {
                        changed = commits.changed() => {
                            if changed.is_err() {
                                // The writer is gone (shutting down): the fallback reads on.
                                tokio::time::sleep(FALLBACK).await;
                            }
                        }
                        _ = tokio::time::sleep(FALLBACK) => {}
                    }
                }
                // Commits during the read below mark the receiver changed again, so none is
                // missed between this read and the next wait.
                commits.borrow_and_update();
                let Some(tx) = weak.upgrade() else { return };
                // No console open: nobody to read for (the alarm path's commits should not pay
                // for a reader no one uses). `after` stays, so the first read once a console
                // subscribes catches up from it; that console skips what its own replay sent.
                if tx.receiver_count() == 0 {
                    more = false;
                    continue;
                }
                let (path, r) = (journal.clone(), reader.take());
                let read = tokio::task::spawn_blocking(move || {
                    let r = match r {
                        Some(r) => r,
                        None => crate::journal::Reader::open(&path)?,
                    };
                    let list = super::views::transitions_after(r.conn(), after, PAGE)?;
                    Ok::<_, rusqlite::Error>((r, list))
                })
                .await;
                let Ok(Ok((r, list))) = read else {
                    // The journal is unreadable now; each stream says so on its own reads.
                    continue;
                };
                reader = Some(r);
                more = list.len() == PAGE;
                after = list.last().map_or(after, |t| t.seq);
                for t in list {
                    if let Ok(json) = serde_json::to_string(&t) {
                        // No console open: nobody to tell.
                        let _ = tx.send(Arc::new(Sent { seq: t.seq, json }));
                    }
                }
            }
        });
        Hub { tx }
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    since: Option<i64>,
}

fn event(t: &Sent) -> Event {
    Event::default()
        .id(t.seq.to_string())
        .event("transition")
        .data(&t.json)
}

pub async fn stream(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let (c, v) = match super::handlers::session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !v.role.acts_on_alerts() {
        return crate::api::error(
            axum::http::StatusCode::FORBIDDEN,
            "Your role does not allow seeing residents' alerts.",
        );
    }
    // The browser's resume point wins over the page's first one.
    let after = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().parse::<i64>().ok())
        .or(q.since)
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(PAGE);
    // Before the replay: see the module doc.
    let live = c.hub.tx.subscribe();
    let journal = s.journal.clone();
    tokio::spawn(follow(c, v.id, journal, after, live, tx));
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

type Tx = mpsc::Sender<Result<Event, Infallible>>;

/// Sends what came after `after` from the journal itself; the new `after`, or `None` when the
/// client is gone.
async fn replay(journal: &std::path::Path, mut after: i64, tx: &Tx) -> Option<i64> {
    loop {
        let path = journal.to_path_buf();
        let read = tokio::task::spawn_blocking(move || {
            let r = crate::journal::Reader::open(&path)?;
            super::views::transitions_after(r.conn(), after, PAGE)
        })
        .await;
        match read {
            Ok(Ok(list)) => {
                let full = list.len() == PAGE;
                for t in list {
                    let Ok(json) = serde_json::to_string(&t) else {
                        continue;
                    };
                    let sent = Sent { seq: t.seq, json };
                    tx.send(Ok(event(&sent))).await.ok()?;
                    after = t.seq;
                }
                if !full {
                    return Some(after);
                }
            }
            Ok(Err(e)) => {
                let msg = format!("The gateway cannot read its journal: {e}");
                tx.send(Ok(Event::default().event("problem").data(msg)))
                    .await
                    .ok()?;
                tokio::time::sleep(RETRY).await;
            }
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

async fn follow(
    c: Arc<super::ConsoleState>,
    session: String,
    journal: PathBuf,
    mut after: i64,
    mut live: broadcast::Receiver<Arc<Sent>>,
    tx: Tx,
) {
    let hello = Event::default()
        .retry(RETRY)
        .event("hello")
        .data(after.to_string());
    if tx.send(Ok(hello)).await.is_err() {
        return;
    }
    let Some(a) = replay(&journal, after, &tx).await else {
        return;
    };
    after = a;
    let mut check = tokio::time::interval(SESSION_CHECK);
    loop {
        tokio::select! {
            got = live.recv() => match got {
                Ok(t) if t.seq <= after => {}
                Ok(t) => {
                    if tx.send(Ok(event(&t))).await.is_err() {
                        return;
                    }
                    after = t.seq;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let Some(a) = replay(&journal, after, &tx).await else { return };
                    after = a;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = check.tick() => {
                // An open live page is activity; an ended session ends its stream.
                if !c.sessions.touch(&session, super::now_ms()) {
                    let _ = tx.send(Ok(Event::default().event("ended").data("session ended"))).await;
                    return;
                }
                // A named event, not a comment: the page sees it, and a page that hears
                // nothing for a while knows its connection is dead (a Wi-Fi drop can leave a
                // TCP connection that never errors).
                if tx.send(Ok(Event::default().event("ping").data(""))).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hub_reads_when_the_writer_commits_not_at_its_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atgw.db");
        let mut c = rusqlite::Connection::open(&path).unwrap();
        crate::journal::schema::migrate(&mut c).unwrap();
        let (bump, commits) = watch::channel(0u64);
        let hub = Hub::start(path.clone(), commits, 0);
        let mut live = hub.tx.subscribe();
        // The hub is waiting now (its first fallback read is 2 s away).
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.execute_batch(
            "INSERT INTO alerts (id, policy, device_id, kind, status, priority, level, raised_ms,
                                 updated_ms, snapshot)
             VALUES ('a1', 'alarms', 'pendant-12', 'sos', 'open', 'high', 0, 1, 1, '{}');
             INSERT INTO events (id, source, source_seq, kind, phase, priority, device_id, test,
                                 time_ms, recorded_ms, correlation_id, json)
             VALUES ('e1', 's', 1, 'sos', 'raised', 'high', 'pendant-12', 0, 1, 1, 'a1', '{}');",
        )
        .unwrap();
        bump.send_modify(|n| *n += 1);
        let got = tokio::time::timeout(FALLBACK / 4, live.recv())
            .await
            .expect("the commit woke the hub; it did not wait for its fallback read")
            .unwrap();
        assert_eq!(got.seq, 1);
        assert!(got.json.contains("\"a1\""), "{}", got.json);
    }

    #[tokio::test]
    async fn with_no_console_open_the_hub_reads_nothing_and_catches_up_when_one_subscribes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atgw.db");
        let mut c = rusqlite::Connection::open(&path).unwrap();
        crate::journal::schema::migrate(&mut c).unwrap();
        let (bump, commits) = watch::channel(0u64);
        let hub = Hub::start(path.clone(), commits, 0);
        c.execute_batch(
            "INSERT INTO alerts (id, policy, device_id, kind, status, priority, level, raised_ms,
                                 updated_ms, snapshot)
             VALUES ('a1', 'alarms', 'pendant-12', 'sos', 'open', 'high', 0, 1, 1, '{}');
             INSERT INTO events (id, source, source_seq, kind, phase, priority, device_id, test,
                                 time_ms, recorded_ms, correlation_id, json)
             VALUES ('e1', 's', 1, 'sos', 'raised', 'high', 'pendant-12', 0, 1, 1, 'a1', '{}');",
        )
        .unwrap();
        // Committed while nobody listens: the hub wakes and skips the read.
        bump.send_modify(|n| *n += 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut live = hub.tx.subscribe();
        // The next commit wakes it with a console open: it reads from where it was.
        bump.send_modify(|n| *n += 1);
        let got = tokio::time::timeout(FALLBACK / 4, live.recv())
            .await
            .expect("the hub read once a console was open")
            .unwrap();
        assert_eq!(
            got.seq, 1,
            "what committed while no console was open is not skipped"
        );
    }
}
