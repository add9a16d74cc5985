//! The compiler: from the file format (`spec.rs`) to the structures `eval.rs` runs
//! (`compiled.rs`): patterns, paths and templates parsed once, every mapping resolved (value →
//! state/point → rule defaults), and every mistake reported with the key that holds it.

use std::collections::{BTreeMap, BTreeSet};

use atgw_sdk::event::{Coding, Confidence};
use atgw_sdk::{Kind, Phase, Priority};
use serde_json::Value;

use crate::compiled::{
    BatteryMap, CmpOp, CodesMap, Comparison, Compiled, Conditions, DeviceMap, Ignore,
    LowBatteryAlarm, Mapping, ObservationMap, PointMap, Rule, SignalMap, StateMap,
};
use crate::error::ProfileError;
use crate::path::{JsonPath, Paths};
use crate::pattern::TopicPattern;
use crate::spec::{
    self, CodesSpec, IgnoreSpec, MatchSpec, Other, PayloadFormat, PointSpec, ProfileFile, RuleSpec,
    StateSpec, ValueSpec, ValueType,
};
use crate::template::Template;
use crate::time::TimeFormat;

/// Longest profile name; names prefix every edge-detection key.
pub(crate) const MAX_NAME: usize = 64;
/// Longest edge-detection field key.
const MAX_KEY: usize = 64;
/// Default and largest `max_items` for `for_each`.
const DEFAULT_MAX_ITEMS: usize = 100;
const LIMIT_MAX_ITEMS: usize = 1000;

/// FHIR data-absent-reason codes (http://terminology.hl7.org/CodeSystem/data-absent-reason).
const ABSENT_REASONS: &[&str] = &[
    "unknown",
    "asked-unknown",
    "temp-unknown",
    "not-asked",
    "asked-declined",
    "masked",
    "not-applicable",
    "unsupported",
    "as-text",
    "error",
    "not-a-number",
    "negative-infinity",
    "positive-infinity",
    "not-performed",
    "not-permitted",
];

pub(crate) const LOINC: &str = "http://loinc.org";

/// Default `battery.low_percent`.
pub(crate) const DEFAULT_LOW_PERCENT: f64 = 15.0;
/// Default `battery.remind`: daily.
const DEFAULT_BATTERY_REMIND: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Compiles one profile. `file` names it in errors; `default_name` is used when the file has
/// no `name`.
pub(crate) fn compile(
    file: &str,
    default_name: &str,
    text: &str,
) -> Result<Compiled, ProfileError> {
    let mut spec: ProfileFile =
        toml::from_str(text).map_err(|e| ProfileError::syntax(file, text, &e))?;
    let c = Ctx { file };
    let name = spec.name.clone().unwrap_or_else(|| default_name.to_owned());
    check_profile_name(&name).map_err(|p| c.err("name", p))?;

    let ignores = spec
        .ignore
        .iter()
        .enumerate()
        .map(|(i, s)| c.ignore(&format!("ignore[{i}]"), s))
        .collect::<Result<Vec<_>, _>>()?;

    let top = spec.take_top_rule().map_err(|key| {
        c.err(
            key,
            "a top-level rule key needs `match` at the top level too (or move it into a [[rule]])",
        )
    })?;
    let mut rules = Vec::new();
    if let Some(rule) = top {
        rules.push(c.rule("", "main", &rule)?);
    }
    for (i, rule) in spec.rule.iter().enumerate() {
        let at = format!("rule[{i}].");
        let fallback = format!("rule[{i}]");
        rules.push(c.rule(&at, &fallback, rule)?);
    }
    if rules.is_empty() && ignores.is_empty() {
        return Err(c.err(
            "match",
            "the profile has no rule: add `match` (and a mapping) or [[rule]] / [[ignore]] tables",
        ));
    }
    let mut seen_names = BTreeSet::new();
    for rule in &rules {
        if !seen_names.insert(rule.name.as_str()) {
            return Err(c.err(
                "rule.name",
                format!(
                    "two rules are named `{}`; rule names must be unique",
                    rule.name
                ),
            ));
        }
    }
    Ok(Compiled {
        // Rejections name the file as well when it is more than the name (`load` passes the
        // path), so an integrator knows which file to open.
        label: if file == name {
            name.clone()
        } else {
            format!("{name} ({file})")
        },
        name,
        ignores,
        rules,
    })
}

fn check_profile_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a profile name; use up to {MAX_NAME} letters, digits, `-`, `_` or `.`"
        ))
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ProfileError {
        ProfileError::invalid(self.file, key, problem)
    }

    /// A kind only the gateway itself reports (a shelf's announcement) is no device's to send.
    fn device_kind(&self, key: &str, kind: Kind) -> Result<(), ProfileError> {
        if kind == Kind::Shelved {
            return Err(self.err(
                key,
                "`shelved` is the gateway's own announcement of a shelf; a device cannot report it",
            ));
        }
        Ok(())
    }

    fn patterns(&self, key: &str, texts: &[String]) -> Result<Vec<TopicPattern>, ProfileError> {
        texts
            .iter()
            .map(|t| TopicPattern::parse(t).map_err(|p| self.err(key, p)))
            .collect()
    }

    fn path(&self, key: &str, text: &str) -> Result<JsonPath, ProfileError> {
        JsonPath::parse(text).map_err(|p| self.err(key, p))
    }

    fn paths(&self, key: &str, texts: &spec::Strings) -> Result<Paths, ProfileError> {
        Paths::parse(&texts.0).map_err(|p| self.err(key, p))
    }

    fn template(&self, key: &str, text: &str, captures: &[&str]) -> Result<Template, ProfileError> {
        Template::parse(text, captures).map_err(|p| self.err(key, p))
    }

    fn conditions(
        &self,
        at: &str,
        payload: Option<PayloadFormat>,
        has: &[String],
        equals: &BTreeMap<String, toml::Value>,
        when: &[String],
    ) -> Result<Conditions, ProfileError> {
        let when = when
            .iter()
            .enumerate()
            .map(|(i, w)| self.comparison(&format!("{at}when[{i}]"), w))
            .collect::<Result<_, _>>()?;
        let has = has
            .iter()
            .map(|h| self.path(&format!("{at}has"), h))
            .collect::<Result<_, _>>()?;
        let mut flat = Vec::new();
        flatten_equals("", equals, &mut flat);
        let equals = flat
            .into_iter()
            .map(|(path, value)| {
                let key = format!("{at}equals.{path}");
                let path = self.path(&key, &path)?;
                let values = toml_to_json(&value).map_err(|p| self.err(&key, p))?;
                Ok((path, values))
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(Conditions {
            payload: payload.unwrap_or(PayloadFormat::Json),
            has,
            equals,
            when,
        })
    }

    /// `path op number`, e.g. `heart_rate > 0` (`<`, `<=`, `>`, `>=`, `==`, `!=`).
    fn comparison(&self, key: &str, text: &str) -> Result<Comparison, ProfileError> {
        let ops = [
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ];
        let bad = || {
            self.err(
                key,
                format!("`{text}` is not a comparison; write it like \"heart_rate > 0\" (a path, one of < <= > >= == !=, a number)"),
            )
        };
        let (at, sym, op) = ops
            .iter()
            .find_map(|(sym, op)| text.find(sym).map(|at| (at, *sym, *op)))
            .ok_or_else(bad)?;
        let path = text[..at].trim();
        let number: f64 = text[at + sym.len()..].trim().parse().map_err(|_| bad())?;
        if path.is_empty() || !number.is_finite() {
            return Err(bad());
        }
        Ok(Comparison {
            path: self.path(key, path)?,
            op,
            number,
        })
    }

    fn ignore(&self, at: &str, s: &IgnoreSpec) -> Result<Ignore, ProfileError> {
        if s.topic.0.is_empty() {
            return Err(self.err(format!("{at}.topic"), "needs at least one topic pattern"));
        }
        let topics = self.patterns(&format!("{at}.topic"), &s.topic.0)?;
        let except = self.patterns(&format!("{at}.except"), &s.except.0)?;
        let conditions = if s.payload.is_none()
            && s.has.is_empty()
            && s.equals.is_empty()
            && s.when.is_empty()
        {
            None
        } else {
            Some(self.conditions(&format!("{at}."), s.payload, &s.has, &s.equals, &s.when)?)
        };
        let name = s.name.clone().unwrap_or_else(|| s.topic.0.join(" "));
        Ok(Ignore {
            name,
            topics,
            except,
            conditions,
        })
    }

    fn rule(&self, at: &str, fallback_name: &str, s: &RuleSpec) -> Result<Rule, ProfileError> {
        let MatchSpec {
            topic,
            not_topic,
            payload,
            has,
            equals,
            when,
        } = &s.match_;
        if topic.0.is_empty() {
            return Err(self.err(
                format!("{at}match.topic"),
                "needs at least one topic pattern",
            ));
        }
        let topics = self.patterns(&format!("{at}match.topic"), &topic.0)?;
        let names: BTreeSet<&str> = topics[0].capture_names().into_iter().collect();
        for t in &topics[1..] {
            if t.capture_names().into_iter().collect::<BTreeSet<_>>() != names {
                return Err(self.err(
                    format!("{at}match.topic"),
                    format!("`{t}` and `{}` capture different names; every pattern of one rule must capture the same names", topics[0]),
                ));
            }
        }
        let captures: Vec<&str> = names.into_iter().collect();
        let not_topics = self.patterns(&format!("{at}match.not_topic"), &not_topic.0)?;
        let mut conditions =
            self.conditions(&format!("{at}match."), *payload, has, equals, when)?;
        let for_each = match &s.for_each {
            Some(p) => {
                let path = self.path(&format!("{at}for_each"), p)?;
                // A message without the list is not this rule's message.
                conditions.has.push(path.clone());
                Some(path)
            }
            None => None,
        };
        let max_items = s.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
        if !(1..=LIMIT_MAX_ITEMS).contains(&max_items) {
            return Err(self.err(
                format!("{at}max_items"),
                format!("must be between 1 and {LIMIT_MAX_ITEMS}"),
            ));
        }

        let Some(device) = &s.device else {
            return Err(self.err(
                format!("{at}device.id"),
                "a rule needs `device.id`, e.g. \"zigbee:{device}\"",
            ));
        };
        let t =
            |key: &str, text: &str| self.template(&format!("{at}device.{key}"), text, &captures);
        let opt = |key: &str, text: &Option<String>| text.as_deref().map(|x| t(key, x)).transpose();
        if device.id.trim().is_empty() {
            return Err(self.err(format!("{at}device.id"), "cannot be empty"));
        }
        let device_map = DeviceMap {
            id: t("id", &device.id)?,
            vendor: opt("vendor", &device.vendor)?,
            model: opt("model", &device.model)?,
            component: opt("component", &device.component)?,
            keys: device
                .keys
                .iter()
                .map(|(k, v)| Ok((k.clone(), t(&format!("keys.{k}"), v)?)))
                .collect::<Result<_, ProfileError>>()?,
        };

        let rule_defaults = Defaults {
            message: s
                .message
                .as_deref()
                .map(|m| self.template(&format!("{at}message"), m, &captures))
                .transpose()?,
            codes: self.codes(
                &format!("{at}codes"),
                s.codes.as_ref(),
                &captures,
                CodesMap::default(),
            )?,
        };

        let mut keys = BTreeSet::new();
        let mut states = Vec::new();
        for (i, st) in s.state.iter().enumerate() {
            let state = self.state(&format!("{at}state[{i}]"), st, &captures, &rule_defaults)?;
            if !keys.insert(state.key.clone()) {
                return Err(self.err(
                    format!("{at}state[{i}].key"),
                    format!(
                        "two states of this rule use the edge key `{}`; give one a different `key`",
                        state.key
                    ),
                ));
            }
            states.push(state);
        }
        let points = s
            .point
            .iter()
            .enumerate()
            .map(|(i, p)| self.point(&format!("{at}point[{i}]"), p, &captures, &rule_defaults))
            .collect::<Result<_, _>>()?;
        let observations = s
            .observation
            .iter()
            .enumerate()
            .map(|(i, o)| self.observation(&format!("{at}observation[{i}]"), o))
            .collect::<Result<_, _>>()?;

        let opt_paths = |key: &str, p: &Option<spec::Strings>| {
            p.as_ref()
                .map(|p| self.paths(&format!("{at}{key}"), p))
                .transpose()
        };
        let battery = match &s.battery {
            Some(b) => {
                let low_percent = b.low_percent.unwrap_or(DEFAULT_LOW_PERCENT);
                if !(low_percent.is_finite() && (0.0..100.0).contains(&low_percent)) {
                    return Err(self.err(
                        format!("{at}battery.low_percent"),
                        format!(
                            "is {low_percent}; expected a percent from 0 to below 100, e.g. 15"
                        ),
                    ));
                }
                let remind = match &b.remind {
                    None => DEFAULT_BATTERY_REMIND,
                    Some(text) => text
                        .parse::<jiff::SignedDuration>()
                        .ok()
                        .filter(|d| d.is_positive())
                        .ok_or_else(|| {
                            self.err(
                                format!("{at}battery.remind"),
                                format!("`{text}` is not a duration above zero, e.g. \"24h\""),
                            )
                        })?,
                };
                let percent = opt_paths("battery.percent", &b.percent)?;
                let low = opt_paths("battery.low", &b.low)?;
                // A `[[state]]` of kind low_battery is the author's own mapping: it replaces
                // the built-in alarm rather than doubling it.
                let own_state = s.state.iter().any(|st| {
                    st.kind == Kind::LowBattery
                        || st
                            .values
                            .iter()
                            .flatten()
                            .any(|(_, v)| v.kind == Some(Kind::LowBattery))
                });
                let alarm = ((percent.is_some() || low.is_some()) && !own_state).then_some(
                    LowBatteryAlarm {
                        low_percent,
                        remind,
                    },
                );
                BatteryMap {
                    percent,
                    low,
                    voltage_mv: opt_paths("battery.voltage_mv", &b.voltage_mv)?,
                    alarm,
                }
            }
            None => BatteryMap::default(),
        };
        let signal = match &s.signal {
            Some(b) => SignalMap {
                lqi: opt_paths("signal.lqi", &b.lqi)?,
                rssi: opt_paths("signal.rssi", &b.rssi)?,
            },
            None => SignalMap::default(),
        };
        let time = match &s.time {
            Some(t) => {
                let paths = self.paths(&format!("{at}time.path"), &t.path)?;
                let format = TimeFormat::parse(t.format.as_deref().unwrap_or("auto"))
                    .map_err(|p| self.err(format!("{at}time.format"), p))?;
                Some((paths, format))
            }
            None => None,
        };
        let test = match &s.test {
            Some(t) => {
                let paths = self.paths(&format!("{at}test.path"), &t.path)?;
                let equals = match &t.equals {
                    Some(v) => {
                        let mut vs =
                            toml_to_json(v).map_err(|p| self.err(format!("{at}test.equals"), p))?;
                        if vs.len() != 1 {
                            return Err(self.err(
                                format!("{at}test.equals"),
                                "expected one string, number or boolean",
                            ));
                        }
                        vs.pop()
                    }
                    None => None,
                };
                Some((paths, equals))
            }
            None => None,
        };

        Ok(Rule {
            name: s.name.clone().unwrap_or_else(|| fallback_name.to_owned()),
            topics,
            not_topics,
            conditions,
            for_each,
            max_items,
            device: device_map,
            states,
            points,
            observations,
            battery,
            signal,
            time,
            test,
            seen: s.seen.unwrap_or(true),
        })
    }

    fn codes(
        &self,
        at: &str,
        s: Option<&CodesSpec>,
        captures: &[&str],
        base: CodesMap,
    ) -> Result<CodesMap, ProfileError> {
        let Some(s) = s else { return Ok(base) };
        let t = |key: &str, text: &Option<String>, fallback: Option<Template>| match text {
            Some(x) => self.template(&format!("{at}.{key}"), x, captures).map(Some),
            None => Ok(fallback),
        };
        Ok(CodesMap {
            contact_id: t("contact_id", &s.contact_id, base.contact_id)?,
            sia: t("sia", &s.sia, base.sia)?,
            scaip: t("scaip", &s.scaip, base.scaip)?,
            snomed: t("snomed", &s.snomed, base.snomed)?,
            vendor: t("vendor", &s.vendor, base.vendor)?,
        })
    }

    /// Resolves one value's mapping over its parent's.
    fn mapping(
        &self,
        at: &str,
        parent: &Parent,
        v: &ValueSpec,
        captures: &[&str],
        phase_required: bool,
    ) -> Result<Option<Mapping>, ProfileError> {
        if v.ignore {
            return Ok(None);
        }
        let kind = v.kind.unwrap_or(parent.kind);
        self.device_kind(&format!("{at}.kind"), kind)?;
        let phase = match (v.phase, parent.phase) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) if phase_required => {
                return Err(self.err(
                    format!("{at}.phase"),
                    "needs a phase: raised, cleared or point (or `ignore = true`)",
                ));
            }
            (None, None) => Phase::Point,
        };
        if !matches!(phase, Phase::Raised | Phase::Cleared | Phase::Point) {
            return Err(self.err(
                format!("{at}.phase"),
                format!("`{phase}` is set by atgw's alert engine; a device profile may use raised, cleared or point"),
            ));
        }
        let component = v
            .component
            .as_deref()
            .map(|c| self.template(&format!("{at}.component"), c, captures))
            .transpose()?;
        let message = match &v.message {
            Some(m) => Some(self.template(&format!("{at}.message"), m, captures)?),
            None => parent.message.clone(),
        };
        let codes = self.codes(
            &format!("{at}.codes"),
            v.codes.as_ref(),
            captures,
            parent.codes.clone(),
        )?;
        Ok(Some(Mapping {
            kind,
            phase,
            priority: v
                .priority
                .or(parent.priority)
                .unwrap_or_else(|| kind.default_priority()),
            confidence: v.confidence.or(parent.confidence),
            test: v.test.or(parent.test).unwrap_or(false),
            component,
            message,
            codes,
        }))
    }

    fn state(
        &self,
        at: &str,
        s: &StateSpec,
        captures: &[&str],
        rule: &Defaults,
    ) -> Result<StateMap, ProfileError> {
        let paths = self.paths(&format!("{at}.path"), &s.path)?;
        let key = s
            .key
            .clone()
            .unwrap_or_else(|| paths.first().as_str().to_owned());
        if key.is_empty() || key.len() > MAX_KEY || key.contains('|') {
            return Err(self.err(
                format!("{at}.key"),
                format!("edge key `{key}` must be 1 to {MAX_KEY} characters without `|`; set `key = \"…\"`"),
            ));
        }
        self.device_kind(&format!("{at}.kind"), s.kind)?;
        let parent = Parent {
            kind: s.kind,
            phase: None,
            priority: s.priority,
            confidence: s.confidence,
            test: s.test,
            message: self.opt_message(
                &format!("{at}.message"),
                &s.message,
                captures,
                &rule.message,
            )?,
            codes: self.codes(
                &format!("{at}.codes"),
                s.codes.as_ref(),
                captures,
                rule.codes.clone(),
            )?,
        };
        let value_type = match (s.value_type, &s.values) {
            (Some(t), _) => t,
            (None, None) => ValueType::Bool,
            (None, Some(v)) if v.keys().all(|k| k == "true" || k == "false") => ValueType::Bool,
            (None, Some(_)) => ValueType::String,
        };
        let mut values = BTreeMap::new();
        match &s.values {
            None if value_type == ValueType::Bool => {
                // The IAS convention: true raises, false clears.
                for (k, phase) in [("true", Phase::Raised), ("false", Phase::Cleared)] {
                    let v = ValueSpec {
                        phase: Some(phase),
                        ..ValueSpec::default()
                    };
                    values.insert(k.to_owned(), self.mapping(at, &parent, &v, captures, true)?);
                }
            }
            None => {
                return Err(self.err(
                    format!("{at}.values"),
                    "a non-boolean state needs `values = { … }`",
                ));
            }
            Some(map) => {
                for (k, v) in map {
                    let vat = format!("{at}.values.{k}");
                    let k = self.value_key(&vat, k, value_type)?;
                    values.insert(k, self.mapping(&vat, &parent, v, captures, true)?);
                }
            }
        }
        Ok(StateMap {
            paths,
            key,
            value_type,
            values,
            other: s.other.unwrap_or(Other::Reject),
        })
    }

    fn point(
        &self,
        at: &str,
        s: &PointSpec,
        captures: &[&str],
        rule: &Defaults,
    ) -> Result<PointMap, ProfileError> {
        let paths = s
            .path
            .as_ref()
            .map(|p| self.paths(&format!("{at}.path"), p))
            .transpose()?;
        self.device_kind(&format!("{at}.kind"), s.kind)?;
        let parent = Parent {
            kind: s.kind,
            phase: Some(s.phase.unwrap_or(Phase::Point)),
            priority: s.priority,
            confidence: s.confidence,
            test: s.test,
            message: self.opt_message(
                &format!("{at}.message"),
                &s.message,
                captures,
                &rule.message,
            )?,
            codes: self.codes(
                &format!("{at}.codes"),
                s.codes.as_ref(),
                captures,
                rule.codes.clone(),
            )?,
        };
        let default = self
            .mapping(at, &parent, &ValueSpec::default(), captures, false)?
            .ok_or_else(|| self.err(at, "internal: default mapping ignored"))?;
        let value_type = s.value_type.unwrap_or(ValueType::String);
        let values = match &s.values {
            None => None,
            Some(_) if paths.is_none() => {
                return Err(self.err(
                    format!("{at}.values"),
                    "`values` needs a `path` to read them from",
                ));
            }
            Some(map) => {
                let mut out = BTreeMap::new();
                for (k, v) in &map.0 {
                    let vat = format!("{at}.values.{k}");
                    let k = self.value_key(&vat, k, value_type)?;
                    out.insert(k, self.mapping(&vat, &parent, v, captures, false)?);
                }
                Some(out)
            }
        };
        Ok(PointMap {
            paths,
            value_type,
            values,
            default,
            other: s.other.unwrap_or(Other::Ignore),
        })
    }

    fn opt_message(
        &self,
        key: &str,
        text: &Option<String>,
        captures: &[&str],
        fallback: &Option<Template>,
    ) -> Result<Option<Template>, ProfileError> {
        match text {
            Some(m) => Ok(Some(self.template(key, m, captures)?)),
            None => Ok(fallback.clone()),
        }
    }

    /// Checks a `values` key against the value type and normalises it (`01` → `1`).
    fn value_key(&self, at: &str, key: &str, t: ValueType) -> Result<String, ProfileError> {
        match t {
            ValueType::Bool if key == "true" || key == "false" => Ok(key.to_owned()),
            ValueType::Bool => Err(self.err(at, "a boolean state's values are `true` and `false`")),
            ValueType::Integer => key
                .trim()
                .parse::<i64>()
                .map(|n| n.to_string())
                .map_err(|_| {
                    self.err(
                        at,
                        "with `type = \"integer\"` every value must be a whole number",
                    )
                }),
            ValueType::String => Ok(key.to_owned()),
        }
    }

    fn observation(
        &self,
        at: &str,
        s: &spec::ObservationSpec,
    ) -> Result<ObservationMap, ProfileError> {
        let paths = self.paths(&format!("{at}.path"), &s.path)?;
        if s.name.trim().is_empty() {
            return Err(self.err(format!("{at}.name"), "needs a name, e.g. \"spo2\""));
        }
        let code = match (&s.code, &s.loinc) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    format!("{at}.loinc"),
                    "use either `loinc` or `code`, not both",
                ));
            }
            (Some(c), None) => Some(Coding {
                system: c.system.clone(),
                code: c.code.clone(),
            }),
            (None, Some(l)) => Some(Coding {
                system: LOINC.to_owned(),
                code: l.clone(),
            }),
            (None, None) => None,
        };
        let scale = s.scale.unwrap_or(1.0);
        if !scale.is_finite() || scale == 0.0 {
            return Err(self.err(format!("{at}.scale"), "must be a finite, non-zero number"));
        }
        if let Some(r) = s.round
            && r > 9
        {
            return Err(self.err(format!("{at}.round"), "decimal places must be 0 to 9"));
        }
        let absent_reason = s
            .absent_reason
            .clone()
            .unwrap_or_else(|| "unknown".to_owned());
        if !ABSENT_REASONS.contains(&absent_reason.as_str()) {
            return Err(self.err(
                format!("{at}.absent_reason"),
                format!(
                    "`{absent_reason}` is not a FHIR data-absent-reason code; expected one of {}",
                    ABSENT_REASONS.join(", ")
                ),
            ));
        }
        let absent_when = s
            .absent_when
            .iter()
            .map(|(p, sentinel)| {
                JsonPath::parse(p)
                    .map(|path| (path, sentinel.clone()))
                    .map_err(|e| self.err(format!("{at}.absent_when.{p}"), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(ObservationMap {
            paths,
            absent_when,
            name: s.name.clone(),
            unit: s.unit.clone(),
            code,
            mdc: s.mdc,
            scale,
            round: s.round,
            absent: s.absent.clone(),
            absent_reason,
            method: s.method.clone(),
            status: s.status.clone(),
        })
    }
}

/// Rule-level defaults inherited by states and points.
struct Defaults {
    message: Option<Template>,
    codes: CodesMap,
}

/// A state's or point's own mapping, inherited by its values.
struct Parent {
    kind: Kind,
    phase: Option<Phase>,
    priority: Option<Priority>,
    confidence: Option<Confidence>,
    test: Option<bool>,
    message: Option<Template>,
    codes: CodesMap,
}

/// `equals = { data = { attribute = "x" } }` and `equals = { "data.attribute" = "x" }` mean the
/// same: TOML turns an unquoted dotted key into nested tables, which we walk back into a path.
fn flatten_equals(
    prefix: &str,
    table: &BTreeMap<String, toml::Value>,
    out: &mut Vec<(String, toml::Value)>,
) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => {
                let t: BTreeMap<String, toml::Value> =
                    t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                flatten_equals(&path, &t, out);
            }
            _ => out.push((path, v.clone())),
        }
    }
}

/// A condition value as JSON; an array means "any of these".
fn toml_to_json(v: &toml::Value) -> Result<Vec<Value>, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(Value::from(s.clone())),
        toml::Value::Integer(i) => Ok(Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| "a value must be a finite number".to_owned()),
        toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
        _ => Err(
            "expected a string, number or boolean (or a list of them, meaning any of)".to_owned(),
        ),
    };
    match v {
        toml::Value::Array(list) if list.is_empty() => {
            Err("an empty list can never match".to_owned())
        }
        toml::Value::Array(list) => list.iter().map(scalar).collect(),
        other => scalar(other).map(|v| vec![v]),
    }
}
