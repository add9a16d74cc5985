//! The report as CSV for spreadsheets: `alerts.csv` (one row per alert), `alerts_by_day.csv`,
//! `time_to_ack.csv`, `devices.csv` and `summary.csv` (headline figures, one per row). Times are
//! RFC 3339 in the site's zone with their offset; durations are decimal seconds.
//!
//! Text from the journal that a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first)
//! is prefixed with `'`, so opening the file cannot run anything (CWE-1236).

use std::path::{Path, PathBuf};

use super::stats::{self, AckStats};
use super::{Report, ReportError};

/// Journal text made safe for spreadsheets.
pub fn cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map(cell).unwrap_or_default()
}

/// The rows of one file, header first.
type Rows = fn(&Report) -> Vec<Vec<String>>;

/// Writes every CSV file into `dir`; returns their paths.
pub fn write_all(r: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let files: [(&str, Rows); 5] = [
        ("alerts.csv", alerts),
        ("alerts_by_day.csv", alerts_by_day),
        ("time_to_ack.csv", time_to_ack),
        ("devices.csv", devices),
        ("summary.csv", summary),
    ];
    let mut written = Vec::new();
    for (name, rows) in files {
        let path = dir.join(name);
        write(&path, rows(r)).map_err(|what| ReportError::Write {
            path: path.clone(),
            what,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn write(path: &Path, rows: Vec<Vec<String>>) -> Result<(), String> {
    let file = crate::paths::create_file(path, 0o644).map_err(|e| e.to_string())?;
    let mut w = ::csv::Writer::from_writer(file);
    for row in rows {
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// `alerts.csv`: one row per alert raised in the period.
pub fn alerts(r: &Report) -> Vec<Vec<String>> {
    let mut head: Vec<String> = [
        "id",
        "kind",
        "priority",
        "area",
        "room",
        "device",
        "raised_at",
        "acknowledged_at",
        "ack_by",
        "resolved_at",
        "outcome",
        "escalations",
        "time_to_ack_s",
        "test",
        "status",
        "repeats",
    ]
    .map(str::to_owned)
    .to_vec();
    if r.include_residents {
        head.push("resident".into());
    }
    let mut rows = vec![head];
    for a in &r.alerts {
        let at = |ms: Option<i64>| ms.map(|m| r.local(m)).unwrap_or_default();
        let mut row = vec![
            cell(&a.id),
            cell(&a.kind),
            cell(&a.priority),
            opt(&a.area),
            opt(&a.room),
            cell(&a.device),
            r.local(a.raised_ms),
            at(a.acked_ms),
            opt(&a.acked_by),
            at(a.resolved_ms),
            opt(&a.outcome),
            a.escalations.to_string(),
            a.time_to_ack_ms().map(stats::seconds).unwrap_or_default(),
            a.test.to_string(),
            cell(&a.status),
            a.repeats.to_string(),
        ];
        if r.include_residents {
            row.push(opt(&a.resident));
        }
        rows.push(row);
    }
    rows
}

/// `alerts_by_day.csv`: day, kind, alerts (days with no alert of a kind are left out).
pub fn alerts_by_day(r: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![vec!["day".into(), "kind".into(), "alerts".into()]];
    for ((day, kind), n) in stats::by_day_kind(&r.alerts) {
        rows.push(vec![day.to_string(), cell(&kind), n.to_string()]);
    }
    rows
}

/// `time_to_ack.csv`: the p50/p90/max table by priority, by area, and overall.
pub fn time_to_ack(r: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "grouped_by",
            "group",
            "alerts",
            "acknowledged",
            "p50_s",
            "p90_s",
            "max_s",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let s = |ms: Option<i64>| ms.map(stats::seconds).unwrap_or_default();
    let mut push = |by: &str, st: &AckStats| {
        rows.push(vec![
            by.to_owned(),
            cell(&st.group),
            st.alerts.to_string(),
            st.acknowledged.to_string(),
            s(st.p50_ms),
            s(st.p90_ms),
            s(st.max_ms),
        ]);
    };
    for st in stats::ack_by_priority(&r.alerts) {
        push("priority", &st);
    }
    for st in stats::ack_by_area(&r.alerts) {
        push("area", &st);
    }
    push("all", &stats::ack_stats("all", &r.alerts));
    rows
}

/// `devices.csv`: uptime, battery and test calls per device.
pub fn devices(r: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "device",
            "adapter",
            "registered",
            "first_seen",
            "last_seen",
            "events",
            "monitored_s",
            "offline_s",
            "offline_episodes",
            "uptime_percent",
            "low_battery_raised",
            "low_battery_readings",
            "min_battery_percent",
            "test_calls",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for d in &r.devices {
        let at = |ms: Option<i64>| ms.map(|m| r.local(m)).unwrap_or_default();
        rows.push(vec![
            cell(&d.id),
            cell(&d.adapter),
            d.registered.to_string(),
            at(d.first_seen_ms),
            at(d.last_seen_ms),
            d.events.to_string(),
            stats::seconds(d.monitored_ms),
            stats::seconds(d.offline_ms),
            d.offline_episodes.to_string(),
            d.uptime_percent()
                .map(|p| format!("{p:.3}"))
                .unwrap_or_default(),
            d.low_battery_raised.to_string(),
            d.low_battery_readings.to_string(),
            d.min_battery_percent
                .map(|p| p.to_string())
                .unwrap_or_default(),
            d.test_calls.to_string(),
        ]);
    }
    rows
}

/// `summary.csv`: metric, value.
pub fn summary(r: &Report) -> Vec<Vec<String>> {
    let all = stats::ack_stats("all", &r.alerts);
    let e = stats::escalations(&r.alerts);
    let s = |ms: Option<i64>| ms.map(stats::seconds).unwrap_or_default();
    let mut rows: Vec<(String, String)> = vec![
        ("site".into(), cell(&r.site)),
        ("from".into(), r.from.to_string()),
        ("to".into(), r.to.to_string()),
        ("timezone".into(), cell(&r.timezone)),
        ("alerts".into(), r.alerts.len().to_string()),
        ("acknowledged".into(), all.acknowledged.to_string()),
        ("ack_p50_s".into(), s(all.p50_ms)),
        ("ack_p90_s".into(), s(all.p90_ms)),
        ("ack_max_s".into(), s(all.max_ms)),
        ("alerts_escalated".into(), e.alerts_escalated.to_string()),
        ("tier_escalations".into(), e.tier_escalations.to_string()),
        ("repeats".into(), e.repeats.to_string()),
        ("reminders".into(), e.reminders.to_string()),
        ("not_attended".into(), e.not_attended.to_string()),
    ];
    for (kind, n) in stats::kind_totals(&r.alerts) {
        rows.push((format!("alerts_{kind}"), n.to_string()));
    }
    for (o, n) in stats::outcomes(&r.alerts) {
        rows.push((format!("outcome_{o}"), n.to_string()));
    }
    rows.extend([
        ("test_calls".into(), r.test_calls.len().to_string()),
        ("devices".into(), r.devices.len().to_string()),
        (
            "device_offline_episodes".into(),
            r.devices
                .iter()
                .map(|d| u64::from(d.offline_episodes))
                .sum::<u64>()
                .to_string(),
        ),
        (
            "devices_with_battery_warnings".into(),
            r.devices
                .iter()
                .filter(|d| d.battery_warning())
                .count()
                .to_string(),
        ),
        (
            "residents_with_alerts".into(),
            stats::distinct_residents(&r.alerts).to_string(),
        ),
    ]);
    let mut out = vec![vec!["metric".into(), "value".into()]];
    out.extend(rows.into_iter().map(|(k, v)| vec![cell(&k), v]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_a_spreadsheet_would_run_as_a_formula_is_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("pendant-12"), "pendant-12");
        assert_eq!(cell(""), "");
    }
}
