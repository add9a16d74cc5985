//! The SMS sink task: one SMPP session to the SMSC, kept bound (enquire_link keepalive,
//! reconnect with back-off), each `Delivery` a `submit_sm` per recipient, each delivery one
//! `Outcome` once every recipient's `submit_sm_resp` is in (see [`crate::ledger`]).
//!
//! While no session is bound (connecting, bind refused, back-off) every delivery is answered
//! `Retry` at once, so the outbox keeps its schedule and escalates a failing alert to the next
//! tier as it does for any sink; readiness (`Link::Held`) follows the bound session.
//!
//! Delivery receipts (`deliver_sm` with the receipt bit of `esm_class`) are answered with
//! `deliver_sm_resp` and recorded: the sink's health counts them (`received`, the time of the
//! last in `last_message`), a receipt saying the handset did not get the message is a health
//! error, and each is one log line with the SMSC's message id and state, never a number.

use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::bundle::{Bundler, Followers, Group};
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use jiff::tz::TimeZone;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{BindMode, SmsConfig, source_numbering};
use crate::connection::{self, Connection, Inbound};
use crate::error::SessionError;
use crate::ledger::Ledger;
use crate::pdu::{self, Bind, BindResp, Body, Pdu, Receipt, ShortMessage, Tlv, status};
use crate::text::{self, Fallback};

/// Shortest and longest wait between connection attempts.
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(60);
/// A session that lasted this long resets the reconnect back-off.
const STABLE_SESSION: Duration = Duration::from_secs(60);
/// At shutdown: how long submits in flight may take to be answered, then the unbind.
const DRAIN_MAX: Duration = Duration::from_secs(2);
const UNBIND_WAIT: Duration = Duration::from_secs(1);
/// One failure line per interval and kind while the SMSC keeps failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Everything the task needs that does not change.
pub struct Settings {
    pub config: SmsConfig,
    /// The bind password, read at start from `password_file`.
    pub password: atgw_sdk::secret::Secret,
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub timezone: TimeZone,
}

/// Wait before connection attempt `attempt` (0 = the first retry): doubling from 1 s to 60 s,
/// with the upper half jittered so gateways that lost one SMSC together do not return together.
pub fn reconnect_backoff(attempt: u32, jitter: f64) -> Duration {
    let exp = RECONNECT_MIN
        .saturating_mul(1u32 << attempt.min(6))
        .min(RECONNECT_MAX);
    exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// Sequence numbers: 1 to 0x7FFFFFFF, then round again (SMPP 3.4 §5.1.4).
#[derive(Default)]
struct Sequence(u32);

impl Sequence {
    fn next(&mut self) -> u32 {
        self.0 = if self.0 >= 0x7FFF_FFFF { 1 } else { self.0 + 1 };
        self.0
    }
}

/// How a bound session ended.
enum End {
    Shutdown,
    Lost(String),
}

/// Runs the sink until shutdown, or until the dispatcher closes the delivery channel and what
/// is in hand is answered.
pub async fn run(settings: Settings, io: SinkIo, health: Arc<Health>, shutdown: Shutdown) {
    let cfg = &settings.config;
    let SinkIo {
        mut deliveries,
        outcomes,
    } = io;
    let mut task = Task {
        settings: &settings,
        health: &health,
        outcomes: &outcomes,
        ledger: Ledger::new(cfg.permanent_retry_after),
        sequence: Sequence::default(),
        failures: atgw_sdk::ratelimit::LogLimiter::new(FAILURE_LOG_EVERY),
        open: true,
        bundler: Bundler::new(cfg.bundling()),
        followers: Followers::default(),
    };
    tracing::info!(sink = %cfg.name, host = %cfg.host, port = cfg.port(), tls = cfg.tls, recipients = cfg.to.len(), "sms sink starting");
    if !cfg.tls && !cfg.is_loopback() {
        tracing::warn!(sink = %cfg.name, host = %cfg.host, "SMPP without TLS to a host that is not this machine (tls = false): the bind password and the alert texts cross the network in clear");
    }
    let mut attempt: u32 = 0;
    let mut ever_bound = false;
    loop {
        let opened = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = task.bind() => r,
        };
        let why = match opened {
            Ok(conn) => {
                let bound_at = Instant::now();
                health.set_connected(true);
                if ever_bound {
                    health.reconnected();
                }
                ever_bound = true;
                tracing::info!(sink = %cfg.name, host = %cfg.host, bind = ?cfg.bind, "bound to the SMSC");
                let end = task.serve(conn, &mut deliveries, &shutdown).await;
                health.set_connected(false);
                let why = match end {
                    End::Shutdown => {
                        task.answer_all("atgw is shutting down");
                        return;
                    }
                    End::Lost(why) => why,
                };
                // A session that held a while earns a quick reconnect; one that drops at once
                // (an SMSC that binds, then hangs up) keeps backing off.
                if bound_at.elapsed() >= STABLE_SESSION {
                    attempt = 0;
                }
                task.answer_all(&format!("SMPP session lost: {why}"));
                if !task.open {
                    return;
                }
                why
            }
            Err(e) => {
                health.set_connected(false);
                e.to_string()
            }
        };
        health.error(format!("{}:{}: {why}", cfg.host, cfg.port()));
        if let Some(suppressed) = task.failures.allow(failure_kind(&why)) {
            tracing::warn!(sink = %cfg.name, host = %cfg.host, suppressed, "no SMPP session, will retry: {why}");
        }
        // Back-off: deliveries are refused for now meanwhile.
        let wait = reconnect_backoff(attempt, rand::rng().random::<f64>());
        attempt = attempt.saturating_add(1);
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(until) => break,
                d = deliveries.recv() => match d {
                    Some(d) => {
                        let _ = outcomes.send(Outcome::Retry {
                            outbox_id: d.outbox_id,
                            after: None,
                            reason: format!("not bound to the SMSC: {why}"),
                        });
                    }
                    None => return,
                },
            }
        }
    }
}

/// The kind of a failure, which keys the log limiter (`cannot connect`, `the SMSC refused the
/// bind`, …).
fn failure_kind(reason: &str) -> &str {
    reason.split([':', ',']).next().unwrap_or(reason)
}

struct Task<'a> {
    settings: &'a Settings,
    health: &'a Health,
    outcomes: &'a mpsc::UnboundedSender<Outcome>,
    ledger: Ledger,
    sequence: Sequence,
    failures: atgw_sdk::ratelimit::LogLimiter,
    /// False once the dispatcher closed the delivery channel.
    open: bool,
    /// Deliveries held for a bundle (`bundle_window`), by their sorted numbers.
    bundler: Bundler<Vec<String>>,
    /// Rows riding on a bundle's lead row in the ledger.
    followers: Followers,
}

impl Task<'_> {
    /// Answers a delivery (and the rows riding on it when it leads a bundle).
    fn outcome(&mut self, o: Outcome) {
        let answered = self.followers.answer(o);
        if let (Some(n), Some(Outcome::Delivered(_))) = (answered.bundle, answered.outcomes.first())
        {
            self.health.bundle_delivered(n as u64);
            tracing::info!(sink = %self.settings.config.name, notifications = n, "bundled notifications delivered in one SMS");
        }
        let mut first = true;
        for o in answered.outcomes {
            match &o {
                Outcome::Delivered(_) => self.health.delivered(1),
                // One failure line and health error per attempt, not per row of a bundle.
                Outcome::Retry { reason, .. } | Outcome::Disabled { reason, .. } if first => {
                    self.health.error(reason.clone());
                    if let Some(suppressed) = self.failures.allow(failure_kind(reason)) {
                        tracing::warn!(sink = %self.settings.config.name, suppressed, "SMS not delivered, will retry: {reason}");
                    }
                }
                _ => {}
            }
            first = false;
            let _ = self.outcomes.send(o);
        }
    }

    /// Everything in hand is a retry: the ledger's deliveries (and their bundles' rows) and
    /// those held for a bundle, whose rows stay owed in the outbox.
    fn answer_all(&mut self, reason: &str) {
        for o in self.ledger.lost(reason) {
            for o in self.followers.answer(o).outcomes {
                let _ = self.outcomes.send(o);
            }
        }
        for d in self.bundler.take_all().into_iter().flatten() {
            let _ = self.outcomes.send(Outcome::Retry {
                outbox_id: d.outbox_id,
                after: None,
                reason: format!("held for a bundle when {reason}"),
            });
        }
    }

    /// Connects and binds: a bound session, or why not.
    async fn bind(&mut self) -> Result<Connection, SessionError> {
        let cfg = &self.settings.config;
        let mut conn = connection::open(
            &cfg.host,
            cfg.port(),
            self.settings.tls.as_ref(),
            cfg.connect_timeout,
        )
        .await?;
        let bind = Bind {
            system_id: cfg.system_id.clone(),
            password: self.settings.password.expose().to_owned(),
            system_type: cfg.system_type.clone(),
            interface_version: pdu::INTERFACE_VERSION_34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        };
        let sequence = self.sequence.next();
        let body = match cfg.bind {
            BindMode::Transceiver => Body::BindTransceiver(bind),
            BindMode::Transmitter => Body::BindTransmitter(bind),
        };
        conn.send(&Pdu {
            status: 0,
            sequence,
            body,
        })
        .await?;
        let deadline = Instant::now() + cfg.response_timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, conn.inbound.recv())
                .await
                .map_err(|_| SessionError::Timeout("bind"))?;
            match next {
                None => return Err(SessionError::Closed(conn.closed_because())),
                Some(Inbound::Pdu(Pdu {
                    status: s,
                    sequence: q,
                    body: Body::BindTransceiverResp(BindResp { .. }) | Body::BindTransmitterResp(_),
                })) if q == sequence => {
                    if s == status::ESME_ROK {
                        return Ok(conn);
                    }
                    conn.close().await;
                    return Err(SessionError::BindRefused(s));
                }
                // An SMSC that does not know the bind (a transmitter-only one asked for a
                // transceiver) answers generic_nack: refused, whatever status it gives.
                Some(Inbound::Pdu(Pdu {
                    status: s,
                    sequence: q,
                    body: Body::GenericNack,
                })) if q == sequence => {
                    conn.close().await;
                    return Err(SessionError::BindRefused(if s == status::ESME_ROK {
                        status::ESME_RINVCMDID
                    } else {
                        s
                    }));
                }
                Some(Inbound::Pdu(Pdu {
                    sequence: q,
                    body: Body::EnquireLink,
                    ..
                })) => {
                    conn.send(&reply(q, Body::EnquireLinkResp)).await?;
                }
                // Anything else before the bind is answered is out of place; the SMSC will
                // say so again once bound if it matters.
                Some(_) => {}
            }
        }
    }

    /// Serves a bound session until it is lost or shutdown.
    async fn serve(
        &mut self,
        mut conn: Connection,
        deliveries: &mut mpsc::Receiver<Delivery>,
        shutdown: &Shutdown,
    ) -> End {
        let cfg = &self.settings.config;
        let window = cfg.window;
        let mut last_heard = Instant::now();
        // The enquire_link awaiting its response: sequence and when it went out.
        let mut probe: Option<(u32, Instant)> = None;
        // When each in-flight submit went out, oldest first, for the response timeout.
        let mut sent_at: std::collections::VecDeque<(u32, Instant)> = Default::default();
        loop {
            if !self.open && self.ledger.deliveries() == 0 && self.bundler.held() == 0 {
                self.unbind(&mut conn).await;
                conn.close().await;
                return End::Shutdown;
            }
            while self.ledger.in_flight() < window {
                let Some(next) = self.ledger.next_submit() else {
                    break;
                };
                let job = next.job;
                let submit = submit_sm(cfg, next.delivery, &next.short_message, job.recipient);
                let sequence = self.sequence.next();
                let pdu = Pdu {
                    status: 0,
                    sequence,
                    body: Body::SubmitSm(submit),
                };
                let bytes = match pdu::encode(&pdu) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(sink = %cfg.name, outbox_id = job.outbox_id, "cannot encode submit_sm: {e}");
                        if let Some(o) = self.ledger.unsendable(job) {
                            self.outcome(o);
                        }
                        continue;
                    }
                };
                self.ledger.sent(sequence, job);
                sent_at.push_back((sequence, Instant::now()));
                if let Err(e) = conn.send_encoded(&bytes).await {
                    return End::Lost(e.to_string());
                }
            }
            // Forget answered submits at the front; the oldest unanswered sets the deadline.
            while let Some(&(q, _)) = sent_at.front() {
                if self.ledger.has_in_flight(q) {
                    break;
                }
                sent_at.pop_front();
            }
            let response_due = sent_at
                .front()
                .map(|&(_, at)| at)
                .into_iter()
                .chain(probe.map(|(_, at)| at))
                .min()
                .map(|at| at + cfg.response_timeout);
            // While a probe is out, only its response (or its timeout) matters.
            let idle_due = probe.is_none().then_some(last_heard + cfg.enquire_link);
            let wake = match (response_due, idle_due) {
                (Some(r), Some(i)) => r.min(i),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => Instant::now() + cfg.enquire_link,
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.drain(&mut conn).await;
                    return End::Shutdown;
                }
                inbound = conn.inbound.recv() => {
                    let Some(inbound) = inbound else {
                        return End::Lost(conn.closed_because());
                    };
                    last_heard = Instant::now();
                    match self.handle(&mut conn, inbound, &mut probe).await {
                        Ok(None) => {}
                        Ok(Some(end)) => return end,
                        Err(e) => return End::Lost(e.to_string()),
                    }
                }
                d = deliveries.recv(), if self.open && self.ledger.deliveries() < window => match d {
                    Some(d) => self.offer(d),
                    None => {
                        self.open = false;
                        for g in self.bundler.take_all() {
                            self.submit_group(g);
                        }
                    }
                },
                _ = sleep_until_opt(self.bundler.next_due()), if self.bundler.held() > 0 => {
                    for g in self.bundler.due(Instant::now()) {
                        self.submit_group(g);
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if response_due.is_some_and(|r| r <= now) {
                        let what = if probe.is_some_and(|(_, at)| at + cfg.response_timeout <= now) {
                            "enquire_link"
                        } else {
                            "submit_sm"
                        };
                        return End::Lost(format!(
                            "no {what}_resp within response_timeout {:?}",
                            cfg.response_timeout
                        ));
                    }
                    if idle_due.is_some_and(|i| i <= now) {
                        let q = self.sequence.next();
                        if let Err(e) = conn.send(&reply(q, Body::EnquireLink)).await {
                            return End::Lost(e.to_string());
                        }
                        probe = Some((q, now));
                        // Counted as heard so the next probe waits a full interval.
                        last_heard = now;
                    }
                }
            }
        }
    }

    /// Takes a delivery: held for a bundle, or handed to the ledger (with what it flushes).
    fn offer(&mut self, d: Delivery) {
        let mut key: Vec<String> = numbers(&self.settings.config, &d)
            .into_iter()
            .map(str::to_owned)
            .collect();
        key.sort();
        for g in self.bundler.offer(key, d, Instant::now()) {
            self.submit_group(g);
        }
    }

    /// One text for a group (one delivery, or a bundle to the same numbers), queued in the
    /// ledger under the group's lead row; the other rows follow its outcome.
    fn submit_group(&mut self, g: Group) {
        let g = self.followers.follow(g);
        let message = if g.len() > 1 {
            let items: Vec<(&str, Fallback<'_>)> = g
                .iter()
                .map(|d| {
                    (
                        &*d.json,
                        Fallback {
                            kind: d.kind.as_str(),
                            priority: d.priority.as_str(),
                        },
                    )
                })
                .collect();
            crate::bundle_text::bundle_message(&items, &self.settings.timezone)
        } else if let Some(d) = g.first() {
            text::message(
                &d.json,
                &Fallback {
                    kind: d.kind.as_str(),
                    priority: d.priority.as_str(),
                },
                &self.settings.timezone,
            )
        } else {
            return;
        };
        let size = g.len();
        let Some(d) = g.into_iter().next() else {
            return;
        };
        tracing::debug!(sink = %self.settings.config.name, event_id = %d.event_id, outbox_id = d.outbox_id, attempt = d.attempt, notifications = size, septets = message.septets.len(), cut = message.cut, "sms text");
        let recipients = numbers(&self.settings.config, &d).len();
        if let Some(o) = self.ledger.offer(d, Arc::from(message.septets), recipients) {
            self.outcome(o);
        }
    }

    /// One PDU from the SMSC. `Some(end)` when the session is over.
    async fn handle(
        &mut self,
        conn: &mut Connection,
        inbound: Inbound,
        probe: &mut Option<(u32, Instant)>,
    ) -> Result<Option<End>, SessionError> {
        let cfg = &self.settings.config;
        let p = match inbound {
            Inbound::Pdu(p) => p,
            Inbound::Unreadable {
                sequence,
                status: s,
                error,
            } => {
                tracing::warn!(sink = %cfg.name, "unreadable PDU from the SMSC, answered generic_nack: {error}");
                conn.send(&Pdu {
                    status: s,
                    sequence,
                    body: Body::GenericNack,
                })
                .await?;
                return Ok(None);
            }
        };
        match p.body {
            Body::SubmitSmResp { message_id } => {
                if let Some(settled) = self.ledger.response(p.sequence, p.status) {
                    if p.status == status::ESME_ROK {
                        let recipient = settled.job.recipient;
                        tracing::debug!(sink = %cfg.name, outbox_id = settled.job.outbox_id, event_id = settled.event_id.as_deref().unwrap_or_default(), %recipient, %message_id, "submit_sm accepted");
                    } else {
                        tracing::debug!(sink = %cfg.name, outbox_id = settled.job.outbox_id, status = %status::name(p.status), "submit_sm refused");
                    }
                    if let Some(o) = settled.outcome {
                        self.outcome(o);
                    }
                }
            }
            Body::GenericNack => {
                if let Some(settled) = self.ledger.response(p.sequence, p.status.max(1)) {
                    tracing::warn!(sink = %cfg.name, outbox_id = settled.job.outbox_id, status = %status::name(p.status), "the SMSC answered a submit_sm with generic_nack");
                    if let Some(o) = settled.outcome {
                        self.outcome(o);
                    }
                } else if probe.is_some_and(|(q, _)| q == p.sequence) {
                    *probe = None;
                }
            }
            Body::EnquireLinkResp => {
                if probe.is_some_and(|(q, _)| q == p.sequence) {
                    *probe = None;
                }
            }
            Body::EnquireLink => conn.send(&reply(p.sequence, Body::EnquireLinkResp)).await?,
            Body::DeliverSm(m) => {
                conn.send(&reply(
                    p.sequence,
                    Body::DeliverSmResp {
                        message_id: String::new(),
                    },
                ))
                .await?;
                self.receipt(&m);
            }
            Body::Unbind => {
                conn.send(&reply(p.sequence, Body::UnbindResp)).await?;
                return Ok(Some(End::Lost("the SMSC unbound the session".into())));
            }
            Body::UnbindResp
            | Body::BindTransceiverResp(_)
            | Body::BindTransmitterResp(_)
            | Body::DeliverSmResp { .. } => {}
            Body::BindTransceiver(_) | Body::BindTransmitter(_) | Body::SubmitSm(_) => {
                conn.send(&Pdu {
                    status: status::ESME_RINVCMDID,
                    sequence: p.sequence,
                    body: Body::GenericNack,
                })
                .await?;
            }
        }
        Ok(None)
    }

    /// Records a delivery receipt; a message from a handset is counted as ignored.
    fn receipt(&self, m: &ShortMessage) {
        let cfg = &self.settings.config;
        match Receipt::parse(m) {
            Some(r) => {
                self.health.received(1);
                if r.delivered() {
                    tracing::info!(sink = %cfg.name, message_id = %r.message_id, state = %r.state, "SMS delivery receipt: the handset has it");
                } else {
                    self.health.error(format!(
                        "delivery receipt for message {}: {}",
                        r.message_id, r.state
                    ));
                    tracing::warn!(sink = %cfg.name, message_id = %r.message_id, state = %r.state, "SMS delivery receipt: not delivered to the handset");
                }
            }
            None => {
                self.health.ignored();
                tracing::debug!(sink = %cfg.name, is_receipt = m.is_receipt(), "deliver_sm that is not a readable receipt, answered and ignored");
            }
        }
    }

    /// At shutdown: lets submits in flight be answered (bounded), then unbinds.
    async fn drain(&mut self, conn: &mut Connection) {
        let mut probe = None;
        let _ = tokio::time::timeout(DRAIN_MAX, async {
            while self.ledger.in_flight() > 0 {
                match conn.inbound.recv().await {
                    Some(i) => {
                        if self.handle(conn, i, &mut probe).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        })
        .await;
        self.unbind(conn).await;
    }

    /// Sends `unbind` and waits briefly for its response.
    async fn unbind(&mut self, conn: &mut Connection) {
        let q = self.sequence.next();
        if conn.send(&reply(q, Body::Unbind)).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(UNBIND_WAIT, async {
            while let Some(i) = conn.inbound.recv().await {
                if let Inbound::Pdu(Pdu {
                    sequence,
                    body: Body::UnbindResp,
                    ..
                }) = i
                    && sequence == q
                {
                    return;
                }
            }
        })
        .await;
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn reply(sequence: u32, body: Body) -> Pdu {
    Pdu {
        status: 0,
        sequence,
        body,
    }
}

/// The numbers one delivery goes to: the config's `to`, then the people the core chose for
/// it (on shift; [`Delivery::recipients`]) that are well-formed international numbers and not
/// listed already. The same for every attempt at one delivery, so the ledger's indices hold.
pub fn numbers<'a>(cfg: &'a SmsConfig, d: &'a Delivery) -> Vec<&'a str> {
    let mut out: Vec<&str> = cfg.to.iter().map(String::as_str).collect();
    for n in d.recipients.iter() {
        if crate::config::is_e164(n) && !out.contains(&n.as_str()) {
            out.push(n);
        }
    }
    out
}

/// The `submit_sm` of one delivery to one recipient: GSM-7 default alphabet unpacked
/// (`data_coding` 0), a delivery receipt requested (`registered_delivery` 1), the event id in
/// `event_id_tag` when configured.
fn submit_sm(cfg: &SmsConfig, d: &Delivery, septets: &[u8], recipient: usize) -> ShortMessage {
    // Validated at load: both are well formed.
    let (source_addr, numbering) = source_numbering(&cfg.source_addr)
        .unwrap_or_else(|_| (String::new(), crate::config::Numbering { ton: 0, npi: 0 }));
    let destination = numbers(cfg, d)
        .get(recipient)
        .map(|n| n.trim_start_matches('+').to_owned())
        .unwrap_or_default();
    let mut tlvs = Vec::new();
    if let Some(tag) = cfg.event_id_tag {
        tlvs.push(Tlv {
            tag,
            value: d.event_id.as_bytes().to_vec(),
        });
    }
    ShortMessage {
        source_addr_ton: numbering.ton,
        source_addr_npi: numbering.npi,
        source_addr,
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: destination,
        registered_delivery: 1,
        data_coding: 0,
        short_message: septets.to_vec(),
        tlvs,
        ..ShortMessage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_from_one_second_to_a_minute() {
        assert_eq!(reconnect_backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(reconnect_backoff(0, 1.0), Duration::from_secs(1));
        assert_eq!(reconnect_backoff(3, 1.0), Duration::from_secs(8));
        for a in [6, 7, 100, u32::MAX] {
            assert!(reconnect_backoff(a, 1.0) <= RECONNECT_MAX);
            assert!(reconnect_backoff(a, 0.0) >= RECONNECT_MAX / 2);
        }
    }

    #[test]
    fn sequence_numbers_wrap_within_the_positive_range() {
        let mut s = Sequence(0x7FFF_FFFE);
        assert_eq!(s.next(), 0x7FFF_FFFF);
        assert_eq!(s.next(), 1);
    }

    #[test]
    fn a_submit_carries_gsm7_a_receipt_request_and_the_number_without_plus() {
        let mut cfg = SmsConfig::new(
            "t",
            "smsc",
            "id",
            "pw".into(),
            "Oakview",
            vec!["+447700900123".into()],
        );
        cfg.event_id_tag = Some(0x1400);
        let d = atgw_sdk::testkit::delivery(1, 0);
        let m = submit_sm(&cfg, &d, b"hi", 0);
        assert_eq!(m.destination_addr, "447700900123");
        assert_eq!((m.dest_addr_ton, m.dest_addr_npi), (1, 1));
        assert_eq!((m.source_addr_ton, m.source_addr_npi), (5, 0));
        assert_eq!((m.data_coding, m.registered_delivery), (0, 1));
        assert_eq!(m.tlv(0x1400), Some(d.event_id.as_bytes()));
    }
}
