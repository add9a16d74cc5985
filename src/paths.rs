//! Paths atgw owns: the state directory (`data_dir`) and each file sink's directory and file.
//!
//! The rule (DESIGN §8): atgw never follows a symlink it is asked to create or chmod, and never
//! changes the mode of a directory it did not create. So:
//! - a `data_dir`, a file sink's directory or a file sink's file that is a symlink is refused,
//!   with the fix in the message; `run`, `check-config` and `audit` all ask [`check_config`];
//! - missing directories are created one level at a time (`mkdir`, which never follows a
//!   symlink), and only the levels created here are given mode 750; an existing directory keeps
//!   its mode (a systemd `StateDirectory=` owned by the service user is the normal case, and
//!   `audit` says when one is open to other users);
//! - files are opened with `O_NOFOLLOW` ([`no_follow`]), so a symlink planted between the check
//!   and the open is refused by the kernel rather than written through.
//!
//! Only the last component is judged: `/var/run -> /run` above a state directory is the
//! system's business, not a path atgw creates.

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use atgw_sdk::component::FileRole;

use crate::config::Config;

/// Mode of every directory atgw creates: the service user and its group (operators reading
/// reports), nobody else.
pub const DIR_MODE: u32 = 0o750;

/// Why a path atgw owns cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{what} {path} is a symlink to {target}; {fix}")]
    Symlink {
        what: String,
        path: PathBuf,
        target: String,
        fix: &'static str,
    },
    #[error("{what} {path} exists and is not a {expected}; {fix}")]
    WrongType {
        what: String,
        path: PathBuf,
        expected: &'static str,
        fix: &'static str,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PathError {
    /// The underlying I/O error, when that is what it is.
    pub fn io_kind(&self) -> Option<ErrorKind> {
        match self {
            PathError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

const DATA_DIR_FIX: &str = "point data_dir at a real directory (a systemd StateDirectory= owned by the service user is fine)";
const SINK_DIR_FIX: &str =
    "point the sink's path into a real directory (inside data_dir, for example)";
const SINK_FILE_FIX: &str =
    "point the sink's path at a regular file atgw may create (inside data_dir, for example)";

/// `what` for a file sink's file and directory, as messages name them.
fn sink_what(name: &str) -> (String, String) {
    (
        format!("sink `{name}` path"),
        format!("sink `{name}` directory"),
    )
}

/// What is at a path, without following a symlink there.
#[derive(Debug)]
pub enum Found {
    Missing,
    /// A real directory or file, with its permission bits.
    Real {
        mode: u32,
    },
}

/// Checks every path the configuration asks atgw to create or write: `data_dir`, and each
/// file sink's directory and file. Nothing is created.
pub fn check_config(cfg: &Config) -> Result<(), PathError> {
    check_dir("data_dir", &cfg.gateway.data_dir, DATA_DIR_FIX)?;
    for s in &cfg.sinks {
        for f in s.files() {
            if f.role == FileRole::Output {
                check_sink_path(s.name(), &f.path)?;
            }
        }
    }
    Ok(())
}

/// A file sink's file and its directory (when they exist) are real.
pub fn check_sink_path(name: &str, path: &Path) -> Result<Found, PathError> {
    let (file_what, dir_what) = sink_what(name);
    if let Some(dir) = parent(path) {
        check_dir(&dir_what, dir, SINK_DIR_FIX)?;
    }
    check_file(&file_what, path, SINK_FILE_FIX)
}

/// `data_dir` is missing or a real directory.
pub fn check_data_dir(path: &Path) -> Result<Found, PathError> {
    check_dir("data_dir", path, DATA_DIR_FIX)
}

/// Creates `data_dir` if missing (see the module doc); returns what was there before.
pub fn create_data_dir(path: &Path) -> Result<Found, PathError> {
    create_dir("data_dir", path, DATA_DIR_FIX)
}

/// Creates a file sink's directory if missing; refuses a symlinked directory or file.
pub fn prepare_sink(name: &str, path: &Path) -> Result<(), PathError> {
    let (file_what, dir_what) = sink_what(name);
    if let Some(dir) = parent(path) {
        create_dir(&dir_what, dir, SINK_DIR_FIX)?;
    }
    check_file(&file_what, path, SINK_FILE_FIX)?;
    Ok(())
}

/// Adds `O_NOFOLLOW`: opening a symlink fails (`ELOOP`) instead of opening its target.
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    // rustix's flag values are the kernel's; the cast only changes the integer type.
    options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
}

/// Opens `path` for writing (created with `mode` less the umask, truncated) without following
/// a symlink: for the files atgw writes, so that one planted in a shared directory such as
/// `/tmp` is refused rather than overwritten through.
pub fn create_file(path: &Path, mode: u32) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true).mode(mode);
    no_follow(&mut o).open(path)
}

/// [`create_file`] and write all of `bytes`.
pub fn write_file(path: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    std::io::Write::write_all(&mut create_file(path, mode)?, bytes)
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

fn lstat(what: &str, path: &Path) -> Result<Option<Metadata>, PathError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PathError::Io {
            what: what.to_owned(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn symlink_error(what: &str, path: &Path, fix: &'static str) -> PathError {
    let target = std::fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_else(|_| "an unreadable target".into());
    PathError::Symlink {
        what: what.to_owned(),
        path: path.to_path_buf(),
        target,
        fix,
    }
}

fn check_dir(what: &str, path: &Path, fix: &'static str) -> Result<Found, PathError> {
    match lstat(what, path)? {
        None => Ok(Found::Missing),
        Some(m) if m.file_type().is_symlink() => Err(symlink_error(what, path, fix)),
        Some(m) if !m.is_dir() => Err(PathError::WrongType {
            what: what.to_owned(),
            path: path.to_path_buf(),
            expected: "directory",
            fix,
        }),
        Some(m) => Ok(Found::Real {
            mode: m.permissions().mode() & 0o777,
        }),
    }
}

fn check_file(what: &str, path: &Path, fix: &'static str) -> Result<Found, PathError> {
    match lstat(what, path)? {
        None => Ok(Found::Missing),
        Some(m) if m.file_type().is_symlink() => Err(symlink_error(what, path, fix)),
        Some(m) if !m.is_file() => Err(PathError::WrongType {
            what: what.to_owned(),
            path: path.to_path_buf(),
            expected: "regular file",
            fix,
        }),
        Some(m) => Ok(Found::Real {
            mode: m.permissions().mode() & 0o777,
        }),
    }
}

/// Creates the missing levels of `path`, outermost first, each with [`DIR_MODE`]; leaves every
/// existing level as it is. The last level must not be a symlink.
fn create_dir(what: &str, path: &Path, fix: &'static str) -> Result<Found, PathError> {
    let before = check_dir(what, path, fix)?;
    if matches!(before, Found::Real { .. }) {
        return Ok(before);
    }
    let io = |p: &Path, source| PathError::Io {
        what: what.to_owned(),
        path: p.to_path_buf(),
        source,
    };
    let mut missing: Vec<&Path> = Vec::new();
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        if lstat(what, p)?.is_some() {
            break;
        }
        missing.push(p);
    }
    for p in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(p) {
            Ok(()) => {
                // The umask may have taken bits away; set exactly 750 on the directory just
                // made, through a descriptor opened without following a symlink.
                let mut o = OpenOptions::new();
                o.read(true).custom_flags(
                    (rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW).bits() as i32,
                );
                let d = o.open(p).map_err(|e| io(p, e))?;
                d.set_permissions(std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(|e| io(p, e))?;
            }
            // Made by someone else in between: not ours to chmod; the last level is judged below.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(p, e)),
        }
    }
    check_dir(what, path, fix)?;
    Ok(Found::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn missing_levels_are_created_750_and_existing_ones_keep_their_mode() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let deep = d.path().join("a/b/c");
        assert!(matches!(create_data_dir(&deep).unwrap(), Found::Missing));
        for p in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&d.path().join(p)), 0o750, "{p}");
        }
        assert_eq!(mode(d.path()), 0o755);
        std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(matches!(
            create_data_dir(&deep).unwrap(),
            Found::Real { mode: 0o711 }
        ));
        assert_eq!(mode(&deep), 0o711);
    }

    #[test]
    fn a_symlinked_data_dir_is_refused_with_its_target_and_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("state");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let e = create_data_dir(&link).unwrap_err().to_string();
        assert!(e.contains("is a symlink to /;"), "{e}");
        assert!(e.contains("StateDirectory="), "{e}");
    }

    #[test]
    fn no_follow_refuses_to_open_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::write(&real, "x").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(create_file(&link, 0o600).is_err());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "x");
    }
}
