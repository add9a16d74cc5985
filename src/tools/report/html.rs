//! The report as one self-contained HTML page: headline figures, SVG charts with the same
//! numbers in tables beside them, and a note on how each figure is measured. No script, no
//! external stylesheet, image or font: the file can be mailed, archived and opened offline.
//!
//! Every string that comes from the journal (device ids, areas, kinds, outcomes) goes through
//! [`esc`]. Key figures carry an `id` and exact values a `data-*` attribute, so a reader (or a
//! test) can take them without parsing prose.

use std::fmt::Write;

use super::compare::{self, Comparison, Figures};
use super::stats::{self, ACK_BUCKETS, AckStats};
use super::svg::{self, PALETTE, Series, esc};
use super::{AlertRecord, Report, standard};

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 2px solid #0072B2; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
.meta { color: #555; margin-top: 0; }
dl.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .8rem; }
dl.figures div { border: 1px solid #ccd; border-radius: 6px; padding: .6rem .8rem; background: #f7f9fc; }
dl.figures dt { font-size: .85rem; color: #555; }
dl.figures dd { margin: 0; font-size: 1.5rem; font-weight: 600; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ccd; padding: .25rem .6rem; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #eef2f8; }
tfoot td, tfoot th { font-weight: 600; background: #f7f9fc; }
.chart { display: block; margin: .6rem 0; max-width: 100%; height: auto; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; font-size: .85rem; }
ul.legend span { display: inline-block; width: .8rem; height: .8rem; margin-right: .35rem; vertical-align: -1px; }
.note { color: #555; font-size: .85rem; }
.scroll { overflow-x: auto; }
#devices td, #test-calls td { white-space: nowrap; }
"#;

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = if r.site.is_empty() {
        "atgw pilot report".to_owned()
    } else {
        format!("atgw pilot report: {}", r.site)
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    );
    let as_of = r
        .as_of_ms
        .map(|ms| r.local_short(ms))
        .unwrap_or_else(|| "no events".into());
    let _ = writeln!(
        h,
        "<p class=\"meta\">Period <strong id=\"period\" data-from=\"{f}\" data-to=\"{to}\">{f} to {to}</strong> (days in {tz}) · journal up to {asof} · generated {g}</p>",
        f = r.from,
        to = r.to,
        tz = esc(&r.timezone),
        asof = esc(&as_of),
        g = esc(&r.local_short(r.generated_ms)),
    );
    figures(&mut h, r);
    alerts_by_day(&mut h, r);
    time_to_ack(&mut h, r);
    ack_standard(&mut h, r);
    if let Some(b) = &r.baseline {
        comparison(&mut h, r, b, &compare::compare(r, b));
    }
    escalations(&mut h, r);
    outcomes(&mut h, r);
    test_calls(&mut h, r);
    devices(&mut h, r);
    residents(&mut h, r);
    method(&mut h, r);
    h.push_str("</body>\n</html>\n");
    h
}

fn figure(h: &mut String, id: &str, label: &str, value: &str, data: Option<(&str, String)>) {
    let attr = data
        .map(|(k, v)| format!(" data-{k}=\"{}\"", esc(&v)))
        .unwrap_or_default();
    let _ = write!(
        h,
        "<div><dt>{l}</dt><dd id=\"{id}\"{attr}>{v}</dd></div>",
        l = esc(label),
        v = esc(value)
    );
}

fn wait_figure(h: &mut String, id: &str, label: &str, ms: Option<i64>) {
    match ms {
        Some(ms) => figure(
            h,
            id,
            label,
            &stats::human_duration(ms),
            Some(("seconds", stats::seconds(ms))),
        ),
        None => figure(h, id, label, "–", None),
    }
}

fn count_of(list: &[(String, u64)], key: &str) -> u64 {
    list.iter()
        .find(|(k, _)| k == key)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

fn figures(h: &mut String, r: &Report) {
    let all = stats::ack_stats("all", &r.alerts);
    let o = stats::outcomes(&r.alerts);
    let e = stats::escalations(&r.alerts);
    h.push_str("<h2>Headline figures</h2>\n<dl class=\"figures\">");
    figure(h, "fig-alerts", "Alerts", &r.alerts.len().to_string(), None);
    figure(
        h,
        "fig-acknowledged",
        "Acknowledged",
        &all.acknowledged.to_string(),
        None,
    );
    wait_figure(
        h,
        "fig-ack-p50",
        "Time to acknowledge, median (p50)",
        all.p50_ms,
    );
    wait_figure(h, "fig-ack-p90", "Time to acknowledge, p90", all.p90_ms);
    wait_figure(h, "fig-ack-max", "Time to acknowledge, longest", all.max_ms);
    figure(
        h,
        "fig-escalated",
        "Alerts escalated",
        &e.alerts_escalated.to_string(),
        None,
    );
    for (id, key, label) in [
        ("fig-assisted", "assisted", "Assisted"),
        ("fig-false-alarms", "false_alarm", "False alarms"),
        (
            "fig-emergency-services",
            "emergency_services",
            "Emergency services called",
        ),
        ("fig-unresolved", stats::UNRESOLVED, "Not yet resolved"),
    ] {
        figure(h, id, label, &count_of(&o, key).to_string(), None);
    }
    figure(
        h,
        "fig-test-calls",
        "Test calls",
        &r.test_calls.len().to_string(),
        None,
    );
    figure(
        h,
        "fig-devices",
        "Devices",
        &r.devices.len().to_string(),
        None,
    );
    figure(
        h,
        "fig-offline-episodes",
        "Device offline episodes",
        &r.devices
            .iter()
            .map(|d| u64::from(d.offline_episodes))
            .sum::<u64>()
            .to_string(),
        None,
    );
    figure(
        h,
        "fig-battery-warnings",
        "Devices with battery warnings",
        &r.devices
            .iter()
            .filter(|d| d.battery_warning())
            .count()
            .to_string(),
        None,
    );
    h.push_str("</dl>\n");
}

fn legend(h: &mut String, series: &[Series]) {
    h.push_str("<ul class=\"legend\">");
    for s in series {
        let _ = write!(
            h,
            "<li><span style=\"background:{}\"></span>{}</li>",
            s.colour,
            esc(&s.name)
        );
    }
    h.push_str("</ul>\n");
}

fn alerts_by_day(h: &mut String, r: &Report) {
    h.push_str("<h2>Alerts by kind and day</h2>\n");
    let kinds = stats::kind_totals(&r.alerts);
    let days = r.days();
    let counts = stats::by_day_kind(&r.alerts);
    let series: Vec<Series> = kinds
        .iter()
        .enumerate()
        .map(|(i, (k, _))| Series {
            name: k.clone(),
            colour: PALETTE[i % PALETTE.len()],
            values: days
                .iter()
                .map(|d| counts.get(&(*d, k.clone())).copied().unwrap_or(0))
                .collect(),
        })
        .collect();
    let labels: Vec<String> = days.iter().map(|d| d.to_string()).collect();
    if r.alerts.is_empty() {
        h.push_str("<p>No alerts were raised in this period.</p>\n");
    }
    h.push_str(&svg::stacked_bars(
        "Alerts per day, stacked by kind",
        &labels,
        &series,
    ));
    legend(h, &series);
    h.push_str("<div class=\"scroll\"><table id=\"alerts-by-day\"><thead><tr><th>Day</th>");
    for (k, _) in &kinds {
        let _ = write!(h, "<th class=\"n\">{}</th>", esc(k));
    }
    h.push_str("<th class=\"n\">All</th></tr></thead><tbody>");
    for d in &days {
        let _ = write!(h, "<tr><th>{d}</th>");
        let mut total = 0;
        for (k, _) in &kinds {
            let n = counts.get(&(*d, k.clone())).copied().unwrap_or(0);
            total += n;
            let _ = write!(h, "<td class=\"n\">{n}</td>");
        }
        let _ = write!(h, "<td class=\"n\">{total}</td></tr>");
    }
    h.push_str("</tbody><tfoot><tr><th>All days</th>");
    for (k, n) in &kinds {
        let _ = write!(h, "<td class=\"n\" data-total-kind=\"{}\">{n}</td>", esc(k));
    }
    let _ = writeln!(
        h,
        "<td class=\"n\">{}</td></tr></tfoot></table></div>",
        r.alerts.len()
    );
}

fn wait_cell(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!(
            "<td class=\"n\" data-seconds=\"{}\">{}</td>",
            stats::seconds(ms),
            esc(&stats::human_duration(ms))
        ),
        None => "<td class=\"n\">–</td>".into(),
    }
}

fn ack_table(h: &mut String, id: &str, head: &str, rows: &[AckStats], all: &AckStats) {
    let _ = write!(
        h,
        "<table id=\"{id}\"><thead><tr><th>{}</th><th class=\"n\">Alerts</th><th class=\"n\">Acknowledged</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">Longest</th></tr></thead><tbody>",
        esc(head)
    );
    let row = |h: &mut String, s: &AckStats, tag: &str| {
        let _ = write!(
            h,
            "<tr data-group=\"{g}\"><{tag}>{g}</{tag}><td class=\"n\">{}</td><td class=\"n\">{}</td>{}{}{}</tr>",
            s.alerts,
            s.acknowledged,
            wait_cell(s.p50_ms),
            wait_cell(s.p90_ms),
            wait_cell(s.max_ms),
            g = esc(&s.group),
        );
    };
    for s in rows {
        row(h, s, "td");
    }
    h.push_str("</tbody><tfoot>");
    row(h, all, "th");
    h.push_str("</tfoot></table>\n");
}

fn time_to_ack(h: &mut String, r: &Report) {
    h.push_str("<h2>Time to acknowledge</h2>\n<p class=\"note\">From the alert's first raise to the first acknowledgement by a person (API, MQTT or console). Percentiles are nearest-rank: p50 is the smallest wait that at least half of the acknowledged alerts did not exceed, p90 the same for nine in ten; each is a wait that really happened. Alerts resolved or cleared without an acknowledgement are counted under Alerts but have no wait.</p>\n");
    let all = stats::ack_stats("All", &r.alerts);
    h.push_str("<h3>By priority</h3>\n");
    ack_table(
        h,
        "ack-by-priority",
        "Priority",
        &stats::ack_by_priority(&r.alerts),
        &all,
    );
    h.push_str("<h3>By area</h3>\n");
    ack_table(
        h,
        "ack-by-area",
        "Area",
        &stats::ack_by_area(&r.alerts),
        &all,
    );
    h.push_str("<h3>Distribution by priority</h3>\n");
    let hist = stats::ack_histogram(&r.alerts);
    let series: Vec<Series> = hist
        .into_iter()
        .map(|(p, values)| Series {
            colour: svg::priority_colour(&p),
            name: p,
            values,
        })
        .collect();
    let labels: Vec<String> = ACK_BUCKETS.iter().map(|(_, l)| (*l).to_owned()).collect();
    h.push_str(&svg::grouped_bars(
        "Acknowledged alerts by time to acknowledge, per priority",
        &labels,
        &series,
    ));
    legend(h, &series);
}

fn ack_standard(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2>Acknowledged within 60 s and 180 s</h2>\n<p class=\"note\">Beside the call-handling standard UK telecare services are held to, the benchmark an evaluation compares against: the {src}. The gateway's time to acknowledge is measured from the alert being raised at the gateway to its first acknowledgement by a person, so it includes the time to reach a handset; an alert nobody acknowledged counts as not within. Test alerts are left out. Detail in <code>ack_standard.csv</code>.</p>\n",
        src = esc(standard::SOURCE)
    );
    let mut periods = vec![("period", r)];
    if let Some(b) = &r.baseline {
        periods.push(("baseline", b));
    }
    h.push_str("<table id=\"ack-standard\"><thead><tr><th>Period</th><th>Priority</th><th class=\"n\">Alerts</th>");
    for t in standard::TARGETS {
        let _ = write!(
            h,
            "<th class=\"n\">Within {l}</th><th class=\"n\">Share within {l}</th><th class=\"n\">Target</th>",
            l = esc(t.label)
        );
    }
    h.push_str("</tr></thead><tbody>");
    for (name, p) in periods {
        let mut shares = standard::by_priority(&p.alerts);
        let all = standard::share("All", &p.alerts);
        if shares.is_empty() {
            let _ = write!(
                h,
                "<tr data-period=\"{name}\" data-priority=\"all\"><td>{name} {f} to {to}</td><td colspan=\"{c}\">No alerts in this period.</td></tr>",
                f = p.from,
                to = p.to,
                c = 2 + 3 * standard::TARGETS.len()
            );
            continue;
        }
        shares.push(all);
        let last = shares.len() - 1;
        for (row, s) in shares.iter().enumerate() {
            let key = if row == last {
                "all".to_owned()
            } else {
                s.group.clone()
            };
            let _ = write!(
                h,
                "<tr data-period=\"{name}\" data-priority=\"{k}\"><td>{name} {f} to {to}</td><td>{g}</td><td class=\"n\">{n}</td>",
                k = esc(&key),
                f = p.from,
                to = p.to,
                g = esc(&s.group),
                n = s.alerts
            );
            for (i, t) in standard::TARGETS.iter().enumerate() {
                let id = if row == last {
                    let prefix = if name == "baseline" { "baseline-" } else { "" };
                    format!(" id=\"{prefix}std-{}\"", t.key)
                } else {
                    String::new()
                };
                let pct = s.percent(i);
                let _ = write!(
                    h,
                    "<td class=\"n\">{w}</td><td class=\"n\"{id} data-within=\"{w}\" data-alerts=\"{n}\"{data}>{txt}</td><td class=\"n\" data-target=\"{tp:.1}\">{tp:.1} %{meets}</td>",
                    w = s.within[i],
                    n = s.alerts,
                    data = pct
                        .map(|p| format!(
                            " data-percent=\"{p:.1}\" data-meets=\"{}\"",
                            p >= t.percent
                        ))
                        .unwrap_or_default(),
                    txt = esc(&standard::percent_text(pct)),
                    tp = t.percent,
                    meets = match s.meets(i) {
                        Some(true) => " (met)",
                        Some(false) => " (not met)",
                        None => "",
                    },
                );
            }
            h.push_str("</tr>");
        }
    }
    h.push_str("</tbody></table>\n");
}

fn comparison(h: &mut String, r: &Report, b: &Report, c: &Comparison) {
    let _ = write!(
        h,
        "<h2>Baseline and period</h2>\n<p>Baseline <strong id=\"baseline\" data-from=\"{bf}\" data-to=\"{bt}\">{bf} to {bt}</strong> beside this period ({pf} to {pt}).</p>\n<p class=\"note\">Both periods are read the same way. Alerts are also given per 1,000 monitored device-days (each device's watched time, summed), not per calendar day, so that a fleet that grew or shrank between the periods does not read as more or fewer alerts; an area's rate uses its own devices, a kind's the whole site's. Changes in rates and waits are relative (%), in shares of alerts percentage points (pp); a change from nothing is not given. Test alerts are left out. Detail in <code>comparison.csv</code>.</p>\n",
        bf = b.from,
        bt = b.to,
        pf = r.from,
        pt = r.to,
    );
    for (has, name, p) in [
        (c.baseline_has_data, "baseline", b),
        (c.pilot_has_data, "period", r),
    ] {
        if !has {
            let _ = writeln!(
                h,
                "<p id=\"no-data-{name}\"><strong>The {name} ({f} to {t}) has no data in the journal</strong> (no alerts and no monitored devices), so no changes are shown.</p>",
                f = p.from,
                t = p.to
            );
        }
    }
    h.push_str("<div class=\"scroll\"><table id=\"comparison\"><thead><tr><th>By</th><th>Group</th><th></th><th class=\"n\">Alerts</th><th class=\"n\">per 1,000 device-days</th><th class=\"n\">Acknowledged</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">Escalated</th></tr></thead><tbody>");
    let side = |h: &mut String, label: &str, f: &Figures| {
        let rate = f.per_1000_device_days();
        let _ = write!(
            h,
            "<td>{label}</td><td class=\"n\" data-{label}-alerts=\"{a}\">{a}</td><td class=\"n\" data-device-days=\"{dd:.3}\"{rd}>{rt}</td><td class=\"n\" data-{label}-acknowledged=\"{k}\">{k}</td>{p50}{p90}<td class=\"n\" data-{label}-escalated=\"{e}\">{e}</td>",
            a = f.alerts,
            dd = f.device_days,
            rd = rate
                .map(|v| format!(" data-rate=\"{v:.1}\""))
                .unwrap_or_default(),
            rt = esc(&compare::rate_text(rate)),
            k = f.acknowledged,
            p50 = wait_cell(f.p50_ms),
            p90 = wait_cell(f.p90_ms),
            e = f.escalated,
        );
    };
    for row in &c.rows {
        let g = esc(&row.group);
        let sc = row.scope.as_str();
        let _ = write!(
            h,
            "<tr data-scope=\"{sc}\" data-group=\"{g}\" data-side=\"baseline\"><td rowspan=\"3\">{sc}</td><td rowspan=\"3\">{g}</td>"
        );
        side(h, "baseline", &row.baseline);
        let _ = write!(
            h,
            "</tr><tr data-scope=\"{sc}\" data-group=\"{g}\" data-side=\"period\">"
        );
        side(h, "period", &row.pilot);
        let _ = write!(
            h,
            "</tr><tr data-scope=\"{sc}\" data-group=\"{g}\" data-side=\"change\"><td>change</td>"
        );
        if c.comparable() {
            let cell = |v: Option<f64>, text: String, key: &str| {
                let data = v
                    .map(|v| format!(" data-{key}=\"{v:.1}\""))
                    .unwrap_or_default();
                format!("<td class=\"n\"{data}>{}</td>", esc(&text))
            };
            let _ = write!(
                h,
                "<td class=\"n\"></td>{}{}{}{}{}",
                cell(
                    row.rate_change(),
                    compare::change_text(row.rate_change()),
                    "change-rate"
                ),
                cell(
                    row.acknowledged_change_pp(),
                    compare::points_text(row.acknowledged_change_pp()),
                    "change-acknowledged-pp"
                ),
                cell(
                    row.p50_change(),
                    compare::change_text(row.p50_change()),
                    "change-p50"
                ),
                cell(
                    row.p90_change(),
                    compare::change_text(row.p90_change()),
                    "change-p90"
                ),
                cell(
                    row.escalated_change_pp(),
                    compare::points_text(row.escalated_change_pp()),
                    "change-escalated-pp"
                ),
            );
        } else {
            h.push_str("<td colspan=\"6\">no data to compare</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>\n");
}

fn escalations(h: &mut String, r: &Report) {
    let e = stats::escalations(&r.alerts);
    let _ = write!(
        h,
        "<h2>Escalations</h2>\n<p>{} of {} alerts escalated to a further tier because nobody acknowledged in time ({} tier escalations in all). Unacknowledged alerts were re-sent {} times; acknowledged but unresolved alerts prompted {} reminders, and {} times an acknowledged alert was not resolved in time and reopened.</p>\n",
        e.alerts_escalated,
        r.alerts.len(),
        e.tier_escalations,
        e.repeats,
        e.reminders,
        e.not_attended
    );
    h.push_str("<table id=\"escalations-by-priority\"><thead><tr><th>Priority</th><th class=\"n\">Alerts</th><th class=\"n\">Escalated</th><th class=\"n\">Share</th></tr></thead><tbody>");
    for (p, n, x) in &e.by_priority {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{n}</td><td class=\"n\">{x}</td><td class=\"n\">{}</td></tr>",
            esc(p),
            percent(*x as u64, *n as u64)
        );
    }
    h.push_str("</tbody></table>\n<table id=\"escalations-by-tiers\"><thead><tr><th class=\"n\">Tiers escalated</th><th class=\"n\">Alerts</th></tr></thead><tbody>");
    for (t, n) in &e.by_tiers {
        let _ = write!(
            h,
            "<tr><td class=\"n\">{t}</td><td class=\"n\">{n}</td></tr>"
        );
    }
    h.push_str("</tbody></table>\n");
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.0} %", 100.0 * part as f64 / whole as f64)
    }
}

fn outcomes(h: &mut String, r: &Report) {
    h.push_str("<h2>Outcomes</h2>\n<p class=\"note\">As recorded by the person who resolved each alert.</p>\n");
    let o = stats::outcomes(&r.alerts);
    let items: Vec<(String, u64, &'static str)> = o
        .iter()
        .map(|(k, n)| (k.clone(), *n, svg::outcome_colour(k)))
        .collect();
    h.push_str(&svg::horizontal_bars("Alerts by outcome", &items));
    h.push_str("<table id=\"outcomes\"><thead><tr><th>Outcome</th><th class=\"n\">Alerts</th><th class=\"n\">Share</th></tr></thead><tbody>");
    let total = r.alerts.len() as u64;
    for (k, n) in &o {
        let _ = write!(
            h,
            "<tr><td>{k}</td><td class=\"n\" data-outcome=\"{k}\">{n}</td><td class=\"n\">{}</td></tr>",
            percent(*n, total),
            k = esc(k)
        );
    }
    h.push_str("</tbody></table>\n");
    let kinds = stats::kind_totals(&r.alerts);
    if kinds.is_empty() {
        return;
    }
    h.push_str("<h3>Outcomes by kind</h3>\n<div class=\"scroll\"><table id=\"outcomes-by-kind\"><thead><tr><th>Kind</th>");
    for (k, _) in &o {
        let _ = write!(h, "<th class=\"n\">{}</th>", esc(k));
    }
    h.push_str("</tr></thead><tbody>");
    for (kind, _) in &kinds {
        let _ = write!(h, "<tr><td>{}</td>", esc(kind));
        let of = stats::outcomes_of_kind(&r.alerts, kind);
        for (k, _) in &o {
            let _ = write!(h, "<td class=\"n\">{}</td>", count_of(&of, k));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>\n");
}

fn test_calls(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<h2>Test calls</h2>\n<p>{} test calls (events marked as tests by the device or panel; they never page staff).</p>\n",
        r.test_calls.len()
    );
    let by = stats::test_calls_by_device(&r.test_calls);
    if by.is_empty() {
        return;
    }
    h.push_str("<table id=\"test-calls\"><thead><tr><th>Device</th><th class=\"n\">Test calls</th><th>Last</th></tr></thead><tbody>");
    for (d, n, last) in &by {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{n}</td><td>{}</td></tr>",
            esc(d),
            esc(&r.local_short(*last))
        );
    }
    h.push_str("</tbody></table>\n");
}

fn devices(h: &mut String, r: &Report) {
    h.push_str("<h2>Devices</h2>\n<p class=\"note\">Uptime is the share of the watched time (from the period's start, or the device's first message if later, to the period's end or the journal's last event) not spent between a <code>device_offline</code> raise and its clear. Devices without supervision or availability reports can only show as offline when they report it themselves.</p>\n");
    if r.devices.is_empty() {
        h.push_str("<p>No device was heard in this period.</p>\n");
        return;
    }
    h.push_str("<div class=\"scroll\"><table id=\"devices\"><thead><tr><th>Device</th><th>Adapter</th><th>Registered</th><th>First heard</th><th>Last heard</th><th class=\"n\">Events</th><th class=\"n\">Offline episodes</th><th class=\"n\">Time offline</th><th class=\"n\">Uptime</th><th class=\"n\">Lowest battery</th><th class=\"n\">Low battery raised</th><th class=\"n\">Low battery readings</th></tr></thead><tbody>");
    for d in &r.devices {
        let seen = |ms: Option<i64>| ms.map(|m| r.local_short(m)).unwrap_or_else(|| "–".into());
        let uptime = d
            .uptime_percent()
            .map(|p| format!("{p:.2} %"))
            .unwrap_or_else(|| "–".into());
        let battery = d
            .min_battery_percent
            .map(|p| format!("{p:.0} %"))
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            h,
            "<tr data-device=\"{id}\"><td>{id}</td><td>{a}</td><td>{reg}</td><td>{f}</td><td>{l}</td><td class=\"n\">{ev}</td><td class=\"n\">{ep}</td><td class=\"n\">{off}</td><td class=\"n\">{uptime}</td><td class=\"n\">{battery}</td><td class=\"n\">{lr}</td><td class=\"n\">{lo}</td></tr>",
            id = esc(&d.id),
            a = esc(&d.adapter),
            reg = if d.registered { "yes" } else { "no" },
            f = esc(&seen(d.first_seen_ms)),
            l = esc(&seen(d.last_seen_ms)),
            ev = d.events,
            ep = d.offline_episodes,
            off = esc(&stats::human_duration(d.offline_ms)),
            lr = d.low_battery_raised,
            lo = d.low_battery_readings,
        );
    }
    h.push_str("</tbody></table></div>\n");
}

fn residents(h: &mut String, r: &Report) {
    let n = stats::distinct_residents(&r.alerts);
    h.push_str("<h2>Residents</h2>\n");
    if !r.include_residents {
        let _ = writeln!(
            h,
            "<p>Alerts came from <strong id=\"fig-residents\">{n}</strong> residents. Resident identifiers are left out of this report (run <code>atgw report --include-residents</code> to add the pseudonymous ids); alert notes and device messages are never included.</p>"
        );
        return;
    }
    let _ = write!(
        h,
        "<p>Alerts came from <strong id=\"fig-residents\">{n}</strong> residents (pseudonymous ids from the gateway's registry).</p>\n<table id=\"residents\"><thead><tr><th>Resident</th><th class=\"n\">Alerts</th><th class=\"n\">False alarms</th></tr></thead><tbody>"
    );
    for (id, alerts, false_alarms) in stats::by_resident(&r.alerts) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{alerts}</td><td class=\"n\">{false_alarms}</td></tr>",
            esc(&id)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn method(h: &mut String, r: &Report) {
    let unacked: Vec<&AlertRecord> = r.alerts.iter().filter(|a| a.acked_ms.is_none()).collect();
    let _ = write!(
        h,
        "<h2>How these figures are made</h2>\n<ul class=\"note\">\
<li>Source: the gateway's journal, read-only, in one consistent snapshot. Times are the gateway's clock; an alert belongs to the day (in {tz}) of its first raise.</li>\
<li>Alerts are conditions a policy turned into an alert; test events never open one. {u} of {n} alerts in the period have no acknowledgement.</li>\
<li>Escalations count tiers reached because nobody acknowledged in time; repeats and reminders are counted separately.</li>\
<li>Test calls are device events flagged as tests (raised or instantaneous), e.g. Contact ID 601/602 or a pendant's test mode.</li>\
<li>Battery warnings are <code>low_battery</code> conditions raised plus messages reporting <code>battery.low</code>.</li>\
<li>Per-alert detail is in <code>alerts.csv</code> beside this file.</li></ul>\n",
        tz = esc(&r.timezone),
        u = unacked.len(),
        n = r.alerts.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_neutralises_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("pendant-12"), "pendant-12");
    }
}
