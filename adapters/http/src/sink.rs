//! The webhook sink task: each `Delivery` becomes one signed HTTPS POST, and each POST one
//! `Outcome`.
//!
//! Up to `window` requests are in flight at once, each in its own task so a slow receiver
//! answer never holds up the next request. The core's dispatcher owns retries: a failed
//! attempt is answered `Retry` (with the receiver's `Retry-After` when it gave one) and the row
//! comes back later as a new `Delivery` with the same event id, so the receiver sees the same
//! `webhook-id` and can deduplicate. Every attempt carries a fresh `webhook-timestamp` and
//! signature, so a retry hours later still passes the receiver's ±5 min check.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use atgw_sdk::sink::{Attempts, Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Url};

use crate::config::{WebhookConfig, redact};
use crate::error::{WebhookError, chain};
use crate::response::{Verdict, classify};
use crate::signing::{WebhookKey, sign};

/// CloudEvents HTTP binding, structured mode: the body is the whole event (envelope and
/// `data`), exactly as journaled, and this media type says so. With plain `application/json` a
/// CloudEvents-aware receiver would read the body as binary-mode *data* and look for `ce-*`
/// headers that we do not send. (The charset parameter is left out: JSON is UTF-8 by RFC 8259.)
pub const CONTENT_TYPE_CLOUDEVENTS: &str = "application/cloudevents+json";

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Longest wait for in-flight requests at shutdown (each is bounded by `timeout` anyway).
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// One failure line per interval while the receiver keeps failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Everything an attempt needs, shared by the in-flight tasks.
struct Target {
    name: String,
    url: Url,
    /// `url` without query or credentials, for logs and reasons.
    shown: String,
    key: WebhookKey,
    client: Client,
    /// Our content type, unless the config's `headers` override it.
    content_type: Option<HeaderValue>,
    timeout: Duration,
    connect_timeout: Duration,
    health: Arc<Health>,
    failures: atgw_sdk::ratelimit::LogLimiter,
}

/// Runs the sink until shutdown, or until the dispatcher closes the delivery channel (then
/// after answering what is in flight). Fails at start when the config, the secret, the CA file
/// or the TLS setup is unusable; never fails afterwards.
pub async fn run(
    cfg: WebhookConfig,
    io: SinkIo,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), WebhookError> {
    let target = Arc::new(Target::prepare(&cfg, health).await?);
    tracing::info!(sink = %target.name, url = %target.shown, window = cfg.window, "webhook sink ready");
    let SinkIo {
        mut deliveries,
        outcomes,
    } = io;
    let mut inflight = Attempts::default();
    let mut open = true;
    loop {
        if !open && inflight.tasks.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = inflight.tasks.join_next_with_id() => {
                if let Some(o) = inflight.finished(done) {
                    let _ = outcomes.send(o);
                }
            }
            d = deliveries.recv(), if open && inflight.tasks.len() < cfg.window => match d {
                Some(d) => {
                    let t = target.clone();
                    inflight.start(d.outbox_id, async move { t.attempt(d).await })
                }
                None => open = false,
            },
        }
    }
    // Shutdown: stop taking work, give what is in flight a bounded time, and answer every row
    // we took (a cancelled attempt is a retry, since the receiver may not have it).
    let drain = target.timeout.min(DRAIN_MAX);
    let _ = tokio::time::timeout(drain, async {
        while let Some(done) = inflight.tasks.join_next_with_id().await {
            if let Some(o) = inflight.finished(done) {
                let _ = outcomes.send(o);
            }
        }
    })
    .await;
    inflight.tasks.abort_all();
    while let Some(done) = inflight.tasks.join_next_with_id().await {
        if let Some(o) = inflight.finished(done) {
            let _ = outcomes.send(o);
        }
    }
    Ok(())
}

impl Target {
    /// Validates the config, reads the secret and CA, and builds the one HTTP client.
    async fn prepare(cfg: &WebhookConfig, health: Arc<Health>) -> Result<Target, WebhookError> {
        let sink = || cfg.name.clone();
        cfg.validate().map_err(|source| WebhookError::Invalid {
            sink: sink(),
            source,
        })?;
        let url = cfg.target().map_err(|source| WebhookError::Invalid {
            sink: sink(),
            source,
        })?;
        let secret = atgw_sdk::secret::read_secret_file(&cfg.secret_file).map_err(|source| {
            WebhookError::Secret {
                sink: sink(),
                source,
            }
        })?;
        let key =
            WebhookKey::parse(secret.expose()).map_err(|source| WebhookError::SecretFormat {
                sink: sink(),
                path: cfg.secret_file.clone(),
                source,
            })?;
        let headers = cfg.header_map().map_err(|source| WebhookError::Invalid {
            sink: sink(),
            source,
        })?;
        let content_type = (!headers.contains_key(CONTENT_TYPE))
            .then_some(HeaderValue::from_static(CONTENT_TYPE_CLOUDEVENTS));
        let client = build_client(cfg, &url, headers).await?;
        Ok(Target {
            name: cfg.name.clone(),
            shown: redact(url.as_str()),
            url,
            key,
            client,
            content_type,
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
            health,
            failures: atgw_sdk::ratelimit::LogLimiter::new(FAILURE_LOG_EVERY),
        })
    }

    /// One signed POST of one delivery, and what it means for the outbox.
    async fn attempt(&self, d: Delivery) -> Outcome {
        let started = Instant::now();
        let verdict = match self.request(&d) {
            Ok(req) => match req.send().await {
                Ok(resp) => {
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok());
                    classify(resp.status(), retry_after, SystemTime::now())
                }
                Err(e) => Verdict::Retry {
                    after: None,
                    reason: self.describe(e),
                },
            },
            Err(reason) => Verdict::Retry {
                after: None,
                reason,
            },
        };
        tracing::debug!(sink = %self.name, event_id = %d.event_id, outbox_id = d.outbox_id, attempt = d.attempt, elapsed_ms = started.elapsed().as_millis() as u64, ?verdict, "webhook attempt");
        self.record(&verdict);
        match verdict {
            Verdict::Delivered => Outcome::Delivered(d.outbox_id),
            Verdict::Retry { after, reason } => Outcome::Retry {
                outbox_id: d.outbox_id,
                after,
                reason,
            },
            Verdict::Disabled { reason } => Outcome::Disabled {
                outbox_id: d.outbox_id,
                reason,
            },
        }
    }

    /// The signed request: the journaled JSON byte for byte, `webhook-id` = the event id (the
    /// same on every retry), and this attempt's timestamp and signature.
    fn request(&self, d: &Delivery) -> Result<reqwest::RequestBuilder, String> {
        let id = HeaderValue::from_str(&d.event_id)
            .map_err(|_| "the event id is not a valid HTTP header value".to_owned())?;
        let timestamp = jiff::Timestamp::now().as_second();
        let body = d.json.as_bytes();
        let signature = sign(&self.key, &d.event_id, timestamp, body);
        let mut req = self
            .client
            .post(self.url.clone())
            .header(WEBHOOK_ID, id)
            .header(WEBHOOK_TIMESTAMP, timestamp)
            .header(WEBHOOK_SIGNATURE, signature)
            .body(body.to_vec());
        if let Some(ct) = &self.content_type {
            req = req.header(CONTENT_TYPE, ct.clone());
        }
        Ok(req)
    }

    /// Health and logs: connected means the last attempt was accepted.
    fn record(&self, verdict: &Verdict) {
        let h = &self.health;
        match verdict {
            Verdict::Delivered => {
                if !h.is_connected() {
                    tracing::info!(sink = %self.name, url = %self.shown, "webhook receiver is accepting events");
                }
                h.set_connected(true);
                h.delivered(1);
            }
            Verdict::Retry { reason, .. } => {
                h.set_connected(false);
                h.error(format!("{}: {reason}", self.shown));
                if let Some(suppressed) = self.failures.allow(failure_kind(reason)) {
                    tracing::warn!(sink = %self.name, url = %self.shown, suppressed, "webhook delivery failed, will retry: {reason}");
                }
            }
            Verdict::Disabled { reason } => {
                h.set_connected(false);
                h.error(format!("{}: {reason}", self.shown));
                tracing::error!(sink = %self.name, url = %self.shown, "webhook receiver refuses further events: {reason}");
            }
        }
    }

    fn describe(&self, e: reqwest::Error) -> String {
        crate::error::describe(e, self.connect_timeout, self.timeout)
    }
}

/// The kind of a failure, which keys the log limiter: each kind logs once per interval, so the
/// moment a receiver goes from answering 500 to refusing connections is in the log at once.
/// `cannot connect`, `request failed`, `HTTP 500 Internal Server Error`, …
fn failure_kind(reason: &str) -> &str {
    reason.split([':', ',']).next().unwrap_or(reason)
}

/// The client certificate chain and its key, for a receiver that requires mutual TLS. The key
/// is read like every secret: a private file, never logged.
async fn client_identity(
    cfg: &WebhookConfig,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<reqwest::Identity, WebhookError> {
    let err = |path: &std::path::Path, problem: String| WebhookError::ClientCert {
        sink: cfg.name.clone(),
        path: path.to_path_buf(),
        problem,
    };
    let (chain_pem, _) = crate::client::read_certificates(cert, "the client certificate")
        .await
        .map_err(|problem| err(cert, problem))?;
    let key_pem = atgw_sdk::secret::read_secret_file(key).map_err(|e| err(key, e.to_string()))?;
    let mut pem = chain_pem;
    pem.push(b'\n');
    pem.extend_from_slice(key_pem.expose().as_bytes());
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        err(
            key,
            format!("not a PEM private key for the certificate: {}", chain(&e)),
        )
    })
}

/// One client for the sink's lifetime (connection pool, TLS sessions), with the receiver's
/// headers and, for mutual TLS, the client certificate ([`crate::client`] has the rest).
async fn build_client(
    cfg: &WebhookConfig,
    url: &Url,
    headers: reqwest::header::HeaderMap,
) -> Result<Client, WebhookError> {
    let https = url.scheme() == "https";
    let b = crate::client::builder(crate::client::Spec {
        timeout: cfg.timeout,
        connect_timeout: cfg.connect_timeout,
        https,
        ca_file: cfg.ca_file.as_deref(),
        ca_only: cfg.ca_only,
    })
    .await
    .map_err(|e| match e {
        crate::client::SetupError::NoCryptoProvider => WebhookError::NoCryptoProvider {
            sink: cfg.name.clone(),
        },
        crate::client::SetupError::CaFile(problem) => WebhookError::CaFile {
            sink: cfg.name.clone(),
            path: cfg.ca_file.clone().unwrap_or_default(),
            problem,
        },
    })?;
    let mut b = b.default_headers(headers);
    if let (true, Some(cert), Some(key)) = (https, &cfg.cert_file, &cfg.key_file) {
        b = b.identity(client_identity(cfg, cert, key).await?);
    }
    b.build().map_err(|e| WebhookError::Client {
        sink: cfg.name.clone(),
        detail: chain(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::failure_kind;

    #[test]
    fn failures_are_limited_per_kind_not_per_detail() {
        assert_eq!(
            failure_kind("cannot connect: tcp connect error: Connection refused"),
            "cannot connect"
        );
        assert_eq!(
            failure_kind("request failed: connection closed before message completed"),
            "request failed"
        );
        assert_eq!(
            failure_kind("HTTP 503 Service Unavailable, Retry-After 7s"),
            failure_kind("HTTP 503 Service Unavailable, Retry-After 9s")
        );
        assert_ne!(
            failure_kind("HTTP 500 Internal Server Error"),
            failure_kind("cannot connect: refused")
        );
    }
}
