//! Reading JSON values as numbers, flags and enum keys: leniently for metadata (battery, signal),
//! strictly for what decides an alarm.
//!
//! Battery and link quality drift in type across zigbee2mqtt versions (`"battery":"80.00"`,
//! `"battery":null`), and a wrong battery reading must never cost an alarm, so those readings
//! accept numeric strings and treat anything unreadable as absent. A value that decides kind or
//! phase is read strictly: `water_leak: "maybe"` means the profile does not fit the device, and a
//! person has to look.

use serde_json::Value;

/// A number, or a string holding one; anything else (or a non-finite result) is `None`.
pub(crate) fn lenient_number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// A flag: booleans, `"true"`/`"false"` (any case), and the numbers 0 and 1.
pub(crate) fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
        _ => None,
    }
}

/// The JSON type's name and a short preview of the value, for a dead letter's detail line.
pub(crate) fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => return "an array".into(),
        Value::Object(_) => return "an object".into(),
    };
    format!("{kind} ({})", truncate(&v.to_string(), 40))
}

/// At most `max` characters, marking the cut; never splits a character.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn battery_readings_accept_drifted_types() {
        assert_eq!(lenient_number(&json!("80.00")), Some(80.0));
        assert_eq!(lenient_number(&json!(null)), None);
        assert_eq!(lenient_number(&json!("full")), None);
        assert_eq!(lenient_number(&json!("NaN")), None);
        assert_eq!(lenient_bool(&json!("TRUE")), Some(true));
        assert_eq!(lenient_bool(&json!(0)), Some(false));
        assert_eq!(lenient_bool(&json!("low")), None);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 2), "ab");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(!json_equal(&json!("1"), &json!(1)));
    }
}
