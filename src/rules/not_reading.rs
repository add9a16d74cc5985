//! Sensors that report but cannot measure (issue 12, item 10): an oximeter sending "finger out"
//! every 20 s is not offline, so supervision never hears of it, yet nobody is being monitored.
//!
//! Per device, over its vital-sign events: when every observation of every event for
//! `[vitals] not_reading_after` (receipt time) has been absent (a sentinel, an
//! `absent_reason`, a status that is not a result, an impossible value; only SpO2, pulse and
//! respiratory rate count when the report has any of them), a low-priority
//! `device_fault` is raised once; the device's next real measurement clears it. An event with
//! no observations says nothing either way. Pure, like the other rules: the caller persists the
//! state in the event's transaction.

use std::time::Duration;

use atgw_sdk::event::{Observation, Phase};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::vitals::{self, HEART_RATE, RESPIRATORY_RATE, SPO2};

/// What the rule remembers about one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotReadingState {
    /// Receipt time of the first of the unbroken run of reports without a measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Whether the fault has been raised and not yet cleared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raised: bool,
}

/// One report's transition: `Some(Raised)` when the device has not measured for `after`,
/// `Some(Cleared)` on its first measurement after that, else `None`. `after` of zero turns the
/// rule off (an already raised fault still clears).
pub fn step(
    after: Duration,
    state: &mut NotReadingState,
    observations: &[Observation],
    at: Timestamp,
) -> Option<Phase> {
    if observations.is_empty() {
        return None;
    }
    // SpO2, pulse and respiratory rate are what a resident is monitored for: when the report
    // carries any of them, a perfusion index or temperature alone is not monitoring.
    let watched =
        |o: &&Observation| [SPO2, HEART_RATE, RESPIRATORY_RATE].contains(&o.name.as_str());
    let any_watched = observations.iter().any(|o| watched(&o));
    if observations
        .iter()
        .filter(|o| !any_watched || watched(o))
        .any(vitals::is_measurement)
    {
        let was_raised = state.raised;
        *state = NotReadingState::default();
        return was_raised.then_some(Phase::Cleared);
    }
    let since = *state.since.get_or_insert(at);
    if state.raised || after.is_zero() {
        return None;
    }
    let after = SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX);
    if at.duration_since(since) >= after {
        state.raised = true;
        return Some(Phase::Raised);
    }
    None
}

/// What to call the device in the message, from what it measures.
pub fn sensor_name(observations: &[Observation]) -> &'static str {
    let has = |name: &str| observations.iter().any(|o| o.name == name);
    if has(SPO2) {
        "Oximeter"
    } else if has(RESPIRATORY_RATE) {
        "Breathing sensor"
    } else if has(HEART_RATE) {
        "Heart-rate sensor"
    } else {
        "Sensor"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(300);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_836_946_958 + s).unwrap()
    }

    fn finger_out() -> Vec<Observation> {
        vec![Observation {
            name: SPO2.into(),
            absent_reason: Some("error".into()),
            ..Observation::default()
        }]
    }

    fn reading(v: f64) -> Vec<Observation> {
        vec![Observation {
            name: SPO2.into(),
            value: Some(v),
            ..Observation::default()
        }]
    }

    #[test]
    fn finger_out_for_the_configured_time_raises_once_and_a_reading_clears() {
        let mut s = NotReadingState::default();
        for t in (0..300).step_by(20) {
            assert_eq!(step(AFTER, &mut s, &finger_out(), at(t)), None, "{t} s");
        }
        assert_eq!(
            step(AFTER, &mut s, &finger_out(), at(300)),
            Some(Phase::Raised)
        );
        assert_eq!(step(AFTER, &mut s, &finger_out(), at(320)), None, "once");
        assert_eq!(
            step(AFTER, &mut s, &reading(97.0), at(340)),
            Some(Phase::Cleared)
        );
        assert_eq!(s, NotReadingState::default());
    }

    #[test]
    fn one_measurement_restarts_the_clock_and_empty_reports_say_nothing() {
        let mut s = NotReadingState::default();
        step(AFTER, &mut s, &finger_out(), at(0));
        assert_eq!(step(AFTER, &mut s, &reading(96.0), at(200)), None);
        assert_eq!(step(AFTER, &mut s, &finger_out(), at(250)), None);
        assert_eq!(step(AFTER, &mut s, &finger_out(), at(520)), None, "270 s");
        assert_eq!(step(AFTER, &mut s, &[], at(600)), None);
        assert_eq!(
            step(AFTER, &mut s, &finger_out(), at(550)),
            Some(Phase::Raised)
        );
    }

    #[test]
    fn an_impossible_value_is_not_a_measurement_and_zero_turns_the_rule_off() {
        let mut s = NotReadingState::default();
        step(AFTER, &mut s, &reading(0.0), at(0));
        assert_eq!(
            step(AFTER, &mut s, &reading(0.0), at(300)),
            Some(Phase::Raised)
        );
        let mut off = NotReadingState::default();
        step(Duration::ZERO, &mut off, &finger_out(), at(0));
        assert_eq!(
            step(Duration::ZERO, &mut off, &finger_out(), at(9999)),
            None
        );
    }

    #[test]
    fn a_perfusion_index_beside_a_finger_out_is_not_a_reading() {
        let mut obs = finger_out();
        obs.push(Observation {
            name: "perfusion_index".into(),
            value: Some(4.0),
            ..Observation::default()
        });
        let mut s = NotReadingState::default();
        step(AFTER, &mut s, &obs, at(0));
        assert_eq!(step(AFTER, &mut s, &obs, at(300)), Some(Phase::Raised));
        let temperature = vec![Observation {
            name: "body_temperature".into(),
            value: Some(36.6),
            ..Observation::default()
        }];
        assert_eq!(
            step(AFTER, &mut s, &temperature, at(320)),
            Some(Phase::Cleared)
        );
    }

    #[test]
    fn the_sensor_is_named_by_what_it_measures() {
        assert_eq!(sensor_name(&finger_out()), "Oximeter");
        let rr = vec![Observation {
            name: RESPIRATORY_RATE.into(),
            ..Observation::default()
        }];
        assert_eq!(sensor_name(&rr), "Breathing sensor");
        assert_eq!(sensor_name(&[]), "Sensor");
    }
}
