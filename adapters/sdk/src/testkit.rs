//! The adapter conformance kit (feature `testkit`): what every adapter crate runs from its own
//! tests to show it keeps the contract. The kit starts the adapter through
//! [`Adapter::check`]/[`Adapter::start`] with a stand-in journal behind the real `Ingest`
//! channel, so it decides when (and whether) each commit succeeds, and drives a real device
//! the adapter crate supplies ([`Device`]: real sockets, the real wire).
//!
//! The cases, each a [`Failure`] naming the promise when broken:
//! - **held commit**: while the journal holds a message's commit, the device hears nothing;
//!   once it commits, the device is acknowledged;
//! - **failed commit**: a commit that fails is never acknowledged; the device's resend, once
//!   the journal works again, is;
//! - **malformed input**: becomes exactly one dead letter with a reason, commits no event, and
//!   the adapter keeps serving (the next good message is acknowledged);
//! - **shutdown**: after its shutdown token is cancelled the adapter's task returns within
//!   [`SHUTDOWN_DEADLINE`].

use std::future::Future;
use std::time::Duration;

use crate::component::{Adapter, AdapterContext, Site};
use crate::ingest::{IngestReceiver, IngestRequest, channel};
use crate::{Committed, DeadLetter, Health, IngestError, Shutdown, Submission};

/// How long the kit holds a commit while listening for an early acknowledgement.
pub const HOLD: Duration = Duration::from_millis(500);
/// How long a device may take to be answered once its message is committed.
pub const ANSWER: Duration = Duration::from_secs(3);
/// How long an adapter may take to stop.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// What a device heard back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A positive acknowledgement (DC-09 ACK, MQTT PUBACK, HTTP 2xx).
    Ack,
    /// A negative one (DC-09 NAK, HTTP 5xx): the device will resend.
    Nak,
    /// Nothing within the wait.
    Nothing,
}

/// A real device for the kit to drive, speaking the adapter's wire protocol.
pub trait Device: Send {
    /// Sends good message number `n`: distinct per `n`, and byte-identical when sent again
    /// with the same `n` (a resend).
    fn send(&mut self, n: u32) -> impl Future<Output = ()> + Send;
    /// Sends one message the adapter cannot understand.
    fn send_malformed(&mut self) -> impl Future<Output = ()> + Send;
    /// What the device heard about its last message, waiting at most `within`.
    fn answer(&mut self, within: Duration) -> impl Future<Output = Answer> + Send;
}

/// A broken promise.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("could not start the adapter: {0}")]
    Start(String),
    #[error("{case}: the journal got no request within {waited:?}")]
    NoRequest {
        case: &'static str,
        waited: Duration,
    },
    #[error("{case}: the device was acknowledged before its commit ({answer:?})")]
    AckBeforeCommit { case: &'static str, answer: Answer },
    #[error("{case}: the device was acknowledged although the commit failed")]
    AckAfterFailedCommit { case: &'static str },
    #[error("{case}: expected an acknowledgement after the commit, the device heard {answer:?}")]
    NoAckAfterCommit { case: &'static str, answer: Answer },
    #[error("{case}: {what}")]
    Wrong { case: &'static str, what: String },
    #[error("shutdown: the adapter did not stop within {SHUTDOWN_DEADLINE:?}")]
    NoShutdown,
}

/// What one submission looked like, for the adapter's own extra assertions.
pub type Seen = Vec<Submission>;

/// Runs every case against adapter `A` configured by `config`, with devices from `device`.
/// Returns the submissions the journal committed, in order.
pub async fn run<A, D, F, Fut>(
    config: A::Config,
    site: Site,
    mut device: F,
) -> Result<Seen, Failure>
where
    A: Adapter,
    D: Device,
    F: FnMut() -> Fut,
    Fut: Future<Output = D>,
{
    let (sender, mut rx) = channel(64);
    let shutdown = Shutdown::new();
    let prepared = A::check(&config, &site).map_err(|e| Failure::Start(e.to_string()))?;
    let ctx = AdapterContext {
        site,
        ingest: sender.for_adapter("kit"),
        health: std::sync::Arc::new(Health::default()),
        clock: std::sync::Arc::new(crate::clock::SystemClock),
        shutdown: shutdown.clone(),
    };
    let task = prepared
        .start(ctx)
        .await
        .map_err(|e| Failure::Start(e.to_string()))?;
    let task = tokio::spawn(task);
    drop(sender);
    let mut committed = Vec::new();

    // Held commit: silence while held, an acknowledgement once committed.
    let case = "held commit";
    let mut d = device().await;
    d.send(1).await;
    let (subs, reply) = next_submit(&mut rx, case).await?;
    let early = d.answer(HOLD).await;
    if early != Answer::Nothing {
        return Err(Failure::AckBeforeCommit {
            case,
            answer: early,
        });
    }
    let _ = reply.send(Ok(stored(&subs)));
    committed.extend(subs);
    expect_ack(&mut d, case).await?;

    // Failed commit: never acknowledged; the resend is, once the journal works.
    let case = "failed commit";
    let mut d = device().await;
    d.send(2).await;
    let (_, reply) = next_submit(&mut rx, case).await?;
    let _ = reply.send(Err(IngestError::Storage(
        "the kit failed this commit".into(),
    )));
    if d.answer(HOLD).await == Answer::Ack {
        return Err(Failure::AckAfterFailedCommit { case });
    }
    // The adapter may retry the failed batch itself (MQTT holds it unacknowledged), the device
    // resends: the journal now commits whatever comes until the device is acknowledged.
    let mut d = device().await;
    d.send(2).await;
    committed.extend(commit_until_acked(&mut rx, &mut d, case).await?);

    // Malformed input: one dead letter with a reason, no event, and the adapter serves on.
    let case = "malformed input";
    let mut d = device().await;
    d.send_malformed().await;
    let letter = next_reject(&mut rx, case).await?;
    if letter.reason.trim().is_empty() {
        return Err(Failure::Wrong {
            case,
            what: "the dead letter has no reason".into(),
        });
    }
    let _ = d.answer(HOLD).await;
    if let Ok(Some(extra)) = tokio::time::timeout(HOLD, next_request(&mut rx)).await {
        return Err(Failure::Wrong {
            case,
            what: format!("one malformed message made a second journal request: {extra:?}"),
        });
    }
    let mut d = device().await;
    d.send(3).await;
    let (subs, reply) = next_submit(&mut rx, case).await?;
    let _ = reply.send(Ok(stored(&subs)));
    committed.extend(subs);
    expect_ack(&mut d, case).await?;

    // Shutdown within the deadline.
    shutdown.cancel();
    match tokio::time::timeout(SHUTDOWN_DEADLINE, task).await {
        Ok(_) => Ok(committed),
        Err(_) => Err(Failure::NoShutdown),
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Vec<Committed>, IngestError>>;

fn stored(subs: &[Submission]) -> Vec<Committed> {
    subs.iter()
        .enumerate()
        .map(|(i, s)| Committed::Stored {
            ids: (0..s.events.len())
                .map(|j| format!("kit-{i}-{j}"))
                .collect(),
        })
        .collect()
}

/// Commits every request until the device hears an acknowledgement (or [`ANSWER`] passes).
async fn commit_until_acked<D: Device>(
    rx: &mut IngestReceiver,
    d: &mut D,
    case: &'static str,
) -> Result<Vec<Submission>, Failure> {
    let mut committed = Vec::new();
    let deadline = tokio::time::Instant::now() + ANSWER;
    loop {
        let answer = tokio::select! {
            answer = d.answer(ANSWER) => answer,
            req = next_request(rx) => {
                match req {
                    Some(IngestRequest::Submit { submissions, reply, .. }) => {
                        let _ = reply.send(Ok(stored(&submissions)));
                        committed.extend(submissions);
                    }
                    Some(IngestRequest::Reject { letter, .. }) => {
                        return Err(Failure::Wrong {
                            case,
                            what: format!("a good message was dead-lettered: {} ({})", letter.reason, letter.detail),
                        });
                    }
                    Some(IngestRequest::LoadState { .. }) | None => {}
                }
                continue;
            }
        };
        match answer {
            Answer::Ack if !committed.is_empty() => return Ok(committed),
            Answer::Ack => return Err(Failure::AckBeforeCommit { case, answer }),
            _ if tokio::time::Instant::now() < deadline => {}
            answer => return Err(Failure::NoAckAfterCommit { case, answer }),
        }
    }
}

async fn expect_ack<D: Device>(d: &mut D, case: &'static str) -> Result<(), Failure> {
    match d.answer(ANSWER).await {
        Answer::Ack => Ok(()),
        answer => Err(Failure::NoAckAfterCommit { case, answer }),
    }
}

/// The next request that is not a state load (those are answered with no state).
async fn next_request(rx: &mut IngestReceiver) -> Option<IngestRequest> {
    loop {
        match rx.recv().await? {
            IngestRequest::LoadState { reply, .. } => {
                let _ = reply.send(Ok(Vec::new()));
            }
            other => return Some(other),
        }
    }
}

async fn next_submit(
    rx: &mut IngestReceiver,
    case: &'static str,
) -> Result<(Vec<Submission>, Reply), Failure> {
    match tokio::time::timeout(ANSWER, next_request(rx)).await {
        Ok(Some(IngestRequest::Submit {
            submissions, reply, ..
        })) => Ok((submissions, reply)),
        Ok(Some(other)) => Err(Failure::Wrong {
            case,
            what: format!("expected a commit, the journal got {other:?}"),
        }),
        _ => Err(Failure::NoRequest {
            case,
            waited: ANSWER,
        }),
    }
}

async fn next_reject(rx: &mut IngestReceiver, case: &'static str) -> Result<DeadLetter, Failure> {
    match tokio::time::timeout(ANSWER, next_request(rx)).await {
        Ok(Some(IngestRequest::Reject { letter, reply, .. })) => {
            let _ = reply.send(Ok(()));
            Ok(letter)
        }
        Ok(Some(other)) => Err(Failure::Wrong {
            case,
            what: format!("expected a dead letter, the journal got {other:?}"),
        }),
        _ => Err(Failure::NoRequest {
            case,
            waited: ANSWER,
        }),
    }
}
