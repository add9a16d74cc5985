//! Loss accounting: what the journal holds by the devices' keys ([`JournalView`]), and the
//! comparison of accepted, journaled and delivered messages and alerts ([`Accounting`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::devices::Ledger;
use super::world::World;

/// CloudEvents `source` of each adapter and of alert lifecycle events.
pub(crate) const MQTT_SOURCE: &str = "urn:atgw:gw-test:zigbee";
pub(crate) const DC09_SOURCE: &str = "urn:atgw:gw-test:alarms";
pub(crate) const ALERTS_SOURCE: &str = "urn:atgw:gw-test:alerts";
/// How long the accounting waits for the journal and the sinks to catch up.
pub(crate) const SETTLE: Duration = Duration::from_secs(120);

/// What the journal holds, by the devices' keys.
#[derive(Default, Clone)]
pub(crate) struct JournalView {
    /// Device key → event ids journaled for it.
    pub(crate) by_key: HashMap<String, Vec<String>>,
    /// Alert id → (device id`#`component, kind), from the `alerts` table.
    pub(crate) alerts: HashMap<String, (String, String)>,
    /// Event ids of `raised` lifecycle events (reason "raised"), with their alert id.
    pub(crate) raised: HashMap<String, String>,
    /// Malformed message key → dead letters holding it.
    pub(crate) dead: HashMap<String, usize>,
}

pub(crate) fn scan_journal(db: &Path, ledger: &Ledger) -> JournalView {
    let mut view = JournalView::default();
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return view;
    };
    let _ = c.busy_timeout(Duration::from_secs(5));
    let rows: Vec<(String, String, String)> = c
        .prepare("SELECT id, source, json FROM events")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    for (id, source, json) in rows {
        let Ok(v) = serde_json::from_str::<Value>(&json) else {
            continue;
        };
        let key = match source.as_str() {
            MQTT_SOURCE => v["data"]["raw"]["payload"]["seq"]
                .as_str()
                .map(str::to_owned),
            DC09_SOURCE => v["data"]["raw"]["payload"]
                .as_str()
                .and_then(|m| ledger.dc09_key(m)),
            ALERTS_SOURCE => {
                if is_first_raise(&v) {
                    let alert = v["correlationid"].as_str().unwrap_or_default();
                    view.raised.insert(id.clone(), alert.to_owned());
                }
                None
            }
            _ => None,
        };
        if let Some(key) = key {
            view.by_key.entry(key).or_default().push(id);
        }
    }
    let raws: Vec<Vec<u8>> = c
        .prepare("SELECT raw FROM dead_letters")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    for raw in raws {
        let text = String::from_utf8_lossy(&raw);
        if let Some(key) = text
            .strip_prefix(r#"{"seq":""#)
            .and_then(|t| t.split('"').next())
        {
            *view.dead.entry(key.to_owned()).or_default() += 1;
        }
    }
    view.alerts = c
        // An alert's identity is (device, component, kind): a panel's zones are separate.
        .prepare("SELECT id, device_id || coalesce('#' || component, ''), kind FROM alerts")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    view
}

/// An alert's first `raised` notification (not a repeat, escalation or upgrade).
pub(crate) fn is_first_raise(e: &Value) -> bool {
    e["type"] == "atgw.alert.raised" && e["data"]["alert"]["reason"] == "raised"
}

/// Event ids as one sink received them, with how often.
pub(crate) fn id_counts<'a>(events: impl IntoIterator<Item = &'a Value>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in events {
        if let Some(id) = e["id"].as_str() {
            *m.entry(id.to_owned()).or_default() += 1;
        }
    }
    m
}

/// Lines of the file sink's output that are not JSON (torn or glued together).
pub(crate) fn audit_garbled(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .count()
}

/// The file sink's lines (a line torn by kill -9 is skipped: its row was not released, so it
/// is written again).
pub(crate) fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[derive(Default, Debug)]
pub(crate) struct Accounting {
    /// Accepted messages that became events (malformed ones are counted in `dead_lettered`).
    pub(crate) accepted: usize,
    /// Accepted malformed messages found (once) in `dead_letters`.
    pub(crate) dead_lettered: usize,
    pub(crate) journaled: usize,
    pub(crate) delivered: usize,
    /// Accepted keys not journaled, or journaled and not delivered to every stream sink.
    pub(crate) lost: Vec<String>,
    pub(crate) alerts: usize,
    /// Alerts whose `raised` event did not reach the carers' webhook and upstream.
    pub(crate) alerts_unpaged: Vec<String>,
    pub(crate) dup_alerts: usize,
    pub(crate) dup_alert_detail: Vec<String>,
    pub(crate) redeliveries: usize,
    /// Keys journaled (or dead-lettered) more than once although the device sent them once.
    pub(crate) dup_rows: Vec<String>,
}

/// Accounts for every accepted key. `earlier` is what a previous journal held (the corrupt
/// scenario's first phase, verified before the file was damaged).
pub(crate) fn account(w: &World, earlier: &JournalView) -> Accounting {
    // MQTT: every message the broker routed is owed to atgw, whatever the devices' packet-id
    // pairing saw; a message the pairing calls acknowledged that the broker never routed means
    // the pairing is wrong (and could hide a loss), so it fails the run.
    let witnessed = w.witness.keys();
    let paired = w.ledger.accepted();
    let mispaired: Vec<String> = paired
        .iter()
        .filter(|k| k.starts_with('m') && !witnessed.contains(*k))
        .cloned()
        .collect();
    let sent = w.ledger.sent_keys();
    let mut accepted = paired;
    accepted.extend(witnessed.into_iter().filter(|k| sent.contains(k)));
    let resent = w.ledger.resent_keys();
    let mut j = scan_journal(&w.journal_path(), &w.ledger);
    for (k, ids) in &earlier.by_key {
        j.by_key.entry(k.clone()).or_default().extend(ids.clone());
    }
    for (k, n) in &earlier.dead {
        *j.dead.entry(k.clone()).or_default() += n;
    }
    j.raised.extend(earlier.raised.clone());
    let upstream = w.upstream.events();
    let audit = audit_events(&w.audit);
    let hook = w.hook.delivered();
    let up_ids = id_counts(&upstream);
    let audit_ids = id_counts(&audit);
    let mut hook_ids: HashMap<String, usize> = HashMap::new();
    for (id, _) in &hook {
        *hook_ids.entry(id.clone()).or_default() += 1;
    }

    let malformed = w.ledger.malformed();
    let mut a = Accounting {
        alerts: j.alerts.len(),
        ..Default::default()
    };
    for key in mispaired {
        a.lost.push(format!(
            "{key}: acknowledged by the pairing, never routed by the broker (pairing wrong)"
        ));
    }
    for key in accepted.iter().filter(|k| malformed.contains(*k)) {
        match j.dead.get(key).copied().unwrap_or(0) {
            0 => a.lost.push(format!("{key}: malformed, not dead-lettered")),
            1 => a.dead_lettered += 1,
            // As for events below: an MQTT device's replay is a new QoS 1 message.
            _ if resent.contains(key) && !key.starts_with('d') => a.dead_lettered += 1,
            n => a.dup_rows.push(format!("{key}: {n} dead letters")),
        }
    }
    for key in accepted.iter().filter(|k| !malformed.contains(*k)) {
        a.accepted += 1;
        let Some(ids) = j.by_key.get(key) else {
            a.lost.push(format!("{key}: not journaled"));
            continue;
        };
        a.journaled += 1;
        // A DC-09 retransmission is the same frame, which the receiver must recognise: one
        // row whatever the panel resent. An MQTT device's replay after a reconnect is a new
        // QoS 1 message to the broker, so it may be journaled again.
        let may_repeat = resent.contains(key) && !key.starts_with('d');
        if ids.len() > 1 && !may_repeat {
            a.dup_rows.push(format!("{key}: {} rows", ids.len()));
        }
        // Delivered means every row journaled for it reached both stream sinks.
        if ids
            .iter()
            .all(|id| up_ids.contains_key(id) && audit_ids.contains_key(id))
        {
            a.delivered += 1;
        } else {
            let up = ids.iter().all(|id| up_ids.contains_key(id));
            let file = ids.iter().all(|id| audit_ids.contains_key(id));
            a.lost
                .push(format!("{key}: journaled, upstream={up}, file={file}"));
        }
    }

    // Every alert pages the carers once it is raised; one alert per incident.
    let raised_by_alert: HashMap<&str, &str> = j
        .raised
        .iter()
        .map(|(event, alert)| (alert.as_str(), event.as_str()))
        .collect();
    for alert in j.alerts.keys() {
        let paged = raised_by_alert
            .get(alert.as_str())
            .is_some_and(|e| hook_ids.contains_key(*e) && up_ids.contains_key(*e));
        if !paged {
            a.alerts_unpaged.push(alert.clone());
        }
    }
    let mut per_incident: HashMap<(String, String), usize> = HashMap::new();
    for (device, kind) in j.alerts.values() {
        *per_incident
            .entry((device.clone(), kind.clone()))
            .or_default() += 1;
    }
    for ((device, kind), n) in &per_incident {
        if *n > 1 {
            a.dup_alerts += n - 1;
            a.dup_alert_detail
                .push(format!("{device}/{kind}: {n} alerts"));
        }
    }
    // Distinct `raised` events per alert, and per incident, as anyone received them.
    let mut raised_ids: HashMap<String, HashSet<String>> = HashMap::new();
    let mut raised_incidents: HashMap<(String, String), HashSet<String>> = HashMap::new();
    let seen = upstream
        .iter()
        .chain(audit.iter())
        .chain(hook.iter().map(|(_, v)| v))
        .filter(|e| is_first_raise(e));
    for e in seen {
        let (Some(id), Some(alert)) = (e["id"].as_str(), e["correlationid"].as_str()) else {
            continue;
        };
        raised_ids
            .entry(alert.to_owned())
            .or_default()
            .insert(id.to_owned());
        let mut device = e["data"]["device"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(c) = e["data"]["device"]["component"].as_str() {
            device = format!("{device}#{c}");
        }
        let kind = e["data"]["kind"].as_str().unwrap_or_default();
        raised_incidents
            .entry((device, kind.to_owned()))
            .or_default()
            .insert(alert.to_owned());
    }
    for (alert, ids) in &raised_ids {
        if ids.len() > 1 {
            a.dup_alerts += ids.len() - 1;
            a.dup_alert_detail
                .push(format!("alert {alert}: {} raised events", ids.len()));
        }
    }
    for ((device, kind), alerts) in &raised_incidents {
        let in_table = per_incident
            .get(&(device.clone(), kind.clone()))
            .copied()
            .unwrap_or(0);
        if alerts.len() > 1 && alerts.len() > in_table {
            a.dup_alerts += alerts.len() - in_table.max(1);
            a.dup_alert_detail.push(format!(
                "{device}/{kind}: raised under {} alert ids",
                alerts.len()
            ));
        }
    }
    a.redeliveries = [&up_ids, &audit_ids, &hook_ids]
        .iter()
        .flat_map(|m| m.values())
        .map(|n| n - 1)
        .sum();
    a.lost.sort();
    a
}

/// Waits until nothing accepted is missing from the journal or the sinks (or `SETTLE`
/// passes), and returns the final accounting.
pub(crate) async fn settle(w: &World, earlier: &JournalView) -> Accounting {
    let deadline = Instant::now() + SETTLE;
    loop {
        let a = tokio::task::block_in_place(|| account(w, earlier));
        let done = a.lost.is_empty() && a.alerts_unpaged.is_empty();
        if done || Instant::now() >= deadline {
            // Let a late redelivery or a (wrong) second raise arrive before the final count.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return tokio::task::block_in_place(|| account(w, earlier));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
