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

pub mod budget;
pub mod commits;
pub mod reader;
pub mod retention;
pub mod salvage;
pub mod schema;
pub mod unregistered;
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
    /// Where a corrupt journal was moved, and why (the `quick_check` verdict, capped), when that
    /// happened. The reason is for the log; events name only the file.
    pub moved_aside: Option<(PathBuf, String)>,
    /// Whether pages freed by pruning go back to the filesystem (`auto_vacuum =
    /// INCREMENTAL`); `false` for a large journal from before, until `atgw journal vacuum`.
    pub reclaims: bool,
}

/// Opens (creating or migrating) the journal at `path` for writing.
pub fn open(path: &Path) -> Result<Opened, JournalError> {
    let mut moved_aside = None;
    let existing = std::fs::symlink_metadata(path).ok();
    if existing
        .as_ref()
        .is_some_and(|m| m.file_type().is_symlink())
    {
        return Err(JournalError::Io {
            path: path.to_path_buf(),
            what: "is a symlink; atgw never writes through one: remove it and restart".into(),
        });
    }
    if existing.is_some()
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
    // SQLITE_OPEN_NOFOLLOW: a journal path that is a symlink is refused, never written through.
    let mut conn =
        Connection::open_with_flags(path, OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW)
            .map_err(sql)?;
    make_private(path)?;
    // Before WAL mode: on a new file, auto_vacuum only takes if set before anything is
    // written (an existing file just records the wish; see `retention::ensure_incremental`).
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
        .map_err(sql)?;
    configure(&conn, path)?;
    let reclaims = retention::ensure_incremental(&conn, path).map_err(sql)?;
    schema::migrate(&mut conn).map_err(sql)?;
    Ok(Opened {
        conn,
        moved_aside,
        reclaims,
    })
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
            // lstat: a `-wal` or `-shm` planted as a symlink is refused, not chmodded through.
            let mode = match std::fs::symlink_metadata(&file) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(io(std::io::Error::other(
                        "it is a symlink; remove it (atgw never writes through one)",
                    )));
                }
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
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| format!("cannot open: {e}"))?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| format!("quick_check failed: {e}"))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(format!("quick_check: {}", cap(&verdict)))
    }
}

/// A `quick_check` verdict lists up to 100 damaged pages, one per line: the log keeps the
/// first [`CAP_LINES`] lines and [`CAP_BYTES`] bytes (the moved-aside file has the rest).
const CAP_LINES: usize = 20;
const CAP_BYTES: usize = 2048;

fn cap(verdict: &str) -> String {
    let lines: Vec<&str> = verdict.lines().collect();
    let mut out = String::new();
    let mut kept = 0;
    for l in &lines {
        if kept == CAP_LINES || (kept > 0 && out.len() + l.len() > CAP_BYTES) {
            break;
        }
        if kept > 0 {
            out.push('\n');
        }
        // A first line over the budget is cut at a character boundary.
        let end = (0..=l.len().min(CAP_BYTES))
            .rev()
            .find(|&i| l.is_char_boundary(i))
            .unwrap_or(0);
        out.push_str(&l[..end]);
        kept += 1;
    }
    if kept < lines.len() {
        out.push_str(&format!("\n… {} more lines", lines.len() - kept));
    }
    out
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
    fn a_long_quick_check_verdict_is_capped_for_the_log() {
        let verdict: Vec<String> = (0..100)
            .map(|n| format!("Tree 2 page {n}: error"))
            .collect();
        let c = cap(&verdict.join("\n"));
        assert_eq!(c.lines().count(), CAP_LINES + 1, "{c}");
        assert!(c.ends_with("… 80 more lines"), "{c}");
        assert_eq!(cap("one line"), "one line");
        assert_eq!(cap(&"x".repeat(5000)).len(), CAP_BYTES);
        let many = cap(&vec!["y".repeat(300); 10].join("\n"));
        assert!(many.len() <= CAP_BYTES + 40, "{}", many.len());
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
