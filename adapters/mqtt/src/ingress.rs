//! The device-facing MQTT adapter: subscribe, map each message through the device profiles,
//! commit, and only then PUBACK.
//!
//! Shape (protocols/rumqttc-acks.md §5): the poll task never awaits anything that depends on
//! itself. It takes room in a byte [`Window`] for each PUBLISH and forwards it to the committer;
//! with the window full it stops polling and the broker keeps the backlog. The committer takes
//! whatever is waiting (never waits to fill a batch), maps it, commits it in one journal
//! transaction, returns the room, and queues the PUBACKs in receive order to the [`acker`] task,
//! which hands them to rumqttc. The session is persistent
//! (`clean_session = false`, stable client id) so anything not yet acknowledged when we crash or
//! the connection drops is redelivered (with DUP set) and deduplicated by the journal.
//!
//! # Dedupe: what a device does after a reboot
//! The key is adapter + topic + payload bytes ([`dedupe_key`]), but only a broker *redelivery*
//! (DUP set) can be a duplicate: a message without DUP is a first delivery (`first_delivery`),
//! always journaled, so a device that reboots and publishes the same payload again (`{"action":
//! "single"}` for every press of a button) is a new event every time. A DUP redelivery matching a
//! key journaled within [`REDELIVERY_WINDOW`] (10 min, not the journal's 24 h) is taken for the
//! message we committed before the connection dropped. Redeliveries come when we reconnect
//! (seconds, or a restart), so the short window keeps a redelivered *new* press with the same
//! payload as one from hours ago from being dropped; if the gateway was down for longer than
//! the window, a message it had committed but not acknowledged is journaled twice (a duplicate
//! the alert engine attaches to the open alert), never lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use atgw_profile::{Evaluation, Input, ProfileSet};
use atgw_sdk::clock::SharedClock;
use atgw_sdk::ingest::{DeadLetter, Submission};
use atgw_sdk::ratelimit::LogLimiter;
use atgw_sdk::{Health, Ingest, Shutdown};
use rumqttc::{AsyncClient, Event, Incoming, Outgoing, QoS, SubscribeFilter};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::AdapterConfig;
use crate::connection::{self, Backoff, SetupError};
use crate::window::{Ack, Held, Window, acker};

/// rumqttc refuses (and drops the connection on) packets above its limit; a message it refuses
/// can never be acknowledged, so the transport limit is far above `max_payload`, which is where
/// we dead-letter. Brokers should cap `message_size_limit` below this (README).
const TRANSPORT_LIMIT: usize = 16 * 1024 * 1024;

/// Edge-state keys the adapter may gain in memory before it reads its state back from the
/// journal (see `commit_loop`).
const STATE_RELOAD_GROWTH: usize = 4096;

/// How long a DUP redelivery with a journaled message's key counts as that message (see the
/// module doc).
pub const REDELIVERY_WINDOW: Duration = Duration::from_secs(600);

/// What the adapter needs besides its config.
pub struct Context {
    pub gateway_id: String,
    pub profiles: Arc<ProfileSet>,
    pub timezone: jiff::tz::TimeZone,
    pub ingest: Ingest,
    pub health: Arc<Health>,
    pub clock: SharedClock,
    pub shutdown: Shutdown,
}

/// Runs until shutdown; reconnects forever with backoff while the broker is away.
pub async fn run(cfg: AdapterConfig, ctx: Context) -> Result<(), SetupError> {
    let broker = cfg.broker();
    let mut opts = connection::options(
        &broker,
        &format!("{}-{}", ctx.gateway_id, cfg.name),
        TRANSPORT_LIMIT.max(cfg.max_payload + 4096),
    )?;
    opts.set_manual_acks(true);
    let client_id = opts.client_id();
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    eventloop.set_network_options(connection::network_options());

    // Unbounded in count, bounded in bytes by `held` (see window.rs).
    let (tx, rx) = mpsc::unbounded_channel::<Held>();
    let held = Window::new(cfg.max_held_bytes);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
    tokio::spawn(acker(client.clone(), ack_rx));
    let acks_sent = Arc::new(AtomicU64::new(0));
    let committer = tokio::spawn(commit_loop(
        cfg.clone(),
        ack_tx,
        rx,
        ctx.ingest.clone(),
        ctx.profiles.clone(),
        ctx.timezone.clone(),
        ctx.health.clone(),
        ctx.clock.clone(),
        ctx.shutdown.clone(),
        acks_sent.clone(),
    ));
    let filters: Vec<SubscribeFilter> = cfg
        .topics
        .iter()
        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
        .collect();
    let mut backoff = Backoff::new(broker.reconnect_min, broker.reconnect_max);
    let unreachable_log = LogLimiter::new(Duration::from_secs(60));
    let mut pubacks_written = 0u64;
    let mut committer_done = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut committer = Some(committer);
    // When the last subscribe was requested and not yet confirmed by a SUBACK. rumqttc drops a
    // queued subscribe if the connection fails again before it is written, so we ask again.
    let mut unconfirmed_since: Option<tokio::time::Instant> = None;

    loop {
        if ctx.shutdown.is_cancelled() && !committer_done {
            if let Some(h) = committer.take() {
                // The committer finishes the batch in hand and sends its acks.
                let _ = h.await;
            }
            committer_done = true;
            drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
        }
        if committer_done {
            let flushed = pubacks_written >= acks_sent.load(Ordering::SeqCst);
            let late = drain_deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if flushed || late || !ctx.health.is_connected() {
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
                return Ok(());
            }
        }
        if let Some(since) = unconfirmed_since
            && ctx.health.is_connected()
            && since.elapsed() > SUBACK_TIMEOUT
        {
            tracing::warn!(adapter = %cfg.name, "no SUBACK after {SUBACK_TIMEOUT:?}; subscribing again");
            subscribe(&client, &filters);
            unconfirmed_since = Some(tokio::time::Instant::now());
        }
        let polled = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled(), if !committer_done => continue,
            p = eventloop.poll() => p,
            _ = tokio::time::sleep(SUBACK_TIMEOUT), if unconfirmed_since.is_some() => continue,
        };
        match polled {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                backoff.connected();
                ctx.health.set_connected(true);
                tracing::info!(adapter = %cfg.name, session_present = ack.session_present, "connected to broker {}:{}", broker.host, broker.port);
                // Always resubscribe: idempotent, and it also applies topics added to the config.
                subscribe(&client, &filters);
                unconfirmed_since = Some(tokio::time::Instant::now());
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                ctx.health.received(1);
                // Waits only on the committer. A message dropped here at shutdown was never
                // acknowledged, so the session redelivers it.
                let admitted = tokio::select! {
                    h = held.admit(p) => h,
                    _ = ctx.shutdown.cancelled() => continue,
                };
                let _ = tx.send(admitted);
            }
            Ok(Event::Incoming(Incoming::SubAck(s))) => {
                unconfirmed_since = None;
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(adapter = %cfg.name, "broker refused a subscription (check its ACL for {:?})", cfg.topics);
                    ctx.health.error("subscription refused");
                } else {
                    tracing::info!(adapter = %cfg.name, "subscribed to {:?}", cfg.topics);
                }
            }
            Ok(Event::Outgoing(Outgoing::PubAck(_))) => pubacks_written += 1,
            Ok(_) => {}
            Err(e) => {
                let wait = backoff.next_delay();
                if backoff.flapping_began() {
                    tracing::warn!(adapter = %cfg.name, "{}", connection::flapping_hint(&client_id, connection::FLAPPING_AFTER));
                }
                if ctx.health.is_connected() {
                    // While the broker keeps dropping us, the hint above said it once.
                    if backoff.flapping().is_none() {
                        tracing::warn!(adapter = %cfg.name, "broker connection lost: {e}; reconnecting");
                    }
                    ctx.health.reconnected();
                } else if let Some(skipped) = unreachable_log.allow("unreachable") {
                    tracing::warn!(adapter = %cfg.name, suppressed = skipped, "broker {}:{} unreachable: {e}; retrying with backoff", broker.host, broker.port);
                }
                ctx.health.set_connected(false);
                ctx.health.error(format!("broker: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// How long a subscribe may go unconfirmed before it is sent again.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests the subscriptions without ever blocking the poll task: if rumqttc's request channel
/// is full (acks queued), a helper task waits for room.
fn subscribe(client: &AsyncClient, filters: &[SubscribeFilter]) {
    if client.try_subscribe_many(filters.to_vec()).is_err() {
        let c = client.clone();
        let f = filters.to_vec();
        tokio::spawn(async move {
            let _ = c.subscribe_many(f).await;
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn commit_loop(
    cfg: AdapterConfig,
    acks: mpsc::UnboundedSender<Ack>,
    mut rx: mpsc::UnboundedReceiver<Held>,
    ingest: Ingest,
    profiles: Arc<ProfileSet>,
    tz: jiff::tz::TimeZone,
    health: Arc<Health>,
    clock: SharedClock,
    shutdown: Shutdown,
    acks_sent: Arc<AtomicU64>,
) {
    let limiter = LogLimiter::new(Duration::from_secs(10));
    let mut state = ingest.load_state_retrying(&shutdown).await;
    // Keys held when `state` was last read from the journal: past that plus
    // `STATE_RELOAD_GROWTH`, it is read again, so memory follows what the journal keeps (which
    // forgets the least recently heard unregistered devices) rather than every device ever heard.
    let mut loaded_keys = state.len();
    let mut batch: Vec<Held> = Vec::with_capacity(cfg.batch);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        batch.push(first);
        while batch.len() < cfg.batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // Commit, retrying until the journal takes it: unacknowledged messages stay with the
        // broker, so holding them is safe; acknowledging them would not be.
        let mut done = Progress::default();
        loop {
            let (subs, letters) = map_batch(
                &cfg, &batch, &profiles, &tz, &health, &clock, &mut state, &limiter,
            );
            match commit(&ingest, subs, letters, &mut done).await {
                Ok(()) => {
                    backoff.reset();
                    health.committed(batch.len() as u64);
                    // Committed: the journal holds every update in `state`, so reading it back
                    // loses nothing it still keeps.
                    if state.len() > loaded_keys + STATE_RELOAD_GROWTH {
                        state = ingest.load_state_retrying(&shutdown).await;
                        loaded_keys = state.len();
                    }
                    break;
                }
                Err(e) => {
                    health.error(format!("journal: {e}"));
                    tracing::error!(adapter = %cfg.name, "cannot commit {} messages, holding them unacknowledged: {e}", batch.len());
                    tokio::time::sleep(backoff.next_delay()).await;
                    state = ingest.load_state_retrying(&shutdown).await;
                    loaded_keys = state.len();
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
            }
        }
        // Dropping each `Held` returns its room in the window.
        for h in batch.drain(..) {
            if acks.send(Ack::of(&h.publish)).is_ok() {
                acks_sent.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Profiles turn each message into a submission or a dead letter; state updates apply at once
/// so the next message in the batch sees them.
#[allow(clippy::too_many_arguments)]
fn map_batch(
    cfg: &AdapterConfig,
    batch: &[Held],
    profiles: &ProfileSet,
    tz: &jiff::tz::TimeZone,
    health: &Health,
    clock: &SharedClock,
    state: &mut HashMap<String, String>,
    limiter: &LogLimiter,
) -> (Vec<Submission>, Vec<DeadLetter>) {
    let mut subs = Vec::with_capacity(batch.len());
    let mut letters = Vec::new();
    let now = clock.now();
    for p in batch.iter().map(|h| &h.publish) {
        let (reason, detail) = if p.payload.len() > cfg.max_payload {
            (
                "oversize",
                format!(
                    "{} bytes, limit max_payload = {}",
                    p.payload.len(),
                    cfg.max_payload
                ),
            )
        } else {
            let input = Input {
                protocol: "mqtt",
                topic: &p.topic,
                payload: &p.payload,
                received: now,
                adapter: &cfg.name,
                timezone: tz,
                request: None,
            };
            match profiles.evaluate(&input, &*state) {
                Evaluation::Mapped {
                    profile,
                    rule,
                    events,
                    quiet,
                    state: updates,
                    seen,
                } => {
                    if events.is_empty() && left_nothing(&quiet) {
                        note_path_absent(health, &cfg.name, &profile, &rule, &p.topic, &quiet);
                    }
                    for u in &updates {
                        match &u.value {
                            Some(v) => state.insert(u.key.clone(), v.clone()),
                            None => state.remove(&u.key),
                        };
                    }
                    subs.push(Submission {
                        events,
                        dedupe_key: Some(dedupe_key(&cfg.name, &p.topic, &p.payload)),
                        dedupe_window: Some(REDELIVERY_WINDOW),
                        first_delivery: !p.dup,
                        state: updates,
                        seen,
                    });
                    continue;
                }
                Evaluation::Ignored { .. } => {
                    health.ignored();
                    continue;
                }
                Evaluation::Rejected { reason, detail } => (reason, detail),
            }
        };
        health.rejected(reason);
        if let Some(skipped) = limiter.allow(reason) {
            tracing::warn!(adapter = %cfg.name, topic = %p.topic, reason, suppressed = skipped, "dead-lettered a message: {detail}");
        }
        letters.push(DeadLetter {
            reason: reason.to_owned(),
            detail,
            origin: p.topic.clone(),
            raw: p.payload.to_vec(),
        });
    }
    (subs, letters)
}

/// How much of one batch the journal already holds. Submissions and dead letters travel as
/// separate journal requests, so a failure can leave one committed and the other not; a retry
/// sends only the rest. Sending the submissions again would journal them twice: they are first
/// deliveries (no DUP flag), which dedupe rightly lets through as new presses.
#[derive(Debug, Default)]
struct Progress {
    submitted: bool,
    /// Dead letters committed, in batch order.
    rejected: usize,
}

async fn commit(
    ingest: &Ingest,
    subs: Vec<Submission>,
    letters: Vec<DeadLetter>,
    done: &mut Progress,
) -> Result<(), atgw_sdk::IngestError> {
    let (skip, submitted) = (done.rejected, done.submitted);
    let mut rejected = 0;
    let rejects = async {
        for l in letters.into_iter().skip(skip) {
            ingest.reject(l).await?;
            rejected += 1;
        }
        Ok::<(), atgw_sdk::IngestError>(())
    };
    let submits = async {
        if submitted || subs.is_empty() {
            return Ok(());
        }
        ingest.submit_batch(subs).await.map(drop)
    };
    let (r, s) = tokio::join!(rejects, submits);
    done.rejected += rejected;
    done.submitted |= s.is_ok();
    r?;
    s?;
    Ok(())
}

/// Identifies a message for redelivery dedupe: same adapter, topic and payload bytes.
pub fn dedupe_key(adapter: &str, topic: &str, payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update([0u8]);
    h.update(payload);
    let digest = h.finalize();
    format!("mqtt:{adapter}:{}", hex::encode(&digest[..16]))
}

/// Whether a mapped message that made no event made nothing because none of the fields its
/// rule reads was there (every state and point path absent), as opposed to a repeat or a
/// reading the rule only records.
fn left_nothing(quiet: &[atgw_profile::Quiet]) -> bool {
    !quiet.is_empty()
        && quiet
            .iter()
            .all(|q| matches!(q, atgw_profile::Quiet::Absent { .. }))
}

/// Counts it per `profile/rule`, and says so once per rule per run (a wrong `path` would
/// otherwise be silent: no event, no dead letter).
fn note_path_absent(
    health: &Health,
    adapter: &str,
    profile: &str,
    rule: &str,
    topic: &str,
    quiet: &[atgw_profile::Quiet],
) {
    if !health.path_absent(&format!("{profile}/{rule}")) {
        return;
    }
    let fields: Vec<String> = quiet
        .iter()
        .filter_map(|q| match q {
            atgw_profile::Quiet::Absent {
                path, at, present, ..
            } => Some(format!(
                "`{path}` (at `{at}` the message has: {})",
                present.join(", ")
            )),
            _ => None,
        })
        .collect();
    tracing::warn!(
        adapter,
        profile,
        rule,
        topic,
        "a message rule `{rule}` of profile `{profile}` took has none of the fields it reads: {}; \
         nothing was journaled for it (counted in atgw_profile_path_absent_total; said once). \
         Check the rule's paths with `atgw profile test`",
        fields.join("; ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::ingest::{Committed, IngestError, IngestRequest};

    fn letter(origin: &str) -> DeadLetter {
        DeadLetter {
            reason: "invalid_json".into(),
            detail: "not JSON".into(),
            origin: origin.into(),
            raw: b"{".to_vec(),
        }
    }

    #[tokio::test]
    async fn a_retry_after_a_partial_commit_journals_each_message_and_dead_letter_once() {
        let (tx, mut rx) = atgw_sdk::ingest::channel(16);
        let ingest = tx.for_adapter("zigbee");
        // A journal that commits every request except the second dead letter, once (a disk
        // that filled up between two transactions).
        let journal = tokio::spawn(async move {
            let (mut submitted, mut rejected, mut failed) = (0, Vec::new(), false);
            while let Some(req) = rx.recv().await {
                match req {
                    IngestRequest::Submit {
                        submissions, reply, ..
                    } => {
                        submitted += submissions.len();
                        let ok = submissions
                            .iter()
                            .map(|_| Committed::Stored { ids: Vec::new() })
                            .collect();
                        let _ = reply.send(Ok(ok));
                    }
                    IngestRequest::Reject { letter, reply, .. } => {
                        if letter.origin == "b" && !failed {
                            failed = true;
                            let _ = reply.send(Err(IngestError::Storage("disk full".into())));
                        } else {
                            rejected.push(letter.origin);
                            let _ = reply.send(Ok(()));
                        }
                    }
                    IngestRequest::LoadState { reply, .. } => {
                        let _ = reply.send(Ok(Vec::new()));
                    }
                }
            }
            (submitted, rejected)
        });
        let press = Submission {
            dedupe_key: Some("mqtt:zigbee:press".into()),
            first_delivery: true,
            ..Default::default()
        };
        let mut done = Progress::default();
        let first = commit(
            &ingest,
            vec![press.clone()],
            vec![letter("a"), letter("b")],
            &mut done,
        )
        .await;
        assert!(first.is_err(), "the batch is not acknowledged yet");
        commit(
            &ingest,
            vec![press],
            vec![letter("a"), letter("b")],
            &mut done,
        )
        .await
        .expect("the retry completes the batch");
        drop((ingest, tx));
        let (submitted, rejected) = journal.await.unwrap();
        assert_eq!(submitted, 1, "the committed message was submitted again");
        assert_eq!(rejected, vec!["a", "b"], "each dead letter stored once");
    }
}
