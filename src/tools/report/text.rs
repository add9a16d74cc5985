//! The terminal summary: the headline figures in a few lines, the same numbers as the HTML.

use std::fmt::Write;

use super::compare::{self, Comparison};
use super::stats::{self, AckStats};
use super::{Report, standard};

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
    standard_lines(&mut t, r);
    if let Some(b) = &r.baseline {
        comparison_lines(&mut t, r, b, &compare::compare(r, b));
    }
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

fn standard_lines(t: &mut String, r: &Report) {
    let _ = writeln!(
        t,
        "  acknowledged within 60 s / 180 s, beside the benchmark an evaluation compares against:\n    the {}.\n    Gateway time runs from the alert being raised to its first acknowledgement; unacknowledged\n    alerts count as not within; test alerts are left out.",
        standard::SOURCE
    );
    let mut periods = vec![("period", r)];
    if let Some(b) = &r.baseline {
        periods.push(("baseline", b));
    }
    for (name, p) in periods {
        let shares = standard::by_priority(&p.alerts);
        if shares.is_empty() {
            let _ = writeln!(t, "    {name:<8} {} to {}: no alerts", p.from, p.to);
            continue;
        }
        for s in shares {
            let _ = writeln!(
                t,
                "    {name:<8} {:<8} {:>4} alerts: {} within 60 s ({}), {} within 180 s ({})",
                plain(&s.group),
                s.alerts,
                s.within[0],
                standard::percent_text(s.percent(0)),
                s.within[1],
                standard::percent_text(s.percent(1)),
            );
        }
    }
}

fn comparison_lines(t: &mut String, r: &Report, b: &Report, c: &Comparison) {
    let _ = writeln!(
        t,
        "  baseline {} to {} beside this period (alerts per 1,000 monitored device-days; test alerts left out):",
        b.from, b.to
    );
    for (has, name, p) in [
        (c.baseline_has_data, "baseline", b),
        (c.pilot_has_data, "period", r),
    ] {
        if !has {
            let _ = writeln!(
                t,
                "    the {name} ({} to {}) has no data in the journal (no alerts, no monitored devices): no changes shown",
                p.from, p.to
            );
        }
    }
    let wait = |ms: Option<i64>| ms.map(stats::human_duration).unwrap_or_else(|| "–".into());
    for row in &c.rows {
        let side = |f: &compare::Figures| {
            format!(
                "{} alerts ({} /1000 dd), {} acked, p50 {}, p90 {}, {} escalated",
                f.alerts,
                compare::rate_text(f.per_1000_device_days()),
                f.acknowledged,
                wait(f.p50_ms),
                wait(f.p90_ms),
                f.escalated
            )
        };
        let _ = writeln!(
            t,
            "    {} {}: baseline {}; period {}",
            row.scope.as_str(),
            plain(&row.group),
            side(&row.baseline),
            side(&row.pilot)
        );
        if c.comparable() {
            let _ = writeln!(
                t,
                "      change: rate {}, acknowledged {}, p50 {}, p90 {}, escalated {}",
                compare::change_text(row.rate_change()),
                compare::points_text(row.acknowledged_change_pp()),
                compare::change_text(row.p50_change()),
                compare::change_text(row.p90_change()),
                compare::points_text(row.escalated_change_pp()),
            );
        }
    }
}
