//! Test helpers shared by the vitals unit tests: fixed timestamps, reading builders, and
//! [`Feed`], one resident's state fed one event at a time.

use atgw_sdk::event::{Kind, Observation, Phase, Priority};
use jiff::Timestamp;

use super::{ResidentVitals, SPO2, VitalState, VitalVerdict, VitalsConfig, evaluate};

pub(super) const T0: i64 = 1_836_946_958;

pub(super) fn at(seconds_after_t0: i64) -> Timestamp {
    Timestamp::from_second(T0 + seconds_after_t0).unwrap()
}

pub(super) fn reading(name: &str, value: f64) -> Observation {
    Observation {
        name: name.into(),
        value: Some(value),
        status: Some("final".into()),
        ..Observation::default()
    }
}

pub(super) fn absent(name: &str) -> Observation {
    Observation {
        name: name.into(),
        absent_reason: Some("error".into()),
        ..Observation::default()
    }
}

pub(super) fn spo2(v: f64) -> Observation {
    reading(SPO2, v)
}

/// A rules harness: one resident's state, fed one event at a time, `step_s` apart.
pub(super) struct Feed {
    pub(super) cfg: VitalsConfig,
    pub(super) resident: Option<ResidentVitals>,
    pub(super) state: VitalState,
    pub(super) t: i64,
}

impl Feed {
    pub(super) fn new() -> Feed {
        Feed {
            cfg: VitalsConfig::default(),
            resident: None,
            state: VitalState::default(),
            t: 0,
        }
    }

    pub(super) fn with_resident(resident: ResidentVitals) -> Feed {
        resident.validate().unwrap();
        Feed {
            resident: Some(resident),
            ..Feed::new()
        }
    }

    pub(super) fn immediate() -> Feed {
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
    pub(super) fn feed(&mut self, obs: Observation) -> Vec<VitalVerdict> {
        self.feed_after(10, &[obs])
    }

    pub(super) fn feed_after(&mut self, seconds: i64, obs: &[Observation]) -> Vec<VitalVerdict> {
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

pub(super) fn phases(vs: &[VitalVerdict]) -> Vec<(Kind, Phase, Priority)> {
    vs.iter().map(|v| (v.kind, v.phase, v.priority)).collect()
}
