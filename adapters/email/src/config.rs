//! `[[sink]] type = "email"`: which server, how the link is protected, who is told. Every field
//! is part of the user-facing config contract (DESIGN §9). `type` itself belongs to the core's
//! sink enum (`#[serde(tag = "type")]`), which hands the remaining keys to this struct.
//!
//! ```toml
//! [[sink]]
//! name = "night-team-mail"
//! type = "email"
//! host = "smtp.oakview.example"
//! # port = 587; tls = "starttls"          # or "implicit" (SMTPS, 465); "none" only to loopback
//! # ca_file = "/etc/atgw/smtp-ca.pem"; ca_only = true
//! username = "atgw@oakview.example"
//! password_file = "smtp-password"        # a secret: mode 600, or a systemd credential
//! from = "Oakview alerts <atgw@oakview.example>"
//! to = ["night-team@oakview.example", "duty-manager@oakview.example"]
//! # timeout = "30s"; window = 4
//! # bundle_window = "2m"                 # off by default; see [`atgw_sdk::bundle`]
//! # bundle_priorities = ["medium", "low"]; bundle_max = 10
//! ```
//!
//! The recipients live here and only here: they are never put in events, and logs and health
//! name only how many there are.

use std::path::PathBuf;
use std::time::Duration;

use atgw_sdk::Priority;
use atgw_sdk::bundle::BundlePolicy;
use lettre::message::Mailbox;
use serde::Deserialize;

pub use atgw_sdk::component::Invalid;

/// Largest in-flight window accepted: one SMTP connection per delivery in flight, and mail
/// servers limit connections per client.
pub const MAX_WINDOW: usize = 32;

/// Most recipients one sink takes: a care team's list, not a mailing list (a longer list
/// belongs in a list address the server expands).
pub const MAX_RECIPIENTS: usize = 50;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connect, then `STARTTLS` (RFC 3207), required: a server that does not offer it
    /// gets nothing. Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, RFC 8314). Port 465 by default.
    Implicit,
    /// No TLS at all: only to a relay on this machine (loopback). Port 25 by default.
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
            TlsMode::None => "none",
        }
    }

    /// The port a server listens on for this mode (RFC 6409 submission, RFC 8314 SMTPS, and
    /// plain SMTP for a local relay).
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        }
    }
}

/// One email sink: a server and the people its messages go to.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The sink's name, used in routes, logs, metrics and `/readyz`.
    pub name: String,
    /// The SMTP server (submission service): a host name or an IP address. Its certificate
    /// must be valid for this name.
    pub host: String,
    /// Default: 587 for `starttls`, 465 for `implicit`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `implicit` or `none` (only to a loopback host).
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM file of CA certificates to trust for this server, for a private CA; in addition
    /// to the system store unless `ca_only`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system store: pins the server to its private CA.
    #[serde(default)]
    pub ca_only: bool,
    /// The account for SMTP AUTH (PLAIN or LOGIN, always inside TLS unless the server is on
    /// loopback). Needs `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the account's password: a secret (mode 600; a relative name is looked up
    /// in `$CREDENTIALS_DIRECTORY` first), never logged.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The sender: `alerts@site.example` or `Oakview alerts <alerts@site.example>`. Its domain
    /// also names the messages (`Message-ID`), so mail clients thread each alert's messages.
    pub from: String,
    /// Who is always told. They stay in this file; logs name only how many. May be empty when
    /// the sink is used by routes that name a team (its people on shift are told, with the
    /// `email` address of their `[[person]]` entry).
    #[serde(default)]
    pub to: Vec<String>,
    /// Longest time for one attempt, from connecting to the server's answer to the message
    /// (also the wait for any single reply). Default 30s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Messages being sent at once (one connection each). Default 4.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Hold notifications to the same people this long after the first, and send them as one
    /// message. Default 0: off, every notification is its own message.
    #[serde(default, with = "humantime_serde")]
    pub bundle_window: Duration,
    /// Priorities that may be held for a bundle. Default medium and low: a high-priority
    /// notification is never delayed unless listed here.
    #[serde(default = "atgw_sdk::bundle::default_priorities")]
    pub bundle_priorities: Vec<Priority>,
    /// Notifications held at most; reaching it sends the oldest bundle. Default 10.
    #[serde(default = "default_bundle_max")]
    pub bundle_max: usize,
}

fn default_bundle_max() -> usize {
    atgw_sdk::bundle::DEFAULT_MAX
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_window() -> usize {
    4
}

fn invalid(key: &str, problem: impl Into<String>) -> Invalid {
    Invalid::new(key, problem)
}

impl EmailConfig {
    /// A config with every optional key at its default.
    pub fn new(
        name: impl Into<String>,
        host: impl Into<String>,
        from: impl Into<String>,
        to: Vec<String>,
    ) -> Self {
        EmailConfig {
            name: name.into(),
            host: host.into(),
            port: None,
            tls: TlsMode::default(),
            ca_file: None,
            ca_only: false,
            username: None,
            password_file: None,
            from: from.into(),
            to,
            timeout: default_timeout(),
            window: default_window(),
            bundle_window: Duration::ZERO,
            bundle_priorities: atgw_sdk::bundle::default_priorities(),
            bundle_max: default_bundle_max(),
        }
    }

    /// The bundling keys as one policy.
    pub fn bundling(&self) -> BundlePolicy {
        BundlePolicy {
            window: self.bundle_window,
            priorities: self.bundle_priorities.clone(),
            max: self.bundle_max,
        }
    }

    /// The port in use: the configured one or the mode's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.tls.default_port())
    }

    /// Checks everything that can be checked without touching files or the network.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if !is_host(&self.host) {
            return Err(invalid(
                "host",
                "must be a host name or an IP address (no scheme, port or path), e.g. \"smtp.site.example\"",
            ));
        }
        if self.port == Some(0) {
            return Err(invalid("port", "must be between 1 and 65535"));
        }
        if self.tls == TlsMode::None && !atgw_sdk::audit::is_loopback_host(&self.host) {
            return Err(invalid(
                "tls",
                format!(
                    "\"none\" (no encryption) is only allowed to a relay on this machine (localhost, 127.0.0.1, ::1), not `{}`; alerts and the password would cross the network in clear. Use \"starttls\" or \"implicit\"",
                    self.host
                ),
            ));
        }
        if self.ca_only && self.ca_file.is_none() {
            return Err(invalid(
                "ca_only",
                "needs `ca_file` (the CA to trust instead of the system store)",
            ));
        }
        if self.tls == TlsMode::None && self.ca_file.is_some() {
            return Err(invalid(
                "ca_file",
                "has no use with tls = \"none\" (there is no TLS to check)",
            ));
        }
        match (&self.username, &self.password_file) {
            (Some(u), Some(_)) if u.trim().is_empty() || u.chars().any(char::is_control) => {
                return Err(invalid("username", "must be a non-empty account name"));
            }
            (Some(_), None) => {
                return Err(invalid(
                    "password_file",
                    "`username` needs `password_file` (the file holding the account's password)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "username",
                    "`password_file` needs `username` (the account to log in as)",
                ));
            }
            _ => {}
        }
        if let Some(p) = &self.password_file
            && p.as_os_str().is_empty()
        {
            return Err(invalid(
                "password_file",
                "must name the file holding the password",
            ));
        }
        self.sender()?;
        self.recipients()?;
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be above zero, e.g. \"30s\""));
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(invalid(
                "window",
                format!("must be between 1 and {MAX_WINDOW}"),
            ));
        }
        self.bundling()
            .validate()
            .map_err(|(key, problem)| invalid(key, problem))?;
        Ok(())
    }

    /// `from`, parsed.
    pub fn sender(&self) -> Result<Mailbox, Invalid> {
        self.from.parse::<Mailbox>().map_err(|_| {
            invalid(
                "from",
                "is not an email address; write `alerts@site.example` or `Site alerts <alerts@site.example>`",
            )
        })
    }

    /// `to`, parsed. A bad entry is named by its index, not echoed (addresses stay in the
    /// config file).
    pub fn recipients(&self) -> Result<Vec<Mailbox>, Invalid> {
        if self.to.len() > MAX_RECIPIENTS {
            return Err(invalid(
                "to",
                format!(
                    "lists {} addresses; at most {MAX_RECIPIENTS} (use a list address the mail server expands)",
                    self.to.len()
                ),
            ));
        }
        self.to
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.parse::<Mailbox>()
                    .map_err(|_| invalid(&format!("to[{i}]"), "is not an email address"))
            })
            .collect()
    }
}

/// A DNS name (letters, digits, `-`, `.`) or an IP literal (IPv6 with or without brackets).
fn is_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<EmailConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    const MINIMAL: &str = r#"
        name = "night-team"
        host = "smtp.oakview.example"
        from = "atgw@oakview.example"
        to = ["night@oakview.example"]
    "#;

    fn base() -> EmailConfig {
        EmailConfig::new(
            "t",
            "smtp.oakview.example",
            "atgw@oakview.example",
            vec!["night@oakview.example".into()],
        )
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.tls, TlsMode::Starttls);
        assert_eq!(c.port(), 587);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.window, 4);
        assert_eq!(c.bundle_window, Duration::ZERO);
        assert_eq!(c.bundle_priorities, [Priority::Medium, Priority::Low]);
        assert!(!c.bundling().is_on());
        assert!(c.ca_file.is_none() && !c.ca_only && c.username.is_none());
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c,
            EmailConfig::new(
                "night-team",
                "smtp.oakview.example",
                "atgw@oakview.example",
                vec!["night@oakview.example".into()]
            )
        );
    }

    #[test]
    fn bundling_is_configured_by_window_and_priorities() {
        let c = parse(&format!(
            "{MINIMAL}\nbundle_window = \"2m\"\nbundle_priorities = [\"high\", \"medium\"]"
        ))
        .unwrap();
        assert_eq!(c.bundle_window, Duration::from_secs(120));
        assert!(c.bundling().may_hold(Priority::High));
        assert!(!c.bundling().may_hold(Priority::Low));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn each_mode_has_its_port_unless_one_is_given() {
        let c = parse(&format!("{MINIMAL}\ntls = \"implicit\"")).unwrap();
        assert_eq!(c.port(), 465);
        let c = parse(&format!("{MINIMAL}\ntls = \"implicit\"\nport = 2465")).unwrap();
        assert_eq!(c.port(), 2465);
    }

    #[test]
    fn unknown_keys_and_modes_are_errors() {
        let e = parse(&format!("{MINIMAL}\npassword = \"inline\"")).unwrap_err();
        assert!(e.to_string().contains("unknown field `password`"), "{e}");
        let e = parse(&format!("{MINIMAL}\ntls = \"ssl\"")).unwrap_err();
        assert!(e.to_string().contains("starttls"), "{e}");
    }

    #[test]
    fn plaintext_is_refused_for_a_non_loopback_host_naming_tls() {
        for host in [
            "smtp.oakview.example",
            "192.168.1.20",
            "2001:db8::1",
            "localhost.evil.example",
        ] {
            let mut c = base();
            c.host = host.into();
            c.tls = TlsMode::None;
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, "tls", "{host}");
            assert!(
                e.problem.contains("loopback") || e.problem.contains("this machine"),
                "{e}"
            );
        }
        for host in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            let mut c = base();
            c.host = host.into();
            c.tls = TlsMode::None;
            assert_eq!(c.validate(), Ok(()), "{host}");
            assert_eq!(c.port(), 25);
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        type Change = Box<dyn Fn(&mut EmailConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|c| c.name = " ".into())),
            ("host", Box::new(|c| c.host = "smtp://smtp.example".into())),
            ("host", Box::new(|c| c.host = "smtp.example:587".into())),
            ("host", Box::new(|c| c.host = String::new())),
            ("port", Box::new(|c| c.port = Some(0))),
            ("ca_only", Box::new(|c| c.ca_only = true)),
            ("password_file", Box::new(|c| c.username = Some("u".into()))),
            ("username", Box::new(|c| c.password_file = Some("p".into()))),
            ("from", Box::new(|c| c.from = "not an address".into())),
            ("to[1]", Box::new(|c| c.to.push("nobody".into()))),
            (
                "to",
                Box::new(|c| c.to = vec!["a@b.example".into(); MAX_RECIPIENTS + 1]),
            ),
            ("timeout", Box::new(|c| c.timeout = Duration::ZERO)),
            ("window", Box::new(|c| c.window = 0)),
            ("window", Box::new(|c| c.window = MAX_WINDOW + 1)),
            (
                "bundle_window",
                Box::new(|c| c.bundle_window = Duration::from_secs(3600)),
            ),
            ("bundle_max", Box::new(|c| c.bundle_max = 1)),
            (
                "bundle_priorities",
                Box::new(|c| {
                    c.bundle_window = Duration::from_secs(60);
                    c.bundle_priorities.clear();
                }),
            ),
            (
                "ca_file",
                Box::new(|c| {
                    c.host = "127.0.0.1".into();
                    c.tls = TlsMode::None;
                    c.ca_file = Some("ca.pem".into());
                }),
            ),
        ];
        for (key, change) in cases {
            let mut c = base();
            change(&mut c);
            assert_eq!(c.validate().map_err(|e| e.key), Err(key.to_owned()));
        }
    }

    #[test]
    fn a_bad_recipient_is_named_by_index_not_echoed() {
        let mut c = base();
        c.to.push("carer-at-oakview".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "to[1]");
        assert!(!e.to_string().contains("carer-at-oakview"), "{e}");
    }

    #[test]
    fn a_display_name_in_from_and_to_is_accepted() {
        let mut c = base();
        c.from = "Oakview alerts <atgw@oakview.example>".into();
        c.to = vec!["Night team <night@oakview.example>".into()];
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.sender().unwrap().email.domain(), "oakview.example");
    }
}
