//! The kit's cases for a sink's control link: the input a sink takes from care teams
//! ("I'm on it" over MQTT, a handset's acknowledgement), which reaches the core as an
//! [`AlertRequest`]. The same promise as an adapter's: the peer is answered only once the
//! core has committed the command.
//!
//! - **held commit**: while the core holds the command's commit, the peer hears nothing; once
//!   it commits, the peer is acknowledged;
//! - **failed commit**: a command the core could not commit (its reply dropped) is never
//!   acknowledged; sent again once the core works, it is;
//! - **refused**: a command the core refuses for good (no such alert) is answered, not left
//!   for the peer to send forever;
//! - **malformed**: a command the sink cannot read reaches the core as nothing and is
//!   answered;
//! - **shutdown**: intake and output stop within [`super::SHUTDOWN_DEADLINE`].

use std::future::Future;
use std::time::Duration;

use super::{ANSWER, Answer, Failure, HOLD, StartedSink, start_sink, stop_sink};
use crate::component::{AlertAction, AlertRequest, Site};

/// A real care-team peer on a sink's control link.
pub trait Commander: Send {
    /// Sends "acknowledge alert `alert_id`" (the same bytes each time for the same id).
    fn acknowledge(&mut self, alert_id: &str) -> impl Future<Output = ()> + Send;
    /// Sends a command the sink cannot understand.
    fn send_malformed(&mut self) -> impl Future<Output = ()> + Send;
    /// What the peer heard about its last command, waiting at most `within`.
    fn answer(&mut self, within: Duration) -> impl Future<Output = Answer> + Send;
}

/// Runs the control-link cases against sink `S`, with the care-team peer `peer`.
pub async fn run_commands<S, C>(config: S::Config, site: Site, peer: &mut C) -> Result<(), Failure>
where
    S: crate::component::Sink,
    C: Commander,
{
    let StartedSink {
        to_sink,
        outcomes: _outcomes,
        mut alert_rx,
        shutdown,
        intake_shutdown,
        running,
    } = start_sink::<S>(config, site).await?;

    let case = "held commit";
    peer.acknowledge("kit-alert-1").await;
    let req = next_command(&mut alert_rx, case, "kit-alert-1").await?;
    let early = peer.answer(HOLD).await;
    if early != Answer::Nothing {
        return Err(Failure::AckBeforeCommit {
            case,
            answer: early,
        });
    }
    let _ = req.reply.send(Ok(()));
    expect_answer(peer, case).await?;

    let case = "failed commit";
    peer.acknowledge("kit-alert-2").await;
    let req = next_command(&mut alert_rx, case, "kit-alert-2").await?;
    // What the core does when its commit fails: the reply is dropped unanswered.
    drop(req.reply);
    if peer.answer(HOLD).await == Answer::Ack {
        return Err(Failure::AckAfterFailedCommit { case });
    }
    peer.acknowledge("kit-alert-2").await;
    let deadline = tokio::time::Instant::now() + ANSWER;
    loop {
        // Commit whatever comes (a redelivery of the first, or the resend) until answered.
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(100), alert_rx.recv()).await
        {
            let _ = r.reply.send(Ok(()));
        }
        if peer.answer(Duration::from_millis(50)).await == Answer::Ack {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::NoAckAfterCommit {
                case,
                answer: Answer::Nothing,
            });
        }
    }
    // Drain what the resend left queued (already answered or about to be).
    while let Ok(Some(r)) = tokio::time::timeout(HOLD, alert_rx.recv()).await {
        let _ = r.reply.send(Ok(()));
    }

    let case = "refused";
    peer.acknowledge("kit-alert-3").await;
    let req = next_command(&mut alert_rx, case, "kit-alert-3").await?;
    let _ = req
        .reply
        .send(Err("no alert kit-alert-3 (the kit refused it)".into()));
    match peer.answer(ANSWER).await {
        Answer::Nothing => {
            return Err(Failure::Wrong {
                case,
                what: "a refused command was never answered (the peer would send it forever)"
                    .into(),
            });
        }
        Answer::Ack | Answer::Nak => {}
    }

    let case = "malformed";
    peer.send_malformed().await;
    if let Ok(Some(r)) = tokio::time::timeout(HOLD, alert_rx.recv()).await {
        return Err(Failure::Wrong {
            case,
            what: format!(
                "a command the sink cannot read reached the core (alert {:?})",
                r.alert_id
            ),
        });
    }
    if peer.answer(ANSWER).await == Answer::Nothing {
        return Err(Failure::Wrong {
            case,
            what: "a malformed command was never answered".into(),
        });
    }

    drop(to_sink);
    stop_sink(&shutdown, &intake_shutdown, running).await
}

/// The next command the sink hands the core: an acknowledgement of `alert_id`.
async fn next_command(
    rx: &mut tokio::sync::mpsc::Receiver<AlertRequest>,
    case: &'static str,
    alert_id: &str,
) -> Result<AlertRequest, Failure> {
    match tokio::time::timeout(ANSWER, rx.recv()).await {
        Ok(Some(r)) if r.alert_id == alert_id && r.action == AlertAction::Ack => Ok(r),
        Ok(Some(r)) => Err(Failure::Wrong {
            case,
            what: format!(
                "expected an acknowledgement of {alert_id}, the core got {:?} of {:?}",
                r.action, r.alert_id
            ),
        }),
        _ => Err(Failure::NoRequest {
            case,
            waited: ANSWER,
        }),
    }
}

async fn expect_answer<C: Commander>(peer: &mut C, case: &'static str) -> Result<(), Failure> {
    match peer.answer(ANSWER).await {
        Answer::Ack => Ok(()),
        answer => Err(Failure::NoAckAfterCommit { case, answer }),
    }
}
