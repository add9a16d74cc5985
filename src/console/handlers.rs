//! The console's HTTP routes, under `/console`:
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /console`, `/console/app.js`, `/console/app.css` | anyone | the embedded page |
//! | `POST /console/login` | anyone (rate limited) | `{name, password}` → session cookie, `{user, role, csrf}` |
//! | `POST /console/logout` | session + CSRF | ends the session |
//! | `GET /console/api/me` | session | `{user, role, csrf}` (the page's token for its POSTs) |
//! | `GET /console/api/alerts` | carers, seniors, managers | open alerts and the sequence they are as of |
//! | `POST /console/api/alerts/{id}/ack`, `/resolve` | carers, seniors, managers + CSRF | as the logged-in user |
//! | `GET /console/api/devices` | seniors, managers, integrators | devices, their offline episodes, shelves |
//! | `POST /console/api/devices/{id}/shelve`, `/unshelve` | seniors, managers, integrators + CSRF | `{reason, for}`; as the logged-in user |
//! | `GET /console/api/health` | session | `/readyz`'s report, for the page's banner |
//! | `GET /console/report?from=&to=` | managers | the pilot report page ([`super::report`]) |
//! | `GET /console/api/stream` | session | live transitions ([`super::stream`]) |
//!
//! A state change without the session's CSRF token is refused (403) and counted
//! (`atgw_console_csrf_refused_total`); a login is counted by outcome
//! (`atgw_console_logins_total`).
// A handler's early exit is the response it sends; boxing it would buy nothing per request.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::ConsoleState;
use super::accounts::{self, AccountAction, AccountEvent, Role};
use super::sessions::{self, SessionView};
use crate::alerts::AlertCommand;
use crate::alerts::shelf::ShelfCommand;
use crate::api::{ApiState, error, read};
use crate::journal::WriterCmd;

/// The console's routes (merged into the API's router when `[api.console]` is set).
pub fn router() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/console", get(super::assets::page))
        .route("/console/", get(super::assets::page))
        .route("/console/app.js", get(super::assets::script))
        .route("/console/app.css", get(super::assets::style))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/api/me", get(me))
        .route("/console/api/alerts", get(alerts))
        .route("/console/api/alerts/{id}/ack", post(ack))
        .route("/console/api/alerts/{id}/resolve", post(resolve))
        .route("/console/api/devices", get(devices))
        .route("/console/api/devices/{id}/shelve", post(shelve))
        .route("/console/api/devices/{id}/unshelve", post(unshelve))
        .route("/console/api/health", get(health))
        .route("/console/report", get(super::report::page))
        .route("/console/api/stream", get(super::stream::stream))
}

pub(crate) fn console(s: &ApiState) -> Result<Arc<ConsoleState>, Response> {
    s.console
        .clone()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "the console is not enabled"))
}

/// The request's live session, or 401 (the page then shows its login form).
pub(crate) fn session(
    s: &ApiState,
    headers: &HeaderMap,
) -> Result<(Arc<ConsoleState>, SessionView), Response> {
    let c = console(s)?;
    let view = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(sessions::cookie_value)
        .and_then(|cookie| c.sessions.check(cookie, super::now_ms()));
    match view {
        Some(v) => Ok((c, v)),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "You are not logged in (or your session ended). Please log in again.",
        )),
    }
}

/// A state change: a live session, its CSRF token, an account still enabled.
async fn changing(
    s: &ApiState,
    headers: &HeaderMap,
) -> Result<(Arc<ConsoleState>, SessionView), Response> {
    let (c, v) = session(s, headers)?;
    let given = headers.get("x-csrf-token").and_then(|h| h.to_str().ok());
    if !sessions::csrf_ok(&v, given) {
        s.metrics.console_csrf_refused();
        return Err(error(
            StatusCode::FORBIDDEN,
            "This request did not carry the page's security token (CSRF); reload the page and try again.",
        ));
    }
    // Disabled meanwhile by `atgw users disable`: end their sessions now.
    let name = v.user.clone();
    let user = read(s, move |r| accounts::load(r.conn(), &name)).await?;
    if user.is_none_or(|u| u.disabled) {
        for id in c.sessions.end_user(&v.user) {
            journal(
                s,
                &v.user,
                AccountAction::SessionEnded {
                    id,
                    why: "disabled",
                },
            );
        }
        return Err(error(StatusCode::UNAUTHORIZED, "This account is disabled."));
    }
    Ok((c, v))
}

fn journal(s: &ApiState, user: &str, action: AccountAction) {
    s.writer.send(WriterCmd::Account(Box::new(AccountEvent {
        user: user.to_owned(),
        at_ms: super::now_ms(),
        action,
    })));
}

fn forbidden(what: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        format!("Your role does not allow {what}; ask a manager if you need it."),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

const WRONG: &str = "Wrong name or password.";

async fn login(State(s): State<ApiState>, req: Request) -> Response {
    let c = match console(&s) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let body = match axum::body::to_bytes(req.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "login request too large"),
    };
    let Ok(b) = serde_json::from_slice::<LoginBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"name\": …, \"password\": …}",
        );
    };
    if !c.limit.allow(ip, std::time::Instant::now()) {
        s.metrics.console_login("rate_limited");
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many login attempts from this device. Wait a minute and try again.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    let name = b.name.trim().to_owned();
    let lookup = name.clone();
    let user = match read(&s, move |r| accounts::load(r.conn(), &lookup)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = super::now_ms();
    let (hash, verdict) = match &user {
        None => (c.decoy.clone(), Err("unknown_user")),
        Some(u) if u.disabled => (c.decoy.clone(), Err("disabled")),
        Some(u)
            if super::login_guard::locked_out(u, c.cfg.lockout_after, c.cfg.lockout_for, now) =>
        {
            (c.decoy.clone(), Err("locked_out"))
        }
        Some(u) => (u.hash.clone(), Ok(u.role)),
    };
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let password = b.password;
    let matched = tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    match (verdict, matched) {
        (Ok(role), true) => logged_in(&s, &c, &name, role),
        (Ok(_), false) => {
            s.metrics.console_login("wrong_password");
            journal(&s, &name, AccountAction::LoginFailed);
            error(StatusCode::UNAUTHORIZED, WRONG)
        }
        (Err("locked_out"), _) => {
            s.metrics.console_login("locked_out");
            journal(&s, &name, AccountAction::LoginRefused { why: "locked out" });
            error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "This account is locked after {} wrong passwords. Try again in {} minutes, or ask a manager to set a new password.",
                    c.cfg.lockout_after,
                    c.cfg.lockout_for.as_secs().div_ceil(60)
                ),
            )
        }
        (Err(why), _) => {
            s.metrics.console_login(why);
            if user.is_some() {
                journal(&s, &name, AccountAction::LoginRefused { why: "disabled" });
            }
            // The same answer as a wrong password: a guesser learns no names.
            error(StatusCode::UNAUTHORIZED, WRONG)
        }
    }
}

fn logged_in(s: &ApiState, c: &ConsoleState, name: &str, role: Role) -> Response {
    s.metrics.console_login("ok");
    let created = c.sessions.create(name, role, super::now_ms());
    let view = created.stored.view.clone();
    journal(s, name, AccountAction::LoggedIn(Box::new(created.stored)));
    let cookie = sessions::set_cookie(&created.cookie, c.sessions.absolute());
    let mut r =
        Json(json!({ "user": view.user, "role": view.role, "csrf": view.csrf })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    no_store(r)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let (c, v) = match changing(&s, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    c.sessions.end(&v.id);
    journal(
        &s,
        &v.user,
        AccountAction::SessionEnded {
            id: v.id,
            why: "logged out",
        },
    );
    let mut r = Json(json!({ "ok": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&sessions::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn me(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    match session(&s, &headers) {
        Ok((_, v)) => no_store(
            Json(json!({
                "user": v.user,
                "role": v.role,
                "csrf": v.csrf,
                "acts_on_alerts": v.role.acts_on_alerts(),
                "sees_devices": v.role.sees_devices(),
                "shelves": v.role.shelves(),
                "sees_report": v.role.sees_report(),
                "outcomes": crate::alerts::OUTCOMES,
            }))
            .into_response(),
        ),
        Err(r) => r,
    }
}

async fn alerts(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let (_, v) = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !v.role.acts_on_alerts() {
        return forbidden("seeing residents' alerts");
    }
    match read(&s, |r| super::views::snapshot(r.conn())).await {
        Ok((seq, alerts)) => {
            no_store(Json(json!({ "seq": seq, "alerts": alerts })).into_response())
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
}

async fn act_body(
    s: &ApiState,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> Result<(SessionView, ActBody), Response> {
    let (_, v) = changing(s, headers).await?;
    if !v.role.acts_on_alerts() {
        return Err(forbidden("acting on residents' alerts"));
    }
    let b: ActBody = if body.is_empty() {
        ActBody {
            note: None,
            outcome: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("expected JSON {{\"outcome\", \"note\"}}: {e}"),
            )
        })?
    };
    let note = b
        .note
        .map(|n| n.trim().chars().take(500).collect::<String>())
        .filter(|n| !n.is_empty());
    Ok((v, ActBody { note, ..b }))
}

async fn ack(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (v, b) = match act_body(&s, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cmd = AlertCommand::Ack {
        id: id.clone(),
        by: v.user.clone(),
        note: b.note,
    };
    act(&s, &v, cmd, AccountAction::Acknowledged { alert: id }).await
}

async fn resolve(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (v, b) = match act_body(&s, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let outcome = b.outcome.clone().unwrap_or_default();
    let cmd = match crate::api_act::resolve_command(id.clone(), v.user.clone(), b.outcome, b.note) {
        Ok(c) => c,
        Err(r) => return r,
    };
    act(&s, &v, cmd, AccountAction::Resolved { alert: id, outcome }).await
}

/// The shared path ([`crate::api_act`]) as the logged-in user; the user's audit trail records
/// it once committed.
async fn act(s: &ApiState, v: &SessionView, cmd: AlertCommand, done: AccountAction) -> Response {
    match crate::api_act::alert(s, cmd).await {
        Ok(view) => {
            journal(s, &v.user, done);
            Json(view).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShelveBody {
    #[serde(default)]
    reason: String,
    /// `4h`, `30m`: required, and at most `[alerts] max_shelve`.
    #[serde(rename = "for", default)]
    duration: Option<String>,
}

/// A shelf request: a live session, its CSRF token, a role that shelves.
async fn shelving(s: &ApiState, headers: &HeaderMap) -> Result<SessionView, Response> {
    let (_, v) = changing(s, headers).await?;
    if !v.role.shelves() {
        return Err(forbidden("shelving devices"));
    }
    Ok(v)
}

async fn shelve(
    State(s): State<ApiState>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let v = match shelving(&s, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let b: ShelveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected JSON {{\"reason\", \"for\"}}: {e}"),
            );
        }
    };
    let reason = b.reason.trim().to_owned();
    let cmd = match crate::api_act::shelve_command(
        device.clone(),
        v.user.clone(),
        reason,
        b.duration.as_deref(),
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::api_act::shelf(&s, cmd).await {
        Ok(shelf) => {
            let until = shelf.until.clone();
            journal(&s, &v.user, AccountAction::Shelved { device, until });
            Json(shelf).into_response()
        }
        Err(r) => r,
    }
}

async fn unshelve(
    State(s): State<ApiState>,
    Path(device): Path<String>,
    headers: HeaderMap,
) -> Response {
    let v = match shelving(&s, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let cmd = ShelfCommand::Unshelve {
        device: device.clone(),
        by: v.user.clone(),
    };
    match crate::api_act::shelf(&s, cmd).await {
        Ok(shelf) => {
            journal(&s, &v.user, AccountAction::Unshelved { device });
            Json(shelf).into_response()
        }
        Err(r) => r,
    }
}

async fn devices(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let (c, v) = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !v.role.sees_devices() {
        return forbidden("seeing devices");
    }
    let listed = read(&s, move |r| {
        Ok((super::views::devices(r.conn(), &c.devices)?, r.shelves()?))
    })
    .await;
    match listed {
        Ok((devices, shelves)) => {
            no_store(Json(json!({ "devices": devices, "shelves": shelves })).into_response())
        }
        Err(r) => r,
    }
}

async fn health(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = session(&s, &headers) {
        return r;
    }
    let r = s.readiness.clone();
    match tokio::task::spawn_blocking(move || r.report()).await {
        Ok(report) => no_store(Json(report).into_response()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
