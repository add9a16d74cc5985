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
    /// Whether `quick_check` ran before opening (an unclean stop); after a clean one it is
    /// left to [`check_in_background`].
    pub checked: bool,
}

/// A journal smaller than this is always checked before start (tens of ms at most); a larger
/// one only after an unclean stop, else in the background ([`check_in_background`]).
pub const CHECK_AT_START_BELOW_BYTES: u64 = 64 * 1024 * 1024;

/// `adapter_state` key (gateway adapter) the writer sets as the last thing it commits on an
/// orderly stop, and `open` clears.
pub const CLEAN_STOP_KEY: &str = "journal.clean_stop_ms";

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
    // After a clean stop the file is as the writer left it; only an unclean one (kill -9,
    // power loss) runs the full check before start (see `stopped_cleanly`).
    let clean = existing
        .as_ref()
        .is_some_and(|m| m.len() >= CHECK_AT_START_BELOW_BYTES)
        && stopped_cleanly(path);
    if existing.is_some()
        && !clean
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
    // Running from now on: a stop that does not reach the writer's end leaves no mark.
    conn.execute(
        "DELETE FROM adapter_state WHERE adapter = ?1 AND key = ?2",
        [crate::GATEWAY_ADAPTER, CLEAN_STOP_KEY],
    )
    .map_err(sql)?;
    Ok(Opened {
        conn,
        moved_aside,
        reclaims,
        checked: existing.is_some() && !clean,
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

/// Whether the last run stopped cleanly: the writer's stop mark is there and nothing was
/// written after it (no WAL left: its final checkpoint truncated it).
///
/// Why the full check can wait then: SQLite's WAL recovery makes every committed transaction
/// survive a crash and discards a torn one by its frame checksums, as long as the disk
/// honoured fsync. Damage shows where it did not (an SD card losing power mid-write), so
/// after an unclean stop the file is checked before anything is accepted. Damage at rest
/// (bit rot, a bug) cannot be ruled out by a clean stop either: [`check_in_background`]
/// runs at once beside the writer, and on damage the daemon raises its alert and exits
/// without the stop mark, so the restart (systemd's `Restart=on-failure`) runs the full check
/// and salvage; until then nothing is acknowledged that was not committed. A small journal is checked at every start anyway: it costs next to nothing.
fn stopped_cleanly(path: &Path) -> bool {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if std::fs::symlink_metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return false;
    }
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    ) else {
        return false;
    };
    conn.query_row(
        "SELECT count(*) FROM adapter_state WHERE adapter = ?1 AND key = ?2",
        [crate::GATEWAY_ADAPTER, CLEAN_STOP_KEY],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n == 1)
}

/// Runs `quick_check` on a read-only connection beside the writer (WAL lets it read a
/// snapshot without blocking anyone); `Err(verdict)` when the file is damaged.
pub fn check_in_background(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NOFOLLOW,
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

    /// A journal of `CHECK_AT_START_BELOW_BYTES` or more, written and closed as a writer
    /// would leave it, with or without its clean-stop mark.
    fn large_journal(dir: &Path, clean: bool) -> PathBuf {
        let path = dir.join(FILE_NAME);
        let opened = open(&path).unwrap();
        opened
            .conn
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 66)
                 INSERT INTO dead_letters (adapter, reason, detail, origin, raw, raw_len, recorded_ms)
                 SELECT 'a', 'r', 'd', 'o', zeroblob(1048576), 1048576, 0 FROM n;",
            )
            .unwrap();
        if clean {
            opened
                .conn
                .execute(
                    "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, '1')",
                    [crate::GATEWAY_ADAPTER, CLEAN_STOP_KEY],
                )
                .unwrap();
        }
        opened
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(opened);
        assert!(std::fs::metadata(&path).unwrap().len() >= CHECK_AT_START_BELOW_BYTES);
        path
    }

    #[test]
    fn a_large_journal_is_checked_at_start_only_after_an_unclean_stop() {
        let d = tempfile::tempdir().unwrap();
        let path = large_journal(d.path(), true);
        let opened = open(&path).unwrap();
        assert!(
            !opened.checked,
            "a clean stop: the check runs in the background"
        );
        // Running clears the mark: a kill -9 from here on leaves none.
        drop(opened);
        let opened = open(&path).unwrap();
        assert!(
            opened.checked,
            "no mark (the last run never stopped cleanly): checked"
        );

        let d = tempfile::tempdir().unwrap();
        let path = large_journal(d.path(), false);
        assert!(open(&path).unwrap().checked);
    }

    #[test]
    fn damage_at_rest_after_a_clean_stop_is_found_by_the_background_check() {
        let d = tempfile::tempdir().unwrap();
        let path = large_journal(d.path(), true);
        // Overwrite the root page of every index; the file still opens.
        let roots: Vec<i64> = {
            let c = Connection::open(&path).unwrap();
            let mut s = c
                .prepare("SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND rootpage > 0")
                .unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let mut bytes = std::fs::read(&path).unwrap();
        for &p in &roots {
            let at = (p as usize - 1) * 4096;
            bytes[at..at + 4096].fill(0xA5);
        }
        std::fs::write(&path, &bytes).unwrap();
        let opened = open(&path).unwrap();
        assert!(!opened.checked && opened.moved_aside.is_none());
        let verdict = check_in_background(&path);
        assert!(verdict.is_err(), "{verdict:?}");
        // The process exits without the mark, so the restart checks and moves it aside.
        drop(opened);
        let opened = open(&path).unwrap();
        assert!(opened.checked && opened.moved_aside.is_some());
    }

    #[test]
    fn a_small_journal_is_checked_at_every_start() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(FILE_NAME);
        drop(open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, '1')",
            [crate::GATEWAY_ADAPTER, CLEAN_STOP_KEY],
        )
        .unwrap();
        drop(c);
        assert!(open(&path).unwrap().checked);
    }

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
