//! `atgw simulate http --vendor NAME`: a vendor cloud posting signed webhooks to a gateway, the
//! way the shipped profiles and the README's routes expect them (path, signature scheme and
//! body), each with a fresh vendor event id. Every answer is checked (2xx, else a failure) and
//! timed, for commissioning and for the throughput bench.

use std::time::{Duration, Instant};

use atgw_http::signing::WebhookKey;
use serde_json::json;

use crate::sign::{self, Headers};

/// The vendors the simulator speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// Netlia event forwarding: `x-api-key`, `/netlia/1/<device>/event-start`, an SOS press.
    Netlia,
    /// PureLife (Vayyar): `x-purelife-cloud-signature: sha256=…`, `/purelife`, a confirmed fall
    /// on a radar of its own per message.
    Purelife,
    /// Novee: `x-timestamp` + `x-signature`, `/novee`, a fall.
    Novee,
    /// A Standard Webhooks hub cloud: `webhook-*`, `/hooks/alarm`, a pendant press.
    StandardWebhooks,
}

impl Vendor {
    pub fn parse(name: &str) -> Option<Vendor> {
        Some(match name {
            "netlia" => Vendor::Netlia,
            "purelife" => Vendor::Purelife,
            "novee" => Vendor::Novee,
            "standard-webhooks" => Vendor::StandardWebhooks,
            _ => return None,
        })
    }

    pub const NAMES: &[&str] = &["netlia", "purelife", "novee", "standard-webhooks"];

    /// The request for message `n`: path, body, and the vendor's event id.
    pub fn message(self, n: u64, run: &str, now: jiff::Timestamp) -> (String, Vec<u8>, String) {
        let id = format!("sim-{run}-{n}");
        let device = format!("sim-{}", n % 10);
        let (path, body) = match self {
            Vendor::Netlia => (
                format!("/netlia/1/{device}/event-start"),
                json!({"ProtocolVersion": 1, "DeviceId": device, "DeviceType": "sos-button",
                       "EventId": id, "EventTime": now.to_string(), "EventType": "event-start"}),
            ),
            // A radar state is edge-detected: each message is a fall on a radar of its own, so
            // every one is news whatever order concurrent requests arrive in.
            Vendor::Purelife => (
                "/purelife".to_owned(),
                json!({"eventId": id, "type": "fall", "deviceId": format!("sim-{run}-{n}"),
                       "status": "fall_confirmed",
                       "timestamp": now.as_millisecond(), "isSimulated": false, "isLearning": false}),
            ),
            Vendor::Novee => (
                "/novee".to_owned(),
                json!({"id": id, "type": "FALL_DETECTION",
                       "data": {"userUUID": device, "reasons": ["fall"], "happenedAt": now.to_string()}}),
            ),
            Vendor::StandardWebhooks => (
                "/hooks/alarm".to_owned(),
                json!({"device": device, "event": "pendant_press", "time": now.to_string()}),
            ),
        };
        (path, body.to_string().into_bytes(), id)
    }

    /// The headers proving the request, with the route's default header names.
    pub fn sign(
        self,
        secret: &str,
        key: Option<&WebhookKey>,
        id: &str,
        body: &[u8],
        now: jiff::Timestamp,
    ) -> Headers {
        match (self, key) {
            (Vendor::Netlia, _) => sign::api_key("x-api-key", secret),
            (Vendor::Purelife, _) => {
                sign::hmac_sha256(secret, "x-purelife-cloud-signature", "sha256=", body)
            }
            (Vendor::Novee, _) => sign::timestamped_hmac(
                secret,
                "x-signature",
                "x-timestamp",
                &now.as_millisecond().to_string(),
                body,
            ),
            (Vendor::StandardWebhooks, Some(k)) => {
                sign::standard_webhooks(k, id, now.as_second(), body)
            }
            (Vendor::StandardWebhooks, None) => Vec::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: u64,
    pub ok: u64,
    /// Answers other than 2xx, by status (0: no answer).
    pub failed: std::collections::BTreeMap<u16, u64>,
    /// Request → answer, in completion order.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 * p).ceil() as usize).checked_sub(1)?;
        v.get(i.min(v.len().saturating_sub(1))).copied()
    }
}

/// How to run.
pub struct Run {
    pub vendor: Vendor,
    /// `https://host:port` (or `http://` for a loopback proxy setup).
    pub base: String,
    pub secret: String,
    pub client: reqwest::Client,
    pub count: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Distinguishes this run's event ids from another's.
    pub run_id: String,
}

/// Sends `count` webhooks, `concurrency` at a time, and checks each answer.
pub async fn run(r: Run) -> Result<Report, String> {
    let key = match r.vendor {
        Vendor::StandardWebhooks => Some(WebhookKey::parse(&r.secret).map_err(|e| e.to_string())?),
        _ => None,
    };
    let started = Instant::now();
    let mut report = Report::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0u64;
    while next < r.count || !tasks.is_empty() {
        while next < r.count && tasks.len() < r.concurrency.max(1) {
            let now = jiff::Timestamp::now();
            let (path, body, id) = r.vendor.message(next, &r.run_id, now);
            let headers = r.vendor.sign(&r.secret, key.as_ref(), &id, &body, now);
            let mut req = r
                .client
                .post(format!("{}{path}", r.base.trim_end_matches('/')))
                .header("content-type", "application/json")
                .body(body);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            next += 1;
            report.sent += 1;
            tasks.spawn(async move {
                let t = Instant::now();
                let status = match req.send().await {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                };
                (status, t.elapsed())
            });
        }
        if let Some(Ok((status, took))) = tasks.join_next().await {
            if (200..300).contains(&status) {
                report.ok += 1;
                report.latencies.push(took);
            } else {
                *report.failed.entry(status).or_default() += 1;
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
