//! What a handset is paged with for one delivery: header 1 blocks (call address, display text,
//! beep coding, call type, priority), or a reset when the alert is over. Pure; the event's
//! CloudEvents JSON is read loosely (a missing field is left out, never an error).
//!
//! The display is short (32 characters by default), so the text is built most important first
//! and cut on a word boundary: the room, what happened, whether it escalated, then the
//! device's own words. `Room 12 Fall ESCALATED Fall detected`.

use serde_json::Value;

use atgw_sdk::Priority;
use atgw_sdk::sink::Delivery;

use crate::block::{Block, Field, Header};
use crate::config::{SinkConfig, is_call_address};

/// What one delivery asks of the paging system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// Page these addresses with this text.
    Call { text: String, priority: Priority },
    /// Take the page off the handsets (call type 1).
    Reset,
    /// Nothing to page (an acknowledgement with `reset_on_close` off).
    Nothing,
}

/// Reads one delivery.
pub fn page(cfg: &SinkConfig, d: &Delivery) -> Page {
    let event: Value = serde_json::from_str(&d.json).unwrap_or(Value::Null);
    let data = &event["data"];
    let phase = str_at(&data["phase"]).unwrap_or("raised");
    let reason = str_at(&data["alert"]["reason"]);
    let over = matches!(phase, "acknowledged" | "resolved" | "cleared")
        || matches!(reason, Some("device_cleared"));
    // The paging system's own status reports, journaled on the alert: nothing to page.
    if d.lifecycle && matches!(reason, Some("status")) {
        return Page::Nothing;
    }
    if d.lifecycle && over {
        return if cfg.reset_on_close {
            Page::Reset
        } else {
            Page::Nothing
        };
    }
    let priority = str_at(&data["priority"])
        .and_then(|p| p.parse::<Priority>().ok())
        .unwrap_or(d.priority);
    // A sink no route names gets every event: telemetry and heartbeats must not page anyone.
    if !d.lifecycle && priority == Priority::Info {
        return Page::Nothing;
    }
    let kind = str_at(&data["kind"])
        .and_then(|k| k.parse::<atgw_sdk::Kind>().ok())
        .unwrap_or(d.kind);
    let mut words: Vec<String> = Vec::new();
    if let Some(room) = str_at(&data["location"]["room"]) {
        words.push(if room.starts_with(|c: char| c.is_ascii_digit()) {
            format!("Room {room}")
        } else {
            room.to_owned()
        });
    }
    if data["test"].as_bool() == Some(true) {
        words.push("TEST".into());
    }
    words.push(kind.label().to_owned());
    if phase == "escalated" || matches!(reason, Some("ack_timeout" | "delivery_failed")) {
        words.push("ESCALATED".into());
    }
    if let Some(said) = str_at(&data["message"]).map(|m| own_words(m, &data["location"]))
        && !said.is_empty()
    {
        words.push(said.to_owned());
    }
    Page::Call {
        text: cut(&words.join(" "), cfg.text_length),
        priority,
    }
}

/// The call addresses one delivery goes to: the config's `to`, then the people the route's
/// team chose (their `espa444` contact), well-formed and not listed already. The same for
/// every attempt at one delivery.
pub fn addresses<'a>(cfg: &'a SinkConfig, d: &'a Delivery) -> Vec<&'a str> {
    let mut out: Vec<&str> = cfg.to.iter().map(String::as_str).collect();
    for a in d.recipients.iter() {
        let a = a.trim();
        if is_call_address(a) && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The block paging `address`.
pub fn block(cfg: &SinkConfig, page: &Page, address: &str) -> Option<Block> {
    let mut records = vec![(Field::CallAddress, address.to_owned())];
    match page {
        Page::Nothing => return None,
        Page::Reset => records.push((Field::CallType, "1".into())),
        Page::Call { text, priority } => {
            records.push((Field::Message, text.clone()));
            if let Some(b) = cfg.beep {
                records.push((Field::BeepCoding, b.to_string()));
            }
            records.push((Field::CallType, "3".into()));
            let p = match priority {
                Priority::High => "1",
                Priority::Medium => "2",
                Priority::Low | Priority::Info => "3",
            };
            records.push((Field::Priority, p.into()));
        }
    }
    Some(Block::new(Header::CallToPager, records))
}

/// `text` in at most `max` characters, cut after the last whole word that fits (or inside a
/// word longer than the display), without control characters.
pub fn cut(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if clean.chars().count() <= max {
        return clean;
    }
    let head: String = clean.chars().take(max).collect();
    let next_is_space = clean.chars().nth(max) == Some(' ');
    if next_is_space {
        return head;
    }
    match head.rfind(' ') {
        Some(i) if i > 0 => head[..i].to_owned(),
        _ => head,
    }
}

/// The device's words in a message: the core writes lifecycle messages as `WHAT: words` and
/// ends them with the place (`- Room 12, West wing`), which the page already leads with.
fn own_words<'a>(m: &'a str, location: &Value) -> &'a str {
    let words = match m.split_once(": ") {
        Some((head, rest)) if head.chars().count() < 60 => rest.trim(),
        _ => m.trim(),
    };
    let place = match (str_at(&location["room"]), str_at(&location["area"])) {
        (Some(r), Some(a)) => Some(format!(" - Room {r}, {a}")),
        (Some(r), None) => Some(format!(" - Room {r}")),
        (None, Some(a)) => Some(format!(" - Area {a}")),
        (None, None) => None,
    };
    place
        .and_then(|p| words.strip_suffix(p.as_str()))
        .unwrap_or(words)
        .trim()
}

fn str_at(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use atgw_sdk::Kind;
    use std::sync::Arc;

    fn cfg() -> SinkConfig {
        let mut c = SinkConfig::new(
            "pagers",
            Transport {
                connect: Some("127.0.0.1:1".into()),
                ..Transport::default()
            },
        );
        c.to = vec!["200".into()];
        c
    }

    fn delivery(json: &str, lifecycle: bool, recipients: &[&str]) -> Delivery {
        Delivery {
            outbox_id: 1,
            event_id: Arc::from("e1"),
            kind: Kind::Fall,
            priority: Priority::High,
            device_id: Arc::from("radar-12"),
            json: Arc::from(json),
            attempt: 0,
            alert_id: Some(Arc::from("a1")),
            lifecycle,
            recipients: recipients
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    const ESCALATED: &str = r#"{"data":{"kind":"fall","phase":"escalated","priority":"high",
        "location":{"room":"12","area":"West wing"},
        "message":"ESCALATED (not acknowledged): Fall detected by the radar - Room 12, West wing",
        "alert":{"reason":"ack_timeout"}}}"#;

    #[test]
    fn room_first_then_what_then_escalation_cut_on_a_word() {
        let p = page(&cfg(), &delivery(ESCALATED, true, &[]));
        let Page::Call { text, priority } = p else {
            panic!("{p:?}")
        };
        assert_eq!(text, "Room 12 Fall ESCALATED Fall");
        let short = r#"{"data":{"kind":"fall","phase":"escalated","location":{"room":"12","area":"West wing"},
            "message":"ESCALATED (not acknowledged): Bed 1 - Room 12, West wing"}}"#;
        let Page::Call { text, .. } = page(&cfg(), &delivery(short, true, &[])) else {
            panic!()
        };
        assert_eq!(text, "Room 12 Fall ESCALATED Bed 1");
        assert!(text.chars().count() <= 32);
        assert_eq!(priority, Priority::High);
    }

    #[test]
    fn cut_keeps_whole_words_and_cuts_a_word_longer_than_the_display() {
        assert_eq!(cut("Room 12 Fall", 32), "Room 12 Fall");
        assert_eq!(cut("Room 12 Fall detected", 12), "Room 12 Fall");
        assert_eq!(cut("Room 12 Fall detected", 14), "Room 12 Fall");
        assert_eq!(cut("Zimmerwiederholungsalarm", 8), "Zimmerwi");
        assert_eq!(cut("a\u{7}b  c", 32), "a b c");
    }

    #[test]
    fn the_blocks_carry_address_text_priority_and_call_type() {
        let c = cfg();
        let d = delivery(ESCALATED, true, &["300", "200", "not-a-pager"]);
        assert_eq!(addresses(&c, &d), ["200", "300"]);
        let b = block(&c, &page(&c, &d), "300").unwrap();
        assert_eq!(b.get(Field::CallAddress), Some("300"));
        assert_eq!(b.get(Field::Priority), Some("1"));
        assert_eq!(b.get(Field::CallType), Some("3"));
        assert_eq!(b.get(Field::BeepCoding), None);
    }

    #[test]
    fn telemetry_pages_nobody() {
        let reading = r#"{"data":{"kind":"vital_sign","phase":"point","priority":"info"}}"#;
        assert_eq!(page(&cfg(), &delivery(reading, false, &[])), Page::Nothing);
    }

    #[test]
    fn an_acknowledgement_resets_only_when_configured() {
        let ack =
            r#"{"data":{"kind":"fall","phase":"acknowledged","alert":{"reason":"acknowledged"}}}"#;
        let mut c = cfg();
        assert_eq!(page(&c, &delivery(ack, true, &[])), Page::Nothing);
        c.reset_on_close = true;
        let p = page(&c, &delivery(ack, true, &[]));
        assert_eq!(p, Page::Reset);
        assert_eq!(
            block(&c, &p, "200").unwrap().get(Field::CallType),
            Some("1")
        );
    }
}
