//! The call-handling standard an evaluation compares the gateway against: the share of alerts
//! acknowledged within 60 s and within 180 s, per priority, beside the target UK telecare
//! monitoring centres are held to by the TSA (TEC Services Association) Quality Standards
//! Framework: 97.5 % of calls answered within 60 s and 99 % within 180 s.
//!
//! The gateway's figure is not a monitoring centre's answer time: it runs from the alert being
//! raised at the gateway (its first raise) to the first acknowledgement by a person, so it also
//! holds the time a carer takes to reach a handset. That is the wait a resident has, and it is
//! what a borough's evaluation sets beside the standard. An alert nobody acknowledged counts as
//! not within either limit (leaving it out would flatter the share). Test alerts are left out.

use super::AlertRecord;

/// One limit of the standard: acknowledged within `within_ms` (inclusive) for `percent` % of
/// alerts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub within_ms: i64,
    pub percent: f64,
    /// For people and ids: `60 s`, `180 s`.
    pub label: &'static str,
    /// For ids, CSV columns and `data-*` attributes.
    pub key: &'static str,
}

/// The TSA Quality Standards Framework call-handling target.
pub const TARGETS: [Target; 2] = [
    Target {
        within_ms: 60_000,
        percent: 97.5,
        label: "60 s",
        key: "60s",
    },
    Target {
        within_ms: 180_000,
        percent: 99.0,
        label: "180 s",
        key: "180s",
    },
];

/// Where the target comes from, for the report.
pub const SOURCE: &str = "TSA (TEC Services Association) Quality Standards Framework call-handling target: 97.5 % of calls within 60 s, 99 % within 180 s";

/// How one group of alerts did against the standard.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub group: String,
    /// Alerts counted (tests left out), acknowledged or not.
    pub alerts: usize,
    /// Alerts acknowledged within each of [`TARGETS`], in its order.
    pub within: [usize; 2],
}

impl Share {
    /// The share within target `i`, in percent; `None` with no alerts (not 0 %, not 100 %).
    pub fn percent(&self, i: usize) -> Option<f64> {
        let within = *self.within.get(i)?;
        (self.alerts > 0).then(|| 100.0 * within as f64 / self.alerts as f64)
    }

    /// Whether the share meets target `i`; `None` with no alerts.
    pub fn meets(&self, i: usize) -> Option<bool> {
        let target = TARGETS.get(i)?;
        self.percent(i).map(|p| p >= target.percent)
    }
}

/// Whether an alert counts toward the standard (test alerts do not).
pub fn counted(a: &AlertRecord) -> bool {
    !a.test
}

/// The share of one group.
pub fn share<'a>(group: &str, alerts: impl IntoIterator<Item = &'a AlertRecord>) -> Share {
    let mut s = Share {
        group: group.to_owned(),
        alerts: 0,
        within: [0; 2],
    };
    for a in alerts.into_iter().filter(|a| counted(a)) {
        s.alerts += 1;
        let Some(wait) = a.time_to_ack_ms() else {
            continue; // unacknowledged: within neither limit
        };
        for (n, t) in s.within.iter_mut().zip(TARGETS.iter()) {
            *n += usize::from(wait <= t.within_ms);
        }
    }
    s
}

/// Shares per priority, high first, each priority that has a counted alert.
pub fn by_priority(alerts: &[AlertRecord]) -> Vec<Share> {
    super::stats::priorities(alerts.iter().filter(|a| counted(a)))
        .into_iter()
        .map(|p| share(p, alerts.iter().filter(|a| a.priority == p)))
        .collect()
}

/// A share for people: `75.0 %`, or `no alerts`.
pub fn percent_text(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1} %"))
        .unwrap_or_else(|| "no alerts".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(priority: &str, wait_ms: Option<i64>, test: bool) -> AlertRecord {
        AlertRecord {
            id: format!("{priority}-{wait_ms:?}-{test}"),
            kind: "pendant_press".into(),
            priority: priority.into(),
            area: None,
            room: None,
            device: "d".into(),
            resident: None,
            raised_ms: 1_000_000,
            day: jiff::civil::date(2026, 3, 9),
            acked_ms: wait_ms.map(|w| 1_000_000 + w),
            acked_by: None,
            resolved_ms: None,
            outcome: None,
            status: "open".into(),
            escalations: 0,
            repeats: 0,
            reminders: 0,
            not_attended: 0,
            test,
        }
    }

    #[test]
    fn unacknowledged_alerts_are_not_within_and_test_alerts_are_not_counted() {
        let alerts = [
            alert("high", Some(60_000), false),  // the limit itself is within
            alert("high", Some(60_001), false),  // within 180 s only
            alert("high", Some(180_001), false), // within neither
            alert("high", None, false),          // nobody acknowledged: within neither
            alert("high", Some(1_000), true),    // a test: not counted at all
            alert("medium", Some(5_000), false),
        ];
        let s = by_priority(&alerts);
        assert_eq!(
            s.iter().map(|s| s.group.as_str()).collect::<Vec<_>>(),
            ["high", "medium"]
        );
        assert_eq!((s[0].alerts, s[0].within), (4, [1, 2]));
        assert_eq!((s[0].percent(0), s[0].percent(1)), (Some(25.0), Some(50.0)));
        assert_eq!((s[1].alerts, s[1].within), (1, [1, 1]));
        assert_eq!(s[1].meets(0), Some(true));
        let none = share("all", &[alert("high", Some(1), true)]);
        assert_eq!(
            (none.alerts, none.percent(0), none.meets(1)),
            (0, None, None)
        );
        assert_eq!(percent_text(None), "no alerts");
    }
}
