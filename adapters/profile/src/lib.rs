//! atgw-profile: device profiles, so an integrator adds a device that speaks a supported
//! transport (MQTT now, HTTP later) with a TOML file instead of Rust. A profile matches messages
//! by topic and payload and maps them to `EventDraft`s: kind, phase, priority, confidence, test,
//! device, observations, battery, signal and time, with edge detection for full-state devices.
//! PROFILES.md (beside this crate's Cargo.toml) is the integrator's reference.
//!
//! # Layout
//! - `spec`: the TOML file format as serde reads it (shape only).
//! - `compile`: checks a file's meaning and builds what evaluation runs;
//!   every error names the key.
//! - `compiled`: what a profile compiles to (rules, ignores, mappings), the data `eval` runs.
//! - `eval`: runs a message through the ordered profiles to an [`Evaluation`].
//! - `pattern`: topic patterns with `+`, `#` and named captures.
//! - `path`: JSON paths (`data.value.device_list[0]`) and path alternatives.
//! - `template`: `zigbee:{device}`-style strings from captures and paths.
//! - `edge`: the edge-detection decision for state fields.
//! - `time`: device timestamps (RFC 3339, epoch s/ms, patterns in the site zone).
//! - `coerce`: strict and lenient readings of JSON values.
//! - `error`: why a profile did not load.
#![forbid(unsafe_code)]

mod coerce;
mod compile;
mod compiled;
mod edge;
mod error;
mod eval;
mod path;
mod pattern;
mod spec;
mod template;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use atgw_sdk::ingest::Seen;
use atgw_sdk::{EventDraft, StateUpdate};

pub use error::ProfileError;
pub use eval::state_key_device;

/// One compiled profile.
pub struct Profile {
    /// The profile's name: its `name` key, else the file stem. Prefixes its edge-detection keys.
    pub name: String,
    compiled: compiled::Compiled,
}

impl Profile {
    /// Parses and checks a profile. `name` is used when the text has no `name` key, and names
    /// the profile in errors.
    pub fn parse(name: &str, toml_text: &str) -> Result<Profile, ProfileError> {
        Profile::parse_labelled(name, name, toml_text)
    }

    fn parse_labelled(file: &str, name: &str, toml_text: &str) -> Result<Profile, ProfileError> {
        let compiled = compile::compile(file, name, toml_text)?;
        Ok(Profile {
            name: compiled.name.clone(),
            compiled,
        })
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("ignores", &self.compiled.ignores.len())
            .field("rules", &self.compiled.rules.len())
            .finish()
    }
}

/// Profiles in the order they are tried; the first ignore or rule that matches a message wins.
#[derive(Debug, Default)]
pub struct ProfileSet {
    profiles: Vec<Profile>,
}

impl ProfileSet {
    /// Loads `<dir>/<name>.toml` for each name, in order (first match wins). Names must be plain
    /// file stems, and the loaded profiles' names must be unique.
    pub fn load(dir: &Path, names: &[String]) -> Result<ProfileSet, ProfileError> {
        let mut profiles: Vec<Profile> = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(format!("{name}.toml"));
            let label = path.display().to_string();
            if name.contains(['/', '\\']) || name.starts_with('.') || name.is_empty() {
                return Err(ProfileError::invalid(
                    &label,
                    "profiles",
                    format!(
                        "`{name}` is not a profile file stem; list names like \"zigbee2mqtt\", without directories or .toml"
                    ),
                ));
            }
            let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Read {
                file: path.clone(),
                source,
            })?;
            let profile = Profile::parse_labelled(&label, name, &text)?;
            if let Some(first) = profiles.iter().position(|p| p.name == profile.name) {
                return Err(ProfileError::DuplicateName {
                    name: profile.name,
                    first: dir
                        .join(format!("{}.toml", names[first]))
                        .display()
                        .to_string(),
                    second: label,
                });
            }
            profiles.push(profile);
        }
        Ok(ProfileSet { profiles })
    }

    /// A set from already parsed profiles, in order. Their names should be unique (`load`
    /// enforces it): two profiles with one name would share edge-detection state.
    pub fn from_profiles(profiles: Vec<Profile>) -> ProfileSet {
        ProfileSet { profiles }
    }

    /// Maps one message. Never panics, whatever the topic and payload.
    pub fn evaluate(&self, input: &Input<'_>, state: &dyn StateView) -> Evaluation {
        let compiled: Vec<&compiled::Compiled> =
            self.profiles.iter().map(|p| &p.compiled).collect();
        eval::evaluate(&compiled, input, state)
    }

    /// Every registry key a rule of these profiles puts on its events (`device.keys`).
    pub fn registry_keys(&self) -> std::collections::BTreeSet<String> {
        self.profiles
            .iter()
            .flat_map(|p| p.compiled.rules.iter())
            .flat_map(|r| r.device.keys.iter().map(|(k, _)| k.clone()))
            .collect()
    }

    /// The profiles' names, in evaluation order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.iter().map(|p| p.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}

/// A path outside a profile: how a transport's config names a value in a message or the
/// request around it (`EventId`, `@header.webhook-id`), with the profiles' path syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValuePath(path::JsonPath);

impl ValuePath {
    pub fn parse(text: &str) -> Result<ValuePath, String> {
        path::JsonPath::parse(text).map(ValuePath)
    }

    /// Whether the path reads the request around the message (`@…`), not the message.
    pub fn reads_request(&self) -> bool {
        self.0.reads_request()
    }

    /// The scalar at the path as text (a string as it is, a number or bool as JSON writes
    /// it); `None` when absent, null, empty, or an object or array.
    pub fn text(&self, message: &serde_json::Value, request: &serde_json::Value) -> Option<String> {
        match self.0.get(message, message, request)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One message as the transport received it.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// `raw.protocol` of the events: `mqtt`, `http`.
    pub protocol: &'a str,
    /// The MQTT topic, or the HTTP request path without its leading `/`.
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// Gateway receipt time.
    pub received: jiff::Timestamp,
    /// The adapter instance's name (`device.adapter` of every event).
    pub adapter: &'a str,
    /// The site's zone, for device times written without an offset.
    pub timezone: &'a jiff::tz::TimeZone,
    /// What paths starting with `@` read: for HTTP `{"header": {…}, "query": {…}}` (header
    /// names in lower case, first value of each). `None` reads as empty.
    pub request: Option<&'a serde_json::Value>,
}

/// Read access to the adapter's persisted state (edge-detection memory). Keys look like
/// `<profile>|<device id>|<field key>`; values are short `values` keys (`true`, `maybe_fall`).
pub trait StateView {
    fn get(&self, key: &str) -> Option<&str>;
}

impl StateView for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl StateView for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

/// Why a message a rule took produced no event, for a person ("the path is wrong", "it said
/// the same again", "this value means nothing"): one per state or point field of the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quiet {
    /// The field's path found nothing: `at` is how far it got (`$`, `$.data`) and `present`
    /// the keys of the object there.
    Absent {
        field: String,
        path: String,
        at: String,
        present: Vec<String>,
    },
    /// The value is the one already remembered for the device: no edge, no event.
    Repeat { field: String, value: String },
    /// The first value heard from the device raises nothing (a door reported closed, a
    /// device online): remembered, so the next change is an edge.
    FirstReading { field: String, value: String },
    /// The value is mapped to no event (`ignore = true`, `other = "ignore"`, or a point's
    /// `""`/`false`).
    NoEvent { field: String, value: String },
    /// The rule has no state or point fields: it records readings (observations, battery,
    /// signal) only.
    TelemetryOnly,
    /// `for_each` found no elements to map.
    NoItems { path: String },
}

/// What became of one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Evaluation {
    /// Matched a profile. `events` may be empty (a state repeat, telemetry with no edge).
    Mapped {
        profile: String,
        /// The rule that took the message.
        rule: String,
        events: Vec<EventDraft>,
        /// When `events` is empty: why, per state or point field of the rule ([`Quiet`]).
        quiet: Vec<Quiet>,
        /// Apply right after `evaluate` (the next message must see them) and persist them in the
        /// same transaction as `events`.
        state: Vec<StateUpdate>,
        seen: Vec<Seen>,
    },
    /// An explicit ignore rule matched (counted, not dead-lettered).
    Ignored { profile: String, rule: String },
    /// Could not be mapped: dead-letter it with this reason (`no_profile`, `invalid_json`,
    /// `not_utf8`, `not_an_object`, `wrong_type`, `unmapped_value`, `missing_field`, `invalid_device_id`,
    /// `too_many_items`) and a one-line detail for a person.
    Rejected {
        reason: &'static str,
        detail: String,
    },
}
