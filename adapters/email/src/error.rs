//! Why an email sink could not start. Each message names the sink, the key or file, and what
//! to do; none contains the password or a recipient. Failures of single deliveries are not
//! errors here: they are `Outcome::Retry` reasons for the outbox.

use std::path::PathBuf;

use atgw_sdk::secret::SecretError;

use crate::config::Invalid;

/// An email sink that cannot run with its configuration or on this host.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("email sink `{sink}`: {source}")]
    Invalid { sink: String, source: Invalid },
    #[error("email sink `{sink}`: password_file: {source}")]
    Password { sink: String, source: SecretError },
    #[error("email sink `{sink}`: ca_file {}: {problem}", path.display())]
    CaFile {
        sink: String,
        path: PathBuf,
        problem: String,
    },
    #[error(
        "email sink `{sink}`: cannot set up TLS: {detail}. If no CA certificates were found, install the system CA bundle (Debian: ca-certificates) or set `ca_file` (with `ca_only = true` for a private CA)"
    )]
    Tls { sink: String, detail: String },
}

/// An error and its causes on one line (`a: b: c`), each text once: lettre's own text
/// already ends with its source's, and a cause whose text the line holds is skipped, as is a
/// segment that repeats the one before it (`Connection error: Connection error: …`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in out.split(": ") {
        if parts.last() != Some(&p) {
            parts.push(p);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_repeated_segment_is_said_once() {
        let e =
            std::io::Error::other("Connection error: Connection error: invalid peer certificate");
        assert_eq!(
            super::chain(&e),
            "Connection error: invalid peer certificate"
        );
    }
}
