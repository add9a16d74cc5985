//! Acknowledgements from care teams over MQTT: `<topic_prefix>/alerts/<alert-id>/ack` and
//! `/resolve` with a JSON body (`{"by": "…", "note": "…"}`, plus `"outcome"` to resolve).
//!
//! Its own connection (client id `<gateway>-<sink>-control`, persistent session, manual acks):
//! an acknowledgement is PUBACKed only after the journal committed it, so a care worker's
//! "I'm on it" is never lost either.

use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::component::{AlertAction as Action, AlertRequest};
use atgw_sdk::{Health, Shutdown};
use rumqttc::{AsyncClient, Event, Incoming, Publish, QoS, SubscribeFilter};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::SinkConfig;
use crate::connection::{self, Backoff, SetupError};

/// The body of an ack or resolve message.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub by: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
}

/// Splits `<prefix>/alerts/<id>/<ack|resolve>`.
pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, Action)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix("/alerts/")?;
    let (id, action) = rest.rsplit_once('/')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    match action {
        "ack" => Some((id, Action::Ack)),
        "resolve" => Some((id, Action::Resolve)),
        _ => None,
    }
}

/// Runs until shutdown, forwarding requests to the core ([`AlertRequest`]).
pub async fn run(
    cfg: SinkConfig,
    gateway_id: String,
    requests: mpsc::Sender<AlertRequest>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), SetupError> {
    let broker = cfg.broker();
    let mut opts = connection::options(
        &broker,
        &format!("{gateway_id}-{}-control", cfg.name),
        64 * 1024,
    )?;
    opts.set_manual_acks(true);
    if let Some(id) = &cfg.client_id {
        opts.set_client_id(format!("{id}-control"));
    }
    let client_id = opts.client_id();
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    eventloop.set_network_options(connection::network_options());
    let filters = vec![
        SubscribeFilter::new(
            format!("{}/alerts/+/ack", cfg.topic_prefix),
            QoS::AtLeastOnce,
        ),
        SubscribeFilter::new(
            format!("{}/alerts/+/resolve", cfg.topic_prefix),
            QoS::AtLeastOnce,
        ),
    ];
    let mut backoff = Backoff::new(broker.reconnect_min, broker.reconnect_max);
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = client.try_disconnect();
                return Ok(());
            }
            p = eventloop.poll() => p,
        };
        match polled {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff.connected();
                health.set_connected(true);
                if client.try_subscribe_many(filters.clone()).is_err() {
                    let (c, f) = (client.clone(), filters.clone());
                    tokio::spawn(async move {
                        let _ = c.subscribe_many(f).await;
                    });
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                health.received(1);
                // Never await the core on the poll task: the answer comes back through rumqttc.
                tokio::spawn(handle(
                    cfg.name.clone(),
                    cfg.topic_prefix.clone(),
                    p,
                    client.clone(),
                    requests.clone(),
                    health.clone(),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                let wait = backoff.next_delay();
                if backoff.flapping_began() {
                    tracing::warn!(sink = %cfg.name, "{}", connection::flapping_hint(&client_id, connection::FLAPPING_AFTER));
                }
                if health.is_connected() {
                    health.reconnected();
                }
                health.set_connected(false);
                health.error(format!("control connection: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

async fn handle(
    sink: String,
    prefix: String,
    p: Publish,
    client: AsyncClient,
    requests: mpsc::Sender<AlertRequest>,
    health: Arc<Health>,
) {
    let parsed = parse_topic(&prefix, &p.topic)
        .ok_or_else(|| "not an alert ack/resolve topic".to_owned())
        .and_then(|(id, action)| {
            serde_json::from_slice::<Body>(&p.payload)
                .map(|body| (id.to_owned(), action, body))
                .map_err(|e| {
                    format!("body must be JSON like {{\"by\": \"name\", \"note\": \"…\"}}: {e}")
                })
        });
    match parsed {
        Ok((alert_id, action, body)) => {
            let (reply, rx) = oneshot::channel();
            if requests
                .send(AlertRequest {
                    via: format!("MQTT sink `{sink}`"),
                    alert_id: alert_id.clone(),
                    action,
                    by: body.by,
                    note: body.note,
                    outcome: body.outcome,
                    reply,
                })
                .await
                .is_err()
            {
                return; // shutting down: not acked, the broker redelivers later
            }
            match tokio::time::timeout(Duration::from_secs(30), rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => {
                    health.rejected("alert_command_refused");
                    tracing::warn!(topic = %p.topic, "alert command refused: {why}");
                }
                // Not committed: leave it unacknowledged so it is delivered again.
                _ => return,
            }
        }
        Err(why) => {
            health.rejected("bad_alert_command");
            tracing::warn!(topic = %p.topic, "ignored an alert command: {why}");
        }
    }
    let _ = client.ack(&p).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_the_alert_and_the_action() {
        assert_eq!(
            parse_topic("atgw/oak", "atgw/oak/alerts/0196-ab/ack"),
            Some(("0196-ab", Action::Ack))
        );
        assert_eq!(
            parse_topic("atgw/oak", "atgw/oak/alerts/x/resolve"),
            Some(("x", Action::Resolve))
        );
        assert_eq!(parse_topic("atgw/oak", "atgw/oak/alerts/x"), None);
        assert_eq!(parse_topic("atgw/oak", "atgw/oak/alerts//ack"), None);
        assert_eq!(parse_topic("atgw/oak", "atgw/elm/alerts/x/ack"), None);
        assert_eq!(parse_topic("atgw/oak", "atgw/oak/alerts/x/delete"), None);
    }
}
