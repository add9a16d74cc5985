//! What a profile compiles to, and what `eval.rs` runs: patterns, paths and templates parsed
//! once, and every mapping resolved (value → state/point → rule defaults). Data only; building it
//! from a file, and every check on the way, is `compile.rs`.

use std::collections::BTreeMap;

use atgw_sdk::event::{Coding, Confidence};
use atgw_sdk::{Kind, Phase, Priority};
use serde_json::Value;

use crate::path::{JsonPath, Paths};
use crate::pattern::TopicPattern;
use crate::spec::{Other, PayloadFormat, Sentinel, ValueType};
use crate::template::Template;
use crate::time::TimeFormat;

/// A compiled profile.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub name: String,
    /// The name, and the file it came from when loaded from one: for rejection messages.
    pub label: String,
    pub ignores: Vec<Ignore>,
    pub rules: Vec<Rule>,
}

/// Payload shape and value conditions shared by rules and ignores.
#[derive(Debug)]
pub(crate) struct Conditions {
    pub payload: PayloadFormat,
    pub has: Vec<JsonPath>,
    /// Path and the values any one of which it must equal.
    pub equals: Vec<(JsonPath, Vec<Value>)>,
    /// Numeric comparisons, all of which must hold (a value that is no number fails).
    pub when: Vec<Comparison>,
}

/// `heart_rate > 0`: a path, an operator and a number.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    pub path: JsonPath,
    pub op: CmpOp,
    pub number: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub(crate) fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ignore {
    pub name: String,
    pub topics: Vec<TopicPattern>,
    pub except: Vec<TopicPattern>,
    /// `None` when the ignore says nothing about the payload: a topic alone decides, and the
    /// payload need not even be JSON (bridge logs, bare `/action` strings).
    pub conditions: Option<Conditions>,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub name: String,
    pub topics: Vec<TopicPattern>,
    pub not_topics: Vec<TopicPattern>,
    pub conditions: Conditions,
    pub for_each: Option<JsonPath>,
    pub max_items: usize,
    pub device: DeviceMap,
    pub states: Vec<StateMap>,
    pub points: Vec<PointMap>,
    pub observations: Vec<ObservationMap>,
    pub battery: BatteryMap,
    pub signal: SignalMap,
    pub time: Option<(Paths, TimeFormat)>,
    pub test: Option<(Paths, Option<Value>)>,
    pub seen: bool,
}

#[derive(Debug)]
pub(crate) struct DeviceMap {
    pub id: Template,
    pub vendor: Option<Template>,
    pub model: Option<Template>,
    pub component: Option<Template>,
    pub keys: Vec<(String, Template)>,
}

/// Everything one event gets from its value, its state or point, and its rule.
#[derive(Debug, Clone)]
pub(crate) struct Mapping {
    pub kind: Kind,
    pub phase: Phase,
    pub priority: Priority,
    pub confidence: Option<Confidence>,
    pub test: bool,
    pub component: Option<Template>,
    pub message: Option<Template>,
    pub codes: CodesMap,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CodesMap {
    pub contact_id: Option<Template>,
    pub sia: Option<Template>,
    pub scaip: Option<Template>,
    pub snomed: Option<Template>,
    pub vendor: Option<Template>,
}

#[derive(Debug)]
pub(crate) struct StateMap {
    pub paths: Paths,
    pub key: String,
    pub value_type: ValueType,
    /// `None` for a value marked `ignore = true`.
    pub values: BTreeMap<String, Option<Mapping>>,
    pub other: Other,
}

#[derive(Debug)]
pub(crate) struct PointMap {
    pub paths: Option<Paths>,
    pub value_type: ValueType,
    /// `None`: any present value other than `null`, `""` or `false` fires `default`.
    pub values: Option<BTreeMap<String, Option<Mapping>>>,
    pub default: Mapping,
    pub other: Other,
}

#[derive(Debug)]
pub(crate) struct ObservationMap {
    pub paths: Paths,
    pub name: String,
    pub unit: Option<String>,
    pub code: Option<Coding>,
    pub mdc: Option<u32>,
    pub scale: f64,
    pub round: Option<u32>,
    pub absent: Vec<Sentinel>,
    /// Fields (paths) whose value makes this observation absent.
    pub absent_when: Vec<(crate::path::JsonPath, Sentinel)>,
    pub absent_reason: String,
    pub method: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct BatteryMap {
    pub percent: Option<Paths>,
    pub low: Option<Paths>,
    pub voltage_mv: Option<Paths>,
    /// The built-in `low_battery` alarm; `None` when the rule maps neither `percent` nor
    /// `low`, or maps `low_battery` with a `[[state]]` of its own.
    pub alarm: Option<LowBatteryAlarm>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LowBatteryAlarm {
    /// At or below this percent the battery is low, whatever the device's flag says.
    pub low_percent: f64,
    /// Raise again at the next report this long after the last raise while still low.
    pub remind: jiff::SignedDuration,
}

#[derive(Debug, Default)]
pub(crate) struct SignalMap {
    pub lqi: Option<Paths>,
    pub rssi: Option<Paths>,
}
