//! One text for several notifications to the same numbers (`bundle_window`; when the sink
//! holds and flushes is [`atgw_sdk::bundle`]). Pure: the site's time zone is passed in.
//!
//! ```text
//! 3 alerts: MEDIUM Low battery - Room 4 14:02; LOW Door exit - Room 7 14:03; +1 more. Ack each on console.
//! ```
//!
//! Still one 160-septet GSM-7 message: the count first (so a cut text still says how many),
//! then as many whole items as fit, oldest first, then `+N more` for the rest and what to do.
//! An item is priority, kind, place, and what changed when it is not a raise, and the time.

use jiff::tz::TimeZone;
use serde_json::Value;

use crate::gsm7::{self, Gsm7};
use crate::text::{Fallback, heading, room_label, state, str_at};

const TAIL: &str = " Ack each on console.";

/// The text for the notifications `items` (CloudEvents JSON and the row's own kind and
/// priority), in outbox order.
pub fn bundle_message(items: &[(&str, Fallback<'_>)], tz: &TimeZone) -> Gsm7 {
    gsm7::encode(&bundle_compose(items, tz), gsm7::MAX_SEPTETS)
}

/// The bundled text, before encoding: at most 160 septets whenever one item fits.
pub fn bundle_compose(items: &[(&str, Fallback<'_>)], tz: &TimeZone) -> String {
    let n = items.len();
    let septets = |s: &str| gsm7::encode(s, usize::MAX).septets.len();
    let mut out = format!("{n} alerts:");
    let mut shown = 0;
    for (i, (json, fallback)) in items.iter().enumerate() {
        let sep = if i == 0 { " " } else { "; " };
        let candidate = format!("{out}{sep}{}", item(json, fallback, tz));
        let left = n - i - 1;
        let more = if left > 0 {
            format!("; +{left} more.")
        } else {
            ".".to_owned()
        };
        if septets(&format!("{candidate}{more}{TAIL}")) > gsm7::MAX_SEPTETS {
            break;
        }
        out = candidate;
        shown += 1;
    }
    if shown == 0 {
        // Not even one item fits with the tail: the first item, cut by the encoder.
        let (json, fallback) = &items[0];
        return format!("{out} {}; +{} more.", item(json, fallback, tz), n - 1);
    }
    if shown < n {
        out.push_str(&format!("; +{} more.", n - shown));
    } else {
        out.push('.');
    }
    out.push_str(TAIL);
    out
}

/// `MEDIUM Low battery - Room 4 14:02`, or `HIGH Fall - Room 9 Acknowledged by Sam 14:04`.
fn item(json: &str, fallback: &Fallback<'_>, tz: &TimeZone) -> String {
    let event: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let data = &event["data"];
    let mut out = heading(data, fallback);
    let place = str_at(&data["location"]["room"])
        .map(room_label)
        .or_else(|| str_at(&data["location"]["area"]).map(str::to_owned));
    if let Some(p) = place {
        out.push_str(" - ");
        out.push_str(&p);
    }
    let alert = &data["alert"];
    let (what, _) = state(
        str_at(&alert["reason"]),
        str_at(&data["phase"]).unwrap_or("point"),
        str_at(&alert["by"]),
        str_at(&alert["outcome"]),
    );
    if !matches!(what.as_str(), "Raised" | "At") {
        out.push(' ');
        out.push_str(what.trim_end_matches(','));
    }
    if let Some(t) = str_at(&event["time"]).and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        out.push(' ');
        out.push_str(
            &t.to_zoned_datetime(tz.clone())
                .strftime("%H:%M")
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: &str, priority: &str, room: &str, time: &str) -> String {
        serde_json::json!({
            "time": time,
            "data": {"kind": kind, "priority": priority, "phase": "raised",
                     "location": {"room": room, "area": "East wing"},
                     "alert": {"reason": "raised", "status": "open"}}
        })
        .to_string()
    }

    const FB: Fallback<'static> = Fallback {
        kind: "unknown",
        priority: "medium",
    };

    #[test]
    fn two_alerts_are_listed_with_what_where_and_when() {
        let a = alert("low_battery", "medium", "4", "2026-04-17T14:02:00Z");
        let b = alert("door_exit", "low", "7", "2026-04-17T14:03:00Z");
        let text = bundle_compose(&[(&a, FB), (&b, FB)], &TimeZone::UTC);
        assert_eq!(
            text,
            "2 alerts: MEDIUM Low battery - Room 4 14:02; LOW Door exit - Room 7 14:03. Ack each on console."
        );
    }

    #[test]
    fn many_alerts_stay_one_sms_and_say_how_many_more() {
        let jsons: Vec<String> = (0..9)
            .map(|i| {
                alert(
                    "low_battery",
                    "medium",
                    &format!("10{i}"),
                    "2026-04-17T14:02:00Z",
                )
            })
            .collect();
        let items: Vec<(&str, Fallback<'_>)> = jsons.iter().map(|j| (j.as_str(), FB)).collect();
        let text = bundle_compose(&items, &TimeZone::UTC);
        let m = bundle_message(&items, &TimeZone::UTC);
        assert!(!m.cut, "{text}");
        assert!(m.septets.len() <= 160, "{text}");
        assert!(text.starts_with("9 alerts: MEDIUM Low battery - Room 100 14:02; "));
        assert!(text.contains(" more. Ack each on console."), "{text}");
        let shown = text.matches("Low battery").count();
        assert!(text.contains(&format!("+{} more.", 9 - shown)), "{text}");
    }

    #[test]
    fn an_item_too_long_for_one_sms_is_cut_but_keeps_the_count() {
        let long = alert(
            "low_battery",
            "medium",
            &"x".repeat(300),
            "2026-04-17T14:02:00Z",
        );
        let items = [(long.as_str(), FB), (long.as_str(), FB)];
        let m = bundle_message(&items, &TimeZone::UTC);
        assert!(m.cut && m.septets.len() <= 160);
        assert!(
            m.text.starts_with("2 alerts: MEDIUM Low battery - "),
            "{}",
            m.text
        );
    }

    #[test]
    fn an_acknowledgement_says_so() {
        let ack = serde_json::json!({
            "time": "2026-04-17T14:04:00Z",
            "data": {"kind": "fall", "priority": "medium", "phase": "acknowledged",
                     "location": {"room": "9"},
                     "alert": {"reason": "acknowledged", "by": "Sam"}}
        })
        .to_string();
        let a = alert("low_battery", "low", "4", "2026-04-17T14:02:00Z");
        let text = bundle_compose(&[(&a, FB), (&ack, FB)], &TimeZone::UTC);
        assert!(
            text.contains("; MEDIUM Fall - Room 9 Acknowledged by Sam 14:04."),
            "{text}"
        );
    }
}
