//! The live timeline: one aligned line per step of every alert's story (device event, alert
//! raised, phones notified, escalated, acknowledged, cleared, resolved), telemetry dimmed.
//!
//! Lines come from two places that race each other: the console (events and lifecycle events
//! as the care platform receives them upstream) and the phones (webhooks). So a line is held for
//! [`HOLD`] and printed in the order of its time on the gateway's clock, not of its arrival:
//! "notified" never precedes the "ALERT raised" it belongs to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_sdk::Shutdown;
use atgw_sdk::event::{Event, EventData, Phase, Priority};
use jiff::Timestamp;

/// How long a line waits for earlier lines that are still on their way.
const HOLD: Duration = Duration::from_millis(300);

/// What the policy does, for the words on the lines (the config is generated from the same
/// values).
#[derive(Clone, Copy, Debug)]
pub struct PolicyTimes {
    pub escalate_after: Duration,
}

/// Counters the summary reports.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Gateway receipt (`recordedtime`) to arrival at the console, per event, in ms.
    pub latency_ms: Vec<f64>,
    pub signatures_ok: u64,
    pub signatures_failed: u64,
    pub problems: u64,
}

/// The timeline, shared by the console, the phones and the devices.
pub struct Timeline {
    start: Timestamp,
    colour: bool,
    policy: PolicyTimes,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: Vec<Line>,
    seq: u64,
    /// Alert id → gateway time of its raise (ms since the demo started), for time to ack.
    raised_ms: HashMap<String, i64>,
    stats: Stats,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Telemetry,
    Alarm,
    Raised,
    Notified,
    Escalated,
    Nudged,
    Acknowledged,
    Cleared,
    Resolved,
    Problem,
}

struct Line {
    at_ms: i64,
    /// Same instant: the device event before its alert before its notification.
    rank: u8,
    seq: u64,
    arrived: Instant,
    style: Style,
    path: String,
    place: String,
    alert: String,
    step: String,
    detail: String,
}

/// `mqtt`, `dc09` or `gw`: the protocol path an event took into the gateway.
pub fn path_of(adapter: &str) -> &'static str {
    match adapter {
        "zigbee" => "mqtt",
        "alarms" => "dc09",
        "nurse-call" => "espa",
        super::scaip_unit::ADAPTER => "scaip",
        crate::GATEWAY_ADAPTER => "gw",
        _ => "?",
    }
}

/// `area/room`, else the device id.
pub fn place_of(d: &EventData) -> String {
    match (&d.location.area, &d.location.room) {
        (Some(a), Some(r)) => format!("{a}/{r}"),
        (Some(a), None) => a.clone(),
        _ => d.device.id.clone(),
    }
}

/// The last six hex digits of an alert id: a UUIDv7 begins with its creation time, so alerts
/// raised in the same second share their first digits.
pub fn short_id(id: &str) -> String {
    let hex: Vec<char> = id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail: String = hex[hex.len().saturating_sub(6)..].iter().collect();
    format!("#{tail}")
}

/// The person-facing part of a lifecycle message (`"ALERT by x: Fall - Room 9"` → `"Fall -
/// Room 9"`).
fn base_message(d: &EventData) -> &str {
    let m = d.message.as_deref().unwrap_or("");
    m.split_once(": ").map(|(_, b)| b).unwrap_or(m)
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl Timeline {
    pub fn new(start: Timestamp, colour: bool, policy: PolicyTimes) -> Arc<Timeline> {
        Arc::new(Timeline {
            start,
            colour,
            policy,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Milliseconds since the demo started, on the wall clock the gateway stamps events with.
    fn since_start(&self, t: Timestamp) -> i64 {
        t.duration_since(self.start).as_millis() as i64
    }

    pub fn print_header(&self) {
        println!(
            "  {:>7}  {:<4}  {:<14}  {:<7}  {:<14}  detail",
            "t", "path", "where", "alert", "step"
        );
    }

    /// An event as the care platform received it (upstream broker or audit file).
    pub fn upstream(&self, e: &Event) {
        let latency = Timestamp::now()
            .duration_since(e.recordedtime)
            .as_secs_f64()
            * 1000.0;
        if let Ok(mut i) = self.inner.lock() {
            i.stats.latency_ms.push(latency);
        }
        match &e.data.alert {
            Some(_) => self.lifecycle(e),
            None => self.device_event(e),
        }
    }

    fn device_event(&self, e: &Event) {
        let d = &e.data;
        // A restore that closes an alert is told by the alert's own `cleared` line.
        if d.phase == Phase::Cleared && e.correlationid.is_some() {
            return;
        }
        let telemetry = matches!(d.priority, Priority::Info | Priority::Low);
        let (style, step, detail) = if d.test {
            (
                Style::Telemetry,
                "test call",
                d.message.clone().unwrap_or_default(),
            )
        } else if telemetry && e.correlationid.is_none() {
            (Style::Telemetry, "telemetry", telemetry_text(d))
        } else {
            let conf = d
                .confidence
                .map(|c| format!(" {}", c.as_str()))
                .unwrap_or_default();
            (
                Style::Alarm,
                "event",
                format!(
                    "{} {}, {}{conf}: {}",
                    d.kind.as_str(),
                    d.phase.as_str(),
                    d.priority.as_str(),
                    d.message.as_deref().unwrap_or("")
                ),
            )
        };
        self.push(Line {
            at_ms: self.since_start(e.recordedtime),
            rank: 0,
            seq: 0,
            arrived: Instant::now(),
            style,
            path: path_of(&d.device.adapter).into(),
            place: place_of(d),
            alert: e.correlationid.as_deref().map(short_id).unwrap_or_default(),
            step: step.into(),
            detail,
        });
    }

    fn lifecycle(&self, e: &Event) {
        let d = &e.data;
        let Some(a) = &d.alert else { return };
        let at_ms = self.since_start(e.recordedtime);
        let raised = self
            .inner
            .lock()
            .ok()
            .and_then(|i| i.raised_ms.get(&a.id).copied());
        let after = raised
            .map(|r| format!(", {} after the alert", seconds(at_ms - r)))
            .unwrap_or_default();
        let by = a.by.as_deref().unwrap_or("someone");
        let conf = d
            .confidence
            .map(|c| format!(", {}", c.as_str()))
            .unwrap_or_default();
        let (style, step, detail) = match (d.phase, a.reason.as_str()) {
            (Phase::Raised, "upgraded") => (
                Style::Raised,
                "ALERT upgraded",
                format!("now {}{conf}; carers told again", d.priority.as_str()),
            ),
            (Phase::Raised, "repeated") => (
                Style::Raised,
                "ALERT repeated",
                format!("{}; everyone told so far told again", base_message(d)),
            ),
            (Phase::Point, "device_restored" | "cancelled") => (
                Style::Nudged,
                "restore recorded",
                format!(
                    "{}; a resident's alarm stays {}",
                    if a.reason == "cancelled" {
                        "cancelled at the device"
                    } else {
                        "the device restored"
                    },
                    if a.status == "open" {
                        "open and escalating until a person acknowledges it"
                    } else {
                        "acknowledged until a person resolves it"
                    }
                ),
            ),
            (Phase::Raised, reason) => {
                if let Ok(mut i) = self.inner.lock() {
                    i.raised_ms.insert(a.id.clone(), at_ms);
                }
                let again = if reason == "raised_again" {
                    "came back before anyone closed it; "
                } else {
                    ""
                };
                (
                    Style::Raised,
                    "ALERT raised",
                    format!(
                        "{again}{} {}{conf} -> carers: {}",
                        d.kind.as_str(),
                        d.priority.as_str(),
                        base_message(d)
                    ),
                )
            }
            (Phase::Escalated, "ack_timeout") => (
                Style::Escalated,
                "ESCALATED",
                format!(
                    "-> senior: nobody acknowledged within {}s (level {})",
                    self.policy.escalate_after.as_secs(),
                    a.level
                ),
            ),
            (Phase::Escalated, "delivery_failed") => (
                Style::Escalated,
                "ESCALATED",
                "-> next tier at once: the notification could not be delivered".into(),
            ),
            (Phase::Escalated, "repeat") => (
                Style::Nudged,
                "repeated",
                format!(
                    "still not acknowledged{}; told again",
                    raised
                        .map(|r| format!(" after {}", seconds(at_ms - r)))
                        .unwrap_or_default()
                ),
            ),
            (Phase::Escalated, "not_resolved") => (
                Style::Nudged,
                "reminder",
                "acknowledged but not resolved yet; reminded".into(),
            ),
            (Phase::Escalated, other) => (Style::Nudged, "escalated", other.to_owned()),
            (Phase::Acknowledged, _) => (
                Style::Acknowledged,
                "acknowledged",
                format!("by {by}{after}"),
            ),
            (Phase::Cleared, _) => (
                Style::Cleared,
                "cleared",
                format!(
                    "by the device's restore ({}); a person still closes it",
                    base_message(d)
                ),
            ),
            (Phase::Resolved, _) => (
                Style::Resolved,
                "resolved",
                format!(
                    "{} (by {by}{after})",
                    a.outcome.as_deref().unwrap_or("no outcome")
                ),
            ),
            (phase, reason) => (
                Style::Nudged,
                "alert",
                format!("{} ({reason})", phase.as_str()),
            ),
        };
        self.push(Line {
            at_ms,
            rank: 1,
            seq: 0,
            arrived: Instant::now(),
            style,
            path: path_of(&d.device.adapter).into(),
            place: place_of(d),
            alert: short_id(&a.id),
            step: step.into(),
            detail,
        });
    }

    /// A phone received a notification (its signature already verified).
    pub fn notified(&self, team: super::team::Team, e: &Event) {
        use super::team::Team;
        let d = &e.data;
        let Some(a) = &d.alert else { return };
        let why = match a.reason.as_str() {
            "raised" => "",
            "raised_again" => " (raised again)",
            "upgraded" => " (upgrade)",
            "repeated" => " (raised again)",
            "device_restored" | "cancelled" => " (restore recorded: check the resident)",
            "repeat" => " (repeat)",
            "not_resolved" => " (reminder)",
            // Escalations reach everyone told so far; the line is about who is new.
            "ack_timeout" | "delivery_failed" if team == Team::Senior => " (escalation)",
            // Acknowledged, cleared, resolved: the phones update their screens quietly.
            _ => return,
        };
        self.push(Line {
            at_ms: self.since_start(Timestamp::now()),
            rank: 2,
            seq: 0,
            arrived: Instant::now(),
            style: Style::Notified,
            path: path_of(&d.device.adapter).into(),
            place: place_of(d),
            alert: short_id(&a.id),
            step: "notified".into(),
            detail: format!("{} rang{why}; signature verified", team.phones()),
        });
    }

    /// The demo's paging system showed a page (or a reset, call type `1`) on a handset.
    pub fn handset(&self, address: &str, call_type: &str, text: &str) {
        let (step, detail) = match call_type {
            "1" => ("reset", "page taken off the handset".to_owned()),
            _ => ("paged", format!("\"{text}\"")),
        };
        self.push(Line {
            at_ms: self.since_start(Timestamp::now()),
            rank: 2,
            seq: 0,
            arrived: Instant::now(),
            style: Style::Notified,
            path: "espa".into(),
            place: format!("DECT {address}"),
            alert: String::new(),
            step: step.into(),
            detail,
        });
    }

    pub fn signature_checked(&self, ok: bool) {
        if let Ok(mut i) = self.inner.lock() {
            if ok {
                i.stats.signatures_ok += 1;
            } else {
                i.stats.signatures_failed += 1;
            }
        }
    }

    /// Something that should not happen in the demo (a failed signature, an unacknowledged
    /// frame, an API call refused): printed at once, counted.
    pub fn problem(&self, text: String) {
        if let Ok(mut i) = self.inner.lock() {
            i.stats.problems += 1;
        }
        self.push(Line {
            at_ms: self.since_start(Timestamp::now()),
            rank: 3,
            seq: 0,
            // Not held: it says something went wrong, now.
            arrived: Instant::now()
                .checked_sub(HOLD)
                .unwrap_or_else(Instant::now),
            style: Style::Problem,
            path: String::new(),
            place: String::new(),
            alert: String::new(),
            step: "PROBLEM".into(),
            detail: text,
        });
    }

    fn push(&self, mut line: Line) {
        if let Ok(mut i) = self.inner.lock() {
            i.seq += 1;
            line.seq = i.seq;
            i.pending.push(line);
        }
    }

    /// Prints lines that have waited [`HOLD`] (or all of them), oldest gateway time first.
    pub fn flush(&self, all: bool) {
        for l in self.take(all) {
            println!("{l}");
        }
    }

    fn take(&self, all: bool) -> Vec<String> {
        let Ok(mut i) = self.inner.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let (mut ready, wait): (Vec<Line>, Vec<Line>) = i
            .pending
            .drain(..)
            .partition(|l| all || now.duration_since(l.arrived) >= HOLD);
        i.pending = wait;
        ready.sort_by_key(|l| (l.at_ms, l.rank, l.seq));
        ready.iter().map(|l| self.render(l)).collect()
    }

    fn render(&self, l: &Line) -> String {
        let t = format!("{:.2}s", l.at_ms as f64 / 1000.0);
        let step = format!("{:<14}", l.step);
        let (whole, step_on) = match (self.colour, l.style) {
            (false, _) => ("", ""),
            (true, Style::Telemetry) => ("\x1b[2m", ""),
            (true, Style::Problem) => ("\x1b[1;31m", ""),
            (true, Style::Alarm) => ("", "\x1b[1m"),
            (true, Style::Raised) => ("", "\x1b[1;31m"),
            (true, Style::Notified) => ("", "\x1b[36m"),
            (true, Style::Escalated) => ("", "\x1b[1;35m"),
            (true, Style::Nudged) => ("", "\x1b[33m"),
            (true, Style::Acknowledged) => ("", "\x1b[32m"),
            (true, Style::Cleared) => ("", "\x1b[34m"),
            (true, Style::Resolved) => ("", "\x1b[1;32m"),
        };
        let reset = if self.colour { "\x1b[0m" } else { "" };
        let step = if step_on.is_empty() {
            step
        } else {
            format!("{step_on}{step}{reset}")
        };
        let line = format!(
            "  {t:>7}  {:<4}  {:<14}  {:<7}  {step}  {}",
            l.path, l.place, l.alert, l.detail
        );
        if whole.is_empty() {
            line
        } else {
            format!("{whole}{line}{reset}")
        }
    }

    /// Prints held lines as they come of age until `stop`, then everything left.
    pub async fn printer(self: Arc<Self>, stop: Shutdown) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => self.flush(false),
            }
        }
        self.flush(true);
    }

    pub fn stats(&self) -> Stats {
        self.inner
            .lock()
            .map(|i| i.stats.clone())
            .unwrap_or_default()
    }

    /// When the demo started, on the gateway's clock.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn colour(&self) -> bool {
        self.colour
    }
}

/// A measurement in a few words (`spo2 96 %, pulse 72 /min`), else the device's message.
fn telemetry_text(d: &EventData) -> String {
    if d.observations.is_empty() {
        return format!(
            "{} {}: {}",
            d.kind.as_str(),
            d.phase.as_str(),
            d.message.as_deref().unwrap_or("")
        );
    }
    let parts: Vec<String> = d
        .observations
        .iter()
        .map(|o| match (o.value, &o.absent_reason) {
            (Some(v), _) => format!("{} {v} {}", o.name, o.unit.as_deref().unwrap_or("")),
            (None, Some(why)) => format!("{} absent ({why})", o.name),
            (None, None) => format!("{} absent", o.name),
        })
        .map(|s| s.trim_end().to_owned())
        .collect();
    format!("{}: {}", d.kind.as_str(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_use_the_random_end_of_a_uuid_v7() {
        assert_eq!(short_id("0190f1c2-7e4a-7b3c-9d2e-1a2b3c4d5e6f"), "#4d5e6f");
        assert_eq!(short_id("ab"), "#ab");
    }

    #[test]
    fn lines_print_in_gateway_time_order_whatever_their_arrival() {
        let tl = Timeline::new(
            Timestamp::now(),
            false,
            PolicyTimes {
                escalate_after: Duration::from_secs(5),
            },
        );
        let line = |at_ms, rank, step: &str| Line {
            at_ms,
            rank,
            seq: 0,
            arrived: Instant::now(),
            style: Style::Notified,
            path: "dc09".into(),
            place: "west/9".into(),
            alert: "#abcdef".into(),
            step: step.into(),
            detail: String::new(),
        };
        tl.push(line(1000, 2, "notified"));
        tl.push(line(1000, 1, "ALERT raised"));
        tl.push(line(900, 0, "event"));
        assert!(tl.take(false).is_empty(), "held for a moment");
        let lines = tl.take(true);
        let steps: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.split_whitespace().nth(4))
            .collect();
        assert_eq!(steps, ["event", "ALERT", "notified"], "{lines:#?}");
    }
}
