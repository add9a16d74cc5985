//! The ingest handle: how an adapter hands events to the journal and learns they are durable.
//!
//! The contract that makes "no alert is lost" hold: `submit` resolves only after the journal has
//! committed the events (or recognised them as a retransmission it already holds). An adapter
//! acknowledges its device (DC-09 ACK, MQTT PUBACK, HTTP 2xx) only after that, never before.
//! Input that cannot be understood goes to `reject`, which dead-letters the raw bytes with a
//! reason; that too resolves after commit, so the device may then be told NAK or be acked.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::event::EventDraft;

/// Events that arrived together and must be committed together, with what makes them idempotent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Submission {
    /// Zero or more events one wire message became (zero is valid: a state message that changed
    /// no edge still carries `state` updates).
    pub events: Vec<EventDraft>,
    /// A retransmission carrying the same key within the dedupe window (`dedupe_window`, or the
    /// journal's) is acknowledged as `Duplicate` and journaled once. The key must say what the
    /// device's protocol says makes a message a retransmission, no less: two different messages
    /// with one key lose the second.
    pub dedupe_key: Option<String>,
    /// How long after the key was last journaled a message with the same key is still a
    /// retransmission: the transport's own retry window (DC-09 transmitters retry for minutes).
    /// `None` = the journal's `dedupe_window`, which is also the maximum (keys are not kept
    /// longer). A same-key message after the window is a new event.
    pub dedupe_window: Option<std::time::Duration>,
    /// The transport guarantees this is the first delivery (MQTT without the DUP flag): the
    /// key is recorded but an earlier identical key does not make it a duplicate, because two
    /// identical real-world messages (two presses of the same button) must both count.
    /// Leave `false` when the transport cannot tell (DC-09 retransmissions look like originals).
    pub first_delivery: bool,
    /// Adapter state (edge-detection memory) written in the same transaction as the events, so a
    /// crash can neither re-raise nor miss a transition.
    pub state: Vec<StateUpdate>,
    /// Devices this message proves alive (supervision check-in), even when it carries no event.
    pub seen: Vec<Seen>,
}

/// A device check-in: the message came from this device, whatever it said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The adapter's id for the device (`zigbee:0x…`, `dc09:1234`).
    pub device_id: String,
    /// The same keys an `EventDraft` carries for the registry.
    pub registry_keys: std::collections::BTreeMap<String, String>,
}

/// One key of an adapter's persisted state; `value: None` deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateUpdate {
    pub key: String,
    pub value: Option<String>,
}

/// What the journal did with one submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Journaled; the event ids in submission order.
    Stored { ids: Vec<String> },
    /// Its dedupe key was already journaled: nothing new was written.
    Duplicate,
}

/// Input the adapter could not turn into events.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Machine-readable reason (`invalid_json`, `no_profile`, `oversize`, `bad_crc`, …); metrics
    /// count by it.
    pub reason: String,
    /// One line for a person: what was wrong.
    pub detail: String,
    /// Where it came from: a topic, a peer address.
    pub origin: String,
    /// The bytes as received (truncated by the journal to its configured limit).
    pub raw: Vec<u8>,
}

/// Why the journal could not take a submission. The adapter must not acknowledge the device.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("the journal is shutting down")]
    Closed,
    #[error("the journal could not commit: {0}")]
    Storage(String),
}

/// Requests travelling from adapters to the journal's single writer.
#[derive(Debug)]
pub enum IngestRequest {
    Submit {
        adapter: Arc<str>,
        submissions: Vec<Submission>,
        reply: oneshot::Sender<Result<Vec<Committed>, IngestError>>,
    },
    Reject {
        adapter: Arc<str>,
        letter: DeadLetter,
        reply: oneshot::Sender<Result<(), IngestError>>,
    },
    LoadState {
        adapter: Arc<str>,
        reply: oneshot::Sender<Result<Vec<(String, String)>, IngestError>>,
    },
}

/// A cheap, cloneable handle bound to one adapter instance.
#[derive(Clone, Debug)]
pub struct Ingest {
    adapter: Arc<str>,
    tx: mpsc::Sender<IngestRequest>,
}

/// The receiving end, owned by whoever implements the journal.
pub type IngestReceiver = mpsc::Receiver<IngestRequest>;

/// Creates a connected pair. `capacity` bounds requests waiting for the writer, which is how
/// a slow disk pushes back on fast devices instead of growing memory.
pub fn channel(capacity: usize) -> (IngestSender, IngestReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (IngestSender { tx }, rx)
}

/// Mints `Ingest` handles for named adapters.
#[derive(Clone, Debug)]
pub struct IngestSender {
    tx: mpsc::Sender<IngestRequest>,
}

impl IngestSender {
    pub fn for_adapter(&self, adapter: &str) -> Ingest {
        Ingest {
            adapter: Arc::from(adapter),
            tx: self.tx.clone(),
        }
    }
}

impl Ingest {
    /// Name of the adapter instance this handle submits for.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Commits one submission; resolves once it is durable.
    pub async fn submit(&self, submission: Submission) -> Result<Committed, IngestError> {
        let mut out = self.submit_batch(vec![submission]).await?;
        out.pop().ok_or(IngestError::Closed)
    }

    /// Commits several submissions in one transaction; resolves once all are durable. The
    /// outcome vector matches the input order.
    pub async fn submit_batch(
        &self,
        submissions: Vec<Submission>,
    ) -> Result<Vec<Committed>, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(IngestRequest::Submit {
                adapter: self.adapter.clone(),
                submissions,
                reply,
            })
            .await
            .map_err(|_| IngestError::Closed)?;
        rx.await.map_err(|_| IngestError::Closed)?
    }

    /// Dead-letters input; resolves once the dead letter is durable.
    pub async fn reject(&self, letter: DeadLetter) -> Result<(), IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(IngestRequest::Reject {
                adapter: self.adapter.clone(),
                letter,
                reply,
            })
            .await
            .map_err(|_| IngestError::Closed)?;
        rx.await.map_err(|_| IngestError::Closed)?
    }

    /// [`Ingest::load_state`], asked again (200 ms, doubling to 10 s) until the journal answers
    /// or `shutdown` is cancelled (then empty): an adapter must not map a message without the
    /// edges it committed, nor give up on its devices because the journal was busy at start.
    pub async fn load_state_retrying(
        &self,
        shutdown: &crate::Shutdown,
    ) -> std::collections::HashMap<String, String> {
        let mut wait = std::time::Duration::from_millis(200);
        loop {
            match self.load_state().await {
                Ok(rows) => return rows.into_iter().collect(),
                Err(e) => {
                    tracing::error!(adapter = %self.adapter, "cannot load edge-detection state: {e}; asking again in {wait:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return Default::default(),
                    }
                    wait = (wait * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
    }

    /// The adapter's persisted state, as last committed through `Submission::state`.
    pub async fn load_state(&self) -> Result<Vec<(String, String)>, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(IngestRequest::LoadState {
                adapter: self.adapter.clone(),
                reply,
            })
            .await
            .map_err(|_| IngestError::Closed)?;
        rx.await.map_err(|_| IngestError::Closed)?
    }
}
