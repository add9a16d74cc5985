//! The report as CSV for spreadsheets: `alerts.csv` (one row per alert), `alerts_by_day.csv`,
//! `time_to_ack.csv`, `devices.csv`, `summary.csv` (headline figures, one per row),
//! `ack_standard.csv` (shares acknowledged within 60 s and 180 s beside the TSA target) and, with
//! `--baseline`, `comparison.csv` (the baseline beside the period). Times are RFC 3339 in the
//! site's zone with their offset; durations are decimal seconds; a figure that cannot be given
//! (no alerts, no baseline data) is an empty cell, never 0.
//!
//! Text from the journal that a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first)
//! is prefixed with `'`, so opening the file cannot run anything (CWE-1236).

use std::path::{Path, PathBuf};

use super::compare::{self, Figures};
use super::stats::{self, AckStats};
use super::{Report, ReportError, standard};

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
    let mut files: Vec<(&str, Rows)> = vec![
        ("alerts.csv", alerts),
        ("alerts_by_day.csv", alerts_by_day),
        ("time_to_ack.csv", time_to_ack),
        ("devices.csv", devices),
        ("summary.csv", summary),
        ("ack_standard.csv", ack_standard),
    ];
    if r.baseline.is_some() {
        files.push(("comparison.csv", comparison));
    }
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

/// A number with one decimal, or an empty cell.
fn decimal(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_default()
}

/// `ack_standard.csv`: per period (`period`, and `baseline` with `--baseline`) and priority,
/// then `(all)`, the alerts acknowledged within 60 s and 180 s, their share and the target.
pub fn ack_standard(r: &Report) -> Vec<Vec<String>> {
    let mut head: Vec<String> = ["period", "from", "to", "priority", "alerts"]
        .map(str::to_owned)
        .to_vec();
    for t in standard::TARGETS {
        let k = t.key;
        head.extend([
            format!("within_{k}"),
            format!("within_{k}_percent"),
            format!("target_{k}_percent"),
            format!("meets_{k}"),
        ]);
    }
    let mut rows = vec![head];
    let mut periods = vec![("period", r)];
    if let Some(b) = &r.baseline {
        periods.push(("baseline", b));
    }
    for (name, p) in periods {
        let mut shares = standard::by_priority(&p.alerts);
        shares.push(standard::share("(all)", &p.alerts));
        for s in shares {
            let mut row = vec![
                name.to_owned(),
                p.from.to_string(),
                p.to.to_string(),
                cell(&s.group),
                s.alerts.to_string(),
            ];
            for (i, t) in standard::TARGETS.iter().enumerate() {
                row.extend([
                    s.within[i].to_string(),
                    decimal(s.percent(i)),
                    format!("{:.1}", t.percent),
                    s.meets(i).map(|m| m.to_string()).unwrap_or_default(),
                ]);
            }
            rows.push(row);
        }
    }
    rows
}

/// `comparison.csv`: per site, area and kind, the baseline's figures, the period's and the
/// change (empty when either period has no data or the baseline figure is nothing).
pub fn comparison(r: &Report) -> Vec<Vec<String>> {
    let Some(b) = &r.baseline else {
        return Vec::new();
    };
    let c = compare::compare(r, b);
    let mut head: Vec<String> = [
        "scope",
        "group",
        "baseline_from",
        "baseline_to",
        "period_from",
        "period_to",
    ]
    .map(str::to_owned)
    .to_vec();
    for side in ["baseline", "period"] {
        for f in [
            "alerts",
            "device_days",
            "alerts_per_1000_device_days",
            "acknowledged",
            "acknowledged_percent",
            "ack_p50_s",
            "ack_p90_s",
            "escalated",
            "escalated_percent",
        ] {
            head.push(format!("{side}_{f}"));
        }
    }
    head.extend(
        [
            "change_rate_percent",
            "change_acknowledged_pp",
            "change_p50_percent",
            "change_p90_percent",
            "change_escalated_pp",
            "note",
        ]
        .map(str::to_owned),
    );
    let s = |ms: Option<i64>| ms.map(stats::seconds).unwrap_or_default();
    let side = |f: &Figures| {
        vec![
            f.alerts.to_string(),
            format!("{:.3}", f.device_days),
            decimal(f.per_1000_device_days()),
            f.acknowledged.to_string(),
            decimal(f.acknowledged_percent()),
            s(f.p50_ms),
            s(f.p90_ms),
            f.escalated.to_string(),
            decimal(f.escalated_percent()),
        ]
    };
    let note = match (c.baseline_has_data, c.pilot_has_data) {
        (false, _) => "no data in the baseline period",
        (_, false) => "no data in the report period",
        _ => "",
    };
    let mut rows = vec![head];
    for row in &c.rows {
        let mut v = vec![
            row.scope.as_str().to_owned(),
            cell(&row.group),
            b.from.to_string(),
            b.to.to_string(),
            r.from.to_string(),
            r.to.to_string(),
        ];
        v.extend(side(&row.baseline));
        v.extend(side(&row.pilot));
        let change = |x: Option<f64>| {
            if c.comparable() {
                decimal(x)
            } else {
                String::new()
            }
        };
        v.extend([
            change(row.rate_change()),
            change(row.acknowledged_change_pp()),
            change(row.p50_change()),
            change(row.p90_change()),
            change(row.escalated_change_pp()),
            note.to_owned(),
        ]);
        rows.push(v);
    }
    rows
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
