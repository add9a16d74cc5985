//! The console page, compiled into the binary: a care home's network may have no internet, so
//! nothing is fetched from anywhere else (no CDN, no web font). The Content-Security-Policy
//! says so to the browser too: scripts, styles and connections only from this origin.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    // A new binary brings a new page; a stale cached script must not talk to it.
    served(body.into_response(), content_type, CSP, "no-cache")
}

/// Every console document's headers: its type and policy, no sniffing, no referrer, never
/// framed, and how it may be cached.
pub(crate) fn served(
    mut r: Response,
    content_type: &'static str,
    csp: &'static str,
    cache: &'static str,
) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

pub async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}
