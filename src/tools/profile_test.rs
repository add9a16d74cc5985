//! `atgw profile test PROFILE SAMPLE.json`: shows an integrator what a sample payload becomes,
//! as the exact CloudEvents the gateway would journal (with an empty registry, so devices show
//! as unregistered). With `--config FILE --adapter NAME SAMPLE.json` it runs what the daemon
//! would: the adapter's whole profile list (first match wins) and the configured registry, and
//! says which profile and rule took each message and which `[[device]]` it matched. Edge-detection state carries from one sample to the next, so a JSON-lines
//! file of a device's messages shows which of them raise, clear, or say nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atgw_profile::{Evaluation, Input, Profile, ProfileSet, Quiet};

use crate::registry::Registry;

/// What to test: one profile on its own, or an adapter of a configuration (its whole
/// profile list, first match wins, and the registry's `[[device]]`s).
pub struct Target<'a> {
    /// The profile (name or file); with `adapter`, the sample file.
    pub profile: &'a str,
    pub sample: Option<&'a Path>,
    /// `[[adapter]]` name and the configuration file.
    pub adapter: Option<(&'a str, &'a Path)>,
    pub topic: Option<&'a str>,
    pub dir: Option<&'a Path>,
    pub tz: &'a str,
}

/// What the samples run through.
struct Bench {
    set: ProfileSet,
    registry: Registry,
    /// The adapter name events carry, and (with a configuration) the `[[device]]` match keys
    /// of its entries, for "no entry matched; they match on …".
    adapter: String,
    match_keys: Option<Vec<String>>,
    timezone: jiff::tz::TimeZone,
}

/// Runs the command; exit 2 for unusable arguments, 1 when a sample is rejected.
pub fn run(t: Target<'_>) -> ExitCode {
    let (bench, sample) = match bench(&t) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("atgw: {e}");
            return ExitCode::from(2);
        }
    };
    let samples = match read_samples(sample, t.topic) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("atgw: {}: {e}", sample.display());
            return ExitCode::from(2);
        }
    };
    let Bench {
        set,
        registry,
        adapter,
        match_keys,
        timezone,
    } = bench;
    let mut state: HashMap<String, String> = HashMap::new();
    let mut rejected = false;
    let mut seq = 0u64;
    for (n, (topic, payload)) in samples.iter().enumerate() {
        let input = Input {
            protocol: "mqtt",
            topic,
            payload,
            received: jiff::Timestamp::now(),
            adapter: &adapter,
            timezone: &timezone,
            request: None,
        };
        println!("# sample {} on `{topic}`", n + 1);
        match set.evaluate(&input, &state) {
            Evaluation::Mapped {
                profile,
                rule,
                events,
                quiet,
                state: updates,
                ..
            } => {
                for u in updates {
                    match u.value {
                        Some(v) => state.insert(u.key, v),
                        None => state.remove(&u.key),
                    };
                }
                if events.is_empty() {
                    println!("profile `{profile}`, rule `{rule}`: no event");
                    for q in &quiet {
                        println!("  - {}", explain(q));
                    }
                }
                if match_keys.is_some() {
                    println!("taken by profile `{profile}`, rule `{rule}`");
                }
                for d in events {
                    seq += 1;
                    if let Some(keys) = &match_keys {
                        println!("{}", registry_line(&registry, &adapter, &d, keys));
                    }
                    let e = crate::envelope::seal(
                        &registry,
                        "example-gw",
                        &adapter,
                        d,
                        jiff::Timestamp::now(),
                        seq,
                    );
                    match serde_json::to_string_pretty(&e) {
                        Ok(j) => println!("profile `{profile}`:\n{j}"),
                        Err(err) => println!("profile `{profile}`: cannot serialise: {err}"),
                    }
                }
            }
            Evaluation::Ignored { profile, rule } => {
                println!("profile `{profile}`: ignored by rule `{rule}`")
            }
            Evaluation::Rejected { reason, detail } => {
                rejected = true;
                println!("rejected ({reason}): {detail}");
            }
        }
    }
    if rejected {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The profiles, registry and time zone the samples run through, and the sample file.
fn bench<'a>(t: &Target<'a>) -> Result<(Bench, &'a Path), String> {
    let Some((name, config)) = t.adapter else {
        let sample = t
            .sample
            .ok_or("give a sample file after the profile (or --config and --adapter)")?;
        let timezone =
            jiff::tz::TimeZone::get(t.tz).map_err(|e| format!("--timezone {}: {e}", t.tz))?;
        let bench = Bench {
            set: load(t.profile, t.dir)?,
            registry: Registry::new("example-site", &[]),
            adapter: "sample".into(),
            match_keys: None,
            timezone,
        };
        return Ok((bench, sample));
    };
    if t.sample.is_some() {
        return Err(
            "with --adapter, give only the sample file (the adapter's profiles are used)".into(),
        );
    }
    let cfg = crate::config::load(config).map_err(|e| format!("invalid configuration: {e}"))?;
    let Some(a) = cfg.adapters.iter().find(|a| a.name() == name) else {
        let names: Vec<&str> = cfg.adapters.iter().map(|a| a.name()).collect();
        return Err(format!(
            "{}: no [[adapter]] named `{name}` (there are: {})",
            config.display(),
            names.join(", ")
        ));
    };
    let crate::components::AdapterConfig::Mqtt(mqtt) = a else {
        return Err(format!(
            "adapter `{name}` is of type `{}`; profiles apply to `mqtt` adapters",
            a.type_name()
        ));
    };
    let set =
        ProfileSet::load(&cfg.gateway.profiles_dir, &mqtt.profiles).map_err(|e| e.to_string())?;
    let timezone = jiff::tz::TimeZone::get(&cfg.gateway.timezone)
        .map_err(|e| format!("[gateway] timezone: {e}"))?;
    for w in crate::runtime::unmatchable_device_keys(&cfg) {
        println!("warning: {w}");
    }
    let mut keys: Vec<String> = cfg
        .devices
        .iter()
        .filter(|d| d.adapter == name)
        .flat_map(|d| d.match_keys.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let bench = Bench {
        set,
        registry: Registry::new(&cfg.gateway.site, &cfg.devices),
        adapter: name.to_owned(),
        match_keys: Some(keys),
        timezone,
    };
    Ok((bench, Path::new(t.profile)))
}

/// Which `[[device]]` an event's keys match, or why none does.
fn registry_line(
    registry: &Registry,
    adapter: &str,
    draft: &atgw_sdk::EventDraft,
    match_keys: &[String],
) -> String {
    let carried: Vec<String> = draft
        .registry_keys
        .iter()
        .map(|(k, v)| format!("{k}={}", esc(v)))
        .collect();
    match registry.resolve(adapter, &draft.registry_keys) {
        Some(e) => {
            let mut at: Vec<String> = [&e.location.area, &e.location.room]
                .into_iter()
                .flatten()
                .map(|s| esc(s))
                .collect();
            if let Some(r) = &e.resident {
                at.push(format!("resident {}", esc(r)));
            }
            format!(
                "device `{}`: matched [[device]] `{}` ({}) by {}",
                esc(&draft.data.device.id),
                esc(&e.id),
                at.join(", "),
                carried.join(", ")
            )
        }
        None => format!(
            "device `{}`: no [[device]] matched; it carries {}; the [[device]] entries of `{adapter}` match on {}",
            esc(&draft.data.device.id),
            if carried.is_empty() {
                "no keys".to_owned()
            } else {
                carried.join(", ")
            },
            if match_keys.is_empty() {
                "nothing (there are none)".to_owned()
            } else {
                match_keys.join(", ")
            }
        ),
    }
}

fn load(profile: &str, dir: Option<&Path>) -> Result<ProfileSet, String> {
    if profile.ends_with(".toml") || profile.contains('/') {
        let path = PathBuf::from(profile);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("profile");
        let p = Profile::parse(stem, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(ProfileSet::from_profiles(vec![p]));
    }
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None if Path::new("config/profiles").is_dir() => PathBuf::from("config/profiles"),
        None => PathBuf::from("/etc/atgw/profiles"),
    };
    ProfileSet::load(&dir, &[profile.to_owned()]).map_err(|e| e.to_string())
}

/// (topic, payload bytes) pairs from a JSON file or JSON lines. A JSON string payload is sent
/// as its text (bare `offline`), anything else as compact JSON.
fn read_samples(path: &Path, topic: Option<&str>) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let values: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON or JSON lines: {e}")))
            .collect::<Result<_, _>>()?,
    };
    let mut out = Vec::new();
    for v in values {
        if v.get("_about").is_some() {
            continue;
        }
        let (t, payload) = match (v.get("topic").and_then(|t| t.as_str()), v.get("payload")) {
            (Some(t), Some(p)) => (t.to_owned(), p.clone()),
            _ => match topic {
                Some(t) => (t.to_owned(), v.clone()),
                None => return Err("a bare payload needs --topic".into()),
            },
        };
        let bytes = match payload {
            serde_json::Value::String(s) => s.into_bytes(),
            other => serde_json::to_vec(&other).map_err(|e| e.to_string())?,
        };
        out.push((t, bytes));
    }
    Ok(out)
}

/// One line on why a field produced no event.
pub fn explain(q: &Quiet) -> String {
    match q {
        Quiet::Absent {
            field,
            path,
            at,
            present,
        } => {
            let has = if present.is_empty() {
                "nothing there".to_owned()
            } else {
                format!(
                    "it has: {}",
                    present.iter().map(|k| esc(k)).collect::<Vec<_>>().join(", ")
                )
            };
            let at = if at == "$" {
                String::new()
            } else {
                format!("at `{at}` ")
            };
            format!("`{field}`: path `{path}` is absent ({at}{has}); check the profile's `path`")
        }
        Quiet::Repeat { field, value } => {
            format!("`{field}`: `{}` again (a state repeat: no change, no event)", esc(value))
        }
        Quiet::FirstReading { field, value } => format!(
            "`{field}`: `{}` is the first reading and raises nothing (remembered: the next change is an edge)",
            esc(value)
        ),
        Quiet::NoEvent { field, value } => {
            format!("`{field}`: `{}` is mapped to no event", esc(value))
        }
        Quiet::TelemetryOnly => {
            "telemetry only: the rule reads observations, battery or signal but has no state or point, so nothing is journaled (add a `[[rule.point]]` without a path, kind = \"vital_sign\", to journal every reading)".to_owned()
        }
        Quiet::NoItems { path } => format!("`for_each = \"{path}\"` found no elements"),
    }
}

/// Text from a device, for the terminal.
fn esc(s: &str) -> String {
    crate::logging::escape(s).into_owned()
}
