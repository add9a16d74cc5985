//! The registry keys DC-09 events carry (`account`, `zone`), in the one form the registry
//! compares. The adapter reports every key through [`account`] and [`zone`]; the core passes
//! every configured `[[device]] match` value of a `sia-dc09` adapter through
//! [`canonical_match`] when it loads the config. Both sides therefore agree on one spelling, and
//! the registry's exact (hashed) comparison is a numeric one for zones.
//!
//! The rule:
//! - **zone**: a zone, point or user number. Contact ID pads it to 3 digits (`003`), SIA DC-03
//!   writes it with or without leading zeros (`Nri1MA7`, `MA007`, `HB0003`), so only its value
//!   counts: decimal digits, leading zeros removed, then padded back to 3 digits (`7`, `07`,
//!   `007`, `0007` → `007`; `1234` stays `1234`). Padding to 3 keeps the form most panels send
//!   and most configs already use, so `device.component` and messages read as before. A DC-03
//!   address that is not a decimal number (`1-2`) is reported as sent and can match nothing.
//! - **account**: ASCII upper case (accounts are hex digits, `c0ffee` is `C0FFEE`), leading
//!   zeros **kept**. A DC-09 account is a 3–16 character identifier, not a quantity: legacy.md
//!   §1.2 says leading zeros matter, and the adapter's own `accounts` list (which picks the AES
//!   key and decides whether a panel is ours) compares them exactly. A registry that took
//!   `001234` for `1234` could give one panel's events another panel's resident and room, which
//!   is worse than an event the registry does not place (it still alarms, named by its account).
//!
//! DC-09's `R` (receiver) and `L` (line/account prefix) fields are not registry keys: they name
//! the path to this receiver, not the device, and a panel reports the same over any path.

use std::collections::BTreeMap;

/// The key naming the panel: the `#acct` of the data block, else of the frame header.
pub const ACCOUNT: &str = "account";
/// The key naming a zone, point or user on the panel.
pub const ZONE: &str = "zone";
/// Contact ID's zone width, and the width zones are padded to.
const ZONE_WIDTH: usize = 3;
/// Neither Contact ID (3 digits) nor SIA DC-03 (up to 4) sends a larger zone number.
const ZONE_MAX: u32 = 9999;

/// Why a configured `match` value can never equal anything the adapter reports.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("`{0}` is not a key DC-09 reports: match on `account`, and `zone` for one zone")]
    UnknownKey(String),
    #[error("`{0}` is not a DC-09 account: 3-16 letters or digits, as the panel sends after `#`")]
    Account(String),
    #[error(
        "`{0}` is not a zone number: decimal digits 1-9999 (`7`, `007` and `0007` are the same zone)"
    )]
    Zone(String),
    #[error(
        "zone `{0}` is the panel itself, which reports no zone: leave `zone` out to match the panel's own events"
    )]
    PanelZone(String),
}

/// An account as the registry compares it: upper case, leading zeros kept.
pub fn account(reported: &str) -> String {
    reported.to_ascii_uppercase()
}

/// A zone as the registry compares it: a decimal number without leading zeros, padded to 3
/// digits; anything else unchanged.
pub fn zone(reported: &str) -> String {
    if reported.is_empty() || !reported.bytes().all(|b| b.is_ascii_digit()) {
        return reported.to_owned();
    }
    let value = reported.trim_start_matches('0');
    format!("{value:0>ZONE_WIDTH$}")
}

/// The registry keys of an event from panel `acct`, about zone `zone_no` (`None`: the panel
/// itself).
pub fn reported(acct: &str, zone_no: Option<&str>) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::from([(ACCOUNT.to_owned(), account(acct))]);
    if let Some(z) = zone_no {
        keys.insert(ZONE.to_owned(), zone(z));
    }
    keys
}

/// A configured `match` value in the form the adapter reports it, or why no frame can ever
/// carry it (named key, so the config error can say which entry to fix).
pub fn canonical_match(key: &str, value: &str) -> Result<String, KeyError> {
    match key {
        ACCOUNT => {
            let ok =
                (3..=16).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                return Err(KeyError::Account(value.to_owned()));
            }
            Ok(account(value))
        }
        ZONE => {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(KeyError::Zone(value.to_owned()));
            }
            let significant = value.trim_start_matches('0');
            match significant.parse::<u32>() {
                _ if significant.is_empty() => Err(KeyError::PanelZone(value.to_owned())),
                Ok(n) if n <= ZONE_MAX => Ok(zone(value)),
                _ => Err(KeyError::Zone(value.to_owned())),
            }
        }
        other => Err(KeyError::UnknownKey(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zones_written_with_any_leading_zeros_are_one_zone() {
        for z in ["7", "07", "007", "0007", "00007"] {
            assert_eq!(zone(z), "007", "{z}");
        }
        assert_eq!(zone("129"), "129");
        assert_eq!(zone("0129"), "129");
        assert_eq!(zone("1234"), "1234");
        assert_eq!(zone("0"), "000");
    }

    #[test]
    fn a_zone_that_is_not_a_decimal_number_is_reported_as_sent() {
        assert_eq!(zone("1-2"), "1-2");
        assert_eq!(zone("0A"), "0A");
        assert_eq!(zone(""), "");
    }

    #[test]
    fn accounts_fold_case_and_keep_their_leading_zeros() {
        assert_eq!(account("c0ffee"), "C0FFEE");
        assert_eq!(account("00C0FFEE"), "00C0FFEE");
        assert_ne!(account("001234"), account("1234"));
    }

    #[test]
    fn configured_zones_take_the_reported_form() {
        for z in ["7", "07", "007", "0007"] {
            assert_eq!(canonical_match("zone", z).as_deref(), Ok("007"), "{z}");
        }
        assert_eq!(canonical_match("zone", "9999").as_deref(), Ok("9999"));
        assert_eq!(
            canonical_match("account", "c0ffee").as_deref(),
            Ok("C0FFEE")
        );
        assert_eq!(canonical_match("account", "0012").as_deref(), Ok("0012"));
    }

    #[test]
    fn configured_values_no_frame_can_carry_are_refused() {
        let refused = |k: &str, v: &str| canonical_match(k, v).unwrap_err();
        assert_eq!(refused("zone", "abc"), KeyError::Zone("abc".into()));
        assert_eq!(refused("zone", ""), KeyError::Zone("".into()));
        assert_eq!(refused("zone", " 7"), KeyError::Zone(" 7".into()));
        assert_eq!(refused("zone", "-7"), KeyError::Zone("-7".into()));
        assert_eq!(refused("zone", "10000"), KeyError::Zone("10000".into()));
        assert_eq!(refused("zone", "000"), KeyError::PanelZone("000".into()));
        assert_eq!(refused("account", "12"), KeyError::Account("12".into()));
        assert_eq!(
            refused("account", "12-34"),
            KeyError::Account("12-34".into())
        );
        assert_eq!(
            refused("account", "12345678901234567"),
            KeyError::Account("12345678901234567".into())
        );
        assert_eq!(
            refused("device", "x"),
            KeyError::UnknownKey("device".into())
        );
        assert!(refused("zone", "abc").to_string().contains("abc"));
    }

    #[test]
    fn reported_keys_carry_the_canonical_account_and_zone() {
        let keys = reported("c0ffee", Some("7"));
        assert_eq!(keys.get(ACCOUNT).map(String::as_str), Some("C0FFEE"));
        assert_eq!(keys.get(ZONE).map(String::as_str), Some("007"));
        assert!(!reported("1234", None).contains_key(ZONE));
    }

    proptest! {
        #[test]
        fn the_canonical_zone_is_idempotent(z in "[0-9]{0,8}|[0-9A-F:-]{0,6}|\\PC{0,6}") {
            let once = zone(&z);
            prop_assert_eq!(zone(&once), once.clone());
            if let Ok(c) = canonical_match(ZONE, &z) {
                prop_assert_eq!(canonical_match(ZONE, &c), Ok(c));
            }
        }

        #[test]
        fn numerically_equal_zones_are_one_key(n in 0u32..=ZONE_MAX, a in 0usize..5, b in 0usize..5) {
            let (x, y) = (format!("{}{n}", "0".repeat(a)), format!("{}{n}", "0".repeat(b)));
            prop_assert_eq!(zone(&x), zone(&y));
            // …and the reported form is what the config side makes of the same number.
            if n > 0 {
                prop_assert_eq!(canonical_match(ZONE, &x), Ok(zone(&y)));
            }
        }

        #[test]
        fn different_zone_numbers_stay_different_keys(m in 0u32..=ZONE_MAX, n in 0u32..=ZONE_MAX) {
            prop_assume!(m != n);
            prop_assert_ne!(zone(&m.to_string()), zone(&n.to_string()));
        }

        #[test]
        fn the_canonical_account_is_idempotent(a in "[0-9A-Za-z]{3,16}") {
            let once = canonical_match(ACCOUNT, &a).unwrap();
            prop_assert_eq!(canonical_match(ACCOUNT, &once), Ok(once.clone()));
            prop_assert_eq!(account(&a.to_ascii_lowercase()), once);
        }
    }
}
