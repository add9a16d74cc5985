//! What the console shows, read from the journal: open alerts with who was told and their
//! history, the alert transitions after a sequence (the live stream's replay), and devices
//! (with their offline history, [`super::offline`]).
//!
//! Every transition is a journaled lifecycle event carrying its alert's id
//! (`correlation_id`), so the journal's own sequence is the stream's: a page that saw up to
//! `seq` N asks for what came after N and misses nothing.

use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::Value;

use crate::alerts::AlertView;

/// An alert as the console draws it.
#[derive(Clone, Debug, Serialize)]
pub struct ConsoleAlert {
    #[serde(flatten)]
    pub alert: AlertView,
    /// "Emergency button pressed": the kind in a carer's words.
    pub label: String,
    /// The resident's pseudonymous id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    /// Routes told so far.
    pub told: Vec<String>,
    pub history: Vec<HistoryItem>,
}

/// One transition of an alert.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistoryItem {
    pub seq: i64,
    pub at: String,
    /// raised, acknowledged, escalated, resolved, cleared.
    pub phase: String,
    /// Why (notified, escalated, reminder, repeat, …), from the lifecycle event.
    pub reason: String,
    pub level: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The line the pagers got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One transition after a sequence, with its alert as it is now.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub seq: i64,
    pub item: HistoryItem,
    pub alert: ConsoleAlert,
}

fn history_item(seq: i64, json: &str) -> HistoryItem {
    let v: Value = serde_json::from_str(json).unwrap_or_default();
    let d = &v["data"];
    let a = &d["alert"];
    let s = |v: &Value| v.as_str().map(str::to_owned);
    HistoryItem {
        seq,
        at: v["time"].as_str().unwrap_or_default().to_owned(),
        phase: d["phase"].as_str().unwrap_or_default().to_owned(),
        reason: a["reason"].as_str().unwrap_or_default().to_owned(),
        level: a["level"].as_u64().unwrap_or_default(),
        by: s(&a["by"]),
        outcome: s(&a["outcome"]),
        note: s(&a["note"]),
        message: s(&d["message"]),
    }
}

fn history(conn: &Connection, alert: &str) -> rusqlite::Result<Vec<HistoryItem>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, json FROM events WHERE correlation_id = ?1 ORDER BY seq LIMIT 200",
    )?;
    let rows = stmt.query_map([alert], |r| {
        Ok(history_item(r.get(0)?, &r.get::<_, String>(1)?))
    })?;
    rows.collect()
}

fn decorate(conn: &Connection, alert: AlertView) -> rusqlite::Result<ConsoleAlert> {
    let (told, snapshot): (Option<String>, String) = conn
        .prepare_cached("SELECT told, snapshot FROM alerts WHERE id = ?1")?
        .query_row([&alert.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let told = told
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let snap: Value = serde_json::from_str(&snapshot).unwrap_or_default();
    let label = alert
        .kind
        .parse::<atgw_sdk::event::Kind>()
        .map(|k| k.label().to_owned())
        .unwrap_or_else(|_| alert.kind.replace('_', " "));
    Ok(ConsoleAlert {
        history: history(conn, &alert.id)?,
        label,
        resident: snap["resident"]["id"].as_str().map(str::to_owned),
        told,
        alert,
    })
}

/// The newest committed sequence and the open alerts at that point (one read transaction, so
/// the stream resumes exactly after what the snapshot shows).
pub fn snapshot(conn: &Connection) -> rusqlite::Result<(i64, Vec<ConsoleAlert>)> {
    conn.execute_batch("BEGIN")?;
    let out = (|| {
        let seq: i64 =
            conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
        let alerts = crate::alerts::list(conn, false, 500)?
            .into_iter()
            .map(|a| decorate(conn, a))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((seq, alerts))
    })();
    let _ = conn.execute_batch("COMMIT");
    out
}

/// Alert transitions after `after`, oldest first, at most `limit`.
pub fn transitions_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Transition>> {
    let rows: Vec<(i64, String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, correlation_id, json FROM events
             WHERE seq > ?1 AND correlation_id IS NOT NULL ORDER BY seq LIMIT ?2",
        )?;
        stmt.query_map(params![after, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(rows.len());
    for (seq, id, json) in rows {
        let Some(view) = crate::alerts::load_view(conn, &id)? else {
            continue;
        };
        out.push(Transition {
            seq,
            item: history_item(seq, &json),
            alert: decorate(conn, view)?,
        });
    }
    Ok(out)
}

/// A device as the console's devices view draws it.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceRow {
    pub id: String,
    pub adapter: String,
    pub registered: bool,
    pub last_seen: String,
    pub offline: bool,
    /// Its check-in interval, when supervised (`check_in`), e.g. "25h".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_in: Option<String>,
    pub area: Option<String>,
    pub room: Option<String>,
    pub battery: Option<Value>,
    pub signal: Option<Value>,
    /// Its latest times offline, newest first ([`super::offline`]).
    pub offline_episodes: Vec<super::offline::Episode>,
}

/// Devices heard from, with their last battery and signal readings and where they are.
pub fn devices(
    conn: &Connection,
    registry: &std::collections::HashMap<String, crate::registry::DeviceConfig>,
) -> rusqlite::Result<Vec<DeviceRow>> {
    let listed: Vec<(String, String, bool, i64, bool)> = {
        let mut stmt = conn.prepare(
            "SELECT device_id, adapter, registered, last_seen_ms, offline_raised FROM devices
             ORDER BY device_id LIMIT 2000",
        )?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(listed.len());
    for (id, adapter, registered, seen_ms, offline) in listed {
        let recent: Vec<String> = conn
            .prepare_cached(
                "SELECT json FROM events WHERE device_id = ?1 ORDER BY seq DESC LIMIT 30",
            )?
            .query_map([&id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let recent: Vec<Value> = recent
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        let find = |key: &str| {
            recent
                .iter()
                .find(|v| v["data"][key].is_object())
                .map(|v| v["data"][key].clone())
        };
        let entry = registry.get(&id);
        let location = recent.first().map(|v| v["data"]["location"].clone());
        let loc = |k: &str| {
            location
                .as_ref()
                .and_then(|l| l[k].as_str())
                .map(str::to_owned)
        };
        out.push(DeviceRow {
            last_seen: jiff::Timestamp::from_millisecond(seen_ms)
                .map(|t| atgw_sdk::event::rfc3339_ms::format(&t))
                .unwrap_or_default(),
            check_in: entry
                .and_then(|d| d.check_in)
                .map(|d| humantime::format_duration(d).to_string()),
            area: entry
                .and_then(|d| d.location.area.clone())
                .or_else(|| loc("area")),
            room: entry
                .and_then(|d| d.location.room.clone())
                .or_else(|| loc("room")),
            battery: find("battery"),
            signal: find("signal"),
            offline_episodes: super::offline::recent(conn, &id)?,
            id,
            adapter,
            registered,
            offline,
        });
    }
    Ok(out)
}
