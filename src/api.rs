//! The local HTTP API (DESIGN §9): alerts, devices and events for consoles and the `atgw alerts`
//! command. Loopback by default; every `/api/v1` route needs `Authorization: Bearer <token>`
//! with the token read from `token_file` (there is no default token, and without `[api]` there
//! is no API).
//!
//! Errors are JSON `{"error": "…"}`, all of them: the handlers' own, and through [`json_errors`]
//! every other one (an unknown path, a wrong method, axum's rejections of a query or body), whose
//! status is kept (a body over the 2 MiB limit is 413). A request without `Host` is refused
//! (400). A missing or wrong token is counted (`atgw_api_auth_failures_total`) and logged at most
//! once a minute ([`AUTH_LOG_EVERY`]), never with the token tried.
//!
//! Probes and monitoring:
//! - `/healthz` (open): the process answers.
//! - `/readyz` (open, like `/healthz`, so a supervisor or load balancer can probe it without a
//!   secret): 200 when every adapter, sink and the journal is ready, else 503, with a JSON
//!   report per component ([`crate::readiness`]). It carries connection state, times and
//!   backlog counts only, nothing about residents or devices.
//! - `/metrics` (token required): Prometheus text format ([`crate::metrics`]). It reveals how
//!   many alarms are open and how fast staff answer them, which is the care home's business,
//!   so Prometheus scrapes it with `authorization: { credentials_file: … }` holding the token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use atgw_sdk::Shutdown;
use atgw_sdk::secret::Secret;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::alerts::AlertCommand;
use crate::journal::{Reader, WriterHandle};

/// `[api]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; keep it on loopback unless a firewall and TLS proxy front it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// File holding the bearer token (mode 600; a relative name is looked up in systemd's
    /// `$CREDENTIALS_DIRECTORY` first).
    pub token_file: PathBuf,
    /// Connections served at once, at most; further clients wait (in the kernel's backlog)
    /// until one closes. Bounds what idle connections can hold (each costs buffers).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed, so held-open idle
    /// connections free their slot.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: std::time::Duration,
    /// TLS on this listener (`[api.tls]`, [`crate::api_tls`]); required for the console on a
    /// non-loopback address.
    #[serde(default)]
    pub tls: Option<crate::api_tls::TlsConfig>,
    /// The care-team console (`[api.console]`, [`crate::console`]); absent: no console.
    #[serde(default)]
    pub console: Option<crate::console::ConsoleConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:8780".into()
}

fn default_max_connections() -> usize {
    256
}

fn default_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

/// Shared by every handler.
#[derive(Clone)]
pub struct ApiState {
    pub token: Arc<Secret>,
    pub writer: WriterHandle,
    pub journal: PathBuf,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub readiness: Arc<crate::readiness::Readiness>,
    /// Limits the failed-authentication warning to one line per [`AUTH_LOG_EVERY`].
    pub auth_log: Arc<atgw_sdk::ratelimit::LogLimiter>,
    /// The console's sessions and registry view, when `[api.console]` is enabled.
    pub console: Option<Arc<crate::console::ConsoleState>>,
}

/// At most one "authentication failed" line per this interval; the line says how many more.
pub const AUTH_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Binds the listener (so a taken port stops the start) and returns it with its address.
pub async fn bind(cfg: &ApiConfig) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// Serves until shutdown, at most `max_connections` connections at once; over TLS when `tls`
/// is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: &ApiConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    gateway_id: &str,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let alarm = crate::api_listener::CapAlarm {
        metrics: state.metrics.clone(),
        writer: state.writer.clone(),
        gateway_id: gateway_id.to_owned(),
        max: limits.max_connections.max(1),
    };
    let listener =
        atgw_sdk::listener::Capped::new(listener, limits.max_connections, limits.idle_timeout)
            .labelled("local API")
            .on_cap(alarm.on_cap());
    // The client's address: the console's login rate limit is per client.
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let stop = async move { shutdown.cancelled().await };
    // axum leaves Nagle on: an answer written in two segments would then wait for the client's
    // delayed ACK (DESIGN §11).
    let nodelay = |tcp: &tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("API: TCP_NODELAY not set: {e}");
        }
    };
    match tls {
        None => {
            let listener = listener.tap_io(move |io| nodelay(io.tcp()));
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(config) => {
            let listener = atgw_sdk::listener::TlsListener::new(listener, config)?
                .tap_io(move |io| nodelay(io.get_ref().0.tcp()));
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/alerts", get(list_alerts))
        .route("/alerts/{id}/ack", post(ack))
        .route("/alerts/{id}/resolve", post(resolve))
        .route("/devices", get(devices))
        .route("/devices/{id}/shelve", post(shelve))
        .route("/devices/{id}/unshelve", post(unshelve))
        .route("/shelves", get(shelves))
        .route("/events", get(events))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let monitoring = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let console = if state.console.is_some() {
        crate::console::handlers::router()
    } else {
        Router::new()
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(monitoring)
        .merge(console)
        .nest("/api/v1", api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(require_host))
        .with_state(state)
}

/// HTTP/1.1 requires `Host`; a request without one is not from a client we serve.
async fn require_host(req: Request, next: Next) -> Response {
    if req.headers().contains_key(axum::http::header::HOST) {
        next.run(req).await
    } else {
        error(StatusCode::BAD_REQUEST, "the request has no Host header")
    }
}

/// Makes every error response JSON: one that is not (axum's 404 and 405, its text/plain
/// rejections) becomes `{"error": <its text, or the status's name>}` with the same status and
/// the headers that matter to a client (`Allow`, `Retry-After`).
async fn json_errors(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let status = resp.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is not read, so the connection cannot carry another request;
        // say so, or a client reuses it and fails.
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    json_body(resp).await
}

/// The same response with its text (or its status's name) as a JSON error.
async fn json_body(resp: Response) -> Response {
    use axum::http::header::{ALLOW, CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE};
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let msg = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut out = error(status, msg);
    for name in [ALLOW, CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn require_token(
    State(s): State<ApiState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(s.token.expose().as_bytes())) {
        next.run(req).await
    } else {
        s.metrics.api_auth_failure();
        if let Some(suppressed) = s.auth_log.allow("auth") {
            tracing::warn!(
                path = %req.uri().path(),
                suppressed,
                "API authentication failed: missing or wrong bearer token (more in atgw_api_auth_failures_total)"
            );
        }
        error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
    }
}

/// Runs a read on its own read-only connection, off the async workers.
pub(crate) async fn read<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&Reader) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let path = s.journal.clone();
    match tokio::task::spawn_blocking(move || Reader::open(&path).and_then(|r| f(&r))).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("journal: {e}"),
        )),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// 200 when every component is ready, else 503; the body says which is not and why.
async fn readyz(State(s): State<ApiState>) -> Response {
    let r = s.readiness.clone();
    match tokio::task::spawn_blocking(move || r.report()).await {
        Ok(report) => {
            let status = if report.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(report)).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Refreshes the journal-resident gauges, then renders every metric.
async fn metrics(State(s): State<ApiState>) -> Response {
    let (m, path) = (s.metrics.clone(), s.journal.clone());
    let rendered = tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&path).map_err(|e| format!("journal: {e}"))?;
        m.refresh_from_journal(&reader)
            .map_err(|e| format!("journal: {e}"))?;
        m.encode().map_err(|e| format!("encoding: {e}"))
    })
    .await;
    match rendered {
        Ok(Ok(text)) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn list_alerts(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.clamp(1, 1000);
    match read(&s, move |r| r.alerts(q.all, limit)).await {
        Ok(list) => Json(json!({ "alerts": list })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    by: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
}

async fn ack(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let cmd = AlertCommand::Ack {
        id,
        by: b.by,
        note: b.note,
    };
    answer(crate::api_act::alert(&s, cmd).await)
}

async fn resolve(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    match crate::api_act::resolve_command(id, b.by, b.outcome, b.note) {
        Ok(cmd) => answer(crate::api_act::alert(&s, cmd).await),
        Err(r) => r,
    }
}

/// The committed result as JSON, or the refusal.
fn answer<T: serde::Serialize>(r: Result<T, Response>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShelveBody {
    by: String,
    #[serde(default)]
    reason: String,
    /// `4h`, `30m`.
    #[serde(rename = "for", default)]
    duration: Option<String>,
}

async fn shelve(
    State(s): State<ApiState>,
    Path(device): Path<String>,
    body: Result<Json<ShelveBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    match crate::api_act::shelve_command(device, b.by, b.reason, b.duration.as_deref()) {
        Ok(cmd) => answer(crate::api_act::shelf(&s, cmd).await),
        Err(r) => r,
    }
}

async fn unshelve(
    State(s): State<ApiState>,
    Path(device): Path<String>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let cmd = crate::alerts::shelf::ShelfCommand::Unshelve { device, by: b.by };
    answer(crate::api_act::shelf(&s, cmd).await)
}

async fn shelves(State(s): State<ApiState>) -> Response {
    match read(&s, move |r| r.shelves()).await {
        Ok(list) => Json(json!({ "shelves": list })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct DevicesQuery {
    /// The `next` of the previous page.
    #[serde(default)]
    after: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

/// A page of devices in id order; `next` (the last id) while there may be more.
async fn devices(State(s): State<ApiState>, Query(q): Query<DevicesQuery>) -> Response {
    let limit = q.limit.clamp(1, 1000);
    match read(&s, move |r| r.devices(&q.after, limit)).await {
        Ok(list) => {
            let next = (list.len() == limit)
                .then(|| list.last().map(|d| d["id"].clone()))
                .flatten();
            Json(json!({ "devices": list, "next": next })).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since: i64,
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn events(State(s): State<ApiState>, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.clamp(1, 1000);
    match read(&s, move |r| r.events_json(q.since, limit)).await {
        Ok(rows) => {
            let next = rows.last().map(|(seq, _)| *seq).unwrap_or(q.since);
            let events: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|(seq, j)| json!({ "seq": seq, "event": serde_json::from_str::<serde_json::Value>(&j).unwrap_or_default() }))
                .collect();
            Json(json!({ "events": events, "next": next })).into_response()
        }
        Err(r) => r,
    }
}
