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
//! - **schema**: every event committed validates against schema v1 in the core's envelope;
//! - **malformed input**: becomes exactly one dead letter with a reason, commits no event, and
//!   the adapter keeps serving (the next good message is acknowledged);
//! - **shutdown**: after its shutdown token is cancelled the adapter's task returns within
//!   [`SHUTDOWN_DEADLINE`].
//!
//! Sinks run [`run_sink`] against a real peer ([`Peer`]): one outcome per delivery, `Retry`
//! vs `Disabled` told apart, the event id stable across attempts, and shutdown. A sink's
//! control link (care-team commands) runs [`run_commands`] against a real [`Commander`].

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
    #[error("schema: an event the adapter made is not valid schema v1: {0}")]
    Schema(String),
}

/// Runs every case against adapter `A` configured by `config`, with devices from `device`.
/// Returns the submissions the journal committed, in order.
pub async fn run<A, D, F, Fut>(
    config: A::Config,
    site: Site,
    mut device: F,
) -> Result<Vec<Submission>, Failure>
where
    A: Adapter,
    D: Device,
    F: FnMut() -> Fut,
    Fut: Future<Output = D>,
{
    let (sender, mut rx) = channel(64);
    let shutdown = Shutdown::new();
    let prepared = A::check(&config, &site).map_err(|e| Failure::Start(e.to_string()))?;
    let health = std::sync::Arc::new(Health::default());
    let ctx = AdapterContext {
        site,
        ingest: sender.for_adapter("kit"),
        health: health.clone(),
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

    // Connected: an adapter that has just served a device can hear its devices, and says so
    // (supervision holds the missed check-ins of an adapter whose health says it cannot).
    if !health.is_connected() {
        return Err(Failure::Wrong {
            case: "connected",
            what: "the adapter served a device but its health says it cannot hear devices \
                   (call `ctx.health.set_connected(true)` once you can)"
                .into(),
        });
    }

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

    // Every event is valid schema v1 once the core puts its envelope around it.
    for draft in committed.iter().flat_map(|s| &s.events) {
        valid_v1(draft)?;
    }

    // Shutdown within the deadline.
    shutdown.cancel();
    match tokio::time::timeout(SHUTDOWN_DEADLINE, task).await {
        Ok(_) => Ok(committed),
        Err(_) => Err(Failure::NoShutdown),
    }
}

/// Checks `draft` against the JSON Schema of v1, in the envelope the core gives it (id,
/// source, sequence and the registry's location are the core's; everything else is the
/// adapter's).
pub fn valid_v1(draft: &crate::EventDraft) -> Result<(), Failure> {
    use crate::event::{DATA_CONTENT_TYPE, DATA_SCHEMA_V1, Event, SPEC_VERSION, format_sequence};
    let schema: serde_json::Value = serde_json::from_str(crate::schema::EVENT_SCHEMA_V1)
        .map_err(|e| Failure::Schema(e.to_string()))?;
    let validator =
        jsonschema::validator_for(&schema).map_err(|e| Failure::Schema(e.to_string()))?;
    let mut data = draft.data.clone();
    data.location.site = "kit".into();
    let now = jiff::Timestamp::now();
    let event = Event {
        specversion: SPEC_VERSION.into(),
        id: "01900000-0000-7000-8000-000000000001".into(),
        source: "urn:atgw:kit:kit".into(),
        event_type: Event::device_type(data.kind),
        time: draft.time.unwrap_or(now),
        recordedtime: now,
        sequence: format_sequence(1),
        correlationid: None,
        causationid: None,
        subject: Some(data.location.subject()),
        datacontenttype: DATA_CONTENT_TYPE.into(),
        dataschema: DATA_SCHEMA_V1.into(),
        data,
    };
    let json = serde_json::to_value(&event).map_err(|e| Failure::Schema(e.to_string()))?;
    let problems: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Schema(format!("{}: {json}", problems.join("; "))))
    }
}

/// The sink's next outcome, or `None` after a generous wait (a webhook times out in seconds).
async fn next_outcome(
    outcomes: &mut tokio::sync::mpsc::UnboundedReceiver<crate::sink::Outcome>,
) -> Option<crate::sink::Outcome> {
    tokio::time::timeout(ANSWER * 3, outcomes.recv())
        .await
        .ok()
        .flatten()
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
    expect(rx, case, "a commit", |req| match req {
        IngestRequest::Submit {
            submissions, reply, ..
        } => Ok((submissions, reply)),
        other => Err(other),
    })
    .await
}

async fn next_reject(rx: &mut IngestReceiver, case: &'static str) -> Result<DeadLetter, Failure> {
    expect(rx, case, "a dead letter", |req| match req {
        IngestRequest::Reject { letter, reply, .. } => {
            let _ = reply.send(Ok(()));
            Ok(letter)
        }
        other => Err(other),
    })
    .await
}

/// The next journal request within [`ANSWER`], which `pick` must accept (it hands back what it
/// does not, for the failure's message).
async fn expect<T>(
    rx: &mut IngestReceiver,
    case: &'static str,
    wanted: &str,
    pick: impl FnOnce(IngestRequest) -> Result<T, IngestRequest>,
) -> Result<T, Failure> {
    match tokio::time::timeout(ANSWER, next_request(rx)).await {
        Ok(Some(req)) => pick(req).map_err(|other| Failure::Wrong {
            case,
            what: format!("expected {wanted}, the journal got {other:?}"),
        }),
        _ => Err(Failure::NoRequest {
            case,
            waited: ANSWER,
        }),
    }
}

/// What a sink's peer is told to do with the next deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMode {
    /// Take them (HTTP 2xx, PUBACK, a written file).
    Accept,
    /// Refuse them for now (HTTP 503): the sink must answer `Retry`.
    RefuseForNow,
    /// Refuse for good (HTTP 410 Gone): the sink must answer `Disabled`.
    Gone,
}

/// The real receiver a sink delivers to, driven by the kit.
pub trait Peer: Send {
    /// Switches what the peer does; `false` when this peer cannot (a file cannot say "gone").
    fn set_mode(&mut self, mode: PeerMode) -> impl Future<Output = bool> + Send;
    /// The event ids (CloudEvents `id`) the peer has received so far, in order, with repeats.
    fn received_ids(&mut self) -> impl Future<Output = Vec<String>> + Send;
}

/// Which sink cases ran (a peer that cannot refuse skips those).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkReport {
    pub delivered: usize,
    pub retry_checked: bool,
    pub disabled_checked: bool,
}

/// A delivery the kit offers: event `n`, its id stable across attempts.
pub fn delivery(n: i64, attempt: u32) -> crate::sink::Delivery {
    let id = format!("0190kit0-0000-7000-8000-{n:012}");
    let json = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "atgw/kit", "type": "org.atgw.event.v1.pendant_press",
        "subject": "kit/room-1", "time": "2026-01-01T00:00:00.000Z", "datacontenttype": "application/json",
        "data": {"kind": "pendant_press", "phase": "raised", "priority": "high"}
    })
    .to_string();
    crate::sink::Delivery {
        outbox_id: n,
        event_id: id.into(),
        kind: crate::Kind::PendantPress,
        priority: crate::Priority::High,
        device_id: "kit:pendant".into(),
        json: json.into(),
        attempt,
        alert_id: None,
        lifecycle: false,
        recipients: Default::default(),
    }
}

/// Runs the sink cases against sink `S`:
/// - **one outcome per delivery**: three deliveries, each answered `Delivered` exactly once,
///   and the peer has each event id;
/// - **retry**: while the peer refuses for now, the answer is `Retry` (never `Delivered` or
///   `Disabled`); offered again once it accepts, it is `Delivered` and the peer saw the same
///   event id on every attempt;
/// - **disabled**: a peer that is gone gets `Disabled`;
/// - **shutdown**: the sink's tasks return within [`SHUTDOWN_DEADLINE`] after shutdown.
pub async fn run_sink<S, P>(
    config: S::Config,
    site: Site,
    peer: &mut P,
) -> Result<SinkReport, Failure>
where
    S: crate::component::Sink,
    P: Peer,
{
    run_sink_with::<S, P>(config, site, peer, delivery).await
}

/// [`run_sink`] with the sink's own deliveries: `make(n, attempt)` is event `n` (its event id
/// the same on every attempt, its outbox id `n`). For a sink that sends only some events (the
/// FHIR sink sends vital signs and alerts, and answers a pendant press it does not send
/// without sending it), so the cases run on events it really sends.
pub async fn run_sink_with<S, P>(
    config: S::Config,
    site: Site,
    peer: &mut P,
    make: impl Fn(i64, u32) -> crate::sink::Delivery,
) -> Result<SinkReport, Failure>
where
    S: crate::component::Sink,
    P: Peer,
{
    use crate::sink::Outcome;
    let StartedSink {
        to_sink,
        mut outcomes,
        alert_rx: _alert_rx,
        shutdown,
        intake_shutdown,
        running,
    } = start_sink::<S>(config, site).await?;
    let mut report = SinkReport::default();
    let id_of = |o: &Outcome| match o {
        Outcome::Delivered(id) => *id,
        Outcome::Retry { outbox_id, .. } | Outcome::Disabled { outbox_id, .. } => *outbox_id,
    };

    let case = "one outcome per delivery";
    peer.set_mode(PeerMode::Accept).await;
    for n in 1..=3 {
        let _ = to_sink.send(make(n, 0)).await;
    }
    let mut answered = Vec::new();
    while answered.len() < 3 {
        match next_outcome(&mut outcomes).await {
            Some(Outcome::Delivered(id)) => answered.push(id),
            Some(other) => {
                return Err(Failure::Wrong {
                    case,
                    what: format!("a peer that accepts got {other:?}"),
                });
            }
            None => {
                return Err(Failure::Wrong {
                    case,
                    what: format!("only {answered:?} of 3 deliveries were answered"),
                });
            }
        }
    }
    answered.sort_unstable();
    if answered != [1, 2, 3] {
        return Err(Failure::Wrong {
            case,
            what: format!("outcomes {answered:?} for deliveries 1, 2, 3"),
        });
    }
    if let Ok(Some(extra)) = tokio::time::timeout(HOLD, outcomes.recv()).await {
        return Err(Failure::Wrong {
            case,
            what: format!("a fourth outcome for three deliveries: {extra:?}"),
        });
    }
    let ids = peer.received_ids().await;
    for n in 1..=3 {
        if !ids.iter().any(|i| *i == *make(n, 0).event_id) {
            return Err(Failure::Wrong {
                case,
                what: format!("delivered, but the peer never got event {n}"),
            });
        }
    }
    report.delivered = 3;

    let case = "retry";
    if peer.set_mode(PeerMode::RefuseForNow).await {
        let _ = to_sink.send(make(4, 0)).await;
        match next_outcome(&mut outcomes).await {
            Some(Outcome::Retry { outbox_id: 4, .. }) => {}
            other => {
                return Err(Failure::Wrong {
                    case,
                    what: format!("a peer refusing for now got {other:?}, not Retry"),
                });
            }
        }
        peer.set_mode(PeerMode::Accept).await;
        let _ = to_sink.send(make(4, 1)).await;
        match next_outcome(&mut outcomes).await {
            Some(Outcome::Delivered(4)) => {}
            other => {
                return Err(Failure::Wrong {
                    case,
                    what: format!("the retry of delivery 4 got {other:?}"),
                });
            }
        }
        let id4 = make(4, 0).event_id;
        let seen = peer.received_ids().await;
        if seen.iter().filter(|i| **i == *id4).count() < 2 {
            return Err(Failure::Wrong {
                case,
                what: "the peer did not see the same event id on both attempts".into(),
            });
        }
        report.retry_checked = true;
    }

    let case = "disabled";
    if peer.set_mode(PeerMode::Gone).await {
        let _ = to_sink.send(make(5, 0)).await;
        match next_outcome(&mut outcomes).await {
            Some(o @ Outcome::Disabled { .. }) if id_of(&o) == 5 => {}
            other => {
                return Err(Failure::Wrong {
                    case,
                    what: format!("a peer that is gone got {other:?}, not Disabled"),
                });
            }
        }
        report.disabled_checked = true;
        peer.set_mode(PeerMode::Accept).await;
    }

    drop(to_sink);
    stop_sink(&shutdown, &intake_shutdown, running).await?;
    Ok(report)
}

/// A sink the kit started, and its ends of the sink's channels.
struct StartedSink {
    to_sink: tokio::sync::mpsc::Sender<crate::sink::Delivery>,
    outcomes: tokio::sync::mpsc::UnboundedReceiver<crate::sink::Outcome>,
    alert_rx: tokio::sync::mpsc::Receiver<crate::component::AlertRequest>,
    shutdown: Shutdown,
    intake_shutdown: Shutdown,
    running: tokio::task::JoinSet<()>,
}

/// Checks and starts sink `S` as the core would, its output and intake tasks running.
async fn start_sink<S: crate::component::Sink>(
    config: S::Config,
    site: Site,
) -> Result<StartedSink, Failure> {
    let prepared = S::check(&config, &site).map_err(|e| Failure::Start(e.to_string()))?;
    let (to_sink, deliveries) = tokio::sync::mpsc::channel(S::window(&config).max(1));
    let (outcomes_tx, outcomes) = tokio::sync::mpsc::unbounded_channel();
    let (alert_requests, alert_rx) = tokio::sync::mpsc::channel(8);
    let (shutdown, intake_shutdown) = (Shutdown::new(), Shutdown::new());
    let ctx = crate::component::SinkContext {
        site,
        io: crate::sink::SinkIo {
            deliveries,
            outcomes: outcomes_tx,
        },
        health: std::sync::Arc::new(Health::default()),
        clock: std::sync::Arc::new(crate::clock::SystemClock),
        shutdown: shutdown.clone(),
        intake_shutdown: intake_shutdown.clone(),
        alert_requests,
        extra_health: S::extra_health(&config)
            .into_iter()
            .map(|p| (p, std::sync::Arc::new(Health::default())))
            .collect(),
    };
    let tasks = prepared
        .start(ctx)
        .await
        .map_err(|e| Failure::Start(e.to_string()))?;
    let mut running = tokio::task::JoinSet::new();
    running.spawn(tasks.output);
    for t in tasks.intake {
        running.spawn(t);
    }
    Ok(StartedSink {
        to_sink,
        outcomes,
        alert_rx,
        shutdown,
        intake_shutdown,
        running,
    })
}

/// Stops intake, then output, as the core does; every task must return within
/// [`SHUTDOWN_DEADLINE`].
async fn stop_sink(
    shutdown: &Shutdown,
    intake_shutdown: &Shutdown,
    mut running: tokio::task::JoinSet<()>,
) -> Result<(), Failure> {
    intake_shutdown.cancel();
    shutdown.cancel();
    tokio::time::timeout(SHUTDOWN_DEADLINE, async {
        while running.join_next().await.is_some() {}
    })
    .await
    .map_err(|_| Failure::NoShutdown)
}

mod commands;
pub use commands::{Commander, run_commands};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Battery;
    use crate::{EventDraft, Kind, Phase};

    #[test]
    fn the_schema_check_passes_a_good_draft_and_names_what_is_wrong_with_a_bad_one() {
        let good = EventDraft::new(Kind::PendantPress, Phase::Raised, "kit:p", "kit");
        assert!(valid_v1(&good).is_ok());
        let mut bad = good.clone();
        bad.data.battery = Some(Battery {
            percent: Some(140.0),
            ..Battery::default()
        });
        let Err(Failure::Schema(why)) = valid_v1(&bad) else {
            panic!("a battery at 140% passed the schema");
        };
        assert!(why.contains("battery"), "{why}");
    }
}
