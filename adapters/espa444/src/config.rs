//! `[[adapter]] type = "espa444"` and `[[sink]] type = "espa444"`: where the link is (a serial
//! port, a TCP listener, or a serial server atgw connects to), the station addresses, timers,
//! and the mapping from calls to kinds. Documented field by field, validated at load.

use std::path::PathBuf;
use std::time::Duration;

use atgw_sdk::Kind;
use atgw_sdk::component::Invalid;
use serde::Deserialize;

/// A serial port's line settings. ESPA 4.4.4's 1984 text says 7 data bits, even parity; most
/// installed kit runs 9600 8N1 with Latin-1 text, which is the default here.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    /// The device, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/…`.
    pub device: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}

/// Where the link is: exactly one of the three.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    /// `host:port` to listen on for one control station or serial server at a time (a new
    /// connection replaces the old one: a serial server that reconnects leaves a dead one).
    #[serde(default)]
    pub listen: Option<String>,
    /// `host:port` of a serial server (RS-232 over TCP) to connect to; reconnects with backoff.
    #[serde(default)]
    pub connect: Option<String>,
    /// A local serial port.
    #[serde(default)]
    pub serial: Option<Serial>,
}

impl Transport {
    pub fn validate(&self) -> Result<(), Invalid> {
        let n = usize::from(self.listen.is_some())
            + usize::from(self.connect.is_some())
            + usize::from(self.serial.is_some());
        if n != 1 {
            return Err(Invalid::new(
                "listen",
                "set exactly one of `listen` (TCP listener), `connect` (a serial server) and `serial` (a local port)",
            ));
        }
        for (key, addr) in [("listen", &self.listen), ("connect", &self.connect)] {
            if let Some(a) = addr
                && a.parse::<std::net::SocketAddr>().is_err()
                && !a.contains(':')
            {
                return Err(Invalid::new(key, format!("`{a}` is not `host:port`")));
            }
        }
        if let Some(s) = &self.serial {
            if s.baud == 0 || s.baud > 4_000_000 {
                return Err(Invalid::new("serial.baud", "must be from 1 to 4000000"));
            }
            if !matches!(s.data_bits, 7 | 8) {
                return Err(Invalid::new("serial.data_bits", "must be 7 or 8"));
            }
            if !matches!(s.stop_bits, 1 | 2) {
                return Err(Invalid::new("serial.stop_bits", "must be 1 or 2"));
            }
            if s.device.as_os_str().is_empty() {
                return Err(Invalid::new(
                    "serial.device",
                    "must name the port, e.g. /dev/ttyUSB0",
                ));
            }
        }
        Ok(())
    }

    /// For logs: where the link is.
    pub fn describe(&self) -> String {
        match (&self.listen, &self.connect, &self.serial) {
            (Some(l), _, _) => format!("tcp listen {l}"),
            (_, Some(c), _) => format!("tcp connect {c}"),
            (_, _, Some(s)) => format!(
                "serial {} {} {}{}{}",
                s.device.display(),
                s.baud,
                s.data_bits,
                match s.parity {
                    Parity::None => 'N',
                    Parity::Even => 'E',
                    Parity::Odd => 'O',
                },
                s.stop_bits
            ),
            _ => "nowhere".into(),
        }
    }
}

/// One rule of the call → kind mapping; the first rule that matches wins.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    /// Call addresses: one (`"1234"`) or an inclusive numeric range (`"100-199"`).
    #[serde(default)]
    pub addresses: Option<String>,
    /// Matches when the display text contains this, ignoring case (`"fall"`, `"bed"`).
    #[serde(default)]
    pub text: Option<String>,
    pub kind: Kind,
}

impl KindRule {
    pub fn matches(&self, address: &str, text: &str) -> bool {
        let by_address = match &self.addresses {
            None => true,
            Some(spec) => match spec.split_once('-') {
                Some((lo, hi)) => match (
                    lo.trim().parse::<u64>(),
                    hi.trim().parse::<u64>(),
                    address.parse::<u64>(),
                ) {
                    (Ok(lo), Ok(hi), Ok(a)) => (lo..=hi).contains(&a),
                    _ => false,
                },
                None => spec.trim() == address,
            },
        };
        let by_text = match &self.text {
            None => true,
            Some(t) => text.to_lowercase().contains(&t.to_lowercase()),
        };
        by_address && by_text
    }

    fn validate(&self, i: usize) -> Result<(), Invalid> {
        if self.addresses.is_none() && self.text.is_none() {
            return Err(Invalid::new(
                format!("kinds[{i}]"),
                "needs `addresses` or `text` (or both)",
            ));
        }
        if let Some(spec) = &self.addresses {
            let ok = match spec.split_once('-') {
                Some((lo, hi)) => {
                    matches!((lo.trim().parse::<u64>(), hi.trim().parse::<u64>()), (Ok(l), Ok(h)) if l <= h)
                }
                None => !spec.trim().is_empty(),
            };
            if !ok {
                return Err(Invalid::new(
                    format!("kinds[{i}].addresses"),
                    format!("`{spec}` is neither an address nor a range `low-high` (low ≤ high)"),
                ));
            }
        }
        Ok(())
    }
}

/// `[[adapter]] type = "espa444"`: atgw as the paging system, taking the nurse-call system's
/// calls in.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    pub name: String,
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub connect: Option<String>,
    #[serde(default)]
    pub serial: Option<Serial>,
    /// Our station address, `'0'`–`'9'`: the paging system is `2` by convention.
    #[serde(default = "default_paging_address")]
    pub address: char,
    /// A selected link with no token for this long is idle again; the control station's own
    /// retry timers are usually about 3 s.
    #[serde(default = "default_block_timeout", with = "humantime_serde")]
    pub block_timeout: Duration,
    /// Nothing heard from the control station (no poll, no call) for this long: the adapter
    /// says it cannot hear its devices, and after `[alerts] link_down_alert_after` the gateway
    /// raises its link-down alert. Most control stations poll every few seconds; one that only
    /// speaks when it has a call needs this long (or `"0s"` to turn supervision off).
    #[serde(default = "default_link_timeout", with = "humantime_serde")]
    pub link_timeout: Duration,
    /// The same block again within this long is the control station's retransmission (its ACK
    /// was lost): ACKed, journaled once.
    #[serde(default = "default_retransmit_window", with = "humantime_serde")]
    pub retransmit_window: Duration,
    /// The kind of a call no rule in `kinds` matches.
    #[serde(default = "default_kind")]
    pub default_kind: Kind,
    /// Address ranges or display-text patterns that mean another kind, first match wins.
    #[serde(default)]
    pub kinds: Vec<KindRule>,
}

fn default_paging_address() -> char {
    '2'
}
fn default_control_address() -> char {
    '1'
}
fn default_block_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_link_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_retransmit_window() -> Duration {
    Duration::from_secs(30)
}
fn default_kind() -> Kind {
    Kind::AssistanceCall
}

fn station(key: &str, c: char) -> Result<u8, Invalid> {
    if c.is_ascii_digit() {
        Ok(c as u8)
    } else {
        Err(Invalid::new(
            key,
            format!("`{c}` is not a station address `0`–`9`"),
        ))
    }
}

impl AdapterConfig {
    /// The config with every default, on `transport`.
    pub fn new(name: impl Into<String>, transport: Transport) -> AdapterConfig {
        AdapterConfig {
            name: name.into(),
            listen: transport.listen,
            connect: transport.connect,
            serial: transport.serial,
            address: default_paging_address(),
            block_timeout: default_block_timeout(),
            link_timeout: default_link_timeout(),
            retransmit_window: default_retransmit_window(),
            default_kind: default_kind(),
            kinds: Vec::new(),
        }
    }

    pub fn transport(&self) -> Transport {
        Transport {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            serial: self.serial.clone(),
        }
    }

    pub fn station(&self) -> u8 {
        station("address", self.address).unwrap_or(b'2')
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        self.transport().validate()?;
        station("address", self.address)?;
        if self.block_timeout.is_zero() {
            return Err(Invalid::new("block_timeout", "must be more than 0"));
        }
        for (i, r) in self.kinds.iter().enumerate() {
            r.validate(i)?;
        }
        Ok(())
    }

    /// The kind a call from `address` saying `text` is.
    pub fn kind_of(&self, address: &str, text: &str) -> Kind {
        self.kinds
            .iter()
            .find(|r| r.matches(address, text))
            .map_or(self.default_kind, |r| r.kind)
    }
}

/// `[[sink]] type = "espa444"`: atgw as the control station, paging carers' handsets.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub name: String,
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub connect: Option<String>,
    #[serde(default)]
    pub serial: Option<Serial>,
    /// Our station address: the control station is `1` by convention.
    #[serde(default = "default_control_address")]
    pub address: char,
    /// The paging system's station address.
    #[serde(default = "default_paging_address")]
    pub paging_address: char,
    /// Call addresses paged for every alert, besides the people a route's team names
    /// (their contact channel `espa444`: a handset number or a DECT group).
    #[serde(default)]
    pub to: Vec<String>,
    /// The handsets' display length: the text is cut to it on a word boundary.
    #[serde(default = "default_text_length")]
    pub text_length: usize,
    /// Beep coding record (`1`–`9`); none when unset.
    #[serde(default)]
    pub beep: Option<char>,
    /// Send a reset (call type 1) to the same addresses when the alert is acknowledged or
    /// resolved, so the page leaves the handsets.
    #[serde(default)]
    pub reset_on_close: bool,
    #[serde(default = "default_block_timeout", with = "humantime_serde")]
    pub select_timeout: Duration,
    #[serde(default = "default_retries")]
    pub select_retries: u32,
    #[serde(default = "default_block_timeout", with = "humantime_serde")]
    pub block_timeout: Duration,
    /// Retransmissions of a refused (NAK) or unanswered block before the page counts as
    /// failed this time; the outbox then retries it with its backoff.
    #[serde(default = "default_retries")]
    pub block_retries: u32,
    /// How long the outbox waits before offering a failed page again.
    #[serde(default = "default_retry_after", with = "humantime_serde")]
    pub retry_after: Duration,
    /// Poll the paging system (`<paging_address> ENQ`) this often between pages, for one
    /// that reports status (header 2) only when polled; `0s` (the default) does not poll,
    /// and a paging system that selects atgw on its own is still heard.
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A status "acknowledged by called party" (record 7 = `6`) acknowledges the alert, by
    /// the handset that reported it.
    #[serde(default)]
    pub ack_on_called_party: bool,
}

fn default_text_length() -> usize {
    32
}
fn default_retries() -> u32 {
    2
}
fn default_retry_after() -> Duration {
    Duration::from_secs(5)
}

impl SinkConfig {
    pub fn new(name: impl Into<String>, transport: Transport) -> SinkConfig {
        SinkConfig {
            name: name.into(),
            listen: transport.listen,
            connect: transport.connect,
            serial: transport.serial,
            address: default_control_address(),
            paging_address: default_paging_address(),
            to: Vec::new(),
            text_length: default_text_length(),
            beep: None,
            reset_on_close: false,
            select_timeout: default_block_timeout(),
            select_retries: default_retries(),
            block_timeout: default_block_timeout(),
            block_retries: default_retries(),
            retry_after: default_retry_after(),
            poll_interval: Duration::ZERO,
            ack_on_called_party: false,
        }
    }

    pub fn transport(&self) -> Transport {
        Transport {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            serial: self.serial.clone(),
        }
    }

    pub fn stations(&self) -> (u8, u8) {
        (
            station("address", self.address).unwrap_or(b'1'),
            station("paging_address", self.paging_address).unwrap_or(b'2'),
        )
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        self.transport().validate()?;
        station("address", self.address)?;
        station("paging_address", self.paging_address)?;
        if self.address == self.paging_address {
            return Err(Invalid::new("paging_address", "must differ from `address`"));
        }
        if !(8..=160).contains(&self.text_length) {
            return Err(Invalid::new("text_length", "must be from 8 to 160"));
        }
        if let Some(b) = self.beep
            && !('1'..='9').contains(&b)
        {
            return Err(Invalid::new("beep", "must be `1`–`9`"));
        }
        for (i, a) in self.to.iter().enumerate() {
            if !is_call_address(a) {
                return Err(Invalid::new(
                    format!("to[{i}]"),
                    format!("`{a}` is not a call address (1–16 digits)"),
                ));
            }
        }
        if self.select_timeout.is_zero() || self.block_timeout.is_zero() {
            return Err(Invalid::new(
                "block_timeout",
                "timeouts must be more than 0",
            ));
        }
        Ok(())
    }
}

/// A call address as pagers take it: 1–16 digits.
pub fn is_call_address(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Transport {
        Transport {
            listen: Some("127.0.0.1:2023".into()),
            ..Transport::default()
        }
    }

    #[test]
    fn kinds_map_by_range_then_text_then_default() {
        let mut c = AdapterConfig::new("nc", tcp());
        c.kinds = vec![
            KindRule {
                addresses: Some("100-199".into()),
                text: None,
                kind: Kind::BedExit,
            },
            KindRule {
                addresses: None,
                text: Some("FALL".into()),
                kind: Kind::Fall,
            },
            KindRule {
                addresses: Some("42".into()),
                text: Some("door".into()),
                kind: Kind::DoorExit,
            },
        ];
        c.validate().unwrap();
        assert_eq!(c.kind_of("150", "Fall Room 12"), Kind::BedExit);
        assert_eq!(c.kind_of("200", "fall room 12"), Kind::Fall);
        assert_eq!(c.kind_of("42", "Door 3"), Kind::DoorExit);
        assert_eq!(c.kind_of("43", "Door 3"), Kind::AssistanceCall);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = AdapterConfig::new("nc", Transport::default());
        assert_eq!(c.validate().unwrap_err().key, "listen");
        c.listen = Some("127.0.0.1:1".into());
        c.address = 'x';
        assert_eq!(c.validate().unwrap_err().key, "address");
        c.address = '2';
        c.kinds = vec![KindRule {
            addresses: Some("9-1".into()),
            text: None,
            kind: Kind::Fall,
        }];
        assert_eq!(c.validate().unwrap_err().key, "kinds[0].addresses");
        let mut s = SinkConfig::new("p", tcp());
        s.to = vec!["12a".into()];
        assert_eq!(s.validate().unwrap_err().key, "to[0]");
        s.to.clear();
        s.paging_address = '1';
        assert_eq!(s.validate().unwrap_err().key, "paging_address");
        let mut t = tcp();
        t.serial = Some(Serial {
            device: "/dev/ttyS0".into(),
            baud: 9600,
            data_bits: 6,
            parity: Parity::Even,
            stop_bits: 1,
        });
        assert_eq!(t.validate().unwrap_err().key, "listen");
        t.listen = None;
        assert_eq!(t.validate().unwrap_err().key, "serial.data_bits");
    }
}
