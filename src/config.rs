//! The configuration file (DESIGN §9): its shape, how it is loaded (TOML file, then
//! `ATGW_SECTION__KEY` environment overrides), and the checks that turn a wrong setting into one
//! message naming the file, the key and what was expected. Unknown keys are errors.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod load;
mod locate;
mod split;
mod validate;

pub use load::{ConfigError, load, load_with_env, parse_with_env, registry_cut_agrees};

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
    /// Staff who are told of alerts: name, role and a contact per channel.
    #[serde(default, rename = "person")]
    pub people: Vec<crate::rota::PersonConfig>,
    /// Teams and their shifts in the site's time zone: a route may name "whoever is on shift
    /// in team X".
    #[serde(default, rename = "team")]
    pub teams: Vec<crate::rota::TeamConfig>,
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
    /// Delivered telemetry (info readings and heartbeats nobody was alerted about) is kept
    /// this long; its per-device daily figures are kept with the alert history.
    #[serde(default = "default_telemetry_retention", with = "humantime_serde")]
    pub telemetry_retention: Duration,
    /// Everything else (alarms, alert history, test calls, offline episodes, the daily
    /// figures) is kept this long: a year's pilot and its evaluation.
    #[serde(default = "default_alert_retention", with = "humantime_serde")]
    pub alert_retention: Duration,
    /// Dead letters older than this are deleted.
    #[serde(default = "default_dead_letter_retention", with = "humantime_serde")]
    pub dead_letter_retention: Duration,
    /// Dead letters' stored bytes at most: beyond it the oldest are deleted.
    #[serde(default = "default_max_dead_letter_bytes")]
    pub max_dead_letter_bytes: u64,
    /// How often a pruning cycle starts (it runs in small steps between batches).
    #[serde(default = "default_prune_every", with = "humantime_serde")]
    pub prune_every: Duration,
    /// The journal's disk budget in bytes; unset: half the filesystem the journal is on.
    /// Approaching it raises a gateway alert; at it, telemetry is shed (never alarms).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            dedupe_window: default_dedupe_window(),
            dead_letter_bytes: default_dead_letter_bytes(),
            max_dead_letters: default_max_dead_letters(),
            max_unregistered_devices: default_max_unregistered_devices(),
            telemetry_retention: default_telemetry_retention(),
            alert_retention: default_alert_retention(),
            dead_letter_retention: default_dead_letter_retention(),
            max_dead_letter_bytes: default_max_dead_letter_bytes(),
            prune_every: default_prune_every(),
            max_bytes: None,
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
const DAY: u64 = 24 * 3600;
fn default_telemetry_retention() -> Duration {
    Duration::from_secs(7 * DAY)
}
fn default_alert_retention() -> Duration {
    Duration::from_secs(400 * DAY)
}
fn default_dead_letter_retention() -> Duration {
    Duration::from_secs(30 * DAY)
}
fn default_max_dead_letter_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_prune_every() -> Duration {
    Duration::from_secs(600)
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

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
