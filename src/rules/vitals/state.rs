//! What the vital-sign rules remember between events ([`VitalState`]), as the journal stores
//! it (versioned JSON, idle observations left out).

use atgw_sdk::event::{Priority, Threshold};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::bands::Vital;

/// Format version of [`VitalState`]. It lives in the journal, so a newer atgw must be able to
/// tell an old state from its own, and an older atgw (after a downgrade) must not misread a
/// newer one: [`evaluate`](super::evaluate) starts afresh from a state of any other version.
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
/// Only [`evaluate`](super::evaluate) should change it; the fields are public so that status
/// commands can show who is currently breaching.
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
    pub(super) fn track_mut(&mut self, vital: Vital) -> &mut ObservationState {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::vitals::test_support::*;
    use crate::rules::vitals::*;

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
}
