//! Secrets come from files (or systemd credentials), never from the config text, and are never
//! logged. A relative path is looked up in `$CREDENTIALS_DIRECTORY` first, which is where
//! systemd's `LoadCredential=` puts them.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` and `Display` print a placeholder so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error(
        "secret file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` (or 640 with the atgw group)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
}

/// Where a configured secret path really is: relative paths resolve in
/// `$CREDENTIALS_DIRECTORY` when systemd provides one.
pub fn resolve(path: &Path) -> PathBuf {
    if let (true, Some(dir)) = (
        path.is_relative(),
        std::env::var_os("CREDENTIALS_DIRECTORY"),
    ) {
        let candidate = Path::new(&dir).join(path);
        if candidate.exists() {
            return candidate;
        }
    }
    path.to_path_buf()
}

/// Reads a secret file, trimming one trailing newline. Refuses a file that other users can read.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let path = resolve(path);
    check_mode(&path)?;
    let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
        path: path.clone(),
        source,
    })?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(SecretError::Empty { path });
    }
    Ok(Secret(trimmed.to_owned()))
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(SecretError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), SecretError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_debug_never_shows_the_value() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn world_readable_secret_files_are_refused_and_private_ones_read() {
        let dir = std::env::temp_dir().join(format!("atgw-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("token");
        std::fs::write(&p, "abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_secret_file(&p),
            Err(SecretError::TooOpen { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "abc");
        std::fs::remove_dir_all(&dir).ok();
    }
}
