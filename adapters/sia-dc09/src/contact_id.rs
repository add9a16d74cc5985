//! Ademco Contact ID (SIA DC-05) as carried in `"ADM-CID"` frames: `[#acct|QEEE GG ZZZ]`, and
//! what its event codes mean for telecare (legacy.md §2.3).
//!
//! The qualifier is 1 (new event), 3 (restore) or 6 (still present); 2 is a known bug in one
//! public library and is refused rather than guessed at.

use atgw_sdk::Kind;

/// One Contact ID event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactId {
    /// The account inside the data field, when present (`#1234|…`).
    pub account: Option<String>,
    /// `1`, `3` or `6`.
    pub qualifier: u8,
    /// Three digits, kept as text (`101`).
    pub code: String,
    /// Group or partition, two digits (`00` = none).
    pub group: String,
    /// Zone or user number, three digits.
    pub zone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactIdError {
    #[error("Contact ID data is not `QEEE GG ZZZ`")]
    Syntax,
    #[error("Contact ID qualifier {0} is not 1 (new), 3 (restore) or 6 (still present)")]
    Qualifier(char),
}

/// Parses `[#acct|]QEEE GG ZZZ`. The spaces are optional, as some panels omit them; when they
/// are there, the zone may also be written with 1 to 4 digits (`1101 01 7`, `1101 01 0007`), as
/// transmitters that format the number themselves do. The zone is kept as sent; its canonical
/// form for the registry is [`crate::keys::zone`].
pub fn parse(data: &str) -> Result<ContactId, ContactIdError> {
    let (account, event) = split_account(data);
    let fields: Vec<&str> = event.split(' ').filter(|f| !f.is_empty()).collect();
    let compact: String;
    let (head, group, zone) = match fields.as_slice() {
        [head, group, zone]
            if head.len() == 4 && group.len() == 2 && (1..=4).contains(&zone.len()) =>
        {
            (*head, *group, *zone)
        }
        _ => {
            compact = fields.concat();
            if compact.len() != 9 || !compact.is_ascii() {
                return Err(ContactIdError::Syntax);
            }
            (&compact[..4], &compact[4..6], &compact[6..])
        }
    };
    if ![head, group, zone]
        .iter()
        .all(|f| f.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ContactIdError::Syntax);
    }
    let qualifier = match head.as_bytes()[0] {
        b'1' => 1,
        b'3' => 3,
        b'6' => 6,
        other => return Err(ContactIdError::Qualifier(char::from(other))),
    };
    Ok(ContactId {
        account,
        qualifier,
        code: head[1..].to_owned(),
        group: group.to_owned(),
        zone: zone.to_owned(),
    })
}

/// Splits an optional leading `#acct|` off a data field.
pub fn split_account(data: &str) -> (Option<String>, &str) {
    if let Some(rest) = data.strip_prefix('#')
        && let Some((acct, tail)) = rest.split_once('|')
    {
        return (Some(acct.to_owned()), tail);
    }
    (None, data.strip_prefix('|').unwrap_or(data))
}

/// Whether a code reports a condition that starts and ends (qualifier decides raised/cleared)
/// or a one-off point event (test, cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Condition,
    Point,
}

/// The standard meaning of a Contact ID event code, or `None` when telecare has no use for it
/// (it then becomes kind `unknown`, code kept).
pub fn kind_of(code: &str) -> Option<(Kind, Shape)> {
    use Kind::*;
    use Shape::*;
    let n: u16 = code.parse().ok()?;
    Some(match n {
        100 => (Medical, Condition),
        101 => (PendantPress, Condition),
        102 => (Inactivity, Condition),
        103 => (Fall, Condition),
        110..=117 => (Smoke, Condition),
        120..=123 => (PendantPress, Condition),
        151 => (Gas, Condition),
        162 => (Co, Condition),
        154 => (WaterLeak, Condition),
        158 | 159 => (TemperatureExtreme, Condition),
        300 | 380 | 389 | 393 => (DeviceFault, Condition),
        301 | 312 | 314 | 342 => (PowerFault, Condition),
        302 | 309 | 311 | 338 | 384 => (LowBattery, Condition),
        344 | 383 => (Tamper, Condition),
        350..=354 | 356..=358 => (DeviceFault, Condition),
        355 | 381 => (DeviceOffline, Condition),
        391 | 641 | 654 => (Inactivity, Condition),
        406 => (Cancel, Point),
        601..=603 | 607 => (Test, Point),
        _ => return None,
    })
}

/// The name of a code telecare has no meaning for, from what the event itself carries: the
/// qualifier and code as the panel sent them, and the code's class by its first digit
/// (SIA DC-05: 1 alarms, 2 supervisory, 3 troubles, 4 open/close and access, 5 bypasses,
/// 6 tests and miscellaneous). "Contact ID 1131 (unmapped alarm)".
pub fn unmapped_name(qualifier: u8, code: &str) -> String {
    let class = match code.chars().next() {
        Some('1') => "alarm",
        Some('2') => "supervisory",
        Some('3') => "trouble",
        Some('4') => "open/close or access",
        Some('5') => "bypass or disable",
        Some('6') => "test or miscellaneous",
        _ => "event",
    };
    format!("Contact ID {qualifier}{code} (unmapped {class})")
}

/// A short English name for messages.
pub fn name_of(code: &str) -> &'static str {
    let Ok(n) = code.parse::<u16>() else {
        return "Contact ID event";
    };
    match n {
        100 => "Medical alarm",
        101 => "Personal emergency",
        102 => "Failed to report in",
        103 => "Fall detected",
        110 | 111 | 117 => "Fire alarm",
        114 => "Heat alarm",
        115 => "Fire alarm (pull station)",
        116 => "Fire alarm (duct)",
        112 | 113 => "Fire alarm",
        120 => "Panic alarm",
        121 => "Duress alarm",
        122 => "Silent panic",
        123 => "Audible panic",
        151 => "Gas detected",
        162 => "Carbon monoxide",
        154 => "Water leak",
        158 => "High temperature",
        159 => "Low temperature",
        300 => "System trouble",
        301 => "Mains power lost",
        302 => "Low system battery",
        309 => "Battery test failed",
        311 => "Battery missing",
        312 => "Power supply over-current",
        314 => "Primary power supply failure",
        338 => "Module low battery",
        342 => "Module mains power lost",
        344 => "Radio jamming",
        350 => "Communication trouble",
        351 | 352 => "Telephone line fault",
        353 | 356 | 357 => "Communication trouble",
        354 => "Failed to communicate",
        355 => "Radio supervision lost",
        358 => "Periodic test failed",
        380 => "Sensor trouble",
        381 => "Device missing (supervision lost)",
        383 => "Sensor tamper",
        384 => "Device low battery",
        389 => "Sensor self-test failed",
        391 => "No movement detected",
        393 => "Maintenance needed",
        406 => "Alarm cancelled",
        601 => "Manual test",
        602 => "Periodic test",
        603 => "Periodic radio test",
        607 => "Walk test",
        641 => "No activity detected",
        654 => "System not used",
        _ => "Contact ID event",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualifier_code_group_zone_and_inner_account() {
        let c = parse("#1234|1101 01 003").unwrap();
        assert_eq!(
            c,
            ContactId {
                account: Some("1234".into()),
                qualifier: 1,
                code: "101".into(),
                group: "01".into(),
                zone: "003".into()
            }
        );
        assert_eq!(parse("3101 01 003").unwrap().qualifier, 3);
        assert_eq!(parse("|111000129").unwrap().zone, "129");
    }

    #[test]
    fn an_unmapped_code_is_named_by_its_code_and_class() {
        assert_eq!(unmapped_name(1, "131"), "Contact ID 1131 (unmapped alarm)");
        assert_eq!(
            unmapped_name(3, "373"),
            "Contact ID 3373 (unmapped trouble)"
        );
        assert_eq!(
            unmapped_name(1, "570"),
            "Contact ID 1570 (unmapped bypass or disable)"
        );
        assert_eq!(unmapped_name(1, "A12"), "Contact ID 1A12 (unmapped event)");
    }

    #[test]
    fn qualifier_two_is_refused_not_guessed() {
        assert_eq!(parse("2101 01 003"), Err(ContactIdError::Qualifier('2')));
        assert_eq!(parse("1101 01"), Err(ContactIdError::Syntax));
    }

    #[test]
    fn a_spaced_zone_may_have_one_to_four_digits_and_is_kept_as_sent() {
        for z in ["7", "07", "007", "0007"] {
            let c = parse(&format!("#1234|1101 01 {z}")).unwrap();
            assert_eq!((c.code.as_str(), c.group.as_str()), ("101", "01"), "{z}");
            assert_eq!(c.zone, z);
        }
        assert_eq!(parse("1101 01 00007"), Err(ContactIdError::Syntax));
        assert_eq!(parse("1101 01 "), Err(ContactIdError::Syntax));
        assert_eq!(parse("1101 1 007"), Err(ContactIdError::Syntax));
        assert_eq!(parse("1101 01 0x7"), Err(ContactIdError::Syntax));
        assert_eq!(parse("1101 01 é"), Err(ContactIdError::Syntax));
        // Unspaced, the fields are known only by their widths: 9 digits exactly.
        assert_eq!(parse("1101017"), Err(ContactIdError::Syntax));
        assert_eq!(parse("110101007").unwrap().zone, "007");
    }

    #[test]
    fn telecare_codes_map_to_kinds() {
        assert_eq!(kind_of("101"), Some((Kind::PendantPress, Shape::Condition)));
        assert_eq!(kind_of("103"), Some((Kind::Fall, Shape::Condition)));
        assert_eq!(kind_of("162"), Some((Kind::Co, Shape::Condition)));
        assert_eq!(
            kind_of("381"),
            Some((Kind::DeviceOffline, Shape::Condition))
        );
        assert_eq!(kind_of("384"), Some((Kind::LowBattery, Shape::Condition)));
        assert_eq!(kind_of("602"), Some((Kind::Test, Shape::Point)));
        assert_eq!(kind_of("406"), Some((Kind::Cancel, Shape::Point)));
        assert_eq!(kind_of("131"), None);
        assert_eq!(kind_of("x"), None);
    }
}
