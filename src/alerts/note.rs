//! A receiver's report about an alert (a paging system's "paged", "absent", "acknowledged by
//! called party"): journaled as a `point` lifecycle event in the alert's history, so the console,
//! the API and the report show it beside the alert's transitions. It changes nothing about the
//! alert (no status, no timer) and is told to no route: only the stream sinks that take every
//! event get it, so a paging sink is never paged by the status of its own page.

use super::{Actor, AlertError, AlertView, check_text, lifecycle_event, load, load_view, policy};
use crate::pipeline::batch::Batch;
use atgw_sdk::event::Phase;

/// The lifecycle event's `alert.reason`.
pub const REASON: &str = "status";

/// Journals `note` by `by` on alert `id`; also on a resolved alert (a late "call terminated"
/// is still part of its record).
pub(crate) fn on_note(
    b: &mut Batch<'_>,
    id: String,
    by: String,
    note: String,
) -> rusqlite::Result<Result<AlertView, AlertError>> {
    let note = Some(note).filter(|n| !n.trim().is_empty());
    if let Err(e) = check_text(&by, &note) {
        return Ok(Err(e));
    }
    let Some(row) = load(b, &id)? else {
        return Ok(Err(AlertError::NotFound(id)));
    };
    let actor = Actor {
        by: Some(by),
        outcome: None,
        said: note.clone(),
        note,
    };
    let policies = b.setup.policies.clone();
    let max_reminders = policies
        .by_name(&row.policy)
        .map_or(policy::DEFAULT_MAX_REMINDERS, |p| p.max_reminders);
    let event = lifecycle_event(b, &row, Phase::Point, REASON, "", &actor, max_reminders);
    b.insert(&event, &policies.stream_sinks)?;
    Ok(load_view(b.tx, &id)?.ok_or(AlertError::NotFound(id)))
}
