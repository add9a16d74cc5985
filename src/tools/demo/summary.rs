//! The end of the demo: every alert as the journal recorded it, totals per protocol path, the
//! journal's counts, delivery latency, signature checks, and one verdict line per path saying
//! whether the story was told (at least one alert escalated and one acknowledged).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use jiff::Timestamp;

use super::timeline::{Stats, short_id};
use crate::alerts::AlertView;

/// Totals of one protocol path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub alerts: usize,
    pub escalated: usize,
    pub acknowledged: usize,
    pub resolved: usize,
}

impl Totals {
    /// The story was told on this path: someone had to be escalated to, and someone answered.
    pub fn told(&self) -> bool {
        self.escalated >= 1 && self.acknowledged >= 1
    }
}

/// What the summary needs besides the journal.
pub struct Context<'a> {
    pub journal: &'a Path,
    /// Registry device id → protocol path (`mqtt`, `dc09`).
    pub paths: &'a HashMap<String, &'static str>,
    pub start: Timestamp,
    pub stats: Stats,
    /// Where the console read events (`the upstream broker`, `the audit file`).
    pub upstream: &'a str,
    /// Paths that ran, and why each of the others did not.
    pub ran: &'a [&'static str],
    pub missing: &'a [(&'static str, String)],
}

fn since(start: Timestamp, at: &str) -> Option<f64> {
    let t: Timestamp = at.parse().ok()?;
    Some(t.duration_since(start).as_secs_f64())
}

fn path_of(ctx: &Context<'_>, a: &AlertView) -> &'static str {
    if a.device_id.starts_with("gateway:") {
        return "gw";
    }
    ctx.paths.get(&a.device_id).copied().unwrap_or("?")
}

/// Prints the summary; returns the totals per path.
pub fn print(ctx: &Context<'_>) -> BTreeMap<&'static str, Totals> {
    let reader = crate::journal::Reader::open(ctx.journal);
    let mut alerts: Vec<AlertView> = match reader.as_ref().map(|r| r.alerts(true, 1000)) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            println!("\nSummary: cannot read alerts from the journal: {e}");
            Vec::new()
        }
        Err(e) => {
            println!("\nSummary: cannot open the journal: {e}");
            Vec::new()
        }
    };
    alerts.sort_by(|a, b| a.raised_at.cmp(&b.raised_at));

    println!("\nSummary: {} alerts", alerts.len());
    println!(
        "  {:<7}  {:<14}  {:<14}  {:<4}  {:>7}  {:<9}  {:<22}  outcome",
        "alert", "kind", "where", "path", "raised", "escalated", "acknowledged"
    );
    let mut totals: BTreeMap<&'static str, Totals> = BTreeMap::new();
    for a in &alerts {
        let path = path_of(ctx, a);
        let t = totals.entry(path).or_default();
        t.alerts += 1;
        t.escalated += usize::from(a.level >= 1);
        t.acknowledged += usize::from(a.acknowledged_by.is_some());
        t.resolved += usize::from(a.status == "resolved");
        let place = match (&a.location.area, &a.location.room) {
            (Some(ar), Some(r)) => format!("{ar}/{r}"),
            _ => a.device_id.clone(),
        };
        let raised = since(ctx.start, &a.raised_at)
            .map(|s| format!("{s:.2}s"))
            .unwrap_or_default();
        let escalated = if a.level >= 1 {
            format!("yes (x{})", a.level)
        } else {
            "no".into()
        };
        let acked = match (&a.acknowledged_by, &a.acknowledged_at) {
            (Some(by), Some(at)) => {
                let after = match (since(ctx.start, at), since(ctx.start, &a.raised_at)) {
                    (Some(x), Some(r)) => format!(" after {:.1}s", x - r),
                    _ => String::new(),
                };
                format!("{by}{after}")
            }
            _ => "-".into(),
        };
        let outcome = a
            .outcome
            .clone()
            .unwrap_or_else(|| format!("({})", a.status));
        println!(
            "  {:<7}  {:<14}  {:<14}  {:<4}  {raised:>7}  {escalated:<9}  {acked:<22}  {outcome}",
            short_id(&a.id),
            a.kind,
            place,
            path
        );
    }

    println!(
        "\n  {:<5} {:>6} {:>10} {:>13} {:>9}",
        "path", "alerts", "escalated", "acknowledged", "resolved"
    );
    for (path, t) in &totals {
        println!(
            "  {path:<5} {:>6} {:>10} {:>13} {:>9}",
            t.alerts, t.escalated, t.acknowledged, t.resolved
        );
    }

    println!();
    if let Ok(r) = &reader {
        if let Ok(n) = r.event_count() {
            println!("  events journaled: {n}");
        }
        if let Ok(rows) = r.dead_letters_by_reason() {
            let text: Vec<String> = rows.iter().map(|(why, n)| format!("{why} {n}")).collect();
            let text = if text.is_empty() {
                "none".to_owned()
            } else {
                text.join(", ")
            };
            println!("  dead letters by reason: {text}");
        }
    }
    let mut lat = ctx.stats.latency_ms.clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    if !lat.is_empty() {
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
        println!(
            "  gateway receipt -> {}: p50 {:.1} ms, max {:.1} ms ({} events)",
            ctx.upstream,
            p(0.5),
            p(1.0),
            lat.len()
        );
    }
    println!(
        "  webhook signatures: {} verified, {} failed",
        ctx.stats.signatures_ok, ctx.stats.signatures_failed
    );
    if ctx.stats.problems > 0 {
        println!(
            "  problems on the timeline: {} (see PROBLEM lines)",
            ctx.stats.problems
        );
    }

    println!();
    for path in ctx.ran {
        let t = totals.get(path).cloned().unwrap_or_default();
        let mark = if t.told() {
            "✓".to_owned()
        } else {
            "✗ (wanted at least one escalated and one acknowledged alert)".to_owned()
        };
        println!(
            "  verdict {path}: {} alerts, {} escalated, {} acknowledged, {} resolved {mark}",
            t.alerts, t.escalated, t.acknowledged, t.resolved
        );
    }
    for (path, why) in ctx.missing {
        println!("  verdict {path}: not run ({why})");
    }
    totals
}
