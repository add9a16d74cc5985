//! `atgw profile test PROFILE SAMPLE.json`: shows an integrator what a sample payload becomes,
//! as the exact CloudEvents the gateway would journal (with an empty registry, so devices show
//! as unregistered). With `--config FILE --adapter NAME SAMPLE.json` it runs what the daemon
//! would: the adapter's whole profile list (first match wins) and the configured registry, and
//! says which profile and rule took each message and which `[[device]]` it matched. Edge-detection state carries from one sample to the next, so a JSON-lines
//! file of a device's messages shows which of them raise, clear, or say nothing.
//!
//! A sample with `"topic"` is an MQTT message; one with `"path"` (and optionally `"headers"`
//! and `"query"`) is an HTTP request, whose path is the profiles' topic and whose headers and
//! query the profiles' `@` paths read. With an `http` adapter, each request goes to the
//! profiles of the route that takes its path, under the topic the route gives them.

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

/// Which profiles a sample runs through.
enum Sets {
    /// One profile list for every sample (a profile, or an MQTT adapter's list).
    One(ProfileSet),
    /// An HTTP adapter's routes, and each one's profiles.
    Routes(Vec<atgw_http_ingest::config::RouteConfig>, Vec<ProfileSet>),
}

/// One sample as the transport would hand it to the profiles.
struct Sample {
    topic: String,
    payload: Vec<u8>,
    /// `Some` for an HTTP request: its path, and what `@` paths read.
    http: Option<(String, serde_json::Value)>,
}

/// What the samples run through.
struct Bench {
    sets: Sets,
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
        sets,
        registry,
        adapter,
        match_keys,
        timezone,
    } = bench;
    let mut state: HashMap<String, String> = HashMap::new();
    let mut rejected = false;
    let mut seq = 0u64;
    for (n, sample) in samples.iter().enumerate() {
        let (set, topic) = match (&sets, &sample.http) {
            (Sets::One(set), _) => (set, sample.topic.clone()),
            (Sets::Routes(routes, sets), Some((path, _))) => {
                use atgw_http_ingest::route::Mount;
                let Some(i) = atgw_http_ingest::route::find_index(routes, path) else {
                    println!(
                        "# sample {} to `{path}`\nno route takes this path (404)",
                        n + 1
                    );
                    rejected = true;
                    continue;
                };
                let (route, set) = (&routes[i], &sets[i]);
                if route.format == atgw_http_ingest::config::Format::Fhir {
                    println!(
                        "# sample {} to `{path}`\nroute `{}` reads FHIR, not profiles",
                        n + 1,
                        route.path
                    );
                    continue;
                }
                (set, route.topic_of(path))
            }
            (Sets::Routes(..), None) => {
                println!(
                    "# sample {}: an HTTP adapter takes requests: give the sample a \"path\"",
                    n + 1
                );
                rejected = true;
                continue;
            }
        };
        let input = Input {
            protocol: if sample.http.is_some() {
                "http"
            } else {
                "mqtt"
            },
            topic: &topic,
            payload: &sample.payload,
            received: jiff::Timestamp::now(),
            adapter: &adapter,
            timezone: &timezone,
            request: sample.http.as_ref().map(|(_, r)| r),
        };
        match &sample.http {
            Some((path, _)) => println!("# sample {} to `{path}` (topic `{topic}`)", n + 1),
            None => println!("# sample {} on `{topic}`", n + 1),
        }
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
            sets: Sets::One(load(t.profile, t.dir)?),
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
    let dir = &cfg.gateway.profiles_dir;
    let sets = match a {
        crate::components::AdapterConfig::Mqtt(mqtt) => {
            Sets::One(ProfileSet::load(dir, &mqtt.profiles).map_err(|e| e.to_string())?)
        }
        crate::components::AdapterConfig::Http(http) => Sets::Routes(
            http.routes.clone(),
            http.routes
                .iter()
                .map(|r| {
                    ProfileSet::load(dir, &r.profiles).map_err(|e| format!("route {}: {e}", r.path))
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(format!(
                "adapter `{name}` is of type `{}`; profiles apply to `mqtt` and `http` adapters",
                a.type_name()
            ));
        }
    };
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
        sets,
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
fn read_samples(path: &Path, topic: Option<&str>) -> Result<Vec<Sample>, String> {
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
        let bytes = |payload: &serde_json::Value| match payload {
            serde_json::Value::String(s) => Ok(s.clone().into_bytes()),
            other => serde_json::to_vec(other).map_err(|e| e.to_string()),
        };
        if let (Some(p), Some(payload)) = (v.get("path").and_then(|p| p.as_str()), v.get("payload"))
        {
            out.push(Sample {
                topic: p.trim_start_matches('/').to_owned(),
                payload: bytes(payload)?,
                http: Some((p.to_owned(), request_of(&v)?)),
            });
            continue;
        }
        let (t, payload) = match (v.get("topic").and_then(|t| t.as_str()), v.get("payload")) {
            (Some(t), Some(p)) => (t.to_owned(), p.clone()),
            _ => match topic {
                Some(t) => (t.to_owned(), v.clone()),
                None => return Err("a bare payload needs --topic".into()),
            },
        };
        out.push(Sample {
            topic: t,
            payload: bytes(&payload)?,
            http: None,
        });
    }
    Ok(out)
}

/// What a sample request's `@` paths read: its `headers` (an object) and `query` (a string),
/// as the adapter reads a real request's.
fn request_of(v: &serde_json::Value) -> Result<serde_json::Value, String> {
    let mut headers = axum::http::HeaderMap::new();
    if let Some(h) = v.get("headers").and_then(|h| h.as_object()) {
        for (k, val) in h {
            let name = axum::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|e| format!("header `{k}`: {e}"))?;
            let value = axum::http::HeaderValue::from_str(val.as_str().unwrap_or_default())
                .map_err(|e| format!("header `{k}`: {e}"))?;
            headers.insert(name, value);
        }
    }
    let query = v.get("query").and_then(|q| q.as_str());
    Ok(atgw_http_ingest::request::meta(&headers, query, &[]))
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
