//! Loading: the TOML file (its `[[device]]` and `[[resident]]` tables cut out and parsed one
//! by one, see `split`), `ATGW_SECTION__KEY` environment overrides, paths resolved against the
//! file, match values put in their adapter's canonical form, then [`Config::validate`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use atgw_sdk::component::FileRole;

use super::split::{self, RegistrySections};
use super::{AdapterConfig, Config};

/// A configuration problem, for a person: which file (and line, where it can be told), which
/// key, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {key}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.display().to_string(),
            line: None,
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
    parse(text, path, env).map_err(|mut e| {
        if e.line.is_none() {
            // An unknown key is reported at its table: look for the key itself first.
            let unknown = e
                .message
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
                .map(|field| format!("{}.{field}", e.key.trim_start_matches("(top level)")));
            e.line = unknown
                .and_then(|k| super::locate::line_of(text, k.trim_start_matches('.')))
                .or_else(|| super::locate::line_of(text, &e.key));
        }
        e
    })
}

fn parse(text: &str, path: &Path, env: HashMap<String, String>) -> Result<Config, ConfigError> {
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
pub(super) fn whole_document(
    text: &str,
    path: &Path,
) -> Result<(String, RegistrySections), ConfigError> {
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

/// A deserialization error at its key path (`device[3].check_in`).
fn at<E: std::fmt::Display>(path: &Path, e: serde_path_to_error::Error<E>) -> ConfigError {
    let key = e.path().to_string();
    let key = if key == "." {
        "(top level)".to_string()
    } else {
        key
    };
    ConfigError::new(
        path,
        key,
        atgw_sdk::suggest::did_you_mean(&e.into_inner().to_string()),
    )
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
}
