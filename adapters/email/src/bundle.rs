//! One email for several notifications to the same people (pure, no I/O): `bundle_window`
//! (see [`atgw_sdk::bundle`] for when the sink holds and flushes).
//!
//! The subject counts and lists them, most recent last, cut to the subject's length:
//! `3 alerts: Low battery – Room 4, Door opened – Room 7, …`. The body has one numbered block
//! per notification (what changed, what, where, when, device, status, alert and event ids) and
//! one paragraph on how to acknowledge: each alert on its own, on the console or the handset.
//!
//! # Threading
//! A bundle speaks of several alerts, so it stands alone: its own `Message-ID`, no
//! `In-Reply-To` or `References` (naming one alert's thread would file the others under it;
//! naming all makes mail clients pick one arbitrarily). Its id is derived from every member's
//! event id, `<bundle.<n>.<first event id>.<digest>@domain>`, so a retry of the same bundle
//! carries the same id (a receiver drops the copy) while a different set of notifications, as
//! after a restart, never reuses one. A thread root that only went out inside a bundle is a
//! missing parent for the alert's later messages; mail clients still group those under it.
//! `X-Atgw-Bundle` carries the count; the event ids are in the body.

use std::fmt::Write as _;

use atgw_sdk::Priority;

use crate::compose::{Composed, Context, body, lead, place, subject, what, when};
use crate::notice::{Notice, clean};

/// Longest subject, as for one notification.
const MAX_SUBJECT: usize = 160;

/// The message for `notices` (two or more, in outbox order).
pub fn compose_bundle(notices: &[Notice], domain: &str, ctx: &Context<'_>) -> Composed {
    let n = notices.len();
    let subject = bundle_subject(notices);
    let mut b = String::new();
    let _ = writeln!(b, "{subject}\n");
    let _ = writeln!(
        b,
        "{n} notifications for the same people arrived within a few minutes and are sent together. Each alert is listed on its own and must be acknowledged on its own.\n"
    );
    for (i, notice) in notices.iter().enumerate() {
        let _ = writeln!(b, "{}. {}", i + 1, subject_line(notice));
        let item = |b: &mut String, label: &str, value: &str| {
            let _ = writeln!(b, "   {label:<10} {value}");
        };
        if notice.test {
            item(&mut b, "Test:", "this is a TEST event: no one needs to go");
        }
        let when_ = match notice.time {
            Some(t) => when(t, ctx.timezone),
            None => "not stated in the event".into(),
        };
        item(&mut b, "When:", &when_);
        if let Some(d) = &notice.device_id {
            item(&mut b, "Device:", d);
        }
        if let Some(status) = notice.alert.as_ref().and_then(|a| a.status.as_deref()) {
            item(&mut b, "Status:", status);
        }
        for r in &notice.readings {
            item(&mut b, "Reading:", r);
        }
        if let Some(a) = &notice.alert_id {
            item(&mut b, "Alert id:", a);
        }
        item(&mut b, "Event id:", &notice.event_id);
        let _ = writeln!(b);
    }
    // The single message's closing lines (who is told, what to do) from the first notice,
    // worded for several.
    let single = body(&notices[0], ctx);
    if let Some(who) = single.lines().find(|l| l.starts_with("Who is told:")) {
        let _ = writeln!(b, "{}\n", who.replace("this email", "this bundled email"));
    }
    let _ = writeln!(
        b,
        "What to do: acknowledge each open alert on the console or on your handset, then attend. Replying to this email does NOT acknowledge any of them.\n"
    );
    let _ = write!(
        b,
        "-- \nSent by atgw gateway {}\n",
        clean(ctx.gateway_id, 80)
    );
    let priority = notices
        .iter()
        .map(|n| n.priority)
        .min_by_key(|p| rank(*p))
        .unwrap_or(Priority::Medium);
    Composed {
        subject,
        body: b,
        message_id: bundle_message_id(notices, domain),
        in_reply_to: None,
        event_id: notices[0].event_id.clone(),
        alert_id: None,
        priority,
        members: n,
    }
}

/// Lower is more urgent.
fn rank(p: Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
        Priority::Info => 3,
    }
}

/// `3 alerts: Low battery – Room 4, Door opened – Room 7, …`, one line, cut at an item.
pub fn bundle_subject(notices: &[Notice]) -> String {
    let test = if notices.iter().all(|n| n.test) {
        "[TEST] "
    } else {
        ""
    };
    let mut s = format!("{test}{} alerts: ", notices.len());
    for (i, n) in notices.iter().enumerate() {
        let item = clean(&format!("{} – {}", what(n.kind), place(n)), MAX_SUBJECT);
        let sep = if i == 0 { "" } else { ", " };
        let more = if i + 1 < notices.len() { ", …" } else { "" };
        if s.chars().count() + sep.len() + item.chars().count() + more.chars().count() > MAX_SUBJECT
        {
            s.push_str(if i == 0 { "…" } else { ", …" });
            return s;
        }
        s.push_str(sep);
        s.push_str(&item);
    }
    s
}

/// One notification's line: what changed, what, where (the single message's subject).
fn subject_line(n: &Notice) -> String {
    let line = subject(n);
    if line.is_empty() {
        format!("{}: {} – {}", lead(n), what(n.kind), place(n))
    } else {
        line
    }
}

/// `<bundle.<n>.<first event id>.<digest of all>@domain>`: stable for one set of members.
pub fn bundle_message_id(notices: &[Notice], domain: &str) -> String {
    // FNV-1a over every member's event id: not a secret, only a different id for a different set.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for n in notices {
        for b in n.event_id.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let first = crate::compose::event_message_id(&notices[0].event_id, domain);
    // `<event.<id>@domain>` → `<bundle.<n>.<id>.<digest>@domain>`.
    let inner = first
        .trim_start_matches("<event.")
        .trim_end_matches('>')
        .to_owned();
    let (id, dom) = inner.split_once('@').unwrap_or((inner.as_str(), domain));
    format!("<bundle.{}.{id}.{h:016x}@{dom}>", notices.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::AlertNote;
    use atgw_sdk::{Kind, Phase};
    use jiff::tz::TimeZone;

    fn notice(i: u32, kind: Kind, room: &str) -> Notice {
        Notice {
            event_id: format!("0190f1a2-0000-7000-8000-00000000000{i}"),
            kind,
            priority: Priority::Medium,
            phase: Some(Phase::Raised),
            suspected: false,
            test: false,
            time: Some("2026-04-17T15:33:22.184Z".parse().unwrap()),
            site: Some("oakview".into()),
            area: Some("East".into()),
            room: Some(room.into()),
            device_id: Some(format!("dev-{i}")),
            resident: None,
            message: None,
            lifecycle: true,
            alert_id: Some(format!("alert-{i}")),
            alert: Some(AlertNote {
                status: Some("open".into()),
                reason: Some("raised".into()),
                ..AlertNote::default()
            }),
            readings: Vec::new(),
        }
    }

    fn ctx(tz: &TimeZone) -> Context<'_> {
        Context {
            gateway_id: "gw-oakview",
            timezone: tz,
            recipients: 1,
        }
    }

    #[test]
    fn the_subject_counts_and_lists_the_alerts() {
        let ns = [
            notice(1, Kind::LowBattery, "4"),
            notice(2, Kind::DoorExit, "7"),
        ];
        assert_eq!(
            bundle_subject(&ns),
            format!(
                "2 alerts: {} – Room 4, East, {} – Room 7, East",
                what(Kind::LowBattery),
                what(Kind::DoorExit)
            )
        );
        let many: Vec<Notice> = (0..9).map(|i| notice(i, Kind::LowBattery, "104")).collect();
        let s = bundle_subject(&many);
        assert!(s.starts_with("9 alerts: "), "{s}");
        assert!(s.ends_with(", …"), "{s}");
        assert!(s.chars().count() <= MAX_SUBJECT, "{s}");
    }

    #[test]
    fn the_body_lists_each_alert_and_how_to_acknowledge() {
        let ns = [
            notice(1, Kind::LowBattery, "4"),
            notice(2, Kind::DoorExit, "7"),
        ];
        let c = compose_bundle(&ns, "oakview.example", &ctx(&TimeZone::UTC));
        assert!(c.body.contains("1. MEDIUM: "), "{}", c.body);
        assert!(c.body.contains("2. MEDIUM: "), "{}", c.body);
        assert!(
            c.body
                .contains("Event id:  0190f1a2-0000-7000-8000-000000000001")
        );
        assert!(
            c.body
                .contains("Event id:  0190f1a2-0000-7000-8000-000000000002")
        );
        assert!(c.body.contains("When:      Fri 17 Apr 2026, 15:33:22 UTC"));
        assert!(c.body.contains("acknowledge each open alert"), "{}", c.body);
        assert!(c.body.contains("does NOT acknowledge"), "{}", c.body);
        assert_eq!(c.in_reply_to, None);
        assert_eq!(c.members, 2);
    }

    #[test]
    fn a_bundle_id_is_stable_for_its_members_and_differs_for_others() {
        let a = [
            notice(1, Kind::LowBattery, "4"),
            notice(2, Kind::DoorExit, "7"),
        ];
        let b = [
            notice(1, Kind::LowBattery, "4"),
            notice(3, Kind::DoorExit, "7"),
        ];
        let id = bundle_message_id(&a, "oakview.example");
        assert_eq!(id, bundle_message_id(&a, "oakview.example"));
        assert_ne!(id, bundle_message_id(&b, "oakview.example"));
        assert!(
            id.starts_with("<bundle.2.0190f1a2-0000-7000-8000-000000000001.")
                && id.ends_with("@oakview.example>"),
            "{id}"
        );
    }
}
