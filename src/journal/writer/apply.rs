//! One request's work inside the batch's transaction: submissions through the pipeline,
//! dead letters, adapter state, outbox bookkeeping, gateway events, alert commands and the
//! watchdog's heartbeat. What it owes its caller is registered in [`Applied::replies`].

use std::time::Duration;

use atgw_sdk::event::EventDraft;
use atgw_sdk::ingest::{Committed, IngestRequest};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Transaction, params};

use super::reply::Reply;
use super::{HEARTBEAT_KEY, Item, WriterCmd};
use crate::alerts::{self, AlertCommand, AlertError};
use crate::pipeline::Batch;

/// What the requests of one batch left to do once its fate is known.
#[derive(Default)]
pub(super) struct Applied {
    pub(super) replies: Vec<Reply>,
    pub(super) tally: crate::metrics::BatchTally,
    /// Gateway events nobody waits for: journaled again if the batch fails.
    pub(super) unreplied: Vec<EventDraft>,
    /// Commands nobody waits for that must not be lost with a failed transaction: kept and
    /// applied again with the next batch.
    pub(super) held: Vec<WriterCmd>,
    /// A dead letter was written (the cap is checked once per batch).
    pub(super) lettered: bool,
    /// Adapter links that went down or came back, for device supervision: (adapter, up, at).
    pub(super) links: Vec<(String, bool, i64)>,
}

/// Applies one request in the open transaction.
pub(super) fn apply(
    b: &mut Batch<'_>,
    item: Item,
    now: Timestamp,
    out: &mut Applied,
) -> rusqlite::Result<()> {
    match item {
        Item::Ingest(IngestRequest::Submit {
            adapter,
            submissions,
            reply,
        }) => {
            // The reply is registered first, so a failing statement answers it.
            out.replies.push(Reply::Submit(reply, Vec::new()));
            let mut outcomes = Vec::with_capacity(submissions.len());
            for s in submissions {
                outcomes.push(b.apply_submission(&adapter, s)?);
            }
            out.tally.events_in(&adapter, stored(&outcomes));
            if let Some(Reply::Submit(_, out)) = out.replies.last_mut() {
                *out = outcomes;
            }
        }
        Item::Ingest(IngestRequest::Reject {
            adapter,
            letter,
            reply,
        }) => {
            out.replies.push(Reply::Reject(reply));
            super::housekeeping::insert_dead_letter(
                b.tx,
                &adapter,
                &letter,
                b.setup.dead_letter_bytes,
                now,
            )?;
            out.tally.dead_letter(&letter.reason);
            out.lettered = true;
        }
        Item::Ingest(IngestRequest::LoadState { adapter, reply }) => {
            out.replies.push(Reply::State(reply, Vec::new()));
            let mut stmt =
                b.tx.prepare_cached("SELECT key, value FROM adapter_state WHERE adapter = ?1")?;
            let rows = stmt
                .query_map([&*adapter], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
            if let Some(Reply::State(_, r)) = out.replies.last_mut() {
                *r = rows;
            }
        }
        Item::Cmd(WriterCmd::Delivered { ids }) => {
            out.held.push(WriterCmd::Delivered { ids: ids.clone() });
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
            out.held.push(WriterCmd::DeliveryFailing {
                alert_id: alert_id.clone(),
            });
            alerts::on_delivery_failing(b, &alert_id)?;
        }
        Item::Cmd(WriterCmd::Gateway { draft, reply }) => {
            // Nobody waits to hear of a failure: keep it to journal again then
            // (a gateway alert must not depend on the disk having room now).
            if reply.is_none() {
                out.unreplied.push((*draft).clone());
            }
            out.replies.push(Reply::Gateway(reply, String::new()));
            let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![*draft])?;
            out.tally
                .events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
            if let Some(Reply::Gateway(_, id)) = out.replies.last_mut() {
                *id = ids.into_iter().next().unwrap_or_default();
            }
        }
        Item::Cmd(WriterCmd::Alert { cmd, reply }) => {
            out.replies.push(Reply::Alert(
                reply,
                Box::new(Err(AlertError::Storage("not reached".into()))),
            ));
            let unacked = match &cmd {
                AlertCommand::Ack { id, .. } => unacknowledged(b.tx, id)?,
                AlertCommand::Resolve { .. } | AlertCommand::Note { .. } => None,
            };
            let result = alerts::on_command(b, cmd)?;
            if let (Some((priority, raised_ms)), Ok(_)) = (unacked, &result) {
                let waited = now.as_millisecond().saturating_sub(raised_ms).max(0);
                out.tally
                    .acknowledged(&priority, Duration::from_millis(waited as u64));
            }
            if let Some(Reply::Alert(_, r)) = out.replies.last_mut() {
                **r = result;
            }
        }
        Item::Cmd(WriterCmd::Shelf { cmd, reply }) => {
            out.replies.push(Reply::Shelf(
                reply,
                Box::new(Err(AlertError::Storage("not reached".into()))),
            ));
            let result = alerts::shelf::on_command(b, cmd)?;
            if let Some(Reply::Shelf(_, r)) = out.replies.last_mut() {
                **r = result;
            }
        }
        Item::Cmd(WriterCmd::Link { adapter, up, at_ms }) => {
            out.held.push(WriterCmd::Link {
                adapter: adapter.clone(),
                up,
                at_ms,
            });
            out.links.push((adapter, up, at_ms));
        }
        Item::Cmd(WriterCmd::Account(ev)) => crate::console::accounts::record(b.tx, &ev)?,
        Item::Cmd(WriterCmd::Flush { reply }) => out.replies.push(Reply::Flush(reply)),
        Item::Cmd(WriterCmd::Heartbeat { reply }) => {
            out.replies.push(Reply::Heartbeat(reply));
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
