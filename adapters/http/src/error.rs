//! Why a webhook sink could not start. Each message names the sink, the key or file, and what
//! to do; none contains the secret. Failures of single deliveries are not errors here: they
//! are `Outcome::Retry` reasons for the outbox.

use std::path::PathBuf;

use atgw_sdk::secret::SecretError;

use crate::config::Invalid;
use crate::signing::KeyError;

/// A webhook sink that cannot run with its configuration or on this host.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook sink `{sink}`: {source}")]
    Invalid { sink: String, source: Invalid },
    #[error("webhook sink `{sink}`: secret_file: {source}")]
    Secret { sink: String, source: SecretError },
    #[error("webhook sink `{sink}`: secret_file {}: {source}", path.display())]
    SecretFormat {
        sink: String,
        path: PathBuf,
        source: KeyError,
    },
    #[error("webhook sink `{sink}`: ca_file {}: {problem}", path.display())]
    CaFile {
        sink: String,
        path: PathBuf,
        problem: String,
    },
    #[error("webhook sink `{sink}`: client certificate {}: {problem}", path.display())]
    ClientCert {
        sink: String,
        path: PathBuf,
        problem: String,
    },
    #[error(
        "webhook sink `{sink}`: no TLS crypto provider is installed; the program must call `rustls::crypto::ring::default_provider().install_default()` before starting sinks"
    )]
    NoCryptoProvider { sink: String },
    #[error(
        "webhook sink `{sink}`: cannot set up the HTTP client: {detail}. If no CA certificates were found, install the system CA bundle (Debian: ca-certificates) or set `ca_file` (with `ca_only = true` for a private CA)"
    )]
    Client { sink: String, detail: String },
}

/// An error and its causes on one line (`a: b: c`), skipping a cause whose text repeats the
/// previous one (hyper and reqwest often wrap without adding words).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        next = cause.source();
    }
    out
}

/// A transport failure in words an integrator can act on; no URL query, no body. The
/// timeouts are the sink's own, named when one of them ran out.
pub fn describe(
    e: reqwest::Error,
    connect_timeout: std::time::Duration,
    timeout: std::time::Duration,
) -> String {
    let e = &e.without_url();
    if e.is_timeout() && e.is_connect() {
        return format!("no connection within connect_timeout {connect_timeout:?}");
    }
    if e.is_timeout() {
        return format!("no answer within timeout {timeout:?}");
    }
    if e.is_connect() {
        return format!("cannot connect: {}", chain(e));
    }
    format!("request failed: {}", chain(e))
}
