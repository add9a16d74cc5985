//! The HTTPS client every HTTP sink builds once for its lifetime (the webhook sink, the FHIR
//! sink): timeouts, no redirects (a redirected POST may turn into a GET or carry events and
//! credentials somewhere unexpected), `https_only` for an `https://` target, and its TLS roots.
//!
//! TLS roots: the system store through rustls-platform-verifier (what reqwest 0.13 uses with
//! `rustls-no-provider`), plus `ca_file`'s certificates, or only those with `ca_only`. A plain
//! `http://` loopback target gets an empty root store instead: redirects are never followed,
//! so no TLS happens, and the platform verifier would otherwise refuse to build on a box
//! without a system CA bundle.

use std::path::Path;
use std::time::Duration;

use reqwest::{Certificate, ClientBuilder};

use crate::error::chain;

/// What a sink's client is built from.
pub struct Spec<'a> {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The target is `https://`.
    pub https: bool,
    pub ca_file: Option<&'a Path>,
    pub ca_only: bool,
}

/// Why a client could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// No rustls crypto provider is installed (reqwest would panic on build).
    NoCryptoProvider,
    /// `ca_file` cannot be used: what is wrong with it.
    CaFile(String),
}

/// The builder with everything a sink's client shares; the sink adds its own headers or
/// identity and builds it.
pub async fn builder(spec: Spec<'_>) -> Result<ClientBuilder, SetupError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(SetupError::NoCryptoProvider);
    }
    let mut b = reqwest::Client::builder()
        .timeout(spec.timeout)
        .connect_timeout(spec.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(spec.https)
        .tcp_nodelay(true)
        .user_agent(concat!("atgw/", env!("CARGO_PKG_VERSION")));
    if !spec.https {
        b = b.tls_certs_only(Vec::new());
    } else if let Some(path) = spec.ca_file {
        let (_, certs) = read_certificates(path, "the receiver's CA")
            .await
            .map_err(SetupError::CaFile)?;
        b = if spec.ca_only {
            b.tls_certs_only(certs)
        } else {
            b.tls_certs_merge(certs)
        };
    }
    Ok(b)
}

/// A PEM file of certificates (`what` names them in the problem): its bytes and the
/// certificates, or what is wrong with it.
pub async fn read_certificates(
    path: &Path,
    what: &str,
) -> Result<(Vec<u8>, Vec<Certificate>), String> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let certs = Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("not a PEM certificate bundle: {}", chain(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "holds no `BEGIN CERTIFICATE` block; expected {what} in PEM"
        ));
    }
    Ok((pem, certs))
}
