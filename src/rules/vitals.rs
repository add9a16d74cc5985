//! Vital-sign thresholds (DESIGN §6): SpO2, respiratory rate and pulse readings become
//! `spo2_low`, `respiratory_rate_abnormal` and `heart_rate_abnormal` verdicts.
//!
//! - **Bands** are those of NEWS2 (Royal College of Physicians, 2017) that call for a response:
//!   a parameter scoring 3 is urgent on its own (RCP treat it like an aggregate of 5–6), so it
//!   raises at `high` priority; a score of 2 raises at `medium`. Scores of 1 never alert: they
//!   are common in frail residents and would page staff all night. The full table, with the
//!   chart it comes from, is in [`evaluate`]'s documentation.
//! - **Per resident**: SpO2 scale 2 for residents with hypercapnic respiratory failure (target
//!   88–92 %), and explicit limits that replace a NEWS2 side outright ([`ResidentVitals`]).
//! - **Persistence**: one low reading is usually a cold finger or a moving hand, so an alert is
//!   raised only when a breach persists ([`VitalsConfig`]).
//! - **Absent readings never breach**: a "no finger" sentinel, a NaN, or a reading the device
//!   has not validated yet is not evidence of anything ([`evaluate`]).
//!
//! Everything here is pure: time is the `at` argument, state is a value the caller persists
//! (as JSON, in the journal's transaction), and verdicts are returned, not sent.

use std::fmt;
use std::time::Duration;

use atgw_sdk::event::{Kind, Observation, Phase, Priority, Threshold};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Observation name of peripheral oxygen saturation (`%`).
pub const SPO2: &str = "spo2";
/// Observation name of the pulse / heart rate (`/min`).
pub const HEART_RATE: &str = "heart_rate";
/// Observation name of the respiratory rate (`/min`).
pub const RESPIRATORY_RATE: &str = "respiratory_rate";
/// `threshold.rule` of a verdict that a resident's own limit produced, so a reader of the
/// alert knows the limit came from the care plan rather than from NEWS2.
pub const RESIDENT_OVERRIDE_RULE: &str = "resident-override";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `[vitals]`: how long a breach must persist before it raises an alert, for every resident.
///
/// A breach raises after `persistence_readings` consecutive valid breaching readings **or**
/// once breaching readings have persisted for `persistence_window` (from the first breaching
/// reading to the current one, with at least two readings), whichever comes first. Both are
/// needed because devices sample at very different rates. The count alone would make a
/// spot-check oximeter read every five minutes wait a quarter of an hour before anyone is told;
/// the window caps that delay at the second reading after `persistence_window`. The window
/// alone would make a device that reports every few seconds wait the whole window even when
/// every reading agrees; the count lets it raise sooner. Requiring two readings for the window
/// means one reading never raises by itself, however long it stands (unless
/// `persistence_readings = 1`).
///
/// For a continuous monitor (a PLX oximeter notifying once a second) three readings are three
/// seconds: set `persistence_readings` to cover the artefacts you expect (e.g. 15).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalsConfig {
    /// Consecutive valid breaching readings that raise an alert (default 3, at least 1).
    /// Readings without a value do not count and do not break the run.
    #[serde(default = "default_persistence_readings")]
    pub persistence_readings: u32,
    /// How long breaching readings must have persisted to raise even before
    /// `persistence_readings` is reached, as a duration such as `"60s"` or `"2m"` (default
    /// 60 s, above zero). Reported as `threshold.window_s`.
    #[serde(default = "default_persistence_window", with = "humantime_serde")]
    pub persistence_window: Duration,
    /// A device that keeps reporting vital signs none of which can be measured ("finger out",
    /// not worn, impossible values) for this long raises a low-priority `device_fault` ("Oximeter
    /// not reading - Room 16"), cleared by its next valid reading; see
    /// [`super::not_reading`]. Receipt time. Default 5 minutes; `"0s"` turns it off;
    /// `[[device]] not_reading_after` replaces it for one device.
    #[serde(default = "default_not_reading_after", with = "humantime_serde")]
    pub not_reading_after: Duration,
}

fn default_not_reading_after() -> Duration {
    Duration::from_secs(300)
}

fn default_persistence_readings() -> u32 {
    3
}

fn default_persistence_window() -> Duration {
    Duration::from_secs(60)
}

impl Default for VitalsConfig {
    fn default() -> Self {
        VitalsConfig {
            persistence_readings: default_persistence_readings(),
            persistence_window: default_persistence_window(),
            not_reading_after: default_not_reading_after(),
        }
    }
}

impl VitalsConfig {
    /// Checks what serde cannot. [`evaluate`] still behaves sensibly on an unchecked config
    /// (zero readings acts as one), but a person should hear about it at `check-config` time.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.persistence_readings == 0 {
            return Err(Invalid {
                key: "persistence_readings",
                problem: "must be at least 1 (1 raises on the first breaching reading)".into(),
            });
        }
        if self.persistence_window.is_zero() {
            return Err(Invalid {
                key: "persistence_window",
                problem: "must be above zero, e.g. \"60s\"; to raise on two readings set \
                          persistence_readings = 2"
                    .into(),
            });
        }
        Ok(())
    }
}

/// `[[resident]]`: one resident's vital-sign plan. Residents without an entry get NEWS2 scale 1
/// and the default bands.
///
/// An explicit limit replaces the NEWS2 bands on that side of that observation (both the
/// score-3 and the score-2 band) with a single `high`-priority limit, because a clinician who
/// writes a limit into a care plan means "tell us when it gets there", not "grade it for us".
/// It wins over `spo2_scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidentVitals {
    /// Pseudonymous resident id, as in `[[device]] resident` (never a name or NHS number).
    pub id: String,
    /// NEWS2 SpO2 scale: 1 for most residents (default); 2 only when a clinician has
    /// prescribed a target of 88–92 % for hypercapnic respiratory failure, because scale 1
    /// would alarm all day on their normal saturation.
    #[serde(default = "default_spo2_scale")]
    pub spo2_scale: u8,
    /// SpO2 (%) at or below which to raise `spo2_low`, replacing the NEWS2 bands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2_low: Option<f64>,
    /// Breaths per minute at or below which to raise, replacing NEWS2's ≤ 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiratory_rate_low: Option<f64>,
    /// Breaths per minute at or above which to raise, replacing NEWS2's 21–24 and ≥ 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiratory_rate_high: Option<f64>,
    /// Beats per minute at or below which to raise, replacing NEWS2's ≤ 40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate_low: Option<f64>,
    /// Beats per minute at or above which to raise, replacing NEWS2's 111–130 and ≥ 131.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate_high: Option<f64>,
}

fn default_spo2_scale() -> u8 {
    1
}

impl ResidentVitals {
    /// NEWS2 defaults for a resident: scale 1, no overrides.
    pub fn new(id: impl Into<String>) -> Self {
        ResidentVitals {
            id: id.into(),
            spo2_scale: default_spo2_scale(),
            spo2_low: None,
            respiratory_rate_low: None,
            respiratory_rate_high: None,
            heart_rate_low: None,
            heart_rate_high: None,
        }
    }

    /// Checks what serde cannot, naming the key at fault. Limits must be whole numbers
    /// because readings are compared as whole numbers (see [`evaluate`]), and a low limit must
    /// lie below every limit on the high side (the resident's or NEWS2's), otherwise one
    /// reading would breach both sides.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.id.trim().is_empty() {
            return Err(Invalid {
                key: "id",
                problem: "must not be empty; use the resident's pseudonymous id".into(),
            });
        }
        if !matches!(self.spo2_scale, 1 | 2) {
            return Err(Invalid {
                key: "spo2_scale",
                problem: format!(
                    "is {} for resident `{}`; must be 1 (most residents) or 2 (prescribed \
                     target 88–92 %, hypercapnic respiratory failure)",
                    self.spo2_scale, self.id
                ),
            });
        }
        let checks: [(&'static str, Option<f64>, f64); 5] = [
            ("spo2_low", self.spo2_low, 100.0),
            ("respiratory_rate_low", self.respiratory_rate_low, 100.0),
            ("respiratory_rate_high", self.respiratory_rate_high, 100.0),
            ("heart_rate_low", self.heart_rate_low, 300.0),
            ("heart_rate_high", self.heart_rate_high, 300.0),
        ];
        for (key, limit, max) in checks {
            let Some(v) = limit else { continue };
            if !(v.is_finite() && v > 0.0 && v < max && v.fract() == 0.0) {
                return Err(Invalid {
                    key,
                    problem: format!(
                        "is {v} for resident `{}`; must be a whole number above 0 and below \
                         {max}",
                        self.id
                    ),
                });
            }
        }
        for vital in [Vital::RespiratoryRate, Vital::HeartRate] {
            let limits = limits(vital, Some(self));
            let highest_low = limits
                .iter()
                .filter(|l| l.side == Side::Low)
                .map(|l| l.value)
                .fold(f64::NEG_INFINITY, f64::max);
            let lowest_high = limits
                .iter()
                .filter(|l| l.side == Side::High)
                .map(|l| l.value)
                .fold(f64::INFINITY, f64::min);
            if highest_low >= lowest_high {
                let (low_key, high_key, low_set) = match vital {
                    Vital::RespiratoryRate => (
                        "respiratory_rate_low",
                        "respiratory_rate_high",
                        self.respiratory_rate_low.is_some(),
                    ),
                    _ => (
                        "heart_rate_low",
                        "heart_rate_high",
                        self.heart_rate_low.is_some(),
                    ),
                };
                // Blame the key the resident set: a `_high` alone can only clash with NEWS2's
                // low side.
                let (key, problem) = if low_set {
                    (
                        low_key,
                        format!(
                            "is {highest_low} for resident `{}`, not below the high-side limit \
                             {lowest_high} (`{high_key}` or NEWS2's); lower it or raise \
                             `{high_key}`",
                            self.id
                        ),
                    )
                } else {
                    (
                        high_key,
                        format!(
                            "is {lowest_high} for resident `{}`, not above NEWS2's low-side \
                             limit {highest_low}; raise it, or set `{low_key}` below it",
                            self.id
                        ),
                    )
                };
                return Err(Invalid { key, problem });
            }
        }
        Ok(())
    }
}

/// A setting that cannot work, named by its key (the caller prefixes `vitals.` or
/// `resident[<n>].`).
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The key within its table.
    pub key: &'static str,
    /// What is wrong and what to do, for a person.
    pub problem: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for Invalid {}

// ---------------------------------------------------------------------------------------------
// Bands
// ---------------------------------------------------------------------------------------------

/// The three observations these rules watch; others pass through untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vital {
    Spo2,
    RespiratoryRate,
    HeartRate,
}

impl Vital {
    fn from_name(name: &str) -> Option<Vital> {
        match name {
            SPO2 => Some(Vital::Spo2),
            RESPIRATORY_RATE => Some(Vital::RespiratoryRate),
            HEART_RATE => Some(Vital::HeartRate),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Vital::Spo2 => SPO2,
            Vital::RespiratoryRate => RESPIRATORY_RATE,
            Vital::HeartRate => HEART_RATE,
        }
    }

    fn kind(self) -> Kind {
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
    fn plausible(self, value: f64) -> bool {
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
enum Side {
    /// Breached at or below the limit.
    Low,
    /// Breached at or above the limit.
    High,
}

impl Side {
    fn op(self) -> &'static str {
        match self {
            Side::Low => "<=",
            Side::High => ">=",
        }
    }
}

/// One breach limit: a reading at or beyond `value` on `side` is in this band.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Limit {
    side: Side,
    value: f64,
    priority: Priority,
    rule: &'static str,
}

impl Limit {
    const fn news2(side: Side, value: f64, priority: Priority, rule: &'static str) -> Limit {
        Limit {
            side,
            value,
            priority,
            rule,
        }
    }

    fn breached_by(&self, reading: f64) -> bool {
        match self.side {
            Side::Low => reading <= self.value,
            Side::High => reading >= self.value,
        }
    }

    fn threshold(&self, vital: Vital, window: Duration) -> Threshold {
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
fn limits(vital: Vital, resident: Option<&ResidentVitals>) -> Vec<Limit> {
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
fn classify(vital: Vital, resident: Option<&ResidentVitals>, value: f64) -> Option<Limit> {
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
fn valid_value(vital: Vital, obs: &Observation) -> Option<f64> {
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

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// Format version of [`VitalState`]. It lives in the journal, so a newer atgw must be able to
/// tell an old state from its own, and an older atgw (after a downgrade) must not misread a
/// newer one: [`evaluate`] starts afresh from a state of any other version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateVersion(pub u32);

impl StateVersion {
    /// The version this build writes.
    pub const CURRENT: StateVersion = StateVersion(1);
}

impl Default for StateVersion {
    fn default() -> Self {
        StateVersion::CURRENT
    }
}

/// What the rules remember between events, for one monitored person (the caller keys it by
/// resident, or by device when no resident is registered). Small on purpose: it is rewritten
/// in the journal on every event with observations, and idle observations are left out of the
/// JSON (`{"version":1}` for a resident with nothing to report).
///
/// Only [`evaluate`] should change it; the fields are public so that status commands can show
/// who is currently breaching.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VitalState {
    /// Format version; see [`StateVersion`].
    #[serde(default)]
    pub version: StateVersion,
    /// SpO2.
    #[serde(default, skip_serializing_if = "ObservationState::is_idle")]
    pub spo2: ObservationState,
    /// Respiratory rate.
    #[serde(default, skip_serializing_if = "ObservationState::is_idle")]
    pub respiratory_rate: ObservationState,
    /// Pulse.
    #[serde(default, skip_serializing_if = "ObservationState::is_idle")]
    pub heart_rate: ObservationState,
}

impl VitalState {
    fn track_mut(&mut self, vital: Vital) -> &mut ObservationState {
        match vital {
            Vital::Spo2 => &mut self.spo2,
            Vital::RespiratoryRate => &mut self.respiratory_rate,
            Vital::HeartRate => &mut self.heart_rate,
        }
    }
}

/// Persistence and alert state of one observation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservationState {
    /// Valid breaching readings since the last normal one (in any band, on either side;
    /// saturating). Absent readings leave it alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub breaching: u32,
    /// Time of the first of those readings: the start of the persistence window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_breach: Option<Timestamp>,
    /// Priority of the band the latest valid reading fell in (`None`: it was normal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Priority>,
    /// The alert these rules have raised and not yet cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raised: Option<RaisedAlert>,
    /// While raised: valid normal readings since the last breaching one. Recovery needs the
    /// same persistence as the raise did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub normal: u32,
    /// Time of the first of those normal readings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_normal: Option<Timestamp>,
}

impl ObservationState {
    /// Nothing breaching and nothing raised: the state a normal reading leaves.
    pub fn is_idle(&self) -> bool {
        *self == ObservationState::default()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A raised alert, remembered so that an upgrade can be recognised and the recovery can be
/// reported against the same priority and limit as the raise (the configuration may have
/// changed in between).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaisedAlert {
    /// Priority last raised at (upgrades raise it; improvements never lower it).
    pub priority: Priority,
    /// The limit last raised against.
    pub threshold: Threshold,
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// What the rules decided about one reading; the caller turns it into a journaled event
/// (`data.kind`, `phase`, `priority`, `threshold`, and the reading in `observations`).
#[derive(Clone, Debug, PartialEq)]
pub struct VitalVerdict {
    /// `spo2_low`, `respiratory_rate_abnormal` or `heart_rate_abnormal`.
    pub kind: Kind,
    /// `Raised` (a new alert, or the same alert at a higher priority) or `Cleared` (recovery).
    pub phase: Phase,
    /// `high` for a NEWS2 score of 3 or a resident's own limit, `medium` for a score of 2. A
    /// `Cleared` verdict carries the priority the alert was raised at, so it routes like it.
    pub priority: Priority,
    /// Why: observation name, `<=`/`>=`, the limit, the rule and the persistence window.
    pub threshold: Threshold,
    /// The reading that decided it, unchanged (its value is not rounded).
    pub observation: Observation,
}

/// Applies one event's observations, in order, to `state`, and returns what changed.
///
/// Only `spo2`, `heart_rate` and `respiratory_rate` are looked at; each has its own persistence
/// and its own alert.
///
/// **Bands** (NEWS2 chart 1, RCP 2017; readings rounded to whole numbers first):
///
/// | observation | high (NEWS2 score 3) | medium (score 2) | no alert (score 1, 0) |
/// |---|---|---|---|
/// | SpO2, scale 1 | ≤ 91 | 92–93 (`<= 93`) | 94–95, ≥ 96 |
/// | SpO2, scale 2 | ≤ 83 | 84–85 (`<= 85`) | 86–87, 88–92, ≥ 93 |
/// | respiratory rate | ≤ 8, ≥ 25 | 21–24 (`>= 21`) | 9–11, 12–20 |
/// | pulse | ≤ 40, ≥ 131 | 111–130 (`>= 111`) | 41–50, 91–110, 51–90 |
/// | a resident's limit | at or beyond it | — | — |
///
/// `threshold.rule` names the band: `news2-spo2-scale{1,2}-score{3,2}`,
/// `news2-respiratory-rate-low-score3`, `news2-respiratory-rate-high-score{3,2}`,
/// `news2-heart-rate-low-score3`, `news2-heart-rate-high-score{3,2}`, or `resident-override`.
///
/// **Which readings count.** A reading with no value, with an `absent_reason`, with a status
/// that is not a result (`preliminary`, `registered`, `cancelled`, `entered-in-error`), or with
/// an impossible value (outside `Vital::plausible`'s ranges: SpO2 below 50 or above 100 %,
/// pulse below 20 or above 300 /min, respiratory rate 0 or above 80 /min, NaN, infinite,
/// negative) never breaches and never counts: it neither advances persistence nor resets it, and never clears an alert. A finger
/// slipping out of an oximeter for one reading therefore neither hides a real desaturation
/// nor looks like a recovery.
///
/// **Transitions**, per observation, on each valid reading:
/// - normal, nothing raised: the breach run ends.
/// - normal, raised: the recovery run grows; when it has persisted by the same rule as a raise
///   (`persistence_readings` consecutive normal readings, or normal readings over
///   `persistence_window`), `Cleared` (recovery). A breaching reading ends the recovery run.
///   The alert engine records a recovery on the alert; it does not close it (a person does).
/// - breaching, nothing raised: the run grows; when it has persisted (see [`VitalsConfig`])
///   `Raised` at the band of this reading.
/// - breaching, raised, in a more urgent band than raised at: `Raised` again at the higher
///   priority (the alert engine attaches it to the open alert as an upgrade). No persistence is
///   asked of an upgrade: the breach itself is already confirmed, and an open alert must not
///   sit at `medium` while readings are at score 3.
/// - breaching, raised, same or less urgent band: nothing; the alert stays at its priority
///   until recovery, because an improving-but-abnormal resident still needs the visit.
///
/// `at` is when the gateway received the reading (`recordedtime`), never the device's own
/// time: a device clock that jumps must not shorten or stretch a persistence window. A reading
/// older than the first breach never satisfies the window.
pub fn evaluate(
    cfg: &VitalsConfig,
    resident: Option<&ResidentVitals>,
    state: &mut VitalState,
    observations: &[Observation],
    at: Timestamp,
) -> Vec<VitalVerdict> {
    if state.version != StateVersion::CURRENT {
        // Written by another build: nothing in it can be trusted. An alert it had raised stays
        // open in the alert engine until a person resolves it.
        *state = VitalState::default();
    }
    let mut verdicts = Vec::new();
    for obs in observations {
        let Some(vital) = Vital::from_name(&obs.name) else {
            continue;
        };
        let Some(value) = valid_value(vital, obs) else {
            continue;
        };
        let band = classify(vital, resident, value);
        if let Some(v) = step(cfg, vital, state.track_mut(vital), band, obs, at) {
            verdicts.push(v);
        }
    }
    verdicts
}

/// One valid reading's transition of one observation's state.
fn step(
    cfg: &VitalsConfig,
    vital: Vital,
    track: &mut ObservationState,
    band: Option<Limit>,
    obs: &Observation,
    at: Timestamp,
) -> Option<VitalVerdict> {
    let verdict = |phase, priority, threshold| VitalVerdict {
        kind: vital.kind(),
        phase,
        priority,
        threshold,
        observation: obs.clone(),
    };
    let Some(limit) = band else {
        if track.raised.is_none() {
            *track = ObservationState::default();
            return None;
        }
        // Recovery is held to the raise's own rule: one normal reading between low ones is
        // not a recovered resident.
        track.band = None;
        track.normal = track.normal.saturating_add(1);
        let first = *track.first_normal.get_or_insert(at);
        if !persisted(cfg, track.normal, first, at) {
            return None;
        }
        let raised = std::mem::take(track).raised;
        return raised.map(|r| verdict(Phase::Cleared, r.priority, r.threshold));
    };
    track.normal = 0;
    track.first_normal = None;
    track.breaching = track.breaching.saturating_add(1);
    let first = *track.first_breach.get_or_insert(at);
    track.band = Some(limit.priority);
    match &mut track.raised {
        Some(raised) if limit.priority.lane() < raised.priority.lane() => {
            raised.priority = limit.priority;
            raised.threshold = limit.threshold(vital, cfg.persistence_window);
            Some(verdict(
                Phase::Raised,
                raised.priority,
                raised.threshold.clone(),
            ))
        }
        Some(_) => None,
        None if persisted(cfg, track.breaching, first, at) => {
            let threshold = limit.threshold(vital, cfg.persistence_window);
            track.raised = Some(RaisedAlert {
                priority: limit.priority,
                threshold: threshold.clone(),
            });
            Some(verdict(Phase::Raised, limit.priority, threshold))
        }
        None => None,
    }
}

/// Whether a run of `count` breaching readings that began at `first` has persisted at `at`.
fn persisted(cfg: &VitalsConfig, count: u32, first: Timestamp, at: Timestamp) -> bool {
    if count >= cfg.persistence_readings.max(1) {
        return true;
    }
    // A window too long for a signed duration is never reached, rather than reached at once.
    let window = SignedDuration::try_from(cfg.persistence_window).unwrap_or(SignedDuration::MAX);
    count >= 2 && at.duration_since(first) >= window
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_836_946_958;

    fn at(seconds_after_t0: i64) -> Timestamp {
        Timestamp::from_second(T0 + seconds_after_t0).unwrap()
    }

    fn reading(name: &str, value: f64) -> Observation {
        Observation {
            name: name.into(),
            value: Some(value),
            status: Some("final".into()),
            ..Observation::default()
        }
    }

    fn absent(name: &str) -> Observation {
        Observation {
            name: name.into(),
            absent_reason: Some("error".into()),
            ..Observation::default()
        }
    }

    fn spo2(v: f64) -> Observation {
        reading(SPO2, v)
    }

    /// A rules harness: one resident's state, fed one event at a time, `step_s` apart.
    struct Feed {
        cfg: VitalsConfig,
        resident: Option<ResidentVitals>,
        state: VitalState,
        t: i64,
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                cfg: VitalsConfig::default(),
                resident: None,
                state: VitalState::default(),
                t: 0,
            }
        }

        fn with_resident(resident: ResidentVitals) -> Feed {
            resident.validate().unwrap();
            Feed {
                resident: Some(resident),
                ..Feed::new()
            }
        }

        fn immediate() -> Feed {
            Feed {
                cfg: VitalsConfig {
                    persistence_readings: 1,
                    ..VitalsConfig::default()
                },
                ..Feed::new()
            }
        }

        /// Feeds one event 10 s after the previous one (well inside the 60 s window, so
        /// only the reading count can raise).
        fn feed(&mut self, obs: Observation) -> Vec<VitalVerdict> {
            self.feed_after(10, &[obs])
        }

        fn feed_after(&mut self, seconds: i64, obs: &[Observation]) -> Vec<VitalVerdict> {
            self.t += seconds;
            evaluate(
                &self.cfg,
                self.resident.as_ref(),
                &mut self.state,
                obs,
                at(self.t),
            )
        }
    }

    fn phases(vs: &[VitalVerdict]) -> Vec<(Kind, Phase, Priority)> {
        vs.iter().map(|v| (v.kind, v.phase, v.priority)).collect()
    }

    // --- persistence --------------------------------------------------------------------------

    #[test]
    fn spo2_low_raises_only_after_persistence() {
        let mut f = Feed::new();
        assert!(f.feed(spo2(88.0)).is_empty());
        assert!(f.feed(spo2(88.0)).is_empty());
        let v = f.feed(spo2(88.0));
        assert_eq!(phases(&v), [(Kind::Spo2Low, Phase::Raised, Priority::High)]);
        assert_eq!(
            v[0].threshold,
            Threshold {
                observation: "spo2".into(),
                op: "<=".into(),
                value: 91.0,
                rule: "news2-spo2-scale1-score3".into(),
                window_s: Some(60),
            }
        );
        assert_eq!(v[0].observation, spo2(88.0));
        assert!(
            f.feed(spo2(88.0)).is_empty(),
            "an open alert is not raised twice"
        );
    }

    #[test]
    fn persistence_window_raises_on_the_second_reading_once_the_window_has_passed() {
        let mut f = Feed::new();
        assert!(f.feed_after(0, &[spo2(88.0)]).is_empty());
        assert!(f.feed_after(59, &[spo2(88.0)]).is_empty(), "59 s < 60 s");
        let v = f.feed_after(1, &[spo2(88.0)]);
        assert_eq!(phases(&v), [(Kind::Spo2Low, Phase::Raised, Priority::High)]);

        let mut slow = Feed::new();
        assert!(slow.feed_after(0, &[spo2(88.0)]).is_empty());
        let v = slow.feed_after(300, &[spo2(88.0)]);
        assert_eq!(v.len(), 1, "a slow sampler raises on its second reading");
    }

    #[test]
    fn one_reading_never_raises_by_the_window_alone() {
        let mut f = Feed::new();
        assert!(f.feed_after(0, &[spo2(88.0)]).is_empty());
        // Only absent readings for an hour: still one breaching reading.
        for _ in 0..60 {
            assert!(f.feed_after(60, &[absent(SPO2)]).is_empty());
        }
        assert_eq!(f.state.spo2.breaching, 1);
    }

    #[test]
    fn persistence_readings_of_one_raises_at_once() {
        let mut f = Feed::immediate();
        assert_eq!(f.feed(spo2(91.0)).len(), 1);
    }

    #[test]
    fn zero_persistence_readings_acts_as_one() {
        let mut f = Feed::new();
        f.cfg.persistence_readings = 0;
        assert!(f.cfg.validate().is_err());
        assert_eq!(f.feed(spo2(80.0)).len(), 1);
    }

    #[test]
    fn out_of_order_time_never_satisfies_the_window() {
        let mut f = Feed::new();
        f.cfg.persistence_readings = 10;
        assert!(f.feed_after(0, &[spo2(88.0)]).is_empty());
        assert!(f.feed_after(-3600, &[spo2(88.0)]).is_empty());
    }

    #[test]
    fn breaching_readings_in_any_band_count_together() {
        let mut f = Feed::new();
        assert!(f.feed(spo2(88.0)).is_empty());
        assert!(f.feed(spo2(93.0)).is_empty());
        let v = f.feed(spo2(92.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Raised, Priority::Medium)],
            "raised at the band of the reading that completed persistence"
        );
        assert_eq!(v[0].threshold.rule, "news2-spo2-scale1-score2");
    }

    #[test]
    fn a_normal_reading_resets_persistence() {
        let mut f = Feed::new();
        f.feed(spo2(88.0));
        f.feed(spo2(88.0));
        assert!(f.feed(spo2(96.0)).is_empty());
        assert!(f.state.spo2.is_idle());
        assert!(f.feed(spo2(88.0)).is_empty());
        assert!(f.feed(spo2(88.0)).is_empty());
        assert_eq!(f.feed(spo2(88.0)).len(), 1);
    }

    #[test]
    fn observations_persist_independently() {
        let mut f = Feed::new();
        for _ in 0..2 {
            assert!(
                f.feed_after(10, &[spo2(88.0), reading(HEART_RATE, 135.0)])
                    .is_empty()
            );
        }
        assert!(f.feed_after(10, &[reading(HEART_RATE, 70.0)]).is_empty());
        let v = f.feed_after(10, &[spo2(88.0), reading(HEART_RATE, 135.0)]);
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Raised, Priority::High)],
            "the pulse run was reset by its normal reading, SpO2's was not"
        );
    }

    // --- absent values ------------------------------------------------------------------------

    #[test]
    fn an_unworn_watchs_zero_spo2_never_breaches() {
        let mut f = Feed::immediate();
        for v in [0.0, 1.0, 49.0, 100.5] {
            assert!(f.feed(spo2(v)).is_empty(), "SpO2 {v} raised");
        }
        assert!(f.state.spo2.is_idle());
        // The lowest plausible reading still breaches.
        assert_eq!(f.feed(spo2(50.0)).len(), 1);
    }

    #[test]
    fn impossible_heart_and_respiratory_rates_never_breach_nor_clear() {
        let mut f = Feed::immediate();
        for v in [0.0, 19.0, 301.0, 1000.0] {
            assert!(f.feed(reading(HEART_RATE, v)).is_empty(), "pulse {v}");
        }
        for v in [0.0, 81.0, 200.0] {
            assert!(f.feed(reading(RESPIRATORY_RATE, v)).is_empty(), "RR {v}");
        }
        assert!(f.state.heart_rate.is_idle() && f.state.respiratory_rate.is_idle());
        // Bounds are plausible: 20 and 300 bpm, 1 and 80 breaths/min breach.
        assert_eq!(f.feed(reading(HEART_RATE, 20.0)).len(), 1);
        assert_eq!(f.feed(reading(RESPIRATORY_RATE, 80.0)).len(), 1);
        // An impossible reading is no recovery either.
        assert!(f.feed(reading(HEART_RATE, 0.0)).is_empty());
        assert!(f.state.heart_rate.raised.is_some());
        assert!(f.feed(reading(HEART_RATE, 300.0)).is_empty(), "same alert");
    }

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

    #[test]
    fn sentinel_reading_never_breaches() {
        let mut f = Feed::immediate();
        let sentinel = Observation {
            name: SPO2.into(),
            value: None,
            unit: Some("%".into()),
            absent_reason: Some("error".into()),
            ..Observation::default()
        };
        assert!(f.feed(sentinel).is_empty());
        assert!(f.state.spo2.is_idle());
    }

    #[test]
    fn a_value_with_an_absent_reason_never_breaches() {
        let mut f = Feed::immediate();
        let odd = Observation {
            absent_reason: Some("error".into()),
            ..spo2(50.0)
        };
        assert!(f.feed(odd).is_empty());
        assert!(f.state.spo2.is_idle());
    }

    #[test]
    fn impossible_values_never_breach() {
        let mut f = Feed::immediate();
        for v in [f64::NAN, f64::NEG_INFINITY, -1.0] {
            assert!(f.feed(spo2(v)).is_empty(), "{v}");
            assert!(f.feed(reading(HEART_RATE, v)).is_empty(), "{v}");
            assert!(f.feed(reading(RESPIRATORY_RATE, v)).is_empty(), "{v}");
        }
        assert!(f.feed(reading(HEART_RATE, f64::INFINITY)).is_empty());
        assert!(f.feed(spo2(101.0)).is_empty());
        assert_eq!(f.state, VitalState::default());
    }

    #[test]
    fn preliminary_reading_neither_counts_nor_resets() {
        let prelim = |v| Observation {
            status: Some("preliminary".into()),
            ..spo2(v)
        };
        let mut f = Feed::new();
        f.feed(spo2(88.0));
        f.feed(spo2(88.0));
        assert!(f.feed(prelim(80.0)).is_empty(), "does not count");
        assert!(f.feed(prelim(98.0)).is_empty(), "does not reset");
        assert_eq!(f.state.spo2.breaching, 2);
        assert_eq!(f.feed(spo2(88.0)).len(), 1);
        assert!(f.feed(prelim(98.0)).is_empty(), "does not clear");
        assert!(f.state.spo2.raised.is_some());
    }

    #[test]
    fn missing_or_unknown_status_counts() {
        let mut f = Feed::immediate();
        let no_status = Observation {
            status: None,
            ..spo2(85.0)
        };
        assert_eq!(f.feed(no_status).len(), 1);
        let mut f = Feed::immediate();
        let odd_status = Observation {
            status: Some("validated".into()),
            ..spo2(85.0)
        };
        assert_eq!(f.feed(odd_status).len(), 1);
    }

    #[test]
    fn absent_reading_neither_raises_nor_resets_persistence() {
        let mut f = Feed::new();
        f.feed(spo2(88.0));
        f.feed(spo2(88.0));
        assert!(f.feed(absent(SPO2)).is_empty());
        assert_eq!(f.state.spo2.breaching, 2);
        assert_eq!(f.feed(spo2(88.0)).len(), 1);
        assert!(
            f.feed(absent(SPO2)).is_empty(),
            "an absent reading is no recovery"
        );
        assert!(f.state.spo2.raised.is_some());
    }

    #[test]
    fn unknown_observations_are_ignored() {
        let mut f = Feed::immediate();
        assert!(f.feed(reading("perfusion_index", 0.1)).is_empty());
        assert!(f.feed(reading("SpO2", 50.0)).is_empty(), "names are exact");
        assert_eq!(f.state, VitalState::default());
    }

    // --- recovery, upgrades ------------------------------------------------------------------

    #[test]
    fn recovery_clears_the_alert() {
        let mut f = Feed::immediate();
        let raised = f.feed(spo2(90.0));
        assert_eq!(raised.len(), 1);
        let v = f.feed(spo2(96.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Cleared, Priority::High)]
        );
        assert_eq!(
            v[0].threshold, raised[0].threshold,
            "cleared against the raised limit"
        );
        assert_eq!(v[0].observation, spo2(96.0));
        assert!(f.state.spo2.is_idle());
        assert!(f.feed(spo2(97.0)).is_empty(), "cleared once");
    }

    #[test]
    fn a_score_one_reading_is_a_recovery() {
        let mut f = Feed::immediate();
        f.feed(spo2(91.0));
        let v = f.feed(spo2(94.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Cleared, Priority::High)]
        );
    }

    #[test]
    fn worsening_band_upgrades_priority() {
        let mut f = Feed::immediate();
        let v = f.feed(spo2(93.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Raised, Priority::Medium)]
        );
        let v = f.feed(spo2(89.0));
        assert_eq!(phases(&v), [(Kind::Spo2Low, Phase::Raised, Priority::High)]);
        assert_eq!(v[0].threshold.value, 91.0);
        assert_eq!(v[0].threshold.rule, "news2-spo2-scale1-score3");
        assert!(f.feed(spo2(88.0)).is_empty(), "already high");
    }

    #[test]
    fn improving_band_keeps_the_alert_raised_at_its_priority() {
        let mut f = Feed::immediate();
        f.feed(spo2(89.0));
        assert!(f.feed(spo2(93.0)).is_empty());
        assert_eq!(
            f.state.spo2.raised.as_ref().map(|r| r.priority),
            Some(Priority::High)
        );
        assert_eq!(f.state.spo2.band, Some(Priority::Medium));
        let v = f.feed(spo2(95.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Cleared, Priority::High)]
        );
        assert_eq!(v[0].threshold.rule, "news2-spo2-scale1-score3");
    }

    #[test]
    fn respiratory_rate_high_and_low_both_raise() {
        let mut f = Feed::immediate();
        let v = f.feed(reading(RESPIRATORY_RATE, 26.0));
        assert_eq!(
            phases(&v),
            [(Kind::RespiratoryRateAbnormal, Phase::Raised, Priority::High)]
        );
        assert_eq!(
            (v[0].threshold.op.as_str(), v[0].threshold.value),
            (">=", 25.0)
        );
        f.feed(reading(RESPIRATORY_RATE, 16.0));

        let v = f.feed(reading(RESPIRATORY_RATE, 7.0));
        assert_eq!(
            phases(&v),
            [(Kind::RespiratoryRateAbnormal, Phase::Raised, Priority::High)]
        );
        assert_eq!(
            (v[0].threshold.op.as_str(), v[0].threshold.value),
            ("<=", 8.0)
        );
        assert_eq!(v[0].threshold.rule, "news2-respiratory-rate-low-score3");
        f.feed(reading(RESPIRATORY_RATE, 16.0));

        let v = f.feed(reading(RESPIRATORY_RATE, 22.0));
        assert_eq!(
            phases(&v),
            [(
                Kind::RespiratoryRateAbnormal,
                Phase::Raised,
                Priority::Medium
            )]
        );
    }

    #[test]
    fn heart_rate_high_and_low_both_raise_but_41_to_50_does_not() {
        let mut f = Feed::immediate();
        for v in [41.0, 45.0, 50.0, 51.0, 90.0, 91.0, 110.0] {
            assert!(f.feed(reading(HEART_RATE, v)).is_empty(), "{v}");
        }
        let v = f.feed(reading(HEART_RATE, 38.0));
        assert_eq!(
            phases(&v),
            [(Kind::HeartRateAbnormal, Phase::Raised, Priority::High)]
        );
        f.feed(reading(HEART_RATE, 70.0));
        let v = f.feed(reading(HEART_RATE, 115.0));
        assert_eq!(
            phases(&v),
            [(Kind::HeartRateAbnormal, Phase::Raised, Priority::Medium)]
        );
        let v = f.feed(reading(HEART_RATE, 131.0));
        assert_eq!(
            phases(&v),
            [(Kind::HeartRateAbnormal, Phase::Raised, Priority::High)]
        );
    }

    #[test]
    fn crossing_sides_without_a_normal_reading_stays_one_alert() {
        let mut f = Feed::immediate();
        f.feed(reading(HEART_RATE, 135.0));
        assert!(
            f.feed(reading(HEART_RATE, 38.0)).is_empty(),
            "same priority"
        );
        let v = f.feed(reading(HEART_RATE, 70.0));
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].threshold.op, ">=",
            "cleared against the limit raised at"
        );
    }

    // --- residents ----------------------------------------------------------------------------

    #[test]
    fn scale2_resident_is_not_alerted_at_89() {
        let r = ResidentVitals {
            spo2_scale: 2,
            ..ResidentVitals::new("res-0057")
        };
        let mut f = Feed::with_resident(r);
        f.cfg.persistence_readings = 1;
        for v in [89.0, 88.0, 86.0, 92.0, 97.0] {
            assert!(f.feed(spo2(v)).is_empty(), "{v}");
        }
        let v = f.feed(spo2(85.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Raised, Priority::Medium)]
        );
        assert_eq!(v[0].threshold.rule, "news2-spo2-scale2-score2");
        let v = f.feed(spo2(83.0));
        assert_eq!(phases(&v), [(Kind::Spo2Low, Phase::Raised, Priority::High)]);
        assert_eq!(v[0].threshold.rule, "news2-spo2-scale2-score3");
        assert_eq!(v[0].threshold.value, 83.0);

        let mut scale1 = Feed::immediate();
        assert_eq!(scale1.feed(spo2(89.0)).len(), 1, "scale 1 alerts at 89");
    }

    #[test]
    fn override_replaces_the_news2_limit() {
        let r = ResidentVitals {
            spo2_low: Some(86.0),
            heart_rate_high: Some(120.0),
            ..ResidentVitals::new("res-0042")
        };
        let mut f = Feed::with_resident(r);
        f.cfg.persistence_readings = 1;
        for v in [93.0, 91.0, 87.0] {
            assert!(f.feed(spo2(v)).is_empty(), "{v}: NEWS2 bands replaced");
        }
        let v = f.feed(spo2(86.0));
        assert_eq!(phases(&v), [(Kind::Spo2Low, Phase::Raised, Priority::High)]);
        assert_eq!(
            v[0].threshold,
            Threshold {
                observation: "spo2".into(),
                op: "<=".into(),
                value: 86.0,
                rule: RESIDENT_OVERRIDE_RULE.into(),
                window_s: Some(60),
            }
        );

        assert!(
            f.feed(reading(HEART_RATE, 119.0)).is_empty(),
            "111–119 no longer alerts"
        );
        let v = f.feed(reading(HEART_RATE, 120.0));
        assert_eq!(
            phases(&v),
            [(Kind::HeartRateAbnormal, Phase::Raised, Priority::High)]
        );
        f.feed(reading(HEART_RATE, 70.0));
        let v = f.feed(reading(HEART_RATE, 40.0));
        assert_eq!(v.len(), 1, "the low side keeps NEWS2");
        assert_eq!(v[0].threshold.rule, "news2-heart-rate-low-score3");
    }

    #[test]
    fn override_wins_over_scale2() {
        let r = ResidentVitals {
            spo2_scale: 2,
            spo2_low: Some(87.0),
            ..ResidentVitals::new("res-1")
        };
        assert_eq!(
            classify(Vital::Spo2, Some(&r), 87.0).map(|l| l.rule),
            Some(RESIDENT_OVERRIDE_RULE)
        );
        assert_eq!(classify(Vital::Spo2, Some(&r), 88.0), None);
    }

    #[test]
    fn a_non_finite_override_falls_back_to_news2() {
        let r = ResidentVitals {
            spo2_low: Some(f64::INFINITY),
            heart_rate_high: Some(f64::NAN),
            ..ResidentVitals::new("res-1")
        };
        assert!(r.validate().is_err());
        let rule = |vital, v| classify(vital, Some(&r), v).map(|l| l.rule);
        assert_eq!(rule(Vital::Spo2, 97.0), None);
        assert_eq!(rule(Vital::Spo2, 91.0), Some("news2-spo2-scale1-score3"));
        assert_eq!(
            rule(Vital::HeartRate, 131.0),
            Some("news2-heart-rate-high-score3")
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

    // --- the oximeter fixture -----------------------------------------------------------------

    /// Readings of `tests/fixtures/devices/ble-hub-oximeter.jsonl`, turned into observations the
    /// way `config/profiles/ble-hub-oximeter.toml` does (127 is "no finger": no value, an
    /// `absent_reason`), with the device's `time`.
    fn fixture_readings() -> Vec<(Timestamp, Vec<Observation>)> {
        let text = include_str!("../../tests/fixtures/devices/ble-hub-oximeter.jsonl");
        let obs = |name: &str, raw: &serde_json::Value| match raw.as_f64() {
            Some(127.0) | None => absent(name),
            Some(v) => Observation {
                unit: Some(if name == SPO2 { "%" } else { "/min" }.into()),
                method: Some("pulse-oximetry".into()),
                ..reading(name, v)
            },
        };
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l.get("payload").is_some())
            .map(|l| {
                let r = &l["payload"]["data"]["value"]["device_list"][0];
                let time = l["payload"]["time"].as_i64().unwrap();
                (
                    Timestamp::from_second(time).unwrap(),
                    vec![obs(SPO2, &r["spo2"]), obs(HEART_RATE, &r["pulse"])],
                )
            })
            .collect()
    }

    #[test]
    fn oximeter_fixture_raises_on_persistent_88_ignores_the_sentinel_and_recovers() {
        let fixture = fixture_readings();
        assert_eq!(fixture.len(), 3, "96, 88, sentinel");
        let (t_96, normal) = &fixture[0];
        let (t_88, low) = &fixture[1];
        let (t_none, sentinel) = &fixture[2];
        assert_eq!(low[0].value, Some(88.0));
        assert_eq!(sentinel[0].value, None);

        let cfg = VitalsConfig::default();
        let mut state = VitalState::default();
        let mut run = |obs: &[Observation], t: Timestamp| evaluate(&cfg, None, &mut state, obs, t);
        let secs = |t: &Timestamp, s: i64| t.checked_add(SignedDuration::from_secs(s)).unwrap();

        assert!(run(normal, *t_96).is_empty(), "96 and pulse 72: nothing");
        // 88 three times, 10 s apart: the count, not the window, completes persistence.
        assert!(run(low, *t_88).is_empty());
        assert!(run(low, secs(t_88, 10)).is_empty());
        let v = run(low, secs(t_88, 20));
        assert_eq!(phases(&v), [(Kind::Spo2Low, Phase::Raised, Priority::High)]);
        assert_eq!(v[0].threshold.rule, "news2-spo2-scale1-score3");
        assert_eq!(v[0].observation, low[0]);
        // Pulse 104 scores 1: never an alert.
        assert!(v.iter().all(|x| x.kind != Kind::HeartRateAbnormal));

        // "127 is the 'no reading' sentinel: observations absent, never spo2_low."
        assert!(run(sentinel, *t_none).is_empty());
        assert!(run(sentinel, secs(t_none, 600)).is_empty());
        assert!(state.spo2.raised.is_some(), "a finger out is no recovery");

        let mut run = |obs: &[Observation], t: Timestamp| evaluate(&cfg, None, &mut state, obs, t);
        // Recovery persists like the raise did: three normal readings.
        assert!(
            run(normal, secs(t_none, 660)).is_empty(),
            "one normal reading"
        );
        assert!(run(normal, secs(t_none, 670)).is_empty(), "two");
        let v = run(normal, secs(t_none, 680));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Cleared, Priority::High)]
        );
        assert_eq!(state, VitalState::default());
    }

    #[test]
    fn one_normal_reading_does_not_clear_a_raised_alert_and_a_low_one_restarts_the_recovery() {
        let mut f = Feed::new();
        for _ in 0..3 {
            f.feed(spo2(88.0));
        }
        assert!(f.state.spo2.raised.is_some());
        assert!(f.feed(spo2(97.0)).is_empty(), "a single normal reading");
        assert!(f.feed(spo2(97.0)).is_empty());
        assert!(
            f.feed(spo2(89.0)).is_empty(),
            "low again: still raised, no new raise"
        );
        assert!(
            f.feed(spo2(97.0)).is_empty(),
            "the recovery run starts again"
        );
        assert!(f.feed(spo2(97.0)).is_empty());
        let v = f.feed(spo2(97.0));
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Cleared, Priority::High)]
        );
    }

    #[test]
    fn recovery_over_the_persistence_window_clears_on_the_second_normal_reading() {
        let mut f = Feed::new();
        for _ in 0..3 {
            f.feed(spo2(88.0));
        }
        assert!(f.feed_after(0, &[spo2(97.0)]).is_empty());
        let v = f.feed_after(61, &[spo2(97.0)]);
        assert_eq!(
            phases(&v),
            [(Kind::Spo2Low, Phase::Cleared, Priority::High)]
        );
    }

    // --- state ---------------------------------------------------------------------------------

    #[test]
    fn state_round_trips_through_serde_json() {
        let mut f = Feed::new();
        f.feed_after(10, &[spo2(93.0), reading(RESPIRATORY_RATE, 26.0)]);
        f.feed_after(10, &[spo2(93.0), reading(RESPIRATORY_RATE, 26.0)]);
        f.feed_after(10, &[spo2(89.0)]);
        let json = serde_json::to_string(&f.state).unwrap();
        let back: VitalState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f.state);

        // The restored state behaves exactly as the original.
        let mut restored = Feed {
            state: back,
            t: f.t,
            ..Feed::new()
        };
        let next = [spo2(88.0), reading(RESPIRATORY_RATE, 27.0)];
        assert_eq!(restored.feed_after(10, &next), f.feed_after(10, &next));
        assert_eq!(restored.state, f.state);
    }

    #[test]
    fn state_json_is_small_and_versioned() {
        assert_eq!(
            serde_json::to_string(&VitalState::default()).unwrap(),
            r#"{"version":1}"#
        );
        let mut f = Feed::immediate();
        f.feed(spo2(90.0));
        let json = serde_json::to_value(&f.state).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["spo2"]["breaching"], 1);
        assert_eq!(json["spo2"]["band"], "high");
        assert_eq!(json["spo2"]["raised"]["priority"], "high");
        assert_eq!(json["spo2"]["raised"]["threshold"]["value"], 91.0);
        assert!(json.get("heart_rate").is_none());
        let empty: VitalState = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, VitalState::default());
    }

    #[test]
    fn state_of_another_version_starts_afresh() {
        let mut f = Feed::new();
        f.feed(spo2(88.0));
        f.feed(spo2(88.0));
        f.state.version = StateVersion(2);
        assert!(f.feed(spo2(88.0)).is_empty(), "the count restarted");
        assert_eq!(f.state.version, StateVersion::CURRENT);
        assert_eq!(f.state.spo2.breaching, 1);
    }

    // --- configuration -------------------------------------------------------------------------

    #[test]
    fn vitals_config_defaults_and_humantime_window() {
        let cfg: VitalsConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, VitalsConfig::default());
        assert_eq!(cfg.persistence_readings, 3);
        assert_eq!(cfg.persistence_window, Duration::from_secs(60));
        cfg.validate().unwrap();
        let cfg: VitalsConfig =
            toml::from_str("persistence_readings = 5\npersistence_window = \"2m 30s\"").unwrap();
        assert_eq!(cfg.persistence_window, Duration::from_secs(150));
        assert!(toml::from_str::<VitalsConfig>("persistence = 3").is_err());
        assert!(toml::from_str::<VitalsConfig>("persistence_window = 60").is_err());
        let zero = VitalsConfig {
            persistence_window: Duration::ZERO,
            ..VitalsConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().key, "persistence_window");
    }

    #[test]
    fn resident_config_parses_and_rejects_unknown_keys() {
        let r: ResidentVitals = toml::from_str(
            "id = \"res-0057\"\nspo2_scale = 2\nrespiratory_rate_high = 28\nheart_rate_low = 45",
        )
        .unwrap();
        assert_eq!(r.spo2_scale, 2);
        assert_eq!(r.respiratory_rate_high, Some(28.0));
        r.validate().unwrap();
        let plain: ResidentVitals = toml::from_str("id = \"res-1\"").unwrap();
        assert_eq!(plain, ResidentVitals::new("res-1"));
        assert!(toml::from_str::<ResidentVitals>("id = \"r\"\nspo2_high = 99").is_err());
    }

    #[test]
    fn resident_validation_names_the_key() {
        let key = |r: ResidentVitals| r.validate().unwrap_err().key;
        let base = || ResidentVitals::new("res-0042");
        assert_eq!(
            key(ResidentVitals {
                spo2_scale: 3,
                ..base()
            }),
            "spo2_scale"
        );
        assert_eq!(
            key(ResidentVitals {
                spo2_scale: 0,
                ..base()
            }),
            "spo2_scale"
        );
        assert_eq!(key(ResidentVitals::new(" ")), "id");
        assert_eq!(
            key(ResidentVitals {
                spo2_low: Some(100.0),
                ..base()
            }),
            "spo2_low"
        );
        assert_eq!(
            key(ResidentVitals {
                spo2_low: Some(88.5),
                ..base()
            }),
            "spo2_low"
        );
        assert_eq!(
            key(ResidentVitals {
                spo2_low: Some(f64::NAN),
                ..base()
            }),
            "spo2_low"
        );
        assert_eq!(
            key(ResidentVitals {
                heart_rate_low: Some(-5.0),
                ..base()
            }),
            "heart_rate_low"
        );
        let crossed = ResidentVitals {
            respiratory_rate_low: Some(12.0),
            respiratory_rate_high: Some(12.0),
            ..base()
        };
        let err = crossed.validate().unwrap_err();
        assert_eq!(err.key, "respiratory_rate_low");
        assert!(err.to_string().contains("respiratory_rate_high"), "{err}");
        // A low limit above NEWS2's high side (≥ 111 for pulse) cannot work either.
        assert_eq!(
            key(ResidentVitals {
                heart_rate_low: Some(115.0),
                ..base()
            }),
            "heart_rate_low"
        );
        // A high limit alone that reaches NEWS2's low side is blamed on itself.
        assert_eq!(
            key(ResidentVitals {
                heart_rate_high: Some(40.0),
                ..base()
            }),
            "heart_rate_high"
        );
        // But a low limit above NEWS2's high side can work once the high side is raised.
        ResidentVitals {
            heart_rate_low: Some(115.0),
            heart_rate_high: Some(150.0),
            ..base()
        }
        .validate()
        .unwrap();
    }

    // --- properties ----------------------------------------------------------------------------

    fn any_observation() -> impl Strategy<Value = Observation> {
        let name = prop_oneof![
            Just(SPO2),
            Just(HEART_RATE),
            Just(RESPIRATORY_RATE),
            Just("perfusion_index"),
        ];
        let value = prop_oneof![
            Just(None),
            any::<f64>().prop_map(Some),
            (0.0..300.0f64).prop_map(Some),
            (0u8..=140).prop_map(|v| Some(f64::from(v))),
        ];
        let absent_reason = proptest::option::of(Just("error".to_owned()));
        let status = proptest::option::of(prop_oneof![
            Just("final".to_owned()),
            Just("preliminary".to_owned()),
            Just("entered-in-error".to_owned()),
            Just("amended".to_owned()),
        ]);
        (name, value, absent_reason, status).prop_map(|(name, value, absent_reason, status)| {
            Observation {
                name: name.into(),
                value,
                absent_reason,
                status,
                ..Observation::default()
            }
        })
    }

    fn any_resident() -> impl Strategy<Value = Option<ResidentVitals>> {
        // Whole numbers as `validate` demands (serde_json round-trips those exactly), plus
        // the non-finite values it rejects, which `evaluate` must survive anyway.
        let limit = || {
            proptest::option::of(prop_oneof![
                (0u16..200).prop_map(f64::from),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
            ])
        };
        proptest::option::of(
            (0u8..4, limit(), limit(), limit(), limit(), limit()).prop_map(
                |(spo2_scale, spo2_low, rr_low, rr_high, hr_low, hr_high)| ResidentVitals {
                    id: "res".into(),
                    spo2_scale,
                    spo2_low,
                    respiratory_rate_low: rr_low,
                    respiratory_rate_high: rr_high,
                    heart_rate_low: hr_low,
                    heart_rate_high: hr_high,
                },
            ),
        )
    }

    /// Whether a reading may ever count: the property's own statement of the rule.
    fn counts(obs: &Observation) -> bool {
        obs.absent_reason.is_none()
            && obs.status.as_deref() != Some("preliminary")
            && obs.status.as_deref() != Some("entered-in-error")
            && obs.value.is_some_and(|v| {
                let (min, max) = match obs.name.as_str() {
                    SPO2 => (50.0, 100.0),
                    HEART_RATE => (20.0, 300.0),
                    RESPIRATORY_RATE => (1.0, 80.0),
                    _ => (f64::NEG_INFINITY, f64::INFINITY),
                };
                v.is_finite() && v >= min && v <= max
            })
    }

    proptest! {
        #[test]
        fn evaluate_never_panics_and_never_acts_on_absent_values(
            readings in 0u32..8,
            window_s in 0u64..400,
            resident in any_resident(),
            events in proptest::collection::vec(
                (-120i64..900, proptest::collection::vec(any_observation(), 0..4)),
                0..40,
            ),
        ) {
            let cfg = VitalsConfig {
                persistence_readings: readings,
                persistence_window: Duration::from_secs(window_s),
                ..VitalsConfig::default()
            };
            let mut state = VitalState::default();
            let mut raised: std::collections::HashMap<Kind, Priority> = Default::default();
            let mut t = 0;
            for (step, obs) in events {
                t += step;
                let before = state.clone();
                let out = evaluate(&cfg, resident.as_ref(), &mut state, &obs, at(t));

                if obs.iter().all(|o| !counts(o)) {
                    prop_assert!(out.is_empty(), "absent readings produced {out:?}");
                    prop_assert_eq!(&state, &before, "absent readings changed the state");
                }
                for v in &out {
                    prop_assert!(counts(&v.observation), "acted on {:?}", v.observation);
                    prop_assert_eq!(v.kind, Vital::from_name(&v.observation.name).unwrap().kind());
                    prop_assert_eq!(&v.threshold.observation, &v.observation.name);
                    prop_assert_eq!(v.threshold.window_s, Some(window_s));
                    match v.phase {
                        Phase::Raised => {
                            if let Some(p) = raised.get(&v.kind) {
                                prop_assert!(
                                    v.priority.lane() < p.lane(),
                                    "re-raised without an upgrade"
                                );
                            }
                            raised.insert(v.kind, v.priority);
                        }
                        Phase::Cleared => {
                            prop_assert_eq!(raised.remove(&v.kind), Some(v.priority));
                        }
                        other => prop_assert!(false, "unexpected phase {other:?}"),
                    }
                }

                let json = serde_json::to_string(&state).unwrap();
                let back: VitalState = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(&back, &state);
            }
        }
    }
}
