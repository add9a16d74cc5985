//! NEWS2 bands: which observations are watched ([`Vital`]), which values are plausible at all,
//! the limits that apply to a resident (NEWS2 chart 1 or their own), and which band a reading
//! falls in. No state and no time.

use std::time::Duration;

use atgw_sdk::event::{Kind, Observation, Priority, Threshold};

use super::{HEART_RATE, RESIDENT_OVERRIDE_RULE, RESPIRATORY_RATE, ResidentVitals, SPO2};

/// The three observations these rules watch; others pass through untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Vital {
    Spo2,
    RespiratoryRate,
    HeartRate,
}

impl Vital {
    pub(super) fn from_name(name: &str) -> Option<Vital> {
        match name {
            SPO2 => Some(Vital::Spo2),
            RESPIRATORY_RATE => Some(Vital::RespiratoryRate),
            HEART_RATE => Some(Vital::HeartRate),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Vital::Spo2 => SPO2,
            Vital::RespiratoryRate => RESPIRATORY_RATE,
            Vital::HeartRate => HEART_RATE,
        }
    }

    pub(super) fn kind(self) -> Kind {
        match self {
            Vital::Spo2 => Kind::Spo2Low,
            Vital::RespiratoryRate => Kind::RespiratoryRateAbnormal,
            Vital::HeartRate => Kind::HeartRateAbnormal,
        }
    }

    /// Whether a value can be a measurement of a living resident wearing the sensor at all.
    /// Anything else is treated as absent: it never breaches, never counts towards
    /// persistence and never clears an alert. Readings are compared unrounded.
    ///
    /// | observation | plausible | why the bounds |
    /// |---|---|---|
    /// | SpO2 | 50–100 % | Above 100 % is not a saturation. Pulse oximeters are calibrated and their accuracy specified only over 70–100 % (ISO 80601-2-61:2017; FDA guidance "Pulse Oximeters – Premarket Notification Submissions", 2013), so a value below 50 % is outside anything the device can measure; a wrist device reports 0 when it is not worn. A resident who really desaturates passes through the NEWS2 bands (≤ 91 %) first, and an absent reading never clears that alert. |
    /// | pulse | 20–300 /min | Below the slowest ventricular escape rhythm (idioventricular, 20–40 /min); above the fastest sustained adult rate (1:1 atrial flutter, ~300 /min). ECG monitors need only measure 30–200 /min (adult) and 30–250 /min (neonatal) to IEC 60601-2-27:2011. |
    /// | respiratory rate | 1–80 /min | 0 is what contactless (radar, bed) sensors report when they detect nobody, so it is no measurement (the "not reading" rule in `rules` reports a sensor that keeps sending it). Above 80 /min is beyond any sustained adult rate (NEWS2's top band starts at 25); this bound is the project's (issue 12), to be confirmed by the clinical safety officer. |
    ///
    /// Non-finite and negative values are never plausible. A device's own "no reading" codes
    /// inside these ranges (127 from some oximeters) are still for its profile's `absent` list,
    /// because only the profile knows which device sends which, and a plausible-looking value
    /// must fail towards alerting.
    pub(super) fn plausible(self, value: f64) -> bool {
        let (min, max) = match self {
            Vital::Spo2 => (SPO2_PLAUSIBLE_MIN, 100.0),
            Vital::HeartRate => (HEART_RATE_PLAUSIBLE_MIN, HEART_RATE_PLAUSIBLE_MAX),
            Vital::RespiratoryRate => (
                RESPIRATORY_RATE_PLAUSIBLE_MIN,
                RESPIRATORY_RATE_PLAUSIBLE_MAX,
            ),
        };
        value.is_finite() && (min..=max).contains(&value)
    }
}

/// Lowest plausible SpO2 (%): see `Vital::plausible` for the sources.
pub const SPO2_PLAUSIBLE_MIN: f64 = 50.0;
/// Lowest plausible pulse (/min).
pub const HEART_RATE_PLAUSIBLE_MIN: f64 = 20.0;
/// Highest plausible pulse (/min).
pub const HEART_RATE_PLAUSIBLE_MAX: f64 = 300.0;
/// Lowest plausible respiratory rate (/min): 0 is "nobody detected".
pub const RESPIRATORY_RATE_PLAUSIBLE_MIN: f64 = 1.0;
/// Highest plausible respiratory rate (/min).
pub const RESPIRATORY_RATE_PLAUSIBLE_MAX: f64 = 80.0;

/// Which way a limit is crossed; the wire spelling is `threshold.op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// Breached at or below the limit.
    Low,
    /// Breached at or above the limit.
    High,
}

impl Side {
    pub(super) fn op(self) -> &'static str {
        match self {
            Side::Low => "<=",
            Side::High => ">=",
        }
    }
}

/// One breach limit: a reading at or beyond `value` on `side` is in this band.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Limit {
    pub(super) side: Side,
    pub(super) value: f64,
    pub(super) priority: Priority,
    pub(super) rule: &'static str,
}

impl Limit {
    pub(super) const fn news2(
        side: Side,
        value: f64,
        priority: Priority,
        rule: &'static str,
    ) -> Limit {
        Limit {
            side,
            value,
            priority,
            rule,
        }
    }

    pub(super) fn breached_by(&self, reading: f64) -> bool {
        match self.side {
            Side::Low => reading <= self.value,
            Side::High => reading >= self.value,
        }
    }

    pub(super) fn threshold(&self, vital: Vital, window: Duration) -> Threshold {
        Threshold {
            observation: vital.name().to_owned(),
            op: self.side.op().to_owned(),
            value: self.value,
            rule: self.rule.to_owned(),
            window_s: Some(window.as_secs()),
        }
    }
}

// NEWS2 chart 1 (RCP 2017, "National Early Warning Score (NEWS) 2", chart 1: the NEWS scoring
// system; also reproduced in Thorax/BMJ's NEWS2 scale-1/scale-2 table and in
// shared/protocols/devices-and-schema.md §2.4). Only the bands scoring 3 (→ high) and 2
// (→ medium) are listed; each table is ordered most urgent first, because `classify` takes the
// first band a reading falls in.

/// SpO2 scale 1: ≤ 91 → 3, 92–93 → 2 (94–95 → 1 and ≥ 96 → 0 never alert).
const SPO2_SCALE1: &[Limit] = &[
    Limit::news2(Side::Low, 91.0, Priority::High, "news2-spo2-scale1-score3"),
    Limit::news2(
        Side::Low,
        93.0,
        Priority::Medium,
        "news2-spo2-scale1-score2",
    ),
];

/// SpO2 scale 2 (prescribed target 88–92 %): ≤ 83 → 3, 84–85 → 2 (86–87 → 1 and 88–92 → 0
/// never alert). NEWS2 scale 2 also scores *high* saturations on supplemental oxygen (93–94
/// → 1, 95–96 → 2, ≥ 97 → 3: over-oxygenation risks CO2 retention), but the gateway does not
/// know whether a resident is on oxygen, and `spo2_low` is not the kind for it, so those bands
/// are not applied; ≥ 93 on air scores 0.
const SPO2_SCALE2: &[Limit] = &[
    Limit::news2(Side::Low, 83.0, Priority::High, "news2-spo2-scale2-score3"),
    Limit::news2(
        Side::Low,
        85.0,
        Priority::Medium,
        "news2-spo2-scale2-score2",
    ),
];

/// Respiration rate: ≤ 8 → 3, ≥ 25 → 3, 21–24 → 2 (9–11 → 1 and 12–20 → 0 never alert).
const RESPIRATORY_RATE_BANDS: &[Limit] = &[
    Limit::news2(
        Side::Low,
        8.0,
        Priority::High,
        "news2-respiratory-rate-low-score3",
    ),
    Limit::news2(
        Side::High,
        25.0,
        Priority::High,
        "news2-respiratory-rate-high-score3",
    ),
    Limit::news2(
        Side::High,
        21.0,
        Priority::Medium,
        "news2-respiratory-rate-high-score2",
    ),
];

/// Pulse: ≤ 40 → 3, ≥ 131 → 3, 111–130 → 2 (41–50 and 91–110 → 1, 51–90 → 0 never alert).
const HEART_RATE_BANDS: &[Limit] = &[
    Limit::news2(
        Side::Low,
        40.0,
        Priority::High,
        "news2-heart-rate-low-score3",
    ),
    Limit::news2(
        Side::High,
        131.0,
        Priority::High,
        "news2-heart-rate-high-score3",
    ),
    Limit::news2(
        Side::High,
        111.0,
        Priority::Medium,
        "news2-heart-rate-high-score2",
    ),
];

/// The limits that apply to `vital` for this resident, most urgent first.
pub(super) fn limits(vital: Vital, resident: Option<&ResidentVitals>) -> Vec<Limit> {
    let (news2, low, high) = match vital {
        Vital::Spo2 => {
            // Anything but an explicit 2 is scale 1: an invalid scale that slipped past
            // validation must fail towards the scale that alerts more.
            let table = match resident.map(|r| r.spo2_scale) {
                Some(2) => SPO2_SCALE2,
                _ => SPO2_SCALE1,
            };
            (table, resident.and_then(|r| r.spo2_low), None)
        }
        Vital::RespiratoryRate => (
            RESPIRATORY_RATE_BANDS,
            resident.and_then(|r| r.respiratory_rate_low),
            resident.and_then(|r| r.respiratory_rate_high),
        ),
        Vital::HeartRate => (
            HEART_RATE_BANDS,
            resident.and_then(|r| r.heart_rate_low),
            resident.and_then(|r| r.heart_rate_high),
        ),
    };
    let mut out = Vec::with_capacity(3);
    for (side, own) in [(Side::Low, low), (Side::High, high)] {
        // A non-finite limit (rejected by `validate`) would never or always breach, and could
        // not be stored in the state's JSON: NEWS2 applies instead.
        match own.filter(|v| v.is_finite()) {
            Some(value) => out.push(Limit {
                side,
                value,
                priority: Priority::High,
                rule: RESIDENT_OVERRIDE_RULE,
            }),
            None => out.extend(news2.iter().filter(|l| l.side == side)),
        }
    }
    // Stable, so each side keeps its table order; `lane` is lowest for the most urgent.
    out.sort_by_key(|l| l.priority.lane());
    out
}

/// The band a valid reading falls in, or `None` when it calls for no alert. The reading is
/// rounded to a whole number first (half away from zero), as NEWS2 charts record these vitals,
/// so a radar's 24.7 breaths/min scores like 25 and a PLX's 91.5 % like 92.
pub(super) fn classify(
    vital: Vital,
    resident: Option<&ResidentVitals>,
    value: f64,
) -> Option<Limit> {
    let reading = value.round();
    limits(vital, resident)
        .into_iter()
        .find(|l| l.breached_by(reading))
}

/// FHIR `Observation.status` codes that mean "not a result yet" or "not a result at all".
/// `preliminary` is what a PLX oximeter's "early estimated data" becomes: the algorithm has not
/// settled, and those readings are exactly the low ones of a finger being put on. Anything
/// else (no status, `final`, `amended`, an unknown code) counts, so that a misspelt status in a
/// profile fails towards alerting.
const NOT_A_RESULT: &[&str] = &["preliminary", "registered", "cancelled", "entered-in-error"];

/// Whether an observation is a measurement at all: it has a value, no `absent_reason`, a status
/// that is a result, and (for SpO2, pulse and respiratory rate) a plausible value.
pub fn is_measurement(obs: &Observation) -> bool {
    match Vital::from_name(&obs.name) {
        Some(vital) => valid_value(vital, obs).is_some(),
        None => {
            obs.absent_reason.is_none()
                && obs.value.is_some_and(f64::is_finite)
                && !obs
                    .status
                    .as_ref()
                    .is_some_and(|s| NOT_A_RESULT.iter().any(|n| s.eq_ignore_ascii_case(n)))
        }
    }
}

/// The reading's value when it is a valid measurement, else `None`.
pub(super) fn valid_value(vital: Vital, obs: &Observation) -> Option<f64> {
    if obs.absent_reason.is_some() {
        return None;
    }
    if let Some(status) = &obs.status
        && NOT_A_RESULT.iter().any(|s| status.eq_ignore_ascii_case(s))
    {
        return None;
    }
    obs.value.filter(|v| vital.plausible(*v))
}

/// FHIR data-absent-reason of a reading [`mark_implausible`] took the value from.
pub const IMPLAUSIBLE_REASON: &str = "error";

/// Marks physiologically impossible SpO2, pulse and respiratory-rate readings as absent, for the
/// record: the value is removed and `absent_reason` is `error` (FHIR: "some system or workflow
/// process error means that the information is not available"); the raw payload keeps what the
/// device sent. Returns how many were marked. The ranges (and their sources) are documented on
/// `Vital::plausible`: SpO2 50–100 %, pulse 20–300 /min, respiratory rate 1–80 /min; other
/// observations are left alone.
pub fn mark_implausible(observations: &mut [Observation]) -> usize {
    let mut marked = 0;
    for obs in observations {
        let Some(vital) = Vital::from_name(&obs.name) else {
            continue;
        };
        if obs.absent_reason.is_none()
            && let Some(v) = obs.value
            && !vital.plausible(v)
        {
            obs.value = None;
            obs.absent_reason = Some(IMPLAUSIBLE_REASON.to_owned());
            marked += 1;
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::vitals::test_support::*;
    use crate::rules::vitals::*;

    #[test]
    fn implausible_readings_are_marked_absent_for_the_record() {
        let mut obs = vec![
            spo2(0.0),
            spo2(97.0),
            reading(HEART_RATE, 350.0),
            reading(RESPIRATORY_RATE, 0.0),
            reading("perfusion_index", 0.0),
        ];
        assert_eq!(mark_implausible(&mut obs), 3);
        let absent: Vec<_> = obs
            .iter()
            .map(|o| (o.value, o.absent_reason.as_deref()))
            .collect();
        assert_eq!(
            absent,
            [
                (None, Some("error")),
                (Some(97.0), None),
                (None, Some("error")),
                (None, Some("error")),
                (Some(0.0), None),
            ]
        );
    }

    // --- exhaustive band tables ----------------------------------------------------------------

    /// NEWS2 chart 1 scores, written out independently of the `Limit` tables.
    fn news2_score(vital: Vital, scale: u8, v: i32) -> u8 {
        match (vital, scale) {
            (Vital::Spo2, 1) => match v {
                ..=91 => 3,
                92..=93 => 2,
                94..=95 => 1,
                _ => 0,
            },
            (Vital::Spo2, _) => match v {
                ..=83 => 3,
                84..=85 => 2,
                86..=87 => 1,
                _ => 0, // 88–92, and ≥ 93 on air
            },
            (Vital::RespiratoryRate, _) => match v {
                ..=8 => 3,
                9..=11 => 1,
                12..=20 => 0,
                21..=24 => 2,
                _ => 3,
            },
            (Vital::HeartRate, _) => match v {
                ..=40 => 3,
                41..=50 => 1,
                51..=90 => 0,
                91..=110 => 1,
                111..=130 => 2,
                _ => 3,
            },
        }
    }

    fn expected_priority(score: u8) -> Option<Priority> {
        match score {
            3 => Some(Priority::High),
            2 => Some(Priority::Medium),
            _ => None,
        }
    }

    fn check_table(vital: Vital, resident: Option<&ResidentVitals>, scale: u8, max: i32) {
        for v in 0..=max {
            let want = expected_priority(news2_score(vital, scale, v));
            let got = classify(vital, resident, f64::from(v));
            assert_eq!(got.map(|l| l.priority), want, "{} {v}", vital.name());
            if let Some(l) = got {
                assert!(l.rule.starts_with("news2-"), "{}", l.rule);
                assert!(l.breached_by(f64::from(v)));
                let normal_middle = match vital {
                    Vital::Spo2 => 101,
                    Vital::RespiratoryRate => 16,
                    Vital::HeartRate => 70,
                };
                assert_eq!(
                    l.side == Side::Low,
                    v < normal_middle,
                    "{} {v}",
                    vital.name()
                );
            }
            // And end to end, from a fresh state with no persistence; an impossible reading
            // (SpO2 below 50, …) is banded like any other but never reaches a band.
            let want = if vital.plausible(f64::from(v)) {
                want
            } else {
                None
            };
            let mut state = VitalState::default();
            let cfg = VitalsConfig {
                persistence_readings: 1,
                ..VitalsConfig::default()
            };
            let out = evaluate(
                &cfg,
                resident,
                &mut state,
                &[reading(vital.name(), f64::from(v))],
                at(0),
            );
            assert_eq!(out.first().map(|x| x.priority), want);
            assert!(out.iter().all(|x| x.kind == vital.kind()));
        }
    }

    #[test]
    fn spo2_scale1_band_table_is_news2() {
        check_table(Vital::Spo2, None, 1, 100);
        check_table(Vital::Spo2, Some(&ResidentVitals::new("r")), 1, 100);
    }

    #[test]
    fn spo2_scale2_band_table_is_news2() {
        let r = ResidentVitals {
            spo2_scale: 2,
            ..ResidentVitals::new("r")
        };
        check_table(Vital::Spo2, Some(&r), 2, 100);
    }

    #[test]
    fn respiratory_rate_band_table_is_news2() {
        check_table(Vital::RespiratoryRate, None, 1, 80);
    }

    #[test]
    fn heart_rate_band_table_is_news2() {
        check_table(Vital::HeartRate, None, 1, 300);
    }

    #[test]
    fn fractional_readings_are_scored_as_whole_numbers() {
        let band = |vital, v| classify(vital, None, v).map(|l| l.priority);
        assert_eq!(band(Vital::Spo2, 91.4), Some(Priority::High));
        assert_eq!(band(Vital::Spo2, 91.5), Some(Priority::Medium));
        assert_eq!(band(Vital::Spo2, 93.5), None);
        assert_eq!(band(Vital::RespiratoryRate, 24.7), Some(Priority::High));
        assert_eq!(band(Vital::RespiratoryRate, 8.4), Some(Priority::High));
        assert_eq!(band(Vital::RespiratoryRate, 8.5), None);
        assert_eq!(band(Vital::HeartRate, 130.5), Some(Priority::High));
        assert_eq!(band(Vital::HeartRate, 110.4), None);
    }
}
