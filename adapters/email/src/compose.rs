//! One email from one [`Notice`] (pure, no I/O): the subject a carer acts on, the plain-text
//! body, and the ids that thread an alert's messages.
//!
//! # Threading
//! Each message has its own `Message-ID`, derived from something stable, so a retry of the
//! same delivery carries the same id and a receiver (or a carer's mail client) can drop the
//! duplicate:
//! - the alert's first message (the lifecycle event with reason `raised`) takes the alert's
//!   thread id, `<alert.<alert id>@<from domain>>`;
//! - every later message of that alert (escalations, reminders, acknowledgement, resolution,
//!   and device events that belong to it) takes `<event.<event id>@<from domain>>` and names
//!   the thread id in `In-Reply-To` and `References`, so it lands under the first one;
//! - an event of no alert takes `<event.<event id>@…>` and stands alone.
//!
//! Ids are written in the `dot-atom` alphabet of RFC 5322: letters, digits and `-` as they
//! are, every other byte as `=XX` (so two different ids never map to one).
//!
//! # Header safety
//! Every text from the event went through [`crate::notice::clean`] (no control characters) and
//! the headers are encoded by lettre (RFC 2047 for non-ASCII), so no event text can add a
//! header; the property tests below check the formatted message, not just the strings.

use std::fmt::Write as _;

use atgw_sdk::{Kind, Phase, Priority};
use jiff::tz::TimeZone;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder};

use crate::notice::{Notice, clean};

/// Longest subject, in characters (mail clients show far less; the start is what counts).
const MAX_SUBJECT: usize = 160;

/// What the sink knows besides the event.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// `[gateway] id`, for the signature line.
    pub gateway_id: &'a str,
    /// The site's time zone (times are also given in UTC).
    pub timezone: &'a TimeZone,
    /// How many addresses the message goes to.
    pub recipients: usize,
}

/// A composed email, before addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub body: String,
    /// `<…@domain>`.
    pub message_id: String,
    /// The alert's thread id, for `In-Reply-To` and `References`; `None` for a thread's first
    /// message or an event of no alert.
    pub in_reply_to: Option<String>,
    pub event_id: String,
    pub alert_id: Option<String>,
    pub priority: Priority,
    /// Notifications in this message: 1, or a bundle's size ([`crate::bundle`]).
    pub members: usize,
}

/// Subject, body and ids for one notice.
pub fn compose(n: &Notice, domain: &str, ctx: &Context<'_>) -> Composed {
    let (message_id, in_reply_to) = thread(n, domain);
    Composed {
        subject: subject(n),
        body: body(n, ctx),
        message_id,
        in_reply_to,
        event_id: n.event_id.clone(),
        alert_id: n.alert_id.clone(),
        priority: n.priority,
        members: 1,
    }
}

/// `<alert.<id>@domain>`: the id of an alert's thread (and of its first message).
pub fn thread_id(alert_id: &str, domain: &str) -> String {
    format!("<alert.{}@{}>", id_part(alert_id), id_part_domain(domain))
}

/// `<event.<id>@domain>`: the id of the message for one event.
pub fn event_message_id(event_id: &str, domain: &str) -> String {
    format!("<event.{}@{}>", id_part(event_id), id_part_domain(domain))
}

/// This message's own id, and the thread it answers (see the module doc).
pub fn thread(n: &Notice, domain: &str) -> (String, Option<String>) {
    match &n.alert_id {
        Some(alert) if n.lifecycle && n.reason() == Some("raised") => {
            (thread_id(alert, domain), None)
        }
        Some(alert) => (
            event_message_id(&n.event_id, domain),
            Some(thread_id(alert, domain)),
        ),
        None => (event_message_id(&n.event_id, domain), None),
    }
}

/// An id in the `dot-atom-text` alphabet: `[A-Za-z0-9-]` kept, every other byte `=XX`.
fn id_part(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "={b:02X}");
        }
    }
    if out.is_empty() { "none".into() } else { out }
}

/// The domain of `from` (already a valid address domain); anything else is escaped as an id.
fn id_part_domain(domain: &str) -> String {
    let ok = !domain.is_empty()
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        domain.to_owned()
    } else {
        id_part(domain)
    }
}

/// "Fall", "Emergency button pressed": what happened, in a carer's words.
pub fn what(kind: Kind) -> &'static str {
    kind.label()
}

fn priority_word(p: Priority) -> &'static str {
    match p {
        Priority::High => "HIGH",
        Priority::Medium => "MEDIUM",
        Priority::Low => "LOW",
        Priority::Info => "INFO",
    }
}

/// "Room 9, West wing", "Area East", else the device, else "place not known".
pub fn place(n: &Notice) -> String {
    match (&n.room, &n.area) {
        (Some(room), Some(area)) => format!("Room {room}, {area}"),
        (Some(room), None) => format!("Room {room}"),
        (None, Some(area)) => format!("Area {area}"),
        (None, None) => match &n.device_id {
            Some(d) => format!("device {d}"),
            None => "place not known".into(),
        },
    }
}

/// "Fall (suspected)".
fn what_exactly(n: &Notice) -> String {
    let sure = if n.suspected { " (suspected)" } else { "" };
    format!("{}{sure}", what(n.kind))
}

/// What changed, first in the subject: "HIGH", "ESCALATED (not acknowledged)",
/// "Acknowledged by Sam", "Resolved".
pub fn lead(n: &Notice) -> String {
    let prio = priority_word(n.priority);
    let by = |verb: &str| match n.alert.as_ref().and_then(|a| a.by.as_deref()) {
        Some(b) => format!("{verb} by {}", clean(b, 40)),
        None => verb.to_owned(),
    };
    if !n.lifecycle {
        return match n.phase {
            Some(Phase::Cleared) => "Cleared".into(),
            _ => prio.into(),
        };
    }
    match n.reason() {
        Some("raised") => prio.into(),
        Some("raised_again" | "repeated") => format!("{prio} again"),
        Some("upgraded") => format!("Now {prio}"),
        Some("ack_timeout") => "ESCALATED (not acknowledged)".into(),
        Some("delivery_failed") => "ESCALATED (not delivered)".into(),
        Some("repeat") => "REMINDER (not acknowledged)".into(),
        Some("not_resolved") => "REMINDER (not resolved)".into(),
        Some("acknowledged") => by("Acknowledged"),
        Some("device_cleared") => "Cleared".into(),
        Some("device_restored" | "cancelled") => "STILL OPEN".into(),
        Some("resolved") => by("Resolved"),
        _ => match n.phase {
            Some(Phase::Raised) => prio.into(),
            Some(Phase::Escalated) => "ESCALATED".into(),
            Some(Phase::Acknowledged) => by("Acknowledged"),
            Some(Phase::Resolved) => by("Resolved"),
            Some(Phase::Cleared) => "Cleared".into(),
            Some(Phase::Point) | None => "Update".into(),
        },
    }
}

/// "HIGH: Fall – Room 9, West wing"; "[TEST] " in front of test events. One line, at most
/// [`MAX_SUBJECT`] characters.
pub fn subject(n: &Notice) -> String {
    let test = if n.test { "[TEST] " } else { "" };
    clean(
        &format!("{test}{}: {} – {}", lead(n), what_exactly(n), place(n)),
        MAX_SUBJECT,
    )
}

/// The event time in the site's zone with the zone named, and in UTC: "Thu 17 Apr 2026,
/// 16:33:22 BST (15:33:22 UTC)"; in UTC alone when the site runs on UTC.
pub fn when(t: jiff::Timestamp, tz: &TimeZone) -> String {
    let utc = t.to_zoned_datetime(TimeZone::UTC);
    let is_utc = tz.iana_name().is_none_or(|n| n == "UTC" || n == "Etc/UTC")
        && tz.to_offset(t) == jiff::tz::Offset::UTC;
    if is_utc {
        return utc.strftime("%a %d %b %Y, %H:%M:%S UTC").to_string();
    }
    let local = t.to_zoned_datetime(tz.clone());
    format!(
        "{} ({} UTC)",
        local.strftime("%a %d %b %Y, %H:%M:%S %Z"),
        utc.strftime("%H:%M:%S")
    )
}

/// The plain-text body: what, where, when, who is told, what to do, and the ids.
pub fn body(n: &Notice, ctx: &Context<'_>) -> String {
    let mut b = String::new();
    let line = |b: &mut String, label: &str, value: &str| {
        let _ = writeln!(b, "{label:<11} {value}");
    };
    let _ = writeln!(b, "{}\n", subject(n));
    if n.test {
        let _ = writeln!(b, "This is a TEST event: no one needs to go.\n");
    }
    line(&mut b, "What:", &what_exactly(n));
    let mut where_ = place(n);
    if let Some(site) = &n.site {
        let _ = write!(where_, " (site {site})");
    }
    line(&mut b, "Where:", &where_);
    let when_ = match n.time {
        Some(t) => when(t, ctx.timezone),
        None => "not stated in the event".into(),
    };
    line(&mut b, "When:", &when_);
    line(
        &mut b,
        "Priority:",
        &priority_word(n.priority).to_lowercase(),
    );
    if let Some(a) = &n.alert {
        if let Some(status) = &a.status {
            let status = match status.as_str() {
                "open" => "open, not yet acknowledged".to_owned(),
                "acknowledged" => "acknowledged, not yet resolved".to_owned(),
                "cleared" => "cleared by the device".to_owned(),
                other => other.to_owned(),
            };
            line(&mut b, "Status:", &status);
        }
        if let Some(by) = &a.by {
            line(&mut b, "By:", by);
        }
        if let Some(outcome) = &a.outcome {
            line(&mut b, "Outcome:", &outcome.replace('_', " "));
        }
        if let Some(note) = &a.note {
            line(&mut b, "Note:", note);
        }
    }
    if let Some(d) = &n.device_id {
        line(&mut b, "Device:", d);
    }
    if let Some(r) = &n.resident {
        line(&mut b, "Resident:", r);
    }
    for r in &n.readings {
        line(&mut b, "Reading:", r);
    }
    if let Some(m) = &n.message {
        line(&mut b, "Pager text:", m);
    }
    let _ = writeln!(b);
    let addresses = if ctx.recipients == 1 {
        "the 1 address".to_owned()
    } else {
        format!("the {} addresses", ctx.recipients)
    };
    let level = n.alert.as_ref().and_then(|a| a.level).unwrap_or(0);
    let tiers = match level {
        0 => String::new(),
        1 => " The alert has been escalated once: the next tier has been told as well.".into(),
        l => format!(
            " The alert has been escalated {l} times: further tiers have been told as well."
        ),
    };
    let _ = writeln!(
        b,
        "Who is told: this email went to {addresses} in its To line. Other teams may be told by pager, phone or the console.{tiers}\n"
    );
    let status = n.alert.as_ref().and_then(|a| a.status.as_deref());
    let todo = match (n.lifecycle, status) {
        (_, Some("resolved")) => "Nothing more to do: the alert is resolved.",
        (_, Some("acknowledged")) => {
            "Someone is dealing with it. Resolve the alert on the console once the resident has been attended to."
        }
        (true, _) => {
            "What to do: acknowledge on the console or reply on your handset to say you are going, then attend. Replying to this email does NOT acknowledge the alert."
        }
        (false, _) => {
            "This is a device event. If it needs attention, act on the alert on the console or on your handset; replying to this email does nothing."
        }
    };
    let _ = writeln!(b, "{todo}\n");
    if let Some(a) = &n.alert_id {
        line(&mut b, "Alert id:", a);
    }
    line(&mut b, "Event id:", &n.event_id);
    let _ = write!(
        b,
        "-- \nSent by atgw gateway {}\n",
        clean(ctx.gateway_id, 80)
    );
    b
}

const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
const IMPORTANCE: HeaderName = HeaderName::new_from_ascii_str("Importance");
const EVENT_ID: HeaderName = HeaderName::new_from_ascii_str("X-Atgw-Event-Id");
const ALERT_ID: HeaderName = HeaderName::new_from_ascii_str("X-Atgw-Alert-Id");
const BUNDLE: HeaderName = HeaderName::new_from_ascii_str("X-Atgw-Bundle");

/// The message lettre sends: the composed parts with the sender and recipients.
///
/// `Auto-Submitted: auto-generated` (RFC 3834) keeps out-of-office replies away;
/// `Importance: high` flags a high-priority alert in mail clients; `X-Atgw-Event-Id` (and
/// `X-Atgw-Alert-Id`) let a receiving system deduplicate and correlate without parsing the body.
/// A bundle has `X-Atgw-Bundle: <count>` instead (its event ids are in the body).
pub fn message(c: &Composed, from: &Mailbox, to: &[Mailbox]) -> Result<Message, String> {
    let mut m: MessageBuilder = Message::builder()
        .from(from.clone())
        .subject(c.subject.clone())
        .message_id(Some(c.message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()));
    m = if c.members > 1 {
        m.raw_header(HeaderValue::new(BUNDLE, c.members.to_string()))
    } else {
        m.raw_header(HeaderValue::new(EVENT_ID, c.event_id.clone()))
    };
    for t in to {
        m = m.to(t.clone());
    }
    if let Some(root) = &c.in_reply_to {
        m = m.in_reply_to(root.clone()).references(root.clone());
    }
    if let Some(a) = &c.alert_id {
        m = m.raw_header(HeaderValue::new(ALERT_ID, a.clone()));
    }
    if c.priority == Priority::High {
        m = m.raw_header(HeaderValue::new(IMPORTANCE, "high".into()));
    }
    m.body(c.body.clone())
        .map_err(|e| format!("cannot build the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::AlertNote;
    use proptest::prelude::*;

    const DOMAIN: &str = "oakview.example";

    fn fall(reason: &str) -> Notice {
        Notice {
            event_id: format!("ev-{reason}"),
            kind: Kind::Fall,
            priority: Priority::High,
            phase: Some(Phase::Raised),
            suspected: false,
            test: false,
            time: Some("2026-04-17T15:33:22.184Z".parse().unwrap()),
            site: Some("oakview".into()),
            area: Some("West wing".into()),
            room: Some("9".into()),
            device_id: Some("radar-9".into()),
            resident: Some("res-0042".into()),
            message: Some("ALERT: Fall - Room 9, West wing".into()),
            lifecycle: true,
            alert_id: Some("0190aaaa-0000-7000-8000-000000000009".into()),
            alert: Some(AlertNote {
                status: Some("open".into()),
                level: Some(0),
                reason: Some(reason.into()),
                ..AlertNote::default()
            }),
            readings: Vec::new(),
        }
    }

    fn ctx(tz: &TimeZone) -> Context<'_> {
        Context {
            gateway_id: "gw-oakview",
            timezone: tz,
            recipients: 2,
        }
    }

    #[test]
    fn subjects_say_what_changed_what_and_where() {
        assert_eq!(subject(&fall("raised")), "HIGH: Fall – Room 9, West wing");
        let mut n = fall("ack_timeout");
        n.phase = Some(Phase::Escalated);
        assert_eq!(
            subject(&n),
            "ESCALATED (not acknowledged): Fall – Room 9, West wing"
        );
        let mut n = fall("acknowledged");
        n.alert.as_mut().unwrap().by = Some("Sam (night)".into());
        assert_eq!(
            subject(&n),
            "Acknowledged by Sam (night): Fall – Room 9, West wing"
        );
        let mut n = fall("resolved");
        n.suspected = true;
        n.area = None;
        assert_eq!(subject(&n), "Resolved: Fall (suspected) – Room 9");
        let mut n = fall("raised");
        n.test = true;
        n.room = None;
        n.area = None;
        assert_eq!(subject(&n), "[TEST] HIGH: Fall – device radar-9");
        assert_eq!(
            subject(&fall("not_resolved")),
            "REMINDER (not resolved): Fall – Room 9, West wing"
        );
        assert_eq!(
            subject(&fall("upgraded")),
            "Now HIGH: Fall – Room 9, West wing"
        );
        let mut n = fall("device_restored");
        n.kind = Kind::PendantPress;
        assert_eq!(
            subject(&n),
            "STILL OPEN: Emergency button pressed – Room 9, West wing"
        );
    }

    #[test]
    fn a_device_event_leads_with_its_priority_or_cleared() {
        let mut n = fall("raised");
        n.lifecycle = false;
        n.alert = None;
        n.kind = Kind::WaterLeak;
        n.priority = Priority::Medium;
        assert_eq!(subject(&n), "MEDIUM: Water leak – Room 9, West wing");
        n.phase = Some(Phase::Cleared);
        assert_eq!(subject(&n), "Cleared: Water leak – Room 9, West wing");
    }

    #[test]
    fn the_raise_is_the_thread_root_and_later_messages_answer_it() {
        let raise = fall("raised");
        let (id, parent) = thread(&raise, DOMAIN);
        assert_eq!(
            id,
            "<alert.0190aaaa-0000-7000-8000-000000000009@oakview.example>"
        );
        assert_eq!(parent, None);
        for later in [
            "ack_timeout",
            "acknowledged",
            "resolved",
            "raised_again",
            "repeated",
        ] {
            let (id, parent) = thread(&fall(later), DOMAIN);
            assert_eq!(
                id,
                format!("<event.ev-{later}@oakview.example>").replace('_', "=5F")
            );
            assert_eq!(
                parent.as_deref(),
                Some(thread_id(raise.alert_id.as_deref().unwrap(), DOMAIN).as_str())
            );
        }
        // A retry of one delivery is the same message: the same id.
        assert_eq!(
            thread(&fall("acknowledged"), DOMAIN),
            thread(&fall("acknowledged"), DOMAIN)
        );
        // An event of no alert stands alone.
        let mut n = fall("raised");
        n.alert_id = None;
        n.lifecycle = false;
        assert_eq!(
            thread(&n, DOMAIN),
            ("<event.ev-raised@oakview.example>".into(), None)
        );
    }

    #[test]
    fn ids_are_escaped_injectively() {
        assert_eq!(id_part("a.b"), "a=2Eb");
        assert_eq!(id_part("a=2Eb"), "a=3D2Eb");
        assert_ne!(id_part("a b"), id_part("a_b"));
        assert_eq!(id_part(""), "none");
        assert_eq!(id_part_domain("oakview.example"), "oakview.example");
        assert_eq!(id_part_domain("[10.0.0.1]"), "=5B10=2E0=2E0=2E1=5D");
    }

    #[test]
    fn the_body_says_what_where_when_who_and_how_to_acknowledge() {
        let tz = TimeZone::get("Europe/London").unwrap();
        let b = body(&fall("raised"), &ctx(&tz));
        assert!(b.starts_with("HIGH: Fall – Room 9, West wing\n"), "{b}");
        assert!(b.contains("What:       Fall\n"), "{b}");
        assert!(
            b.contains("Where:      Room 9, West wing (site oakview)\n"),
            "{b}"
        );
        assert!(
            b.contains("When:       Fri 17 Apr 2026, 16:33:22 BST (15:33:22 UTC)\n"),
            "{b}"
        );
        assert!(b.contains("the 2 addresses"), "{b}");
        assert!(
            b.contains("acknowledge on the console or reply on your handset"),
            "{b}"
        );
        assert!(b.contains("does NOT acknowledge"), "{b}");
        assert!(
            b.contains("Alert id:   0190aaaa-0000-7000-8000-000000000009\n"),
            "{b}"
        );
        assert!(b.contains("Event id:   ev-raised\n"), "{b}");
        let b = body(&fall("raised"), &ctx(&TimeZone::UTC));
        assert!(
            b.contains("When:       Fri 17 Apr 2026, 15:33:22 UTC\n"),
            "{b}"
        );
        let mut n = fall("acknowledged");
        n.alert.as_mut().unwrap().status = Some("acknowledged".into());
        n.alert.as_mut().unwrap().level = Some(1);
        let b = body(&n, &ctx(&TimeZone::UTC));
        assert!(
            b.contains("Status:     acknowledged, not yet resolved"),
            "{b}"
        );
        assert!(b.contains("escalated once"), "{b}");
        assert!(!b.contains("reply on your handset"), "{b}");
    }

    fn header_section(raw: &[u8]) -> String {
        let text = String::from_utf8_lossy(raw);
        text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
    }

    const HEADERS: &[&str] = &[
        "From:",
        "To:",
        "Subject:",
        "Message-ID:",
        "In-Reply-To:",
        "References:",
        "Content-Type:",
        "Content-Transfer-Encoding:",
        "Date:",
        "Auto-Submitted:",
        "Importance:",
        "X-Atgw-Event-Id:",
        "X-Atgw-Alert-Id:",
        "X-Atgw-Bundle:",
    ];

    #[test]
    fn the_formatted_message_threads_and_carries_its_ids() {
        let c = compose(&fall("acknowledged"), DOMAIN, &ctx(&TimeZone::UTC));
        let from: Mailbox = "Oakview alerts <atgw@oakview.example>".parse().unwrap();
        let to: Vec<Mailbox> = vec!["night@oakview.example".parse().unwrap()];
        let raw = message(&c, &from, &to).unwrap().formatted();
        let h = header_section(&raw);
        assert!(
            h.contains("Message-ID: <event.ev-acknowledged@oakview.example>"),
            "{h}"
        );
        let root = "<alert.0190aaaa-0000-7000-8000-000000000009@oakview.example>";
        assert!(h.contains(&format!("In-Reply-To: {root}")), "{h}");
        assert!(h.contains(&format!("References: {root}")), "{h}");
        assert!(h.contains("X-Atgw-Event-Id: ev-acknowledged"), "{h}");
        assert!(h.contains("Auto-Submitted: auto-generated"), "{h}");
        assert!(h.contains("Importance: high"), "{h}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Header injection: whatever the event's texts and ids hold, the formatted message's
        /// header section has only our headers (each line is one of them or a folded
        /// continuation), and the composed header values hold no CR or LF.
        #[test]
        fn no_event_text_can_add_a_header(
            text in ".{0,200}", room in ".{0,40}", area in ".{0,40}", by in ".{0,60}",
            note in ".{0,100}", device in ".{0,40}", event_id in ".{0,60}", alert_id in ".{0,60}",
            kind in ".{0,20}", reason in ".{0,20}", crlf in "(\r\n|\n|\r)[A-Za-z-]{1,12}: ?[a-z@.]{0,20}",
        ) {
            let inject = |s: &str| format!("{s}{crlf}");
            let json = serde_json::json!({
                "type": "atgw.alert.acknowledged", "time": "2026-04-17T15:33:22.184Z",
                "data": {
                    "kind": kind, "priority": "high", "message": inject(&text),
                    "device": {"id": inject(&device)},
                    "location": {"site": "s", "room": inject(&room), "area": inject(&area)},
                    "alert": {"reason": reason, "by": inject(&by), "note": inject(&note), "status": "open"}
                }
            });
            let d = atgw_sdk::sink::Delivery {
                outbox_id: 1,
                event_id: inject(&event_id).into(),
                kind: Kind::Fall,
                priority: Priority::High,
                device_id: inject(&device).into(),
                json: json.to_string().into(),
                attempt: 0,
                alert_id: Some(inject(&alert_id).into()),
                lifecycle: true,
                recipients: Default::default(),
            };
            let n = Notice::read(&d);
            let c = compose(&n, DOMAIN, &ctx(&TimeZone::UTC));
            for v in [&c.subject, &c.message_id, &c.event_id] {
                prop_assert!(!v.contains(['\r', '\n']), "{v:?}");
            }
            prop_assert!(c.in_reply_to.iter().chain(c.alert_id.iter()).all(|v| !v.contains(['\r', '\n'])));
            let from: Mailbox = "atgw@oakview.example".parse().unwrap();
            let to: Vec<Mailbox> = vec!["night@oakview.example".parse().unwrap()];
            let raw = message(&c, &from, &to).unwrap().formatted();
            let h = header_section(&raw);
            for line in h.split("\r\n") {
                prop_assert!(
                    line.starts_with([' ', '\t']) || HEADERS.iter().any(|k| line.starts_with(k)),
                    "unexpected header line {line:?}"
                );
                prop_assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
            }
        }

        /// Any JSON at all, and any bytes as text, give a message without panicking.
        #[test]
        fn any_event_json_composes_without_panic(text in ".{0,400}", n in 0u8..4) {
            let json = match n {
                0 => text.clone(),
                1 => serde_json::json!({"data": text}).to_string(),
                2 => serde_json::json!({"data": {"alert": text, "location": [text], "observations": {"x": text}}}).to_string(),
                _ => serde_json::json!({"time": text, "data": {"observations": [{"name": text, "value": 1e308, "unit": text}], "alert": {"level": -1, "by": 7}}}).to_string(),
            };
            let d = atgw_sdk::sink::Delivery {
                outbox_id: 1,
                event_id: text.clone().into(),
                kind: Kind::Unknown,
                priority: Priority::Info,
                device_id: text.into(),
                json: json.into(),
                attempt: 0,
                alert_id: None,
                lifecycle: false,
                recipients: Default::default(),
            };
            let tz = TimeZone::get("Europe/London").unwrap();
            let c = compose(&Notice::read(&d), DOMAIN, &ctx(&tz));
            let from: Mailbox = "atgw@oakview.example".parse().unwrap();
            prop_assert!(message(&c, &from, std::slice::from_ref(&from)).is_ok());
        }
    }
}
