//! `atgw audit` findings only this adapter can judge: whether its link is encrypted, and how
//! each route authenticates.

use atgw_sdk::audit::{Finding, Provision};

use crate::config::{AuthConfig, Config};

pub fn findings(subject: &str, c: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let loopback = c.listen_addr().is_ok_and(|a| a.ip().is_loopback());
    out.push(match (&c.tls, loopback) {
        (Some(t), _) => Finding::pass(
            Provision::SecureCommunication,
            "http-ingest-tls",
            subject,
            format!(
                "TLS on {}{}",
                c.listen,
                if t.client_ca_file.is_some() {
                    ", client certificates required"
                } else {
                    ""
                }
            ),
        ),
        (None, true) => Finding::warn(
            Provision::SecureCommunication,
            "http-ingest-tls",
            subject,
            format!(
                "plaintext on loopback {} behind a TLS-terminating proxy",
                c.listen
            ),
            "check that the proxy in front speaks TLS to the vendors",
        ),
        (None, false) => Finding::fail(
            Provision::SecureCommunication,
            "http-ingest-tls",
            subject,
            format!("plaintext HTTP on {}, reachable from the network", c.listen),
            "set `tls = { cert_file, key_file }`, or listen on 127.0.0.1 behind the proxy",
        ),
    });
    for r in &c.routes {
        let what = match &r.auth {
            AuthConfig::StandardWebhooks { .. } | AuthConfig::TimestampedHmac { .. } => {
                "signed bodies with a timestamp (replays outside the tolerance refused)"
            }
            AuthConfig::HmacSha256 { .. } => {
                "signed bodies without a timestamp (a captured request can be replayed; the dedupe id journals it once)"
            }
            AuthConfig::Bearer { .. } | AuthConfig::ApiKey { .. } | AuthConfig::Basic { .. } => {
                "a shared token (bodies unsigned: rely on TLS)"
            }
        };
        out.push(Finding::pass(
            Provision::AttackSurface,
            "http-ingest-auth",
            subject,
            format!("route {}: {} ({what})", r.path, r.auth.scheme()),
        ));
    }
    out
}
