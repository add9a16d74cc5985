//! SIA DC-03 ("SIA format") as carried in `"SIA-DCS"` frames: `[#acct|N ri1/MA001]`, and what
//! its two-letter codes mean for telecare (legacy.md §3).
//!
//! One block may carry several events (`Nri1/MA001/MA002`); modifiers such as `ri` (area) apply
//! to the events after them. Text in `^…^` may contain `/`, so the block is scanned, not split.

use atgw_sdk::{Kind, Phase};

use crate::contact_id::split_account;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiaEvent {
    /// Two upper-case letters (`MA`).
    pub code: String,
    /// Zone, point or user (`001`); may be empty.
    pub address: String,
    /// The `ri` modifier in force, if any.
    pub area: Option<String>,
    /// `^…^` text after the event, if any.
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiaBlock {
    pub account: Option<String>,
    pub events: Vec<SiaEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SiaError {
    #[error("SIA data has no event code (two upper-case letters)")]
    NoEvent,
}

/// Parses `[#acct|][N]{modifier|event|^text^|/}`.
pub fn parse(data: &str) -> Result<SiaBlock, SiaError> {
    let (account, block) = split_account(data);
    let c: Vec<char> = block.chars().collect();
    let upper = |i: usize| c.get(i).is_some_and(char::is_ascii_uppercase);
    let lower = |i: usize| c.get(i).is_some_and(char::is_ascii_lowercase);
    let mut i = 0;
    // The block function character (`N` new event, `A` text…) precedes a modifier or an event.
    if upper(0) && ((upper(1) && upper(2)) || (lower(1) && lower(2))) {
        i = 1;
    }
    let mut area: Option<String> = None;
    let mut events: Vec<SiaEvent> = Vec::new();
    while i < c.len() {
        if c[i] == '^' {
            let end = c[i + 1..]
                .iter()
                .position(|&ch| ch == '^')
                .map_or(c.len(), |p| i + 1 + p);
            let text: String = c[i + 1..end].iter().collect();
            if let Some(last) = events.last_mut() {
                last.text = Some(text);
            }
            i = end + 1;
        } else if lower(i) && lower(i + 1) {
            let name: String = c[i..i + 2].iter().collect();
            let start = i + 2;
            let mut j = start;
            while j < c.len() && !matches!(c[j], '/' | '^') && !c[j].is_ascii_uppercase() {
                j += 1;
            }
            if name == "ri" {
                area = Some(c[start..j].iter().collect());
            }
            i = j;
        } else if upper(i) && upper(i + 1) {
            let code: String = c[i..i + 2].iter().collect();
            let start = i + 2;
            let mut j = start;
            while j < c.len()
                && (c[j].is_ascii_digit()
                    || matches!(c[j], ':' | '-')
                    || (c[j].is_ascii_hexdigit() && !upper(j + 1)))
            {
                j += 1;
            }
            events.push(SiaEvent {
                code,
                address: c[start..j].iter().collect(),
                area: area.clone(),
                text: None,
            });
            i = j;
        } else {
            // `/` separators, `*units`, and anything we don't understand: skip.
            i += 1;
        }
    }
    if events.is_empty() {
        return Err(SiaError::NoEvent);
    }
    Ok(SiaBlock { account, events })
}

/// The standard meaning of a DC-03 code, or `None` (kind `unknown`, code kept).
pub fn kind_of(code: &str) -> Option<(Kind, Phase)> {
    use Kind::*;
    use Phase::*;
    Some(match code {
        "MA" => (Medical, Raised),
        "MH" | "MR" => (Medical, Cleared),
        "QA" | "PA" | "HA" => (PendantPress, Raised),
        "QH" | "QR" | "PH" | "HH" => (PendantPress, Cleared),
        "FA" | "KA" => (Smoke, Raised),
        "FH" | "KH" => (Smoke, Cleared),
        "GA" => (Gas, Raised),
        "GH" => (Gas, Cleared),
        "WA" => (WaterLeak, Raised),
        "WH" => (WaterLeak, Cleared),
        "ZA" => (TemperatureExtreme, Raised),
        "ZH" => (TemperatureExtreme, Cleared),
        "AT" | "YP" => (PowerFault, Raised),
        "AR" | "YQ" => (PowerFault, Cleared),
        "YT" | "XT" | "YM" => (LowBattery, Raised),
        "YR" | "XR" => (LowBattery, Cleared),
        "TA" | "TT" | "XQ" => (Tamper, Raised),
        "TR" | "XH" => (Tamper, Cleared),
        "BZ" | "UY" | "UZ" | "EM" | "XX" => (DeviceOffline, Raised),
        "EN" => (DeviceOffline, Cleared),
        "YC" | "YS" | "NT" | "LT" | "YX" | "MT" | "QT" => (DeviceFault, Raised),
        "YK" | "NR" | "LR" | "YZ" | "MJ" | "QJ" => (DeviceFault, Cleared),
        "RP" | "RX" | "TX" => (Test, Point),
        "OC" => (Cancel, Point),
        _ => return None,
    })
}

/// A short English name for messages.
pub fn name_of(code: &str) -> &'static str {
    match code {
        "MA" | "MH" | "MR" => "Medical alarm",
        "QA" | "QH" | "QR" => "Emergency assistance request",
        "PA" | "PH" => "Panic alarm",
        "HA" | "HH" => "Duress alarm",
        "FA" | "FH" => "Fire alarm",
        "KA" | "KH" => "Heat alarm",
        "GA" | "GH" => "Gas alarm",
        "WA" | "WH" => "Water leak",
        "ZA" | "ZH" => "Low temperature",
        "AT" | "AR" => "Mains power failure",
        "YP" | "YQ" => "Power supply trouble",
        "YT" | "YR" | "YM" => "System battery low",
        "XT" | "XR" => "Device battery low",
        "TA" | "TR" | "TT" => "Tamper",
        "XQ" | "XH" => "Radio interference",
        "BZ" | "UY" | "UZ" => "Device missing",
        "EM" | "EN" => "Expansion device missing",
        "XX" => "Expected test not received",
        "YC" | "YK" | "YS" => "Communication failure",
        "NT" | "NR" => "Network failure",
        "LT" | "LR" => "Phone line trouble",
        "YX" | "YZ" => "Service required",
        "MT" | "MJ" | "QT" | "QJ" => "Alarm device trouble",
        "RP" => "Automatic test",
        "RX" => "Manual test",
        "TX" => "Test report",
        "OC" => "Alarm cancelled",
        _ => "SIA event",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: &str, address: &str, area: Option<&str>) -> SiaEvent {
        SiaEvent {
            code: code.into(),
            address: address.into(),
            area: area.map(Into::into),
            text: None,
        }
    }

    #[test]
    fn parses_area_modifier_and_event_with_or_without_slash() {
        assert_eq!(
            parse("#1234|Nri1/MA001").unwrap(),
            SiaBlock {
                account: Some("1234".into()),
                events: vec![ev("MA", "001", Some("1"))]
            }
        );
        assert_eq!(
            parse("Nri1MA3").unwrap().events,
            vec![ev("MA", "3", Some("1"))]
        );
        assert_eq!(
            parse("#12345A|NFA129").unwrap().events,
            vec![ev("FA", "129", None)]
        );
        assert_eq!(parse("|Nri1/CL501").unwrap().account, None);
    }

    #[test]
    fn text_descriptors_may_contain_slashes_and_attach_to_their_event() {
        let b = parse("#7878|Nri01^TOTAL^/LX901^centrale d'alarme / JA-106K(R)^").unwrap();
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.events[0].code, "LX");
        assert_eq!(b.events[0].address, "901");
        assert_eq!(
            b.events[0].text.as_deref(),
            Some("centrale d'alarme / JA-106K(R)")
        );
    }

    #[test]
    fn several_events_and_user_modifiers() {
        let b = parse("Nri1/id0007/pm03/CL001/OP002").unwrap();
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.events[1].code, "OP");
    }

    #[test]
    fn a_block_without_an_event_is_an_error() {
        assert_eq!(parse("#1234|Nri1"), Err(SiaError::NoEvent));
        assert_eq!(parse(""), Err(SiaError::NoEvent));
    }

    #[test]
    fn restore_codes_clear() {
        assert_eq!(kind_of("MH"), Some((Kind::Medical, Phase::Cleared)));
        assert_eq!(kind_of("RP"), Some((Kind::Test, Phase::Point)));
        assert_eq!(kind_of("HB"), None);
    }
}
