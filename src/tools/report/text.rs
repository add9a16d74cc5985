//! The terminal summary: the headline figures in a few lines, the same numbers as the HTML.

use std::fmt::Write;

use super::Report;
use super::stats::{self, AckStats};

/// Journal text with control characters (a terminal's escape sequences) replaced.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn waits(s: &AckStats) -> String {
    match (s.p50_ms, s.p90_ms, s.max_ms) {
        (Some(p50), Some(p90), Some(max)) => format!(
            "p50 {}, p90 {}, max {}",
            stats::human_duration(p50),
            stats::human_duration(p90),
            stats::human_duration(max)
        ),
        _ => "none acknowledged".into(),
    }
}

/// The summary printed by `atgw report`.
pub fn summary(r: &Report) -> String {
    let mut t = String::new();
    let site = if r.site.is_empty() {
        String::new()
    } else {
        format!("{}, ", r.site)
    };
    let _ = writeln!(
        t,
        "atgw report: {}{} to {} (days in {})",
        plain(&site),
        r.from,
        r.to,
        r.timezone
    );
    let kinds = stats::kind_totals(&r.alerts);
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|(k, n)| format!("{} {n}", plain(k)))
        .collect();
    let _ = writeln!(
        t,
        "  alerts:              {}{}",
        r.alerts.len(),
        if by_kind.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_kind.join(", "))
        }
    );
    let all = stats::ack_stats("all", &r.alerts);
    let _ = writeln!(
        t,
        "  acknowledged:        {} of {}; time to acknowledge {}",
        all.acknowledged,
        all.alerts,
        waits(&all)
    );
    for s in stats::ack_by_priority(&r.alerts) {
        let _ = writeln!(
            t,
            "    {:<8} {:>4} alerts, {:>4} acknowledged: {}",
            plain(&s.group),
            s.alerts,
            s.acknowledged,
            waits(&s)
        );
    }
    for s in stats::ack_by_area(&r.alerts) {
        let _ = writeln!(
            t,
            "    area {:<12} {:>4} alerts: {}",
            plain(&s.group),
            s.alerts,
            waits(&s)
        );
    }
    let e = stats::escalations(&r.alerts);
    let _ = writeln!(
        t,
        "  escalated:           {} alerts ({} tier escalations, {} repeats, {} reminders, {} not attended in time)",
        e.alerts_escalated, e.tier_escalations, e.repeats, e.reminders, e.not_attended
    );
    let outcomes: Vec<String> = stats::outcomes(&r.alerts)
        .into_iter()
        .filter(|(k, n)| *n > 0 || k == "false_alarm")
        .map(|(k, n)| format!("{} {n}", plain(&k)))
        .collect();
    let _ = writeln!(t, "  outcomes:            {}", outcomes.join(", "));
    let devices = stats::test_calls_by_device(&r.test_calls).len();
    let _ = writeln!(
        t,
        "  test calls:          {} (from {devices} devices)",
        r.test_calls.len()
    );
    let episodes: u64 = r
        .devices
        .iter()
        .map(|d| u64::from(d.offline_episodes))
        .sum();
    let lowest = r
        .devices
        .iter()
        .filter_map(|d| d.uptime_percent().map(|p| (p, d.id.as_str())))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let _ = writeln!(
        t,
        "  devices:             {} heard, {episodes} offline episodes{}",
        r.devices.len(),
        lowest
            .map(|(p, id)| format!(", lowest uptime {p:.2} % ({})", plain(id)))
            .unwrap_or_default()
    );
    let battery: Vec<String> = r
        .devices
        .iter()
        .filter(|d| d.battery_warning())
        .map(|d| plain(&d.id))
        .collect();
    let _ = writeln!(
        t,
        "  battery warnings:    {} devices{}",
        battery.len(),
        if battery.is_empty() {
            String::new()
        } else {
            format!(" ({})", battery.join(", "))
        }
    );
    let _ = writeln!(
        t,
        "  residents:           {} with alerts{}",
        stats::distinct_residents(&r.alerts),
        if r.include_residents {
            ""
        } else {
            " (ids left out; --include-residents adds them)"
        }
    );
    t
}
