//! Rules: pure functions that turn committed events into alert verdicts.
//!
//! A rule is a function of (configuration, its persisted state, the event's content, the event's
//! time) that returns verdicts and updates the state. It does no I/O and reads no clock, so the
//! journal's single writer can run it inside the transaction that commits the event, persist the
//! state beside the event, and a restart neither forgets a half-met persistence count nor repeats
//! a raise. The same purity lets the tests replay long sequences in microseconds.
//!
//! # Layout
//! - [`vitals`]: vital-sign thresholds (NEWS2 bands by default, per-resident overrides,
//!   persistence before raising, absent readings that never breach).
//! - [`not_reading`]: a device that reports vital signs but measures nothing for
//!   `[vitals] not_reading_after` raises a low-priority `device_fault`.

pub mod not_reading;
pub mod vitals;

use atgw_sdk::event::{Event, Kind, Phase, format_sequence};
use rusqlite::{OptionalExtension, params};

use crate::pipeline::batch::Batch;

pub use crate::envelope::RULES_SOURCE;

pub use vitals::config::VitalRules;

/// Runs the vital-sign rules on a committed measurement and returns the derived events
/// (`spo2_low` raised, …), ready for the alert engine. Their state lives in `adapter_state`
/// under `rules`, per resident (or per device for a device with no resident), written in the
/// same transaction.
pub(crate) fn derive(
    b: &mut Batch<'_>,
    rules: &VitalRules,
    event: &Event,
) -> rusqlite::Result<Vec<Event>> {
    let d = &event.data;
    if d.kind != Kind::VitalSign || d.observations.is_empty() {
        return Ok(Vec::new());
    }
    let subject = match &d.resident {
        Some(r) => format!("vitals|resident|{}", r.id),
        None => format!("vitals|device|{}", d.device.id),
    };
    let stored: Option<String> =
        b.tx.prepare_cached("SELECT value FROM adapter_state WHERE adapter = ?1 AND key = ?2")?
            .query_row(params![RULES_SOURCE, subject], |r| r.get(0))
            .optional()?;
    let mut state: vitals::VitalState = stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let resident = d.resident.as_ref().and_then(|r| rules.residents.get(&r.id));
    let verdicts = vitals::evaluate(
        &rules.config,
        resident,
        &mut state,
        &d.observations,
        // Receipt time: a device's clock must not bend persistence windows.
        event.recordedtime,
    );
    let json = serde_json::to_string(&state)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    b.tx.prepare_cached(
        "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(adapter, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![RULES_SOURCE, subject, json])?;

    let source = crate::envelope::source(&b.setup.gateway_id, RULES_SOURCE);
    let mut out = Vec::with_capacity(verdicts.len());
    for v in verdicts {
        let mut data = d.clone();
        data.kind = v.kind;
        data.phase = v.phase;
        data.priority = v.priority;
        data.confidence = None;
        let value = v
            .observation
            .value
            .map(|x| format!(" {x}"))
            .unwrap_or_default();
        let unit = v.observation.unit.clone().unwrap_or_default();
        let what = match (v.kind, v.phase) {
            (Kind::Spo2Low, Phase::Cleared) => "SpO2 recovered".to_owned(),
            (Kind::Spo2Low, _) => format!("Low SpO2{value}{unit}"),
            (_, Phase::Cleared) => {
                format!("{} back in range", v.observation.name.replace('_', " "))
            }
            _ => format!(
                "Abnormal {}{value}{unit}",
                v.observation.name.replace('_', " ")
            ),
        };
        data.message = Some(format!("{what} - {}", place(d)));
        data.observations = vec![v.observation];
        data.threshold = Some(v.threshold);
        let n = b.next_sequence(&source);
        out.push(Event {
            id: uuid::Uuid::now_v7().to_string(),
            source: source.clone(),
            event_type: Event::device_type(v.kind),
            time: event.time,
            recordedtime: b.now,
            sequence: format_sequence(n),
            correlationid: None,
            causationid: Some(event.id.clone()),
            subject: event.subject.clone(),
            specversion: event.specversion.clone(),
            datacontenttype: event.datacontenttype.clone(),
            dataschema: event.dataschema.clone(),
            data,
        });
    }
    if let Some(e) = not_reading(b, rules, event)? {
        out.push(e);
    }
    Ok(out)
}

/// The not-reading rule for the event's device (state under `notreading|device|<id>`).
fn not_reading(
    b: &mut Batch<'_>,
    rules: &VitalRules,
    event: &Event,
) -> rusqlite::Result<Option<Event>> {
    let d = &event.data;
    let key = format!("notreading|device|{}", d.device.id);
    let stored: Option<String> =
        b.tx.prepare_cached("SELECT value FROM adapter_state WHERE adapter = ?1 AND key = ?2")?
            .query_row(params![RULES_SOURCE, key], |r| r.get(0))
            .optional()?;
    let mut state: not_reading::NotReadingState = stored
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let before = state.clone();
    let phase = not_reading::step(
        rules
            .not_reading_after
            .get(&d.device.id)
            .copied()
            .unwrap_or(rules.config.not_reading_after),
        &mut state,
        &d.observations,
        event.recordedtime,
    );
    if state != before {
        if state == not_reading::NotReadingState::default() {
            b.tx.prepare_cached("DELETE FROM adapter_state WHERE adapter = ?1 AND key = ?2")?
                .execute(params![RULES_SOURCE, key])?;
        } else {
            let json = serde_json::to_string(&state)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            b.tx.prepare_cached(
                "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(adapter, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![RULES_SOURCE, key, json])?;
        }
    }
    let Some(phase) = phase else {
        return Ok(None);
    };
    let mut data = d.clone();
    data.kind = Kind::DeviceFault;
    data.phase = phase;
    data.priority = Kind::DeviceFault.default_priority();
    data.confidence = None;
    data.threshold = None;
    data.codes = Default::default();
    let what = match phase {
        Phase::Raised => "not reading",
        _ => "reading again",
    };
    data.message = Some(format!(
        "{} {what} - {}",
        not_reading::sensor_name(&d.observations),
        place(d)
    ));
    let source = crate::envelope::source(&b.setup.gateway_id, RULES_SOURCE);
    let n = b.next_sequence(&source);
    Ok(Some(Event {
        id: uuid::Uuid::now_v7().to_string(),
        source,
        event_type: Event::device_type(Kind::DeviceFault),
        time: event.time,
        recordedtime: b.now,
        sequence: format_sequence(n),
        correlationid: None,
        causationid: Some(event.id.clone()),
        subject: event.subject.clone(),
        specversion: event.specversion.clone(),
        datacontenttype: event.datacontenttype.clone(),
        dataschema: event.dataschema.clone(),
        data,
    }))
}

/// Where, for a person: the room with its area, else the area, else the device id.
fn place(d: &atgw_sdk::event::EventData) -> String {
    crate::envelope::place(d)
}
