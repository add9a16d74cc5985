//! The pilot report for managers, in the console: `GET /console/report?from=&to=` serves the
//! very page `atgw report` writes (`report.html`, [`crate::tools::report::html`]), built by the
//! same reader ([`crate::tools::report::build_with_baseline`]) from the live journal, so the
//! figures are the command's. Managers only; resident ids are left out as in the command's
//! default.
//!
//! The page is self-contained (inline style, SVG charts, no script); its Content-Security-Policy
//! allows exactly that and nothing else.

// An early exit is the response sent; boxing it would buy nothing per request.
#![allow(clippy::result_large_err)]

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use serde::Deserialize;

use crate::api::{ApiState, error};
use crate::tools::report::{self, Options};

/// Inline style (the report's own `<style>` and chart legends) and nothing else: no script, no
/// connection, no frame.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Deserialize)]
pub struct Period {
    /// First day, YYYY-MM-DD in the site's time zone (default: the journal's first).
    #[serde(default)]
    from: Option<String>,
    /// Last day, inclusive (default: the journal's last).
    #[serde(default)]
    to: Option<String>,
}

fn day(what: &str, v: Option<&str>) -> Result<Option<Date>, Response> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<Date>().map(Some).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("`{what}` must be a day as YYYY-MM-DD: {e}"),
            )
        }),
    }
}

/// The report page for a chosen period.
pub async fn page(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Response {
    let (c, v) = match super::handlers::session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !v.role.sees_report() {
        return error(
            StatusCode::FORBIDDEN,
            "Your role does not allow seeing the pilot report; it is for managers.",
        );
    }
    let mut opts = match Options::new(&c.timezone) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    opts.from = match day("from", p.from.as_deref()) {
        Ok(d) => d,
        Err(r) => return r,
    };
    opts.to = match day("to", p.to.as_deref()) {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let (Some(f), Some(t)) = (opts.from, opts.to)
        && f > t
    {
        return error(
            StatusCode::BAD_REQUEST,
            "`from` is after `to`: choose the first day, then the last",
        );
    }
    let journal = s.journal.clone();
    // A read of the whole period: off the async workers.
    let built = tokio::task::spawn_blocking(move || {
        let mut conn = report::read::open(&journal)?;
        report::build_with_baseline(&mut conn, &journal, &opts).map(|r| report::html::render(&r))
    })
    .await;
    let html = match built {
        Ok(Ok(html)) => html,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    super::assets::served(
        html.into_response(),
        "text/html; charset=utf-8",
        CSP,
        "no-store",
    )
}
