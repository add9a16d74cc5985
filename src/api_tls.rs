//! TLS on the local API's listener (`[api.tls]`), so the console can be served to the nurses'
//! station and carers' phones over the home's LAN: rustls with a configured certificate and
//! key, or a self-signed certificate generated at first start (kept in `data_dir/tls/`, its
//! SHA-256 fingerprint logged at every start so the integrator can check it in the browser).
//! The listener itself (handshakes in their own tasks, bounded) is
//! [`atgw_sdk::listener::TlsListener`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[api.tls]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (the site's own CA or a public one).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (a secret file: mode 600; relative names are looked up in systemd's
    /// `$CREDENTIALS_DIRECTORY` first).
    pub key_file: Option<PathBuf>,
    /// Without cert_file/key_file: generate a self-signed certificate at first start into
    /// `data_dir/tls/` and log its fingerprint.
    #[serde(default)]
    pub self_signed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[api.tls]: set cert_file and key_file, or self_signed = true")]
    Incomplete,
    #[error("[api.tls] {path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("[api.tls]: cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("[api.tls]: {0}")]
    Rustls(String),
}

/// A loaded certificate: the server config and what the integrator needs to check.
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Where a self-signed certificate was generated this start.
    pub generated: Option<PathBuf>,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

/// Loads (or at first start generates) the certificate.
pub fn load(cfg: &TlsConfig, data_dir: &Path) -> Result<Loaded, TlsError> {
    let (cert, key, generated) = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), None),
        (None, None) if cfg.self_signed => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let generated = if c.exists() && k.exists() {
                None
            } else {
                generate(&dir, &c, &k)?;
                Some(c.clone())
            };
            (c, k, generated)
        }
        _ => return Err(TlsError::Incomplete),
    };
    let chain = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| file_err(&cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(&cert, e))?;
    let Some(leaf) = chain.first() else {
        return Err(file_err(&cert, "no certificate in the file"));
    };
    let fingerprint = fingerprint(leaf.as_ref());
    // The key is a secret like a password: a private file, never logged.
    let pem = atgw_sdk::secret::read_secret_file(&key).map_err(|e| file_err(&key, e))?;
    let key_der =
        PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|e| file_err(&key, e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        fingerprint,
        generated,
    })
}

/// `AB:CD:…`, as browsers show a certificate's SHA-256 fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn generate(dir: &Path, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let mut names = vec!["localhost".to_owned()];
    // The box's own name, so https://<hostname>.local/console matches the certificate.
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_owned());
            names.push(format!("{h}.local"));
        }
    }
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    write_new(key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Creates `path` (never through a symlink, never over an existing file) with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))?;
    f.sync_all().map_err(|e| file_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_with_a_private_key_and_kept() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let cfg = TlsConfig {
            cert_file: None,
            key_file: None,
            self_signed: true,
        };
        let first = load(&cfg, dir.path()).unwrap();
        assert!(first.generated.is_some());
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load(&cfg, dir.path()).unwrap();
        assert!(again.generated.is_none());
        assert_eq!(again.fingerprint, first.fingerprint, "the same certificate");
    }

    #[test]
    fn half_a_configuration_is_refused() {
        let cfg = TlsConfig {
            cert_file: Some("/x".into()),
            key_file: None,
            self_signed: false,
        };
        assert!(matches!(
            load(&cfg, Path::new("/nonexistent")),
            Err(TlsError::Incomplete)
        ));
    }
}
