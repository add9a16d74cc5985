//! The normalised event, schema v1 (DESIGN §4): a CloudEvents 1.0 structured-mode envelope around
//! atgw's `data` object. These types are the contract between adapters, the core and every sink;
//! `schema/event-v1.json` is the same contract for people and for other languages.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// CloudEvents spec version of every envelope we emit.
pub const SPEC_VERSION: &str = "1.0";
/// `dataschema` of schema v1; bumped only on a breaking change.
pub const DATA_SCHEMA_V1: &str = "urn:atgw:schema:event:1";
/// `datacontenttype` of every envelope.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// One normalised event as it is journaled and published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub specversion: String,
    /// UUIDv7 minted at ingestion; stable across re-deliveries so receivers can deduplicate.
    pub id: String,
    /// `urn:atgw:<gateway-id>:<adapter>`.
    pub source: String,
    /// `atgw.<kind>` for device events, `atgw.alert.<phase>` for alert lifecycle events.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened: the device's time when it sent one (flagged by `data.clock_skew_s`
    /// when far from the gateway's clock), else receipt time.
    #[serde(with = "rfc3339_ms")]
    pub time: Timestamp,
    /// When the gateway received it.
    #[serde(with = "rfc3339_ms")]
    pub recordedtime: Timestamp,
    /// Zero-padded per-source counter, so a consumer can see gaps.
    pub sequence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    /// `site/<site>/area/<area>/room/<room>`, for prefix filtering by wing or room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub datacontenttype: String,
    pub dataschema: String,
    pub data: EventData,
}

/// atgw's own payload inside the envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub kind: Kind,
    pub phase: Phase,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// Test, learning or simulated data: recorded, never pages staff.
    pub test: bool,
    pub device: Device,
    pub location: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<Resident>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<Battery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    #[serde(default, skip_serializing_if = "Codes::is_empty")]
    pub codes: Codes,
    /// Short English text for SMS and pagers (at most 160 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Raw>,
    /// Device time minus gateway receipt time, in whole seconds (positive: the device is
    /// ahead), set by the core only when it exceeds `[gateway] max_clock_skew`: the device's
    /// clock is wrong, or the report was held back. `time` keeps the device's claim for the
    /// record; rules and alert timers use `recordedtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_s: Option<i64>,
    /// On alert lifecycle events (`atgw.alert.*`): which alert, and what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertInfo>,
}

/// The alert a lifecycle event speaks of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// Alert id (also the envelope's `correlationid`).
    pub id: String,
    /// `open`, `acknowledged`, `cleared` or `resolved`, after this transition.
    pub status: String,
    /// Escalation tiers fired so far (0: only the first routes were told).
    pub level: u32,
    /// Why this event: `raised`, `upgraded`, `raised_again`, `repeated` (another raise of the
    /// open alert, e.g. a second press), `ack_timeout`, `delivery_failed`, `repeat`,
    /// `not_resolved`, `not_attended` (acknowledged, not resolved within `attend_within`: open
    /// again), `unshelved` (a shelf that held it ended, still open), `acknowledged`,
    /// `device_cleared` (a device condition restored),
    /// `device_restored` / `cancelled` (recorded on a resident's alarm, which stays open),
    /// `resolved`.
    pub reason: String,
    /// Name of the policy that governs the alert.
    pub policy: String,
    /// Who acknowledged or resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// How it ended: `assisted`, `false_alarm`, `emergency_services`, `no_action`, `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order (the JSON Schema lists the same).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { field: stringify!($name), value: s.to_owned() }),
                }
            }
        }
    };
}

/// A string that is not in a controlled vocabulary.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{value}` is not a valid {field}")]
pub struct UnknownValue {
    pub field: &'static str,
    pub value: String,
}

string_enum! {
    /// What happened, from a controlled vocabulary (DESIGN §4).
    Kind {
        Fall => "fall",
        PendantPress => "pendant_press",
        AssistanceCall => "assistance_call",
        Medical => "medical",
        NurseCall => "nurse_call",
        Inactivity => "inactivity",
        BedExit => "bed_exit",
        ChairExit => "chair_exit",
        DoorExit => "door_exit",
        Spo2Low => "spo2_low",
        RespiratoryRateAbnormal => "respiratory_rate_abnormal",
        HeartRateAbnormal => "heart_rate_abnormal",
        VitalSign => "vital_sign",
        Smoke => "smoke",
        Co => "co",
        Gas => "gas",
        WaterLeak => "water_leak",
        TemperatureExtreme => "temperature_extreme",
        Seizure => "seizure",
        Enuresis => "enuresis",
        Tamper => "tamper",
        LowBattery => "low_battery",
        DeviceOffline => "device_offline",
        DeviceFault => "device_fault",
        PowerFault => "power_fault",
        Test => "test",
        Cancel => "cancel",
        Heartbeat => "heartbeat",
        // A person shelved a device's technical alerts (`raised`) or the shelf ended
        // (`cleared`): the gateway's announcement, never from a device.
        Shelved => "shelved",
        Unknown => "unknown",
    }
}

string_enum! {
    /// Where in its life the condition is.
    Phase {
        Raised => "raised",
        Cleared => "cleared",
        Point => "point",
        Acknowledged => "acknowledged",
        Escalated => "escalated",
        Resolved => "resolved",
    }
}

string_enum! {
    /// IEC 60601-1-8 alarm priority. Ordered so that `High` sorts first.
    Priority {
        High => "high",
        Medium => "medium",
        Low => "low",
        Info => "info",
    }
}

string_enum! {
    /// Whether the device is sure (a radar's "maybe fall" is `Suspected`).
    Confidence {
        Confirmed => "confirmed",
        Suspected => "suspected",
    }
}

impl Kind {
    /// What happened, in a carer's words ("Fall", "Emergency button pressed"): the start of
    /// every pager line, email subject and SMS the gateway writes.
    pub fn label(self) -> &'static str {
        use Kind::*;
        match self {
            Fall => "Fall",
            PendantPress => "Emergency button pressed",
            AssistanceCall => "Assistance call",
            Medical => "Medical alarm",
            NurseCall => "Nurse call",
            Inactivity => "Inactivity",
            BedExit => "Bed exit",
            ChairExit => "Chair exit",
            DoorExit => "Door exit",
            Spo2Low => "Low SpO2",
            RespiratoryRateAbnormal => "Abnormal respiratory rate",
            HeartRateAbnormal => "Abnormal heart rate",
            VitalSign => "Vital signs",
            Smoke => "Fire/smoke alarm",
            Co => "Carbon monoxide alarm",
            Gas => "Gas alarm",
            WaterLeak => "Water leak",
            TemperatureExtreme => "Temperature alarm",
            Seizure => "Seizure alarm",
            Enuresis => "Enuresis alarm",
            Tamper => "Tamper",
            LowBattery => "Low battery",
            DeviceOffline => "Device offline",
            DeviceFault => "Device fault",
            PowerFault => "Power fault",
            Test => "Test call",
            Cancel => "Cancel",
            Heartbeat => "Heartbeat",
            Shelved => "Technical alerts shelved",
            Unknown => "Unrecognised event",
        }
    }

    /// The priority a kind gets when neither the profile nor a rule says otherwise.
    pub fn default_priority(self) -> Priority {
        use Kind::*;
        match self {
            Fall
            | PendantPress
            | Medical
            | Inactivity
            | Spo2Low
            | RespiratoryRateAbnormal
            | Smoke
            | Co
            | Gas
            | Seizure => Priority::High,
            AssistanceCall | NurseCall | BedExit | ChairExit | DoorExit | HeartRateAbnormal
            | WaterLeak | TemperatureExtreme | DeviceOffline | Enuresis => Priority::Medium,
            Tamper | LowBattery | DeviceFault | PowerFault | Unknown => Priority::Low,
            VitalSign | Test | Cancel | Heartbeat | Shelved => Priority::Info,
        }
    }
}

impl Priority {
    /// Outbox lane: lower is served first, so alarms never wait behind telemetry.
    pub fn lane(self) -> i64 {
        match self {
            Priority::High => 0,
            Priority::Medium => 1,
            Priority::Low => 2,
            Priority::Info => 3,
        }
    }
}

/// Which device reported, and whether the gateway's registry knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Registry id when registered, else `<adapter-prefix>:<native id>` (e.g. `zigbee:0xa4c1…`).
    pub id: String,
    /// Name of the adapter instance that received it.
    pub adapter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Button, endpoint or zone within the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// False when the device is not in `[[device]]`: the event still flows.
    pub registered: bool,
}

/// Where the device is installed, from the gateway's registry (never from the device).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Location {
    /// CloudEvents `subject`: `site/<site>/area/<area>/room/<room>` with the known parts.
    pub fn subject(&self) -> String {
        let mut s = format!("site/{}", self.site);
        if let Some(area) = &self.area {
            s.push_str("/area/");
            s.push_str(area);
        }
        if let Some(room) = &self.room {
            s.push_str("/room/");
            s.push_str(room);
        }
        s
    }
}

/// Pseudonymous resident reference; never a name, NHS number or phone number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resident {
    pub id: String,
}

/// A measured value (FHIR Observation shaped).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// `spo2`, `heart_rate`, `respiratory_rate`, `body_temperature`, `perfusion_index`, …
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Coding>,
    /// ISO/IEEE 11073-10101 code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdc: Option<u32>,
    /// Absent when the device sent no valid value (see `absent_reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// UCUM unit: `%`, `/min`, `Cel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// FHIR data-absent-reason code when `value` is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A code in a code system (LOINC for observations).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
}

/// Why a threshold alert fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub observation: String,
    pub op: String,
    pub value: f64,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Battery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voltage_mv: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<f64>,
    /// Zigbee link quality, 0–255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lqi: Option<f64>,
}

/// Original codes, kept verbatim so upstream systems can map them again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Codes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sia: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snomed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

impl Codes {
    pub fn is_empty(&self) -> bool {
        self.contact_id.is_none()
            && self.sia.is_none()
            && self.scaip.is_none()
            && self.snomed.is_none()
            && self.vendor.is_none()
    }
}

/// What arrived on the wire, for audit and dedupe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Raw {
    /// `mqtt`, `sia-dc09`, `espa444`, `scaip`, `http`, `gateway`.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// JSON as received, or base64 of binary input.
    pub payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_id: Option<String>,
}

/// What an adapter hands to `Ingest::submit`: everything it knows from the wire. The core adds
/// the envelope (id, source, sequence, recordedtime) and the registry's view (device id,
/// location, resident, `registered`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    /// Occurrence time from the device, when it sent one we trust.
    pub time: Option<Timestamp>,
    /// `data` as far as the adapter can fill it; `location` and `resident` are overwritten.
    pub data: EventData,
    /// Keys the registry matches `[[device]] match = {…}` against, e.g. `device`, or `account`
    /// and `zone`.
    pub registry_keys: BTreeMap<String, String>,
}

impl EventDraft {
    /// A draft with the kind's default priority and nothing else filled in.
    pub fn new(
        kind: Kind,
        phase: Phase,
        device_id: impl Into<String>,
        adapter: impl Into<String>,
    ) -> Self {
        EventDraft {
            time: None,
            data: EventData {
                kind,
                phase,
                priority: kind.default_priority(),
                confidence: None,
                test: false,
                device: Device {
                    id: device_id.into(),
                    adapter: adapter.into(),
                    ..Device::default()
                },
                location: Location::default(),
                resident: None,
                observations: Vec::new(),
                threshold: None,
                battery: None,
                signal: None,
                codes: Codes::default(),
                message: None,
                raw: None,
                clock_skew_s: None,
                alert: None,
            },
            registry_keys: BTreeMap::new(),
        }
    }
}

impl Event {
    /// `type` of a device event of this kind.
    pub fn device_type(kind: Kind) -> String {
        format!("atgw.{kind}")
    }

    /// `type` of an alert lifecycle event.
    pub fn alert_type(phase: Phase) -> String {
        format!("atgw.alert.{phase}")
    }
}

/// Formats a sequence number the way CloudEvents' `sequence` extension needs it: fixed width so
/// that string order is numeric order.
pub fn format_sequence(n: u64) -> String {
    format!("{n:020}")
}

/// RFC 3339 UTC with exactly three fractional digits, as the schema requires.
pub mod rfc3339_ms {
    use jiff::{Timestamp, Unit};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(ts: &Timestamp) -> String {
        let ms = ts.as_millisecond();
        let truncated = Timestamp::from_millisecond(ms).unwrap_or(*ts);
        truncated
            .round(Unit::Millisecond)
            .unwrap_or(truncated)
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_exactly_millisecond_precision() {
        let ts: Timestamp = "2026-04-17T15:33:22Z".parse().unwrap();
        assert_eq!(rfc3339_ms::format(&ts), "2026-04-17T15:33:22.000Z");
        let ts: Timestamp = "2026-04-17T15:33:22.123456Z".parse().unwrap();
        assert_eq!(rfc3339_ms::format(&ts), "2026-04-17T15:33:22.123Z");
    }

    #[test]
    fn enums_round_trip_through_their_wire_spelling() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), *k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert!("falls".parse::<Kind>().is_err());
    }

    #[test]
    fn subject_names_only_the_known_parts() {
        let mut l = Location {
            site: "oakview".into(),
            ..Default::default()
        };
        assert_eq!(l.subject(), "site/oakview");
        l.area = Some("east".into());
        l.room = Some("12".into());
        assert_eq!(l.subject(), "site/oakview/area/east/room/12");
    }

    #[test]
    fn sequence_sorts_as_a_string() {
        assert!(format_sequence(9) < format_sequence(10));
        assert_eq!(format_sequence(4711), "00000000000000004711");
    }
}
