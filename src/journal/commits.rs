//! Whether the journal takes writes: a run of failed commits (a full disk, an I/O error) as the
//! writer sees it, for `/readyz`, the log, `atgw_journal_commit_failures_total` and the gateway
//! alert about it.
//!
//! While commits fail, nothing can be journaled and so nothing can be sent to a sink either
//! (the outbox lives in the journal, and a gateway alert that bypassed it would be one no
//! person could acknowledge, retried by nobody). So the failure is made visible where it can
//! be while it lasts: `/readyz` reports the journal not ready ([`CommitHealth`]), the counter
//! rises with every refused batch, and the log has one line at the first failure and then one
//! a minute with the count. The gateway alert (`device_fault` on `gateway:<id>:journal`,
//! raised, then cleared because the condition is over) is journaled by the first commit that
//! succeeds, with how long commits failed, how many batches were refused and the error, so it
//! reaches the care team through the outbox like any other alert.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

/// At most one "still failing" log line this often.
pub const LOG_EVERY: Duration = Duration::from_secs(60);
/// Commits must have succeeded this long, without a failure, before an outage is over and its
/// alert is journaled: a full disk where a commit now and then fits into space the WAL already
/// holds is one outage, not one alert per lucky commit.
pub const SETTLE: Duration = Duration::from_secs(5);

/// The writer's verdict on its latest commit, shared with `/readyz`.
#[derive(Debug, Default)]
pub struct CommitHealth {
    /// Wall-clock ms of the first failed commit of the current outage, while the latest
    /// commit failed; 0 while commits succeed.
    failing_since_ms: AtomicI64,
}

impl CommitHealth {
    /// Since when commits have been failing, or `None` while they succeed.
    pub fn failing_since(&self) -> Option<Timestamp> {
        match self.failing_since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }

    fn set(&self, since: Option<Timestamp>) {
        let ms = since.map_or(0, |t| t.as_millisecond().max(1));
        self.failing_since_ms.store(ms, Ordering::Relaxed);
    }
}

/// A run of failed commits, and what to say about it (time passed in, so it is tested without
/// sleeping).
#[derive(Debug, Default)]
pub(crate) struct Outages {
    current: Option<Outage>,
}

#[derive(Debug)]
struct Outage {
    since: Timestamp,
    batches: u64,
    error: String,
    logged: Timestamp,
    /// Failed batches since the last log line.
    unlogged: u64,
    /// The first commit that wrote and succeeded since the latest failure.
    recovered: Option<Timestamp>,
}

/// An outage that is over.
#[derive(Debug, PartialEq)]
pub(crate) struct Ended {
    /// From the first failure to the commit that ended it.
    pub lasted: Duration,
    pub batches: u64,
    /// The latest error.
    pub error: String,
}

impl Outages {
    /// A batch failed to commit with `error`: returns the line to log now, if one is due.
    pub fn failed(&mut self, now: Timestamp, error: &str, health: &CommitHealth) -> Option<String> {
        let Some(o) = &mut self.current else {
            self.current = Some(Outage {
                since: now,
                batches: 1,
                error: error.to_owned(),
                logged: now,
                unlogged: 0,
                recovered: None,
            });
            health.set(Some(now));
            return Some(format!(
                "journal commit failed, nothing from this batch was acknowledged: {error}; devices \
                 get no acknowledgement until commits succeed again (the journal reports not \
                 ready; further failures are counted in atgw_journal_commit_failures_total and \
                 logged once a minute)"
            ));
        };
        o.batches += 1;
        o.recovered = None;
        health.set(Some(o.since));
        error.clone_into(&mut o.error);
        if elapsed(o.logged, now) < LOG_EVERY {
            o.unlogged += 1;
            return None;
        }
        let suppressed = std::mem::take(&mut o.unlogged);
        o.logged = now;
        Some(format!(
            "journal commit failed again, still nothing acknowledged: {error}; failing for {}s, \
             {} batches refused ({suppressed} since the last line)",
            elapsed(o.since, now).as_secs(),
            o.batches
        ))
    }

    /// A batch that wrote something committed: the journal is ready again, and the outage is
    /// over once commits keep succeeding for [`SETTLE`].
    pub fn committed(&mut self, now: Timestamp, health: &CommitHealth) {
        if let Some(o) = &mut self.current
            && o.recovered.is_none()
        {
            o.recovered = Some(now);
            health.set(None);
        }
    }

    /// When the current outage will be over if nothing fails meanwhile (the writer wakes then).
    pub fn settles_at(&self) -> Option<Timestamp> {
        let o = self.current.as_ref()?;
        o.recovered.and_then(|t| t.checked_add(SETTLE).ok())
    }

    /// The outage, once commits have succeeded for [`SETTLE`]; once.
    pub fn settled(&mut self, now: Timestamp) -> Option<Ended> {
        let recovered = self.current.as_ref()?.recovered?;
        if elapsed(recovered, now) < SETTLE {
            return None;
        }
        let o = self.current.take()?;
        Some(Ended {
            lasted: elapsed(o.since, recovered),
            batches: o.batches,
            error: o.error,
        })
    }
}

impl Ended {
    /// The gateway alert about the outage: raised and, since it is over, cleared.
    pub fn alert(&self, device: &str) -> [atgw_sdk::EventDraft; 2] {
        let secs = self.lasted.as_secs();
        let mut raised = atgw_sdk::EventDraft::new(
            atgw_sdk::Kind::DeviceFault,
            atgw_sdk::Phase::Raised,
            device,
            crate::GATEWAY_ADAPTER,
        );
        raised.data.priority = atgw_sdk::Priority::High;
        raised.data.message = Some(format!(
            "Gateway journal could not store events for {secs}s; devices were not acknowledged \
             meanwhile ({} batches refused)",
            self.batches
        ));
        raised.data.codes.vendor = Some(format!(
            "journal commits failed for {secs}s: {}; {} batches refused",
            self.error, self.batches
        ));
        let mut cleared = atgw_sdk::EventDraft::new(
            atgw_sdk::Kind::DeviceFault,
            atgw_sdk::Phase::Cleared,
            device,
            crate::GATEWAY_ADAPTER,
        );
        cleared.data.priority = atgw_sdk::Priority::High;
        cleared.data.message = Some("Gateway journal stores events again".into());
        [raised, cleared]
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn a_run_of_failures_is_logged_once_then_once_a_minute_with_the_count() {
        let health = CommitHealth::default();
        let mut o = Outages::default();
        assert_eq!(health.failing_since(), None);
        assert!(
            o.failed(at(0), "database or disk is full", &health)
                .is_some()
        );
        assert_eq!(health.failing_since(), Some(at(0)));
        let logged = (1..=120)
            .filter_map(|s| o.failed(at(s), "database or disk is full", &health))
            .collect::<Vec<_>>();
        assert_eq!(logged.len(), 2, "one line a minute: {logged:?}");
        assert!(
            logged[0].contains("failing for 60s, 61 batches refused (59 since the last line)"),
            "{}",
            logged[0]
        );
        assert_eq!(
            health.failing_since(),
            Some(at(0)),
            "since the first failure"
        );
    }

    #[test]
    fn commits_that_keep_succeeding_end_the_outage_once_and_say_what_it_was() {
        let health = CommitHealth::default();
        let mut o = Outages::default();
        o.committed(at(0), &health);
        assert_eq!(o.settled(at(100)), None, "no outage, nothing to say");
        o.failed(at(10), "disk I/O error", &health);
        o.failed(at(20), "database or disk is full", &health);
        o.committed(at(42), &health);
        assert_eq!(health.failing_since(), None, "ready again at once");
        assert_eq!(o.settles_at(), Some(at(47)));
        assert_eq!(o.settled(at(46)), None, "not settled yet");
        o.committed(at(46), &health);
        let ended = o.settled(at(47)).unwrap();
        assert_eq!(
            ended,
            Ended {
                lasted: Duration::from_secs(32),
                batches: 2,
                error: "database or disk is full".into(),
            }
        );
        assert_eq!(o.settled(at(48)), None, "ended once");
        assert_eq!(o.settles_at(), None);
        let [raised, cleared] = ended.alert("gateway:gw-test:journal");
        assert_eq!(
            raised.data.codes.vendor.as_deref(),
            Some("journal commits failed for 32s: database or disk is full; 2 batches refused")
        );
        assert_eq!(raised.data.phase, atgw_sdk::Phase::Raised);
        assert_eq!(cleared.data.phase, atgw_sdk::Phase::Cleared);
    }

    #[test]
    fn a_commit_that_fits_between_failures_does_not_end_the_outage() {
        let health = CommitHealth::default();
        let mut o = Outages::default();
        assert!(
            o.failed(at(0), "database or disk is full", &health)
                .is_some()
        );
        o.committed(at(2), &health);
        assert_eq!(health.failing_since(), None);
        assert_eq!(
            o.failed(at(3), "database or disk is full", &health),
            None,
            "the same outage: no new first line"
        );
        assert_eq!(
            health.failing_since(),
            Some(at(0)),
            "not ready again, since the start"
        );
        assert_eq!(o.settled(at(60)), None, "failing again: not over");
        o.committed(at(61), &health);
        let ended = o.settled(at(70)).unwrap();
        assert_eq!((ended.lasted, ended.batches), (Duration::from_secs(61), 2));
    }
}
