//! The upstream MQTT sink: CloudEvents structured JSON at QoS 1 to
//! `<topic_prefix>/events/<kind>`, each outbox row released only on its PUBACK.
//!
//! A feeder task hands publishes to rumqttc (recording each in the [`Tracker`] first); the poll
//! task maps `Outgoing::Publish`/`PubAck` back to outbox rows and reports them delivered. The
//! dispatcher never has more than `window` rows in flight and rumqttc's inflight is the same
//! `window`, which is the application window that keeps rumqttc's replay path from dropping
//! publishes (protocols/rumqttc-acks.md §2). Rows the broker may have lost when it forgot our
//! session are published again, so upstream receivers must deduplicate on the event `id`.
//!
//! An alert's lifecycle is kept retained at `<topic_prefix>/alerts/<id>` while it is live, so
//! a console that connects sees every open alert at once; its resolution is published there
//! and then the retained state is cleared (an empty retained message), so the broker keeps
//! only live alerts, not every alert the site ever had. The row is released once both
//! publishes are acknowledged (the clear is tracked as `-outbox_id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use rumqttc::{AsyncClient, Event, Incoming, Outgoing, QoS, Request};
use tokio::sync::mpsc;

use crate::config::SinkConfig;
use crate::connection::{self, Backoff, SetupError};
use crate::tracker::Tracker;

/// Largest event we publish (the journal never holds larger ones: raw payloads are capped).
const MAX_PACKET: usize = 1024 * 1024;

/// Rows not yet acknowledged, by outbox id, so they can be published again: the delivery and
/// how many of its publishes still await their PUBACK.
type Outstanding = Arc<Mutex<HashMap<i64, (Delivery, u8)>>>;

/// Runs until shutdown (after a bounded drain of unacknowledged publishes).
pub async fn run(
    cfg: SinkConfig,
    gateway_id: &str,
    io: SinkIo,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), SetupError> {
    let broker = cfg.broker();
    let mut opts = connection::options(&broker, &format!("{gateway_id}-{}", cfg.name), MAX_PACKET)?;
    // Up to two publishes a row (a resolution and its clear): rumqttc's window is twice the
    // rows', so the app-level window still bounds what it holds.
    opts.set_inflight(cfg.window.saturating_mul(2));
    let client_id = opts.client_id();
    let (client, mut eventloop) = AsyncClient::new(opts, 2 * cfg.window as usize + 4);
    eventloop.set_network_options(connection::network_options());

    let tracker: Arc<Mutex<Tracker<i64>>> = Arc::new(Mutex::new(Tracker::default()));
    let outstanding: Outstanding = Arc::new(Mutex::new(HashMap::new()));
    let (requeue_tx, requeue_rx) = mpsc::unbounded_channel::<Vec<i64>>();
    let SinkIo {
        deliveries,
        outcomes,
    } = io;
    let feeder = tokio::spawn(feed(
        cfg.topic_prefix.clone(),
        client.clone(),
        deliveries,
        requeue_rx,
        tracker.clone(),
        outstanding.clone(),
        shutdown.clone(),
    ));

    let link = Link {
        name: &cfg.name,
        tracker: &tracker,
        outstanding: &outstanding,
        outcomes: &outcomes,
        requeue: &requeue_tx,
        health: &health,
    };
    let mut backoff = Backoff::new(broker.reconnect_min, broker.reconnect_max);
    let unreachable_log = atgw_sdk::ratelimit::LogLimiter::new(Duration::from_secs(60));
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if shutdown.is_cancelled() {
            let until = *drain_until
                .get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(3));
            let idle = tracker.lock().map(|t| t.outstanding() == 0).unwrap_or(true);
            if idle || tokio::time::Instant::now() >= until || !health.is_connected() {
                feeder.abort();
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_millis(300), eventloop.poll()).await;
                return Ok(());
            }
        }
        // Running: wake on shutdown itself, or an idle link would only notice at its next
        // keep-alive. Draining: wake every 200 ms to check the drain's end.
        let polled = if shutdown.is_cancelled() {
            tokio::select! {
                p = eventloop.poll() => p,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            }
        } else {
            tokio::select! {
                p = eventloop.poll() => p,
                _ = shutdown.cancelled() => continue,
            }
        };
        match polled {
            Ok(ev) => link.on_event(ev, &mut backoff),
            Err(e) => {
                // Events rumqttc queued during the failing call belong to the old connection:
                // apply them now, before the next CONNACK decides what was lost.
                while let Some(ev) = eventloop.state.events.pop_front() {
                    link.on_event(ev, &mut backoff);
                }
                // A publish parked in the collision slot survives `clean()` and, if the session
                // is lost, blocks rumqttc until CollisionTimeout; give it back as unassigned.
                if let Some(mut p) = eventloop.state.collision.take() {
                    p.pkid = 0;
                    let at = eventloop
                        .pending
                        .iter()
                        .position(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
                        .unwrap_or(eventloop.pending.len());
                    eventloop.pending.insert(at, Request::Publish(p));
                }
                let unassigned = eventloop
                    .pending
                    .iter()
                    .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
                    .count();
                if let Ok(mut t) = tracker.lock() {
                    t.connection_error(unassigned);
                }
                let wait = backoff.next_delay();
                if backoff.flapping_began() {
                    tracing::warn!(sink = %cfg.name, "{}", connection::flapping_hint(&client_id, connection::FLAPPING_AFTER));
                }
                if health.is_connected() {
                    if backoff.flapping().is_none() {
                        tracing::warn!(sink = %cfg.name, "upstream broker connection lost: {e}; reconnecting");
                    }
                    health.reconnected();
                } else if let Some(skipped) = unreachable_log.allow("unreachable") {
                    tracing::warn!(sink = %cfg.name, suppressed = skipped, "upstream broker {}:{} unreachable: {e}; retrying with backoff", broker.host, broker.port);
                }
                health.set_connected(false);
                health.error(format!("broker: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// What the poll task needs to turn rumqttc events into outbox outcomes.
struct Link<'a> {
    name: &'a str,
    tracker: &'a Mutex<Tracker<i64>>,
    outstanding: &'a Mutex<HashMap<i64, (Delivery, u8)>>,
    outcomes: &'a mpsc::UnboundedSender<Outcome>,
    requeue: &'a mpsc::UnboundedSender<Vec<i64>>,
    health: &'a Health,
}

impl Link<'_> {
    fn on_event(&self, ev: Event, backoff: &mut Backoff) {
        let Link {
            name,
            tracker,
            outstanding,
            outcomes,
            requeue,
            health,
        } = *self;
        match ev {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                backoff.connected();
                health.set_connected(true);
                tracing::info!(sink = %name, session_present = ack.session_present, "connected to upstream broker");
                if !ack.session_present {
                    let lost = tracker
                        .lock()
                        .map(|mut t| t.session_lost())
                        .unwrap_or_default();
                    if !lost.is_empty() {
                        tracing::info!(sink = %name, count = lost.len(), "broker lost our session; publishing unacknowledged events again");
                        let _ = requeue.send(lost);
                    }
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Ok(mut t) = tracker.lock() {
                    t.outgoing(pkid);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                let id = tracker.lock().ok().and_then(|mut t| t.acked(ack.pkid));
                if let Some(id) = id {
                    // `-row`: the clear that follows a resolution.
                    let row = id.abs();
                    let done = outstanding
                        .lock()
                        .map_or(true, |mut o| match o.get_mut(&row) {
                            Some((_, left)) if *left > 1 => {
                                *left -= 1;
                                false
                            }
                            _ => {
                                o.remove(&row);
                                true
                            }
                        });
                    if done {
                        health.delivered(1);
                        let _ = outcomes.send(Outcome::Delivered(row));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Hands deliveries (and requeued ones first) to rumqttc, in order.
async fn feed(
    prefix: String,
    client: AsyncClient,
    mut deliveries: mpsc::Receiver<Delivery>,
    mut requeue: mpsc::UnboundedReceiver<Vec<i64>>,
    tracker: Arc<Mutex<Tracker<i64>>>,
    outstanding: Outstanding,
    shutdown: Shutdown,
) {
    loop {
        let batch: Vec<(Delivery, u8)> = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            ids = requeue.recv() => match ids {
                Some(ids) => {
                    // A row once, whichever of its publishes were lost; all of them again.
                    let mut rows: Vec<i64> = Vec::with_capacity(ids.len());
                    for id in ids.iter().map(|id| id.abs()) {
                        if !rows.contains(&id) {
                            rows.push(id);
                        }
                    }
                    outstanding.lock().map(|mut o| rows.iter().filter_map(|id| {
                        let (d, left) = o.get_mut(id)?;
                        *left = publishes(d);
                        Some((d.clone(), *left))
                    }).collect()).unwrap_or_default()
                }
                None => return,
            },
            d = deliveries.recv() => match d {
                Some(d) => {
                    let n = publishes(&d);
                    if let Ok(mut o) = outstanding.lock() {
                        o.insert(d.outbox_id, (d.clone(), n));
                    }
                    vec![(d, n)]
                }
                None => return,
            },
        };
        for (d, publishes) in batch {
            if let Ok(mut t) = tracker.lock() {
                t.handed(d.outbox_id);
            }
            // Lifecycle events also keep the alert's current state retained at its own topic, so
            // a console that connects later sees every open alert at once.
            let (topic, retain) = match (&d.alert_id, d.lifecycle) {
                (Some(id), true) => (format!("{prefix}/alerts/{id}"), true),
                _ => (format!("{prefix}/events/{}", d.kind), false),
            };
            if client
                .publish(
                    topic.clone(),
                    QoS::AtLeastOnce,
                    retain,
                    d.json.as_bytes().to_vec(),
                )
                .await
                .is_err()
            {
                return;
            }
            if publishes == 2 {
                // Resolved: the broker forgets it (an empty retained message clears the topic).
                if let Ok(mut t) = tracker.lock() {
                    t.handed(-d.outbox_id);
                }
                if client
                    .publish(topic, QoS::AtLeastOnce, true, Vec::new())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// How many publishes a row takes: two for an alert's resolution (the state, then clearing
/// its retained copy), one for everything else.
fn publishes(d: &Delivery) -> u8 {
    #[derive(serde::Deserialize)]
    struct Data {
        phase: String,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Data,
    }
    if d.lifecycle
        && d.alert_id.is_some()
        && serde_json::from_str::<Envelope>(&d.json).is_ok_and(|e| e.data.phase == "resolved")
    {
        2
    } else {
        1
    }
}
