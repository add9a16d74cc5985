//! The text a carer reads: built from the event's CloudEvents JSON, at most 160 GSM-7
//! septets. Pure: the site's time zone is passed in.
//!
//! ```text
//! HIGH Fall - Room 9, West wing. Raised 14:02 UTC. Ack on console. Fall detected
//! HIGH Fall - Room 9, West wing. ESCALATED, not acknowledged, 14:07 UTC. Ack on console.
//! HIGH Fall - Room 9, West wing. Acknowledged by Sam 14:04 UTC.
//! TEST MEDIUM Assistance call - Room 3. Raised 10:15 UTC. Ack on console.
//! ```
//!
//! Most important first, since a long text is cut at the end: priority and kind, where, what
//! changed and when, what to do, then the device's own words. The JSON is read loosely (a
//! field missing or of another type is left out, never an error): a delivery always has a text,
//! at worst from the `Delivery`'s own kind and priority.

use jiff::tz::TimeZone;
use serde_json::Value;

use crate::gsm7::{self, Gsm7};

/// What the text is built from, besides the JSON: the row's own kind and priority (used when
/// the JSON lacks them).
pub struct Fallback<'a> {
    pub kind: &'a str,
    pub priority: &'a str,
}

/// The message for one event, encoded.
pub fn message(json: &str, fallback: &Fallback<'_>, tz: &TimeZone) -> Gsm7 {
    gsm7::encode(&compose(json, fallback, tz), gsm7::MAX_SEPTETS)
}

/// The message for one event, before encoding.
pub fn compose(json: &str, fallback: &Fallback<'_>, tz: &TimeZone) -> String {
    let event: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let data = &event["data"];
    let mut out = heading(data, fallback);

    let room = str_at(&data["location"]["room"]);
    let area = str_at(&data["location"]["area"]);
    let place = match (room.map(room_label), area) {
        (Some(r), Some(a)) => Some(format!("{r}, {a}")),
        (Some(r), None) => Some(r),
        (None, Some(a)) => Some(a.to_owned()),
        (None, None) => None,
    };
    if let Some(p) = place {
        out.push_str(" - ");
        out.push_str(&p);
    }
    out.push('.');

    let at = str_at(&event["time"])
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%H:%M %Z")
                .to_string()
        });
    let alert = &data["alert"];
    let reason = str_at(&alert["reason"]);
    let phase = str_at(&data["phase"]).unwrap_or("point");
    let by = str_at(&alert["by"]);
    let (state, act) = state(reason, phase, by, str_at(&alert["outcome"]));
    out.push(' ');
    out.push_str(&state);
    if let Some(at) = at {
        out.push(' ');
        out.push_str(&at);
    }
    out.push('.');
    if act {
        out.push_str(" Ack on console.");
    }
    // The core's messages end with the place in its own words; the text already has it.
    let core_place = match (room, area) {
        (Some(r), Some(a)) => Some(format!(" - Room {r}, {a}")),
        (Some(r), None) => Some(format!(" - Room {r}")),
        (None, Some(a)) => Some(format!(" - Area {a}")),
        (None, None) => None,
    };
    if let Some(said) = str_at(&data["message"]).map(own_words).map(|w| {
        core_place
            .as_deref()
            .and_then(|p| w.strip_suffix(p))
            .unwrap_or(w)
    }) && !said.is_empty()
    {
        out.push(' ');
        out.push_str(said);
    }
    out
}

/// `HIGH Fall`, or `TEST HIGH Fall`: priority and kind, from the event's `data` or else the
/// row's own. A test call (`[alerts] test_route`) must never read as a real one.
pub(crate) fn heading(data: &Value, fallback: &Fallback<'_>) -> String {
    let priority = str_at(&data["priority"]).unwrap_or(fallback.priority);
    let kind = str_at(&data["kind"]).unwrap_or(fallback.kind);
    let test = if data["test"].as_bool() == Some(true) {
        "TEST "
    } else {
        ""
    };
    format!("{test}{} {}", priority.to_uppercase(), kind_label(kind))
}

/// A non-empty string field, trimmed.
pub(crate) fn str_at(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// What changed (after the reason of a lifecycle event, else the phase of a device event), and
/// whether someone is still expected to act.
pub(crate) fn state(
    reason: Option<&str>,
    phase: &str,
    by: Option<&str>,
    outcome: Option<&str>,
) -> (String, bool) {
    let by = by.map(|b| format!(" by {b}")).unwrap_or_default();
    let (s, act): (&str, bool) = match reason {
        Some("raised" | "raised_again") => ("Raised", true),
        Some("repeated") => ("RAISED AGAIN", true),
        Some("upgraded") => ("UPGRADED", true),
        Some("ack_timeout") => ("ESCALATED, not acknowledged,", true),
        Some("delivery_failed") => ("ESCALATED, first call not delivered,", true),
        Some("repeat") => ("REPEAT, not acknowledged,", true),
        Some("not_resolved") => ("REMINDER, not resolved,", false),
        Some("acknowledged") => return (format!("Acknowledged{by}"), false),
        Some("device_cleared") => ("Cleared at the device", false),
        Some("device_restored" | "cancelled") => ("STILL OPEN, check the resident,", true),
        Some("resolved") => {
            let how = outcome
                .map(|o| format!(" ({})", o.replace('_', " ")))
                .unwrap_or_default();
            return (format!("Resolved{by}{how}"), false);
        }
        _ => match phase {
            "raised" => ("Raised", true),
            "escalated" => ("ESCALATED", true),
            "acknowledged" => return (format!("Acknowledged{by}"), false),
            "cleared" => ("Cleared", false),
            "resolved" => return (format!("Resolved{by}"), false),
            _ => ("At", false),
        },
    };
    (s.to_owned(), act)
}

/// A lifecycle message is `WHAT[ by WHO]: the device's words`; the text already says what and
/// who, so only the words are kept.
fn own_words(m: &str) -> &str {
    match m.split_once(": ") {
        Some((head, rest)) if head.chars().take(60).count() < 60 => rest.trim(),
        _ => m.trim(),
    }
}

/// `pendant_press` → `Pendant press`; acronyms keep their case.
pub(crate) fn kind_label(kind: &str) -> String {
    match kind {
        "spo2_low" => return "SpO2 low".into(),
        "co" => return "CO".into(),
        _ => {}
    }
    let words = kind.replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `9` → `Room 9`; `Lounge` stays `Lounge`; `room 9` stays.
pub(crate) fn room_label(room: &str) -> String {
    if room.starts_with(|c: char| c.is_ascii_digit()) {
        format!("Room {room}")
    } else {
        room.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FB: Fallback<'static> = Fallback {
        kind: "unknown",
        priority: "high",
    };

    fn lifecycle(reason: &str, phase: &str, by: Option<&str>) -> String {
        serde_json::json!({
            "specversion": "1.0", "id": "e1", "type": format!("atgw.alert.{phase}"),
            "time": "2026-01-05T14:02:31.000Z",
            "data": {
                "kind": "fall", "phase": phase, "priority": "high",
                "location": {"site": "oakview", "area": "West wing", "room": "9"},
                "message": format!("ALERT: Fall detected"),
                "alert": {"id": "a1", "status": "open", "level": 0, "reason": reason, "policy": "p", "by": by},
            }
        })
        .to_string()
    }

    #[test]
    fn a_raised_fall_reads_as_the_carer_needs_it() {
        let t = compose(&lifecycle("raised", "raised", None), &FB, &TimeZone::UTC);
        assert_eq!(
            t,
            "HIGH Fall - Room 9, West wing. Raised 14:02 UTC. Ack on console. Fall detected"
        );
    }

    #[test]
    fn a_test_call_says_so_first() {
        let json = lifecycle("raised", "raised", None).replace(
            "\"priority\":\"high\"",
            "\"priority\":\"high\",\"test\":true",
        );
        let t = compose(&json, &FB, &TimeZone::UTC);
        assert!(t.starts_with("TEST HIGH Fall - Room 9"), "{t}");
    }

    #[test]
    fn the_place_is_not_said_twice() {
        let json = lifecycle("raised", "raised", None).replace(
            "ALERT: Fall detected",
            "ALERT: Fall detected - Room 9, West wing",
        );
        assert_eq!(
            compose(&json, &FB, &TimeZone::UTC),
            "HIGH Fall - Room 9, West wing. Raised 14:02 UTC. Ack on console. Fall detected"
        );
    }

    #[test]
    fn times_are_in_the_sites_zone() {
        let tz = TimeZone::get("Europe/London").unwrap();
        let json = lifecycle("raised", "raised", None).replace("2026-01-05", "2026-07-05");
        let t = compose(&json, &FB, &tz);
        assert!(t.contains("Raised 15:02 BST."), "{t}");
    }

    #[test]
    fn an_acknowledgement_names_who_and_asks_nothing() {
        let t = compose(
            &lifecycle("acknowledged", "acknowledged", Some("Sam")),
            &FB,
            &TimeZone::UTC,
        );
        assert!(t.starts_with("HIGH Fall - Room 9, West wing. Acknowledged by Sam 14:02 UTC."));
        assert!(!t.contains("Ack on console"), "{t}");
    }

    #[test]
    fn an_escalation_says_it_was_not_acknowledged() {
        let t = compose(
            &lifecycle("ack_timeout", "escalated", None),
            &FB,
            &TimeZone::UTC,
        );
        assert!(
            t.contains("ESCALATED, not acknowledged, 14:02 UTC. Ack on console."),
            "{t}"
        );
    }

    #[test]
    fn a_bare_device_event_still_gets_a_text() {
        let json = r#"{"id":"x","time":"2026-01-01T00:00:00.000Z","data":{"kind":"pendant_press","phase":"raised","priority":"high"}}"#;
        assert_eq!(
            compose(json, &FB, &TimeZone::UTC),
            "HIGH Pendant press. Raised 00:00 UTC. Ack on console."
        );
        assert_eq!(
            compose("not json", &FB, &TimeZone::UTC),
            "HIGH Unknown. At."
        );
    }

    #[test]
    fn the_message_fits_one_sms_and_keeps_the_room() {
        let long = lifecycle("raised", "raised", None).replace(
            "ALERT: Fall detected",
            &format!("ALERT: {}", "very long words ".repeat(20)),
        );
        let g = message(&long, &FB, &TimeZone::UTC);
        assert!(g.septets.len() <= 160);
        assert!(g.cut);
        assert!(g.text.contains("Room 9, West wing"), "{}", g.text);
        assert!(g.text.contains("Ack on console."), "{}", g.text);
    }

    #[test]
    fn acronym_kinds_keep_their_case() {
        assert_eq!(kind_label("spo2_low"), "SpO2 low");
        assert_eq!(kind_label("bed_exit"), "Bed exit");
        assert_eq!(room_label("Lounge"), "Lounge");
    }
}
