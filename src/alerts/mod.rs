//! Alerts: events that need a person. A policy turns a matching device event into an alert; the
//! lifecycle state machine ([`lifecycle`]) decides what each later event, timer or person's
//! action does to it; this module applies those decisions to the journal inside the writer's
//! transaction: alert rows, timers, and lifecycle events (`atgw.alert.<phase>`, sharing the
//! alert's `correlationid`) queued to the routes' sinks.
//!
//! # Layout
//! - [`policy`]: `[[policy]]`, `[[route]]`, `[alerts]`; matching and routing.
//! - [`lifecycle`]: the pure state machine.
//! - [`shelf`]: a device's technical alerts held by a person for a bounded time.

pub mod lifecycle;
pub mod note;
pub mod policy;
pub mod shelf;

use atgw_sdk::event::{
    AlertInfo, Confidence, DATA_CONTENT_TYPE, DATA_SCHEMA_V1, Event, EventData, Kind, Phase,
    SPEC_VERSION, format_sequence,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::pipeline::batch::Batch;
use lifecycle::{Alert, Effect, Input, Status, Timer};
pub use policy::{AlertSettings, Policies, PolicyConfig, RouteConfig};

pub use crate::envelope::ALERTS_SOURCE;

/// Outcomes a resolution may record.
pub const OUTCOMES: &[&str] = &[
    "assisted",
    "false_alarm",
    "emergency_services",
    "no_action",
    "other",
];

/// A person's action on an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertCommand {
    Ack {
        id: String,
        by: String,
        note: Option<String>,
    },
    Resolve {
        id: String,
        by: String,
        outcome: String,
        note: Option<String>,
    },
    /// What a receiver reported about the alert (a paging system's "paged" or "absent"):
    /// journaled in its history ([`note`]), no state change.
    Note {
        id: String,
        by: String,
        note: String,
    },
}

/// Why an action was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("no alert with id `{0}`")]
    NotFound(String),
    #[error("the alert is already resolved")]
    AlreadyResolved,
    #[error("{0}")]
    Invalid(String),
    #[error("no registered device `{0}`")]
    UnknownDevice(String),
    #[error("device `{0}` is not shelved")]
    NotShelved(String),
    #[error("the journal is not running")]
    Unavailable,
    #[error("the journal could not commit: {0}")]
    Storage(String),
}

/// An alert as the API and CLI show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertView {
    pub id: String,
    pub status: String,
    pub kind: String,
    pub priority: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<String>,
    pub device_id: String,
    /// The device's zone, point, button or call address: part of the alert's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub policy: String,
    /// No `[[policy]]` matched this life-safety or high-priority event: the fail-safe routed it.
    pub failsafe: bool,
    pub level: u32,
    /// Raises attached to this alert, the first included (repeat presses).
    pub presses: u32,
    pub raised_at: String,
    /// When the device last restored (or the resident cancelled) while it stayed open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub location: atgw_sdk::event::Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One `alerts` row.
struct Row {
    id: String,
    policy: String,
    alert: Alert,
    device_id: String,
    component: Option<String>,
    /// Routes told so far (they hear every later notification, whatever the policy now says).
    told: Vec<String>,
    snapshot: EventData,
    /// Held by a shelf ([`shelf`]): journaled, told to no route, not escalating.
    shelved: bool,
}

const ROW_COLUMNS: &str = "id, policy, device_id, kind, status, priority, confidence, level, \
     raised_ms, snapshot, component, presses, coalesce(opened_ms, raised_ms), told, reminders, \
     shelved";

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let kind: String = r.get(3)?;
    let status: String = r.get(4)?;
    let priority: String = r.get(5)?;
    let confidence: Option<String> = r.get(6)?;
    let snapshot: String = r.get(9)?;
    let told: Option<String> = r.get(13)?;
    let bad = |what: &str| {
        rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
    };
    Ok(Row {
        id: r.get(0)?,
        policy: r.get(1)?,
        device_id: r.get(2)?,
        component: r.get(10)?,
        alert: Alert {
            kind: kind.parse().map_err(|_| bad("kind"))?,
            status: Status::parse(&status).ok_or_else(|| bad("status"))?,
            priority: priority.parse().map_err(|_| bad("priority"))?,
            confidence: confidence.and_then(|c| c.parse::<Confidence>().ok()),
            level: r.get::<_, i64>(7)?.max(0) as usize,
            raised_ms: r.get(8)?,
            opened_ms: r.get(12)?,
            presses: u32::try_from(r.get::<_, i64>(11)?.max(1)).unwrap_or(u32::MAX),
            reminders: u32::try_from(r.get::<_, i64>(14)?.max(0)).unwrap_or(u32::MAX),
        },
        told: told
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        snapshot: serde_json::from_str(&snapshot).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, Box::new(e))
        })?,
        shelved: r.get(15)?,
    })
}

/// How long after a fail-safe alert of one kind another one is opened without a new warning.
const FAILSAFE_WARN_EVERY_MS: i64 = 10 * 60 * 1000;

/// Journals a device event and lets it open, attach to, upgrade, inform or clear alerts.
///
/// The rules, each in one place:
/// - identity: an alert is (device, component, kind); two zones of one panel are two alerts;
/// - a restore (`cleared`) reaches the live alert of the same identity; a cancel reaches the
///   live resident calls ([`policy::CANCELLABLE`]) of the same device and component only;
///   what either does is the lifecycle's decision (recorded, or closing a device condition);
/// - policy: the first matching `[[policy]]`, else the fail-safe for life-safety and
///   high-priority events ([`Policies::choose`]); an upgrade moves the alert to the policy the
///   upgraded event chooses when that one is stricter ([`Policies::stricter`]).
pub(crate) fn on_device_event(b: &mut Batch<'_>, mut event: Event) -> rusqlite::Result<()> {
    let policies = b.setup.policies.clone();
    let sinks = policies.device_event_sinks(&event.data);
    let d = &event.data;
    let component = d.device.component.clone();

    // The gateway's own announcement kind: a device claiming it is journaled, nothing more.
    if d.kind == Kind::Shelved {
        b.insert(&event, &sinks)?;
        return Ok(());
    }
    if d.phase == Phase::Cleared || d.kind == Kind::Cancel {
        let (live, input) = if d.kind == Kind::Cancel {
            let calls: Vec<Row> = live_alerts(b, &d.device.id, component.as_deref(), None)?
                .into_iter()
                .filter(|r| policy::CANCELLABLE.contains(&r.alert.kind))
                .collect();
            (calls, Input::Cancelled)
        } else {
            let same = live_alerts(b, &d.device.id, component.as_deref(), Some(d.kind))?;
            (same, Input::DeviceCleared)
        };
        if let Some(first) = live.first() {
            event.correlationid = Some(first.id.clone());
        }
        b.insert(&event, &sinks)?;
        if input == Input::DeviceCleared {
            // A condition waiting for a policy's hours is over before they began.
            b.tx.prepare_cached(
                "DELETE FROM held_conditions WHERE device_id = ?1 AND component = ?2 AND kind = ?3",
            )?
            .execute(params![
                d.device.id,
                component.as_deref().unwrap_or(""),
                d.kind.as_str()
            ])?;
        }
        // What the device says was restored ("Door closed - Room 9, West wing").
        let said = Actor {
            said: event.data.message.clone(),
            ..Actor::default()
        };
        for row in live {
            transition(b, row, input.clone(), &event.id, said.clone())?;
        }
        return Ok(());
    }
    let Some(chosen) = policies.choose(d, b.now) else {
        let held = policies.held_until(d, b.now);
        if b.shedding && held.is_none() && is_telemetry(&event) {
            return b.shed(&event);
        }
        let seq = b.insert(&event, &sinks)?;
        if let Some(due) = held {
            // Raised outside a policy's hours: alerted when they begin if still raised then.
            b.tx.prepare_cached(
                "INSERT INTO held_conditions (device_id, component, kind, event_seq, due_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(device_id, component, kind)
                 DO UPDATE SET event_seq = excluded.event_seq, due_ms = excluded.due_ms",
            )?
            .execute(params![
                event.data.device.id,
                component.as_deref().unwrap_or(""),
                event.data.kind.as_str(),
                seq,
                due.as_millisecond()
            ])?;
        }
        return Ok(());
    };
    if let Some(mut row) = live_alerts(b, &d.device.id, component.as_deref(), Some(d.kind))?
        .into_iter()
        .next()
    {
        event.correlationid = Some(row.id.clone());
        b.insert(&event, &sinks)?;
        let upgraded = lifecycle::is_upgrade(&row.alert, d.priority, d.confidence);
        let repolicied = upgraded
            && chosen.name != row.policy
            && policies
                .by_name(&row.policy)
                .is_none_or(|current| Policies::stricter(chosen.policy, current));
        if repolicied {
            row.policy = chosen.name.to_owned();
        }
        let input = Input::Raise {
            priority: event.data.priority,
            confidence: event.data.confidence,
            repolicied,
        };
        row.snapshot = event.data.clone();
        return transition(b, row, input, &event.id, Actor::default());
    }
    let id = uuid::Uuid::now_v7().to_string();
    event.correlationid = Some(id.clone());
    b.insert(&event, &sinks)?;
    open_alert(b, id, &event, &chosen, component)
}

/// Telemetry: what the journal keeps for days, not months, and sheds at its disk budget
/// (the same test [`crate::journal::retention`] makes in SQL): an info reading or heartbeat
/// with no alert, not a test call, not a cancel, not the gateway's shelf announcement.
pub(crate) fn is_telemetry(event: &Event) -> bool {
    let d = &event.data;
    d.priority == atgw_sdk::Priority::Info
        && !d.test
        && event.correlationid.is_none()
        && !matches!(d.kind, Kind::Cancel | Kind::Shelved)
        && !crate::envelope::is_alert_lifecycle(&event.source)
}

/// A new alert for `event` (journaled already) under the chosen policy.
fn open_alert(
    b: &mut Batch<'_>,
    id: String,
    event: &Event,
    chosen: &policy::Chosen<'_>,
    component: Option<String>,
) -> rusqlite::Result<()> {
    let now_ms = b.now.as_millisecond();
    if chosen.failsafe {
        warn_failsafe(b, &event.data, now_ms)?;
    }
    let (alert, fx) = lifecycle::open(
        chosen.policy,
        event.data.kind,
        event.data.priority,
        event.data.confidence,
        now_ms,
    );
    let shelved = shelf::shelvable(event.data.kind) && shelf::is_shelved(b, &event.data.device.id)?;
    let mut row = Row {
        id,
        policy: chosen.name.to_owned(),
        alert,
        device_id: event.data.device.id.clone(),
        component,
        told: Vec::new(),
        snapshot: event.data.clone(),
        shelved,
    };
    b.tx.prepare_cached(
        "INSERT INTO alerts (id, policy, device_id, kind, status, priority, confidence, level,
                             raised_ms, updated_ms, area, snapshot, component, presses, opened_ms,
                             failsafe, shelved)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, 1, ?9, ?13, ?14)",
    )?
    .execute(params![
        row.id,
        row.policy,
        row.device_id,
        row.alert.kind.as_str(),
        row.alert.status.as_str(),
        row.alert.priority.as_str(),
        row.alert.confidence.map(|c| c.as_str()),
        row.alert.level as i64,
        now_ms,
        row.snapshot.location.area,
        json(&row.snapshot)?,
        row.component,
        chosen.failsafe,
        row.shelved,
    ])?;
    apply(b, &mut row, fx, &event.id, &Actor::default())
}

/// The gateway's warning that a life-safety event matched no policy: one log line per kind
/// per [`FAILSAFE_WARN_EVERY_MS`] (the alert itself carries `failsafe = true` every time).
fn warn_failsafe(b: &Batch<'_>, d: &EventData, now_ms: i64) -> rusqlite::Result<()> {
    let recent: i64 =
        b.tx.prepare_cached(
            "SELECT count(*) FROM alerts WHERE failsafe = 1 AND kind = ?1 AND opened_ms > ?2",
        )?
        .query_row(
            params![d.kind.as_str(), now_ms - FAILSAFE_WARN_EVERY_MS],
            |r| r.get(0),
        )?;
    if recent == 0 {
        tracing::warn!(
            kind = d.kind.as_str(),
            device = d.device.id.as_str(),
            "no [[policy]] matches this {} ({}): alerted under the fail-safe to [alerts] \
             default_route or every route; add a policy for it (`atgw check-config` lists the \
             life-safety kinds no policy routes)",
            d.kind,
            d.message.as_deref().unwrap_or(""),
        );
    }
    Ok(())
}

/// A person's acknowledgement or resolution.
pub(crate) fn on_command(
    b: &mut Batch<'_>,
    cmd: AlertCommand,
) -> rusqlite::Result<Result<AlertView, AlertError>> {
    let (id, input, actor) = match cmd {
        AlertCommand::Note { id, by, note } => return note::on_note(b, id, by, note),
        AlertCommand::Ack { id, by, note } => {
            if let Err(e) = check_text(&by, &note) {
                return Ok(Err(e));
            }
            (
                id,
                Input::Ack,
                Actor {
                    by: Some(by),
                    outcome: None,
                    note,
                    said: None,
                },
            )
        }
        AlertCommand::Resolve {
            id,
            by,
            outcome,
            note,
        } => {
            if let Err(e) = check_text(&by, &note) {
                return Ok(Err(e));
            }
            if !OUTCOMES.contains(&outcome.as_str()) {
                return Ok(Err(AlertError::Invalid(format!(
                    "outcome must be one of {}",
                    OUTCOMES.join(", ")
                ))));
            }
            (
                id,
                Input::Resolve,
                Actor {
                    by: Some(by),
                    outcome: Some(outcome),
                    note,
                    said: None,
                },
            )
        }
    };
    let Some(row) = load(b, &id)? else {
        return Ok(Err(AlertError::NotFound(id)));
    };
    let policies = b.setup.policies.clone();
    let mut alert = row.alert.clone();
    match lifecycle::step(
        &mut alert,
        policies.by_name(&row.policy),
        input.clone(),
        b.now.as_millisecond(),
    ) {
        Err(lifecycle::Refused::AlreadyResolved) => return Ok(Err(AlertError::AlreadyResolved)),
        Ok(_) => {}
    }
    let now_ms = b.now.as_millisecond();
    match input {
        Input::Ack => b
            .tx
            .prepare_cached("UPDATE alerts SET acked_ms = coalesce(acked_ms, ?2), acked_by = coalesce(acked_by, ?3), note = coalesce(?4, note) WHERE id = ?1")?
            .execute(params![id, now_ms, actor.by, actor.note])?,
        _ => b
            .tx
            .prepare_cached("UPDATE alerts SET resolved_ms = ?2, resolved_by = ?3, outcome = ?4, note = coalesce(?5, note) WHERE id = ?1")?
            .execute(params![id, now_ms, actor.by, actor.outcome, actor.note])?,
    };
    transition(b, row, input, "", actor)?;
    Ok(load_view(b.tx, &id)?.ok_or(AlertError::NotFound(id)))
}

fn check_text(by: &str, note: &Option<String>) -> Result<(), AlertError> {
    if by.trim().is_empty() || by.len() > 200 {
        return Err(AlertError::Invalid(
            "`by` must name who acted (1 to 200 characters)".into(),
        ));
    }
    if note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(AlertError::Invalid(
            "`note` is limited to 1000 characters".into(),
        ));
    }
    Ok(())
}

/// Conditions raised outside their policy's hours whose hours have begun: each still raised
/// (its device has not cleared it) is alerted now, caused by the event that raised it.
fn open_held(b: &mut Batch<'_>) -> rusqlite::Result<()> {
    let now_ms = b.now.as_millisecond();
    let due: Vec<(String, String, String, i64)> =
        b.tx.prepare_cached(
            "SELECT device_id, component, kind, event_seq FROM held_conditions WHERE due_ms <= ?1",
        )?
        .query_map([now_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (device, component, kind, seq) in due {
        b.tx.prepare_cached(
            "DELETE FROM held_conditions WHERE device_id = ?1 AND component = ?2 AND kind = ?3",
        )?
        .execute(params![device, component, kind])?;
        let json: Option<String> =
            b.tx.prepare_cached("SELECT json FROM events WHERE seq = ?1")?
                .query_row([seq], |r| r.get(0))
                .optional()?;
        let Some(event) = json.and_then(|j| serde_json::from_str::<Event>(&j).ok()) else {
            continue;
        };
        let component = (!component.is_empty()).then_some(component);
        if !live_alerts(b, &device, component.as_deref(), Some(event.data.kind))?.is_empty() {
            continue;
        }
        let policies = b.setup.policies.clone();
        match policies.choose(&event.data, b.now) {
            Some(chosen) => {
                let id = uuid::Uuid::now_v7().to_string();
                open_alert(b, id, &event, &chosen, component)?;
            }
            // Not yet after all (a reload changed the hours): wait for the next opening.
            None => {
                if let Some(next) = policies.held_until(&event.data, b.now) {
                    b.tx.prepare_cached(
                        "INSERT INTO held_conditions (device_id, component, kind, event_seq, due_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![
                        device,
                        component.as_deref().unwrap_or(""),
                        kind,
                        seq,
                        next.as_millisecond()
                    ])?;
                }
            }
        }
    }
    Ok(())
}

/// Fires every timer that is due, each exactly once (its row goes in the same transaction).
pub(crate) fn fire_due(b: &mut Batch<'_>) -> rusqlite::Result<()> {
    open_held(b)?;
    let now_ms = b.now.as_millisecond();
    let due: Vec<(String, String)> =
        b.tx.prepare_cached(
            "SELECT alert_id, timer FROM alert_timers WHERE due_ms <= ?1 ORDER BY due_ms",
        )?
        .query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    shelf::end_due(b)?;
    for (id, timer) in due {
        b.tx.prepare_cached("DELETE FROM alert_timers WHERE alert_id = ?1 AND timer = ?2")?
            .execute(params![id, timer])?;
        let (Some(timer), Some(row)) = (Timer::parse(&timer), load(b, &id)?) else {
            continue;
        };
        transition(b, row, Input::Fired(timer), "", Actor::default())?;
    }
    Ok(())
}

/// A sink could not deliver this alert's notification after repeated attempts: the next tier
/// hears now rather than after its delay (see [`Input::DeliveryFailing`]).
pub(crate) fn on_delivery_failing(b: &mut Batch<'_>, alert_id: &str) -> rusqlite::Result<()> {
    match load(b, alert_id)? {
        Some(row) => transition(b, row, Input::DeliveryFailing, "", Actor::default()),
        None => Ok(()),
    }
}

/// Gives every unresolved alert that has no timer at all the timers its state calls for
/// ([`lifecycle::rearm`]); run when the writer starts. Normally a no-op: an alert loses its
/// timer rows only with a damaged journal page ([`crate::journal::salvage`]), and without
/// them it would never escalate or remind again. Returns how many alerts were re-armed.
pub fn rearm_untimed(
    conn: &Connection,
    policies: &Policies,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM alerts a WHERE status IN ('open', 'acknowledged')
         AND shelved = 0 AND NOT EXISTS (SELECT 1 FROM alert_timers t WHERE t.alert_id = a.id)"
    );
    let rows: Vec<Row> = conn
        .prepare(&sql)?
        .query_map([], row_from)?
        .collect::<rusqlite::Result<_>>()?;
    let mut armed = 0;
    for row in rows {
        let Some(policy) = policies.by_name(&row.policy) else {
            continue;
        };
        let mut any = false;
        for fx in lifecycle::rearm(&row.alert, policy, now_ms) {
            if let Effect::Arm(timer, due_ms) = fx {
                conn.prepare_cached(
                    "INSERT INTO alert_timers (alert_id, timer, due_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![row.id, timer.as_str(), due_ms])?;
                any = true;
            }
        }
        armed += usize::from(any);
    }
    Ok(armed)
}

/// When the earliest timer (or shelf end) falls due (ms since the epoch).
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let timer: Option<i64> =
        conn.query_row("SELECT min(due_ms) FROM alert_timers", [], |r| r.get(0))?;
    let shelf = shelf::next_due(conn)?;
    let held: Option<i64> =
        conn.query_row("SELECT min(due_ms) FROM held_conditions", [], |r| r.get(0))?;
    Ok(timer.into_iter().chain(shelf).chain(held).min())
}

/// A shelf of `device` ended: each of its held alerts is back. One still open is raised to
/// its routes and escalates from now; one acknowledged meanwhile gets its reminders back.
pub(crate) fn release_shelved(b: &mut Batch<'_>, device: &str) -> rusqlite::Result<()> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM alerts WHERE device_id = ?1 AND shelved = 1");
    let rows: Vec<Row> =
        b.tx.prepare_cached(&sql)?
            .query_map([device], row_from)?
            .collect::<rusqlite::Result<_>>()?;
    for mut row in rows {
        b.tx.prepare_cached("UPDATE alerts SET shelved = 0 WHERE id = ?1")?
            .execute([&row.id])?;
        row.shelved = false;
        transition(b, row, Input::Unshelved, "", Actor::default())?;
    }
    Ok(())
}

/// Who did what, carried onto the lifecycle event.
#[derive(Clone, Debug, Default)]
struct Actor {
    by: Option<String>,
    outcome: Option<String>,
    note: Option<String>,
    /// The device event's own message, for a restore or cancel: what it says was restored.
    said: Option<String>,
}

fn transition(
    b: &mut Batch<'_>,
    mut row: Row,
    input: Input,
    cause: &str,
    actor: Actor,
) -> rusqlite::Result<()> {
    let policies = b.setup.policies.clone();
    let fx = match lifecycle::step(
        &mut row.alert,
        policies.by_name(&row.policy),
        input,
        b.now.as_millisecond(),
    ) {
        Ok(fx) => fx,
        Err(_) => return Ok(()),
    };
    b.tx.prepare_cached(
        "UPDATE alerts SET status = ?2, priority = ?3, confidence = ?4, level = ?5, raised_ms = ?6,
                           updated_ms = ?7, snapshot = ?8, policy = ?9, presses = ?10,
                           reminders = ?11 WHERE id = ?1",
    )?
    .execute(params![
        row.id,
        row.alert.status.as_str(),
        row.alert.priority.as_str(),
        row.alert.confidence.map(|c| c.as_str()),
        row.alert.level as i64,
        row.alert.raised_ms,
        b.now.as_millisecond(),
        json(&row.snapshot)?,
        row.policy,
        i64::from(row.alert.presses),
        i64::from(row.alert.reminders),
    ])?;
    apply(b, &mut row, fx, cause, &actor)
}

fn apply(
    b: &mut Batch<'_>,
    row: &mut Row,
    fx: Vec<Effect>,
    cause: &str,
    actor: &Actor,
) -> rusqlite::Result<()> {
    let told_before = row.told.clone();
    for e in fx {
        match e {
            // Held by a shelf: journaled for the record and the stream sinks, told to nobody.
            Effect::Notify { phase, reason } if row.shelved => {
                let policies = b.setup.policies.clone();
                let max_reminders = policies
                    .by_name(&row.policy)
                    .map_or(policy::DEFAULT_MAX_REMINDERS, |p| p.max_reminders);
                let event = lifecycle_event(b, row, phase, reason, cause, actor, max_reminders);
                b.insert(&event, &policies.stream_sinks)?;
            }
            Effect::Arm(..) if row.shelved => {}
            Effect::Notify { phase, reason } => {
                let policies = b.setup.policies.clone();
                // Everyone told so far, and whoever the policy says now; for a device nobody
                // registered, also whoever commissions devices (its location is unknown).
                let mut routes = policies
                    .by_name(&row.policy)
                    .map(|p| Policies::routes_up_to(p, row.alert.level))
                    .unwrap_or_default();
                if crate::envelope::unregistered(&row.snapshot) {
                    routes.extend(policies.unregistered_routes.iter().cloned());
                }
                for r in routes {
                    if !row.told.contains(&r) {
                        row.told.push(r);
                    }
                }
                let mut sinks = policies.stream_sinks.clone();
                for s in policies.sinks_of(&row.told) {
                    if !sinks.contains(&s) {
                        sinks.push(s);
                    }
                }
                let people = on_shift(b, &policies, &row.told);
                if matches!(reason, "device_restored" | "cancelled") {
                    b.tx.prepare_cached("UPDATE alerts SET restored_ms = ?2 WHERE id = ?1")?
                        .execute(params![row.id, b.now.as_millisecond()])?;
                }
                let max_reminders = policies
                    .by_name(&row.policy)
                    .map_or(policy::DEFAULT_MAX_REMINDERS, |p| p.max_reminders);
                let event = lifecycle_event(b, row, phase, reason, cause, actor, max_reminders);
                b.insert_for(&event, &sinks, &people)?;
            }
            Effect::Arm(timer, due_ms) => {
                b.tx.prepare_cached(
                    "INSERT INTO alert_timers (alert_id, timer, due_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(alert_id, timer) DO UPDATE SET due_ms = excluded.due_ms",
                )?
                .execute(params![row.id, timer.as_str(), due_ms])?;
            }
            Effect::Disarm(timer) => {
                b.tx.prepare_cached("DELETE FROM alert_timers WHERE alert_id = ?1 AND timer = ?2")?
                    .execute(params![row.id, timer.as_str()])?;
            }
        }
    }
    if row.told != told_before {
        b.tx.prepare_cached("UPDATE alerts SET told = ?2 WHERE id = ?1")?
            .execute(params![row.id, json(&row.told)?])?;
    }
    Ok(())
}

/// Per sink, the people a notification through `routes` is for: whoever is on shift now in
/// the team of each route that names one (the team's manager when nobody is).
fn on_shift(
    b: &Batch<'_>,
    policies: &Policies,
    routes: &[String],
) -> std::collections::HashMap<String, Vec<String>> {
    let mut people: std::collections::HashMap<String, Vec<String>> = Default::default();
    for r in routes {
        let Some(team) = policies.route_team(r) else {
            continue;
        };
        let on = b.setup.rota.on_shift(team, b.now);
        if on.people.is_empty() {
            tracing::warn!(route = %r, team, "nobody is on shift in the team and it has no manager: only the sinks' own recipients are told");
        }
        for s in policies.sinks_of([r]) {
            let names = people.entry(s).or_default();
            for p in &on.people {
                if !names.contains(p) {
                    names.push(p.clone());
                }
            }
        }
    }
    people
}

/// "2nd", "3rd", "11th".
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "40 s", "2 min", "3 h".
pub(crate) fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The pager line of a lifecycle event (at most 160 characters): what changed, by whom, then
/// the alert's own text (`base`, the raise's message). `said` is the device event's message on
/// a restore or cancel; `since_open_ms` dates a repeat.
fn alert_text(
    a: &Alert,
    reason: &str,
    base: &str,
    said: Option<&str>,
    by: Option<&str>,
    since_open_ms: i64,
    max_reminders: u32,
) -> String {
    let again = || {
        let verb = if policy::CANCELLABLE.contains(&a.kind) {
            "PRESSED AGAIN"
        } else {
            "RAISED AGAIN"
        };
        format!(
            "{verb} - {} time in {}",
            ordinal(a.presses),
            span(since_open_ms)
        )
    };
    let what: String = match reason {
        "raised" | "raised_again" => "ALERT".into(),
        "repeated" => again(),
        "upgraded" if a.presses > 1 => format!("ALERT UPGRADED ({})", again()),
        "upgraded" => "ALERT UPGRADED".into(),
        "ack_timeout" => "ESCALATED (not acknowledged)".into(),
        "delivery_failed" => "ESCALATED (not delivered)".into(),
        "repeat" => "REPEAT (not acknowledged)".into(),
        "not_resolved" if a.reminders >= max_reminders => format!(
            "LAST REMINDER ({} of {max_reminders}, no more will be sent; not resolved)",
            a.reminders
        ),
        "not_resolved" => format!(
            "REMINDER ({} of {max_reminders}, not resolved)",
            a.reminders
        ),
        "acknowledged" => "Acknowledged".into(),
        "not_attended" => "NOT ATTENDED (acknowledged, not resolved in time)".into(),
        "unshelved" => "ALERT (off the shelf, still not resolved)".into(),
        // The device's own words say what was restored, and where.
        "device_cleared" => {
            let mut m = format!("CLEARED - {}", said.unwrap_or(base));
            truncate(&mut m);
            return m;
        }
        "device_restored" if a.kind == Kind::Fall => {
            "STILL OPEN - the device no longer reports a fall, check the resident".into()
        }
        "device_restored" => format!(
            "STILL OPEN - {}, check the resident",
            lower_first(crate::envelope::restored(a.kind))
        ),
        "cancelled" => "STILL OPEN - cancelled at the device, check the resident".into(),
        // A receiver's report (`note`): its words, then the alert's.
        note::REASON => {
            let mut m = format!("{}: {base}", said.unwrap_or("Status"));
            truncate(&mut m);
            return m;
        }
        _ => "Resolved".into(),
    };
    let who = by.map(|b| format!(" by {b}")).unwrap_or_default();
    let mut m = format!("{what}{who}: {base}");
    truncate(&mut m);
    m
}

fn truncate(m: &mut String) {
    if let Some((idx, _)) = m.char_indices().nth(160) {
        m.truncate(idx);
    }
}

/// "Door closed" → "door closed" inside a sentence; a first word like an acronym (SpO2, CO)
/// keeps its case.
fn lower_first(s: &str) -> String {
    let first = s.split(' ').next().unwrap_or_default();
    if first
        .chars()
        .skip(1)
        .any(|c| c.is_uppercase() || c.is_ascii_digit())
    {
        return s.to_owned();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn lifecycle_event(
    b: &mut Batch<'_>,
    row: &Row,
    phase: Phase,
    reason: &str,
    cause: &str,
    actor: &Actor,
    max_reminders: u32,
) -> Event {
    let mut data = row.snapshot.clone();
    data.phase = phase;
    data.priority = row.alert.priority;
    data.confidence = row.alert.confidence;
    let message = alert_text(
        &row.alert,
        reason,
        row.snapshot.message.as_deref().unwrap_or_default(),
        actor.said.as_deref(),
        actor.by.as_deref(),
        b.now.as_millisecond() - row.alert.opened_ms,
        max_reminders,
    );
    data.message = Some(message);
    data.alert = Some(AlertInfo {
        id: row.id.clone(),
        status: row.alert.status.as_str().to_owned(),
        level: row.alert.level as u32,
        reason: reason.to_owned(),
        policy: row.policy.clone(),
        by: actor.by.clone(),
        outcome: actor.outcome.clone(),
        note: actor.note.clone(),
    });
    let source = crate::envelope::source(&b.setup.gateway_id, ALERTS_SOURCE);
    let n = b.next_sequence(&source);
    Event {
        specversion: SPEC_VERSION.into(),
        id: uuid::Uuid::now_v7().to_string(),
        source,
        event_type: Event::alert_type(phase),
        time: b.now,
        recordedtime: b.now,
        sequence: format_sequence(n),
        correlationid: Some(row.id.clone()),
        causationid: (!cause.is_empty()).then(|| cause.to_owned()),
        subject: Some(data.location.subject()),
        datacontenttype: DATA_CONTENT_TYPE.into(),
        dataschema: DATA_SCHEMA_V1.into(),
        data,
    }
}

fn json<T: Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Alerts of one device component that are not resolved, newest first (optionally of one
/// kind; then a cleared one comes last, since a clear acts on live conditions first).
fn live_alerts(
    b: &Batch<'_>,
    device: &str,
    component: Option<&str>,
    kind: Option<Kind>,
) -> rusqlite::Result<Vec<Row>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM alerts WHERE device_id = ?1 AND component IS ?2
         AND (?3 IS NULL OR kind = ?3)
         AND status IN ('open', 'acknowledged', 'cleared') ORDER BY raised_ms DESC"
    );
    let mut stmt = b.tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![device, component, kind.map(|k| k.as_str())],
        row_from,
    )?;
    let mut out: Vec<Row> = rows.collect::<rusqlite::Result<_>>()?;
    if kind.is_some() {
        out.sort_by_key(|r| r.alert.status == Status::Cleared);
    }
    Ok(out)
}

fn load(b: &Batch<'_>, id: &str) -> rusqlite::Result<Option<Row>> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM alerts WHERE id = ?1");
    b.tx.prepare_cached(&sql)?
        .query_row([id], row_from)
        .optional()
}

const VIEW_COLUMNS: &str =
    "id, status, kind, priority, confidence, device_id, policy, level, raised_ms,
     acked_ms, acked_by, resolved_ms, resolved_by, outcome, note, snapshot, component, failsafe,
     presses, restored_ms";

fn view_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertView> {
    let ts = |ms: Option<i64>| {
        ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
            .map(|t| atgw_sdk::event::rfc3339_ms::format(&t))
    };
    let snapshot: String = r.get(15)?;
    let data: Option<EventData> = serde_json::from_str(&snapshot).ok();
    Ok(AlertView {
        id: r.get(0)?,
        status: r.get(1)?,
        kind: r.get(2)?,
        priority: r.get(3)?,
        confidence: r.get(4)?,
        device_id: r.get(5)?,
        component: r.get(16)?,
        policy: r.get(6)?,
        failsafe: r.get(17)?,
        level: r.get::<_, i64>(7)?.max(0) as u32,
        presses: u32::try_from(r.get::<_, i64>(18)?.max(1)).unwrap_or(u32::MAX),
        raised_at: ts(r.get(8)?).unwrap_or_default(),
        restored_at: ts(r.get(19)?),
        acknowledged_at: ts(r.get(9)?),
        acknowledged_by: r.get(10)?,
        resolved_at: ts(r.get(11)?),
        resolved_by: r.get(12)?,
        outcome: r.get(13)?,
        note: r.get(14)?,
        location: data
            .as_ref()
            .map(|d| d.location.clone())
            .unwrap_or_default(),
        message: data.and_then(|d| d.message),
    })
}

pub(crate) fn load_view(conn: &Connection, id: &str) -> rusqlite::Result<Option<AlertView>> {
    let sql = format!("SELECT {VIEW_COLUMNS} FROM alerts WHERE id = ?1");
    conn.query_row(&sql, [id], view_from).optional()
}

/// Alerts for the API and CLI: unresolved ones (or all), newest first.
pub fn list(
    conn: &Connection,
    include_resolved: bool,
    limit: usize,
) -> rusqlite::Result<Vec<AlertView>> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM alerts WHERE (?1 OR status != 'resolved') ORDER BY raised_ms DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![include_resolved, limit as i64], view_from)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: Kind, reminders: u32) -> Alert {
        Alert {
            kind,
            status: Status::Acknowledged,
            priority: atgw_sdk::event::Priority::High,
            confidence: None,
            level: 0,
            raised_ms: 0,
            opened_ms: 0,
            presses: 1,
            reminders,
        }
    }

    #[test]
    fn a_clear_says_what_the_device_restored_and_a_resident_restore_says_what_and_to_check() {
        let leak = alert(Kind::WaterLeak, 0);
        assert_eq!(
            alert_text(
                &leak,
                "device_cleared",
                "Water leak - Room 12, east",
                Some("Water leak restored - Room 12, east"),
                None,
                0,
                3
            ),
            "CLEARED - Water leak restored - Room 12, east"
        );
        let press = alert(Kind::PendantPress, 0);
        assert_eq!(
            alert_text(
                &press,
                "device_restored",
                "Personal emergency - Room 12, east",
                Some("Personal emergency restored - Room 12, east"),
                None,
                0,
                3
            ),
            "STILL OPEN - pendant alarm restored, check the resident: Personal emergency - Room 12, east"
        );
        let spo2 = alert(Kind::Spo2Low, 0);
        assert!(
            alert_text(
                &spo2,
                "device_restored",
                "Low SpO2 88% - Room 16",
                None,
                None,
                0,
                3
            )
            .starts_with("STILL OPEN - SpO2 back in range, check the resident"),
            "an acronym keeps its case"
        );
    }

    #[test]
    fn reminders_count_up_to_the_cap_and_the_last_says_no_more_will_come() {
        let text = |n| {
            alert_text(
                &alert(Kind::WaterLeak, n),
                "not_resolved",
                "Water leak - Room 12",
                None,
                None,
                0,
                3,
            )
        };
        assert_eq!(
            text(1),
            "REMINDER (1 of 3, not resolved): Water leak - Room 12"
        );
        assert_eq!(
            text(2),
            "REMINDER (2 of 3, not resolved): Water leak - Room 12"
        );
        assert_eq!(
            text(3),
            "LAST REMINDER (3 of 3, no more will be sent; not resolved): Water leak - Room 12"
        );
    }

    #[test]
    fn a_lifecycle_message_fits_a_pager() {
        let long = "x".repeat(300);
        let m = alert_text(&alert(Kind::Fall, 0), "raised", &long, None, None, 0, 3);
        assert_eq!(m.chars().count(), 160);
        let m = alert_text(
            &alert(Kind::Fall, 0),
            "device_cleared",
            &long,
            Some(&long),
            None,
            0,
            3,
        );
        assert_eq!(m.chars().count(), 160);
    }
}
