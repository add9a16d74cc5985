//! The pilot period beside a baseline period (`atgw report --baseline FROM..TO`): per site, area
//! and kind, the alerts raised (and per 1,000 monitored device-days), acknowledged, median and
//! p90 time to acknowledge and alerts escalated, with the change between the periods.
//!
//! Both periods are [`Report`]s read by the same [`super::read::build`], so a figure means the
//! same in each. Alert counts are normalised by **monitored device-days** (the sum of each
//! device's watched time, [`super::DeviceRecord::monitored_ms`], in days) rather than by
//! calendar days: a pilot usually adds or replaces devices, and alerts per day would then move
//! with the size of the fleet instead of with what happened. An area's rate uses its own
//! devices' time; a kind's uses the whole site's. Test alerts are left out of every figure here.
//!
//! A period with no data (no alerts and no monitored device time) is said to have none, and a
//! change from nothing (a baseline figure of 0 or none) is `None`, never a 0 % or infinite change.

use std::collections::BTreeSet;

use super::stats::{area_label, nearest_rank};
use super::{AlertRecord, Report};

const DAY_MS: f64 = 86_400_000.0;

/// Figures of one group in one period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub alerts: usize,
    pub acknowledged: usize,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    /// Alerts that escalated to at least one further tier.
    pub escalated: usize,
    /// Monitored device-days the rate is taken over.
    pub device_days: f64,
}

impl Figures {
    fn of<'a>(alerts: impl IntoIterator<Item = &'a AlertRecord>, device_days: f64) -> Figures {
        let mut f = Figures {
            device_days,
            ..Figures::default()
        };
        let mut waits = Vec::new();
        for a in alerts.into_iter().filter(|a| !a.test) {
            f.alerts += 1;
            f.escalated += usize::from(a.escalations > 0);
            waits.extend(a.time_to_ack_ms());
        }
        waits.sort_unstable();
        f.acknowledged = waits.len();
        f.p50_ms = nearest_rank(&waits, 50);
        f.p90_ms = nearest_rank(&waits, 90);
        f
    }

    /// Alerts per 1,000 monitored device-days; `None` with no monitored time.
    pub fn per_1000_device_days(&self) -> Option<f64> {
        (self.device_days > 0.0).then(|| 1000.0 * self.alerts as f64 / self.device_days)
    }

    /// Acknowledged alerts as a share of alerts, in percent; `None` with no alerts.
    pub fn acknowledged_percent(&self) -> Option<f64> {
        (self.alerts > 0).then(|| 100.0 * self.acknowledged as f64 / self.alerts as f64)
    }

    /// Escalated alerts as a share of alerts, in percent; `None` with no alerts.
    pub fn escalated_percent(&self) -> Option<f64> {
        (self.alerts > 0).then(|| 100.0 * self.escalated as f64 / self.alerts as f64)
    }
}

/// What a row is grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Site,
    Area,
    Kind,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Site => "site",
            Scope::Area => "area",
            Scope::Kind => "kind",
        }
    }
}

/// One group in both periods.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scope: Scope,
    /// `all` for the site, else the area or kind as the journal has it.
    pub group: String,
    pub baseline: Figures,
    pub pilot: Figures,
}

impl Row {
    /// Change in alerts per 1,000 device-days, in percent.
    pub fn rate_change(&self) -> Option<f64> {
        change_percent(
            self.baseline.per_1000_device_days(),
            self.pilot.per_1000_device_days(),
        )
    }

    /// Change in the acknowledged share, in percentage points.
    pub fn acknowledged_change_pp(&self) -> Option<f64> {
        Some(self.pilot.acknowledged_percent()? - self.baseline.acknowledged_percent()?)
    }

    pub fn p50_change(&self) -> Option<f64> {
        change_percent(
            self.baseline.p50_ms.map(|v| v as f64),
            self.pilot.p50_ms.map(|v| v as f64),
        )
    }

    pub fn p90_change(&self) -> Option<f64> {
        change_percent(
            self.baseline.p90_ms.map(|v| v as f64),
            self.pilot.p90_ms.map(|v| v as f64),
        )
    }

    /// Change in the escalated share, in percentage points.
    pub fn escalated_change_pp(&self) -> Option<f64> {
        Some(self.pilot.escalated_percent()? - self.baseline.escalated_percent()?)
    }
}

/// The two periods side by side.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Whether each period has anything to compare (alerts or monitored device time).
    pub baseline_has_data: bool,
    pub pilot_has_data: bool,
    /// The site first, then areas and kinds by name (each group seen in either period).
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Whether changes can be shown at all.
    pub fn comparable(&self) -> bool {
        self.baseline_has_data && self.pilot_has_data
    }
}

/// `(after − before) / before` in percent; `None` when either is missing or `before` is 0.
pub fn change_percent(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    let (b, a) = (before?, after?);
    (b != 0.0).then(|| 100.0 * (a - b) / b)
}

fn device_days(r: &Report, area: Option<&str>) -> f64 {
    r.devices
        .iter()
        .filter(|d| area.is_none_or(|g| d.area.clone().unwrap_or_else(|| "(no area)".into()) == g))
        .map(|d| d.monitored_ms.max(0) as f64)
        .sum::<f64>()
        / DAY_MS
}

fn has_data(r: &Report) -> bool {
    r.alerts.iter().any(|a| !a.test) || r.devices.iter().any(|d| d.monitored_ms > 0)
}

/// The pilot period (`pilot`) beside `baseline`.
pub fn compare(pilot: &Report, baseline: &Report) -> Comparison {
    let mut rows = vec![Row {
        scope: Scope::Site,
        group: "all".into(),
        baseline: Figures::of(&baseline.alerts, device_days(baseline, None)),
        pilot: Figures::of(&pilot.alerts, device_days(pilot, None)),
    }];
    let both = || {
        baseline
            .alerts
            .iter()
            .chain(&pilot.alerts)
            .filter(|a| !a.test)
    };
    let areas: BTreeSet<String> = both()
        .map(area_label)
        .chain(
            baseline
                .devices
                .iter()
                .chain(&pilot.devices)
                .filter_map(|d| d.area.clone()),
        )
        .collect();
    for g in areas {
        let of = |r: &Report| {
            Figures::of(
                r.alerts.iter().filter(|a| area_label(a) == g),
                device_days(r, Some(&g)),
            )
        };
        rows.push(Row {
            scope: Scope::Area,
            baseline: of(baseline),
            pilot: of(pilot),
            group: g,
        });
    }
    let kinds: BTreeSet<String> = both().map(|a| a.kind.clone()).collect();
    for k in kinds {
        let of = |r: &Report| {
            Figures::of(
                r.alerts.iter().filter(|a| a.kind == k),
                device_days(r, None),
            )
        };
        rows.push(Row {
            scope: Scope::Kind,
            baseline: of(baseline),
            pilot: of(pilot),
            group: k,
        });
    }
    Comparison {
        baseline_has_data: has_data(baseline),
        pilot_has_data: has_data(pilot),
        rows,
    }
}

/// A change in percent for people: `+12.5 %`, `−40.0 %`; `n/a` when there is none to give.
pub fn change_text(c: Option<f64>) -> String {
    match c {
        Some(c) => format!("{}{:.1} %", if c >= 0.0 { "+" } else { "−" }, c.abs()),
        None => "n/a".into(),
    }
}

/// A change in percentage points for people: `+12.5 pp`.
pub fn points_text(c: Option<f64>) -> String {
    match c {
        Some(c) => format!("{}{:.1} pp", if c >= 0.0 { "+" } else { "−" }, c.abs()),
        None => "n/a".into(),
    }
}

/// A rate for people: `12.3`, or `–` with no monitored time.
pub fn rate_text(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "–".into())
}
