//! Normalisation's last step: an adapter's draft becomes the journaled CloudEvent. The
//! registry supplies who and where; the gateway supplies id, source, sequence and receipt time.

use atgw_sdk::event::{
    DATA_CONTENT_TYPE, DATA_SCHEMA_V1, Event, EventDraft, Kind, Phase, SPEC_VERSION,
    format_sequence,
};
use jiff::Timestamp;

use crate::registry::Registry;

/// `urn:atgw:<gateway-id>:<adapter>`.
pub fn source(gateway_id: &str, adapter: &str) -> String {
    format!("urn:atgw:{gateway_id}:{adapter}")
}

/// Builds the event; `sequence` is the source's next counter value.
pub fn seal(
    registry: &Registry,
    gateway_id: &str,
    adapter: &str,
    draft: EventDraft,
    now: Timestamp,
    sequence: u64,
) -> Event {
    let EventDraft {
        time,
        mut data,
        registry_keys,
    } = draft;
    data.device.adapter = adapter.to_owned();
    let entry = registry.resolve(adapter, &registry_keys);
    // A component the registry entry does not itself place (a panel registered by its account
    // alone, an unregistered device) is part of "where": two residents' zones must not read
    // the same.
    let unplaced = data
        .device
        .component
        .clone()
        .filter(|c| !entry.is_some_and(|e| e.match_values.contains(c)));
    match entry {
        Some(entry) => {
            data.device.id = entry.id.clone();
            data.device.registered = true;
            data.location = entry.location.clone();
            data.resident = entry.resident();
        }
        None => {
            data.device.registered = false;
            data.location = atgw_sdk::event::Location {
                site: registry.site().to_owned(),
                ..Default::default()
            };
            data.resident = None;
        }
    }
    let mut place = place(&data);
    if let Some(c) = &unplaced {
        place = match c.chars().all(|ch| ch.is_ascii_digit()) {
            true => format!("{place}, zone {c}"),
            false => format!("{place}, {c}"),
        };
    }
    data.message = Some(match data.message.take() {
        // Adapters and profiles say what happened; where is the registry's business.
        Some(what) => format!("{what} - {place}"),
        None => default_message(&data, &place),
    });
    if let Some(m) = &mut data.message {
        truncate_chars(m, 160);
    }
    let subject = Some(data.location.subject());
    Event {
        specversion: SPEC_VERSION.into(),
        id: uuid::Uuid::now_v7().to_string(),
        source: source(gateway_id, adapter),
        event_type: Event::device_type(data.kind),
        time: time.unwrap_or(now),
        recordedtime: now,
        sequence: format_sequence(sequence),
        correlationid: None,
        causationid: None,
        subject,
        datacontenttype: DATA_CONTENT_TYPE.into(),
        dataschema: DATA_SCHEMA_V1.into(),
        data,
    }
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((idx, _)) = s.char_indices().nth(max) {
        s.truncate(idx);
    }
}

/// A pager-length English line: what, how sure, where.
fn default_message(data: &atgw_sdk::event::EventData, place: &str) -> String {
    let what = match data.kind {
        Kind::Fall => "Fall",
        Kind::PendantPress => "Emergency button pressed",
        Kind::AssistanceCall => "Assistance call",
        Kind::Medical => "Medical alarm",
        Kind::NurseCall => "Nurse call",
        Kind::Inactivity => "Inactivity",
        Kind::BedExit => "Bed exit",
        Kind::ChairExit => "Chair exit",
        Kind::DoorExit => "Door exit",
        Kind::Spo2Low => "Low SpO2",
        Kind::RespiratoryRateAbnormal => "Abnormal respiratory rate",
        Kind::HeartRateAbnormal => "Abnormal heart rate",
        Kind::VitalSign => "Vital signs",
        Kind::Smoke => "Fire/smoke alarm",
        Kind::Co => "Carbon monoxide alarm",
        Kind::Gas => "Gas alarm",
        Kind::WaterLeak => "Water leak",
        Kind::TemperatureExtreme => "Temperature alarm",
        Kind::Seizure => "Seizure alarm",
        Kind::Enuresis => "Enuresis alarm",
        Kind::Tamper => "Tamper",
        Kind::LowBattery => "Low battery",
        Kind::DeviceOffline => "Device offline",
        Kind::DeviceFault => "Device fault",
        Kind::PowerFault => "Power fault",
        Kind::Test => "Test call",
        Kind::Cancel => "Cancel",
        Kind::Heartbeat => "Heartbeat",
        Kind::Unknown => "Unrecognised event",
    };
    let phase = match data.phase {
        Phase::Cleared => " cleared",
        _ => "",
    };
    let sure = match data.confidence {
        Some(atgw_sdk::event::Confidence::Suspected) => " (suspected)",
        _ => "",
    };
    let test = if data.test { "TEST: " } else { "" };
    format!("{test}{what}{sure}{phase} - {place}")
}

/// Where, for a person: the registry's room or area, else the device id.
fn place(data: &atgw_sdk::event::EventData) -> String {
    match (&data.location.room, &data.location.area) {
        (Some(room), _) => format!("Room {room}"),
        (None, Some(area)) => format!("Area {area}"),
        (None, None) => data.device.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeviceConfig, DeviceLocation};

    #[test]
    fn a_registered_device_gets_its_room_resident_and_registry_id() {
        let reg = Registry::new(
            "oakview",
            &[DeviceConfig {
                id: "pendant-12".into(),
                adapter: "zigbee".into(),
                match_keys: [("device".to_string(), "0xa4".to_string())].into(),
                resident: Some("res-0042".into()),
                location: DeviceLocation {
                    area: Some("east".into()),
                    room: Some("12".into()),
                    zone: None,
                },
                check_in: None,
            }],
        );
        let mut d = EventDraft::new(Kind::PendantPress, Phase::Point, "zigbee:0xa4", "zigbee");
        d.registry_keys.insert("device".into(), "0xa4".into());
        let now: Timestamp = "2026-04-17T15:33:22.184Z".parse().unwrap();
        let e = seal(&reg, "gw-1", "zigbee", d, now, 7);
        assert_eq!(e.data.device.id, "pendant-12");
        assert!(e.data.device.registered);
        assert_eq!(e.subject.as_deref(), Some("site/oakview/area/east/room/12"));
        assert_eq!(e.data.resident.unwrap().id, "res-0042");
        assert_eq!(e.sequence, "00000000000000000007");
        assert_eq!(e.source, "urn:atgw:gw-1:zigbee");
        assert_eq!(e.time, now);
        assert_eq!(
            e.data.message.as_deref(),
            Some("Emergency button pressed - Room 12")
        );
    }

    #[test]
    fn an_unknown_device_still_flows_flagged_unregistered() {
        let reg = Registry::new("oakview", &[]);
        let d = EventDraft::new(Kind::Fall, Phase::Raised, "zigbee:0xdc", "zigbee");
        let e = seal(&reg, "gw-1", "zigbee", d, Timestamp::now(), 1);
        assert!(!e.data.device.registered);
        assert_eq!(e.data.device.id, "zigbee:0xdc");
        assert_eq!(e.data.location.site, "oakview");
    }
}
