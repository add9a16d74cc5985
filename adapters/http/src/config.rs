//! `[[sink]] type = "webhook"`: where events are POSTed and how. Every field is part of the
//! user-facing config contract (DESIGN §9). `type` itself belongs to the core's sink enum
//! (`#[serde(tag = "type")]`), which hands the remaining keys to this struct.
//!
//! ```toml
//! [[sink]]
//! name = "care-platform"
//! type = "webhook"
//! url = "https://care.example/hooks/atgw"
//! secret_file = "webhook-care.secret"     # `whsec_<base64>`, or a raw shared string
//! # ca_file = "/etc/atgw/care-ca.pem"; ca_only = true
//! # cert_file = "/etc/atgw/gw-client.pem"; key_file = "gw-client.key"   # mutual TLS
//! # timeout = "10s"; connect_timeout = "3s"; window = 8
//! # headers = { "x-tenant" = "oakview" }
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// Largest in-flight window accepted; the dispatcher holds that many rows in memory.
pub const MAX_WINDOW: usize = 256;

/// Headers the sink sets itself, or that carry credentials (which belong in files, not in the
/// config text, and would be printed by `check-config`). `content-type` is not here: a
/// receiver that insists on `application/json` may have it.
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// One webhook target.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The sink's name, used in routes, logs, metrics and `/readyz`.
    pub name: String,
    /// Where events are POSTed. Must be `https://`, unless `allow_http` is set and the host is
    /// loopback. No `user:password@` part: credentials do not belong in the config text.
    pub url: String,
    /// File holding the signing secret shared with the receiver: `whsec_<base64>` (Standard
    /// Webhooks; the key is the decoded bytes) or, without that prefix, a raw string used as
    /// the key bytes as they are. Relative paths are looked up in `$CREDENTIALS_DIRECTORY`
    /// first. The file must not be readable by other users.
    pub secret_file: PathBuf,
    /// A PEM file of CA certificates to trust for this receiver, for a private CA. By default
    /// they are trusted in addition to the system store (see `ca_only`). Absent: the system
    /// store only (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only the certificates in `ca_file`, not the system store: pins the receiver to
    /// its private CA. Needs `ca_file`. Default false.
    #[serde(default)]
    pub ca_only: bool,
    /// A PEM file with this gateway's client certificate (and any intermediates), for a
    /// receiver that requires mutual TLS. Needs `key_file` and an `https://` url.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). A secret like
    /// `secret_file`: looked up in `$CREDENTIALS_DIRECTORY` first, refused if other users can
    /// read it, never logged.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Permit a plain `http://` URL. Only accepted for a loopback host (`localhost`,
    /// `127.0.0.0/8`, `::1`), e.g. a local relay; events and signatures would otherwise cross
    /// the network in clear. Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// Longest time for one attempt, from connecting to the end of the response. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest time to establish the connection (TCP and TLS). Default 3s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Static extra headers sent with every request (e.g. a tenant id). Not for secrets:
    /// `authorization`, `cookie` and the `webhook-*` headers are refused. `content-type` may
    /// be overridden for receivers that accept only `application/json`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests in flight at most. Default 8.
    #[serde(default = "default_window")]
    pub window: usize,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_window() -> usize {
    8
}

/// A setting that cannot work, named by its key (the component contract's type: the core
/// reports it as `sink[i].<key>`).
pub use atgw_sdk::component::Invalid;

fn invalid(key: &str, problem: impl Into<String>) -> Invalid {
    Invalid::new(key, problem)
}

impl WebhookConfig {
    /// A config with every optional key at its default.
    pub fn new(name: impl Into<String>, url: impl Into<String>, secret_file: PathBuf) -> Self {
        WebhookConfig {
            name: name.into(),
            url: url.into(),
            secret_file,
            ca_file: None,
            ca_only: false,
            cert_file: None,
            key_file: None,
            allow_http: false,
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            headers: BTreeMap::new(),
            window: default_window(),
        }
    }

    /// Checks everything that can be checked without touching files or the network.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        self.target()?;
        if self.secret_file.as_os_str().is_empty() {
            return Err(invalid(
                "secret_file",
                "must name the file holding the secret",
            ));
        }
        if self.ca_only && self.ca_file.is_none() {
            return Err(invalid(
                "ca_only",
                "needs `ca_file` (the CA to trust instead of the system store)",
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                if self.cert_file.is_some() {
                    "key_file"
                } else {
                    "cert_file"
                },
                "`cert_file` and `key_file` go together (the client certificate and its key)",
            ));
        }
        if self.cert_file.is_some() && self.target()?.scheme() != "https" {
            return Err(invalid(
                "cert_file",
                "a client certificate needs an `https://` url",
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be above zero, e.g. \"10s\""));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid(
                "connect_timeout",
                "must be above zero, e.g. \"3s\"",
            ));
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(invalid(
                "window",
                format!("must be between 1 and {MAX_WINDOW}"),
            ));
        }
        self.header_map()?;
        Ok(())
    }

    /// The parsed `url`, checked: https, or http to loopback with `allow_http`.
    pub fn target(&self) -> Result<Url, Invalid> {
        let url = Url::parse(&self.url).map_err(|e| {
            invalid(
                "url",
                format!("`{}` is not a valid URL: {e}", redact(&self.url)),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "must not contain `user:password@`; the receiver authenticates atgw by the webhook signature",
            ));
        }
        let host = url.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err(invalid("url", "has no host"));
        }
        match url.scheme() {
            "https" => Ok(url),
            "http" if !self.allow_http => Err(invalid(
                "url",
                "must be https:// (set `allow_http = true` only for a receiver on this machine)",
            )),
            "http" if !is_loopback(host) => Err(invalid(
                "allow_http",
                format!(
                    "plain http is only allowed to a loopback host (localhost, 127.0.0.1, ::1), not `{host}`; use https://"
                ),
            )),
            "http" => Ok(url),
            other => Err(invalid(
                "url",
                format!("scheme `{other}` is not supported; use https://"),
            )),
        }
    }

    /// `headers` as a header map, checked.
    pub fn header_map(&self) -> Result<HeaderMap, Invalid> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("headers", format!("`{name}` is not a valid header name")))?;
            if RESERVED_HEADERS.contains(&n.as_str()) {
                return Err(invalid(
                    "headers",
                    format!(
                        "`{name}` cannot be set here: atgw sets it itself, or it carries a credential (which must come from a file)"
                    ),
                ));
            }
            let v = HeaderValue::from_str(value).map_err(|_| {
                invalid(
                    "headers",
                    format!("the value of `{name}` is not a valid header value"),
                )
            })?;
            map.insert(n, v);
        }
        Ok(map)
    }
}

/// True for `localhost` and loopback IP literals (`[::1]` included).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// A URL fit for logs and errors: scheme, host, port and path; never credentials or the query
/// (receivers sometimes put a token there).
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                u.scheme(),
                u.host_str().unwrap_or_default(),
                u.path()
            )
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<WebhookConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    const MINIMAL: &str = r#"
        name = "care"
        url = "https://care.example/hooks"
        secret_file = "care.secret"
    "#;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.window, 8);
        assert!(!c.allow_http && !c.ca_only && c.ca_file.is_none() && c.headers.is_empty());
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c,
            WebhookConfig::new("care", "https://care.example/hooks", "care.secret".into())
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse(&format!("{MINIMAL}\nsecret = \"inline\"")).unwrap_err();
        assert!(e.to_string().contains("unknown field `secret`"), "{e}");
    }

    #[test]
    fn durations_and_headers_parse() {
        let c = parse(&format!(
            "{MINIMAL}\ntimeout = \"15s\"\nconnect_timeout = \"500ms\"\nwindow = 2\nheaders = {{ \"x-tenant\" = \"oakview\" }}"
        ))
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(15));
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.header_map().unwrap()["x-tenant"], "oakview");
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let mut c = WebhookConfig::new("t", "http://127.0.0.1:8080/h", "s".into());
        assert_eq!(c.validate().unwrap_err().key, "url");
        c.allow_http = true;
        assert_eq!(c.validate(), Ok(()));
        for ok in [
            "http://localhost/h",
            "http://[::1]:9/h",
            "http://127.0.0.2/h",
        ] {
            c.url = ok.into();
            assert_eq!(c.validate(), Ok(()), "{ok}");
        }
    }

    #[test]
    fn allow_http_is_refused_for_a_non_loopback_host() {
        for url in [
            "http://care.example/h",
            "http://192.168.1.20/h",
            "http://[2001:db8::1]/h",
            "http://localhost.care.example/h",
        ] {
            let mut c = WebhookConfig::new("t", url, "s".into());
            c.allow_http = true;
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, "allow_http", "{url}");
            assert!(e.problem.contains("loopback"), "{e}");
        }
    }

    #[test]
    fn credentials_in_url_or_headers_are_refused() {
        let c = WebhookConfig::new("t", "https://u:pw@care.example/h", "s".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "url");
        assert!(!e.to_string().contains("pw"));
        let mut c = WebhookConfig::new("t", "https://care.example/h", "s".into());
        for h in ["Authorization", "webhook-id", "Cookie"] {
            c.headers = [(h.to_owned(), "x".to_owned())].into();
            assert_eq!(c.validate().unwrap_err().key, "headers", "{h}");
        }
        c.headers = [("content-type".to_owned(), "application/json".to_owned())].into();
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = WebhookConfig::new("t", "https://care.example/h", "s".into());
        type Change = Box<dyn Fn(&mut WebhookConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|c| c.name = " ".into())),
            ("url", Box::new(|c| c.url = "care.example/h".into())),
            ("url", Box::new(|c| c.url = "ftp://care.example/h".into())),
            ("ca_only", Box::new(|c| c.ca_only = true)),
            ("timeout", Box::new(|c| c.timeout = Duration::ZERO)),
            (
                "connect_timeout",
                Box::new(|c| c.connect_timeout = Duration::ZERO),
            ),
            ("window", Box::new(|c| c.window = 0)),
            ("window", Box::new(|c| c.window = MAX_WINDOW + 1)),
        ];
        for (key, change) in cases {
            let mut c = base.clone();
            change(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
    }

    #[test]
    fn redaction_drops_credentials_and_query() {
        assert_eq!(
            redact("https://u:p@care.example:8443/h/x?token=abc"),
            "https://care.example:8443/h/x"
        );
    }
}
