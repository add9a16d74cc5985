//! The adapter's configuration: one `[[adapter]]` table with `type = "sia-dc09"` (the core's enum
//! consumes `type`; everything else lands here). Unknown keys are errors, and `validate` names
//! the key that is wrong and what would be right.
//!
//! ```toml
//! [[adapter]]
//! name = "alarms"
//! type = "sia-dc09"
//! listen_tcp = "0.0.0.0:7777"
//! listen_udp = "0.0.0.0:7777"
//! accounts = [{ account = "1234", key_file = "/etc/atgw/dc09-1234.key", key_format = "hex" }]
//! vendor_codes = { "1102" = "fall" }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use atgw_sdk::Kind;
use serde::{Deserialize, Deserializer};

use crate::crypto::KeyFormat;

/// DC-09's own largest frame: LF, CRC, length, 0xFFF message bytes, CR.
pub const DC09_MAX_FRAME: usize = 1 + 4 + 4 + 0xFFF + 1;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The adapter instance name: `device.adapter` of every event and the `<adapter>` in
    /// CloudEvents `source`.
    pub name: String,
    /// TCP listen address, e.g. `"0.0.0.0:7777"`. DC-09 has no registered port.
    #[serde(default)]
    pub listen_tcp: Option<String>,
    /// UDP listen address (one frame per datagram; answers go to the datagram's source).
    #[serde(default)]
    pub listen_udp: Option<String>,
    /// The accounts this receiver serves, with their AES keys when they encrypt.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Accept frames from accounts not listed in `accounts` (the core then flags the device as
    /// unregistered). Off by default: an unknown account gets DUH, a dead letter and a gateway
    /// alert, because a panel we were not told about is either misconfigured or not ours.
    #[serde(default)]
    pub accept_unknown: bool,
    /// Vendor extensions: a Contact ID event code (`"102"`), qualifier + code (`"1102"`), or a
    /// SIA code (`"HB"`) → an event kind (`"fall"`). Consulted before the standard tables; the
    /// original code is always kept in `codes`.
    #[serde(default)]
    pub vendor_codes: BTreeMap<String, String>,
    /// How old a message timestamp may be (DC-09: `"40s"`).
    #[serde(default = "default_max_age", deserialize_with = "duration")]
    pub max_timestamp_age: Duration,
    /// How far ahead of our clock a message timestamp may be (DC-09: `"20s"`).
    #[serde(default = "default_max_ahead", deserialize_with = "duration")]
    pub max_timestamp_ahead: Duration,
    /// How long a frame with the same account, sequence number and message (data, extended
    /// data and timestamp) as one already journaled is a retransmission: ACKed again, journaled
    /// once (`"5m"`). A transmitter's retries end within minutes; after this the same frame is a
    /// new event. At most the journal's `dedupe_window` (keys are not kept longer).
    #[serde(default = "default_retransmit_window", deserialize_with = "duration")]
    pub retransmit_window: Duration,
    /// Concurrent TCP connections, all peers together (256). When the limit is reached, a new
    /// connection takes the place of the oldest one that has not completed a frame yet (that
    /// one is closed); a connection that has completed a usable frame is never closed for it.
    /// Only when every connection is established is the newcomer refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// UDP datagrams being processed at once, all peers together (256). Its own budget, so
    /// TCP connections can never use up what UDP transmitters need; a datagram beyond it gets
    /// no answer and the transmitter retries.
    #[serde(default = "default_max_udp_in_flight")]
    pub max_udp_in_flight: usize,
    /// A TCP connection that completes no frame for this long is closed (`"120s"`, `"2m"`, or
    /// a number of seconds). Measured per frame, not per byte, so a slow trickle cannot keep a
    /// connection alive.
    #[serde(default = "default_idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// A new TCP connection must complete its first frame within this long (`"10s"`), or within
    /// `idle_timeout` if that is shorter; afterwards `idle_timeout` applies. A transmitter sends
    /// its frame as soon as it connects, so only sockets that are not transmitting wait longer.
    #[serde(default = "default_first_frame_timeout", deserialize_with = "duration")]
    pub first_frame_timeout: Duration,
    /// Largest frame accepted, LF to CR (DC-09's own maximum, 4105, by default).
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Concurrent TCP connections from one IP address.
    #[serde(default = "default_per_peer_connections")]
    pub per_peer_connections: usize,
    /// Frames per second one IP address may send (TCP and UDP together; short bursts of this
    /// size are allowed). Excess frames get no answer, so the transmitter retries later.
    #[serde(default = "default_per_peer_frames_per_sec")]
    pub per_peer_frames_per_sec: u32,
}

/// One transmitting account.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The `#acct` the panel sends, as text (`"00C0FFEE"`: leading zeros matter).
    pub account: String,
    /// File holding the AES key; absent = the account sends plaintext. When a key is set, the
    /// account's plaintext frames are refused, so nobody can bypass the key by not using it.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// `"hex"` (32/48/64 hex digits, default) or `"ascii"` (16/24/32 characters used as bytes).
    #[serde(default)]
    pub key_format: KeyFormat,
}

fn default_max_age() -> Duration {
    Duration::from_secs(40)
}
fn default_max_ahead() -> Duration {
    Duration::from_secs(20)
}
fn default_retransmit_window() -> Duration {
    crate::handler::DEFAULT_RETRANSMIT_WINDOW
}
fn default_max_connections() -> usize {
    256
}
fn default_max_udp_in_flight() -> usize {
    256
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_first_frame_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_frame_bytes() -> usize {
    DC09_MAX_FRAME
}
fn default_per_peer_connections() -> usize {
    16
}
fn default_per_peer_frames_per_sec() -> u32 {
    100
}

impl Config {
    /// A config with every default, for tests and the simulator's self-test.
    pub fn new(name: impl Into<String>) -> Config {
        Config {
            name: name.into(),
            listen_tcp: None,
            listen_udp: None,
            accounts: Vec::new(),
            accept_unknown: false,
            vendor_codes: BTreeMap::new(),
            max_timestamp_age: default_max_age(),
            max_timestamp_ahead: default_max_ahead(),
            retransmit_window: default_retransmit_window(),
            max_connections: default_max_connections(),
            max_udp_in_flight: default_max_udp_in_flight(),
            idle_timeout: default_idle_timeout(),
            first_frame_timeout: default_first_frame_timeout(),
            max_frame_bytes: default_max_frame_bytes(),
            per_peer_connections: default_per_peer_connections(),
            per_peer_frames_per_sec: default_per_peer_frames_per_sec(),
        }
    }

    /// Every problem at once, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let mut err = |key: &str, msg: String| errs.push(format!("{key}: {msg}"));
        if self.name.trim().is_empty() {
            err("name", "must not be empty".into());
        }
        if self.listen_tcp.is_none() && self.listen_udp.is_none() {
            err(
                "listen_tcp",
                "set listen_tcp and/or listen_udp (e.g. \"127.0.0.1:7777\"); a receiver needs a listener".into(),
            );
        }
        for (key, addr) in [
            ("listen_tcp", &self.listen_tcp),
            ("listen_udp", &self.listen_udp),
        ] {
            if let Some(a) = addr
                && a.parse::<SocketAddr>().is_err()
            {
                err(
                    key,
                    format!("`{a}` is not an IP:port address (e.g. \"0.0.0.0:7777\")"),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, acct) in self.accounts.iter().enumerate() {
            let a = &acct.account;
            if !(3..=16).contains(&a.len()) || !a.chars().all(|c| c.is_ascii_alphanumeric()) {
                err(
                    &format!("accounts[{i}].account"),
                    format!("`{a}` must be 3-16 letters or digits, as the panel sends it"),
                );
            }
            if !seen.insert(a.as_str()) {
                err(
                    &format!("accounts[{i}].account"),
                    format!("`{a}` is listed twice"),
                );
            }
        }
        for (code, kind) in &self.vendor_codes {
            let ok_code = match code.len() {
                2 => code.chars().all(|c| c.is_ascii_uppercase()),
                3 | 4 => code.chars().all(|c| c.is_ascii_digit()),
                _ => false,
            };
            if !ok_code {
                err(
                    &format!("vendor_codes.{code}"),
                    "keys are a Contact ID code (\"102\"), qualifier + code (\"1102\") or a SIA code (\"HB\")".into(),
                );
            }
            if kind.parse::<Kind>().is_err() {
                err(
                    &format!("vendor_codes.{code}"),
                    format!(
                        "`{kind}` is not an event kind (e.g. \"fall\", \"pendant_press\", \"unknown\")"
                    ),
                );
            }
        }
        if self.max_connections == 0 {
            err("max_connections", "must be at least 1".into());
        }
        if self.max_udp_in_flight == 0 {
            err("max_udp_in_flight", "must be at least 1".into());
        }
        if self.retransmit_window.is_zero() {
            err("retransmit_window", "must be more than 0s".into());
        }
        if self.first_frame_timeout.is_zero() {
            err("first_frame_timeout", "must be more than 0s".into());
        }
        if self.per_peer_connections == 0 {
            err("per_peer_connections", "must be at least 1".into());
        }
        if self.per_peer_frames_per_sec == 0 {
            err("per_peer_frames_per_sec", "must be at least 1".into());
        }
        if self.idle_timeout.is_zero() {
            err("idle_timeout", "must be more than 0s".into());
        }
        if !(64..=1024 * 1024).contains(&self.max_frame_bytes) {
            err("max_frame_bytes", "must be between 64 and 1048576".into());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

/// Everything `validate` found, one line per problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ConfigErrors(pub Vec<String>);

/// `"120s"`, `"500ms"`, `"2m"`, `"1h"`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Secs(u64),
        Text(String),
    }
    match Text::deserialize(d)? {
        Text::Secs(n) => Ok(Duration::from_secs(n)),
        Text::Text(s) => parse_duration(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a duration; write e.g. \"120s\", \"500ms\", \"2m\" or \"1h\""
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_parses_with_defaults() {
        let c: Config = toml::from_str(
            r#"
            name = "alarms"
            listen_tcp = "0.0.0.0:7777"
            listen_udp = "0.0.0.0:7777"
            accounts = [{ account = "1234", key_file = "/etc/atgw/dc09-1234.key", key_format = "hex" }]
            vendor_codes = { "1102" = "fall" }
            idle_timeout = "2m"
            "#,
        )
        .unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.max_timestamp_age, Duration::from_secs(40));
        assert_eq!(c.accounts[0].key_format, KeyFormat::Hex);
        assert_eq!(c.max_connections, 256);
        assert_eq!(c.max_udp_in_flight, 256);
        assert_eq!(c.retransmit_window, Duration::from_secs(300));
        assert_eq!(c.first_frame_timeout, Duration::from_secs(10));
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<Config, _> =
            toml::from_str("name = \"a\"\nlisten_tcp = \"127.0.0.1:1\"\nport = 7");
        assert!(r.unwrap_err().to_string().contains("unknown field `port`"));
    }

    #[test]
    fn validation_names_each_bad_key() {
        let mut c = Config::new("alarms");
        c.vendor_codes.insert("1102".into(), "falls".into());
        c.accounts.push(Account {
            account: "12".into(),
            key_file: None,
            key_format: KeyFormat::Hex,
        });
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("listen_tcp: set listen_tcp and/or listen_udp"),
            "{e}"
        );
        assert!(
            e.contains("vendor_codes.1102: `falls` is not an event kind"),
            "{e}"
        );
        assert!(e.contains("accounts[0].account"), "{e}");
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1 fortnight"), None);
        let c: Config = toml::from_str("name = \"a\"\nidle_timeout = 30").unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
    }
}
