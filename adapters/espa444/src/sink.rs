//! The paging sink (atgw as the control station) under the component contract, and its I/O:
//! one held link; each delivery becomes one header 1 block per call address, sent through the
//! [`Sender`] state machine one at a time.
//!
//! The one rule: a delivery is `Delivered` only when the paging system ACKed the block for
//! every address. A NAK or silence is retried on the link (`block_retries`), then the delivery
//! is a `Retry` after `retry_after`, which the outbox counts like any other sink's failures, so
//! a paging system that keeps refusing makes the alert escalate past it. Addresses already
//! paged for an event are remembered, so a retry pages only the handsets that missed it.
//!
//! Between pages the link is the paging system's to use: when it selects atgw (`<address>
//! ENQ`, on its own or answering a poll every `poll_interval`), its header 2 status blocks
//! ([`crate::status`]) are journaled against the alert last paged to that call address, each
//! ACKed only once the core committed it (NAK otherwise, so the paging system sends it again).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::Health;
use atgw_sdk::component::{
    AlertAction, AlertRequest, ComponentError, Invalid, Link, Sink, SinkContext, SinkTasks, Site,
};
use atgw_sdk::sink::{Delivery, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::block::{ENQ, EOT};
use crate::config::SinkConfig;
use crate::page::{self, Page};
use crate::receive::{Action, Receiver};
use crate::send::{Sender, Timing};
use crate::status::{self, CallStatus};
use crate::transport::{MAX_BACKOFF, MIN_BACKOFF, Opener, Stream};
use crate::wire::Reader;

/// Events whose paged addresses are remembered, at most.
const REMEMBERED: usize = 1024;
/// How long connecting to the paging system may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The paging sink, past its preflight.
pub struct EspaSink {
    config: SinkConfig,
}

impl Sink for EspaSink {
    const TYPE: &'static str = "espa444";
    type Config = SinkConfig;

    fn name(config: &SinkConfig) -> &str {
        &config.name
    }
    fn validate(config: &SinkConfig) -> Result<(), Invalid> {
        config.validate()
    }
    /// One block at a time: ESPA 4.4.4 is a half-duplex link.
    fn window(_: &SinkConfig) -> usize {
        1
    }
    fn link(_: &SinkConfig) -> Link {
        Link::Held
    }
    fn audit(config: &SinkConfig, subject: &str, _site: &Site) -> Vec<atgw_sdk::audit::Finding> {
        crate::audit::link(
            subject,
            &config.transport(),
            "read every page or stand in for the paging system",
        )
    }
    fn check(config: &SinkConfig, _site: &Site) -> Result<Self, ComponentError> {
        config.validate().map_err(ComponentError::new)?;
        Ok(EspaSink {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        let transport = self.config.transport();
        let opener = Opener::bind(&transport).await.map_err(|e| {
            ComponentError::new(format!(
                "cannot open the ESPA paging link ({}): {e}; is another program using it?",
                transport.describe()
            ))
        })?;
        tracing::info!(sink = %self.config.name, link = %transport.describe(), "espa444 sink starting");
        let pager = Pager {
            config: self.config,
            health: ctx.health,
            paged: HashMap::new(),
            last_alert: HashMap::new(),
            requests: Some(ctx.alert_requests),
        };
        Ok(SinkTasks {
            output: Box::pin(pager.run(
                opener,
                ctx.io.deliveries,
                ctx.io.outcomes,
                ctx.shutdown,
                ctx.intake_shutdown,
            )),
            intake: Vec::new(),
        })
    }
}

struct Pager {
    config: SinkConfig,
    health: Arc<Health>,
    /// Event id → addresses whose page the paging system ACKed.
    paged: HashMap<Arc<str>, BTreeSet<String>>,
    /// Call address → the alert last paged to it, for the paging system's status reports.
    last_alert: HashMap<String, Arc<str>>,
    /// Where status reports and handset acknowledgements go to be committed; dropped when
    /// intake stops (the core's command task ends only when every sender is gone), after
    /// which a status block gets NAK.
    requests: Option<mpsc::Sender<AlertRequest>>,
}

/// Why a delivery did not get through this time.
enum Failed {
    /// The link broke: reopen it.
    Link(String),
    /// The paging system refused or did not answer.
    Refused(String),
}

impl Pager {
    async fn run(
        mut self,
        opener: Opener,
        mut deliveries: mpsc::Receiver<Delivery>,
        outcomes: mpsc::UnboundedSender<Outcome>,
        shutdown: atgw_sdk::Shutdown,
        intake: atgw_sdk::Shutdown,
    ) {
        let mut stream: Option<Stream> = None;
        let mut backoff = MIN_BACKOFF;
        let base = Instant::now();
        let mut buf = [0u8; 256];
        let mut reader = Reader::new();
        let (own, peer) = self.config.stations();
        let mut receiver = Receiver::new(own, self.config.block_timeout);
        let mut next_poll = Instant::now() + self.config.poll_interval;
        loop {
            if stream.is_none() {
                match tokio::time::timeout(CONNECT_TIMEOUT, opener.open()).await {
                    Ok(Ok((s, origin))) => {
                        tracing::info!(sink = %self.config.name, %origin, "espa444 paging link open");
                        stream = Some(s);
                        backoff = MIN_BACKOFF;
                        self.health.set_connected(true);
                        reader = Reader::new();
                        receiver = Receiver::new(own, self.config.block_timeout);
                    }
                    failed => {
                        self.health.set_connected(false);
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "timed out".into(),
                        };
                        tracing::warn!(sink = %self.config.name, link = %self.config.transport().describe(),
                            "espa444: cannot open the paging link: {why}; retrying in {backoff:?}");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { continue };
            let polling = !self.config.poll_interval.is_zero();
            let idle = *receiver.state() == crate::receive::State::Idle;
            let wake = receiver
                .deadline()
                .map(|d| base + d)
                .into_iter()
                .chain(polling.then_some(next_poll))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = intake.cancelled(), if self.requests.is_some() => self.requests = None,
                // Between pages the link is the paging system's: its select and status blocks,
                // an EOT after an exchange (digimat-espa), or a closed link.
                r = s.read(&mut buf) => {
                    let n = match r {
                        Ok(n) if n > 0 => n,
                        _ => {
                            tracing::info!(sink = %self.config.name, "espa444 paging link closed");
                            stream = None;
                            self.health.set_connected(false);
                            continue;
                        }
                    };
                    let mut actions = Vec::new();
                    for t in reader.feed(&buf[..n]) {
                        actions.extend(receiver.on(t, base.elapsed()));
                    }
                    let mut out = Vec::new();
                    for a in actions {
                        match a {
                            Action::Send(b) => out.extend(b),
                            Action::Deliver { raw } => {
                                let ack = self.on_status(&raw).await;
                                for a in receiver.answered(ack, base.elapsed()) {
                                    if let Action::Send(b) = a {
                                        out.extend(b);
                                    }
                                }
                            }
                            Action::Reject { error, .. } => {
                                self.health.error(format!("a status block from the paging system was refused: {error}"));
                                tracing::warn!(sink = %self.config.name, "espa444: NAK to a block from the paging system: {error}");
                            }
                        }
                    }
                    if !out.is_empty() && (s.write_all(&out).await.is_err() || s.flush().await.is_err()) {
                        stream = None;
                        self.health.set_connected(false);
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    receiver.tick(base.elapsed());
                    if polling && Instant::now() >= next_poll {
                        next_poll = Instant::now() + self.config.poll_interval;
                        if *receiver.state() == crate::receive::State::Idle {
                            // After EOT, `<paging> ENQ`: the paging system answers EOT, or
                            // selects us (`<own> ENQ`) to report status.
                            if s.write_all(&[EOT, peer, ENQ]).await.is_err() {
                                stream = None;
                                self.health.set_connected(false);
                            }
                        }
                    }
                }
                d = deliveries.recv(), if idle => {
                    let Some(d) = d else { break };
                    let outcome = match self.deliver(s, &d, base).await {
                        Ok(()) => {
                            self.health.delivered(1);
                            Outcome::Delivered(d.outbox_id)
                        }
                        Err(Failed::Link(why)) => {
                            stream = None;
                            self.health.set_connected(false);
                            self.retry(&d, format!("the paging link broke: {why}"))
                        }
                        Err(Failed::Refused(why)) => self.retry(&d, why),
                    };
                    let _ = outcomes.send(outcome);
                }
            }
        }
    }

    /// One good block from the paging system: a status report is journaled against the alert
    /// last paged to its call address (and may acknowledge it). True to ACK: committed, or
    /// nothing to commit; false (NAK) when the core did not commit it in time.
    async fn on_status(&mut self, raw: &[u8]) -> bool {
        let report = match crate::block::Block::decode(raw)
            .map_err(|e| e.to_string())
            .and_then(|b| status::read(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(why) => {
                tracing::info!(sink = %self.config.name, "espa444: a block from the paging system ignored: {why}");
                return true;
            }
        };
        let Some(alert_id) = self.last_alert.get(&report.address).cloned() else {
            tracing::info!(sink = %self.config.name, address = %report.address,
                "espa444: status \"{}\" for a call address atgw has not paged; nothing to record", report.status.words());
            return true;
        };
        let by = format!("handset {}", report.address);
        let note = format!("{}, {by}", report.status.words());
        tracing::info!(sink = %self.config.name, alert = %alert_id, "espa444: {note}");
        let mut committed = self.request(&alert_id, AlertAction::Note, &by, note).await;
        if committed
            && self.config.ack_on_called_party
            && report.status == CallStatus::AcknowledgedByCalledParty
        {
            committed = self
                .request(
                    &alert_id,
                    AlertAction::Ack,
                    &by,
                    "acknowledged on the handset (ESPA status 6)".into(),
                )
                .await;
        }
        committed
    }

    /// Hands one command to the core; true once it is committed or finally refused.
    async fn request(&self, alert_id: &str, action: AlertAction, by: &str, note: String) -> bool {
        let (reply, answer) = oneshot::channel();
        let req = AlertRequest {
            via: format!("ESPA sink `{}`", self.config.name),
            alert_id: alert_id.to_owned(),
            action,
            by: by.to_owned(),
            note: Some(note),
            outcome: None,
            reply,
        };
        let Some(requests) = &self.requests else {
            return false;
        };
        if requests.send(req).await.is_err() {
            return false;
        }
        match tokio::time::timeout(self.config.block_timeout, answer).await {
            Ok(Ok(Ok(()))) => true,
            Ok(Ok(Err(refused))) => {
                tracing::info!(sink = %self.config.name, alert = %alert_id, "espa444: {action:?} refused: {refused}");
                true
            }
            _ => false,
        }
    }

    fn retry(&self, d: &Delivery, reason: String) -> Outcome {
        self.health.error(reason.clone());
        tracing::warn!(sink = %self.config.name, event_id = %d.event_id, attempt = d.attempt, "espa444: page not delivered: {reason}");
        Outcome::Retry {
            outbox_id: d.outbox_id,
            after: Some(self.config.retry_after),
            reason,
        }
    }

    /// Pages every address of `d` not yet paged for its event.
    async fn deliver(&mut self, s: &mut Stream, d: &Delivery, base: Instant) -> Result<(), Failed> {
        let page = page::page(&self.config, d);
        if page == Page::Nothing {
            return Ok(());
        }
        let addresses: Vec<String> = page::addresses(&self.config, d)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if addresses.is_empty() {
            return Err(Failed::Refused(
                "nobody to page: no `to` in the sink and no espa444 contact on shift in the route's team".into(),
            ));
        }
        if self.paged.len() >= REMEMBERED && !self.paged.contains_key(&d.event_id) {
            self.paged.clear();
        }
        for address in addresses {
            if self
                .paged
                .get(&d.event_id)
                .is_some_and(|done| done.contains(&address))
            {
                continue;
            }
            let Some(block) = page::block(&self.config, &page, &address) else {
                continue;
            };
            self.send(s, block.encode(), base)
                .await
                .map_err(|f| match f {
                    Failed::Refused(why) => {
                        Failed::Refused(format!("call address {address}: {why}"))
                    }
                    other => other,
                })?;
            tracing::info!(sink = %self.config.name, event_id = %d.event_id, %address, "espa444: paged");
            if let (Page::Call { .. }, Some(alert)) = (&page, &d.alert_id) {
                if self.last_alert.len() >= REMEMBERED && !self.last_alert.contains_key(&address) {
                    self.last_alert.clear();
                }
                self.last_alert.insert(address.clone(), alert.clone());
            }
            self.paged
                .entry(d.event_id.clone())
                .or_default()
                .insert(address);
        }
        self.paged.remove(&d.event_id);
        Ok(())
    }

    /// One block through select, send, ACK, EOT.
    async fn send(&self, s: &mut Stream, block: Vec<u8>, base: Instant) -> Result<(), Failed> {
        let (own, peer) = self.config.stations();
        let timing = Timing {
            select_timeout: self.config.select_timeout,
            select_retries: self.config.select_retries,
            block_timeout: self.config.block_timeout,
            block_retries: self.config.block_retries,
        };
        let link = |e: std::io::Error| Failed::Link(e.to_string());
        let (mut sender, first) = Sender::start(own, peer, timing, block, base.elapsed());
        s.write_all(&first).await.map_err(link)?;
        let mut reader = Reader::new();
        let mut buf = [0u8; 256];
        loop {
            if let Some(r) = sender.outcome() {
                return r.clone().map_err(|e| Failed::Refused(e.to_string()));
            }
            let wake = sender
                .deadline()
                .map_or_else(|| Instant::now() + Duration::from_secs(1), |d| base + d);
            let out = tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(n) if n > 0 => {
                        let mut out = Vec::new();
                        for t in reader.feed(&buf[..n]) {
                            out.extend(sender.on(t, base.elapsed()));
                        }
                        out
                    }
                    Ok(_) => return Err(Failed::Link("closed by the paging system".into())),
                    Err(e) => return Err(link(e)),
                },
                _ = tokio::time::sleep_until(wake) => sender.tick(base.elapsed()),
            };
            if !out.is_empty() {
                s.write_all(&out).await.map_err(link)?;
                s.flush().await.map_err(link)?;
            }
        }
    }
}
