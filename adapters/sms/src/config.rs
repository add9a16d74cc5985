//! `[[sink]] type = "sms"`: which SMSC, which account, who is texted. Every field is part of the
//! user-facing config contract (DESIGN §9). `type` itself belongs to the core's sink enum.
//!
//! ```toml
//! [[sink]]
//! name = "night-carers"
//! type = "sms"
//! host = "smsc.example.net"          # the SMSC (SMPP 3.4 over TLS by default, port 3550)
//! system_id = "oakview-gw"
//! password_file = "smsc.password"     # the bind password (at most 8 characters)
//! source_addr = "Oakview"             # sender: an alphanumeric id (<= 11) or +number
//! to = ["+447700900123", "+447700900456"]
//! # port = 3550; tls = true; ca_file = "/etc/atgw/smsc-ca.pem"; system_type = ""
//! # bind = "transceiver"; window = 10; enquire_link = "30s"; response_timeout = "10s"
//! # connect_timeout = "5s"; permanent_retry_after = "5m"; event_id_tag = 5120
//! # bundle_window = "2m"; bundle_priorities = ["medium", "low"]; bundle_max = 10   # off by default
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use atgw_sdk::component::Invalid;

/// Largest in-flight window accepted.
pub const MAX_WINDOW: usize = 64;
/// Most recipients per sink (each delivery is one `submit_sm` each).
pub const MAX_RECIPIENTS: usize = 32;

/// How the sink binds: transceiver takes delivery receipts on the same session.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// `bind_transceiver`: submits and receipts on one session (the default).
    #[default]
    Transceiver,
    /// `bind_transmitter`: submits only; the SMSC cannot send receipts on this session.
    Transmitter,
}

/// One SMPP account and its recipients.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The sink's name, used in routes, logs, metrics and `/readyz`.
    pub name: String,
    /// The SMSC's host name or address.
    pub host: String,
    /// Its SMPP port. Default 3550 with TLS, 2775 without (the IANA ports).
    #[serde(default)]
    pub port: Option<u16>,
    /// TLS to the SMSC (rustls). Default true. `false` is accepted for a loopback host (a
    /// local relay) or, explicitly set, for an SMSC on a private link; `atgw audit` warns.
    #[serde(default = "yes")]
    pub tls: bool,
    /// A PEM bundle of CA certificates for the SMSC, trusted instead of the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The account (SMPP `system_id`, at most 15 characters).
    pub system_id: String,
    /// File holding the bind password (SMPP allows at most 8 characters). Relative paths are
    /// looked up in `$CREDENTIALS_DIRECTORY` first; must not be readable by other users; never
    /// logged.
    pub password_file: PathBuf,
    /// SMPP `system_type`, when the SMSC asks for one (at most 12 characters). Default empty.
    #[serde(default)]
    pub system_type: String,
    /// `transceiver` (default; delivery receipts come back on the session) or `transmitter`.
    #[serde(default)]
    pub bind: BindMode,
    /// The sender shown on the handset: `+` and digits (an international number), digits (a
    /// short code) or up to 11 letters and digits (an alphanumeric sender id).
    pub source_addr: String,
    /// Who is always texted: international numbers, `+` and 7–15 digits (E.164). They live
    /// only here: logs show how many, or a masked form (`+4477…23`). May be empty when the sink
    /// is used by routes that name a team (its people on shift are texted at the `sms` number
    /// of their `[[person]]` entry).
    #[serde(default)]
    pub to: Vec<String>,
    /// `submit_sm`s awaiting their response at most, and deliveries in flight. Default 10.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Idle time after which an `enquire_link` checks the session. Default 30s.
    #[serde(default = "default_enquire_link", with = "humantime_serde")]
    pub enquire_link: Duration,
    /// Longest wait for any response (bind, submit, enquire_link) before the session is
    /// dropped and rebuilt. Default 10s.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Longest time to establish TCP and TLS. Default 5s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Back-off before a delivery the SMSC refused for good (a bad number, a barred sender)
    /// is offered again. The outbox escalates the alert to the next tier after repeated
    /// failures either way. Default 5m.
    #[serde(default = "default_permanent_retry", with = "humantime_serde")]
    pub permanent_retry_after: Duration,
    /// A vendor-specific optional parameter tag (0x1400–0x3FFF) under which each `submit_sm`
    /// carries the event id, for an SMSC or relay that deduplicates on it. Absent (the
    /// default): not sent, since some SMSCs refuse parameters they do not know.
    #[serde(default)]
    pub event_id_tag: Option<u16>,
    /// Hold notifications to the same numbers this long after the first and send them as one
    /// text ("3 alerts: …"). Default 0: off. See [`atgw_sdk::bundle`].
    #[serde(default, with = "humantime_serde")]
    pub bundle_window: Duration,
    /// Priorities that may be held. Default medium and low: high is never delayed unless
    /// listed.
    #[serde(default = "atgw_sdk::bundle::default_priorities")]
    pub bundle_priorities: Vec<atgw_sdk::Priority>,
    /// Notifications held at most; reaching it sends the oldest bundle. Default 10.
    #[serde(default = "default_bundle_max")]
    pub bundle_max: usize,
}

fn default_bundle_max() -> usize {
    atgw_sdk::bundle::DEFAULT_MAX
}

fn yes() -> bool {
    true
}
fn default_window() -> usize {
    10
}
fn default_enquire_link() -> Duration {
    Duration::from_secs(30)
}
fn default_response_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_permanent_retry() -> Duration {
    Duration::from_secs(300)
}

fn invalid(key: &str, problem: impl Into<String>) -> Invalid {
    Invalid::new(key, problem)
}

/// SMPP `source_addr` TON/NPI for a sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbering {
    pub ton: u8,
    pub npi: u8,
}

impl SmsConfig {
    /// A config with every optional key at its default.
    pub fn new(
        name: impl Into<String>,
        host: impl Into<String>,
        system_id: impl Into<String>,
        password_file: PathBuf,
        source_addr: impl Into<String>,
        to: Vec<String>,
    ) -> Self {
        SmsConfig {
            name: name.into(),
            host: host.into(),
            port: None,
            tls: true,
            ca_file: None,
            system_id: system_id.into(),
            password_file,
            system_type: String::new(),
            bind: BindMode::default(),
            source_addr: source_addr.into(),
            to,
            window: default_window(),
            enquire_link: default_enquire_link(),
            response_timeout: default_response_timeout(),
            connect_timeout: default_connect_timeout(),
            permanent_retry_after: default_permanent_retry(),
            event_id_tag: None,
            bundle_window: Duration::ZERO,
            bundle_priorities: atgw_sdk::bundle::default_priorities(),
            bundle_max: default_bundle_max(),
        }
    }

    /// The bundling keys as one policy.
    pub fn bundling(&self) -> atgw_sdk::bundle::BundlePolicy {
        atgw_sdk::bundle::BundlePolicy {
            window: self.bundle_window,
            priorities: self.bundle_priorities.clone(),
            max: self.bundle_max,
        }
    }

    /// The port, defaulted by `tls`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 3550 } else { 2775 })
    }

    /// True when `host` is this machine.
    pub fn is_loopback(&self) -> bool {
        atgw_sdk::audit::is_loopback_host(&self.host)
    }

    /// Checks everything that can be checked without files or the network.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.host.trim().is_empty() || self.host.contains(['/', ' ', '@']) {
            return Err(invalid(
                "host",
                "must be the SMSC's host name or IP address (no scheme, path or user)",
            ));
        }
        if self.port == Some(0) {
            return Err(invalid("port", "must be 1-65535"));
        }
        if self.ca_file.is_some() && !self.tls {
            return Err(invalid("ca_file", "needs `tls = true`"));
        }
        if self.system_id.is_empty() || self.system_id.len() > 15 || !printable(&self.system_id) {
            return Err(invalid(
                "system_id",
                "must be 1-15 printable ASCII characters (the SMPP account name)",
            ));
        }
        if self.password_file.as_os_str().is_empty() {
            return Err(invalid(
                "password_file",
                "must name the file holding the bind password",
            ));
        }
        if self.system_type.len() > 12 || !printable(&self.system_type) {
            return Err(invalid(
                "system_type",
                "must be at most 12 printable ASCII characters",
            ));
        }
        source_numbering(&self.source_addr).map_err(|p| invalid("source_addr", p))?;
        if self.to.len() > MAX_RECIPIENTS {
            return Err(invalid(
                "to",
                format!("at most {MAX_RECIPIENTS} numbers; use another sink for more"),
            ));
        }
        for (i, n) in self.to.iter().enumerate() {
            if !is_e164(n) {
                return Err(invalid(
                    &format!("to[{i}]"),
                    format!(
                        "`{}` is not an international number: write `+`, the country code and the number, digits only",
                        mask(n)
                    ),
                ));
            }
            if self.to[..i].contains(n) {
                return Err(invalid(&format!("to[{i}]"), "is listed twice"));
            }
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(invalid(
                "window",
                format!("must be between 1 and {MAX_WINDOW}"),
            ));
        }
        for (key, d) in [
            ("enquire_link", self.enquire_link),
            ("response_timeout", self.response_timeout),
            ("connect_timeout", self.connect_timeout),
            ("permanent_retry_after", self.permanent_retry_after),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be above zero, e.g. \"10s\""));
            }
        }
        if let Some(tag) = self.event_id_tag
            && !(crate::pdu::tag::VENDOR_FIRST..=crate::pdu::tag::VENDOR_LAST).contains(&tag)
        {
            return Err(invalid(
                "event_id_tag",
                "must be a vendor-specific tag, 5120-16383 (0x1400-0x3FFF)",
            ));
        }
        self.bundling()
            .validate()
            .map_err(|(key, problem)| invalid(key, problem))?;
        Ok(())
    }
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7F).contains(&b))
}

/// `+` then 7–15 digits, the first not 0.
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// How `source_addr` is numbered: `+digits` international (TON 1, NPI 1 E.164), digits a short
/// code (TON 0 unknown, NPI 1: the SMSC applies its own plan), else an alphanumeric sender id
/// (TON 5, NPI 0). The address as sent (without the `+`) and its numbering, or the problem.
pub fn source_numbering(s: &str) -> Result<(String, Numbering), String> {
    if let Some(d) = s.strip_prefix('+') {
        return if is_e164(s) {
            Ok((d.to_owned(), Numbering { ton: 1, npi: 1 }))
        } else {
            Err("a `+` number must be `+`, the country code and the number, 7-15 digits".into())
        };
    }
    if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((s.to_owned(), Numbering { ton: 0, npi: 1 }));
    }
    if !s.is_empty()
        && s.len() <= 11
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
    {
        return Ok((s.to_owned(), Numbering { ton: 5, npi: 0 }));
    }
    Err(
        "must be an alphanumeric sender id (1-11 letters, digits or spaces), a short code (digits) or `+` and an international number"
            .into(),
    )
}

/// A phone number fit for logs: the first five characters and the last two (`+4477…23`);
/// shorter input shows only its length.
pub fn mask(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() < 9 {
        return format!("<{} characters>", chars.len());
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "carers"
        host = "smsc.example.net"
        system_id = "oakview"
        password_file = "smsc.password"
        source_addr = "Oakview"
        to = ["+447700900123"]
    "#;

    fn parse(s: &str) -> Result<SmsConfig, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.tls);
        assert_eq!(c.port(), 3550);
        assert_eq!(c.bind, BindMode::Transceiver);
        assert_eq!(c.window, 10);
        assert_eq!(c.enquire_link, Duration::from_secs(30));
        assert_eq!(c.response_timeout, Duration::from_secs(10));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.permanent_retry_after, Duration::from_secs(300));
        assert_eq!(c.event_id_tag, None);
        assert_eq!(
            c,
            SmsConfig::new(
                "carers",
                "smsc.example.net",
                "oakview",
                "smsc.password".into(),
                "Oakview",
                vec!["+447700900123".into()]
            )
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse(&format!("{MINIMAL}\npassword = \"x\"")).unwrap_err();
        assert!(e.to_string().contains("unknown field `password`"), "{e}");
    }

    #[test]
    fn plain_tcp_defaults_to_port_2775() {
        let c = parse(&format!("{MINIMAL}\ntls = false")).unwrap();
        assert_eq!(c.port(), 2775);
        assert_eq!(c.validate(), Ok(()));
        assert!(!c.is_loopback());
        let mut c = c;
        c.host = "127.0.0.1".into();
        assert!(c.is_loopback());
    }

    #[test]
    fn a_bad_number_is_refused_without_printing_it() {
        let mut c = parse(MINIMAL).unwrap();
        c.to = vec!["+447700900123".into(), "07700 900456".into()];
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "to[1]");
        assert!(!e.problem.contains("900456"), "{e}");
        c.to = vec!["+447700900123".into(), "+447700900123".into()];
        assert_eq!(c.validate().unwrap_err().key, "to[1]");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = parse(MINIMAL).unwrap();
        type Change = Box<dyn Fn(&mut SmsConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|c| c.name = " ".into())),
            ("host", Box::new(|c| c.host = "smpp://x".into())),
            ("port", Box::new(|c| c.port = Some(0))),
            ("system_id", Box::new(|c| c.system_id = "x".repeat(16))),
            ("system_type", Box::new(|c| c.system_type = "x".repeat(13))),
            (
                "source_addr",
                Box::new(|c| c.source_addr = "Oakview Care".into()),
            ),
            ("source_addr", Box::new(|c| c.source_addr = "+0".into())),
            ("window", Box::new(|c| c.window = 0)),
            ("window", Box::new(|c| c.window = MAX_WINDOW + 1)),
            (
                "response_timeout",
                Box::new(|c| c.response_timeout = Duration::ZERO),
            ),
            ("event_id_tag", Box::new(|c| c.event_id_tag = Some(0x0204))),
            (
                "ca_file",
                Box::new(|c| {
                    c.tls = false;
                    c.ca_file = Some("ca.pem".into())
                }),
            ),
        ];
        for (key, change) in cases {
            let mut c = base.clone();
            change(&mut c);
            assert_eq!(c.validate().map_err(|e| e.key), Err(key.to_owned()));
        }
    }

    #[test]
    fn senders_are_numbered_by_their_form() {
        assert_eq!(
            source_numbering("+447700900123").unwrap(),
            ("447700900123".into(), Numbering { ton: 1, npi: 1 })
        );
        assert_eq!(
            source_numbering("60000").unwrap().1,
            Numbering { ton: 0, npi: 1 }
        );
        assert_eq!(
            source_numbering("Oakview").unwrap().1,
            Numbering { ton: 5, npi: 0 }
        );
        assert!(source_numbering("").is_err());
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask("+447700900123"), "+4477…23");
        assert_eq!(mask("123"), "<3 characters>");
    }
}
