//! Why a profile could not be loaded: always the file, the key, and what was expected, so an
//! integrator can fix it from one log line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error(
        "profile {file}: cannot read it ({source}); check `profiles_dir` and that the profile name matches a .toml file there"
    )]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a key has the wrong shape (unknown key, wrong type, unknown kind).
    #[error("profile {file}, line {line}, `{key}`: {message}")]
    Syntax {
        file: String,
        line: usize,
        /// The key on the offending line, or the line itself when it has no `=`.
        key: String,
        message: String,
    },
    /// Valid TOML whose meaning is wrong (a bad path, pattern, phase or time format).
    #[error("profile {file}: `{key}`: {problem}")]
    Invalid {
        file: String,
        /// Where in the profile, e.g. `rule[1].state[0].values.maybe_fall.phase`.
        key: String,
        problem: String,
    },
    /// Two profiles in one set share a name; names namespace edge-detection state.
    #[error(
        "profiles {first} and {second} are both named `{name}`; profile names must be unique because they namespace edge-detection state"
    )]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
}

impl ProfileError {
    pub(crate) fn invalid(file: &str, key: impl Into<String>, problem: impl Into<String>) -> Self {
        ProfileError::Invalid {
            file: file.to_owned(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// Turns a TOML error into a one-line error naming the line and its key.
    pub(crate) fn syntax(file: &str, text: &str, err: &toml::de::Error) -> Self {
        let offset = err.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
        let key = match line_text.split_once('=') {
            Some((k, _)) => k.trim(),
            None => line_text,
        };
        ProfileError::Syntax {
            file: file.to_owned(),
            line,
            key: crate::coerce::truncate(key, 60),
            message: atgw_sdk::suggest::did_you_mean(&err.message().trim().replace('\n', " ")),
        }
    }
}
