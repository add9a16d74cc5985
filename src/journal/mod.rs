//! The journal: one SQLite file (WAL, `synchronous=FULL`) that holds every event, the per-sink
//! outbox, dead letters, adapter state and device check-ins.
//!
//! One writer thread owns the write connection ([`writer`]); adapters reach it through the SDK's
//! ingest channel and the core through [`WriterHandle`]. Readers open their own read-only
//! connections ([`reader`]); WAL lets them run beside the writer.
//!
//! At open the file is checked (`PRAGMA quick_check`). A corrupt file is moved aside, kept for
//! inspection, and a fresh journal is started so alarms keep flowing; the caller raises a
//! gateway alert from [`Opened::moved_aside`].

pub mod commits;
pub mod reader;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use reader::Reader;
pub use writer::{WriterCmd, WriterHandle};

/// The journal file's name inside `data_dir`.
pub const FILE_NAME: &str = "atgw.db";

/// Why the journal could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("journal {path}: {what}")]
    Io { path: PathBuf, what: String },
    #[error("journal {path}: WAL mode is not available on this filesystem (got `{mode}`)")]
    NoWal { path: PathBuf, mode: String },
}

/// The result of opening: the write connection, and what happened to a bad file.
pub struct Opened {
    pub conn: Connection,
    /// Where a corrupt journal was moved, and why, when that happened.
    pub moved_aside: Option<(PathBuf, String)>,
}

/// Opens (creating or migrating) the journal at `path` for writing.
pub fn open(path: &Path) -> Result<Opened, JournalError> {
    let mut moved_aside = None;
    if path.exists()
        && let Err(reason) = check(path)
    {
        let aside = aside_name(path);
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", path.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&from, &to).map_err(|e| JournalError::Io {
                    path: from.clone(),
                    what: format!("cannot move corrupt journal aside: {e}"),
                })?;
            }
        }
        moved_aside = Some((aside, reason));
    }
    let sql = |source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(sql)?;
    make_private(path)?;
    configure(&conn, path)?;
    schema::migrate(&mut conn).map_err(sql)?;
    Ok(Opened { conn, moved_aside })
}

/// The journal holds residents' events: mode 600 whatever the umask. Done before WAL mode is
/// set, because SQLite gives `-wal` and `-shm` the mode of the database file.
fn make_private(path: &Path) -> Result<(), JournalError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            let io = |e: std::io::Error| JournalError::Io {
                path: file.clone(),
                what: format!("cannot make the journal private (chmod 600): {e}"),
            };
            let mode = match std::fs::metadata(&file) {
                Ok(m) => m.permissions().mode(),
                Err(e) if suffix.is_empty() || e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(e));
                }
                Err(_) => continue,
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Applies the durability settings every write connection needs.
fn configure(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    let sql = |source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    // FULL: a care-home box can lose power; NORMAL may roll back the last commits then.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    Ok(())
}

/// `Ok` when the file opens as a database and passes `quick_check`.
fn check(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| format!("cannot open: {e}"))?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| format!("quick_check failed: {e}"))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(format!("quick_check: {verdict}"))
    }
}

fn aside_name(path: &Path) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    PathBuf::from(format!("{}.corrupt-{stamp}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_journal_is_wal_and_migrated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        let o = open(&p).unwrap();
        assert!(o.moved_aside.is_none());
        let mode: String = o
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = o
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn a_corrupt_journal_is_moved_aside_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        std::fs::write(
            &p,
            b"this is not a database, just bytes that look wrong".repeat(200),
        )
        .unwrap();
        let o = open(&p).unwrap();
        let (aside, reason) = o.moved_aside.expect("moved aside");
        assert!(aside.exists(), "the corrupt file is kept for inspection");
        assert!(!reason.is_empty());
        let n: i64 = o
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
