//! The email sink task: each `Delivery` becomes one message on its own SMTP connection, and
//! each message one `Outcome`.
//!
//! Up to `window` messages are sent at once, each in its own task, so a slow server answer
//! never holds up the next alert. The core's dispatcher owns retries: a failed attempt is
//! answered `Retry` and the row comes back later as a new `Delivery` with the same event id,
//! so the message carries the same `Message-ID` and a receiver can drop a duplicate (a
//! connection lost after the server took the message but before its `250` reached us).

use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::bundle::{BundlePolicy, Bundler, Followers, Group};
use atgw_sdk::component::Site;
use atgw_sdk::sink::{Attempts, Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bundle::compose_bundle;
use crate::compose::{Context, compose, message};
use crate::config::{EmailConfig, TlsMode};
use crate::error::{EmailError, chain};
use crate::notice::Notice;
use crate::reply::{Verdict, answered, redact, refused};

/// Longest wait for in-flight messages at shutdown (each is bounded by `timeout` anyway).
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// One failure line per kind per interval while the server keeps failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Everything an attempt needs, shared by the in-flight tasks.
struct Target {
    name: String,
    /// `host:port (mode)`, for logs and reasons.
    shown: String,
    /// The name the server's certificate must be valid for.
    host: String,
    tls: TlsMode,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// The domain of `from`, for `Message-ID`s.
    domain: String,
    site: Site,
    timeout: Duration,
    health: Arc<Health>,
    failures: atgw_sdk::ratelimit::LogLimiter,
}

/// A sink ready to send: config checked, password and CA read, transport built (it connects
/// only when a message is sent).
pub struct Prepared {
    target: Arc<Target>,
    window: usize,
    bundling: BundlePolicy,
}

/// Checks the config and reads the password and CA file; what can fail at start fails here,
/// so the daemon's start names the sink.
pub async fn prepare(
    cfg: &EmailConfig,
    site: Site,
    health: Arc<Health>,
) -> Result<Prepared, EmailError> {
    Ok(Prepared {
        target: Arc::new(Target::prepare(cfg, site, health).await?),
        window: cfg.window,
        bundling: cfg.bundling(),
    })
}

/// [`prepare`], then [`serve`].
pub async fn run(
    cfg: EmailConfig,
    site: Site,
    io: SinkIo,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), EmailError> {
    serve(prepare(&cfg, site, health).await?, io, shutdown).await;
    Ok(())
}

/// Serves deliveries until shutdown, or until the dispatcher closes the delivery channel
/// (then after answering what is in flight). With bundling on, deliveries of the bundled
/// priorities wait in the [`Bundler`] (unanswered, so their rows stay owed) until their
/// audience's window ends.
pub async fn serve(prepared: Prepared, io: SinkIo, shutdown: Shutdown) {
    let Prepared {
        target,
        window,
        bundling,
    } = prepared;
    tracing::info!(sink = %target.name, server = %target.shown, recipients = target.to.len(), window, bundle_window = ?bundling.window, "email sink ready");
    let SinkIo {
        mut deliveries,
        outcomes,
    } = io;
    let mut inflight = Attempts::default();
    let mut bundler: Bundler<Vec<String>> = Bundler::new(bundling);
    let mut followers = Followers::default();
    let mut open = true;
    loop {
        if !open && inflight.tasks.is_empty() && bundler.held() == 0 {
            return;
        }
        let due = bundler.next_due();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = inflight.tasks.join_next_with_id() => {
                if let Some(o) = inflight.finished(done) {
                    target.answer(&mut followers, o, &outcomes);
                }
            }
            _ = sleep_until_opt(due), if due.is_some() => {
                for g in bundler.due(Instant::now()) {
                    target.start(&mut inflight, &mut followers, g);
                }
            }
            d = deliveries.recv(), if open && inflight.tasks.len() < window => match d {
                Some(d) => {
                    let key = target.audience_key(&d);
                    for g in bundler.offer(key, d, Instant::now()) {
                        target.start(&mut inflight, &mut followers, g);
                    }
                }
                None => {
                    open = false;
                    for g in bundler.take_all() {
                        target.start(&mut inflight, &mut followers, g);
                    }
                }
            },
        }
    }
    // Shutdown: send what is held now rather than through a restart, take no more, give what
    // is in flight a bounded time, and answer every row we took (a cancelled attempt is a
    // retry: the server may not have the message, and the row stays owed).
    for g in bundler.take_all() {
        target.start(&mut inflight, &mut followers, g);
    }
    let drain = target.timeout.min(DRAIN_MAX);
    let _ = tokio::time::timeout(drain, async {
        while let Some(done) = inflight.tasks.join_next_with_id().await {
            if let Some(o) = inflight.finished(done) {
                target.answer(&mut followers, o, &outcomes);
            }
        }
    })
    .await;
    inflight.tasks.abort_all();
    while let Some(done) = inflight.tasks.join_next_with_id().await {
        if let Some(o) = inflight.finished(done) {
            target.answer(&mut followers, o, &outcomes);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Target {
    /// Validates the config, reads the password and CA, and builds the transport (which
    /// connects only when a message is sent).
    async fn prepare(
        cfg: &EmailConfig,
        site: Site,
        health: Arc<Health>,
    ) -> Result<Target, EmailError> {
        let sink = || cfg.name.clone();
        let invalid = |source| EmailError::Invalid {
            sink: sink(),
            source,
        };
        cfg.validate().map_err(invalid)?;
        let from = cfg.sender().map_err(invalid)?;
        let to = cfg.recipients().map_err(invalid)?;
        let host = cfg.host.trim_start_matches('[').trim_end_matches(']');
        let tls = match cfg.tls {
            TlsMode::Starttls => Tls::Required(tls_parameters(cfg, host).await?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters(cfg, host).await?),
            TlsMode::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(cfg.port())
            .tls(tls)
            .timeout(Some(cfg.timeout))
            .hello_name(hello_name());
        if let (Some(user), Some(file)) = (&cfg.username, &cfg.password_file) {
            let password = atgw_sdk::secret::read_secret_file(file).map_err(|source| {
                EmailError::Password {
                    sink: sink(),
                    source,
                }
            })?;
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Target {
            name: cfg.name.clone(),
            shown: format!("{}:{} ({})", cfg.host, cfg.port(), cfg.tls.as_str()),
            host: host.to_owned(),
            tls: cfg.tls,
            transport: builder.build(),
            domain: from.email.domain().to_owned(),
            from,
            to,
            site,
            timeout: cfg.timeout,
            health,
            failures: atgw_sdk::ratelimit::LogLimiter::new(FAILURE_LOG_EVERY),
        })
    }

    /// Who a delivery goes to: the sink's own list, and whoever the core chose for this
    /// notification (on shift).
    fn audience(&self, d: &Delivery, warn: bool) -> Vec<Mailbox> {
        let mut to = self.to.clone();
        for r in d.recipients.iter() {
            match r.parse::<Mailbox>() {
                Ok(m) if !to.contains(&m) => to.push(m),
                Ok(_) => {}
                Err(_) if warn => {
                    tracing::warn!(sink = %self.name, "a [[person]] email address is not an address; that person is not told by email")
                }
                Err(_) => {}
            }
        }
        to
    }

    /// The bundling key of a delivery: its audience's addresses, sorted, in lower case.
    fn audience_key(&self, d: &Delivery) -> Vec<String> {
        let mut key: Vec<String> = self
            .audience(d, false)
            .iter()
            .map(|m| m.email.to_string().to_lowercase())
            .collect();
        key.sort();
        key.dedup();
        key
    }

    /// Starts the attempt at one group: a single delivery as itself, a bundle as one message
    /// answered for its lead row (the followers get the same outcome, see [`Followers`]).
    fn start(self: &Arc<Self>, inflight: &mut Attempts, followers: &mut Followers, g: Group) {
        let g = followers.follow(g);
        let Some(lead) = g.first().map(|d| d.outbox_id) else {
            return;
        };
        let t = self.clone();
        if g.len() > 1 {
            tracing::debug!(sink = %self.name, notifications = g.len(), "sending a bundle");
        }
        inflight.start(lead, async move { t.attempt(g).await });
    }

    /// Sends a finished attempt's outcome for every row it carried, and counts bundles.
    fn answer(
        &self,
        followers: &mut Followers,
        o: Outcome,
        outcomes: &mpsc::UnboundedSender<Outcome>,
    ) {
        let answered = followers.answer(o);
        if let (Some(n), Some(Outcome::Delivered(_))) = (answered.bundle, answered.outcomes.first())
        {
            self.health.bundle_delivered(n as u64);
            tracing::info!(sink = %self.name, notifications = n, "bundled notifications delivered in one email");
        }
        for o in answered.outcomes {
            let _ = outcomes.send(o);
        }
    }

    /// One message for a group of deliveries (one, or a bundle to the same people), and what
    /// the server's answer means for the outbox; the outcome names the group's first row.
    async fn attempt(&self, group: Group) -> Outcome {
        let started = std::time::Instant::now();
        let Some(d) = group.first() else {
            return Outcome::Retry {
                outbox_id: 0,
                after: None,
                reason: "empty bundle".into(),
            };
        };
        let to = self.audience(d, true);
        let ctx = Context {
            gateway_id: &self.site.gateway_id,
            timezone: &self.site.timezone,
            recipients: to.len(),
        };
        let composed = if group.len() > 1 {
            let notices: Vec<Notice> = group.iter().map(Notice::read).collect();
            compose_bundle(&notices, &self.domain, &ctx)
        } else {
            compose(&Notice::read(d), &self.domain, &ctx)
        };
        let built = if to.is_empty() {
            Err(
                "nobody to tell: the sink has no `to` and nobody is on shift with an email address"
                    .to_owned(),
            )
        } else {
            message(&composed, &self.from, &to)
        };
        let verdict = match built {
            Ok(m) => match tokio::time::timeout(self.timeout, self.transport.send(m)).await {
                Err(_) => Verdict::Retry {
                    after: None,
                    reason: format!("no answer within timeout {:?}", self.timeout),
                    permanent: false,
                },
                Ok(Ok(response)) => {
                    let text: Vec<&str> = response.message().collect();
                    answered(u16::from(response.code()), &text.join(" "))
                }
                Ok(Err(e)) => self.describe(&e, d.attempt),
            },
            Err(reason) => Verdict::Retry {
                after: None,
                reason,
                permanent: false,
            },
        };
        tracing::debug!(sink = %self.name, event_id = %d.event_id, outbox_id = d.outbox_id, attempt = d.attempt, notifications = group.len(), elapsed_ms = started.elapsed().as_millis() as u64, ?verdict, "email attempt");
        self.record(&verdict, group.len() as u64);
        match verdict {
            Verdict::Delivered => Outcome::Delivered(d.outbox_id),
            Verdict::Retry { after, reason, .. } => Outcome::Retry {
                outbox_id: d.outbox_id,
                after,
                reason,
            },
        }
    }

    /// A failed exchange in words an integrator can act on; no address, no password.
    fn describe(&self, e: &lettre::transport::smtp::Error, attempt: u32) -> Verdict {
        if let Some(code) = e.status() {
            let text = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            return refused(u16::from(code), &text, attempt);
        }
        let text = chain(e);
        let lower = text.to_ascii_lowercase();
        let tls_failed = e.is_tls()
            || (self.tls != TlsMode::None
                && ["certificate", "tls", "handshake"]
                    .iter()
                    .any(|w| lower.contains(w)));
        let reason = if e.is_timeout() {
            format!("no answer within timeout {:?}", self.timeout)
        } else if tls_failed {
            format!(
                "TLS with the server failed (is its certificate valid for `{}`, and its CA trusted? see ca_file): {}",
                self.host,
                redact(&text)
            )
        } else if e.is_client() || e.is_response() {
            format!("the SMTP exchange failed: {}", redact(&text))
        } else {
            format!("cannot connect: {}", redact(&text))
        };
        Verdict::Retry {
            after: None,
            reason,
            permanent: false,
        }
    }

    /// Health and logs: connected means the last attempt was accepted.
    fn record(&self, verdict: &Verdict, rows: u64) {
        let h = &self.health;
        match verdict {
            Verdict::Delivered => {
                if !h.is_connected() {
                    tracing::info!(sink = %self.name, server = %self.shown, "mail server is accepting messages");
                }
                h.set_connected(true);
                h.delivered(rows);
            }
            Verdict::Retry {
                reason, permanent, ..
            } => {
                h.set_connected(false);
                h.error(format!("{}: {reason}", self.shown));
                let kind = reason.split([':', '(']).next().unwrap_or(reason);
                if let Some(suppressed) = self.failures.allow(kind) {
                    if *permanent {
                        tracing::error!(sink = %self.name, server = %self.shown, suppressed, "mail server refuses the message; retrying slowly, the alert escalates meanwhile: {reason}");
                    } else {
                        tracing::warn!(sink = %self.name, server = %self.shown, suppressed, "email delivery failed, will retry: {reason}");
                    }
                }
            }
        }
    }
}

/// TLS for the server: rustls with the process's crypto provider (ring); the system store
/// through the platform verifier plus `ca_file`, or only `ca_file` with `ca_only`.
async fn tls_parameters(cfg: &EmailConfig, host: &str) -> Result<TlsParameters, EmailError> {
    let store = if cfg.ca_only {
        CertificateStore::None
    } else {
        CertificateStore::Default
    };
    let mut b = TlsParameters::builder(host.to_owned()).certificate_store(store);
    if let Some(path) = &cfg.ca_file {
        let ca_err = |problem: String| EmailError::CaFile {
            sink: cfg.name.clone(),
            path: path.clone(),
            problem,
        };
        let pem = tokio::fs::read(path)
            .await
            .map_err(|e| ca_err(format!("cannot read it: {e}")))?;
        if !pem.windows(17).any(|w| w == b"BEGIN CERTIFICATE") {
            return Err(ca_err(
                "holds no `BEGIN CERTIFICATE` block; expected the server's CA in PEM".into(),
            ));
        }
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| ca_err(format!("not a PEM certificate bundle: {}", chain(&e))))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| EmailError::Tls {
        sink: cfg.name.clone(),
        detail: chain(&e),
    })
}

/// EHLO's name: this machine's host name when it is a plain DNS name, else the address
/// literal `[127.0.0.1]` (RFC 5321 §4.1.4 allows it when there is no usable name).
fn hello_name() -> ClientId {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        })
        .map(ClientId::Domain)
        .unwrap_or_default()
}
