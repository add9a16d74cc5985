//! [`evaluate`]: one event's readings applied to a resident's [`VitalState`], returning the
//! verdicts (raise, upgrade, recovery). Pure: time is the `at` argument.

use atgw_sdk::event::{Kind, Observation, Phase, Priority, Threshold};
use jiff::{SignedDuration, Timestamp};

use super::bands::{Limit, Vital, classify, valid_value};
use super::{
    ObservationState, RaisedAlert, ResidentVitals, StateVersion, VitalState, VitalsConfig,
};

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rules::vitals::test_support::*;
    use crate::rules::vitals::*;
    use proptest::prelude::*;

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

    // --- the oximeter fixture -----------------------------------------------------------------

    /// Readings of `tests/fixtures/devices/ble-hub-oximeter.jsonl`, turned into observations the
    /// way `config/profiles/ble-hub-oximeter.toml` does (127 is "no finger": no value, an
    /// `absent_reason`), with the device's `time`.
    fn fixture_readings() -> Vec<(Timestamp, Vec<Observation>)> {
        let text = include_str!("../../../tests/fixtures/devices/ble-hub-oximeter.jsonl");
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
