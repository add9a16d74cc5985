//! Acting as a person on alerts and shelves: the one path the token API (`by` in the body, a
//! machine vouching for a person) and the console (`by` is the logged-in user) share. The
//! writer applies the command and answers only once it is committed; this module turns its
//! answer into the HTTP one, so both fronts refuse the same things with the same status.

// An early exit is the response sent; boxing it would buy nothing per request.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;

use crate::alerts::shelf::{ShelfCommand, ShelfView};
use crate::alerts::{AlertCommand, AlertError, AlertView};
use crate::api::{ApiState, error};

/// Acknowledges or resolves, as whoever `cmd` names; the alert as committed.
pub(crate) async fn alert(s: &ApiState, cmd: AlertCommand) -> Result<AlertView, Response> {
    s.writer.alert(cmd).await.map_err(|e| match e {
        AlertError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        AlertError::AlreadyResolved => error(
            StatusCode::CONFLICT,
            format!("{e} (someone else resolved it)"),
        ),
        AlertError::Invalid(_) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })
}

/// A resolution needs its outcome: the command, or the answer saying which outcomes exist.
pub(crate) fn resolve_command(
    id: String,
    by: String,
    outcome: Option<String>,
    note: Option<String>,
) -> Result<AlertCommand, Response> {
    match outcome {
        Some(outcome) => Ok(AlertCommand::Resolve {
            id,
            by,
            outcome,
            note,
        }),
        None => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "Choose what happened (`outcome`): one of {}",
                crate::alerts::OUTCOMES.join(", ")
            ),
        )),
    }
}

/// A shelf request from its HTTP parts: `for` (`"4h"`, `"30m"`) is required, since a shelf
/// always ends; its bound and the reason are checked by the shelf itself
/// ([`crate::alerts::shelf`]).
pub(crate) fn shelve_command(
    device: String,
    by: String,
    reason: String,
    duration: Option<&str>,
) -> Result<ShelfCommand, Response> {
    let parsed: Option<Duration> = duration.and_then(|d| humantime::parse_duration(d).ok());
    match parsed {
        Some(duration) => Ok(ShelfCommand::Shelve {
            device,
            by,
            reason,
            duration,
        }),
        None => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`for` is required, e.g. \"4h\": a shelf always ends",
        )),
    }
}

/// Shelves or unshelves, as whoever `cmd` names; the shelf as committed.
pub(crate) async fn shelf(s: &ApiState, cmd: ShelfCommand) -> Result<ShelfView, Response> {
    s.writer.shelf(cmd).await.map_err(|e| match e {
        AlertError::UnknownDevice(_) | AlertError::NotFound(_) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        AlertError::NotShelved(_) => error(StatusCode::CONFLICT, e.to_string()),
        AlertError::Invalid(_) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })
}
