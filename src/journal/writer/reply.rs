//! The answers a batch owes: one per request, registered before its work starts (so a
//! failing statement still answers it) and sent only when the batch's fate is known.

use atgw_sdk::ingest::{Committed, IngestError};
use tokio::sync::oneshot;

use crate::alerts::shelf::ShelfView;
use crate::alerts::{AlertError, AlertView};

/// A reply to send once the batch's fate is known.
pub(super) enum Reply {
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
    Shelf(
        oneshot::Sender<Result<ShelfView, AlertError>>,
        Box<Result<ShelfView, AlertError>>,
    ),
    Flush(oneshot::Sender<()>),
    Heartbeat(oneshot::Sender<Result<(), IngestError>>),
}

impl Reply {
    /// The batch committed: each caller hears what it got.
    pub(super) fn committed(self) {
        match self {
            Reply::Submit(tx, out) => drop(tx.send(Ok(out))),
            Reply::Reject(tx) => drop(tx.send(Ok(()))),
            Reply::State(tx, rows) => drop(tx.send(Ok(rows))),
            Reply::Gateway(Some(tx), id) => drop(tx.send(Ok(id))),
            Reply::Gateway(None, _) => {}
            Reply::Alert(tx, result) => drop(tx.send(*result)),
            Reply::Shelf(tx, result) => drop(tx.send(*result)),
            Reply::Flush(tx) => drop(tx.send(())),
            Reply::Heartbeat(tx) => drop(tx.send(Ok(()))),
        }
    }

    /// The batch rolled back (or never reached this request): each caller hears why.
    pub(super) fn rolled_back(self, error: &str) {
        let err = IngestError::Storage(error.to_owned());
        match self {
            Reply::Submit(tx, _) => drop(tx.send(Err(err))),
            Reply::Reject(tx) => drop(tx.send(Err(err))),
            Reply::State(tx, _) => drop(tx.send(Err(err))),
            Reply::Gateway(Some(tx), _) => drop(tx.send(Err(err))),
            Reply::Gateway(None, _) => {}
            Reply::Alert(tx, _) => drop(tx.send(Err(AlertError::Storage(error.to_owned())))),
            Reply::Shelf(tx, _) => drop(tx.send(Err(AlertError::Storage(error.to_owned())))),
            Reply::Flush(tx) => drop(tx.send(())),
            Reply::Heartbeat(tx) => drop(tx.send(Err(err))),
        }
    }
}
