//! The configuration file (DESIGN §9): its shape, how it is loaded (TOML file, then
//! `ATGW_SECTION__KEY` environment overrides), and the checks that turn a wrong setting into one
//! message naming the file, the key and what was expected. Unknown keys are errors.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use atgw_sdk::component::FileRole;
use serde::Deserialize;

mod split;

/// Default config file location on a gateway.
pub const DEFAULT_CONFIG: &str = "/etc/atgw/atgw.toml";

/// The whole file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub gateway: Gateway,
    #[serde(default)]
    pub journal: JournalSettings,
    #[serde(default, rename = "adapter")]
    pub adapters: Vec<AdapterConfig>,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<crate::alerts::policy::RouteConfig>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<crate::alerts::policy::PolicyConfig>,
    #[serde(default)]
    pub alerts: crate::alerts::policy::AlertSettings,
    /// Vital-sign rules (NEWS2 by default).
    #[serde(default)]
    pub vitals: crate::rules::vitals::config::VitalsConfig,
    /// Per-resident vital-sign settings (SpO2 scale 2, own limits).
    #[serde(default, rename = "resident")]
    pub residents: Vec<crate::rules::vitals::config::ResidentVitals>,
    /// The local HTTP API; absent means no API (and no default token).
    #[serde(default)]
    pub api: Option<crate::api::ApiConfig>,
}

/// `[gateway]`: who this gateway is and where it keeps things.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// CloudEvents `source` stem and MQTT client-id stem; unique per gateway.
    pub id: String,
    /// Site name: `location.site` and the CloudEvents `subject` root.
    pub site: String,
    /// State directory; the journal `atgw.db` lives here. Relative paths are relative to the
    /// config file's directory.
    pub data_dir: PathBuf,
    /// Directory of device profiles (`<name>.toml`).
    #[serde(default = "default_profiles_dir")]
    pub profiles_dir: PathBuf,
    /// IANA zone for device timestamps that carry no zone, e.g. `Europe/London`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// A device time further than this from the gateway's clock is flagged
    /// (`data.clock_skew_s`) and warned about; the event keeps it as `time`, rules use the
    /// receipt time. Default 2 minutes.
    #[serde(default = "default_max_clock_skew", with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

/// `[journal]`: durability and retention knobs (all optional).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// How long a device retransmission is recognised as one (dedupe keys are kept this long).
    #[serde(default = "default_dedupe_window", with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// Raw bytes kept per dead letter; longer input is truncated (its length is recorded).
    #[serde(default = "default_dead_letter_bytes")]
    pub dead_letter_bytes: usize,
    /// Dead letters kept at most: beyond it the oldest are deleted (counted, and a gateway
    /// alert says so once), so garbage from unauthenticated senders cannot fill the disk.
    #[serde(default = "default_max_dead_letters")]
    pub max_dead_letters: usize,
    /// Devices not in the registry that the journal keeps a `devices` row for: beyond it the
    /// least recently heard are forgotten (counted, and a gateway alert says so once), so
    /// invented device ids cannot grow the journal. Their events are always journaled.
    #[serde(default = "default_max_unregistered_devices")]
    pub max_unregistered_devices: usize,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            dedupe_window: default_dedupe_window(),
            dead_letter_bytes: default_dead_letter_bytes(),
            max_dead_letters: default_max_dead_letters(),
            max_unregistered_devices: default_max_unregistered_devices(),
        }
    }
}

pub use crate::components::{AdapterConfig, SinkConfig};
pub use crate::sinks::file::FileSinkConfig;

// The registry owns its entries' shape; the config file names them `[[device]]`.
pub use crate::registry::{DeviceConfig, DeviceLocation};

fn default_profiles_dir() -> PathBuf {
    PathBuf::from("/etc/atgw/profiles")
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_max_clock_skew() -> Duration {
    Duration::from_secs(120)
}
fn default_dedupe_window() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_dead_letter_bytes() -> usize {
    64 * 1024
}
fn default_max_dead_letters() -> usize {
    10_000
}
fn default_max_unregistered_devices() -> usize {
    1000
}

/// A configuration problem, for a person: which file, which key, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.display().to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Loads, overrides from the process environment, resolves relative paths and validates.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ATGW_"))
        .collect();
    load_with_env(path, env)
}

/// As [`load`], with the environment given explicitly (tests).
pub fn load_with_env(path: &Path, env: HashMap<String, String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, "(file)", format!("cannot read: {e}")))?;
    parse_with_env(&text, path, env)
}

/// As [`load_with_env`], with the file's text already read: `path` only names the file in
/// errors and anchors relative paths. Reads no file itself, so the fuzzer and property tests
/// run it on arbitrary text.
pub fn parse_with_env(
    text: &str,
    path: &Path,
    env: HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let (rest, registry) = match split::read(text) {
        Some(parts) => parts,
        None => whole_document(text, path)?,
    };
    let layered = config::Config::builder()
        .add_source(config::File::from_str(&rest, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("ATGW")
                .prefix_separator("_")
                .separator("__")
                .source(Some(env)),
        )
        .build()
        .map_err(|e| ConfigError::new(path, "(environment)", e.to_string()))?;
    let mut cfg: Config = serde_path_to_error::deserialize(layered).map_err(|e| at(path, e))?;
    cfg.devices = registry.devices;
    cfg.residents = registry.residents;
    let base = path.parent().unwrap_or(Path::new("."));
    cfg.resolve_paths(base);
    cfg.canonicalise_matches()
        .map_err(|(key, message)| ConfigError::new(path, key, message))?;
    cfg.validate()
        .map_err(|(key, message)| ConfigError::new(path, key, message))?;
    Ok(cfg)
}

/// Whether reading the registry entry by entry, when it is taken, gives what the whole-document
/// parse gives. Always true; the config fuzzer asserts it on arbitrary text.
#[doc(hidden)]
pub fn registry_cut_agrees(text: &str) -> bool {
    let Some((rest, registry)) = split::read(text) else {
        return true;
    };
    let Ok((whole_rest, whole_registry)) = whole_document(text, Path::new("atgw.toml")) else {
        return false;
    };
    registry == whole_registry
        && rest.parse::<toml::Table>().ok() == whole_rest.parse::<toml::Table>().ok()
}

/// Parses the whole document at once: the general path, and the one that reports syntax
/// errors with toml's line and column. Returns the TOML of everything but the registry (for
/// config-rs) and the registry.
fn whole_document(text: &str, path: &Path) -> Result<(String, RegistrySections), ConfigError> {
    let syntax = |e: &dyn std::fmt::Display| {
        ConfigError::new(path, "(syntax)", e.to_string().trim().replace('\n', " "))
    };
    let mut table: toml::Table = text.parse().map_err(|e| syntax(&e))?;
    let mut registry = toml::Table::new();
    for key in RegistrySections::KEYS {
        if let Some(v) = table.remove(key) {
            registry.insert(key.to_string(), v);
        }
    }
    let rest = toml::to_string(&table).map_err(|e| syntax(&e))?;
    let registry =
        serde_path_to_error::deserialize(toml::Value::Table(registry)).map_err(|e| at(path, e))?;
    Ok((rest, registry))
}

/// The registry sections, read straight from the TOML rather than through config-rs. They
/// grow with the site (10,000 devices are 1.5 MB of TOML) and config-rs keeps an origin-tagged
/// value tree of several KB per device while layering, for overrides the environment cannot
/// express anyway: an array of tables has no `ATGW_…` form. Large ones are read an entry at a
/// time ([`split`]).
#[derive(Debug, Default, Deserialize, PartialEq)]
struct RegistrySections {
    #[serde(default, rename = "device")]
    devices: Vec<DeviceConfig>,
    #[serde(default, rename = "resident")]
    residents: Vec<crate::rules::vitals::config::ResidentVitals>,
}

impl RegistrySections {
    const KEYS: [&'static str; 2] = ["device", "resident"];
}

/// A deserialization error at its key path (`device[3].check_in`).
fn at<E: std::fmt::Display>(path: &Path, e: serde_path_to_error::Error<E>) -> ConfigError {
    let key = e.path().to_string();
    let key = if key == "." {
        "(top level)".to_string()
    } else {
        key
    };
    ConfigError::new(path, key, e.into_inner().to_string())
}

/// Secret files: a relative name that exists in `$CREDENTIALS_DIRECTORY` stays relative so the
/// reader finds it there; otherwise it is relative to the config file like any path.
fn resolve_secret(base: &Path, p: &mut PathBuf) {
    if atgw_sdk::secret::resolve(p) == *p {
        resolve(base, p);
    }
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

impl Config {
    fn resolve_paths(&mut self, base: &Path) {
        resolve(base, &mut self.gateway.data_dir);
        resolve(base, &mut self.gateway.profiles_dir);
        if let Some(api) = &mut self.api {
            resolve_secret(base, &mut api.token_file);
        }
        let files = self
            .sinks
            .iter_mut()
            .flat_map(|s| s.files_mut())
            .chain(self.adapters.iter_mut().flat_map(|a| a.files_mut()));
        for f in files {
            match f.role {
                FileRole::Secret(_) => resolve_secret(base, f.path),
                FileRole::Certificate | FileRole::Output => resolve(base, f.path),
            }
        }
    }

    /// Puts every `[[device]] match` value into the form its adapter reports, so the registry's
    /// exact comparison is the protocol's own (`zone = "7"` and `"007"` are one zone, and two
    /// entries that differ only so are caught by [`Config::validate`] as the same match).
    /// Refuses a value no message can carry, naming its key. A device naming no known adapter
    /// is left for `validate` to report.
    fn canonicalise_matches(&mut self) -> Result<(), (String, String)> {
        let adapters: HashMap<&str, &AdapterConfig> =
            self.adapters.iter().map(|a| (a.name(), a)).collect();
        for (i, d) in self.devices.iter_mut().enumerate() {
            let Some(a) = adapters.get(d.adapter.as_str()) else {
                continue;
            };
            for (k, v) in &mut d.match_keys {
                *v = a
                    .canonical_match(k, v)
                    .map_err(|m| (format!("device[{i}].match.{k}"), m))?;
            }
        }
        Ok(())
    }

    /// Checks what serde cannot: names unique and referenced names existing.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let g = &self.gateway;
        if g.id.is_empty() || g.id.contains([':', '/', ' ', '#', '+']) {
            return Err((
                "gateway.id".into(),
                "must be non-empty without `:`, `/`, spaces or MQTT wildcards".into(),
            ));
        }
        if g.site.is_empty() || g.site.contains('/') {
            return Err((
                "gateway.site".into(),
                "must be non-empty without `/`".into(),
            ));
        }
        if jiff::tz::TimeZone::get(&g.timezone).is_err() {
            return Err((
                "gateway.timezone".into(),
                format!(
                    "`{}` is not a known IANA time zone (e.g. Europe/London)",
                    g.timezone
                ),
            ));
        }
        if g.max_clock_skew.is_zero() {
            return Err((
                "gateway.max_clock_skew".into(),
                "must be above zero, e.g. \"2m\"".into(),
            ));
        }
        let mut adapters = HashSet::new();
        for (i, a) in self.adapters.iter().enumerate() {
            let key = |k: &str| format!("adapter[{i}].{k}");
            if !valid_name(a.name()) {
                return Err((
                    key("name"),
                    "must be non-empty letters, digits, `-` or `_`".into(),
                ));
            }
            if !adapters.insert(a.name())
                || [
                    crate::GATEWAY_ADAPTER,
                    crate::envelope::ALERTS_SOURCE,
                    crate::envelope::RULES_SOURCE,
                ]
                .contains(&a.name())
            {
                return Err((
                    key("name"),
                    format!("`{}` is used twice (or reserved)", a.name()),
                ));
            }
            a.validate()
                .map_err(|e| (component_key(&format!("adapter[{i}]"), &e.key), e.problem))?;
        }
        let mut sinks = HashSet::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let key = |k: &str| format!("sink[{i}].{k}");
            if !valid_name(s.name()) {
                return Err((
                    key("name"),
                    "must be non-empty letters, digits, `-` or `_`".into(),
                ));
            }
            if !sinks.insert(s.name()) {
                return Err((key("name"), format!("`{}` is used twice", s.name())));
            }
            s.validate()
                .map_err(|e| (component_key(&format!("sink[{i}]"), &e.key), e.problem))?;
        }
        self.vitals
            .validate()
            .map_err(|e| (format!("vitals.{}", e.key), e.problem))?;
        let mut residents = HashSet::new();
        for (i, r) in self.residents.iter().enumerate() {
            r.validate()
                .map_err(|e| (format!("resident[{i}].{}", e.key), e.problem))?;
            if !residents.insert(r.id.as_str()) {
                return Err((
                    format!("resident[{i}].id"),
                    format!("`{}` is used twice", r.id),
                ));
            }
        }
        let sink_names: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        crate::alerts::policy::Policies::validate(
            &self.policies,
            &self.routes,
            &self.alerts,
            &sink_names,
        )?;
        let mut ids = HashSet::new();
        let mut matches = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("device[{i}].{k}");
            if d.id.is_empty() || !ids.insert(d.id.as_str()) {
                return Err((key("id"), format!("`{}` is empty or used twice", d.id)));
            }
            if !adapters.contains(d.adapter.as_str()) {
                return Err((
                    key("adapter"),
                    format!("no [[adapter]] is named `{}`", d.adapter),
                ));
            }
            if d.match_keys.is_empty() {
                return Err((
                    key("match"),
                    "needs at least one key, e.g. { device = \"0xa4c1…\" }".into(),
                ));
            }
            if !matches.insert((d.adapter.as_str(), &d.match_keys)) {
                return Err((
                    key("match"),
                    format!(
                        "another device has the same adapter and match {{ {} }} \
                         (values as the adapter compares them: `zone = \"7\"` is \"007\")",
                        d.match_keys
                            .iter()
                            .map(|(k, v)| format!("{k} = \"{v}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `adapter[2].port`, or `adapter[2]` for a problem of the whole table.
fn component_key(table: &str, key: &str) -> String {
    if key.is_empty() {
        table.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("atgw.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const MINIMAL: &str = r#"
[gateway]
id = "gw-1"
site = "oakview"
data_dir = "state"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = 1883
topics = ["zigbee2mqtt/#"]
profiles = ["zigbee2mqtt"]

[[sink]]
name = "audit"
type = "file"
path = "events.jsonl"
"#;

    #[test]
    fn a_minimal_file_loads_and_relative_paths_follow_the_file() {
        let d = tempfile::tempdir().unwrap();
        let cfg = load_with_env(&write(d.path(), MINIMAL), HashMap::new()).unwrap();
        assert_eq!(cfg.gateway.data_dir, d.path().join("state"));
        assert_eq!(cfg.adapters.len(), 1);
        assert_eq!(cfg.gateway.timezone, "UTC");
    }

    #[test]
    fn a_relative_secret_file_follows_the_file_when_systemd_passed_no_such_credential() {
        let d = tempfile::tempdir().unwrap();
        let text = format!("{MINIMAL}\n[api]\ntoken_file = \"atgw-test-no-such-credential\"\n");
        let cfg = load_with_env(&write(d.path(), &text), HashMap::new()).unwrap();
        assert_eq!(
            cfg.api.unwrap().token_file,
            d.path().join("atgw-test-no-such-credential")
        );
    }

    #[test]
    fn an_unknown_key_names_the_file_and_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            &MINIMAL.replace("site = \"oakview\"", "site = \"oakview\"\nsiet = 1"),
        );
        let e = load_with_env(&p, HashMap::new()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("atgw.toml"), "{msg}");
        assert!(msg.contains("siet"), "{msg}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_expectation() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), &MINIMAL.replace("port = 1883", "port = \"many\""));
        let e = load_with_env(&p, HashMap::new()).unwrap_err();
        assert!(e.key.contains("adapter"), "{e}");
        assert!(
            e.to_string().contains("port") || e.to_string().contains("u16"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides_a_scalar() {
        let d = tempfile::tempdir().unwrap();
        let env = HashMap::from([("ATGW_GATEWAY__SITE".to_string(), "elmgrove".to_string())]);
        let cfg = load_with_env(&write(d.path(), MINIMAL), env).unwrap();
        assert_eq!(cfg.gateway.site, "elmgrove");
    }

    #[test]
    fn a_device_on_an_unknown_adapter_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "{MINIMAL}\n[[device]]\nid = \"p1\"\nadapter = \"nope\"\nmatch = {{ device = \"x\" }}\n"
        );
        let e = load_with_env(&write(d.path(), &text), HashMap::new()).unwrap_err();
        assert_eq!(e.key, "device[0].adapter");
    }

    #[test]
    fn relative_secret_and_certificate_files_follow_the_config_file() {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "{MINIMAL}\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://care.example/h\"\n\
             secret_file = \"hook.secret\"\nca_file = \"care-ca.pem\"\n\
             cert_file = \"gw.pem\"\nkey_file = \"gw.key\"\n\n\
             [[sink]]\nname = \"up\"\ntype = \"mqtt\"\nhost = \"broker.example\"\nport = 8883\n\
             topic_prefix = \"atgw\"\nusername = \"atgw\"\npassword_file = \"mqtt.pw\"\n\
             tls = {{ ca_file = \"ca.pem\", cert_file = \"c.pem\", key_file = \"c.key\" }}\n\n\
             [api]\ntoken_file = \"api-token\"\n"
        );
        let cfg = load_with_env(&write(d.path(), &text), HashMap::new()).unwrap();
        let at = |name: &str| d.path().join(name);
        assert_eq!(cfg.api.as_ref().unwrap().token_file, at("api-token"));
        let SinkConfig::Webhook(w) = &cfg.sinks[1] else {
            panic!("webhook")
        };
        assert_eq!(w.secret_file, at("hook.secret"));
        assert_eq!(w.ca_file, Some(at("care-ca.pem")));
        assert_eq!(
            (&w.cert_file, &w.key_file),
            (&Some(at("gw.pem")), &Some(at("gw.key")))
        );
        let SinkConfig::Mqtt(m) = &cfg.sinks[2] else {
            panic!("mqtt")
        };
        assert_eq!(m.password_file, Some(at("mqtt.pw")));
        let tls = m.tls.as_ref().unwrap();
        assert_eq!(
            (&tls.ca_file, &tls.cert_file, &tls.key_file),
            (&Some(at("ca.pem")), &Some(at("c.pem")), &Some(at("c.key")))
        );
    }

    #[test]
    fn text_is_parsed_without_reading_any_file() {
        let cfg = parse_with_env(MINIMAL, Path::new("/nowhere/atgw.toml"), HashMap::new()).unwrap();
        assert_eq!(cfg.gateway.data_dir, Path::new("/nowhere/state"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = parse_with_env(&text, Path::new("/fuzz/atgw.toml"), HashMap::new());
        }

        /// The shipped example with a slice cut out and TOML-ish text put in, plus overrides:
        /// reaches deep into the sections, not just the syntax check.
        #[test]
        fn parse_never_panics_on_a_mangled_example(
            at in proptest::prelude::any::<proptest::sample::Index>(),
            cut in 0usize..40,
            insert in "[\\[\\]{}\"=#.,a-z0-9_ \n]{0,12}",
            key in "ATGW_[A-Z_]{0,24}",
            value in "\\PC{0,12}",
        ) {
            let text = include_str!("../config/atgw.toml");
            let chars: Vec<char> = text.chars().collect();
            let start = at.index(chars.len());
            let end = (start + cut).min(chars.len());
            let mangled: String = chars[..start]
                .iter()
                .copied()
                .chain(insert.chars())
                .chain(chars[end..].iter().copied())
                .collect();
            let env = HashMap::from([(key, value)]);
            let _ = parse_with_env(&mangled, Path::new("/fuzz/atgw.toml"), env);
        }
    }

    /// MINIMAL plus a DC-09 adapter `alarms` and `devices`.
    fn with_dc09(devices: &str) -> String {
        format!(
            "{MINIMAL}\n[[adapter]]\nname = \"alarms\"\ntype = \"sia-dc09\"\n\
             listen_tcp = \"127.0.0.1:7777\"\naccept_unknown = true\n\n{devices}"
        )
    }

    fn device(id: &str, adapter: &str, keys: &str) -> String {
        format!("[[device]]\nid = \"{id}\"\nadapter = \"{adapter}\"\nmatch = {{ {keys} }}\n\n")
    }

    #[test]
    fn dc09_match_values_load_in_the_form_the_adapter_reports_and_mqtt_ids_stay_exact() {
        let text = with_dc09(&format!(
            "{}{}",
            device("pendant-7", "alarms", r#"account = "c0ffee", zone = "7""#),
            device("bed-3", "zigbee", r#"device = "0xA4c1_007""#),
        ));
        let cfg = parse_with_env(&text, Path::new("/x/atgw.toml"), HashMap::new()).unwrap();
        let keys = |i: usize| {
            cfg.devices[i]
                .match_keys
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(0), [("account", "C0FFEE"), ("zone", "007")]);
        assert_eq!(keys(1), [("device", "0xA4c1_007")]);
    }

    #[test]
    fn a_dc09_match_value_no_frame_can_carry_is_refused_naming_the_entry_and_key() {
        for (keys, key, says) in [
            (
                r#"account = "1234", zone = "abc""#,
                "device[0].match.zone",
                "abc",
            ),
            (
                r#"account = "1234", zone = "000""#,
                "device[0].match.zone",
                "panel itself",
            ),
            (
                r#"account = "12", zone = "7""#,
                "device[0].match.account",
                "3-16",
            ),
            (
                r#"account = "1234", room = "7""#,
                "device[0].match.room",
                "account",
            ),
        ] {
            let text = with_dc09(&device("p", "alarms", keys));
            let e = parse_with_env(&text, Path::new("/x/atgw.toml"), HashMap::new()).unwrap_err();
            assert_eq!(e.key, key, "{keys}: {e}");
            assert!(e.to_string().contains(says), "{keys}: {e}");
        }
    }

    #[test]
    fn two_devices_writing_one_dc09_zone_two_ways_are_the_same_match() {
        let text = with_dc09(&format!(
            "{}{}",
            device("a", "alarms", r#"account = "1234", zone = "007""#),
            device("b", "alarms", r#"account = "1234", zone = "7""#),
        ));
        let e = parse_with_env(&text, Path::new("/x/atgw.toml"), HashMap::new()).unwrap_err();
        assert_eq!(e.key, "device[1].match", "{e}");
        assert!(e.to_string().contains(r#"zone = "007""#), "{e}");
    }

    #[test]
    fn a_bad_time_zone_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            &MINIMAL.replace("data_dir", "timezone = \"Mars/Olympus\"\ndata_dir"),
        );
        let e = load_with_env(&p, HashMap::new()).unwrap_err();
        assert_eq!(e.key, "gateway.timezone");
    }
}
