//! `[[adapter]] type = "http"`: the listener, its limits, and the routes. Every key is part of
//! the user-facing config contract (README, "HTTP ingest").
//!
//! ```toml
//! [[adapter]]
//! name = "clouds"
//! type = "http"
//! listen = "0.0.0.0:8443"
//! tls = { cert_file = "/etc/atgw/ingest.pem", key_file = "ingest.key" }
//! # client_ca_file = "/etc/atgw/vendors-ca.pem" in `tls`: require client certificates
//! # plaintext_behind_proxy = true   (instead of `tls`: a TLS-terminating proxy in front)
//!
//! [[adapter.route]]
//! path = "/netlia"
//! profiles = ["netlia"]
//! auth = { scheme = "api_key", header = "x-api-key", secret_file = "netlia.key" }
//! dedupe = "EventId"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use atgw_sdk::component::Invalid;
use serde::Deserialize;

/// The adapter instance.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The instance's name (events' `device.adapter`, logs, metrics).
    pub name: String,
    /// `host:port` to listen on.
    pub listen: String,
    /// TLS on the listener. Required unless `plaintext_behind_proxy`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// No TLS here because a reverse proxy in front terminates it. `atgw audit` fails this
    /// unless `listen` is a loopback address (a proxy on the same box).
    #[serde(default)]
    pub plaintext_behind_proxy: bool,
    /// A request body larger than this is answered `413` unread.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests per second one client address may make (a bucket of one second's worth);
    /// more are answered `429` with `Retry-After: 1`. Behind a proxy every request comes from
    /// the proxy's address, so raise it there.
    #[serde(default = "default_requests_per_sec")]
    pub requests_per_sec: u32,
    /// A connection silent this long is closed.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Routes, by path prefix; the longest matching `path` takes a request.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// `tls = { … }` on the listener.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key (a secret file).
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, every client must present a certificate signed by one.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// `[[adapter.route]]`: one vendor cloud (or a FHIR client) and how it proves who it is.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, e.g. `/netlia`: takes `/netlia` and `/netlia/…`.
    pub path: String,
    /// `profiles` (default): the body is JSON mapped by `profiles`, with the request's path
    /// as the profiles' topic (see `topic`). `fhir`: FHIR R4 Observations or Bundles.
    #[serde(default)]
    pub format: Format,
    /// Device profiles tried in order (first match wins), as for the MQTT adapter.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// What the profiles see as the topic of a request to `path`: this, then the rest of the
    /// request path. Default: `path` without its leading `/`, so `/netlia/1/x` is
    /// `netlia/1/x`. Set it to mount a shipped profile elsewhere: `path = "/cloud/n"`,
    /// `topic = "netlia"`.
    #[serde(default)]
    pub topic: Option<String>,
    /// How a request proves it comes from the vendor.
    pub auth: AuthConfig,
    /// Path to the vendor's own event id (`EventId`, `@header.webhook-id`): a retry with the
    /// same id within `dedupe_window` is journaled once and answered 2xx again. Default for
    /// `standard_webhooks`: `@header.webhook-id`.
    #[serde(default)]
    pub dedupe: Option<String>,
    /// How long a vendor retries (Netlia: 10 × 5 s; Standard Webhooks senders: days); at most
    /// the journal's `dedupe_window`.
    #[serde(default = "default_dedupe_window", with = "humantime_serde")]
    pub dedupe_window: Duration,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Profiles,
    Fhir,
}

/// `auth = { scheme = "…", … }`. Every secret is a file (or a systemd credential).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp` (within `tolerance`) and
    /// `webhook-signature` (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`). The secret is
    /// `whsec_<base64>`.
    StandardWebhooks {
        secret_file: PathBuf,
        #[serde(default = "default_tolerance", with = "humantime_serde")]
        tolerance: Duration,
    },
    /// GitHub-style: `header` carries `prefix` + hex HMAC-SHA256 of the body (PureLife:
    /// `x-purelife-cloud-signature: sha256=…`). No timestamp, so a captured request can be
    /// replayed; the dedupe id then journals it once.
    HmacSha256 {
        secret_file: PathBuf,
        header: String,
        #[serde(default = "default_hmac_prefix")]
        prefix: String,
    },
    /// A timestamp header and a hex HMAC-SHA256 of `"{timestamp}.{body}"` (Novee:
    /// `x-timestamp` in milliseconds, `x-signature`).
    TimestampedHmac {
        secret_file: PathBuf,
        #[serde(default = "default_signature_header")]
        signature_header: String,
        #[serde(default = "default_timestamp_header")]
        timestamp_header: String,
        #[serde(default)]
        timestamp_unit: TimestampUnit,
        #[serde(default = "default_tolerance", with = "humantime_serde")]
        tolerance: Duration,
    },
    /// `Authorization: Bearer <token>`; the file holds the token.
    Bearer { secret_file: PathBuf },
    /// A header (default `x-api-key`) holding the key in the file.
    ApiKey {
        secret_file: PathBuf,
        #[serde(default = "default_api_key_header")]
        header: String,
    },
    /// `Authorization: Basic`; the file holds the password.
    Basic { user: String, secret_file: PathBuf },
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimestampUnit {
    #[default]
    Milliseconds,
    Seconds,
}

impl AuthConfig {
    pub fn scheme(&self) -> &'static str {
        match self {
            AuthConfig::StandardWebhooks { .. } => "standard_webhooks",
            AuthConfig::HmacSha256 { .. } => "hmac_sha256",
            AuthConfig::TimestampedHmac { .. } => "timestamped_hmac",
            AuthConfig::Bearer { .. } => "bearer",
            AuthConfig::ApiKey { .. } => "api_key",
            AuthConfig::Basic { .. } => "basic",
        }
    }

    pub fn secret_file(&self) -> &PathBuf {
        match self {
            AuthConfig::StandardWebhooks { secret_file, .. }
            | AuthConfig::HmacSha256 { secret_file, .. }
            | AuthConfig::TimestampedHmac { secret_file, .. }
            | AuthConfig::Bearer { secret_file }
            | AuthConfig::ApiKey { secret_file, .. }
            | AuthConfig::Basic { secret_file, .. } => secret_file,
        }
    }

    pub fn secret_file_mut(&mut self) -> &mut PathBuf {
        match self {
            AuthConfig::StandardWebhooks { secret_file, .. }
            | AuthConfig::HmacSha256 { secret_file, .. }
            | AuthConfig::TimestampedHmac { secret_file, .. }
            | AuthConfig::Bearer { secret_file }
            | AuthConfig::ApiKey { secret_file, .. }
            | AuthConfig::Basic { secret_file, .. } => secret_file,
        }
    }

    /// The dedupe path a scheme implies when the route names none.
    pub fn default_dedupe(&self) -> Option<&'static str> {
        match self {
            AuthConfig::StandardWebhooks { .. } => Some("@header.webhook-id"),
            _ => None,
        }
    }
}

fn default_max_body_bytes() -> usize {
    256 * 1024
}
fn default_max_connections() -> usize {
    256
}
fn default_requests_per_sec() -> u32 {
    50
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_dedupe_window() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}
fn default_hmac_prefix() -> String {
    "sha256=".into()
}
fn default_signature_header() -> String {
    "x-signature".into()
}
fn default_timestamp_header() -> String {
    "x-timestamp".into()
}
fn default_api_key_header() -> String {
    "x-api-key".into()
}

/// Largest body accepted at all (`max_body_bytes` is refused above it).
pub const MAX_BODY_LIMIT: usize = 16 * 1024 * 1024;

impl Config {
    /// A config with every default, listening on `listen` behind a proxy and with no routes.
    pub fn new(name: impl Into<String>, listen: impl Into<String>) -> Config {
        Config {
            name: name.into(),
            listen: listen.into(),
            tls: None,
            plaintext_behind_proxy: true,
            max_body_bytes: default_max_body_bytes(),
            max_connections: default_max_connections(),
            requests_per_sec: default_requests_per_sec(),
            idle_timeout: default_idle_timeout(),
            routes: Vec::new(),
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, Invalid> {
        self.listen.parse().map_err(|_| {
            Invalid::new(
                "listen",
                format!(
                    "`{}` is not an address and port, e.g. \"0.0.0.0:8443\"",
                    self.listen
                ),
            )
        })
    }

    /// Checks the values (no files are read).
    pub fn validate(&self) -> Result<(), Invalid> {
        self.listen_addr()?;
        match (&self.tls, self.plaintext_behind_proxy) {
            (None, false) => {
                return Err(Invalid::new(
                    "tls",
                    "the listener needs `tls = { cert_file, key_file }`, or `plaintext_behind_proxy = true` when a TLS-terminating proxy is in front",
                ));
            }
            (Some(_), true) => {
                return Err(Invalid::new(
                    "plaintext_behind_proxy",
                    "set either `tls` or `plaintext_behind_proxy`, not both",
                ));
            }
            _ => {}
        }
        if !(1024..=MAX_BODY_LIMIT).contains(&self.max_body_bytes) {
            return Err(Invalid::new(
                "max_body_bytes",
                format!("must be from 1024 to {MAX_BODY_LIMIT}"),
            ));
        }
        if self.max_connections == 0 {
            return Err(Invalid::new("max_connections", "must be at least 1"));
        }
        if self.requests_per_sec == 0 {
            return Err(Invalid::new("requests_per_sec", "must be at least 1"));
        }
        if self.routes.is_empty() {
            return Err(Invalid::new(
                "route",
                "no `[[adapter.route]]`: the adapter would answer every request 404",
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("route[{i}].{k}");
            if !r.path.starts_with('/')
                || r.path.len() > 1 && r.path.ends_with('/')
                || r.path.contains(['?', '#', '{', '}', '+'])
                || r.path.split('/').any(|s| s == "." || s == "..")
            {
                return Err(Invalid::new(
                    key("path"),
                    format!(
                        "`{}` is not a path prefix like \"/netlia\" (starts with `/`, no trailing `/`, no `?`, `#`, `{{}}`, `+`, `.` or `..` parts)",
                        r.path
                    ),
                ));
            }
            if let Some(t) = &r.topic
                && (t.is_empty()
                    || t.starts_with('/')
                    || t.ends_with('/')
                    || t.contains(['+', '#']))
            {
                return Err(Invalid::new(
                    key("topic"),
                    format!(
                        "`{t}` is not a topic prefix like \"netlia\" (no leading or trailing `/`, no `+` or `#`)"
                    ),
                ));
            }
            if let Some(j) = self.routes[..i].iter().position(|o| o.path == r.path) {
                return Err(Invalid::new(
                    key("path"),
                    format!("`{}` is also route[{j}]'s path", r.path),
                ));
            }
            match r.format {
                Format::Profiles if r.profiles.is_empty() => {
                    return Err(Invalid::new(
                        key("profiles"),
                        "a profiles route needs at least one profile",
                    ));
                }
                Format::Fhir if !r.profiles.is_empty() => {
                    return Err(Invalid::new(
                        key("profiles"),
                        "a fhir route maps FHIR itself; it takes no profiles",
                    ));
                }
                _ => {}
            }
            let header_ok = |h: &str| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            };
            let headers: Vec<&str> = match &r.auth {
                AuthConfig::HmacSha256 { header, .. } | AuthConfig::ApiKey { header, .. } => {
                    vec![header]
                }
                AuthConfig::TimestampedHmac {
                    signature_header,
                    timestamp_header,
                    ..
                } => vec![signature_header, timestamp_header],
                _ => Vec::new(),
            };
            if let Some(bad) = headers.iter().find(|h| !header_ok(h)) {
                return Err(Invalid::new(
                    key("auth"),
                    format!("header `{bad}` must be a lower-case header name like \"x-api-key\""),
                ));
            }
            if let AuthConfig::Basic { user, .. } = &r.auth
                && (user.is_empty() || user.contains(':'))
            {
                return Err(Invalid::new(
                    key("auth.user"),
                    "must be non-empty and contain no `:`",
                ));
            }
            if r.dedupe_window.is_zero() {
                return Err(Invalid::new(key("dedupe_window"), "must be more than 0s"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| e.to_string())
    }

    const ROUTE: &str = r#"
[[route]]
path = "/netlia"
profiles = ["netlia"]
auth = { scheme = "api_key", secret_file = "k" }
"#;

    #[test]
    fn a_listener_needs_tls_or_an_explicit_proxy() {
        let c = parse(&format!(
            "name = \"c\"\nlisten = \"127.0.0.1:8443\"\n{ROUTE}"
        ))
        .unwrap();
        assert_eq!(c.validate().unwrap_err().key, "tls");
        let c = parse(&format!(
            "name = \"c\"\nlisten = \"127.0.0.1:8443\"\nplaintext_behind_proxy = true\n{ROUTE}"
        ))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.routes[0].auth.scheme(), "api_key");
    }

    #[test]
    fn routes_are_checked() {
        let base = "name = \"c\"\nlisten = \"127.0.0.1:1\"\nplaintext_behind_proxy = true\n";
        for (route, key) in [
            (
                "path = \"netlia\"\nprofiles = [\"n\"]\nauth = { scheme = \"bearer\", secret_file = \"k\" }",
                "route[0].path",
            ),
            (
                "path = \"/a/../b\"\nprofiles = [\"n\"]\nauth = { scheme = \"bearer\", secret_file = \"k\" }",
                "route[0].path",
            ),
            (
                "path = \"/a\"\nauth = { scheme = \"bearer\", secret_file = \"k\" }",
                "route[0].profiles",
            ),
            (
                "path = \"/a\"\nformat = \"fhir\"\nprofiles = [\"n\"]\nauth = { scheme = \"bearer\", secret_file = \"k\" }",
                "route[0].profiles",
            ),
            (
                "path = \"/a\"\nprofiles = [\"n\"]\nauth = { scheme = \"api_key\", header = \"X-Key\", secret_file = \"k\" }",
                "route[0].auth",
            ),
            (
                "path = \"/a\"\nprofiles = [\"n\"]\nauth = { scheme = \"basic\", user = \"a:b\", secret_file = \"k\" }",
                "route[0].auth.user",
            ),
        ] {
            let c = parse(&format!("{base}[[route]]\n{route}\n")).unwrap();
            assert_eq!(c.validate().unwrap_err().key, key, "{route}");
        }
        assert!(parse(&format!("{base}[[route]]\npath = \"/a\"\nprofiles = [\"n\"]\nauth = {{ scheme = \"none\" }}\n")).is_err(), "there is no unauthenticated scheme");
        let c = parse(base).unwrap();
        assert_eq!(c.validate().unwrap_err().key, "route");
    }
}
