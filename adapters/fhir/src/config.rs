//! `[[sink]] type = "fhir"`: which FHIR server, how to authenticate, and what to send. Every
//! field is part of the user-facing config contract (DESIGN §9).
//!
//! ```toml
//! [[sink]]
//! name = "ehr"
//! type = "fhir"
//! base_url = "https://ehr.example/fhir"    # the FHIR base; transactions are POSTed here
//! token_file = "fhir-ehr.token"            # bearer token (a secret file or systemd credential)
//! # ca_file = "/etc/atgw/ehr-ca.pem"; ca_only = true
//! # send = ["vital_signs", "alerts"]; send_test = false
//! # timeout = "10s"; connect_timeout = "3s"; max_batch = 50
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

pub use atgw_sdk::component::Invalid;

/// Most entries in one transaction, and so the sink's in-flight window. Servers commonly cap
/// a Bundle near a thousand entries; one event may become a few Observations.
pub const MAX_BATCH: usize = 200;

/// What a FHIR sink sends; everything else it receives is answered without sending (routing
/// cannot filter by kind for a sink no route names).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Send {
    /// `vital_sign` events, one Observation per measurement.
    VitalSigns,
    /// Alert lifecycle events (`atgw.alert.*`), one Communication per alert.
    Alerts,
}

/// One FHIR server.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// The sink's name, used in routes, logs, metrics and `/readyz`.
    pub name: String,
    /// The FHIR base URL (`https://ehr.example/fhir`). Must be `https://`, unless `allow_http`
    /// is set and the host is loopback. No `user:password@`, no query.
    pub base_url: String,
    /// File holding the OAuth bearer token sent as `Authorization: Bearer …`. Relative paths
    /// are looked up in `$CREDENTIALS_DIRECTORY` first; refused if other users can read it.
    pub token_file: PathBuf,
    /// A PEM file of CA certificates to trust for this server (a private CA), in addition to
    /// the system store unless `ca_only`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system store. Needs `ca_file`. Default false.
    #[serde(default)]
    pub ca_only: bool,
    /// Permit plain `http://` to a loopback host (a local relay). Default false.
    #[serde(default)]
    pub allow_http: bool,
    /// What to send. Default both: `["vital_signs", "alerts"]`.
    #[serde(default = "default_send")]
    pub send: Vec<Send>,
    /// Also send test data (`data.test`), labelled `HTEST` in `meta.security`. Default false:
    /// a test press or a simulated reading does not belong in a care record.
    #[serde(default)]
    pub send_test: bool,
    /// Longest time for one transaction, from connecting to the end of the response. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest time to establish the connection (TCP and TLS). Default 3s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deliveries per transaction at most (and in flight). Default 50, at most [`MAX_BATCH`].
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_send() -> Vec<Send> {
    vec![Send::VitalSigns, Send::Alerts]
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_max_batch() -> usize {
    50
}

impl FhirConfig {
    /// A config with every optional key at its default.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>, token_file: PathBuf) -> Self {
        FhirConfig {
            name: name.into(),
            base_url: base_url.into(),
            token_file,
            ca_file: None,
            ca_only: false,
            allow_http: false,
            send: default_send(),
            send_test: false,
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            max_batch: default_max_batch(),
        }
    }

    /// Checks everything that can be checked without touching files or the network.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(Invalid::new("name", "must not be empty"));
        }
        self.target()?;
        if self.token_file.as_os_str().is_empty() {
            return Err(Invalid::new(
                "token_file",
                "must name the file holding the bearer token",
            ));
        }
        if self.ca_only && self.ca_file.is_none() {
            return Err(Invalid::new(
                "ca_only",
                "needs `ca_file` (the CA to trust instead of the system store)",
            ));
        }
        if self.send.is_empty() {
            return Err(Invalid::new(
                "send",
                "must name at least one of \"vital_signs\", \"alerts\"",
            ));
        }
        if self.timeout.is_zero() {
            return Err(Invalid::new("timeout", "must be above zero, e.g. \"10s\""));
        }
        if self.connect_timeout.is_zero() {
            return Err(Invalid::new(
                "connect_timeout",
                "must be above zero, e.g. \"3s\"",
            ));
        }
        if self.max_batch == 0 || self.max_batch > MAX_BATCH {
            return Err(Invalid::new(
                "max_batch",
                format!("must be between 1 and {MAX_BATCH}"),
            ));
        }
        Ok(())
    }

    /// Whether this sink sends `what`.
    pub fn sends(&self, what: Send) -> bool {
        self.send.contains(&what)
    }

    /// The parsed `base_url`, checked, without a trailing slash: where transactions go.
    pub fn target(&self) -> Result<Url, Invalid> {
        let shown = atgw_http::config::redact(&self.base_url);
        let mut url = Url::parse(&self.base_url)
            .map_err(|e| Invalid::new("base_url", format!("`{shown}` is not a valid URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                "base_url",
                "must not contain `user:password@`; the token comes from `token_file`",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Invalid::new(
                "base_url",
                "must be the FHIR base alone, without `?…` or `#…`",
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err(Invalid::new("base_url", "has no host"));
        }
        match url.scheme() {
            "https" => {}
            "http" if !self.allow_http => {
                return Err(Invalid::new(
                    "base_url",
                    "must be https:// (set `allow_http = true` only for a server on this machine)",
                ));
            }
            "http" if !is_loopback(&host) => {
                return Err(Invalid::new(
                    "allow_http",
                    format!(
                        "plain http is only allowed to a loopback host (localhost, 127.0.0.1, ::1), not `{host}`; use https://"
                    ),
                ));
            }
            "http" => {}
            other => {
                return Err(Invalid::new(
                    "base_url",
                    format!("scheme `{other}` is not supported; use https://"),
                ));
            }
        }
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        Ok(url)
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "ehr"
        base_url = "https://ehr.example/fhir/"
        token_file = "ehr.token"
    "#;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c: FhirConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(
            c,
            FhirConfig::new("ehr", "https://ehr.example/fhir/", "ehr.token".into())
        );
        assert_eq!(c.send, vec![Send::VitalSigns, Send::Alerts]);
        assert_eq!((c.max_batch, c.send_test), (50, false));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.target().unwrap().as_str(), "https://ehr.example/fhir");
    }

    #[test]
    fn unknown_keys_and_kinds_are_errors() {
        let e = toml::from_str::<FhirConfig>(&format!("{MINIMAL}\ntoken = \"x\"")).unwrap_err();
        assert!(e.to_string().contains("unknown field `token`"), "{e}");
        let e =
            toml::from_str::<FhirConfig>(&format!("{MINIMAL}\nsend = [\"falls\"]")).unwrap_err();
        assert!(e.to_string().contains("vital_signs"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = FhirConfig::new("t", "https://ehr.example/fhir", "t".into());
        type Change = Box<dyn Fn(&mut FhirConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|c| c.name = " ".into())),
            ("base_url", Box::new(|c| c.base_url = "ehr.example".into())),
            (
                "base_url",
                Box::new(|c| c.base_url = "http://127.0.0.1/fhir".into()),
            ),
            (
                "base_url",
                Box::new(|c| c.base_url = "https://u:pw@ehr.example/fhir".into()),
            ),
            (
                "base_url",
                Box::new(|c| c.base_url = "https://ehr.example/fhir?_format=json".into()),
            ),
            (
                "allow_http",
                Box::new(|c| {
                    c.allow_http = true;
                    c.base_url = "http://ehr.example/fhir".into()
                }),
            ),
            ("ca_only", Box::new(|c| c.ca_only = true)),
            ("send", Box::new(|c| c.send.clear())),
            ("timeout", Box::new(|c| c.timeout = Duration::ZERO)),
            ("max_batch", Box::new(|c| c.max_batch = MAX_BATCH + 1)),
        ];
        for (key, change) in cases {
            let mut c = base.clone();
            change(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
        let mut c = base;
        c.allow_http = true;
        c.base_url = "http://127.0.0.1:8080/fhir".into();
        assert_eq!(c.validate(), Ok(()));
    }
}
