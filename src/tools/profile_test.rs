//! `atgw profile test PROFILE SAMPLE.json`: shows an integrator what a sample payload becomes,
//! as the exact CloudEvents the gateway would journal (with an empty registry, so devices show
//! as unregistered). Edge-detection state carries from one sample to the next, so a JSON-lines
//! file of a device's messages shows which of them raise, clear, or say nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atgw_profile::{Evaluation, Input, Profile, ProfileSet, Quiet};

use crate::registry::Registry;

/// Runs the command; exit 2 for unusable arguments, 1 when a sample is rejected.
pub fn run(
    profile: &str,
    sample: &Path,
    topic: Option<&str>,
    dir: Option<&Path>,
    tz: &str,
) -> ExitCode {
    let set = match load(profile, dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("atgw: {e}");
            return ExitCode::from(2);
        }
    };
    let timezone = match jiff::tz::TimeZone::get(tz) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("atgw: --timezone {tz}: {e}");
            return ExitCode::from(2);
        }
    };
    let samples = match read_samples(sample, topic) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("atgw: {}: {e}", sample.display());
            return ExitCode::from(2);
        }
    };
    let registry = Registry::new("example-site", &[]);
    let mut state: HashMap<String, String> = HashMap::new();
    let mut rejected = false;
    let mut seq = 0u64;
    for (n, (topic, payload)) in samples.iter().enumerate() {
        let input = Input {
            topic,
            payload,
            received: jiff::Timestamp::now(),
            adapter: "sample",
            timezone: &timezone,
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
                for d in events {
                    seq += 1;
                    let e = crate::envelope::seal(
                        &registry,
                        "example-gw",
                        "sample",
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
    let esc = |s: &str| crate::logging::escape(s).into_owned();
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
            "telemetry only: the rule maps readings (observations, battery, signal), no states or points".to_owned()
        }
        Quiet::NoItems { path } => format!("`for_each = \"{path}\"` found no elements"),
    }
}
