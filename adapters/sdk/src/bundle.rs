//! Bundling: a sink that talks to people (email, SMS) may hold notifications bound for the same
//! people for a short window and send them as one message (issue 19). Pure: no I/O, time passed
//! in; the sink owns the timer and the sending.
//!
//! The outbox contract does not change, and that is what keeps it safe: a held delivery is one
//! the sink has taken and not yet answered, so its row stays owed in the journal. Each member of
//! a bundle is answered on its own (`Delivered` when the server accepted the bundled message,
//! `Retry` otherwise), so a refused bundle is retried and escalates row by row exactly as single
//! notifications do. A crash while holding loses nothing: after the restart the rows are offered
//! again and go out, possibly as a fresh bundle.
//!
//! The rules, as on-call tools (Alertmanager's `group_wait`, PagerDuty's notification bundling)
//! apply them:
//! - a notification is held at most [`BundlePolicy::window`] after the **first** of its bundle
//!   (a steady trickle never postpones the message indefinitely);
//! - only priorities in [`BundlePolicy::priorities`] are held (default medium and low); any
//!   other is sent at once, and flushes the bundle pending for the same people with it: their
//!   phone buzzes now anyway, so they get the whole picture;
//! - at most [`BundlePolicy::max`] deliveries are held by one sink; reaching it flushes the
//!   oldest bundle, so held rows never fill the sink's in-flight window (see
//!   [`BundlePolicy::extra_window`]).
//!
//! "The same people" is the key the sink gives: its whole audience for a delivery (the sink's
//! own recipients plus whoever is on shift), so one message is one set of recipients.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::event::Priority;
use crate::sink::{Delivery, Outcome};

/// Longest `bundle_window` accepted: bundling trades a delay for less noise, and a delay beyond
/// a few minutes is no longer a trade a care team should make.
pub const MAX_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Most deliveries one sink may hold, at most (`bundle_max`).
pub const MAX_HELD: usize = 50;

/// Which notifications a sink holds, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundlePolicy {
    /// Zero: bundling is off, every notification goes out at once.
    pub window: Duration,
    /// Priorities that may be held.
    pub priorities: Vec<Priority>,
    /// Deliveries held at most.
    pub max: usize,
}

/// The priorities bundled unless configured: medium and low. High is never delayed unless a
/// site lists it explicitly.
pub fn default_priorities() -> Vec<Priority> {
    vec![Priority::Medium, Priority::Low]
}

/// `bundle_max` unless configured.
pub const DEFAULT_MAX: usize = 10;

impl BundlePolicy {
    pub fn off() -> Self {
        BundlePolicy {
            window: Duration::ZERO,
            priorities: default_priorities(),
            max: DEFAULT_MAX,
        }
    }

    pub fn is_on(&self) -> bool {
        !self.window.is_zero()
    }

    /// Whether a notification of this priority may wait for others.
    pub fn may_hold(&self, p: Priority) -> bool {
        self.is_on() && self.priorities.contains(&p)
    }

    /// Slots to add to the sink's in-flight window, so rows it holds never take the slot a
    /// high-priority alert needs.
    pub fn extra_window(&self) -> usize {
        if self.is_on() { self.max } else { 0 }
    }

    /// Checks the three keys; `Err((key, problem))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.window > MAX_WINDOW {
            return Err((
                "bundle_window",
                format!(
                    "must be at most {}s; a longer hold delays a carer's notification too much",
                    MAX_WINDOW.as_secs()
                ),
            ));
        }
        if self.is_on() && self.priorities.is_empty() {
            return Err((
                "bundle_priorities",
                "must list at least one priority (e.g. [\"medium\", \"low\"]) when bundle_window is set".into(),
            ));
        }
        if self.max < 2 || self.max > MAX_HELD {
            return Err(("bundle_max", format!("must be between 2 and {MAX_HELD}")));
        }
        Ok(())
    }
}

/// Deliveries to send as one message (one member: an ordinary single message).
pub type Group = Vec<Delivery>;

struct Pending {
    due: Instant,
    members: Group,
}

/// The bundles a sink is holding, by audience key.
pub struct Bundler<K> {
    policy: BundlePolicy,
    pending: BTreeMap<K, Pending>,
    held: usize,
}

impl<K: Ord + Clone> Bundler<K> {
    pub fn new(policy: BundlePolicy) -> Self {
        Bundler {
            policy,
            pending: BTreeMap::new(),
            held: 0,
        }
    }

    pub fn policy(&self) -> &BundlePolicy {
        &self.policy
    }

    /// Deliveries held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes one delivery for the people `key`: what to send now, in order (a notification
    /// that may not wait comes first, then the bundle it flushes).
    pub fn offer(&mut self, key: K, d: Delivery, now: Instant) -> Vec<Group> {
        if !self.policy.may_hold(d.priority) {
            let mut out = vec![vec![d]];
            if let Some(p) = self.pending.remove(&key) {
                self.held -= p.members.len();
                out.push(p.members);
            }
            return out;
        }
        let window = self.policy.window;
        self.pending
            .entry(key)
            .or_insert_with(|| Pending {
                due: now + window,
                members: Vec::new(),
            })
            .members
            .push(d);
        self.held += 1;
        if self.held >= self.policy.max {
            return self.oldest().into_iter().collect();
        }
        Vec::new()
    }

    /// When the next bundle is due, if one is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// The bundles whose window has ended by `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Group> {
        let keys: Vec<K> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter().filter_map(|k| self.take(&k)).collect()
    }

    /// Every bundle held, for shutdown.
    pub fn take_all(&mut self) -> Vec<Group> {
        self.held = 0;
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|p| p.members)
            .collect()
    }

    fn oldest(&mut self) -> Option<Group> {
        let key = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.due)
            .map(|(k, _)| k.clone())?;
        self.take(&key)
    }

    fn take(&mut self, key: &K) -> Option<Group> {
        let p = self.pending.remove(key)?;
        self.held -= p.members.len();
        Some(p.members)
    }
}

/// Which rows ride on which bundled message. A bundle is sent as one attempt answered for its
/// lead row (the lowest outbox id); the others follow it, so every path that answers the lead
/// (delivered, refused, a cancelled or panicked attempt, a lost session) answers them too.
#[derive(Debug, Default)]
pub struct Followers {
    by_lead: HashMap<i64, Vec<i64>>,
}

/// What one lead outcome answers.
#[derive(Debug, PartialEq)]
pub struct Answered {
    /// The lead's outcome, then one per follower.
    pub outcomes: Vec<Outcome>,
    /// The bundle's size when the lead had followers.
    pub bundle: Option<usize>,
}

impl Followers {
    /// Orders a group by outbox id and records its followers; returns it, lead first.
    pub fn follow(&mut self, mut group: Group) -> Group {
        group.sort_by_key(|d| d.outbox_id);
        if let [lead, rest @ ..] = group.as_slice()
            && !rest.is_empty()
        {
            self.by_lead
                .insert(lead.outbox_id, rest.iter().map(|d| d.outbox_id).collect());
        }
        group
    }

    /// Rows riding on bundles now (not counting their leads).
    pub fn len(&self) -> usize {
        self.by_lead.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_lead.is_empty()
    }

    /// The outcome for a lead, copied to each of its followers.
    pub fn answer(&mut self, o: Outcome) -> Answered {
        let lead = match &o {
            Outcome::Delivered(id) => *id,
            Outcome::Retry { outbox_id, .. } | Outcome::Disabled { outbox_id, .. } => *outbox_id,
        };
        let Some(rest) = self.by_lead.remove(&lead) else {
            return Answered {
                outcomes: vec![o],
                bundle: None,
            };
        };
        let copy = |id: i64| match &o {
            Outcome::Delivered(_) => Outcome::Delivered(id),
            Outcome::Retry { after, reason, .. } => Outcome::Retry {
                outbox_id: id,
                after: *after,
                reason: reason.clone(),
            },
            Outcome::Disabled { reason, .. } => Outcome::Disabled {
                outbox_id: id,
                reason: reason.clone(),
            },
        };
        let mut outcomes: Vec<Outcome> = rest.iter().map(|&id| copy(id)).collect();
        outcomes.insert(0, o);
        Answered {
            bundle: Some(outcomes.len()),
            outcomes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    fn d(id: i64, priority: Priority) -> Delivery {
        Delivery {
            outbox_id: id,
            event_id: format!("ev-{id}").into(),
            kind: Kind::LowBattery,
            priority,
            device_id: "dev".into(),
            json: "{}".into(),
            attempt: 0,
            alert_id: None,
            lifecycle: true,
            recipients: Default::default(),
        }
    }

    fn on() -> BundlePolicy {
        BundlePolicy {
            window: Duration::from_secs(120),
            ..BundlePolicy::off()
        }
    }

    fn ids(groups: &[Group]) -> Vec<Vec<i64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|d| d.outbox_id).collect())
            .collect()
    }

    #[test]
    fn off_sends_everything_at_once() {
        let mut b = Bundler::new(BundlePolicy::off());
        let t = Instant::now();
        assert_eq!(ids(&b.offer("sam", d(1, Priority::Medium), t)), [[1]]);
        assert_eq!(ids(&b.offer("sam", d(2, Priority::Low), t)), [[2]]);
        assert_eq!(b.held(), 0);
        assert_eq!(b.next_due(), None);
    }

    #[test]
    fn medium_and_low_wait_at_most_the_window_after_the_first() {
        let mut b = Bundler::new(on());
        let t = Instant::now();
        assert!(b.offer("sam", d(1, Priority::Medium), t).is_empty());
        let later = t + Duration::from_secs(100);
        assert!(b.offer("sam", d(2, Priority::Low), later).is_empty());
        // The window runs from the first, not the last.
        assert_eq!(b.next_due(), Some(t + Duration::from_secs(120)));
        assert!(b.due(t + Duration::from_secs(119)).is_empty());
        assert_eq!(ids(&b.due(t + Duration::from_secs(120))), [[1, 2]]);
        assert_eq!(b.held(), 0);
        assert_eq!(b.next_due(), None);
    }

    #[test]
    fn other_people_have_their_own_bundle() {
        let mut b = Bundler::new(on());
        let t = Instant::now();
        assert!(b.offer("sam", d(1, Priority::Medium), t).is_empty());
        assert!(
            b.offer("kim", d(2, Priority::Medium), t + Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(ids(&b.due(t + Duration::from_secs(120))), [[1]]);
        assert_eq!(ids(&b.due(t + Duration::from_secs(121))), [[2]]);
    }

    #[test]
    fn high_is_never_held_and_flushes_that_persons_bundle() {
        let mut b = Bundler::new(on());
        let t = Instant::now();
        assert!(b.offer("sam", d(1, Priority::Medium), t).is_empty());
        assert!(b.offer("kim", d(2, Priority::Medium), t).is_empty());
        assert_eq!(
            ids(&b.offer("sam", d(3, Priority::High), t)),
            [vec![3], vec![1]]
        );
        assert_eq!(b.held(), 1);
        // High with nothing pending: alone, at once.
        assert_eq!(ids(&b.offer("sam", d(4, Priority::High), t)), [[4]]);
    }

    #[test]
    fn high_is_held_only_when_listed() {
        let mut b = Bundler::new(BundlePolicy {
            priorities: vec![Priority::High, Priority::Medium],
            ..on()
        });
        let t = Instant::now();
        assert!(b.offer("sam", d(1, Priority::High), t).is_empty());
        assert_eq!(
            ids(&b.offer("sam", d(2, Priority::Low), t)),
            [vec![2], vec![1]]
        );
    }

    #[test]
    fn reaching_max_flushes_the_oldest_bundle() {
        let mut b = Bundler::new(BundlePolicy { max: 3, ..on() });
        let t = Instant::now();
        assert!(b.offer("sam", d(1, Priority::Medium), t).is_empty());
        assert!(
            b.offer("kim", d(2, Priority::Medium), t + Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(
            ids(&b.offer("kim", d(3, Priority::Medium), t + Duration::from_secs(2))),
            [[1]]
        );
        assert_eq!(b.held(), 2);
        assert_eq!(ids(&b.take_all()), [[2, 3]]);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn followers_get_their_leads_outcome() {
        let mut f = Followers::default();
        let g = f.follow(vec![
            d(7, Priority::Low),
            d(3, Priority::Medium),
            d(5, Priority::Low),
        ]);
        assert_eq!(ids(&[g]), [[3, 5, 7]]);
        assert_eq!(f.len(), 2);
        let a = f.answer(Outcome::Retry {
            outbox_id: 3,
            after: Some(Duration::from_secs(5)),
            reason: "451".into(),
        });
        assert_eq!(a.bundle, Some(3));
        let rows: Vec<i64> = a
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Retry {
                    outbox_id, after, ..
                } => {
                    assert_eq!(*after, Some(Duration::from_secs(5)));
                    *outbox_id
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(rows, [3, 5, 7]);
        assert!(f.is_empty());
        // A single one is answered as it is.
        let g = f.follow(vec![d(9, Priority::Low)]);
        assert_eq!(g.len(), 1);
        assert_eq!(
            f.answer(Outcome::Delivered(9)),
            Answered {
                outcomes: vec![Outcome::Delivered(9)],
                bundle: None
            }
        );
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(BundlePolicy::off().validate(), Ok(()));
        let long = BundlePolicy {
            window: MAX_WINDOW + Duration::from_secs(1),
            ..on()
        };
        assert_eq!(long.validate().unwrap_err().0, "bundle_window");
        let none = BundlePolicy {
            priorities: vec![],
            ..on()
        };
        assert_eq!(none.validate().unwrap_err().0, "bundle_priorities");
        let one = BundlePolicy { max: 1, ..on() };
        assert_eq!(one.validate().unwrap_err().0, "bundle_max");
        assert_eq!(on().extra_window(), DEFAULT_MAX);
        assert_eq!(BundlePolicy::off().extra_window(), 0);
    }
}
