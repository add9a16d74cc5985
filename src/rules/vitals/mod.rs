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
//!
//! # Layout
//! - `config`: `[vitals]` and `[[resident]]` ([`VitalsConfig`], [`ResidentVitals`]), defaults
//!   and validation.
//! - `bands`: the NEWS2 bands, plausible ranges, and which band a reading falls in;
//!   [`is_measurement`] and [`mark_implausible`].
//! - `state`: what is remembered between events ([`VitalState`]), as the journal stores it.
//! - `evaluation`: [`evaluate`], one event's readings against that state, and its
//!   [`VitalVerdict`]s.

mod bands;
pub mod config;
mod evaluation;
mod state;
#[cfg(test)]
mod test_support;

pub use bands::{
    HEART_RATE_PLAUSIBLE_MAX, HEART_RATE_PLAUSIBLE_MIN, IMPLAUSIBLE_REASON,
    RESPIRATORY_RATE_PLAUSIBLE_MAX, RESPIRATORY_RATE_PLAUSIBLE_MIN, SPO2_PLAUSIBLE_MIN,
    is_measurement, mark_implausible,
};
pub use config::{Invalid, ResidentVitals, VitalsConfig};
pub use evaluation::{VitalVerdict, evaluate};
pub use state::{ObservationState, RaisedAlert, StateVersion, VitalState};

/// Observation name of peripheral oxygen saturation (`%`).
pub const SPO2: &str = "spo2";
/// Observation name of the pulse / heart rate (`/min`).
pub const HEART_RATE: &str = "heart_rate";
/// Observation name of the respiratory rate (`/min`).
pub const RESPIRATORY_RATE: &str = "respiratory_rate";
/// `threshold.rule` of a verdict that a resident's own limit produced, so a reader of the
/// alert knows the limit came from the care plan rather than from NEWS2.
pub const RESIDENT_OVERRIDE_RULE: &str = "resident-override";
