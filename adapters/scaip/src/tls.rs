//! SIP over TLS (`sips:`, RFC 3261 §26.2, RFC 5630): the receiver's rustls server config from
//! the configured certificate and key (and, when `client_ca_file` is set, the CA whose
//! certificates units must present), and the simulator's client config. ring as the crypto
//! provider, passed explicitly so neither side depends on a process-wide default.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A unit has this long to finish its TLS handshake (a silent connection holds a slot only
/// this long).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {path}: {what}")]
    File {
        key: &'static str,
        path: String,
        what: String,
    },
    #[error("TLS: {0}")]
    Rustls(String),
}

fn file_err(key: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        what: e.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// PEM certificates from `path` (at least one).
pub fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(key, path, e))?;
    if certs.is_empty() {
        return Err(file_err(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// A PEM private key, read as a secret (private file, never logged).
fn private_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = atgw_sdk::secret::read_secret_file(path).map_err(|e| file_err(key, path, e))?;
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|e| file_err(key, path, e))
}

fn roots(key: &'static str, path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(key, path)? {
        roots.add(c).map_err(|e| file_err(key, path, e))?;
    }
    Ok(Arc::new(roots))
}

/// The receiver's TLS config.
pub fn server_config(c: &crate::config::Tls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates("tls.cert_file", &c.cert_file)?;
    let key = private_key("tls.key_file", &c.key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &c.client_ca_file {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots("tls.client_ca_file", ca)?,
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("tls.cert_file / tls.key_file: {e}")))?;
    Ok(Arc::new(config))
}

/// The simulator's TLS config: trust `ca_file`; present `cert_file`/`key_file` when given.
pub fn client_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots("--ca-file", ca_file)?);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                certificates("--cert-file", cert)?,
                private_key("--key-file", key)?,
            )
            .map_err(|e| TlsError::Rustls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
