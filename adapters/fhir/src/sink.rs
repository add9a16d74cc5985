//! The FHIR sink task: the deliveries at hand become ONE transaction Bundle POSTed to the FHIR
//! base, and the server's answer one `Outcome` per delivery.
//!
//! One transaction is in flight at a time, made of whatever the dispatcher has offered (up to
//! `max_batch`, without waiting for more: an alarm is not held back to fill a Bundle). A
//! transaction is all-or-nothing, so its deliveries share one verdict: any entry not 2xx in
//! the transaction-response is a retry of them all, and the conditional updates make the
//! retry harmless. The core owns the retry schedule, as for the webhook sink, and the reading
//! of an HTTP status is the webhook sink's ([`atgw_http::response::classify`]).
//!
//! Order per device: the outbox retries a failed row later, while newer rows keep coming. A
//! device's resources must reach the server in the order they happened (an alert's
//! Communication must not go back from completed to in-progress), so once a device has a row
//! waiting for a retry, its newer rows are answered `Retry` unsent until that row is through
//! ([`Order`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use atgw_http::response::{Verdict, classify};
use atgw_sdk::event::Event;
use atgw_sdk::fhir::FhirIds;
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Url};
use serde_json::Value;

use crate::config::{FhirConfig, Send};
use crate::error::FhirError;
use crate::outbound::{self, Mapped, Sends};

/// FHIR's JSON media type (R4 http.html#mime-type).
pub const FHIR_JSON: &str = "application/fhir+json";

/// Largest answer read; a transaction-response of our batch is a few tens of KiB.
const MAX_ANSWER: usize = 4 << 20;

/// One failure line per kind per interval while the server keeps failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Rows of a device waiting for a retry, so its newer rows wait for them.
#[derive(Debug, Default)]
pub struct Order {
    waiting: HashMap<Arc<str>, BTreeSet<i64>>,
}

impl Order {
    /// The earlier row of the same device that `d` must wait for, if any.
    pub fn held_by(&self, d: &Delivery) -> Option<i64> {
        let first = *self.waiting.get(&d.device_id)?.first()?;
        (first < d.outbox_id).then_some(first)
    }
    /// `d` was answered `Retry`: it comes back, and the device's newer rows wait for it.
    pub fn retried(&mut self, d: &Delivery) {
        self.waiting
            .entry(d.device_id.clone())
            .or_default()
            .insert(d.outbox_id);
    }
    /// `d` is through (delivered or skipped).
    pub fn done(&mut self, d: &Delivery) {
        if let Some(rows) = self.waiting.get_mut(&d.device_id) {
            rows.remove(&d.outbox_id);
            if rows.is_empty() {
                self.waiting.remove(&d.device_id);
            }
        }
    }
}

/// Everything a transaction needs.
struct Target {
    name: String,
    url: Url,
    shown: String,
    client: Client,
    token: HeaderValue,
    timeout: Duration,
    connect_timeout: Duration,
    health: Arc<Health>,
    failures: atgw_sdk::ratelimit::LogLimiter,
}

/// Runs the sink until shutdown, or until the dispatcher closes the delivery channel. Fails
/// at start when the config, the token, the CA file or the TLS setup is unusable.
pub async fn run(
    cfg: FhirConfig,
    ids: Arc<FhirIds>,
    io: SinkIo,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), FhirError> {
    let target = Target::prepare(&cfg, health).await?;
    let sends = Sends {
        vital_signs: cfg.sends(Send::VitalSigns),
        alerts: cfg.sends(Send::Alerts),
        test: cfg.send_test,
    };
    tracing::info!(sink = %target.name, url = %target.shown, max_batch = cfg.max_batch, "fhir sink ready");
    let SinkIo {
        mut deliveries,
        outcomes,
    } = io;
    let mut order = Order::default();
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            d = deliveries.recv() => match d {
                Some(d) => d,
                None => return Ok(()),
            },
        };
        let mut batch = vec![first];
        while batch.len() < cfg.max_batch {
            match deliveries.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        batch.sort_by_key(|d| d.outbox_id);
        let mut answers = Vec::with_capacity(batch.len());
        let mut sending: Vec<Delivery> = Vec::new();
        let mut entries: Vec<Value> = Vec::new();
        for d in batch {
            if let Some(before) = order.held_by(&d) {
                order.retried(&d);
                answers.push(retry(
                    &d,
                    format!(
                        "held behind outbox row {before} of device `{}`, which must reach the FHIR server first",
                        d.device_id
                    ),
                ));
                continue;
            }
            match plan(&d, &ids, sends) {
                Mapped::Entries(e) => {
                    entries.extend(e);
                    sending.push(d);
                }
                Mapped::Skip(why) => {
                    tracing::debug!(sink = %target.name, event_id = %d.event_id, why, "not sent to FHIR");
                    target.health.ignored();
                    order.done(&d);
                    answers.push(Outcome::Delivered(d.outbox_id));
                }
                Mapped::Unsendable(reason) => {
                    // Not kept in `order`: it cannot go until the registry changes (a
                    // restart), and the device's other events must not wait for that.
                    target
                        .health
                        .error(format!("event {}: {reason}", d.event_id));
                    if let Some(suppressed) = target.failures.allow("unsendable") {
                        tracing::warn!(sink = %target.name, event_id = %d.event_id, suppressed, "event cannot be sent as valid FHIR, kept in the outbox: {reason}");
                    }
                    answers.push(retry(&d, reason));
                }
            }
        }
        if !sending.is_empty() {
            let n = sending.len();
            let verdict = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Verdict::Retry {
                    after: None,
                    reason: "transaction cancelled: atgw is shutting down".into(),
                },
                v = target.transaction(entries) => v,
            };
            target.record(&verdict, n);
            for d in sending {
                answers.push(match &verdict {
                    Verdict::Delivered => {
                        order.done(&d);
                        Outcome::Delivered(d.outbox_id)
                    }
                    Verdict::Retry { after, reason } => {
                        order.retried(&d);
                        Outcome::Retry {
                            outbox_id: d.outbox_id,
                            after: *after,
                            reason: reason.clone(),
                        }
                    }
                    Verdict::Disabled { reason } => Outcome::Disabled {
                        outbox_id: d.outbox_id,
                        reason: reason.clone(),
                    },
                });
            }
        }
        for a in answers {
            let _ = outcomes.send(a);
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

fn retry(d: &Delivery, reason: String) -> Outcome {
    Outcome::Retry {
        outbox_id: d.outbox_id,
        after: None,
        reason,
    }
}

/// The event of a delivery, mapped. A row that is not an event is atgw's own fault: it stays
/// in the outbox, loudly, rather than being claimed delivered.
fn plan(d: &Delivery, ids: &FhirIds, sends: Sends) -> Mapped {
    match serde_json::from_str::<Event>(&d.json) {
        Ok(event) => outbound::map(&event, d.lifecycle, ids, sends),
        Err(e) => Mapped::Unsendable(format!("the journaled event does not parse: {e}")),
    }
}

impl Target {
    async fn prepare(cfg: &FhirConfig, health: Arc<Health>) -> Result<Target, FhirError> {
        let sink = || cfg.name.clone();
        let url = cfg
            .validate()
            .and_then(|()| cfg.target())
            .map_err(|source| FhirError::Invalid {
                sink: sink(),
                source,
            })?;
        let token = atgw_sdk::secret::read_secret_file(&cfg.token_file).map_err(|source| {
            FhirError::Token {
                sink: sink(),
                source,
            }
        })?;
        let token = bearer(token.expose()).ok_or_else(|| FhirError::TokenFormat {
            sink: sink(),
            path: cfg.token_file.clone(),
        })?;
        let client = build_client(cfg, &url).await?;
        Ok(Target {
            name: cfg.name.clone(),
            shown: atgw_http::config::redact(url.as_str()),
            url,
            client,
            token,
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
            health,
            failures: atgw_sdk::ratelimit::LogLimiter::new(FAILURE_LOG_EVERY),
        })
    }

    /// POSTs one transaction and reads the answer.
    async fn transaction(&self, entries: Vec<Value>) -> Verdict {
        let n = entries.len();
        let body = outbound::transaction(entries).to_string();
        let sent = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.token.clone())
            .header(CONTENT_TYPE, FHIR_JSON)
            .header(ACCEPT, FHIR_JSON)
            .body(body)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Verdict::Retry {
                    after: None,
                    reason: self.describe(e),
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut answer = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) if answer.len() + c.len() <= MAX_ANSWER => answer.extend_from_slice(&c),
                Ok(Some(_)) => {
                    return Verdict::Retry {
                        after: None,
                        reason: format!("the answer to the transaction is over {MAX_ANSWER} bytes"),
                    };
                }
                Ok(None) => break,
                Err(e) => {
                    return Verdict::Retry {
                        after: None,
                        reason: self.describe(e),
                    };
                }
            }
        }
        match classify(status, retry_after.as_deref(), SystemTime::now()) {
            Verdict::Delivered => match outbound::confirmed(&answer, n) {
                Ok(()) => Verdict::Delivered,
                Err(reason) => Verdict::Retry {
                    after: None,
                    reason: format!("HTTP {}: {reason}", status.as_u16()),
                },
            },
            Verdict::Retry { after, reason } => Verdict::Retry {
                after,
                reason: with_diagnostics(reason, &answer),
            },
            Verdict::Disabled { reason } => Verdict::Disabled {
                reason: with_diagnostics(reason, &answer),
            },
        }
    }

    /// Health and logs: connected means the last transaction was accepted.
    fn record(&self, verdict: &Verdict, n: usize) {
        let h = &self.health;
        match verdict {
            Verdict::Delivered => {
                if !h.is_connected() {
                    tracing::info!(sink = %self.name, url = %self.shown, "FHIR server is accepting transactions");
                }
                h.set_connected(true);
                h.delivered(n as u64);
            }
            Verdict::Retry { reason, .. } => {
                h.set_connected(false);
                h.error(format!("{}: {reason}", self.shown));
                let kind = reason.split([':', ',']).next().unwrap_or(reason);
                if let Some(suppressed) = self.failures.allow(kind) {
                    tracing::warn!(sink = %self.name, url = %self.shown, suppressed, events = n, "FHIR transaction failed, will retry: {reason}");
                }
            }
            Verdict::Disabled { reason } => {
                h.set_connected(false);
                h.error(format!("{}: {reason}", self.shown));
                tracing::error!(sink = %self.name, url = %self.shown, "FHIR server refuses further transactions: {reason}");
            }
        }
    }

    fn describe(&self, e: reqwest::Error) -> String {
        atgw_http::error::describe(e, self.connect_timeout, self.timeout)
    }
}

/// `Bearer <token>` as a sensitive header (never printed by reqwest's Debug), if the token is
/// one line of visible ASCII.
pub(crate) fn bearer(token: &str) -> Option<HeaderValue> {
    let t = token.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {t}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn with_diagnostics(reason: String, answer: &[u8]) -> String {
    match outbound::diagnostics(answer) {
        Some(d) => format!("{reason}: {d}"),
        None => reason,
    }
}

/// One client for the sink's lifetime ([`atgw_http::client`]: no redirects, which would
/// carry health data and the token elsewhere; the TLS roots).
async fn build_client(cfg: &FhirConfig, url: &Url) -> Result<Client, FhirError> {
    let b = atgw_http::client::builder(atgw_http::client::Spec {
        timeout: cfg.timeout,
        connect_timeout: cfg.connect_timeout,
        https: url.scheme() == "https",
        ca_file: cfg.ca_file.as_deref(),
        ca_only: cfg.ca_only,
    })
    .await
    .map_err(|e| match e {
        atgw_http::client::SetupError::NoCryptoProvider => FhirError::NoCryptoProvider {
            sink: cfg.name.clone(),
        },
        atgw_http::client::SetupError::CaFile(problem) => FhirError::CaFile {
            sink: cfg.name.clone(),
            path: cfg.ca_file.clone().unwrap_or_default(),
            problem,
        },
    })?;
    b.build().map_err(|e| FhirError::Client {
        sink: cfg.name.clone(),
        detail: atgw_http::error::chain(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(outbox_id: i64, device: &str) -> Delivery {
        let mut d = atgw_sdk::testkit::delivery(outbox_id, 0);
        d.device_id = device.into();
        d
    }

    #[test]
    fn a_devices_newer_rows_wait_for_its_retried_row() {
        let mut o = Order::default();
        assert_eq!(o.held_by(&d(5, "a")), None);
        o.retried(&d(5, "a"));
        assert_eq!(o.held_by(&d(5, "a")), None, "the retried row itself goes");
        assert_eq!(o.held_by(&d(7, "a")), Some(5));
        assert_eq!(o.held_by(&d(3, "a")), None, "an older row is not held");
        assert_eq!(o.held_by(&d(7, "b")), None, "other devices are not held");
        o.retried(&d(7, "a"));
        o.done(&d(5, "a"));
        assert_eq!(
            o.held_by(&d(9, "a")),
            Some(7),
            "7 was answered Retry: 9 waits for it"
        );
        o.done(&d(7, "a"));
        assert_eq!(o.held_by(&d(9, "a")), None);
        assert!(o.waiting.is_empty());
    }

    #[test]
    fn bearer_tokens_are_one_visible_line() {
        assert!(bearer("eyJhbGciOi.abc-_~+/=\n").is_some_and(|v| v.is_sensitive()));
        assert!(bearer("two words").is_none());
        assert!(bearer("").is_none());
        assert!(bearer("tab\there").is_none());
    }
}
