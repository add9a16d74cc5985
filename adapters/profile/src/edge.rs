//! Edge detection for state fields: zigbee2mqtt republishes a device's whole cached state on every
//! report, so `water_leak: true` arriving with a battery update is not a new leak.
//!
//! The remembered value per (profile, device, field) lives in the caller's state map, which the
//! core persists in the same transaction as the events, so a restart neither re-raises nor misses
//! a transition. The decision itself is a pure function, tested exhaustively below.
//!
//! | previous value        | new value maps to    | event? |
//! |-----------------------|----------------------|--------|
//! | none (first sight)    | raised               | yes    |
//! | none (first sight)    | cleared or point     | no: a normal first reading is not news |
//! | the same value, mapped alike | anything      | no: a state repeat |
//! | the same value, mapped otherwise (another rule: kind, phase, confidence or priority) | anything | yes: an upgrade or downgrade |
//! | a value mapping to cleared | cleared         | no: nothing was open |
//! | any other value       | anything             | yes: a raise, a clear, an upgrade or downgrade |
//!
//! Test mode (the message's `test` flag, or a value mapped with `test = true`) is remembered
//! under its own key, `<profile>|<device>|<field>|test`: a test raise neither suppresses nor
//! clears the real alarm after it, and a standing real alarm does not hide a test. The first
//! real reading of a field ends its test session and forgets the test value.
//!
//! A previous value the profile no longer knows (the profile was edited) counts as "any other
//! value", so a leftover raised condition still gets its clear.

use atgw_sdk::Phase;

/// What to do with one observed state value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Emit the new value's event.
    pub emit: bool,
    /// Remember the new value (it differs from what is stored).
    pub store: bool,
}

/// Separates the value from what it was mapped to in a remembered outcome.
const SEP: char = '\u{1f}';

/// What is remembered for a state field: the value and what it mapped to (kind, phase,
/// confidence, priority), `true\u{1f}fall/raised/suspected/low`.
pub(crate) fn outcome(
    value: &str,
    kind: atgw_sdk::Kind,
    phase: Phase,
    confidence: Option<atgw_sdk::event::Confidence>,
    priority: atgw_sdk::Priority,
) -> String {
    format!(
        "{value}{SEP}{}/{}/{}/{}",
        kind.as_str(),
        phase.as_str(),
        confidence.map_or("-", |c| c.as_str()),
        priority.as_str()
    )
}

/// A remembered outcome read back without allocating: the value, and (when it was
/// remembered with one) the mapping part, `fall/raised/suspected/low`.
pub(crate) struct Recalled<'s> {
    pub value: &'s str,
    mapped: Option<&'s str>,
}

pub(crate) fn recall(stored: &str) -> Recalled<'_> {
    match stored.split_once(SEP) {
        Some((value, mapped)) => Recalled {
            value,
            mapped: Some(mapped),
        },
        None => Recalled {
            value: stored,
            mapped: None,
        },
    }
}

impl Recalled<'_> {
    /// The phase it was mapped to, when remembered with its mapping.
    pub(crate) fn phase(&self) -> Option<Phase> {
        self.mapped?.split('/').nth(1)?.parse().ok()
    }

    /// Whether `value` mapped as given is what was remembered; a value remembered before
    /// outcomes were kept compares by value alone.
    pub(crate) fn is(
        &self,
        value: &str,
        kind: atgw_sdk::Kind,
        phase: Phase,
        confidence: Option<atgw_sdk::event::Confidence>,
        priority: atgw_sdk::Priority,
    ) -> bool {
        if self.value != value {
            return false;
        }
        let Some(mapped) = self.mapped else {
            return true;
        };
        let mut parts = mapped.split('/');
        parts.next() == Some(kind.as_str())
            && parts.next() == Some(phase.as_str())
            && parts.next() == Some(confidence.map_or("-", |c| c.as_str()))
            && parts.next() == Some(priority.as_str())
            && parts.next().is_none()
    }
}

/// [`decide`] where the caller has compared the remembered outcome with the new one: `previous`
/// is (whether it is the same, the phase it had).
pub(crate) fn decide_same(previous: Option<(bool, Option<Phase>)>, phase: Phase) -> Decision {
    match previous {
        None => Decision {
            emit: phase == Phase::Raised,
            store: true,
        },
        Some((true, _)) => Decision {
            emit: false,
            store: false,
        },
        Some((_, Some(Phase::Cleared))) if phase == Phase::Cleared => Decision {
            emit: false,
            store: true,
        },
        Some(_) => Decision {
            emit: true,
            store: true,
        },
    }
}

/// `previous` is the stored value and the phase it maps to now (`None` when no longer mapped).
/// The value-only form of [`decide_same`], which the table above is tested through.
#[cfg(test)]
pub(crate) fn decide(
    previous: Option<(&str, Option<Phase>)>,
    value: &str,
    phase: Phase,
) -> Decision {
    decide_same(previous.map(|(old, p)| (old == value, p)), phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHASES: [Phase; 3] = [Phase::Raised, Phase::Cleared, Phase::Point];

    #[test]
    fn first_sight_raises_only_an_alarm_value() {
        assert_eq!(
            decide(None, "true", Phase::Raised),
            Decision {
                emit: true,
                store: true
            }
        );
        assert_eq!(
            decide(None, "false", Phase::Cleared),
            Decision {
                emit: false,
                store: true
            }
        );
        assert_eq!(
            decide(None, "x", Phase::Point),
            Decision {
                emit: false,
                store: true
            }
        );
    }

    #[test]
    fn a_repeat_is_silent_and_not_rewritten() {
        for old in [
            None,
            Some(Phase::Raised),
            Some(Phase::Cleared),
            Some(Phase::Point),
        ] {
            for new in PHASES {
                assert_eq!(
                    decide(Some(("v", old)), "v", new),
                    Decision {
                        emit: false,
                        store: false
                    }
                );
            }
        }
    }

    #[test]
    fn every_change_emits_except_between_normal_values() {
        for old in [
            None,
            Some(Phase::Raised),
            Some(Phase::Cleared),
            Some(Phase::Point),
        ] {
            for new in PHASES {
                let d = decide(Some(("old", old)), "new", new);
                assert!(d.store);
                let quiet = old == Some(Phase::Cleared) && new == Phase::Cleared;
                assert_eq!(d.emit, !quiet, "{old:?} -> {new:?}");
            }
        }
    }

    #[test]
    fn an_upgrade_from_suspected_to_confirmed_emits() {
        let d = decide(
            Some(("maybe_fall", Some(Phase::Raised))),
            "fall",
            Phase::Raised,
        );
        assert!(d.emit);
    }
}
