//! Inline SVG charts for the HTML report: stacked bars (alerts by kind per day), grouped bars
//! (time-to-acknowledge distribution per priority) and horizontal bars (outcomes). Plain SVG
//! elements with fixed colours, so the page needs no script, stylesheet or font from anywhere.
//! Every label is escaped; each bar has a `<title>` so a pointer shows its exact value, and the
//! same numbers are in a table beside each chart for screen readers and printing.

use std::fmt::Write;

/// Escapes text for HTML and SVG element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Colour-blind-safe palette (Okabe–Ito, then a few more), cycled for kinds.
pub const PALETTE: &[&str] = &[
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#882255",
    "#44AA99", "#999933", "#332288", "#777777",
];

/// Colour of a priority (as the demo's console colours them).
pub fn priority_colour(p: &str) -> &'static str {
    match p {
        "high" => "#D55E00",
        "medium" => "#E69F00",
        "low" => "#0072B2",
        _ => "#999999",
    }
}

/// Colour of an outcome.
pub fn outcome_colour(o: &str) -> &'static str {
    match o {
        "assisted" => "#009E73",
        "false_alarm" => "#E69F00",
        "emergency_services" => "#D55E00",
        "no_action" => "#999999",
        "other" => "#56B4E9",
        _ => "#CC79A7",
    }
}

/// One data series.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub values: Vec<u64>,
}

const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;
const PLOT_H: f64 = 220.0;

/// A tick step of 1, 2 or 5 × 10ⁿ giving at most about five intervals up to `max`.
pub fn tick_step(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if max.div_ceil(s) <= 5 {
                return s;
            }
        }
        step = step.saturating_mul(10);
    }
}

fn open(out: &mut String, width: f64, height: f64, label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{l}" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}"><title>{l}</title>"#,
        l = esc(label)
    );
}

/// The y axis with gridlines; returns the value at the top of the plot.
fn y_axis(out: &mut String, max: u64, width: f64) -> u64 {
    let step = tick_step(max.max(1));
    let top = max.max(1).div_ceil(step) * step;
    let mut v = 0;
    while v <= top {
        let y = TOP + PLOT_H - PLOT_H * v as f64 / top as f64;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#333">{v}</text>"##,
            x2 = width - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0
        );
        v += step;
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}" stroke="#333"/>"##,
        b = TOP + PLOT_H
    );
    top
}

/// Writes x labels under slots, thinning them when there are many.
fn x_labels(out: &mut String, labels: &[String], slot: f64) {
    let every = labels.len().div_ceil(24).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let x = LEFT + slot * (i as f64 + 0.5);
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="middle" fill="#333">{l}</text>"##,
            y = TOP + PLOT_H + 16.0,
            l = esc(l)
        );
    }
}

/// Bars stacked per x slot (one segment per series).
pub fn stacked_bars(label: &str, x: &[String], series: &[Series]) -> String {
    let totals: Vec<u64> = (0..x.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let slot = (720.0 / x.len().max(1) as f64).clamp(8.0, 64.0);
    let width = (LEFT + RIGHT + slot * x.len() as f64).max(320.0);
    let mut out = String::new();
    open(&mut out, width, TOP + PLOT_H + BOTTOM, label);
    let top = y_axis(&mut out, max, width);
    let bar = slot * 0.7;
    for (i, day) in x.iter().enumerate() {
        let mut y = TOP + PLOT_H;
        let x0 = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = PLOT_H * v as f64 / top as f64;
            y -= h;
            let _ = write!(
                out,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{c}"><title>{d} {n}: {v}</title></rect>"#,
                c = s.colour,
                d = esc(day),
                n = esc(&s.name)
            );
        }
    }
    x_labels(&mut out, x, slot);
    out.push_str("</svg>");
    out
}

/// Bars side by side per x slot (one per series).
pub fn grouped_bars(label: &str, x: &[String], series: &[Series]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let slot = 96.0;
    let width = (LEFT + RIGHT + slot * x.len() as f64).max(320.0);
    let mut out = String::new();
    open(&mut out, width, TOP + PLOT_H + BOTTOM, label);
    let top = y_axis(&mut out, max, width);
    let inner = (slot - 16.0) / series.len().max(1) as f64;
    for (i, bucket) in x.iter().enumerate() {
        for (j, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            let h = PLOT_H * v as f64 / top as f64;
            let x0 = LEFT + slot * i as f64 + 8.0 + inner * j as f64;
            let _ = write!(
                out,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{n} {b}: {v}</title></rect>"#,
                y = TOP + PLOT_H - h,
                w = (inner - 2.0).max(1.0),
                c = s.colour,
                n = esc(&s.name),
                b = esc(bucket)
            );
        }
    }
    x_labels(&mut out, x, slot);
    out.push_str("</svg>");
    out
}

/// One horizontal bar per item, with its label on the left and its value on the right.
pub fn horizontal_bars(label: &str, items: &[(String, u64, &'static str)]) -> String {
    let max = items.iter().map(|(_, v, _)| *v).max().unwrap_or(0).max(1);
    let (label_w, bar_w, row) = (160.0, 360.0, 26.0);
    let width = label_w + bar_w + 60.0;
    let height = row * items.len().max(1) as f64 + 8.0;
    let mut out = String::new();
    open(&mut out, width, height, label);
    for (i, (name, v, colour)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let w = bar_w * *v as f64 / max as f64;
        let _ = write!(
            out,
            r##"<text x="{tx:.1}" y="{ty:.1}" font-size="12" text-anchor="end" fill="#333">{n}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}"><title>{n}: {v}</title></rect><text x="{vx:.1}" y="{ty:.1}" font-size="12" fill="#333">{v}</text>"##,
            tx = label_w - 8.0,
            ty = y + row / 2.0 + 2.0,
            h = row - 8.0,
            vx = label_w + w + 6.0,
            n = esc(name)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(5), 1);
        assert_eq!(tick_step(7), 2);
        assert_eq!(tick_step(23), 5);
        assert_eq!(tick_step(180), 50);
        assert_eq!(tick_step(1_000), 200);
    }

    #[test]
    fn charts_escape_labels_and_give_every_bar_its_value() {
        let s = stacked_bars(
            "Alerts",
            &["2026-04-17".into(), "2026-04-18".into()],
            &[Series {
                name: "<b>fall</b>".into(),
                colour: PALETTE[0],
                values: vec![2, 0],
            }],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(!s.contains("<b>"), "labels are escaped: {s}");
        assert!(s.contains("2026-04-17 &lt;b&gt;fall&lt;/b&gt;: 2"));
        assert_eq!(s.matches("<rect").count(), 1, "no bar for a zero");
        let h = horizontal_bars("Outcomes", &[("assisted".into(), 3, "#000")]);
        assert!(h.contains("<title>assisted: 3</title>"));
    }
}
