//! The HTTP server: one handler for every request. In order: the route (`404`), the sender's
//! request budget (`429`), the body's size (`413`), the route's authentication (`401`, no
//! event, no dead letter: a stranger's bytes are not ours to keep), then the body is mapped
//! and committed, and only then answered `2xx`. A body that cannot be mapped is dead-lettered
//! and answered `400` with a JSON reason; a commit that fails is answered `503` with
//! `Retry-After`, so the cloud sends it again, and the vendor's event id makes the retry land
//! once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atgw_profile::{Evaluation, Input};
use atgw_sdk::clock::SharedClock;
use atgw_sdk::ingest::{DeadLetter, Submission};
use atgw_sdk::peer_budget::PeerBudget;
use atgw_sdk::ratelimit::LogLimiter;
use atgw_sdk::{Committed, EventDraft, Health, Ingest};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::Format;
use crate::route::{EdgeState, Mount, Route};

/// `raw.protocol` of this adapter's events.
pub const PROTOCOL: &str = "http";

/// What every request shares.
pub struct Shared {
    pub name: String,
    pub routes: Vec<Route>,
    pub budget: Arc<PeerBudget>,
    pub max_body_bytes: usize,
    pub ingest: Ingest,
    pub health: Arc<Health>,
    pub clock: SharedClock,
    pub timezone: jiff::tz::TimeZone,
    pub edges: EdgeState,
    pub warn: LogLimiter,
}

/// How long a request waits for its commit before it is answered 503: well inside the 15–30 s
/// vendor clouds wait for an answer, so they hear "retry" rather than time out.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a cloud should wait before sending again after a failed commit.
const RETRY_AFTER_S: &str = "5";

pub async fn handle(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path();
    let Some(route) = crate::route::find(&s.routes, path) else {
        s.health.rejected("no_route");
        return error(
            StatusCode::NOT_FOUND,
            "no_route",
            "no route takes this path",
        );
    };
    if method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            "only POST is accepted",
        );
    }
    if !s.budget.allow(peer.ip(), tokio::time::Instant::now()) {
        s.health.rejected("rate_limited");
        s.warn_limited("rate_limited", || {
            format!("{peer} exceeds requests_per_sec; answering 429")
        });
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this address",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes) {
        return s.too_large(peer, route);
    }
    let Ok(body) = axum::body::to_bytes(body, s.max_body_bytes).await else {
        // Over the limit while streaming, or the client went away mid-body.
        return s.too_large(peer, route);
    };
    let now = s.clock.now();
    if let Err(e) = route.verifier.verify(&headers, &body, now.as_millisecond()) {
        s.health.rejected(e.reason());
        s.warn_limited(e.reason(), || {
            format!("{peer} on {}: not authenticated: {e}", route.path)
        });
        return error(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string());
    }
    s.health.received(1);
    match route.format {
        Format::Profiles => {
            s.profiles(route, path, uri.query(), &headers, body, peer)
                .await
        }
        Format::Fhir => crate::fhir::handle(&s, route, path, body, peer).await,
    }
}

impl Shared {
    fn warn_limited(&self, key: &'static str, line: impl FnOnce() -> String) {
        if let Some(suppressed) = self.warn.allow(key) {
            tracing::warn!(adapter = %self.name, suppressed, "{}", line());
        }
    }

    fn too_large(&self, peer: SocketAddr, route: &Route) -> Response {
        self.health.rejected("oversize");
        self.warn_limited("oversize", || {
            format!(
                "{peer} on {}: body over max_body_bytes ({}); answering 413",
                route.path, self.max_body_bytes
            )
        });
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversize",
            &format!("the body is over {} bytes", self.max_body_bytes),
        )
    }

    async fn profiles(
        &self,
        route: &Route,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
        peer: SocketAddr,
    ) -> Response {
        let secret: Vec<&str> = route.secret_headers.iter().map(String::as_str).collect();
        let request = crate::request::meta(headers, query, &secret);
        let topic = route.topic_of(path);
        let input = Input {
            protocol: PROTOCOL,
            topic: &topic,
            payload: &body,
            received: self.clock.now(),
            adapter: &self.name,
            timezone: &self.timezone,
            request: Some(&request),
        };
        let evaluation = {
            let Ok(mut edges) = self.edges.lock() else {
                return self.unavailable("edge state unavailable");
            };
            let e = route.profiles.evaluate(&input, &*edges);
            if let Evaluation::Mapped { state, .. } = &e {
                for u in state {
                    match &u.value {
                        Some(v) => edges.insert(u.key.clone(), v.clone()),
                        None => edges.remove(&u.key),
                    };
                }
            }
            e
        };
        match evaluation {
            Evaluation::Mapped {
                mut events,
                state,
                seen,
                ..
            } => {
                // Only a path into the body needs the body read again (the engine's parse is
                // its own); `@header.webhook-id` does not.
                let upstream = route.dedupe.as_ref().and_then(|p| {
                    let message = if p.reads_request() {
                        Value::Null
                    } else {
                        serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)
                    };
                    p.text(&message, &request)
                });
                for e in &mut events {
                    as_http(e, path, upstream.as_deref());
                }
                let submission = Submission {
                    events,
                    dedupe_key: upstream.as_deref().map(|id| dedupe_key(&route.path, id)),
                    dedupe_window: Some(route.dedupe_window),
                    first_delivery: false,
                    state,
                    seen,
                };
                match self.submit(vec![submission]).await.map(|mut c| c.pop()) {
                    Ok(Some(Committed::Stored { ids })) => {
                        self.health.committed(1);
                        (StatusCode::OK, axum::Json(json!({ "ids": ids }))).into_response()
                    }
                    Ok(Some(Committed::Duplicate)) => {
                        self.health.duplicate();
                        (StatusCode::OK, axum::Json(json!({ "duplicate": true }))).into_response()
                    }
                    Ok(None) => self.unavailable("the journal answered nothing"),
                    Err(e) => {
                        self.reload_edges().await;
                        self.unavailable(&e)
                    }
                }
            }
            Evaluation::Ignored { .. } => {
                self.health.ignored();
                (StatusCode::OK, axum::Json(json!({ "ignored": true }))).into_response()
            }
            Evaluation::Rejected { reason, detail } => {
                self.dead_letter(reason, detail, path, peer, body.to_vec())
                    .await
            }
        }
    }

    /// Dead-letters a body that was authenticated but could not be mapped, then answers 400
    /// (or 503 when even the dead letter could not be committed: the sender tries again).
    pub async fn dead_letter(
        &self,
        reason: &'static str,
        detail: String,
        path: &str,
        peer: SocketAddr,
        raw: Vec<u8>,
    ) -> Response {
        self.health.rejected(reason);
        self.warn_limited(reason, || {
            format!("{peer} on {path}: dead-lettered a request ({reason}): {detail}")
        });
        let letter = DeadLetter {
            reason: reason.to_owned(),
            detail: detail.clone(),
            origin: format!("{path} from {peer}"),
            raw,
        };
        match self.ingest.reject(letter).await {
            Ok(()) => error(StatusCode::BAD_REQUEST, reason, &detail),
            Err(e) => self.unavailable(&e.to_string()),
        }
    }

    /// Commits, or gives up after [`COMMIT_TIMEOUT`] (the journal may still commit it: the
    /// sender's retry is then a duplicate, answered 2xx).
    pub async fn submit(&self, subs: Vec<Submission>) -> Result<Vec<Committed>, String> {
        match tokio::time::timeout(COMMIT_TIMEOUT, self.ingest.submit_batch(subs)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no commit within {COMMIT_TIMEOUT:?}")),
        }
    }

    /// A commit that failed: counted in the health and logged (rate-limited).
    pub fn commit_failed(&self, why: &str) {
        self.health.error(format!("journal: {why}"));
        self.warn_limited("journal", || {
            format!("cannot commit, answering 503 so the sender retries: {why}")
        });
    }

    /// [`Shared::commit_failed`], answered `503` with `Retry-After`.
    pub fn unavailable(&self, why: &str) -> Response {
        self.commit_failed(why);
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_committed",
            "the gateway could not store this now; send it again",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
        r
    }

    /// After a failed commit the memory may hold edges the journal does not: read it back.
    async fn reload_edges(&self) {
        if let Ok(rows) = self.ingest.load_state().await
            && let Ok(mut edges) = self.edges.lock()
        {
            *edges = rows.into_iter().collect();
        }
    }
}

/// The dedupe key of a vendor's event id on a route.
pub fn dedupe_key(route: &str, id: &str) -> String {
    format!("http:{route}:{id}")
}

/// Profiles write `raw` as a topic; an HTTP event keeps its path and the vendor's id.
fn as_http(e: &mut EventDraft, path: &str, upstream: Option<&str>) {
    if let Some(raw) = &mut e.data.raw {
        raw.topic = None;
        raw.path = Some(path.to_owned());
        raw.upstream_id = upstream.map(str::to_owned);
    }
}

/// A JSON error answer: `{"error": reason, "detail": …}`.
pub fn error(status: StatusCode, reason: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": reason, "detail": detail })),
    )
        .into_response()
}

/// How long the server gives requests in hand after shutdown.
pub const GRACE: Duration = Duration::from_secs(3);
