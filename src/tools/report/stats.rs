//! The report's figures as pure functions of its records: nearest-rank percentiles, counts by
//! day and kind, time to acknowledge by group, escalations, outcomes, offline time. No SQL and
//! no formatting beyond durations, so each figure is tested on hand-made records.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;

use super::{AlertRecord, TestCall};

/// The nearest-rank percentile of ascending `sorted` values: the smallest value such that at
/// least `percent` % of the values are less than or equal to it (rank ⌈p/100 × n⌉). Always one
/// of the observed values, never an interpolation.
pub fn nearest_rank(sorted: &[i64], percent: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (percent.min(100) as usize * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Time-to-acknowledge figures of one group of alerts.
#[derive(Clone, Debug, PartialEq)]
pub struct AckStats {
    pub group: String,
    pub alerts: usize,
    pub acknowledged: usize,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

/// Figures of one group.
pub fn ack_stats<'a>(group: &str, alerts: impl IntoIterator<Item = &'a AlertRecord>) -> AckStats {
    let mut n = 0;
    let mut waits: Vec<i64> = Vec::new();
    for a in alerts {
        n += 1;
        if let Some(w) = a.time_to_ack_ms() {
            waits.push(w);
        }
    }
    waits.sort_unstable();
    AckStats {
        group: group.to_owned(),
        alerts: n,
        acknowledged: waits.len(),
        p50_ms: nearest_rank(&waits, 50),
        p90_ms: nearest_rank(&waits, 90),
        max_ms: waits.last().copied(),
    }
}

/// Sort key of a priority: high first, unknown values last.
pub fn priority_rank(p: &str) -> u8 {
    match p {
        "high" => 0,
        "medium" => 1,
        "low" => 2,
        "info" => 3,
        _ => 4,
    }
}

/// Label of an alert's area (alerts from unregistered devices have none).
pub fn area_label(a: &AlertRecord) -> String {
    a.area.clone().unwrap_or_else(|| "(no area)".into())
}

/// The distinct priorities of `alerts`, high first.
pub fn priorities<'a>(alerts: impl Iterator<Item = &'a AlertRecord>) -> Vec<&'a str> {
    let mut groups: Vec<&str> = alerts
        .map(|a| a.priority.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    groups.sort_by_key(|p| (priority_rank(p), p.to_string()));
    groups
}

/// Time to acknowledge per priority, high first.
pub fn ack_by_priority(alerts: &[AlertRecord]) -> Vec<AckStats> {
    priorities(alerts.iter())
        .into_iter()
        .map(|p| ack_stats(p, alerts.iter().filter(|a| a.priority == p)))
        .collect()
}

/// Time to acknowledge per area, by name.
pub fn ack_by_area(alerts: &[AlertRecord]) -> Vec<AckStats> {
    let groups: BTreeSet<String> = alerts.iter().map(area_label).collect();
    groups
        .into_iter()
        .map(|g| ack_stats(&g, alerts.iter().filter(|a| area_label(a) == g)))
        .collect()
}

/// Alerts per kind, most frequent first.
pub fn kind_totals(alerts: &[AlertRecord]) -> Vec<(String, u64)> {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for a in alerts {
        *m.entry(a.kind.as_str()).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Alerts per (day, kind).
pub fn by_day_kind(alerts: &[AlertRecord]) -> BTreeMap<(Date, String), u64> {
    let mut m = BTreeMap::new();
    for a in alerts {
        *m.entry((a.day, a.kind.clone())).or_default() += 1;
    }
    m
}

/// Label for alerts nobody has resolved yet.
pub const UNRESOLVED: &str = "unresolved";

/// Alerts per outcome: the recorded outcomes in [`crate::alerts::OUTCOMES`] order (all of them,
/// zeros included), any other recorded value, then [`UNRESOLVED`].
pub fn outcomes(alerts: &[AlertRecord]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = crate::alerts::OUTCOMES
        .iter()
        .map(|o| ((*o).to_owned(), 0))
        .collect();
    let mut unresolved = 0;
    for a in alerts {
        match &a.outcome {
            Some(o) => match out.iter_mut().find(|(name, _)| name == o) {
                Some((_, n)) => *n += 1,
                None => out.push((o.clone(), 1)),
            },
            None => unresolved += 1,
        }
    }
    out.push((UNRESOLVED.to_owned(), unresolved));
    out
}

/// Outcome counts of one kind of alert.
pub fn outcomes_of_kind(alerts: &[AlertRecord], kind: &str) -> Vec<(String, u64)> {
    let of: Vec<AlertRecord> = alerts.iter().filter(|a| a.kind == kind).cloned().collect();
    outcomes(&of)
}

/// What escalation did over the period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Escalations {
    /// Alerts that reached at least one further tier.
    pub alerts_escalated: usize,
    /// Tier escalations in total (`ack_timeout`).
    pub tier_escalations: u64,
    pub repeats: u64,
    pub reminders: u64,
    /// Reopenings of acknowledged alerts nobody resolved within `attend_within`.
    pub not_attended: u64,
    /// Per priority, high first: (priority, alerts, escalated alerts).
    pub by_priority: Vec<(String, usize, usize)>,
    /// Alerts by the number of tiers they escalated through: (tiers, alerts).
    pub by_tiers: Vec<(u32, usize)>,
}

pub fn escalations(alerts: &[AlertRecord]) -> Escalations {
    let mut e = Escalations::default();
    let mut prio: BTreeMap<(u8, String), (usize, usize)> = BTreeMap::new();
    let mut tiers: BTreeMap<u32, usize> = BTreeMap::new();
    for a in alerts {
        let escalated = a.escalations > 0;
        e.alerts_escalated += usize::from(escalated);
        e.tier_escalations += u64::from(a.escalations);
        e.repeats += u64::from(a.repeats);
        e.reminders += u64::from(a.reminders);
        e.not_attended += u64::from(a.not_attended);
        let p = prio
            .entry((priority_rank(&a.priority), a.priority.clone()))
            .or_default();
        p.0 += 1;
        p.1 += usize::from(escalated);
        *tiers.entry(a.escalations).or_default() += 1;
    }
    e.by_priority = prio.into_iter().map(|((_, p), (n, x))| (p, n, x)).collect();
    e.by_tiers = tiers.into_iter().collect();
    e
}

/// Upper bounds (exclusive, ms) and labels of the time-to-acknowledge histogram.
pub const ACK_BUCKETS: &[(i64, &str)] = &[
    (30_000, "< 30 s"),
    (60_000, "30–60 s"),
    (120_000, "1–2 min"),
    (300_000, "2–5 min"),
    (900_000, "5–15 min"),
    (i64::MAX, "≥ 15 min"),
];

/// Index into [`ACK_BUCKETS`] of a wait.
pub fn ack_bucket(ms: i64) -> usize {
    ACK_BUCKETS
        .iter()
        .position(|(upper, _)| ms < *upper)
        .unwrap_or(ACK_BUCKETS.len() - 1)
}

/// Acknowledged alerts per priority (high first) and bucket.
pub fn ack_histogram(alerts: &[AlertRecord]) -> Vec<(String, Vec<u64>)> {
    ack_by_priority(alerts)
        .into_iter()
        .map(|s| {
            let mut counts = vec![0u64; ACK_BUCKETS.len()];
            for a in alerts.iter().filter(|a| a.priority == s.group) {
                if let Some(w) = a.time_to_ack_ms() {
                    counts[ack_bucket(w)] += 1;
                }
            }
            (s.group, counts)
        })
        .collect()
}

/// Offline time within `[from, to)` and the number of offline episodes overlapping it, from a
/// device's `device_offline` transitions in time order (`true` = raised, `false` = cleared).
/// A raise while already offline and a clear while online change nothing; an episode still open
/// at the end counts until `to`.
pub fn offline_time(transitions: &[(i64, bool)], from: i64, to: i64) -> (i64, u32) {
    if to <= from {
        return (0, 0);
    }
    let mut total = 0i64;
    let mut episodes = 0u32;
    let mut since: Option<i64> = None;
    let close = |start: i64, end: i64, total: &mut i64, episodes: &mut u32| {
        let (s, e) = (start.max(from), end.min(to));
        if start < to && end > from {
            *episodes += 1;
        }
        if e > s {
            *total += e - s;
        }
    };
    for &(t, offline) in transitions {
        match (since, offline) {
            (None, true) => since = Some(t),
            (Some(start), false) => {
                close(start, t, &mut total, &mut episodes);
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        close(start, to, &mut total, &mut episodes);
    }
    (total, episodes)
}

/// Test calls per device: (device, calls, last call ms), most calls first.
pub fn test_calls_by_device(calls: &[TestCall]) -> Vec<(String, u64, i64)> {
    let mut m: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    for c in calls {
        let e = m.entry(c.device.as_str()).or_insert((0, c.at_ms));
        e.0 += 1;
        e.1 = e.1.max(c.at_ms);
    }
    let mut v: Vec<(String, u64, i64)> = m
        .into_iter()
        .map(|(d, (n, last))| (d.to_owned(), n, last))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Distinct residents among the alerts (a count is all the default report shows of them).
pub fn distinct_residents(alerts: &[AlertRecord]) -> usize {
    alerts
        .iter()
        .filter_map(|a| a.resident.as_deref())
        .collect::<BTreeSet<_>>()
        .len()
}

/// Per resident (pseudonymous id): (resident, alerts, false alarms), most alerts first.
pub fn by_resident(alerts: &[AlertRecord]) -> Vec<(String, usize, usize)> {
    let mut m: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for a in alerts {
        if let Some(r) = a.resident.as_deref() {
            let e = m.entry(r).or_default();
            e.0 += 1;
            e.1 += usize::from(a.outcome.as_deref() == Some("false_alarm"));
        }
    }
    let mut v: Vec<(String, usize, usize)> = m
        .into_iter()
        .map(|(r, (n, f))| (r.to_owned(), n, f))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// A duration for people: `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        let s = ms / 1000;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = ms / 60_000;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// A duration as decimal seconds with millisecond precision (`12.345`), for CSV and markup.
pub fn seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: &str, priority: &str, area: Option<&str>, wait_ms: Option<i64>) -> AlertRecord {
        AlertRecord {
            id: format!("{kind}-{priority}-{wait_ms:?}"),
            kind: kind.into(),
            priority: priority.into(),
            area: area.map(str::to_owned),
            room: None,
            device: "d".into(),
            resident: None,
            raised_ms: 1_000_000,
            day: jiff::civil::date(2026, 4, 17),
            acked_ms: wait_ms.map(|w| 1_000_000 + w),
            acked_by: None,
            resolved_ms: None,
            outcome: None,
            status: "open".into(),
            escalations: 0,
            repeats: 0,
            reminders: 0,
            not_attended: 0,
            test: false,
        }
    }

    #[test]
    fn nearest_rank_returns_an_observed_value_at_rank_ceil_p_n() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&v, 50), Some(5));
        assert_eq!(nearest_rank(&v, 90), Some(9));
        assert_eq!(nearest_rank(&v, 100), Some(10));
        assert_eq!(nearest_rank(&v, 0), Some(1), "rank is at least 1");
        // n = 3: p50 → rank 2, p90 → rank 3 (no interpolation between 20 and 30).
        assert_eq!(nearest_rank(&[10, 20, 30], 50), Some(20));
        assert_eq!(nearest_rank(&[10, 20, 30], 90), Some(30));
        // n = 4: p50 → rank 2, not the mean of the middle two.
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn time_to_ack_groups_by_priority_high_first_and_counts_unacknowledged_alerts() {
        let alerts = vec![
            alert("fall", "medium", Some("east"), Some(40_000)),
            alert("pendant_press", "high", Some("east"), Some(10_000)),
            alert("pendant_press", "high", Some("west"), Some(30_000)),
            alert("pendant_press", "high", None, Some(20_000)),
            alert("pendant_press", "high", Some("west"), None),
        ];
        let by_p = ack_by_priority(&alerts);
        assert_eq!(
            by_p.iter().map(|s| s.group.as_str()).collect::<Vec<_>>(),
            ["high", "medium"]
        );
        assert_eq!(
            by_p[0],
            AckStats {
                group: "high".into(),
                alerts: 4,
                acknowledged: 3,
                p50_ms: Some(20_000),
                p90_ms: Some(30_000),
                max_ms: Some(30_000),
            }
        );
        let by_a = ack_by_area(&alerts);
        let west = by_a.iter().find(|s| s.group == "west").unwrap();
        assert_eq!(
            (west.alerts, west.acknowledged, west.max_ms),
            (2, 1, Some(30_000))
        );
        assert!(by_a.iter().any(|s| s.group == "(no area)" && s.alerts == 1));
    }

    #[test]
    fn outcomes_list_every_known_outcome_then_unresolved() {
        let mut a = alert("fall", "high", None, None);
        a.outcome = Some("false_alarm".into());
        let mut b = a.clone();
        b.outcome = Some("something_new".into());
        let c = alert("fall", "high", None, None);
        let o = outcomes(&[a, b, c]);
        let get = |k: &str| o.iter().find(|(n, _)| n == k).map(|(_, n)| *n);
        assert_eq!(get("false_alarm"), Some(1));
        assert_eq!(get("assisted"), Some(0), "zeros are shown, not hidden");
        assert_eq!(get("something_new"), Some(1));
        assert_eq!(o.last(), Some(&(UNRESOLVED.to_owned(), 1)));
    }

    #[test]
    fn escalations_count_alerts_tiers_repeats_and_reminders() {
        let mut a = alert("fall", "high", None, None);
        a.escalations = 2;
        a.repeats = 3;
        let mut b = alert("fall", "medium", None, Some(1));
        b.reminders = 1;
        b.not_attended = 2;
        let e = escalations(&[a, b]);
        assert_eq!(
            (
                e.alerts_escalated,
                e.tier_escalations,
                e.repeats,
                e.reminders,
                e.not_attended
            ),
            (1, 2, 3, 1, 2)
        );
        assert_eq!(
            e.by_priority,
            vec![("high".into(), 1, 1), ("medium".into(), 1, 0)]
        );
        assert_eq!(e.by_tiers, vec![(0, 1), (2, 1)]);
    }

    #[test]
    fn offline_time_clips_episodes_to_the_window_and_counts_open_ones_to_its_end() {
        // Window 100..200. Offline 50..120 (straddles the start), 150..160, 190.. (still open).
        let t = [
            (50, true),
            (120, false),
            (130, false), // a clear while online changes nothing
            (150, true),
            (155, true), // a raise while offline changes nothing
            (160, false),
            (190, true),
        ];
        assert_eq!(offline_time(&t, 100, 200), (20 + 10 + 10, 3));
        // An episode entirely before or after the window does not count.
        assert_eq!(offline_time(&[(10, true), (20, false)], 100, 200), (0, 0));
        assert_eq!(offline_time(&[(250, true)], 100, 200), (0, 0));
        assert_eq!(offline_time(&[], 100, 200), (0, 0));
        assert_eq!(offline_time(&[(0, true)], 200, 100), (0, 0), "empty window");
    }

    #[test]
    fn ack_waits_fall_into_half_open_buckets() {
        assert_eq!(ack_bucket(0), 0);
        assert_eq!(ack_bucket(29_999), 0);
        assert_eq!(ack_bucket(30_000), 1);
        assert_eq!(ack_bucket(3_600_000), ACK_BUCKETS.len() - 1);
    }

    #[test]
    fn durations_read_naturally_and_seconds_keep_milliseconds() {
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4 min 05 s");
        assert_eq!(human_duration(7_380_000), "2 h 03 min");
        assert_eq!(seconds(12_345), "12.345");
        assert_eq!(seconds(5), "0.005");
        assert_eq!(seconds(-1_500), "-1.500");
    }
}
