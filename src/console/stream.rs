//! The live stream: Server-Sent Events of every alert transition after a journal sequence.
//!
//! Each event's `id` is the transition's journal `seq`. A browser's `EventSource` sends the
//! last one it saw as `Last-Event-ID` when it reconnects (after a dropped Wi-Fi or a gateway
//! restart), and the stream resumes right after it: no transition is missed or shown twice.
//! The first connection names its starting point as `?since=` (the `seq` of the snapshot the
//! page loaded, [`super::views::snapshot`]).
//!
//! The stream polls the journal (a read-only connection, an indexed range on `seq`) every
//! [`POLL`]; committed transitions reach the page within that. It ends when the session does.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::api::ApiState;

/// How often the journal is asked for new transitions.
pub const POLL: Duration = Duration::from_millis(150);
/// Transitions read at once (a reconnect after a long gap catches up in pages of this).
const PAGE: usize = 200;
/// What the browser waits before it reconnects.
const RETRY: Duration = Duration::from_millis(1000);

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    since: Option<i64>,
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
    let mut after = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().parse::<i64>().ok())
        .or(q.since)
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(PAGE);
    let journal = s.journal.clone();
    tokio::spawn(async move {
        let hello = Event::default()
            .retry(RETRY)
            .event("hello")
            .data(after.to_string());
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        let mut reader = None;
        loop {
            if !c.sessions.touch(&v.id, super::now_ms()) {
                let _ = tx
                    .send(Ok(Event::default().event("ended").data("session ended")))
                    .await;
                return;
            }
            let path = journal.clone();
            let r = reader.take();
            let read = tokio::task::spawn_blocking(move || {
                let r = match r {
                    Some(r) => r,
                    None => crate::journal::Reader::open(&path)?,
                };
                let t = super::views::transitions_after(r.conn(), after, PAGE);
                t.map(|t| (r, t))
            })
            .await;
            let full = match read {
                Ok(Ok((r, list))) => {
                    reader = Some(r);
                    let full = list.len() == PAGE;
                    for t in list {
                        let seq = t.seq;
                        let Ok(ev) = Event::default()
                            .id(seq.to_string())
                            .event("transition")
                            .json_data(&t)
                        else {
                            continue;
                        };
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                        after = seq;
                    }
                    full
                }
                Ok(Err(e)) => {
                    let msg = format!("The gateway cannot read its journal: {e}");
                    if tx
                        .send(Ok(Event::default().event("problem").data(msg)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(RETRY).await;
                    false
                }
                Err(_) => false,
            };
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = tx.closed() => return,
                }
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}
