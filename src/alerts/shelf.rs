//! Shelving: a person holds a device's *technical* alerts — battery, offline, tamper, device
//! and power faults — for a bounded time, with a reason, so a sensor waiting for a technician
//! does not page the night staff every few minutes.
//!
//! The rules, each in one place here:
//! - **Only technical kinds** ([`SHELVABLE`]). A resident's alarm (pendant, pull cord, fall,
//!   vital signs) and every life-safety kind (smoke, CO, gas) from a shelved device is alerted
//!   and paged as always: shelving a device never hides a person who needs help. A site that
//!   wants a false-triggering bed sensor quiet takes it out of the registry (a deliberate,
//!   reviewed configuration change), not off a shelf anyone with the API can reach.
//! - **Always an end.** `for` is required and at most `[alerts] max_shelve` (default 24 h); the
//!   end is a journal row, so it comes on time after a restart or `kill -9` (at once if it fell
//!   due while the gateway was down).
//! - **Announced.** Start and end are journaled as `shelved` events of the device (`raised`,
//!   `cleared`, with who, why and until when, placed by the registry) and sent to
//!   `[alerts] default_route` (every route when unset) and the stream sinks.
//! - **Held, not dropped.** While shelved, the device's technical alerts are still opened,
//!   updated and journaled (stream sinks see them) but no route is told and they do not
//!   escalate; alerts already open when the shelf starts stop escalating. When the shelf ends,
//!   every one still open is raised to its routes (`reason = "unshelved"`) and escalates from
//!   then; one acknowledged meanwhile gets its reminders back; one the device cleared stays
//!   quiet.

use std::time::Duration;

use atgw_sdk::event::{EventDraft, Kind, Phase, Priority};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::AlertError;
use crate::pipeline::Batch;

/// Kinds a shelf holds: what a device says about itself, never about a person.
pub const SHELVABLE: &[Kind] = &[
    Kind::Tamper,
    Kind::LowBattery,
    Kind::DeviceOffline,
    Kind::DeviceFault,
    Kind::PowerFault,
];

/// The longest shelf unless `[alerts] max_shelve` says otherwise.
pub const DEFAULT_MAX_SHELVE: Duration = Duration::from_secs(24 * 3600);

pub fn shelvable(kind: Kind) -> bool {
    SHELVABLE.contains(&kind)
}

/// A person's request.
#[derive(Clone, Debug, PartialEq)]
pub enum ShelfCommand {
    Shelve {
        device: String,
        by: String,
        reason: String,
        duration: Duration,
    },
    Unshelve {
        device: String,
        by: String,
    },
}

/// A shelf as the API and CLI show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShelfView {
    pub id: String,
    pub device_id: String,
    pub by: String,
    pub reason: String,
    pub started_at: String,
    pub until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Who took it off early (absent: it expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
}

const VIEW_COLUMNS: &str = "id, device_id, by, reason, started_ms, until_ms, ended_ms, ended_by";

fn view_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShelfView> {
    let time = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| atgw_sdk::event::rfc3339_ms::format(&t))
            .unwrap_or_default()
    };
    Ok(ShelfView {
        id: r.get(0)?,
        device_id: r.get(1)?,
        by: r.get(2)?,
        reason: r.get(3)?,
        started_at: time(r.get(4)?),
        until: time(r.get(5)?),
        ended_at: r.get::<_, Option<i64>>(6)?.map(time),
        ended_by: r.get(7)?,
    })
}

/// Shelves not yet ended, soonest end first.
pub fn live(conn: &Connection) -> rusqlite::Result<Vec<ShelfView>> {
    conn.prepare_cached(&format!(
        "SELECT {VIEW_COLUMNS} FROM shelves WHERE ended_ms IS NULL ORDER BY until_ms"
    ))?
    .query_map([], view_from)?
    .collect()
}

/// Whether `device` has a live shelf (its technical alerts are held).
pub(crate) fn is_shelved(b: &Batch<'_>, device: &str) -> rusqlite::Result<bool> {
    b.tx.prepare_cached("SELECT 1 FROM shelves WHERE device_id = ?1 AND ended_ms IS NULL")?
        .query_row([device], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

/// When the next shelf ends (ms since the epoch).
pub(crate) fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT min(until_ms) FROM shelves WHERE ended_ms IS NULL")?
        .query_row([], |r| r.get(0))
}

fn check(by: &str, reason: Option<&str>) -> Result<(), AlertError> {
    if by.trim().is_empty() || by.len() > 200 {
        return Err(AlertError::Invalid(
            "`by` must name who acted (1 to 200 characters)".into(),
        ));
    }
    if let Some(r) = reason
        && (r.trim().is_empty() || r.len() > 200)
    {
        return Err(AlertError::Invalid(
            "`reason` must say why (1 to 200 characters): it is announced and kept".into(),
        ));
    }
    Ok(())
}

/// Applies a person's request in the open transaction.
pub(crate) fn on_command(
    b: &mut Batch<'_>,
    cmd: ShelfCommand,
) -> rusqlite::Result<Result<ShelfView, AlertError>> {
    let now_ms = b.now.as_millisecond();
    match cmd {
        ShelfCommand::Shelve {
            device,
            by,
            reason,
            duration,
        } => {
            if let Err(e) = check(&by, Some(&reason)) {
                return Ok(Err(e));
            }
            let max = b.setup.policies.max_shelve;
            if duration < Duration::from_secs(1) || duration > max {
                return Ok(Err(AlertError::Invalid(format!(
                    "`for` must be between 1 s and [alerts] max_shelve ({}): a shelf always ends",
                    super::span(i64::try_from(max.as_millis()).unwrap_or(i64::MAX))
                ))));
            }
            if b.setup.registry.find(&device).is_none() {
                return Ok(Err(AlertError::UnknownDevice(device)));
            }
            let until_ms =
                now_ms.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
            // A second shelf of a shelved device replaces the first (a new end and reason).
            b.tx.prepare_cached(
                "UPDATE shelves SET ended_ms = ?2, ended_by = ?3 WHERE device_id = ?1 AND ended_ms IS NULL",
            )?
            .execute(params![device, now_ms, by])?;
            let id = uuid::Uuid::now_v7().to_string();
            b.tx.prepare_cached(
                "INSERT INTO shelves (id, device_id, by, reason, started_ms, until_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![id, device, by, reason, now_ms, until_ms])?;
            hold(b, &device)?;
            tracing::info!(device = %device, by = %by, until_ms, "technical alerts shelved");
            let message = format!(
                "Battery, offline, tamper and fault alerts of {device} shelved for {} by {by}: \
                 {reason} (resident alarms still page)",
                super::span(until_ms - now_ms)
            );
            announce(b, &device, Phase::Raised, message)?;
            Ok(load(b.tx, &id)?.ok_or(AlertError::Storage("shelf not written".into())))
        }
        ShelfCommand::Unshelve { device, by } => {
            if let Err(e) = check(&by, None) {
                return Ok(Err(e));
            }
            let Some(id) = b
                .tx
                .prepare_cached("SELECT id FROM shelves WHERE device_id = ?1 AND ended_ms IS NULL")?
                .query_row([&device], |r| r.get::<_, String>(0))
                .optional()?
            else {
                return Ok(Err(AlertError::NotShelved(device)));
            };
            end(b, &id, Some(&by))?;
            Ok(load(b.tx, &id)?.ok_or(AlertError::Storage("shelf not found".into())))
        }
    }
}

fn load(conn: &Connection, id: &str) -> rusqlite::Result<Option<ShelfView>> {
    conn.prepare_cached(&format!("SELECT {VIEW_COLUMNS} FROM shelves WHERE id = ?1"))?
        .query_row([id], view_from)
        .optional()
}

/// Ends every shelf that is due, and releases alerts held by a shelf that no longer exists
/// (its row lost with a damaged journal page: held alerts must never stay held for ever).
pub(crate) fn end_due(b: &mut Batch<'_>) -> rusqlite::Result<()> {
    let now_ms = b.now.as_millisecond();
    let due: Vec<String> =
        b.tx.prepare_cached("SELECT id FROM shelves WHERE ended_ms IS NULL AND until_ms <= ?1")?
            .query_map([now_ms], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    for id in due {
        end(b, &id, None)?;
    }
    let orphans: Vec<String> =
        b.tx.prepare_cached(
            "SELECT DISTINCT device_id FROM alerts a WHERE shelved = 1 AND NOT EXISTS
               (SELECT 1 FROM shelves s WHERE s.device_id = a.device_id AND s.ended_ms IS NULL)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for device in orphans {
        super::release_shelved(b, &device)?;
    }
    Ok(())
}

fn end(b: &mut Batch<'_>, id: &str, by: Option<&str>) -> rusqlite::Result<()> {
    let now_ms = b.now.as_millisecond();
    let (device, shelved_by, reason, started_ms): (String, String, String, i64) =
        b.tx.prepare_cached("SELECT device_id, by, reason, started_ms FROM shelves WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    b.tx.prepare_cached("UPDATE shelves SET ended_ms = ?2, ended_by = ?3 WHERE id = ?1")?
        .execute(params![id, now_ms, by])?;
    tracing::info!(device = %device, early_by = by, "shelf ended");
    let how = match by {
        Some(p) => format!("taken off the shelf by {p}"),
        None => "off the shelf (its time is up)".to_owned(),
    };
    let message = format!(
        "Technical alerts of {device} {how}; shelved {} ago by {shelved_by}: {reason}",
        super::span(now_ms - started_ms)
    );
    announce(b, &device, Phase::Cleared, message)?;
    super::release_shelved(b, &device)
}

/// Every live technical alert of `device` is held: no route is told, it stops escalating.
fn hold(b: &mut Batch<'_>, device: &str) -> rusqlite::Result<()> {
    let kinds: Vec<&str> = SHELVABLE.iter().map(|k| k.as_str()).collect();
    let ids: Vec<String> = b
        .tx
        .prepare_cached(
            "SELECT id, kind FROM alerts WHERE device_id = ?1 AND status != 'resolved' AND shelved = 0",
        )?
        .query_map([device], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .filter_map(|r| match r {
            Ok((id, kind)) => kinds.contains(&kind.as_str()).then_some(Ok(id)),
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        b.tx.prepare_cached("UPDATE alerts SET shelved = 1 WHERE id = ?1")?
            .execute([&id])?;
        b.tx.prepare_cached("DELETE FROM alert_timers WHERE alert_id = ?1")?
            .execute([&id])?;
    }
    Ok(())
}

/// The announcement: a `shelved` event of the device, placed by the registry, to the
/// announcement routes and the stream sinks. It opens no alert.
fn announce(
    b: &mut Batch<'_>,
    device: &str,
    phase: Phase,
    message: String,
) -> rusqlite::Result<()> {
    let Some((adapter, keys)) = b.setup.registry.find(device) else {
        return Ok(());
    };
    let mut d = EventDraft::new(Kind::Shelved, phase, "", adapter.clone());
    d.data.priority = Priority::Info;
    d.data.message = Some(message);
    d.registry_keys = keys;
    let source = crate::envelope::source(&b.setup.gateway_id, &adapter);
    let n = b.next_sequence(&source);
    let event = crate::envelope::seal(
        &b.setup.registry,
        &b.setup.gateway_id,
        &adapter,
        d,
        b.now,
        n,
    );
    let sinks = b.setup.policies.announcement_sinks();
    b.insert(&event, &sinks)?;
    Ok(())
}
