//! Running a message through an ordered list of profiles: find the first ignore or rule that
//! matches, then map the message (or each `for_each` element) to events, edge-detecting state
//! fields against the caller's state map.
//!
//! Nothing here trusts the input: every read is an `Option`, every type is checked, and a
//! message either maps completely or is rejected whole (no half-applied state).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use atgw_sdk::event::{Battery, Codes, Observation, Raw, Signal};
use atgw_sdk::ingest::Seen;
use atgw_sdk::{EventDraft, Kind, Phase, StateUpdate};
use serde_json::Value;

use crate::coerce::{describe, json_equal, lenient_bool, lenient_number, truncate};
use crate::compiled::{CodesMap, Compiled, Conditions, Mapping, ObservationMap, Rule};
use crate::edge;
use crate::path::JsonPath;
use crate::spec::{Other, PayloadFormat, Sentinel, ValueType};
use crate::template::{RenderError, Scope, Template};
use crate::{Evaluation, Input, Quiet, StateView};

/// Longest device id a profile may produce; ids are part of every edge-detection key.
const MAX_DEVICE_ID: usize = 200;
/// Longest `message`, the SMS/pager limit of schema v1.
const MAX_MESSAGE: usize = 160;
/// Longest dead-letter detail.
const MAX_DETAIL: usize = 400;
/// Points above `battery.low_percent` a battery must reach before a low battery clears, so a
/// reading wavering between 15 and 16 % does not raise and clear all day.
pub(crate) const BATTERY_HYSTERESIS: f64 = 5.0;
/// Contact ID of a low system battery (384, "RF low battery"), as the zigbee2mqtt profile maps it.
const LOW_BATTERY_CONTACT_ID: &str = "384";

/// What [`Mapper::battery_alarm`] remembers about one device's battery.
enum BatteryMemory {
    Ok,
    Low { lowest: Option<f64>, raised_ms: i64 },
}

impl BatteryMemory {
    /// A stored value; anything unreadable (an older format, an edit) counts as a low battery
    /// raised long ago, so the next low report raises rather than being lost.
    fn parse(s: &str) -> BatteryMemory {
        if s == "ok" {
            return BatteryMemory::Ok;
        }
        let mut parts = s.split(' ').skip(1);
        let lowest = parts.next().and_then(|p| p.parse::<f64>().ok());
        let raised_ms = parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(i64::MIN);
        BatteryMemory::Low { lowest, raised_ms }
    }
}

/// Suffix of an edge-detection key that remembers a field's value in test mode.
const TEST_SUFFIX: &str = "|test";

/// The edge-state keys of one device field, `<profile>|<device>|<field>`: the real one and the
/// test-mode one. Profile names and field keys contain no `|`; device ids may.
fn state_keys(profile: &str, device: &str, field: &str) -> (String, String) {
    let real = format!("{profile}|{device}|{field}");
    let test = format!("{real}{TEST_SUFFIX}");
    (real, test)
}

/// The device an edge-state key of [`state_keys`] belongs to, so the journal can forget a
/// device's state with the device.
pub fn state_key_device(key: &str) -> Option<&str> {
    let key = key.strip_suffix(TEST_SUFFIX).unwrap_or(key);
    let (_, rest) = key.split_once('|')?;
    let (device, _) = rest.rsplit_once('|')?;
    Some(device)
}

/// Why a message could not be mapped.
#[derive(Debug, Clone)]
struct Rejection {
    reason: &'static str,
    detail: String,
}

/// The payload, decoded at most once per form and only when a rule's topic matched.
struct Payload<'a> {
    bytes: &'a [u8],
    json: OnceCell<Result<Value, Rejection>>,
    text: OnceCell<Result<Value, Rejection>>,
}

impl<'a> Payload<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Payload {
            bytes,
            json: OnceCell::new(),
            text: OnceCell::new(),
        }
    }

    fn json(&self) -> Result<&Value, Rejection> {
        self.json
            .get_or_init(|| {
                let text = std::str::from_utf8(self.bytes).map_err(|e| Rejection {
                    reason: "not_utf8",
                    detail: format!("the payload is not UTF-8 text ({e})"),
                })?;
                serde_json::from_str(text).map_err(|e| Rejection {
                    reason: "invalid_json",
                    detail: format!("the payload is not JSON ({e})"),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn text(&self) -> Result<&Value, Rejection> {
        self.text
            .get_or_init(|| match std::str::from_utf8(self.bytes) {
                Ok(s) => Ok(Value::String(s.trim().to_owned())),
                Err(e) => Err(Rejection {
                    reason: "not_utf8",
                    detail: format!("the payload is not UTF-8 text ({e})"),
                }),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn view(&self, format: PayloadFormat) -> Result<&Value, Rejection> {
        match format {
            PayloadFormat::Json => self.json(),
            PayloadFormat::Text => self.text(),
            PayloadFormat::JsonOrText => self.json().or_else(|_| self.text()),
        }
    }
}

pub(crate) fn evaluate(
    profiles: &[&Compiled],
    input: &Input<'_>,
    state: &dyn StateView,
) -> Evaluation {
    let payload = Payload::new(input.payload);
    let topic = input.topic;
    let request = input.request.unwrap_or(&Value::Null);
    let mut unreadable: Option<Rejection> = None;
    let mut topic_matched = false;
    for profile in profiles {
        for ignore in &profile.ignores {
            let hit = ignore.topics.iter().any(|t| t.matches(topic).is_some())
                && !ignore.except.iter().any(|t| t.matches(topic).is_some());
            if !hit {
                continue;
            }
            let Some(conditions) = &ignore.conditions else {
                return Evaluation::Ignored {
                    profile: profile.name.clone(),
                    rule: ignore.name.clone(),
                };
            };
            match payload.view(conditions.payload) {
                Ok(root) if conditions_hold(conditions, root, request) => {
                    return Evaluation::Ignored {
                        profile: profile.name.clone(),
                        rule: ignore.name.clone(),
                    };
                }
                Ok(_) => {}
                Err(r) => {
                    unreadable.get_or_insert(r);
                }
            }
        }
        for rule in &profile.rules {
            let Some(captures) = rule.topics.iter().find_map(|t| t.matches(topic)) else {
                continue;
            };
            if rule.not_topics.iter().any(|t| t.matches(topic).is_some()) {
                continue;
            }
            topic_matched = true;
            let root = match payload
                .view(rule.conditions.payload)
                .and_then(|root| readable(rule, root).map(|()| root))
            {
                Ok(root) => root,
                Err(r) => {
                    unreadable.get_or_insert(r);
                    continue;
                }
            };
            if !conditions_hold(&rule.conditions, root, request) {
                continue;
            }
            let mapper = Mapper {
                profile: &profile.name,
                rule,
                captures: &captures,
                message: root,
                input,
                state,
                updates: Vec::new(),
                first_quiet: 0,
            };
            return match mapper.run() {
                Ok((events, state, seen, quiet)) => Evaluation::Mapped {
                    profile: profile.name.clone(),
                    rule: rule.name.clone(),
                    events,
                    quiet,
                    state,
                    seen,
                },
                Err(r) => Evaluation::Rejected {
                    reason: r.reason,
                    detail: truncate(
                        &format!(
                            "profile {}, rule {}: {}",
                            profile.label, rule.name, r.detail
                        ),
                        MAX_DETAIL,
                    ),
                },
            };
        }
    }
    let shown = truncate(topic, 120);
    match unreadable {
        Some(r) => Evaluation::Rejected {
            reason: r.reason,
            detail: truncate(&format!("topic `{shown}`: {}", r.detail), MAX_DETAIL),
        },
        None if topic_matched => Evaluation::Rejected {
            reason: "no_profile",
            detail: format!(
                "topic `{shown}` matched a profile's topic, but no rule's `has`/`equals` conditions held"
            ),
        },
        None => Evaluation::Rejected {
            reason: "no_profile",
            detail: format!("no configured profile matches topic `{shown}`"),
        },
    }
}

/// A `json` rule reads the fields of an object: a payload that is JSON but not an object (a
/// top-level array, a bare number or string) gives it nothing to read, and mapping it would
/// produce nothing at all, silently. Such a payload is unreadable for the rule, and a dead
/// letter (`not_an_object`) when no other rule reads it, unless the rule walks the root list
/// itself (`for_each = "$"` or `"[0]…"`). `json_or_text` rules read scalars through `$`.
fn readable(rule: &Rule, root: &Value) -> Result<(), Rejection> {
    let lists_root = rule
        .for_each
        .as_ref()
        .is_some_and(|p| !p.needs_object() && root.is_array());
    if rule.conditions.payload != PayloadFormat::Json || root.is_object() || lists_root {
        return Ok(());
    }
    Err(Rejection {
        reason: "not_an_object",
        detail: format!(
            "the payload is {}, not a JSON object with the device's fields",
            describe(root)
        ),
    })
}

fn conditions_hold(c: &Conditions, root: &Value, request: &Value) -> bool {
    c.has
        .iter()
        .all(|p| p.get(root, root, request).is_some_and(|v| !v.is_null()))
        && c.equals.iter().all(|(p, options)| {
            p.get(root, root, request)
                .is_some_and(|v| options.iter().any(|o| json_equal(v, o)))
        })
        && c.when.iter().all(|w| {
            w.path
                .get(root, root, request)
                .and_then(lenient_number)
                .is_some_and(|n| w.op.holds(n, w.number))
        })
}

type Mapped = (Vec<EventDraft>, Vec<StateUpdate>, Vec<Seen>, Vec<Quiet>);

struct Mapper<'a> {
    profile: &'a str,
    rule: &'a Rule,
    captures: &'a [(String, String)],
    message: &'a Value,
    input: &'a Input<'a>,
    state: &'a dyn StateView,
    /// Updates made by this message, consulted before `state` so a `for_each` list that names
    /// one device twice sees its own earlier element.
    updates: Vec<StateUpdate>,
    /// States (bit = index in the rule) seen for the first time with a value that raises
    /// nothing: remembered only. (A state that made no event otherwise was a repeat.)
    first_quiet: u64,
}

/// What every event of one element shares.
struct Common {
    device_id: String,
    keys: BTreeMap<String, String>,
    vendor: Option<String>,
    model: Option<String>,
    component: Option<String>,
    time: Option<jiff::Timestamp>,
    test: bool,
    battery: Option<Battery>,
    /// The device's own low-battery flag, before the profile's percent threshold is applied.
    battery_flag: Option<bool>,
    signal: Option<Signal>,
    observations: Vec<Observation>,
}

impl<'a> Mapper<'a> {
    /// What `@` paths read.
    fn request(&self) -> &'a Value {
        self.input.request.unwrap_or(&Value::Null)
    }

    fn run(mut self) -> Result<Mapped, Rejection> {
        let items: Vec<&Value> = match &self.rule.for_each {
            None => vec![self.message],
            Some(path) => match path.get(self.message, self.message, self.request()) {
                Some(Value::Array(list)) if list.len() > self.rule.max_items => {
                    return Err(Rejection {
                        reason: "too_many_items",
                        detail: format!(
                            "`{path}` has {} elements, more than max_items = {}",
                            list.len(),
                            self.rule.max_items
                        ),
                    });
                }
                Some(Value::Array(list)) => list.iter().collect(),
                Some(other) => return Err(wrong_type(path, other, "an array")),
                None => Vec::new(),
            },
        };
        let mut events = Vec::new();
        let mut seen: Vec<Seen> = Vec::new();
        for &item in &items {
            let scope = Scope {
                captures: self.captures,
                item,
                message: self.message,
                request: self.request(),
            };
            let common = self.common(&scope)?;
            self.states(&scope, &common, &mut events)?;
            self.points(&scope, &common, &mut events)?;
            self.battery_alarm(&scope, &common, &mut events);
            if self.rule.seen && !seen.iter().any(|s| s.device_id == common.device_id) {
                seen.push(Seen {
                    device_id: common.device_id.clone(),
                    registry_keys: common.keys.clone(),
                });
            }
        }
        // Only a message that produced nothing is explained (no cost on the alarm path).
        let quiet = if events.is_empty() {
            self.explain(&items)
        } else {
            Vec::new()
        };
        Ok((events, self.updates, seen, quiet))
    }

    /// Why the rule's fields produced nothing for these items (see [`Quiet`]).
    fn explain(&self, items: &[&Value]) -> Vec<Quiet> {
        let rule = self.rule;
        if rule.states.is_empty() && rule.points.is_empty() {
            return vec![Quiet::TelemetryOnly];
        }
        if items.is_empty() {
            let path = rule
                .for_each
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            return vec![Quiet::NoItems { path }];
        }
        let mut out = Vec::new();
        let absent = |paths: &crate::path::Paths, item: &Value, field: String| {
            let first = paths.first();
            let (at, present) = first.nearest_keys(item, self.message, self.request());
            let path = paths
                .all()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            Quiet::Absent {
                field,
                path,
                at,
                present,
            }
        };
        for &item in items {
            for (i, st) in rule.states.iter().enumerate() {
                let bit = if i < 64 { 1u64 << i } else { 0 };
                let q = match st.paths.get(item, self.message, self.request()) {
                    None => absent(&st.paths, item, st.key.clone()),
                    Some((_, v)) => {
                        let value = classify(st.value_type, v).unwrap_or_else(|| v.to_string());
                        let field = st.key.clone();
                        match st.values.get(&value) {
                            Some(Some(_)) if self.first_quiet & bit != 0 => {
                                Quiet::FirstReading { field, value }
                            }
                            Some(Some(_)) => Quiet::Repeat { field, value },
                            _ => Quiet::NoEvent { field, value },
                        }
                    }
                };
                if !out.contains(&q) {
                    out.push(q);
                }
            }
            for pt in &rule.points {
                let Some(paths) = &pt.paths else { continue };
                let field = paths.first().to_string();
                let q = match paths.get(item, self.message, self.request()) {
                    None => absent(paths, item, field),
                    Some((_, v)) => Quiet::NoEvent {
                        field,
                        value: classify(pt.value_type, v).unwrap_or_else(|| v.to_string()),
                    },
                };
                if !out.contains(&q) {
                    out.push(q);
                }
            }
        }
        out
    }

    fn common(&self, scope: &Scope<'_>) -> Result<Common, Rejection> {
        let rule = self.rule;
        let template = &rule.device.id;
        let device_id = match template.render(scope) {
            Ok(id) => id,
            Err(RenderError::Missing(p)) => {
                return Err(Rejection {
                    reason: "missing_field",
                    detail: format!(
                        "device id `{}` needs `{p}`, which is missing or null",
                        template.as_str()
                    ),
                });
            }
            Err(RenderError::NotScalar(p)) => {
                return Err(Rejection {
                    reason: "wrong_type",
                    detail: format!(
                        "device id `{}`: `{p}` is an object or array, expected a string or number",
                        template.as_str()
                    ),
                });
            }
        };
        if device_id.trim().is_empty()
            || device_id.len() > MAX_DEVICE_ID
            || device_id.chars().any(char::is_control)
        {
            return Err(Rejection {
                reason: "invalid_device_id",
                detail: format!(
                    "device id `{}` is empty, longer than {MAX_DEVICE_ID} bytes or holds control characters",
                    truncate(&device_id, 60)
                ),
            });
        }
        let mut keys: BTreeMap<String, String> = self.captures.iter().cloned().collect();
        for (k, t) in &rule.device.keys {
            if let Ok(v) = t.render(scope) {
                keys.insert(k.clone(), v);
            }
        }
        let render = |t: &Option<Template>| {
            t.as_ref()
                .and_then(|t| t.render(scope).ok())
                .filter(|s| !s.is_empty())
        };
        let (item, message, request) = (scope.item, scope.message, scope.request);
        let time = rule.time.as_ref().and_then(|(paths, format)| {
            format.read(
                paths.get(item, message, request)?.1,
                self.input.timezone,
                self.input.received,
            )
        });
        let number = |p: &Option<crate::path::Paths>| {
            p.as_ref()
                .and_then(|p| p.get(item, message, request))
                .and_then(|(_, v)| lenient_number(v))
        };
        let mut battery = Battery {
            percent: number(&rule.battery.percent),
            low: rule
                .battery
                .low
                .as_ref()
                .and_then(|p| p.get(item, message, request))
                .and_then(|(_, v)| lenient_bool(v)),
            voltage_mv: number(&rule.battery.voltage_mv),
        };
        let battery_flag = battery.low;
        // `battery.low` says whether the battery is low: the device's flag, or a percent at or
        // below the profile's threshold.
        if let Some(alarm) = rule.battery.alarm
            && battery.percent.is_some_and(|p| p <= alarm.low_percent)
        {
            battery.low = Some(true);
        }
        let signal = Signal {
            rssi_dbm: number(&rule.signal.rssi),
            lqi: number(&rule.signal.lqi),
        };
        let test = match &rule.test {
            None => false,
            Some((paths, equals)) => match (paths.get(item, message, request), equals) {
                (None, _) => false,
                (Some((_, v)), Some(e)) => json_equal(v, e),
                (Some((_, v)), None) => lenient_bool(v) == Some(true),
            },
        };
        let observations = rule
            .observations
            .iter()
            .filter_map(|o| observation(o, item, message, request).transpose())
            .collect::<Result<_, _>>()?;
        Ok(Common {
            keys,
            vendor: render(&rule.device.vendor),
            model: render(&rule.device.model),
            component: render(&rule.device.component),
            time,
            test,
            battery: (battery != Battery::default()).then_some(battery),
            battery_flag,
            signal: (signal != Signal::default()).then_some(signal),
            observations,
            device_id,
        })
    }

    fn states(
        &mut self,
        scope: &Scope<'_>,
        common: &Common,
        events: &mut Vec<EventDraft>,
    ) -> Result<(), Rejection> {
        let rule = self.rule;
        for (i, st) in rule.states.iter().enumerate() {
            let Some((path, v)) = st.paths.get(scope.item, scope.message, scope.request) else {
                continue;
            };
            let Some(key) = classify(st.value_type, v) else {
                return Err(wrong_type(path, v, expected(st.value_type)));
            };
            let mapping = match st.values.get(&key) {
                Some(Some(m)) => m,
                Some(None) => continue,
                None if st.other == Other::Ignore => continue,
                None => return Err(unmapped(path, &key, st.values.keys())),
            };
            // Test mode has its own edge memory: a test raise must neither suppress nor clear
            // the real alarm after it, and a real alarm must not hide the next test. A real
            // reading ends the device's test session, so its test memory is dropped.
            let test = common.test || mapping.test;
            let (real_key, test_key) = state_keys(self.profile, &common.device_id, &st.key);
            if !test && self.lookup(&test_key).is_some() {
                self.set(test_key.clone(), None);
            }
            let edge_key = if test { test_key } else { real_key };
            let previous = self.lookup(&edge_key);
            // What the value was mapped to is remembered with it, so two rules sharing a field
            // (a fall while not worn is suspected, the same fall worn is confirmed) differ.
            let m = mapping;
            let previous = previous.as_deref().map(|p| {
                let r = edge::recall(p);
                let phase = r.phase().or_else(|| {
                    st.values
                        .get(r.value)
                        .and_then(|m| m.as_ref().map(|m| m.phase))
                });
                (r.is(&key, m.kind, m.phase, m.confidence, m.priority), phase)
            });
            let decision = edge::decide_same(previous, mapping.phase);
            if decision.store {
                let outcome = edge::outcome(&key, m.kind, m.phase, m.confidence, m.priority);
                self.remember(edge_key, outcome);
            }
            if decision.emit {
                events.push(self.event(mapping, scope, common));
            } else if i < 64 && previous.is_none() {
                // For `explain`: a bit, so the alarm path allocates nothing for it.
                self.first_quiet |= 1 << i;
            }
        }
        Ok(())
    }

    /// The built-in `low_battery` alarm (PROFILES.md, "Low battery"): raised when the device's
    /// flag is set or the percent is at or below `low_percent`; raised again on each new low
    /// (a whole point below the lowest raised) and at the first report `remind` after the last
    /// raise while still low, so a battery a person resolved is not forgotten; cleared once the
    /// flag is off and the percent is more than [`BATTERY_HYSTERESIS`] points above the
    /// threshold. Remembered like a state, under `<profile>|<device>|battery` (test mode apart),
    /// as `ok` or `low <lowest percent or -> <ms of the last raise>`.
    fn battery_alarm(&mut self, scope: &Scope<'_>, common: &Common, events: &mut Vec<EventDraft>) {
        let Some(alarm) = self.rule.battery.alarm else {
            return;
        };
        let Some(battery) = &common.battery else {
            return;
        };
        let (flag, percent) = (common.battery_flag, battery.percent);
        let low = flag == Some(true) || percent.is_some_and(|p| p <= alarm.low_percent);
        let ok = flag != Some(true)
            && match percent {
                Some(p) => p > alarm.low_percent + BATTERY_HYSTERESIS,
                None => flag == Some(false),
            };
        let (real_key, test_key) = state_keys(self.profile, &common.device_id, "battery");
        if !common.test && self.lookup(&test_key).is_some() {
            self.set(test_key.clone(), None);
        }
        let key = if common.test { test_key } else { real_key };
        let now_ms = self.input.received.as_millisecond();
        let previous = self.lookup(&key);
        let previous = previous.as_deref().map(BatteryMemory::parse);
        let low_memory = |lowest: Option<f64>| {
            let lowest = lowest.map_or_else(|| "-".to_owned(), |p| p.to_string());
            format!("low {lowest} {now_ms}")
        };
        let phase = match previous {
            Some(BatteryMemory::Low { .. }) if ok => {
                self.remember(key, "ok".to_owned());
                Phase::Cleared
            }
            None | Some(BatteryMemory::Ok) if low => {
                self.remember(key, low_memory(percent));
                Phase::Raised
            }
            None if ok => {
                self.remember(key, "ok".to_owned());
                return;
            }
            Some(BatteryMemory::Low { lowest, raised_ms }) if low => {
                let new_low = percent.is_some_and(|p| lowest.is_none_or(|l| p <= l - 1.0));
                let remind_ms = alarm.remind.as_millis().min(i64::MAX as i128) as i64;
                let due = now_ms.saturating_sub(raised_ms) >= remind_ms;
                if !(new_low || due) {
                    return;
                }
                let lowest = match (lowest, percent) {
                    (Some(l), Some(p)) => Some(l.min(p)),
                    (l, p) => l.or(p),
                };
                self.remember(key, low_memory(lowest));
                Phase::Raised
            }
            _ => return,
        };
        let mapping = Mapping {
            kind: Kind::LowBattery,
            phase,
            priority: Kind::LowBattery.default_priority(),
            confidence: None,
            test: false,
            component: None,
            message: None,
            codes: CodesMap::default(),
        };
        let mut draft = self.event(&mapping, scope, common);
        draft.data.codes.contact_id = Some(LOW_BATTERY_CONTACT_ID.to_owned());
        if phase == Phase::Raised {
            draft.data.message = Some(match percent {
                Some(p) => format!("Low battery {p}%"),
                None => "Low battery".to_owned(),
            });
        }
        events.push(draft);
    }

    fn points(
        &self,
        scope: &Scope<'_>,
        common: &Common,
        events: &mut Vec<EventDraft>,
    ) -> Result<(), Rejection> {
        for pt in &self.rule.points {
            let mapping = match &pt.paths {
                None => &pt.default,
                Some(paths) => {
                    let Some((path, v)) = paths.get(scope.item, scope.message, scope.request)
                    else {
                        continue;
                    };
                    // zigbee2mqtt clears `action` with "" (and null, skipped above): no event.
                    if matches!(v, Value::String(s) if s.is_empty()) || *v == Value::Bool(false) {
                        continue;
                    }
                    match &pt.values {
                        None => &pt.default,
                        Some(values) => {
                            let Some(key) = classify(pt.value_type, v) else {
                                return Err(wrong_type(path, v, expected(pt.value_type)));
                            };
                            match values.get(&key) {
                                Some(Some(m)) => m,
                                Some(None) => continue,
                                None if pt.other == Other::Ignore => continue,
                                None => return Err(unmapped(path, &key, values.keys())),
                            }
                        }
                    }
                }
            };
            events.push(self.event(mapping, scope, common));
        }
        Ok(())
    }

    fn lookup(&self, key: &str) -> Option<String> {
        match self.updates.iter().find(|u| u.key == key) {
            Some(u) => u.value.clone(),
            None => self.state.get(key).map(str::to_owned),
        }
    }

    fn remember(&mut self, key: String, value: String) {
        self.set(key, Some(value));
    }

    /// Records a state change (`None` forgets the key).
    fn set(&mut self, key: String, value: Option<String>) {
        match self.updates.iter_mut().find(|u| u.key == key) {
            Some(u) => u.value = value,
            None => self.updates.push(StateUpdate { key, value }),
        }
    }

    fn event(&self, m: &Mapping, scope: &Scope<'_>, common: &Common) -> EventDraft {
        let mut draft = EventDraft::new(
            m.kind,
            m.phase,
            common.device_id.clone(),
            self.input.adapter,
        );
        draft.time = common.time;
        draft.registry_keys = common.keys.clone();
        let data = &mut draft.data;
        data.priority = m.priority;
        data.confidence = m.confidence;
        data.test = common.test || m.test;
        data.device.vendor = common.vendor.clone();
        data.device.model = common.model.clone();
        data.device.component = m
            .component
            .as_ref()
            .and_then(|t| t.render(scope).ok())
            .or_else(|| common.component.clone());
        data.observations = common.observations.clone();
        data.battery = common.battery.clone();
        data.signal = common.signal.clone();
        data.codes = codes(&m.codes, scope);
        data.message = m
            .message
            .as_ref()
            .and_then(|t| t.render(scope).ok())
            .map(|s| truncate_plain(&s, MAX_MESSAGE))
            .filter(|s| !s.is_empty());
        data.raw = Some(Raw {
            protocol: self.input.protocol.to_owned(),
            topic: Some(self.input.topic.to_owned()),
            path: None,
            payload: self.message.clone(),
            upstream_id: None,
        });
        draft
    }
}

fn codes(c: &CodesMap, scope: &Scope<'_>) -> Codes {
    let r = |t: &Option<Template>| t.as_ref().and_then(|t| t.render(scope).ok());
    Codes {
        contact_id: r(&c.contact_id),
        sia: r(&c.sia),
        scaip: r(&c.scaip),
        snomed: r(&c.snomed),
        vendor: r(&c.vendor),
    }
}

/// At most `max` characters, without the ellipsis `truncate` adds (it would cost one of them).
fn truncate_plain(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The `values` key a JSON value selects, or `None` when its type is wrong.
fn classify(t: ValueType, v: &Value) -> Option<String> {
    match (t, v) {
        (ValueType::Bool, Value::Bool(b)) => Some(b.to_string()),
        (ValueType::String, Value::String(s)) => Some(s.clone()),
        (ValueType::Integer, Value::Number(n)) => n.as_i64().map(|i| i.to_string()),
        _ => None,
    }
}

fn expected(t: ValueType) -> &'static str {
    match t {
        ValueType::Bool => "true or false",
        ValueType::String => "a string",
        ValueType::Integer => "a whole number",
    }
}

fn wrong_type(path: &JsonPath, v: &Value, expected: &str) -> Rejection {
    // The usual cause: the profile's `values` keys were written for another JSON type.
    let (string, boolean) = (
        self::expected(ValueType::String),
        self::expected(ValueType::Bool),
    );
    let hint = match v {
        Value::Bool(_) if expected == string => {
            "; the device sends true/false: write the values as `values = { true = …, false = … }` (a boolean state)"
        }
        Value::String(_) if expected == boolean => {
            "; the device sends text: list its words in `values` (`values = { \"on\" = …, \"off\" = … }`), or `type = \"string\"`"
        }
        Value::Number(_) if expected == string || expected == boolean => {
            "; the device sends a number: set `type = \"integer\"` and key `values` by number (`values = { 1 = … }`)"
        }
        _ => "",
    };
    Rejection {
        reason: "wrong_type",
        detail: format!("`{path}` is {}, expected {expected}{hint}", describe(v)),
    }
}

fn unmapped<'k>(path: &JsonPath, key: &str, known: impl Iterator<Item = &'k String>) -> Rejection {
    let known: Vec<&str> = known.map(String::as_str).collect();
    Rejection {
        reason: "unmapped_value",
        detail: format!(
            "`{path}` = `{}` is not in the profile's values ({}); add it to `values` or set `other = \"ignore\"`",
            truncate(key, 40),
            known.join(", ")
        ),
    }
}

/// One observation, `None` when the device did not report it.
/// Whether `v` is the sentinel `s` (`0`, `"--"`; a number also as text).
fn is(s: &Sentinel, v: &Value) -> bool {
    match (s, v) {
        (Sentinel::Number(n), Value::Number(_) | Value::String(_)) => lenient_number(v) == Some(*n),
        (Sentinel::Text(t), Value::String(s)) => s.trim() == t,
        _ => false,
    }
}

fn observation(
    o: &ObservationMap,
    item: &Value,
    message: &Value,
    request: &Value,
) -> Result<Option<Observation>, Rejection> {
    let Some((path, v)) = o.paths.get(item, message, request) else {
        return Ok(None);
    };
    let is_sentinel = o.absent.iter().any(|s| is(s, v))
        || o.absent_when
            .iter()
            .any(|(p, s)| p.get(item, message, request).is_some_and(|w| is(s, w)));
    let mut obs = Observation {
        name: o.name.clone(),
        code: o.code.clone(),
        mdc: o.mdc,
        unit: o.unit.clone(),
        method: o.method.clone(),
        status: o.status.clone(),
        ..Observation::default()
    };
    if is_sentinel {
        obs.absent_reason = Some(o.absent_reason.clone());
        return Ok(Some(obs));
    }
    let raw = match v {
        Value::Number(_) | Value::String(_) => lenient_number(v),
        _ => None,
    };
    let Some(raw) = raw else {
        return Err(wrong_type(path, v, "a number"));
    };
    let mut value = raw * o.scale;
    if let Some(places) = o.round {
        let factor = 10f64.powi(places as i32);
        value = (value * factor).round() / factor;
    }
    if value.is_finite() {
        obs.value = Some(value);
    } else {
        obs.absent_reason = Some("error".to_owned());
    }
    Ok(Some(obs))
}

#[cfg(test)]
mod state_key_tests {
    use super::*;

    #[test]
    fn a_state_key_names_its_device_real_or_test_even_with_bars_in_the_id() {
        for device in ["0xa4c1", "room/9|pad"] {
            let (real, test) = state_keys("zigbee2mqtt", device, "contact");
            assert_eq!(state_key_device(&real), Some(device));
            assert_eq!(state_key_device(&test), Some(device));
        }
        assert_eq!(state_key_device("watchdog.heartbeat_ms"), None);
    }
}
