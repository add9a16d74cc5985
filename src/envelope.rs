//! Normalisation's last step: an adapter's draft becomes the journaled CloudEvent. The
//! registry supplies who and where; the gateway supplies id, source, sequence and receipt time.

use atgw_sdk::event::{
    DATA_CONTENT_TYPE, DATA_SCHEMA_V1, Event, EventDraft, Kind, Phase, SPEC_VERSION,
    format_sequence,
};
use jiff::Timestamp;

use crate::registry::Registry;

/// Adapter name (and `source` suffix) of alert lifecycle events; reserved.
pub const ALERTS_SOURCE: &str = "alerts";

/// `source` suffix and adapter-state namespace of rule-derived events; reserved.
pub const RULES_SOURCE: &str = "rules";

/// `urn:atgw:<gateway-id>:<adapter>`.
pub fn source(gateway_id: &str, adapter: &str) -> String {
    format!("urn:atgw:{gateway_id}:{adapter}")
}

/// Whether a `source` is the alert engine's: its events are alert lifecycle events. The name
/// is reserved (no adapter may take it), so the adapter part decides.
pub fn is_alert_lifecycle(source: &str) -> bool {
    source.rsplit(':').next() == Some(ALERTS_SOURCE)
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
    // An impossible vital sign (a watch's SpO2 0 when not worn) is no measurement.
    crate::rules::vitals::mark_implausible(&mut data.observations);
    let entry = registry.resolve(adapter, &registry_keys);
    // The one part of "where" a device may report: the zone within its room (a SCAIP unit's
    // location code, "bathroom"). The registry's own zone wins; site, area and room are only
    // ever the registry's.
    let reported_zone = data.location.zone.take();
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
            if data.location.zone.is_none() {
                data.location.zone = reported_zone;
            }
        }
        None => {
            data.device.registered = false;
            data.location = atgw_sdk::event::Location {
                site: registry.site().to_owned(),
                zone: reported_zone,
                ..Default::default()
            };
            data.resident = None;
        }
    }
    let component = unplaced
        .as_deref()
        .map(|c| match c.chars().all(|ch| ch.is_ascii_digit()) {
            true => format!("zone {c}"),
            false => c.to_owned(),
        });
    let place = if !unregistered(&data) {
        let place = place(&data);
        match &component {
            Some(c) => format!("{place}, {c}"),
            None => place,
        }
    } else {
        // Nobody knows where it is: say so, and name the device so someone can find it.
        let c = component.map(|c| format!(" {c}")).unwrap_or_default();
        format!(
            "location unknown, device {}{c} not registered",
            data.device.id
        )
    };
    data.message = Some(match data.message.take() {
        // Adapters and profiles say what happened; where is the registry's business.
        Some(what) => format!("{what} - {place}"),
        None => default_message(&data, &place),
    });
    if let Some(m) = &mut data.message {
        // A carer answering a pendant should know its battery is going.
        if data.kind != Kind::LowBattery
            && let Some(b) = data.battery.as_ref().filter(|b| b.low == Some(true))
        {
            let percent = b.percent.map(|p| format!(" {p}%")).unwrap_or_default();
            m.push_str(&format!(" (battery low{percent})"));
        }
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

/// Device clocks warned about at most this often per device.
const CLOCK_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

static CLOCK_WARNINGS: std::sync::LazyLock<atgw_sdk::ratelimit::LogLimiter> =
    std::sync::LazyLock::new(|| atgw_sdk::ratelimit::LogLimiter::new(CLOCK_WARNING_EVERY));

/// Flags an event whose device time is more than `max_skew` from the gateway's receipt time:
/// `time` keeps the device's claim, `data.clock_skew_s` says by how much (positive: ahead), and
/// a warning naming the device is logged (at most every 10 minutes per device). Returns the
/// skew in seconds when flagged. Rules use `recordedtime`, so a wrong clock bends nothing.
pub fn flag_clock_skew(event: &mut Event, max_skew: std::time::Duration) -> Option<i64> {
    let skew = event.time.duration_since(event.recordedtime);
    if skew.unsigned_abs() <= max_skew {
        return None;
    }
    let seconds = skew.as_secs();
    event.data.clock_skew_s = Some(seconds);
    let device = &event.data.device.id;
    if let Some(suppressed) = CLOCK_WARNINGS.allow(device) {
        let (by, way) = (
            seconds.unsigned_abs(),
            if seconds > 0 { "ahead of" } else { "behind" },
        );
        tracing::warn!(
            device = %device,
            adapter = %event.data.device.adapter,
            clock_skew_s = seconds,
            suppressed,
            "device {device}: its clock is {by} s {way} the gateway's (max_clock_skew {} s); \
             its time is kept for the record, rules use the receipt time",
            max_skew.as_secs()
        );
    }
    Some(seconds)
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((idx, _)) = s.char_indices().nth(max) {
        s.truncate(idx);
    }
}

/// A pager-length English line: what, how sure, where.
fn default_message(data: &atgw_sdk::event::EventData, place: &str) -> String {
    let what = data.kind.label();
    let test = if data.test { "TEST: " } else { "" };
    if data.phase == Phase::Cleared {
        // Say what was restored, not just that something was.
        return format!("{test}{} - {place}", restored(data.kind));
    }
    let sure = match data.confidence {
        Some(atgw_sdk::event::Confidence::Suspected) => " (suspected)",
        _ => "",
    };
    format!("{test}{what}{sure} - {place}")
}

/// A device the registry does not know (not the gateway's own components): nobody knows
/// where it is, so its messages say so and its alerts also go to `[alerts] unregistered_route`.
pub fn unregistered(data: &atgw_sdk::event::EventData) -> bool {
    !data.device.registered && data.device.adapter != crate::GATEWAY_ADAPTER
}

/// What a device's restore of a condition of this kind means, in a carer's words ("Door
/// closed", "Water leak cleared"): the message of a `cleared` event a profile or rule gives no
/// words for, and (lower-cased) what an alert says was restored.
pub fn restored(kind: Kind) -> &'static str {
    match kind {
        Kind::Fall => "Fall detector no longer reports a fall",
        Kind::PendantPress => "Pendant alarm restored",
        Kind::AssistanceCall => "Assistance call reset",
        Kind::Medical => "Medical alarm restored",
        Kind::NurseCall => "Nurse call reset",
        Kind::Inactivity => "Activity detected again",
        Kind::BedExit => "Back in bed",
        Kind::ChairExit => "Back in the chair",
        Kind::DoorExit => "Door closed",
        Kind::Spo2Low => "SpO2 back in range",
        Kind::RespiratoryRateAbnormal => "Respiratory rate back in range",
        Kind::HeartRateAbnormal => "Heart rate back in range",
        Kind::Smoke => "Fire/smoke alarm cleared",
        Kind::Co => "Carbon monoxide alarm cleared",
        Kind::Gas => "Gas alarm cleared",
        Kind::WaterLeak => "Water leak cleared (dry again)",
        Kind::TemperatureExtreme => "Temperature back in range",
        Kind::Seizure => "Seizure alarm restored",
        Kind::Enuresis => "Enuresis sensor dry again",
        Kind::Tamper => "Tamper restored (cover closed)",
        Kind::LowBattery => "Battery no longer low",
        Kind::DeviceOffline => "Device back online",
        Kind::DeviceFault => "Device fault cleared",
        Kind::PowerFault => "Power restored",
        Kind::VitalSign => "Vital signs back in range",
        Kind::Test => "Test ended",
        Kind::Cancel => "Cancel",
        Kind::Heartbeat => "Heartbeat",
        Kind::Shelved => "Technical alerts back from the shelf",
        Kind::Unknown => "Unrecognised condition restored",
    }
}

/// Where, for a person: the registry's room with its area ("Room 9, West wing"), else the
/// area, else the device id.
pub fn place(data: &atgw_sdk::event::EventData) -> String {
    match (&data.location.room, &data.location.area) {
        (Some(room), Some(area)) => format!("Room {room}, {area}"),
        (Some(room), None) => format!("Room {room}"),
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
                not_reading_after: None,
                fhir_patient: None,
                fhir_device: None,
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
            Some("Emergency button pressed - Room 12, east")
        );
    }

    #[test]
    fn a_reported_zone_fills_a_blank_registry_zone_and_never_the_room() {
        let reg = Registry::new(
            "oakview",
            &[DeviceConfig {
                id: "unit-678".into(),
                adapter: "units".into(),
                match_keys: [("cid".to_string(), "678".to_string())].into(),
                resident: None,
                location: DeviceLocation {
                    area: None,
                    room: Some("12".into()),
                    zone: None,
                },
                check_in: None,
                not_reading_after: None,
                fhir_patient: None,
                fhir_device: None,
            }],
        );
        let now: Timestamp = "2026-04-17T15:33:22Z".parse().unwrap();
        let draft = |cid: &str| {
            let mut d = EventDraft::new(Kind::Fall, Phase::Raised, "scaip:x", "units");
            d.registry_keys.insert("cid".into(), cid.into());
            d.data.location.zone = Some("bathroom".into());
            d.data.location.room = Some("device-claimed".into());
            d
        };
        let e = seal(&reg, "gw-1", "units", draft("678"), now, 1);
        assert_eq!(e.data.location.room.as_deref(), Some("12"));
        assert_eq!(e.data.location.zone.as_deref(), Some("bathroom"));
        let e = seal(&reg, "gw-1", "units", draft("999"), now, 2);
        assert_eq!(e.data.location.room, None);
        assert_eq!(e.data.location.zone.as_deref(), Some("bathroom"));
    }

    #[test]
    fn a_device_clock_beyond_max_clock_skew_is_flagged_and_its_time_kept() {
        let reg = Registry::new("oakview", &[]);
        let now: Timestamp = "2026-04-17T15:33:22Z".parse().unwrap();
        let max = std::time::Duration::from_secs(120);
        let at = |offset_s: i64| {
            let mut d = EventDraft::new(Kind::VitalSign, Phase::Point, "ble:ff23", "hub");
            d.time = Some(
                now.checked_add(jiff::SignedDuration::from_secs(offset_s))
                    .unwrap(),
            );
            seal(&reg, "gw-1", "hub", d, now, 1)
        };
        let mut ahead = at(660);
        assert_eq!(flag_clock_skew(&mut ahead, max), Some(660));
        assert_eq!(ahead.data.clock_skew_s, Some(660));
        assert_eq!(
            ahead.time.as_second(),
            now.as_second() + 660,
            "device time kept"
        );
        let mut behind = at(-121);
        assert_eq!(flag_clock_skew(&mut behind, max), Some(-121));
        let mut close = at(120);
        assert_eq!(flag_clock_skew(&mut close, max), None);
        assert_eq!(close.data.clock_skew_s, None);
    }

    #[test]
    fn an_impossible_vital_sign_is_sealed_absent() {
        let reg = Registry::new("oakview", &[]);
        let mut d = EventDraft::new(Kind::VitalSign, Phase::Point, "ble:ff23", "hub");
        d.data.observations.push(atgw_sdk::event::Observation {
            name: "spo2".into(),
            value: Some(0.0),
            ..Default::default()
        });
        let e = seal(&reg, "gw-1", "hub", d, Timestamp::now(), 1);
        assert_eq!(e.data.observations[0].value, None);
        assert_eq!(
            e.data.observations[0].absent_reason.as_deref(),
            Some("error")
        );
    }

    #[test]
    fn an_alarm_from_a_device_with_a_low_battery_says_so() {
        let reg = Registry::new("oakview", &[]);
        let mut d = EventDraft::new(Kind::PendantPress, Phase::Point, "zigbee:0xa4", "zigbee");
        d.data.battery = Some(atgw_sdk::event::Battery {
            percent: Some(5.0),
            low: Some(true),
            voltage_mv: None,
        });
        let e = seal(&reg, "gw-1", "zigbee", d.clone(), Timestamp::now(), 1);
        assert_eq!(
            e.data.message.as_deref(),
            Some(
                "Emergency button pressed - location unknown, device zigbee:0xa4 not registered (battery low 5%)"
            )
        );
        d.data.battery = Some(atgw_sdk::event::Battery {
            percent: Some(80.0),
            low: Some(false),
            voltage_mv: None,
        });
        let e = seal(&reg, "gw-1", "zigbee", d, Timestamp::now(), 1);
        assert_eq!(
            e.data.message.as_deref(),
            Some("Emergency button pressed - location unknown, device zigbee:0xa4 not registered")
        );
    }

    #[test]
    fn an_unregistered_device_says_its_location_is_unknown_and_names_itself_and_its_zone() {
        let reg = Registry::new("oakview", &[]);
        let mut d = EventDraft::new(Kind::PendantPress, Phase::Raised, "dc09:9999", "alarms");
        d.data.device.component = Some("003".into());
        d.data.message = Some("Personal emergency".into());
        let e = seal(&reg, "gw-1", "alarms", d, Timestamp::now(), 1);
        assert_eq!(
            e.data.message.as_deref(),
            Some("Personal emergency - location unknown, device dc09:9999 zone 003 not registered")
        );
        assert!(unregistered(&e.data));
        // The gateway's own components are not devices anyone registers.
        let mut g = EventDraft::new(
            Kind::DeviceFault,
            Phase::Raised,
            "sink:carers",
            crate::GATEWAY_ADAPTER,
        );
        g.data.message = Some("Alert channel `carers` disabled by its receiver".into());
        let e = seal(&reg, "gw-1", crate::GATEWAY_ADAPTER, g, Timestamp::now(), 1);
        assert!(!unregistered(&e.data));
        assert_eq!(
            e.data.message.as_deref(),
            Some("Alert channel `carers` disabled by its receiver - sink:carers")
        );
    }

    #[test]
    fn a_restore_without_words_of_its_own_says_what_was_restored_by_kind_with_room_and_area() {
        let reg = Registry::new(
            "oakview",
            &[DeviceConfig {
                id: "door-9".into(),
                adapter: "zigbee".into(),
                match_keys: [("device".to_string(), "0xd9".to_string())].into(),
                resident: None,
                location: DeviceLocation {
                    area: Some("West wing".into()),
                    room: Some("9".into()),
                    zone: None,
                },
                check_in: None,
                not_reading_after: None,
                fhir_patient: None,
                fhir_device: None,
            }],
        );
        let message = |kind: Kind, phase: Phase| {
            let mut d = EventDraft::new(kind, phase, "zigbee:0xd9", "zigbee");
            d.registry_keys.insert("device".into(), "0xd9".into());
            seal(&reg, "gw-1", "zigbee", d, Timestamp::now(), 1)
                .data
                .message
                .unwrap()
        };
        assert_eq!(
            message(Kind::DoorExit, Phase::Raised),
            "Door exit - Room 9, West wing"
        );
        assert_eq!(
            message(Kind::DoorExit, Phase::Cleared),
            "Door closed - Room 9, West wing"
        );
        assert_eq!(
            message(Kind::PendantPress, Phase::Cleared),
            "Pendant alarm restored - Room 9, West wing"
        );
        assert_eq!(
            message(Kind::WaterLeak, Phase::Cleared),
            "Water leak cleared (dry again) - Room 9, West wing"
        );
        for kind in Kind::ALL {
            assert!(!restored(*kind).is_empty(), "{kind}");
        }
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
