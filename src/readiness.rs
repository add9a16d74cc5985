//! Readiness (`/readyz`): can every adapter and sink do its job right now?
//!
//! A component with a standing connection (an MQTT adapter, sink or acknowledgement
//! connection, a DC-09 listener) is ready while connected. A sink that connects per delivery
//! (`file`, `webhook`) has nothing to be connected to between deliveries, so it is ready
//! unless its last attempt failed. The journal is ready when a read-only connection can read
//! the outbox and the writer's latest commit succeeded (a full disk makes it not ready for as
//! long as commits fail, [`crate::journal::commits`]). The report carries operational state only: connection flags, times, backlog
//! counts; never device ids, payloads, error texts or anything about residents, so the route
//! can stay as open as `/healthz`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use atgw_sdk::Health;
use atgw_sdk::component::Link;
use serde::Serialize;

use crate::journal::Reader;
use crate::journal::commits::CommitHealth;
use crate::metrics::JournalGauges;

/// What `/readyz` looks at.
#[derive(Debug)]
pub struct Readiness {
    components: BTreeMap<String, Arc<Health>>,
    /// Components that connect per delivery (see the module doc).
    on_demand: BTreeSet<String>,
    sinks: Vec<String>,
    journal: PathBuf,
    commits: Arc<CommitHealth>,
}

/// The whole answer: HTTP 200 when `ready`, else 503.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub ready: bool,
    pub components: BTreeMap<String, ComponentReport>,
}

/// One component's state.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ComponentReport {
    pub ready: bool,
    pub connected: bool,
    /// Last message received from devices (adapters) or over the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<String>,
    /// Sinks: undelivered outbox rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// Sinks: age in seconds of the oldest undelivered event (absent when the outbox is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_s: Option<f64>,
    /// Why it is not ready, in a few words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Readiness {
    /// `components` as the runtime registered them (`adapter:<name>`, `sink:<name>`,
    /// `control:<name>`).
    pub fn new(
        sinks: impl IntoIterator<Item = (String, Link)>,
        components: &BTreeMap<String, Arc<Health>>,
        journal: PathBuf,
        commits: Arc<CommitHealth>,
    ) -> Readiness {
        let sinks: Vec<(String, Link)> = sinks.into_iter().collect();
        let on_demand = sinks
            .iter()
            .filter(|(_, link)| *link == Link::PerDelivery)
            .map(|(name, _)| format!("sink:{name}"))
            .collect();
        Readiness {
            components: components.clone(),
            on_demand,
            sinks: sinks.into_iter().map(|(name, _)| name).collect(),
            journal,
            commits,
        }
    }

    /// Builds the report; reads the journal, so call it off the async workers.
    pub fn report(&self) -> Report {
        let gauges = Reader::open(&self.journal)
            .and_then(|r| JournalGauges::read(&r, &self.sinks, false, jiff::Timestamp::now()));
        let mut components = BTreeMap::new();
        for (name, health) in &self.components {
            let s = health.snapshot();
            let (ready, reason) = if self.on_demand.contains(name) {
                let ok = s.connected || s.errors == 0;
                (ok, (!ok).then(|| "last delivery failed".to_owned()))
            } else {
                (
                    s.connected,
                    (!s.connected).then(|| "not connected".to_owned()),
                )
            };
            let mut c = ComponentReport {
                ready,
                connected: s.connected,
                last_message_at: s.last_message,
                reason,
                ..ComponentReport::default()
            };
            if let (Some(sink), Ok(g)) = (name.strip_prefix("sink:"), &gauges)
                && let Some((depth, oldest)) = g.outbox.get(sink)
            {
                c.backlog = Some(*depth);
                c.oldest_age_s = *oldest;
            }
            components.insert(name.clone(), c);
        }
        let journal = match (&gauges, self.commits.failing_since()) {
            (Ok(_), None) => ComponentReport {
                ready: true,
                connected: true,
                ..ComponentReport::default()
            },
            (Ok(_), Some(since)) => ComponentReport {
                connected: true,
                reason: Some(format!(
                    "commits failing for {}s (disk full?); devices are not acknowledged",
                    jiff::Timestamp::now()
                        .duration_since(since)
                        .as_secs()
                        .max(0)
                )),
                ..ComponentReport::default()
            },
            (Err(e), _) => ComponentReport {
                reason: Some(format!("cannot read the journal: {e}")),
                ..ComponentReport::default()
            },
        };
        components.insert("journal".to_owned(), journal);
        Report {
            ready: components.values().all(|c| c.ready),
            components,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readiness(dir: &std::path::Path, on_demand: &[&str]) -> (Readiness, Arc<Health>) {
        let path = dir.join(crate::journal::FILE_NAME);
        crate::journal::open(&path).unwrap();
        let h = Arc::new(Health::default());
        let mut components = BTreeMap::new();
        components.insert("sink:audit".to_owned(), h.clone());
        let r = Readiness {
            components,
            on_demand: on_demand.iter().map(|s| s.to_string()).collect(),
            sinks: vec!["audit".into()],
            journal: path,
            commits: Arc::default(),
        };
        (r, h)
    }

    #[test]
    fn a_connection_component_is_ready_only_while_connected() {
        let d = tempfile::tempdir().unwrap();
        let (r, h) = readiness(d.path(), &[]);
        let rep = r.report();
        assert!(!rep.ready);
        assert_eq!(
            rep.components["sink:audit"].reason.as_deref(),
            Some("not connected")
        );
        assert_eq!(rep.components["sink:audit"].backlog, Some(0));
        assert!(rep.components["journal"].ready);
        h.set_connected(true);
        assert!(r.report().ready);
    }

    #[test]
    fn an_on_demand_sink_is_ready_until_a_delivery_fails() {
        let d = tempfile::tempdir().unwrap();
        let (r, h) = readiness(d.path(), &["sink:audit"]);
        assert!(r.report().ready, "never tried: ready");
        h.error("cannot write");
        assert!(!r.report().ready, "last attempt failed");
        h.set_connected(true);
        assert!(r.report().ready, "a later delivery succeeded");
    }

    #[test]
    fn the_journal_is_not_ready_while_its_commits_fail() {
        let d = tempfile::tempdir().unwrap();
        let (mut r, h) = readiness(d.path(), &["sink:audit"]);
        let commits = Arc::new(CommitHealth::default());
        r.commits = commits.clone();
        let mut outages = crate::journal::commits::Outages::default();
        outages.failed(jiff::Timestamp::now(), "database or disk is full", &commits);
        let rep = r.report();
        assert!(!rep.ready);
        let j = &rep.components["journal"];
        assert!(!j.ready && j.connected, "readable, not writable: {j:?}");
        assert!(
            j.reason
                .as_deref()
                .unwrap()
                .starts_with("commits failing for"),
            "{j:?}"
        );
        assert!(
            !j.reason.as_deref().unwrap().contains("database or disk"),
            "no error text in the open report"
        );
        outages.committed(jiff::Timestamp::now(), &commits);
        h.set_connected(true);
        assert!(r.report().ready, "ready once a commit succeeds");
    }

    #[test]
    fn an_unreadable_journal_is_not_ready() {
        let d = tempfile::tempdir().unwrap();
        let r = Readiness {
            components: BTreeMap::new(),
            on_demand: BTreeSet::new(),
            sinks: vec![],
            journal: d.path().join("missing").join("atgw.db"),
            commits: Arc::default(),
        };
        let rep = r.report();
        assert!(!rep.ready);
        assert!(!rep.components["journal"].ready);
    }
}
