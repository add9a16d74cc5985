//! The alert lifecycle as a pure state machine: (alert, input, time) → (alert, effects). The
//! engine applies the effects to the journal (lifecycle events, timers) in the same transaction,
//! so a crash can neither lose a transition nor repeat one.
//!
//! ```text
//!            raise            ack              resolve
//!   (new) ───────► Open ──────────► Acknowledged ──────► Resolved
//!             ▲    │  ▲ re-raise        │                  ▲
//!   repeat,   └────┤  │                 │ device clear     │
//!   restore noted  ▼  │                 ▼ (its condition)  │
//!   (resident)    Cleared ─────────────────────────────────┘
//!               (device's condition restored)
//! ```
//!
//! - While Open, escalation tiers fire at their delay after the raise and the alert repeats to
//!   everyone notified so far; acknowledging stops both and starts the reminder, which comes
//!   every `remind` at most `max_reminders` times per acknowledgement (the last one says so).
//! - **Acknowledged is not attended.** Under a policy with `attend_within`, an alert still
//!   acknowledged (not resolved) that long after its acknowledgement goes back to Open
//!   (`raised`, reason `not_attended`), told to everyone told so far, and escalates again from
//!   the tier it had reached: the next tier comes its usual interval later. The timer is a
//!   journal row like every other, so a restart or `kill -9` does not forget it.
//! - **Restore and cancel.** A device's restore of a condition the device reports (a leak that
//!   dried, smoke gone, a device back online) moves it to Cleared: escalation stops, but a person
//!   still acknowledges or resolves. For a resident kind ([`policy::RESIDENT_KINDS`]: pendant,
//!   assistance call, medical, nurse call, fall, seizure, vital signs) the restore — or the
//!   resident's cancel — is only recorded (`point`, reason `device_restored` / `cancelled`) and
//!   told to everyone told so far; the alert stays Open and escalating until a person
//!   acknowledges it. A policy may loosen this per kind (`clear_on_restore`).
//! - **Repeats.** Another raise of an open or acknowledged alert is counted (`presses`) and
//!   told again to everyone told so far (`repeated`), or as `upgraded` when it is worse or
//!   surer. An upgrade that moves the alert to a stricter policy (the engine decides which)
//!   restarts its tiers from level 0 under that policy, timed from the original raise, so a
//!   tier already overdue fires at once.
//!
//! [`policy::RESIDENT_KINDS`]: super::policy::RESIDENT_KINDS

use std::time::Duration;

use atgw_sdk::event::{Confidence, Kind, Phase, Priority};
use serde::{Deserialize, Serialize};

use super::policy::{self, PolicyConfig};

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
    pub kind: Kind,
    pub status: Status,
    pub priority: Priority,
    pub confidence: Option<Confidence>,
    /// Escalation tiers fired so far.
    pub level: usize,
    /// Start of the escalation clock (the raise; a re-raise after Cleared restarts it).
    pub raised_ms: i64,
    /// When the alert was first opened (never moves).
    pub opened_ms: i64,
    /// Raises attached to this alert, the first included.
    pub presses: u32,
    /// Reminders sent since the last acknowledgement.
    pub reminders: u32,
}

/// The kinds of timer an alert can have (at most one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    Escalate,
    Repeat,
    Remind,
    /// `attend_within` after an acknowledgement: not resolved by then, it is open again.
    Attend,
}

/// Every timer, for disarming them all.
const ALL_TIMERS: [Timer; 4] = [Timer::Escalate, Timer::Repeat, Timer::Remind, Timer::Attend];

impl Timer {
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::Escalate => "escalate",
            Timer::Repeat => "repeat",
            Timer::Remind => "remind",
            Timer::Attend => "attend",
        }
    }
    pub fn parse(s: &str) -> Option<Timer> {
        Some(match s {
            "escalate" => Timer::Escalate,
            "repeat" => Timer::Repeat,
            "remind" => Timer::Remind,
            "attend" => Timer::Attend,
            _ => return None,
        })
    }
}

/// What happened to an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The same device component raised the same kind again while the alert is not resolved.
    Raise {
        priority: Priority,
        confidence: Option<Confidence>,
        /// The engine moved the alert to a stricter policy for this raise (see [`is_upgrade`]):
        /// its tiers start again from level 0, timed from the original raise.
        repolicied: bool,
    },
    /// The device restored the condition.
    DeviceCleared,
    /// The resident cancelled the call at the device.
    Cancelled,
    Ack,
    Resolve,
    Fired(Timer),
    /// The shelf that held this alert ended ([`super::shelf`]): an open one is raised to its
    /// routes and escalates from now, an acknowledged one gets its reminders back.
    Unshelved,
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
    kind: Kind,
    priority: Priority,
    confidence: Option<Confidence>,
    now_ms: i64,
) -> (Alert, Vec<Effect>) {
    let alert = Alert {
        kind,
        status: Status::Open,
        priority,
        confidence,
        level: 0,
        raised_ms: now_ms,
        opened_ms: now_ms,
        presses: 1,
        reminders: 0,
    };
    let mut fx = vec![Effect::Notify {
        phase: Phase::Raised,
        reason: "raised",
    }];
    arm_open_timers(&alert, policy, now_ms, &mut fx);
    (alert, fx)
}

/// Whether a raise of this priority and confidence makes the alert worse or surer.
pub fn is_upgrade(a: &Alert, priority: Priority, confidence: Option<Confidence>) -> bool {
    priority < a.priority
        || (confidence == Some(Confidence::Confirmed)
            && a.confidence == Some(Confidence::Suspected))
}

fn arm_open_timers(a: &Alert, policy: &PolicyConfig, now_ms: i64, fx: &mut Vec<Effect>) {
    if let Some(tier) = policy.escalate.get(a.level) {
        fx.push(Effect::Arm(Timer::Escalate, a.raised_ms + ms(tier.after)));
    }
    if let Some(r) = policy.repeat {
        fx.push(Effect::Arm(Timer::Repeat, now_ms + ms(r)));
    }
}

/// The timers an alert in its state should have, for one that has none (its timer rows were
/// lost with a damaged journal page): the escalation due from its raise, its repeat, or, once
/// acknowledged, its next reminder. A state that never has timers gets none.
pub fn rearm(a: &Alert, policy: &PolicyConfig, now_ms: i64) -> Vec<Effect> {
    let mut fx = Vec::new();
    match a.status {
        Status::Open => arm_open_timers(a, policy, now_ms, &mut fx),
        Status::Acknowledged => {
            if let Some(r) = policy.remind
                && a.reminders < policy.max_reminders
            {
                fx.push(Effect::Arm(Timer::Remind, now_ms + ms(r)));
            }
            if let Some(w) = policy.attend_within {
                fx.push(Effect::Arm(Timer::Attend, now_ms + ms(w)));
            }
        }
        Status::Cleared | Status::Resolved => {}
    }
    fx
}

/// The start of the escalation clock that makes the next tier (after `level` fired) come its
/// usual interval after `now_ms`: as if the last tier reached had just fired.
fn clock_for_level(policy: Option<&PolicyConfig>, level: usize, now_ms: i64) -> i64 {
    let reached = level
        .checked_sub(1)
        .and_then(|l| policy.and_then(|p| p.escalate.get(l)))
        .map_or(0, |t| ms(t.after));
    now_ms.saturating_sub(reached)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One transition. `policy` is `None` when the alert's policy was removed from the config: the
/// alert can still be acknowledged and resolved, it just does not escalate any more (and a
/// restore of a resident kind is recorded, never closing: the safe default).
pub fn step(
    a: &mut Alert,
    policy: Option<&PolicyConfig>,
    input: Input,
    now_ms: i64,
) -> Result<Vec<Effect>, Refused> {
    use Status::*;
    let mut fx = Vec::new();
    let informs = policy::restore_is_information(a.kind, policy);
    match (a.status, input) {
        (Resolved, Input::Ack | Input::Resolve) => return Err(Refused::AlreadyResolved),
        (Resolved, _) => {}
        (_, Input::Resolve) => {
            a.status = Resolved;
            fx.push(Effect::Notify {
                phase: Phase::Resolved,
                reason: "resolved",
            });
            fx.extend(ALL_TIMERS.map(Effect::Disarm));
        }
        (Acknowledged, Input::Ack) => {}
        (status @ (Open | Cleared), Input::Ack) => {
            let a_was_open = status == Open;
            a.status = Acknowledged;
            a.reminders = 0;
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
            // Acknowledging a condition the device has already restored leaves nothing to
            // attend; a live one must be attended (resolved) in time.
            if a_was_open && let Some(w) = policy.and_then(|p| p.attend_within) {
                fx.push(Effect::Arm(Timer::Attend, now_ms + ms(w)));
            }
        }
        // A resident kind: the restore or cancel is news for whoever is going, not the end.
        (Open | Acknowledged, input @ (Input::DeviceCleared | Input::Cancelled)) if informs => {
            fx.push(Effect::Notify {
                phase: Phase::Point,
                reason: if input == Input::Cancelled {
                    "cancelled"
                } else {
                    "device_restored"
                },
            });
        }
        (Open | Acknowledged, Input::DeviceCleared | Input::Cancelled) => {
            a.status = Cleared;
            fx.push(Effect::Notify {
                phase: Phase::Cleared,
                reason: "device_cleared",
            });
            fx.extend([
                Effect::Disarm(Timer::Escalate),
                Effect::Disarm(Timer::Repeat),
                Effect::Disarm(Timer::Attend),
            ]);
        }
        (Cleared, Input::DeviceCleared | Input::Cancelled) => {}
        (
            Cleared,
            Input::Raise {
                priority,
                confidence,
                ..
            },
        ) => {
            // The condition came back before anyone closed the alert: it is live again.
            a.status = Open;
            a.priority = a.priority.min(priority);
            a.confidence = confidence.or(a.confidence);
            a.raised_ms = now_ms;
            a.level = 0;
            a.presses = a.presses.saturating_add(1);
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
                repolicied,
            },
        ) => {
            // A repeat attaches to the alert and is told again to everyone told so far, also
            // after an acknowledgement (nobody has come yet, or the resident needs more help).
            let upgraded = is_upgrade(a, priority, confidence);
            a.presses = a.presses.saturating_add(1);
            a.priority = a.priority.min(priority);
            if confidence == Some(Confidence::Confirmed) || a.confidence.is_none() {
                a.confidence = confidence.or(a.confidence);
            }
            if repolicied && a.status == Open {
                a.level = 0;
                fx.push(Effect::Disarm(Timer::Escalate));
            }
            fx.push(Effect::Notify {
                phase: Phase::Raised,
                reason: if upgraded { "upgraded" } else { "repeated" },
            });
            if repolicied
                && a.status == Open
                && let Some(p) = policy
            {
                arm_open_timers(a, p, now_ms, &mut fx);
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
            a.reminders = a.reminders.saturating_add(1);
            fx.push(Effect::Notify {
                phase: Phase::Escalated,
                reason: "not_resolved",
            });
            // Capped: whoever acknowledged has it; the last reminder says no more will come.
            if let Some(p) = policy
                && let Some(r) = p.remind
                && a.reminders < p.max_reminders
            {
                fx.push(Effect::Arm(Timer::Remind, now_ms + ms(r)));
            }
        }
        (Acknowledged, Input::Fired(Timer::Attend)) => {
            // Acknowledged and forgotten: open again for everyone told so far, and on up the
            // tiers from where it stood.
            a.status = Open;
            a.raised_ms = clock_for_level(policy, a.level, now_ms);
            fx.push(Effect::Notify {
                phase: Phase::Raised,
                reason: "not_attended",
            });
            fx.push(Effect::Disarm(Timer::Remind));
            if let Some(p) = policy {
                arm_open_timers(a, p, now_ms, &mut fx);
            }
        }
        (Open, Input::Unshelved) => {
            a.raised_ms = now_ms;
            a.level = 0;
            fx.push(Effect::Notify {
                phase: Phase::Raised,
                reason: "unshelved",
            });
            if let Some(p) = policy {
                arm_open_timers(a, p, now_ms, &mut fx);
            }
        }
        (Acknowledged, Input::Unshelved) => {
            if let Some(p) = policy {
                fx.extend(rearm(a, p, now_ms));
            }
        }
        (_, Input::Unshelved) => {}
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
            max_reminders: 3,
            attend_within: None,
            clear_on_restore: Vec::new(),
        }
    }

    fn attended(within: u64) -> PolicyConfig {
        PolicyConfig {
            attend_within: Some(Duration::from_secs(within)),
            ..policy()
        }
    }

    #[test]
    fn an_acknowledged_alert_not_resolved_in_time_opens_again_and_escalates_on() {
        let p = attended(600);
        let (mut a, _) = open(&p, Kind::Fall, Priority::High, None, 0);
        step(&mut a, Some(&p), Input::Fired(Timer::Escalate), 60_000).unwrap();
        let fx = step(&mut a, Some(&p), Input::Ack, 90_000).unwrap();
        assert!(fx.contains(&Effect::Arm(Timer::Attend, 690_000)));
        assert!(fx.contains(&Effect::Arm(Timer::Remind, 690_000)));

        let fx = step(&mut a, Some(&p), Input::Fired(Timer::Attend), 690_000).unwrap();
        assert_eq!(a.status, Status::Open);
        assert_eq!(a.level, 1, "everyone told so far stays told");
        assert_eq!(notify(&fx), vec![(Phase::Raised, "not_attended")]);
        assert!(fx.contains(&Effect::Disarm(Timer::Remind)));
        // The second tier came 120 s after the first: so it does after the reopening.
        assert!(
            fx.contains(&Effect::Arm(Timer::Escalate, 810_000)),
            "{fx:?}"
        );
        assert!(fx.contains(&Effect::Arm(Timer::Repeat, 720_000)));

        // Acknowledged again: a new promise with its own deadline.
        let fx = step(&mut a, Some(&p), Input::Ack, 700_000).unwrap();
        assert_eq!(a.status, Status::Acknowledged);
        assert!(fx.contains(&Effect::Arm(Timer::Attend, 1_300_000)));
        // Resolving ends it.
        let fx = step(&mut a, Some(&p), Input::Resolve, 800_000).unwrap();
        assert!(fx.contains(&Effect::Disarm(Timer::Attend)));
        assert_eq!(
            step(&mut a, Some(&p), Input::Fired(Timer::Attend), 1_300_000).unwrap(),
            vec![],
            "a stale timer does nothing to a resolved alert"
        );
    }

    #[test]
    fn not_attended_at_level_zero_starts_the_tiers_from_now() {
        let p = attended(300);
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
        step(&mut a, Some(&p), Input::Ack, 10_000).unwrap();
        let fx = step(&mut a, Some(&p), Input::Fired(Timer::Attend), 310_000).unwrap();
        assert_eq!((a.status, a.level), (Status::Open, 0));
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 370_000)));
    }

    #[test]
    fn off_the_shelf_an_open_alert_is_raised_and_escalates_from_then() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::LowBattery, Priority::Low, None, 0);
        let fx = step(&mut a, Some(&p), Input::Unshelved, 3_600_000).unwrap();
        assert_eq!(
            (a.status, a.level, a.raised_ms),
            (Status::Open, 0, 3_600_000)
        );
        assert_eq!(notify(&fx), vec![(Phase::Raised, "unshelved")]);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 3_660_000)));
        // Acknowledged while shelved: reminders again, nobody paged.
        let (mut b, _) = open(&p, Kind::Tamper, Priority::Low, None, 0);
        step(&mut b, Some(&p), Input::Ack, 1_000).unwrap();
        let fx = step(&mut b, Some(&p), Input::Unshelved, 10_000).unwrap();
        assert_eq!(notify(&fx), vec![]);
        assert_eq!(fx, vec![Effect::Arm(Timer::Remind, 610_000)]);
        // Cleared by the device meanwhile: nothing left to tell.
        let (mut c, _) = open(&p, Kind::DeviceOffline, Priority::Medium, None, 0);
        step(&mut c, Some(&p), Input::DeviceCleared, 1_000).unwrap();
        assert_eq!(
            step(&mut c, Some(&p), Input::Unshelved, 10_000).unwrap(),
            vec![]
        );
    }

    #[test]
    fn without_attend_within_an_acknowledgement_stands() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::Fall, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::Ack, 10_000).unwrap();
        assert!(
            !fx.iter()
                .any(|e| matches!(e, Effect::Arm(Timer::Attend, _)))
        );
    }

    #[test]
    fn a_restored_device_condition_leaves_nothing_to_attend() {
        let p = attended(300);
        // Cleared before anyone acknowledged: the acknowledgement arms no attend timer.
        let (mut a, _) = open(&p, Kind::WaterLeak, Priority::Medium, None, 0);
        step(&mut a, Some(&p), Input::DeviceCleared, 5_000).unwrap();
        let fx = step(&mut a, Some(&p), Input::Ack, 10_000).unwrap();
        assert!(
            !fx.iter()
                .any(|e| matches!(e, Effect::Arm(Timer::Attend, _)))
        );
        // Acknowledged, then the leak dried: the timer goes.
        let (mut b, _) = open(&p, Kind::WaterLeak, Priority::Medium, None, 0);
        step(&mut b, Some(&p), Input::Ack, 1_000).unwrap();
        let fx = step(&mut b, Some(&p), Input::DeviceCleared, 5_000).unwrap();
        assert!(fx.contains(&Effect::Disarm(Timer::Attend)));
        // A resident's fall whose sensor stops reporting it still needs someone there.
        let (mut c, _) = open(&p, Kind::Fall, Priority::High, None, 0);
        step(&mut c, Some(&p), Input::Ack, 1_000).unwrap();
        let fx = step(&mut c, Some(&p), Input::DeviceCleared, 5_000).unwrap();
        assert!(!fx.contains(&Effect::Disarm(Timer::Attend)));
        let fx = step(&mut c, Some(&p), Input::Fired(Timer::Attend), 301_000).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Raised, "not_attended")]);
    }

    fn notify(fx: &[Effect]) -> Vec<(Phase, &'static str)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Notify { phase, reason } => Some((*phase, *reason)),
                _ => None,
            })
            .collect()
    }

    fn raise(priority: Priority) -> Input {
        Input::Raise {
            priority,
            confidence: None,
            repolicied: false,
        }
    }

    fn alert(kind: Kind, status: Status) -> Alert {
        Alert {
            kind,
            status,
            priority: Priority::High,
            confidence: None,
            level: 1,
            raised_ms: 0,
            opened_ms: 0,
            presses: 1,
            reminders: 0,
        }
    }

    #[test]
    fn an_alert_that_lost_its_timers_gets_the_ones_its_state_calls_for() {
        let p = policy();
        // Open at level 1: the second tier is due 180 s after the raise (already past, so it
        // fires at once), and the repeat goes on.
        let a = alert(Kind::Fall, Status::Open);
        assert_eq!(
            rearm(&a, &p, 500_000),
            vec![
                Effect::Arm(Timer::Escalate, 180_000),
                Effect::Arm(Timer::Repeat, 530_000)
            ]
        );
        let mut acked = alert(Kind::Fall, Status::Acknowledged);
        assert_eq!(
            rearm(&acked, &p, 1_000),
            vec![Effect::Arm(Timer::Remind, 601_000)]
        );
        acked.reminders = 3;
        assert_eq!(
            rearm(&acked, &p, 1_000),
            vec![],
            "the last reminder was sent"
        );
        assert_eq!(
            rearm(&alert(Kind::Fall, Status::Cleared), &p, 1_000),
            vec![]
        );
        let mut top = alert(Kind::Fall, Status::Open);
        top.level = 2;
        let mut quiet = policy();
        quiet.repeat = None;
        assert_eq!(
            rearm(&top, &quiet, 1_000),
            vec![],
            "past the last tier, no repeat"
        );
    }

    #[test]
    fn a_new_alert_notifies_and_arms_escalation_from_its_raise() {
        let (a, fx) = open(&policy(), Kind::PendantPress, Priority::High, None, 1_000);
        assert_eq!(a.status, Status::Open);
        assert_eq!((a.presses, a.opened_ms), (1, 1_000));
        assert_eq!(notify(&fx), vec![(Phase::Raised, "raised")]);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 61_000)));
        assert!(fx.contains(&Effect::Arm(Timer::Repeat, 31_000)));
    }

    #[test]
    fn escalation_walks_the_tiers_at_their_delays_after_the_raise() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
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
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
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
    fn reminders_stop_after_max_reminders_and_a_new_acknowledgement_starts_them_again() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::WaterLeak, Priority::High, None, 0);
        step(&mut a, Some(&p), Input::Ack, 0).unwrap();
        let mut t = 0;
        for n in 1..=3 {
            t += 600_000;
            let fx = step(&mut a, Some(&p), Input::Fired(Timer::Remind), t).unwrap();
            assert_eq!(notify(&fx), vec![(Phase::Escalated, "not_resolved")]);
            assert_eq!(a.reminders, n);
            let rearmed = fx.contains(&Effect::Arm(Timer::Remind, t + 600_000));
            assert_eq!(rearmed, n < 3, "reminder {n}: {fx:?}");
        }
        // Cleared by the device, raised again and acknowledged again: a new round.
        let mut b = alert(Kind::WaterLeak, Status::Cleared);
        b.reminders = 3;
        let fx = step(&mut b, Some(&p), Input::Ack, 10).unwrap();
        assert_eq!(b.reminders, 0);
        assert!(fx.contains(&Effect::Arm(Timer::Remind, 600_010)));
    }

    #[test]
    fn a_repeat_raise_attaches_is_counted_and_told_again_and_an_upgrade_says_so() {
        let p = policy();
        let (mut a, _) = open(
            &p,
            Kind::Fall,
            Priority::Medium,
            Some(Confidence::Suspected),
            0,
        );
        let same = Input::Raise {
            priority: Priority::Medium,
            confidence: Some(Confidence::Suspected),
            repolicied: false,
        };
        let fx = step(&mut a, Some(&p), same, 1_000).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Raised, "repeated")]);
        assert_eq!(a.presses, 2);
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::Arm(..))),
            "a repeat does not move the escalation clock"
        );
        let fall = Input::Raise {
            priority: Priority::High,
            confidence: Some(Confidence::Confirmed),
            repolicied: false,
        };
        let fx = step(&mut a, Some(&p), fall, 2_000).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Raised, "upgraded")]);
        assert_eq!(
            (a.priority, a.confidence, a.presses),
            (Priority::High, Some(Confidence::Confirmed), 3)
        );
        // A later suspected report never makes a confirmed fall suspected again.
        step(
            &mut a,
            Some(&p),
            Input::Raise {
                priority: Priority::Medium,
                confidence: Some(Confidence::Suspected),
                repolicied: false,
            },
            3_000,
        )
        .unwrap();
        assert_eq!(
            (a.priority, a.confidence),
            (Priority::High, Some(Confidence::Confirmed))
        );
    }

    #[test]
    fn a_repeat_after_acknowledgement_is_told_and_keeps_it_acknowledged() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
        step(&mut a, Some(&p), Input::Ack, 1_000).unwrap();
        let fx = step(&mut a, Some(&p), raise(Priority::High), 2_000).unwrap();
        assert_eq!(notify(&fx), vec![(Phase::Raised, "repeated")]);
        assert_eq!((a.status, a.presses), (Status::Acknowledged, 2));
    }

    #[test]
    fn an_upgrade_to_a_stricter_policy_restarts_its_tiers_from_the_original_raise() {
        let routine = PolicyConfig {
            escalate: vec![Tier {
                after: Duration::from_secs(3600),
                notify: vec!["senior".into()],
            }],
            ..policy()
        };
        let alarms = policy();
        let (mut a, fx) = open(
            &routine,
            Kind::Fall,
            Priority::Medium,
            Some(Confidence::Suspected),
            0,
        );
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 3_600_000)));
        let fx = step(
            &mut a,
            Some(&alarms),
            Input::Raise {
                priority: Priority::High,
                confidence: Some(Confidence::Confirmed),
                repolicied: true,
            },
            120_000,
        )
        .unwrap();
        assert_eq!(a.level, 0);
        assert_eq!(notify(&fx), vec![(Phase::Raised, "upgraded")]);
        // alarms' first tier is 60 s after the raise, already past: due at once.
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 60_000)), "{fx:?}");
        assert!(fx.contains(&Effect::Arm(Timer::Repeat, 150_000)), "{fx:?}");
    }

    #[test]
    fn resolved_is_final() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
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
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
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
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
        step(&mut a, Some(&p), Input::Ack, 1_000).unwrap();
        let fx = step(&mut a, Some(&p), Input::DeliveryFailing, 4_000).unwrap();
        assert!(fx.is_empty());
        assert_eq!(a.level, 0);
    }

    #[test]
    fn a_device_clear_of_its_own_condition_stops_escalation_and_a_new_raise_reopens() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::WaterLeak, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::DeviceCleared, 10).unwrap();
        assert_eq!(a.status, Status::Cleared);
        assert_eq!(notify(&fx), vec![(Phase::Cleared, "device_cleared")]);
        let fx = step(&mut a, Some(&p), raise(Priority::High), 100).unwrap();
        assert_eq!(a.status, Status::Open);
        assert_eq!(notify(&fx), vec![(Phase::Raised, "raised_again")]);
        assert!(fx.contains(&Effect::Arm(Timer::Escalate, 60_100)));
    }

    #[test]
    fn a_restore_of_a_resident_alarm_is_recorded_and_it_keeps_escalating() {
        let p = policy();
        for kind in policy::RESIDENT_KINDS.iter().copied() {
            let (mut a, _) = open(&p, kind, Priority::High, None, 0);
            let fx = step(&mut a, Some(&p), Input::DeviceCleared, 1_000).unwrap();
            assert_eq!(a.status, Status::Open, "{kind}");
            assert_eq!(
                notify(&fx),
                vec![(Phase::Point, "device_restored")],
                "{kind}"
            );
            assert!(
                !fx.iter().any(|e| matches!(e, Effect::Disarm(_))),
                "{kind}: no timer stops"
            );
            let fx = step(&mut a, Some(&p), Input::Fired(Timer::Escalate), 60_000).unwrap();
            assert_eq!(
                notify(&fx),
                vec![(Phase::Escalated, "ack_timeout")],
                "{kind}"
            );
            // The same without any policy (it was removed): still the safe rule.
            let (mut b, _) = open(&p, kind, Priority::High, None, 0);
            step(&mut b, None, Input::DeviceCleared, 1).unwrap();
            assert_eq!(b.status, Status::Open, "{kind}");
        }
    }

    #[test]
    fn a_policy_may_let_a_restore_close_one_resident_kind() {
        let p = PolicyConfig {
            clear_on_restore: vec![Kind::PendantPress],
            ..policy()
        };
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::DeviceCleared, 1_000).unwrap();
        assert_eq!(a.status, Status::Cleared);
        assert_eq!(notify(&fx), vec![(Phase::Cleared, "device_cleared")]);
        let (mut b, _) = open(&p, Kind::Fall, Priority::High, None, 0);
        step(&mut b, Some(&p), Input::DeviceCleared, 1_000).unwrap();
        assert_eq!(b.status, Status::Open, "only the kinds listed");
    }

    #[test]
    fn a_cancel_is_recorded_on_a_call_and_closes_it_only_where_the_policy_says() {
        let p = policy();
        let (mut a, _) = open(&p, Kind::PendantPress, Priority::High, None, 0);
        let fx = step(&mut a, Some(&p), Input::Cancelled, 1_000).unwrap();
        assert_eq!(a.status, Status::Open);
        assert_eq!(notify(&fx), vec![(Phase::Point, "cancelled")]);
        let loose = PolicyConfig {
            clear_on_restore: vec![Kind::PendantPress],
            ..policy()
        };
        let fx = step(&mut a, Some(&loose), Input::Cancelled, 2_000).unwrap();
        assert_eq!(a.status, Status::Cleared);
        assert_eq!(notify(&fx), vec![(Phase::Cleared, "device_cleared")]);
    }

    /// Every (status, input, kind class, policy present) combination: the expected status
    /// after the step and the reasons told.
    #[test]
    fn every_state_and_input_pair_has_the_stated_outcome() {
        use Status::*;
        let p = policy();
        let inputs = [
            raise(Priority::Low),
            raise(Priority::High),
            Input::DeviceCleared,
            Input::Cancelled,
            Input::Ack,
            Input::Resolve,
            Input::Fired(Timer::Escalate),
            Input::Fired(Timer::Repeat),
            Input::Fired(Timer::Remind),
            Input::DeliveryFailing,
        ];
        for kind in [Kind::PendantPress, Kind::Smoke] {
            let resident = kind == Kind::PendantPress;
            for status in [Open, Acknowledged, Cleared, Resolved] {
                for input in &inputs {
                    for pol in [Some(&p), None] {
                        let mut a = alert(kind, status);
                        let before = a.clone();
                        let got = step(&mut a, pol, input.clone(), 100_000);
                        let reasons: Vec<&str> = got
                            .as_ref()
                            .map(|fx| notify(fx).into_iter().map(|(_, r)| r).collect())
                            .unwrap_or_default();
                        let (want_status, want): (Status, &[&str]) = match (status, input) {
                            (Resolved, Input::Ack | Input::Resolve) => {
                                assert_eq!(got, Err(Refused::AlreadyResolved));
                                (Resolved, &[])
                            }
                            (Resolved, _) => (Resolved, &[]),
                            (_, Input::Resolve) => (Resolved, &["resolved"]),
                            (Acknowledged, Input::Ack) => (Acknowledged, &[]),
                            (_, Input::Ack) => (Acknowledged, &["acknowledged"]),
                            (Cleared, Input::DeviceCleared | Input::Cancelled) => (Cleared, &[]),
                            (s, Input::DeviceCleared) if resident => (s, &["device_restored"]),
                            (s, Input::Cancelled) if resident => (s, &["cancelled"]),
                            (_, Input::DeviceCleared | Input::Cancelled) => {
                                (Cleared, &["device_cleared"])
                            }
                            (Cleared, Input::Raise { .. }) => (Open, &["raised_again"]),
                            (s, Input::Raise { .. }) => (s, &["repeated"]),
                            (Open, Input::Fired(Timer::Escalate)) => (Open, &["ack_timeout"]),
                            (Open, Input::Fired(Timer::Repeat)) => (Open, &["repeat"]),
                            (Acknowledged, Input::Fired(Timer::Remind)) => {
                                (Acknowledged, &["not_resolved"])
                            }
                            (Open, Input::DeliveryFailing) if pol.is_some() => {
                                (Open, &["delivery_failed"])
                            }
                            (s, _) => (s, &[]),
                        };
                        let case = format!("{kind} {status:?} {input:?} policy={}", pol.is_some());
                        assert_eq!(a.status, want_status, "{case}");
                        assert_eq!(reasons, want, "{case}");
                        if matches!(input, Input::Raise { .. }) && status != Resolved {
                            assert_eq!(a.presses, before.presses + 1, "{case}: counted");
                            assert_eq!(a.priority, Priority::High, "{case}: never downgraded");
                        } else {
                            assert_eq!(a.presses, before.presses, "{case}");
                        }
                        if status == Resolved {
                            assert_eq!(a, before, "{case}: a resolved alert never changes");
                        }
                    }
                }
            }
        }
    }
}
