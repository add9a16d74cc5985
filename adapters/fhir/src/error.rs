//! Why a FHIR sink could not start. Each message names the sink, the key or file, and what to
//! do; none contains the token. Failures of single transactions are not errors here: they are
//! `Outcome::Retry` reasons for the outbox.

use std::path::PathBuf;

use atgw_sdk::component::Invalid;
use atgw_sdk::secret::SecretError;

/// A FHIR sink that cannot run with its configuration or on this host.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("fhir sink `{sink}`: {source}")]
    Invalid { sink: String, source: Invalid },
    #[error("fhir sink `{sink}`: token_file: {source}")]
    Token { sink: String, source: SecretError },
    #[error(
        "fhir sink `{sink}`: token_file {}: not a usable bearer token (one line of visible ASCII without spaces)", path.display()
    )]
    TokenFormat { sink: String, path: PathBuf },
    #[error("fhir sink `{sink}`: ca_file {}: {problem}", path.display())]
    CaFile {
        sink: String,
        path: PathBuf,
        problem: String,
    },
    #[error(
        "fhir sink `{sink}`: no TLS crypto provider is installed; the program must call `rustls::crypto::ring::default_provider().install_default()` before starting sinks"
    )]
    NoCryptoProvider { sink: String },
    #[error(
        "fhir sink `{sink}`: cannot set up the HTTP client: {detail}. If no CA certificates were found, install the system CA bundle (Debian: ca-certificates) or set `ca_file` (with `ca_only = true` for a private CA)"
    )]
    Client { sink: String, detail: String },
}
