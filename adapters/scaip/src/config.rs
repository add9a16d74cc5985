//! The adapter's configuration: one `[[adapter]]` table with `type = "scaip"`. Unknown keys are
//! errors; `validate` names the key that is wrong.
//!
//! ```toml
//! [[adapter]]
//! name = "units"
//! type = "scaip"
//! listen_udp = "0.0.0.0:5060"
//! listen_tcp = "0.0.0.0:5060"
//! listen_tls = "0.0.0.0:5061"            # sips:, with the certificate below
//! tls = { cert_file = "/etc/atgw/scaip.pem", key_file = "scaip.key" }
//! accounts = [{ user = "678", password_file = "/etc/atgw/scaip-678.pass" }]
//! heartbeat_interval = "60m"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sip::digest::Algorithm;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The adapter instance name (`device.adapter`, CloudEvents `source`).
    pub name: String,
    /// UDP listen address, e.g. `"0.0.0.0:5060"` (SIP's port).
    #[serde(default)]
    pub listen_udp: Option<String>,
    /// TCP listen address. Answers and the `<mrs>` MESSAGE go back on the unit's connection.
    #[serde(default)]
    pub listen_tcp: Option<String>,
    /// SIP over TLS (`sips:`, RFC 3261 §26) listen address, e.g. `"0.0.0.0:5061"`; needs `tls`.
    /// The same handling as TCP, on an encrypted connection.
    #[serde(default)]
    pub listen_tls: Option<String>,
    /// The TLS listener's certificate and key, and optionally the CA units' client
    /// certificates must chain to.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// SIP digest accounts: a unit authenticates as `user` with the password in
    /// `password_file` (a secret file, or a systemd credential name).
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Take requests from units that do not authenticate. Off by default (SCAIP: an alarm
    /// receiver accepts only authenticated senders); only for a closed LAN, and `atgw audit`
    /// says so. Without it, `accounts` must not be empty.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// The digest realm (default: the gateway id).
    #[serde(default)]
    pub realm: Option<String>,
    /// Digest algorithms offered, in the order of the `401`'s challenges (a unit takes the
    /// first it supports). Default `["MD5", "SHA-256"]`: MD5 first because the SCAIP guideline
    /// requires it and many units read only the first challenge.
    #[serde(default = "default_algorithms")]
    pub digest_algorithms: Vec<Algorithm>,
    /// How long a nonce we issue stays valid (`"5m"`).
    #[serde(default = "default_nonce_lifetime", with = "humantime_serde")]
    pub nonce_lifetime: Duration,
    /// The heartbeat interval (`hbi`) we ask of a unit that offers to take one (`hbo` 1),
    /// 1 minute to 24 hours; absent = we let the unit keep its own.
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    /// How long a request with the same `cid`, `ref` and content as one already journaled is
    /// a retransmission (`"30m"`: SCAIP units resend a held request for at most 30 minutes).
    #[serde(default = "default_retransmit_window", with = "humantime_serde")]
    pub retransmit_window: Duration,
    /// Concurrent TCP connections (256); a newcomer beyond it is refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// UDP server transactions remembered at once (4096; see `sip::transactions`).
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// A TCP connection that sends nothing for this long is closed (`"10m"`).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// `tls = { … }`: the receiver's certificate (rustls; no OpenSSL).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain the units verify (the site's CA or a public one).
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file` (a secret file: mode 600, or a systemd credential name).
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, a unit must present a client certificate that chains to
    /// one of them (mutual TLS), before any SIP is read.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// One unit account.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The digest username (usually the unit's `cid`).
    pub user: String,
    pub password_file: PathBuf,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::Md5, Algorithm::Sha256]
}
fn default_nonce_lifetime() -> Duration {
    Duration::from_secs(300)
}
fn default_retransmit_window() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_max_connections() -> usize {
    256
}
fn default_max_transactions() -> usize {
    4096
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(600)
}

impl Config {
    /// Checks of the values alone: `(key, problem)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, p: String| Err((k.to_owned(), p));
        if self.listen_udp.is_none() && self.listen_tcp.is_none() && self.listen_tls.is_none() {
            return bad(
                "listen_udp",
                "set listen_udp, listen_tcp, listen_tls or several (e.g. \"0.0.0.0:5060\")".into(),
            );
        }
        match (&self.listen_tls, &self.tls) {
            (Some(_), None) => {
                return bad(
                    "tls",
                    "listen_tls needs tls = { cert_file = \"…\", key_file = \"…\" }".into(),
                );
            }
            (None, Some(_)) => {
                return bad(
                    "listen_tls",
                    "tls is set but nothing listens with it: add listen_tls = \"0.0.0.0:5061\""
                        .into(),
                );
            }
            _ => {}
        }
        for (key, v) in [
            ("listen_udp", &self.listen_udp),
            ("listen_tcp", &self.listen_tcp),
            ("listen_tls", &self.listen_tls),
        ] {
            if let Some(v) = v
                && v.parse::<SocketAddr>().is_err()
            {
                return bad(
                    key,
                    format!("`{v}` is not an address:port like \"0.0.0.0:5060\""),
                );
            }
        }
        if self.accounts.is_empty() && !self.allow_unauthenticated {
            return bad(
                "accounts",
                "no accounts: SCAIP units must authenticate; add accounts = [{ user = \"…\", password_file = \"…\" }] (or allow_unauthenticated = true on a closed LAN)".into(),
            );
        }
        let mut users = std::collections::BTreeSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            if a.user.is_empty() || a.user.contains(['"', '\\', ':']) {
                return bad(
                    &format!("accounts[{i}].user"),
                    "must be non-empty, without quotes, backslashes or colons".into(),
                );
            }
            if !users.insert(&a.user) {
                return bad(
                    &format!("accounts[{i}].user"),
                    format!("`{}` is listed twice", a.user),
                );
            }
        }
        if self.digest_algorithms.is_empty() {
            return bad(
                "digest_algorithms",
                "offer at least one of \"MD5\", \"SHA-256\"".into(),
            );
        }
        if let Some(h) = self.heartbeat_interval
            && !(60..=86_400).contains(&h.as_secs())
        {
            return bad("heartbeat_interval", "must be 1 minute to 24 hours".into());
        }
        if self.nonce_lifetime < Duration::from_secs(10) {
            return bad(
                "nonce_lifetime",
                "at least 10s (a unit needs time to answer)".into(),
            );
        }
        if self.max_connections == 0 || self.max_transactions == 0 {
            return bad("max_connections", "limits must be at least 1".into());
        }
        Ok(())
    }

    /// `hbi` in minutes, when configured.
    pub fn hbi_minutes(&self) -> Option<u16> {
        self.heartbeat_interval.map(|d| {
            u16::try_from(d.as_secs() / 60)
                .unwrap_or(1440)
                .clamp(1, 1440)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_adapter_without_accounts_must_say_it_takes_unauthenticated_units() {
        let c = parse("name = \"u\"\nlisten_udp = \"127.0.0.1:5060\"");
        assert_eq!(c.validate().unwrap_err().0, "accounts");
        let c =
            parse("name = \"u\"\nlisten_udp = \"127.0.0.1:5060\"\nallow_unauthenticated = true");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.digest_algorithms, vec![Algorithm::Md5, Algorithm::Sha256]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = parse("name = \"u\"\nlisten_tcp = \"nowhere\"\nallow_unauthenticated = true");
        assert_eq!(c.validate().unwrap_err().0, "listen_tcp");
        let c = parse(
            "name = \"u\"\nlisten_tcp = \"127.0.0.1:1\"\nallow_unauthenticated = true\nheartbeat_interval = \"10s\"",
        );
        assert_eq!(c.validate().unwrap_err().0, "heartbeat_interval");
        assert!(toml::from_str::<Config>("name = \"u\"\nlisten = \"x\"").is_err());
    }

    #[test]
    fn a_tls_listener_and_its_certificate_come_together() {
        let base = "name = \"u\"\nallow_unauthenticated = true\n";
        let c = parse(&format!("{base}listen_tls = \"127.0.0.1:5061\""));
        assert_eq!(c.validate().unwrap_err().0, "tls");
        let c = parse(&format!(
            "{base}listen_udp = \"127.0.0.1:5060\"\ntls = {{ cert_file = \"c\", key_file = \"k\" }}"
        ));
        assert_eq!(c.validate().unwrap_err().0, "listen_tls");
        let c = parse(&format!(
            "{base}listen_tls = \"127.0.0.1:5061\"\ntls = {{ cert_file = \"c\", key_file = \"k\" }}"
        ));
        assert_eq!(c.validate(), Ok(()));
    }
}
