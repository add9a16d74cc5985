//! The alert lifecycle as a pure state machine: (alert, input) → (alert, effects). The engine
//! applies the effects to the journal (lifecycle events, timers) in the same transaction, so a
//! crash can neither lose a transition nor repeat one.
//!
//! ```text
//!            raise            ack              resolve
//!   (new) ───────► Open ──────────► Acknowledged ──────► Resolved
//!                  │  ▲ re-raise        │                  ▲
//!    device clear  ▼  │                 └──────────────────┤
//!                 Cleared ─────────────────────────────────┘
//! ```
//! While Open, escalation tiers fire at their delay after the raise and the alert repeats to
//! everyone notified so far; acknowledging stops both and starts the reminder; a device's own
//! restore (Cleared) stops them too, but a person still acknowledges or resolves.

use std::time::Duration;

use atgw_sdk::event::{Confidence, Phase, Priority};
use serde::{Deserialize, Serialize};

use super::policy::PolicyConfig;

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Cleared,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Cleared => "cleared",
            Status::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "open" => Status::Open,
            "acknowledged" => Status::Acknowledged,
            "cleared" => Status::Cleared,
            "resolved" => Status::Resolved,
            _ => return None,
        })
    }
}

/// The persisted facts the state machine needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub status: Status,
    pub priority: Priority,
    pub confidence: Option<Confidence>,
    /// Escalation tiers fired so far.
    pub level: usize,
    pub raised_ms: i64,
}

/// The three kinds of timer an alert can have (at most one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    Escalate,
    Repeat,
    Remind,
}

impl Timer {
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::Escalate => "escalate",
            Timer::Repeat => "repeat",
            Timer::Remind => "remind",
        }
    }
    pub fn parse(s: &str) -> Option<Timer> {
        Some(match s {
            "escalate" => Timer::Escalate,
            "repeat" => Timer::Repeat,
            "remind" => Timer::Remind,
            _ => return None,
        })
    }
}

/// What happened to an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The same device raised the same kind again while the alert is not resolved.
    Raise {
        priority: Priority,
        confidence: Option<Confidence>,
    },
    /// The device restored or cancelled the condition.
    DeviceCleared,
    Ack,
    Resolve,
    Fired(Timer),
    /// Telling the routes notified so far keeps failing (the sink gave up retrying quickly):
    /// waiting out the escalation delay would leave nobody told, so the next tier is told now.
    DeliveryFailing,
}

/// What the engine must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Journal a lifecycle event with this phase and reason and send it to every route
    /// notified so far (after this step's level change).
    Notify {
        phase: Phase,
        reason: &'static str,
    },
    /// (Re)arm a timer at an absolute time (ms since the epoch).
    Arm(Timer, i64),
    Disarm(Timer),
}

/// Why an input was refused (an API or MQTT caller hears this).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the alert is already resolved")]
    AlreadyResolved,
}

/// A new alert: notify the first routes and arm its timers.
pub fn open(
    policy: &PolicyConfig,
    priority: Priority,
    confidence: Option<Confidence>,
    now_ms: i64,
) -> (Alert, Vec<Effect>) {
    let alert = Alert {
        status: Status::Open,
        priority,
        confidence,
        level: 0,
        raised_ms: now_ms,
    };
    let mut fx = vec![Effect::Notify {
        phase: Phase::Raised,
        reason: "raised",
    }];
    arm_open_timers(&alert, policy, now_ms, &mut fx);
    (alert, fx)
}

fn arm_open_timers(a: &Alert, policy: &PolicyConfig, now_ms: i64, fx: &mut Vec<Effect>) {
    if let Some(tier) = policy.escalate.get(a.level) {
        fx.push(Effect::Arm(Timer::Escalate, a.raised_ms + ms(tier.after)));
    }
    if let Some(r) = policy.repeat {
        fx.push(Effect::Arm(Timer::Repeat, now_ms + ms(r)));
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One transition. `policy` is `None` when the alert's policy was removed from the config: the
/// alert can still be acknowledged and resolved, it just does not escalate any more.
pub fn step(
    a: &mut Alert,
    policy: Option<&PolicyConfig>,
    input: Input,
    now_ms: i64,
) -> Result<Vec<Effect>, Refused> {
    use Status::*;
    let mut fx = Vec::new();
    match (a.status, input) {
        (Resolved, Input::Ack | Input::Resolve) => return Err(Refused::AlreadyResolved),
        (Resolved, _) => {}
        (_, Input::Resolve) => {
            a.status = Resolved;
            fx.push(Effect::Notify {
                phase: Phase::Resolved,
                reason: "resolved",
            });
            fx.extend([
                Effect::Disarm(Timer::Escalate),
                Effect::Disarm(Timer::Repeat),
                Effect::Disarm(Timer::Remind),
            ]);
        }
        (Acknowledged, Input::Ack) => {}
        (Open | Cleared, Input::Ack) => {
            a.status = Acknowledged;
            fx.push(Effect::Notify {
                phase: Phase::Acknowledged,
                reason: "acknowledged",
            });
            fx.extend([
                Effect::Disarm(Timer::Escalate),
                Effect::Disarm(Timer::Repeat),
            ]);
            if let Some(r) = policy.and_then(|p| p.remind) {
                fx.push(Effect::Arm(Timer::Remind, now_ms + ms(r)));
            }
        }
        (Open | Acknowledged, Input::DeviceCleared) => {
            a.status = Cleared;
            fx.push(Effect::Notify {
                phase: Phase::Cleared,
                reason: "device_cleared",
            });
            fx.extend([
                Effect::Disarm(Timer::Escalate),
                Effect::Disarm(Timer::Repeat),
            ]);
        }
        (Cleared, Input::DeviceCleared) => {}
        (
            Cleared,
            Input::Raise {
                priority,
                confidence,
            },
        ) => {
            // The condition came back before anyone closed the alert: it is live again.
            a.status = Open;
            a.priority = a.priority.min(priority);
            a.confidence = confidence.or(a.confidence);
            a.raised_ms = now_ms;
            a.level = 0;
            fx.push(Effect::Notify {
                phase: Phase::Raised,
                reason: "raised_again",
            });
            if let Some(p) = policy {
                arm_open_timers(a, p, now_ms, &mut fx);
            }
        }
        (
            Open | Acknowledged,
            Input::Raise {
                priority,
                confidence,
            },
        ) => {
            // A repeat attaches to the open alert; only a worse or surer one is told again.
            let worse = priority < a.priority;
            let surer = confidence == Some(Confidence::Confirmed)
                && a.confidence == Some(Confidence::Suspected);
            if worse || surer {
                a.priority = a.priority.min(priority);
                if surer {
                    a.confidence = Some(Confidence::Confirmed);
                }
                fx.push(Effect::Notify {
                    phase: Phase::Raised,
                    reason: "upgraded",
                });
            }
        }
        (Open, Input::Fired(Timer::Escalate)) => {
            a.level += 1;
            fx.push(Effect::Notify {
                phase: Phase::Escalated,
                reason: "ack_timeout",
            });
            if let Some(tier) = policy.and_then(|p| p.escalate.get(a.level)) {
                fx.push(Effect::Arm(Timer::Escalate, a.raised_ms + ms(tier.after)));
            }
        }
        (Open, Input::Fired(Timer::Repeat)) => {
            fx.push(Effect::Notify {
                phase: Phase::Escalated,
                reason: "repeat",
            });
            if let Some(r) = policy.and_then(|p| p.repeat) {
                fx.push(Effect::Arm(Timer::Repeat, now_ms + ms(r)));
            }
        }
        (Acknowledged, Input::Fired(Timer::Remind)) => {
            fx.push(Effect::Notify {
                phase: Phase::Escalated,
                reason: "not_resolved",
            });
            if let Some(r) = policy.and_then(|p| p.remind) {
                fx.push(Effect::Arm(Timer::Remind, now_ms + ms(r)));
            }
        }
        (Open, Input::DeliveryFailing) => {
            // Only a policy with a tier left can do anything about it; the failing sink's
            // own alarm (gateway `device_fault`) covers the rest.
            if policy.is_some_and(|p| p.escalate.get(a.level).is_some()) {
                a.level += 1;
                fx.push(Effect::Notify {
                    phase: Phase::Escalated,
                    reason: "delivery_failed",
                });
                match policy.and_then(|p| p.escalate.get(a.level)) {
                    Some(tier) => {
                        fx.push(Effect::Arm(Timer::Escalate, a.raised_ms + ms(tier.after)))
                    }
                    None => fx.push(Effect::Disarm(Timer::Escalate)),
                }
            }
        }
        // Someone has it already, or it is over: nothing to hurry.
        (_, Input::DeliveryFailing) => {}
        // A timer that outlived its state (e.g. acknowledged in the same instant): nothing.
        (_, Input::Fired(_)) => {}
    }
    Ok(fx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::policy::{PolicyMatch, Tier};

    fn policy() -> PolicyConfig {
        PolicyConfig {
            name: None,
            matches: PolicyMatch::default(),
            notify: vec!["carers".into()],
            escalate: vec![
                Tier {
                    after: Duration::from_secs(60),
                    notify: vec!["senior".into()],
                },
                Tier {
                    after: Duration::from_secs(180),
                    notify: vec!["arc".into()],
                },
            ],
            repeat: Some(Duration::from_secs(30)),
            remind: Some(Duration::from_secs(600)),
        }
    }

    fn notify(fx: &[Effect]) -> Vec<(Phase, &'static str)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Notify { phase, reason } => Some((*phase, *reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_alert_notifies_and_arms_escalation_from_its_raise() {
        let (a, fx) = open(&policy(), Priority::High, None, 1_000);
        assert_eq!(a.status, Status::Open);
        assert_eq!(notify(&fx), vec![(Phase::Raised, "raised")]);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 61_000)));
        assert!(fx.contains(&Effect::Arm(Timer::Repeat, 31_000)));
    }

    #[test]
    fn escalation_walks_the_tiers_at_their_delays_after_the_raise() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::Fired(Timer::Escalate), 61_000).unwrap();
        assert_eq!(a.level, 1);
        assert_eq!(notify(&fx), vec![(Phase::Escalated, "ack_timeout")]);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 180_000)));
        let fx = step(&mut a, Some(&p), Input::Fired(Timer::Escalate), 180_000).unwrap();
        assert_eq!(a.level, 2);
        assert!(
            !fx.iter()
                .any(|e| matches!(e, Effect::Arm(Timer::Escalate, _))),
            "no tier left"
        );
    }

    #[test]
    fn acknowledging_stops_escalation_and_repeats_and_arms_the_reminder() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::Ack, 5_000).unwrap();
        assert_eq!(a.status, Status::Acknowledged);
        assert!(
            fx.contains(&Effect::Disarm(Timer::Escalate))
                && fx.contains(&Effect::Disarm(Timer::Repeat))
        );
        assert!(fx.contains(&Effect::Arm(Timer::Remind, 605_000)));
        // A late escalation timer does nothing now.
        assert!(
            step(&mut a, Some(&p), Input::Fired(Timer::Escalate), 61_000)
                .unwrap()
                .is_empty()
        );
        // Acknowledging twice is harmless.
        assert!(
            step(&mut a, Some(&p), Input::Ack, 6_000)
                .unwrap()
                .is_empty()
        );
        let fx = step(&mut a, Some(&p), Input::Fired(Timer::Remind), 605_000).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Escalated, "not_resolved")]);
    }

    #[test]
    fn a_repeat_raise_attaches_and_only_an_upgrade_is_told() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::Medium, Some(Confidence::Suspected), 0);
        let same = Input::Raise {
            priority: Priority::Medium,
            confidence: Some(Confidence::Suspected),
        };
        assert!(step(&mut a, Some(&p), same, 1_000).unwrap().is_empty());
        let fall = Input::Raise {
            priority: Priority::High,
            confidence: Some(Confidence::Confirmed),
        };
        let fx = step(&mut a, Some(&p), fall, 2_000).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Raised, "upgraded")]);
        assert_eq!(
            (a.priority, a.confidence),
            (Priority::High, Some(Confidence::Confirmed))
        );
    }

    #[test]
    fn resolved_is_final() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::Resolve, 1).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Resolved, "resolved")]);
        assert_eq!(
            step(&mut a, Some(&p), Input::Ack, 2),
            Err(Refused::AlreadyResolved)
        );
        assert_eq!(
            step(&mut a, Some(&p), Input::Resolve, 2),
            Err(Refused::AlreadyResolved)
        );
        for t in [Timer::Escalate, Timer::Repeat, Timer::Remind] {
            assert!(
                step(&mut a, Some(&p), Input::Fired(t), 3)
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn failing_delivery_tells_the_next_tier_now_and_keeps_the_later_tiers_on_time() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::DeliveryFailing, 4_000).unwrap();
        assert_eq!(a.level, 1);
        assert_eq!(notify(&fx), vec![(Phase::Escalated, "delivery_failed")]);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 180_000)));
        // Tier 2's delivery fails too: the last tier is told and no escalation is left.
        let fx = step(&mut a, Some(&p), Input::DeliveryFailing, 8_000).unwrap();
        assert_eq!(a.level, 2);
        assert!(fx.contains(&Effect::Disarm(Timer::Escalate)));
        // Nobody left to tell: nothing happens.
        let fx = step(&mut a, Some(&p), Input::DeliveryFailing, 9_000).unwrap();
        assert!(fx.is_empty());
        assert_eq!(a.level, 2);
    }

    #[test]
    fn failing_delivery_changes_nothing_once_someone_acknowledged() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::High, None, 0);
        step(&mut a, Some(&p), Input::Ack, 1_000).unwrap();
        let fx = step(&mut a, Some(&p), Input::DeliveryFailing, 4_000).unwrap();
        assert!(fx.is_empty());
        assert_eq!(a.level, 0);
    }

    #[test]
    fn a_device_clear_stops_escalation_and_a_new_raise_reopens() {
        let p = policy();
        let (mut a, _) = open(&p, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::DeviceCleared, 10).unwrap();
        assert_eq!(a.status, Status::Cleared);
        assert_eq!(notify(&fx), vec![(Phase::Cleared, "device_cleared")]);
        let fx = step(
            &mut a,
            Some(&p),
            Input::Raise {
                priority: Priority::High,
                confidence: None,
            },
            100,
        )
        .unwrap();
        assert_eq!(a.status, Status::Open);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 60_100)));
    }

    #[test]
    fn every_state_and_input_pair_is_handled_without_panicking() {
        let p = policy();
        let inputs = [
            Input::Raise {
                priority: Priority::Low,
                confidence: None,
            },
            Input::DeviceCleared,
            Input::Ack,
            Input::Resolve,
            Input::Fired(Timer::Escalate),
            Input::Fired(Timer::Repeat),
            Input::Fired(Timer::Remind),
            Input::DeliveryFailing,
        ];
        for status in [
            Status::Open,
            Status::Acknowledged,
            Status::Cleared,
            Status::Resolved,
        ] {
            for input in inputs.clone() {
                for pol in [Some(&p), None] {
                    let mut a = Alert {
                        status,
                        priority: Priority::High,
                        confidence: None,
                        level: 5,
                        raised_ms: 0,
                    };
                    let _ = step(&mut a, pol, input.clone(), 1);
                }
            }
        }
    }
}
