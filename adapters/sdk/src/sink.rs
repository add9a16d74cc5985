//! The sink contract: how the core's outbox hands committed events to an output and learns
//! which of them are delivered.
//!
//! The core owns the outbox and its retry schedule; a sink only moves bytes. It receives
//! `Delivery`s over a bounded channel (the bound is the sink's in-flight window) and answers each
//! with exactly one `Outcome`. A row leaves the outbox only on `Outcome::Delivered`, so a sink
//! that crashes, hangs or loses its connection loses nothing: undelivered rows are offered again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::event::{Kind, Priority};

/// One outbox row offered to a sink.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Outbox row id: what the sink reports back.
    pub outbox_id: i64,
    /// The event's CloudEvents id (stable across retries; receivers deduplicate on it).
    pub event_id: Arc<str>,
    pub kind: Kind,
    pub priority: Priority,
    /// The event's device id (sinks that keep per-device order key on it).
    pub device_id: Arc<str>,
    /// The CloudEvents structured-mode JSON, exactly as journaled.
    pub json: Arc<str>,
    /// How many times this row was offered before.
    pub attempt: u32,
    /// The alert this event belongs to (`correlationid`), for alert lifecycle events and the
    /// device events that raised them.
    pub alert_id: Option<Arc<str>>,
    /// True for alert lifecycle events (`atgw.alert.*`).
    pub lifecycle: bool,
    /// Addresses for this sink's channel (its type: an email sink gets email addresses, an SMS
    /// sink phone numbers) of the people the core chose for this notification: whoever is on
    /// shift in the team a route names. Told in addition to the sink's own configured
    /// recipients; empty when no route named a team. A sink with neither has nobody to tell
    /// and must not answer `Delivered`.
    pub recipients: Arc<[String]>,
}

/// A sink's verdict on one delivery.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The receiver has it (MQTT PUBACK, HTTP 2xx, file flushed).
    Delivered(i64),
    /// Not delivered this time; offer it again (after `after` when the receiver said so).
    Retry {
        outbox_id: i64,
        after: Option<Duration>,
        reason: String,
    },
    /// The receiver said it wants nothing more (HTTP 410 Gone): the sink is disabled, its rows
    /// stay in the outbox, and the gateway raises an alert so a person re-enables it.
    Disabled { outbox_id: i64, reason: String },
}

/// What a sink task is given.
pub struct SinkIo {
    pub deliveries: mpsc::Receiver<Delivery>,
    pub outcomes: mpsc::UnboundedSender<Outcome>,
}

/// Attempt tasks of a sink that delivers per request (HTTP, SMTP), and which outbox row each
/// belongs to, so even a task that panicked or was cancelled gets its row answered.
#[derive(Default)]
pub struct Attempts {
    pub tasks: tokio::task::JoinSet<Outcome>,
    rows: std::collections::HashMap<tokio::task::Id, i64>,
}

impl Attempts {
    /// Runs one attempt at row `outbox_id`.
    pub fn start(
        &mut self,
        outbox_id: i64,
        attempt: impl std::future::Future<Output = Outcome> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(attempt);
        self.rows.insert(handle.id(), outbox_id);
    }

    /// The outcome of a finished task (`JoinSet::join_next_with_id`): its own, or a retry
    /// when it was cancelled or panicked.
    pub fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
    ) -> Option<Outcome> {
        match done {
            Ok((id, o)) => {
                self.rows.remove(&id);
                Some(o)
            }
            Err(e) => {
                let outbox_id = self.rows.remove(&e.id())?;
                let reason = if e.is_cancelled() {
                    "attempt cancelled: atgw is shutting down".to_owned()
                } else {
                    "attempt failed inside atgw (task panicked)".to_owned()
                };
                Some(Outcome::Retry {
                    outbox_id,
                    after: None,
                    reason,
                })
            }
        }
    }
}
