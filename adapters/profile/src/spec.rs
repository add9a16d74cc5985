//! The profile file format as serde reads it from TOML: shape only. Meaning (valid paths,
//! patterns, phases, value types) is checked in `compile.rs`, which can name the key at fault.
//!
//! Every table refuses unknown keys, so a typo (`priorty`) fails at load instead of silently
//! doing nothing. PROFILES.md documents each key for integrators.

use std::collections::BTreeMap;
use std::fmt;

use atgw_sdk::event::Confidence;
use atgw_sdk::{Kind, Phase, Priority};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A whole profile file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileFile {
    /// Defaults to the file stem.
    pub name: Option<String>,
    /// For people; ignored by the engine.
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub ignore: Vec<IgnoreSpec>,
    #[serde(default)]
    pub rule: Vec<RuleSpec>,

    // The single-rule form (the DESIGN §5 sketch): these keys at the top level make one rule,
    // checked before any `[[rule]]`.
    #[serde(rename = "match")]
    pub match_: Option<MatchSpec>,
    pub device: Option<DeviceSpec>,
    pub for_each: Option<String>,
    pub max_items: Option<usize>,
    #[serde(default)]
    pub state: Vec<StateSpec>,
    #[serde(default)]
    pub point: Vec<PointSpec>,
    #[serde(default)]
    pub observation: Vec<ObservationSpec>,
    pub battery: Option<BatterySpec>,
    pub signal: Option<SignalSpec>,
    pub time: Option<TimeSpec>,
    pub test: Option<TestSpec>,
    pub message: Option<String>,
    pub codes: Option<CodesSpec>,
    pub seen: Option<bool>,
}

impl ProfileFile {
    /// Moves the top-level rule keys into a rule. `Err` names a rule key used without `match`.
    pub(crate) fn take_top_rule(&mut self) -> Result<Option<RuleSpec>, &'static str> {
        let Some(match_) = self.match_.take() else {
            let stray = [
                ("device", self.device.is_some()),
                ("for_each", self.for_each.is_some()),
                ("max_items", self.max_items.is_some()),
                ("state", !self.state.is_empty()),
                ("point", !self.point.is_empty()),
                ("observation", !self.observation.is_empty()),
                ("battery", self.battery.is_some()),
                ("signal", self.signal.is_some()),
                ("time", self.time.is_some()),
                ("test", self.test.is_some()),
                ("message", self.message.is_some()),
                ("codes", self.codes.is_some()),
                ("seen", self.seen.is_some()),
            ];
            return match stray.iter().find(|(_, set)| *set) {
                Some((key, _)) => Err(key),
                None => Ok(None),
            };
        };
        Ok(Some(RuleSpec {
            name: None,
            match_,
            device: self.device.take(),
            for_each: self.for_each.take(),
            max_items: self.max_items.take(),
            state: std::mem::take(&mut self.state),
            point: std::mem::take(&mut self.point),
            observation: std::mem::take(&mut self.observation),
            battery: self.battery.take(),
            signal: self.signal.take(),
            time: self.time.take(),
            test: self.test.take(),
            message: self.message.take(),
            codes: self.codes.take(),
            seen: self.seen.take(),
        }))
    }
}

/// `[[ignore]]`: messages that are counted and dropped, not dead-lettered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IgnoreSpec {
    pub name: Option<String>,
    pub topic: Strings,
    #[serde(default)]
    pub except: Strings,
    pub payload: Option<PayloadFormat>,
    #[serde(default)]
    pub has: Vec<String>,
    #[serde(default)]
    pub equals: BTreeMap<String, toml::Value>,
    /// Numeric comparisons that must all hold: `["heart_rate > 0", "spo2 <= 100"]`.
    #[serde(default)]
    pub when: Vec<String>,
}

/// `[[rule]]`, or the top-level single rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub match_: MatchSpec,
    pub device: Option<DeviceSpec>,
    pub for_each: Option<String>,
    pub max_items: Option<usize>,
    #[serde(default)]
    pub state: Vec<StateSpec>,
    #[serde(default)]
    pub point: Vec<PointSpec>,
    #[serde(default)]
    pub observation: Vec<ObservationSpec>,
    pub battery: Option<BatterySpec>,
    pub signal: Option<SignalSpec>,
    pub time: Option<TimeSpec>,
    pub test: Option<TestSpec>,
    pub message: Option<String>,
    pub codes: Option<CodesSpec>,
    pub seen: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchSpec {
    pub topic: Strings,
    #[serde(default)]
    pub not_topic: Strings,
    pub payload: Option<PayloadFormat>,
    #[serde(default)]
    pub has: Vec<String>,
    #[serde(default)]
    pub equals: BTreeMap<String, toml::Value>,
    /// Numeric comparisons that must all hold: `["heart_rate > 0", "spo2 <= 100"]`.
    #[serde(default)]
    pub when: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PayloadFormat {
    Json,
    Text,
    JsonOrText,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceSpec {
    pub id: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub component: Option<String>,
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ValueType {
    Bool,
    String,
    Integer,
}

/// What to do with a value missing from `values`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Other {
    Reject,
    Ignore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateSpec {
    pub path: Strings,
    pub key: Option<String>,
    pub kind: Kind,
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    pub priority: Option<Priority>,
    pub confidence: Option<Confidence>,
    pub values: Option<BTreeMap<String, ValueSpec>>,
    pub other: Option<Other>,
    pub message: Option<String>,
    pub codes: Option<CodesSpec>,
    pub test: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointSpec {
    pub path: Option<Strings>,
    pub kind: Kind,
    pub phase: Option<Phase>,
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    pub priority: Option<Priority>,
    pub confidence: Option<Confidence>,
    pub values: Option<PointValues>,
    pub other: Option<Other>,
    pub message: Option<String>,
    pub codes: Option<CodesSpec>,
    pub test: Option<bool>,
}

/// What one value maps to; every key overrides the state's or point's own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValueSpec {
    pub kind: Option<Kind>,
    pub phase: Option<Phase>,
    pub priority: Option<Priority>,
    pub confidence: Option<Confidence>,
    pub test: Option<bool>,
    pub component: Option<String>,
    pub message: Option<String>,
    pub codes: Option<CodesSpec>,
    /// No event and no state change for this value.
    #[serde(default)]
    pub ignore: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodesSpec {
    pub contact_id: Option<String>,
    pub sia: Option<String>,
    pub scaip: Option<String>,
    pub snomed: Option<String>,
    pub vendor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObservationSpec {
    pub path: Strings,
    pub name: String,
    pub unit: Option<String>,
    pub code: Option<CodingSpec>,
    pub loinc: Option<String>,
    pub mdc: Option<u32>,
    pub scale: Option<f64>,
    pub round: Option<u32>,
    #[serde(default)]
    pub absent: Vec<Sentinel>,
    /// Other fields whose value means this one is absent: `{ heart_rate = 0 }` (a watch not
    /// worn sends 0 for every vital).
    #[serde(default)]
    pub absent_when: std::collections::BTreeMap<String, Sentinel>,
    pub absent_reason: Option<String>,
    pub method: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodingSpec {
    pub system: String,
    pub code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatterySpec {
    pub percent: Option<Strings>,
    pub low: Option<Strings>,
    pub voltage_mv: Option<Strings>,
    /// Percent at or below which the battery is low even without the device's flag (default 15).
    pub low_percent: Option<f64>,
    /// While the battery stays low, raise `low_battery` again this long after the last raise,
    /// at the device's next report (default `24h`).
    pub remind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignalSpec {
    pub lqi: Option<Strings>,
    pub rssi: Option<Strings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeSpec {
    pub path: Strings,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestSpec {
    pub path: Strings,
    pub equals: Option<toml::Value>,
}

/// A string or a list of strings (`path = "state"` or `path = ["state", "$"]`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Strings(pub Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Strings, E> {
                Ok(Strings(vec![s.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Strings(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `values = ["emergency", "sos"]` (each inherits the point's mapping) or a table of mappings.
#[derive(Debug)]
pub(crate) struct PointValues(pub BTreeMap<String, ValueSpec>);

impl<'de> Deserialize<'de> for PointValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PointValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of values or a table of value = { … } mappings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PointValues, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.insert(s, ValueSpec::default());
                }
                Ok(PointValues(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PointValues, A::Error> {
                BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(PointValues)
            }
        }
        d.deserialize_any(V)
    }
}

/// A raw value meaning "no reading" (`127` from an oximeter with no finger, `"--"`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sentinel {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Sentinel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Sentinel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Sentinel, E> {
                Ok(Sentinel::Number(n as f64))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Sentinel, E> {
                Ok(Sentinel::Number(n as f64))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Sentinel, E> {
                Ok(Sentinel::Number(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Sentinel, E> {
                Ok(Sentinel::Text(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
