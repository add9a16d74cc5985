//! What one delivery says, read leniently from its CloudEvents JSON (pure, no I/O).
//!
//! A page that goes out with a field missing is better than none, so nothing here fails: a
//! field that is absent, of the wrong type or not in the vocabulary falls back to what the
//! outbox row itself says ([`Delivery::kind`], `priority`, `alert_id`) or is left out. Every
//! text taken from the event is cleaned ([`clean`]) before anything else sees it: control
//! characters (CR and LF among them) become spaces and it is cut to a length, so no event text
//! can start a new header line or a fake paragraph.

use atgw_sdk::sink::Delivery;
use atgw_sdk::{Kind, Phase, Priority};
use jiff::Timestamp;
use serde_json::Value;

/// Longest free text taken from an event (a message, a note); ids and names are shorter.
const MAX_TEXT: usize = 300;
const MAX_NAME: usize = 80;

/// The parts of an event a carer's email is built from, every string already [`clean`].
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// The CloudEvents id (from the outbox row; stable across attempts).
    pub event_id: String,
    pub kind: Kind,
    pub priority: Priority,
    pub phase: Option<Phase>,
    pub suspected: bool,
    /// Test or simulated data.
    pub test: bool,
    /// When it happened (the event's `time`).
    pub time: Option<Timestamp>,
    pub site: Option<String>,
    pub area: Option<String>,
    pub room: Option<String>,
    pub device_id: Option<String>,
    /// The pseudonymous resident reference (never a name).
    pub resident: Option<String>,
    /// The event's own short text (the pager line).
    pub message: Option<String>,
    /// True for alert lifecycle events (`atgw.alert.*`).
    pub lifecycle: bool,
    /// The alert this event belongs to (`correlationid`).
    pub alert_id: Option<String>,
    /// `data.alert` of a lifecycle event.
    pub alert: Option<AlertNote>,
    /// Measured values worth a line (`SpO2 88 %`).
    pub readings: Vec<String>,
}

/// `data.alert`: what changed about the alert.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertNote {
    /// `open`, `acknowledged`, `cleared`, `resolved`.
    pub status: Option<String>,
    /// Escalation tiers fired so far.
    pub level: Option<u64>,
    /// `raised`, `ack_timeout`, `acknowledged`, … (see the SDK's `AlertInfo::reason`).
    pub reason: Option<String>,
    pub by: Option<String>,
    pub outcome: Option<String>,
    pub note: Option<String>,
}

impl Notice {
    /// Reads `d.json`; never fails (see the module doc).
    pub fn read(d: &Delivery) -> Notice {
        let v: Value = serde_json::from_str(&d.json).unwrap_or(Value::Null);
        let data = &v["data"];
        let text =
            |v: &Value, max: usize| v.as_str().map(|s| clean(s, max)).filter(|s| !s.is_empty());
        let kind = data["kind"]
            .as_str()
            .and_then(|k| k.parse::<Kind>().ok())
            .unwrap_or(d.kind);
        let priority = data["priority"]
            .as_str()
            .and_then(|p| p.parse::<Priority>().ok())
            .unwrap_or(d.priority);
        let phase = data["phase"].as_str().and_then(|p| p.parse::<Phase>().ok());
        let a = &data["alert"];
        let alert = a.is_object().then(|| AlertNote {
            status: text(&a["status"], MAX_NAME),
            level: a["level"].as_u64(),
            reason: text(&a["reason"], MAX_NAME),
            by: text(&a["by"], MAX_NAME),
            outcome: text(&a["outcome"], MAX_NAME),
            note: text(&a["note"], MAX_TEXT),
        });
        let alert_id = d
            .alert_id
            .as_deref()
            .map(|a| clean(a, MAX_NAME))
            .or_else(|| text(&v["correlationid"], MAX_NAME))
            .or_else(|| text(&data["alert"]["id"], MAX_NAME))
            .filter(|a| !a.is_empty());
        let event_type = v["type"].as_str().unwrap_or_default();
        Notice {
            event_id: clean(&d.event_id, MAX_NAME),
            kind,
            priority,
            phase,
            suspected: data["confidence"].as_str() == Some("suspected"),
            test: data["test"].as_bool().unwrap_or(false) || kind == Kind::Test,
            time: v["time"].as_str().and_then(|t| t.parse::<Timestamp>().ok()),
            site: text(&data["location"]["site"], MAX_NAME),
            area: text(&data["location"]["area"], MAX_NAME),
            room: text(&data["location"]["room"], MAX_NAME),
            device_id: text(&data["device"]["id"], MAX_NAME).or_else(|| {
                let id = clean(&d.device_id, MAX_NAME);
                (!id.is_empty()).then_some(id)
            }),
            resident: text(&data["resident"]["id"], MAX_NAME),
            message: text(&data["message"], MAX_TEXT),
            lifecycle: d.lifecycle || event_type.starts_with("atgw.alert."),
            alert_id,
            alert,
            readings: readings(&data["observations"]),
        }
    }

    /// The lifecycle reason (`raised`, `ack_timeout`, …), when this is a lifecycle event.
    pub fn reason(&self) -> Option<&str> {
        self.alert.as_ref().and_then(|a| a.reason.as_deref())
    }
}

/// Up to four `name value unit` lines from `data.observations`.
fn readings(obs: &Value) -> Vec<String> {
    let Some(list) = obs.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|o| {
            let name = clean(o["name"].as_str()?, MAX_NAME);
            let value = o["value"].as_f64()?;
            let unit = o["unit"].as_str().map(|u| clean(u, 16)).unwrap_or_default();
            let unit = match unit.as_str() {
                "/min" => " per minute".to_owned(),
                "Cel" => " °C".to_owned(),
                "" => String::new(),
                u => format!(" {u}"),
            };
            Some(format!("{} {value}{unit}", reading_name(&name)))
        })
        .take(4)
        .collect()
}

/// A measurement's name as a carer says it.
fn reading_name(name: &str) -> String {
    match name {
        "spo2" => "SpO2".into(),
        "heart_rate" => "Heart rate".into(),
        "respiratory_rate" => "Respiratory rate".into(),
        "body_temperature" => "Body temperature".into(),
        "perfusion_index" => "Perfusion index".into(),
        other => other.replace('_', " "),
    }
}

/// Text fit for one line of a header or body: every control character (CR, LF, tab, NUL, the
/// Unicode line and paragraph separators, …) becomes a space, runs of spaces become one, and
/// the result is trimmed and cut to `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut space = false;
    let mut n = 0;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() || is_format_break(c) {
            ' '
        } else {
            c
        };
        if c == ' ' {
            space = !out.is_empty();
            continue;
        }
        if space {
            if n + 1 >= max {
                break;
            }
            out.push(' ');
            n += 1;
            space = false;
        }
        if n >= max {
            break;
        }
        out.push(c);
        n += 1;
    }
    out
}

/// Characters that are not `is_control` but still break or reorder lines in a mail reader
/// (zero-width and bidirectional controls).
fn is_format_break(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn delivery(json: serde_json::Value) -> Delivery {
        Delivery {
            outbox_id: 1,
            event_id: "0190e0a0-0000-7000-8000-000000000001".into(),
            kind: Kind::PendantPress,
            priority: Priority::Medium,
            device_id: "zigbee:0xa4".into(),
            json: json.to_string().into(),
            attempt: 0,
            alert_id: None,
            lifecycle: false,
            recipients: Default::default(),
        }
    }

    #[test]
    fn clean_makes_one_line_of_any_text() {
        assert_eq!(
            clean("  Fall\r\nBcc: x@y\t here  ", 100),
            "Fall Bcc: x@y here"
        );
        assert_eq!(clean("a\u{2028}b\u{0}c\u{202E}d", 100), "a b c d");
        assert_eq!(clean("ééééé", 3), "ééé");
        assert_eq!(clean("ab cd", 3), "ab");
        assert_eq!(clean("\r\n", 10), "");
    }

    #[test]
    fn a_lifecycle_event_is_read_field_by_field() {
        let mut d = delivery(serde_json::json!({
            "id": "e1", "type": "atgw.alert.acknowledged", "time": "2026-04-17T15:33:22.184Z",
            "correlationid": "alert-7",
            "data": {
                "kind": "fall", "phase": "acknowledged", "priority": "high", "confidence": "suspected",
                "test": false,
                "device": {"id": "radar-9", "adapter": "zigbee", "registered": true},
                "location": {"site": "oakview", "area": "West wing", "room": "9"},
                "resident": {"id": "res-0042"},
                "message": "Acknowledged by Sam: Fall - Room 9, West wing",
                "observations": [{"name": "spo2", "value": 88.0, "unit": "%"}],
                "alert": {"id": "alert-7", "status": "acknowledged", "level": 1, "reason": "acknowledged",
                          "policy": "default", "by": "Sam\r\nBcc: evil@example.com"}
            }
        }));
        d.lifecycle = true;
        let n = Notice::read(&d);
        assert_eq!(n.kind, Kind::Fall);
        assert_eq!(n.priority, Priority::High);
        assert_eq!(n.phase, Some(Phase::Acknowledged));
        assert!(n.suspected && !n.test && n.lifecycle);
        assert_eq!(n.alert_id.as_deref(), Some("alert-7"));
        assert_eq!(n.room.as_deref(), Some("9"));
        assert_eq!(n.area.as_deref(), Some("West wing"));
        assert_eq!(n.resident.as_deref(), Some("res-0042"));
        assert_eq!(n.reason(), Some("acknowledged"));
        let a = n.alert.unwrap();
        assert_eq!(a.level, Some(1));
        assert_eq!(a.by.as_deref(), Some("Sam Bcc: evil@example.com"));
        assert_eq!(n.readings, vec!["SpO2 88 %".to_owned()]);
        assert_eq!(n.time.unwrap().to_string(), "2026-04-17T15:33:22.184Z");
    }

    #[test]
    fn what_the_json_lacks_comes_from_the_outbox_row() {
        let mut d = delivery(serde_json::json!({"data": {"kind": "no-such-kind", "priority": 7}}));
        d.alert_id = Some("a-1".into());
        let n = Notice::read(&d);
        assert_eq!(n.kind, Kind::PendantPress);
        assert_eq!(n.priority, Priority::Medium);
        assert_eq!(n.alert_id.as_deref(), Some("a-1"));
        assert_eq!(n.device_id.as_deref(), Some("zigbee:0xa4"));
        assert!(n.time.is_none() && n.room.is_none() && n.alert.is_none());
        let mut d = delivery(serde_json::json!(null));
        d.json = "not json at all {".into();
        assert_eq!(Notice::read(&d).kind, Kind::PendantPress);
    }
}
