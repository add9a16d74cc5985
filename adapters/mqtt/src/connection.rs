//! Turning a `Broker` config into rumqttc options: persistent session with a stable client id,
//! credentials from a file, TLS through rustls (ring provider; CA and client certificate from
//! PEM files, the client key from a private file like any secret), TCP_NODELAY, and the reconnect
//! backoff rumqttc does not have.

use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::secret::read_secret_file;
use rand::Rng;
use rumqttc::{MqttOptions, NetworkOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Broker;

/// Why a connection could not even be configured (bad files, bad TLS material).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Secret(#[from] atgw_sdk::secret::SecretError),
    #[error("TLS file {path}: {what}")]
    TlsFile { path: String, what: String },
    #[error("TLS: {0}")]
    Tls(String),
}

/// Options for one connection. `clean_session` is always false: the broker must keep our
/// subscriptions and unacknowledged QoS 1 messages across reconnects.
pub fn options(
    broker: &Broker,
    default_client_id: &str,
    max_packet: usize,
) -> Result<MqttOptions, SetupError> {
    let client_id = broker
        .client_id
        .clone()
        .unwrap_or_else(|| default_client_id.to_owned());
    let mut o = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    o.set_keep_alive(broker.keep_alive);
    o.set_clean_session(false);
    o.set_max_packet_size(max_packet, max_packet);
    if let (Some(user), Some(file)) = (&broker.username, &broker.password_file) {
        let password = read_secret_file(file)?;
        o.set_credentials(user.clone(), password.expose().to_owned());
    } else if let Some(user) = &broker.username {
        o.set_credentials(user.clone(), String::new());
    }
    if let Some(tls) = &broker.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(client_config(tls)?),
        )));
    }
    Ok(o)
}

/// Socket options for every connection (rumqttc flushes each publish; without NODELAY each one
/// waits for the previous ACK on a real network).
pub fn network_options() -> NetworkOptions {
    let mut n = NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n.set_connection_timeout(5);
    n
}

fn client_config(tls: &crate::config::Tls) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_file(path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_file(path, e))?;
            if certs.is_empty() {
                return Err(tls_file(path, "no certificate in file"));
            }
            for c in certs {
                roots.add(c).map_err(|e| tls_file(path, e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(SetupError::Tls(
                    "no system CA certificates found; set tls.ca_file".into(),
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| tls_file(cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_file(cert, e))?;
            // The private key is a secret like a password: private file, never logged.
            let key_pem = read_secret_file(key)?;
            let key_der = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                .map_err(|e| tls_file(key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| SetupError::Tls(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn tls_file(path: &std::path::Path, e: impl std::fmt::Display) -> SetupError {
    SetupError::TlsFile {
        path: path.display().to_string(),
        what: e.to_string(),
    }
}

/// Capped exponential reconnect delay with jitter; reset on a successful CONNACK. Without it
/// rumqttc retries a dead broker tens of thousands of times a second.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// When the broker last accepted the connection (CONNACK), until it is lost.
    connected_at: Option<tokio::time::Instant>,
    /// Connections in a row the broker closed within [`STABLE`] of accepting them.
    short_lived: u32,
}

/// A connection that lasts this long is healthy: its loss starts the backoff from `min` again.
/// One that the broker closes sooner does not, so a broker that keeps accepting and then
/// dropping us is not hammered at `min`.
pub const STABLE: Duration = Duration::from_secs(10);
/// Short-lived connections in a row that make a pattern worth telling the integrator about.
pub const FLAPPING_AFTER: u32 = 3;

/// The hint for a broker that keeps closing a connection right after accepting it.
pub fn flapping_hint(client_id: &str, in_a_row: u32) -> String {
    format!(
        "the broker closed our connection {in_a_row} times in a row within {}s of accepting it; \
         most likely another client uses the client id `{client_id}` (a second gateway with the \
         same [gateway] id, or a copied config) and each connect takes over the other's session; \
         give each gateway its own id or set client_id; backing off up to the reconnect maximum",
        STABLE.as_secs()
    )
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
            connected_at: None,
            short_lived: 0,
        }
    }

    /// The delay before the next attempt (between half and all of the current step). After a
    /// connection was lost it also judges that connection: stable ones reset the step.
    pub fn next_delay(&mut self) -> Duration {
        if let Some(at) = self.connected_at.take() {
            if at.elapsed() >= STABLE {
                self.short_lived = 0;
                self.next = self.min;
            } else {
                self.short_lived += 1;
            }
        }
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis() as u64))
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The broker accepted the connection (CONNACK). The step is not reset yet: only a
    /// connection that proves [`STABLE`] does that, when it is lost.
    pub fn connected(&mut self) {
        self.connected_at = Some(tokio::time::Instant::now());
    }

    /// `Some(n)` while the last `n >= FLAPPING_AFTER` connections were each closed soon after
    /// the broker accepted them.
    pub fn flapping(&self) -> Option<u32> {
        (self.short_lived >= FLAPPING_AFTER).then_some(self.short_lived)
    }

    /// True once per episode: when the pattern is first seen (call after `next_delay`).
    pub fn flapping_began(&self) -> bool {
        self.short_lived == FLAPPING_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn connections_the_broker_drops_at_once_are_not_retried_at_the_minimum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(8));
        let mut waits = Vec::new();
        for _ in 0..5 {
            b.connected();
            tokio::time::advance(Duration::from_millis(50)).await;
            waits.push(b.next_delay());
        }
        assert!(
            waits[4] >= Duration::from_millis(800),
            "kept growing: {waits:?}"
        );
        assert_eq!(b.flapping(), Some(5));
        // A connection that lasts resets the step and ends the episode.
        b.connected();
        tokio::time::advance(STABLE).await;
        assert!(b.next_delay() <= Duration::from_millis(100));
        assert_eq!(b.flapping(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_flapping_pattern_is_announced_once_per_episode() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(8));
        let mut began = 0;
        for _ in 0..10 {
            b.connected();
            tokio::time::advance(Duration::from_millis(10)).await;
            b.next_delay();
            began += usize::from(b.flapping_began());
        }
        assert_eq!(began, 1);
        // An unreachable broker (no CONNACK at all) is not this pattern.
        let mut u = Backoff::new(Duration::from_millis(100), Duration::from_secs(8));
        for _ in 0..10 {
            u.next_delay();
        }
        assert_eq!(u.flapping(), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d1 = b.next_delay();
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(1));
        }
        assert!(b.next_delay() >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
