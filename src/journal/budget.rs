//! The journal's disk budget (`[journal] max_bytes`): how much of its file is in use, when
//! that is close enough to the budget to tell someone, and when telemetry must be shed.
//!
//! "In use" is the file's pages minus its free pages (pages freed by pruning are reused
//! before the file grows, and handed back to the filesystem by the retention cycle), read
//! from the database header: two cheap pragmas per batch, no filesystem call. The WAL is not
//! counted: SQLite checkpoints it back into the file every ~4 MB.
//!
//! At [`WARN_AT`] of the budget a gateway alert is raised (`gateway:<id>:journal_space`),
//! cleared below [`CLEAR_AT`], so a site hears of it days before anything is shed. At the
//! budget, telemetry (readings nobody is alerted about) is shed: counted, dead-lettered as
//! `shed`, and acknowledged to its device, since retrying it would not make room. Alarms,
//! alert history, technical conditions and test calls are always journaled: they may go past
//! the budget, which is why the default is half the filesystem, not all of it.

use std::path::Path;

use rusqlite::Connection;

/// The smallest budget accepted: an empty journal with its indexes is ~200 KB, a day of a
/// small home's alerts a few MB.
pub const MIN_BYTES: u64 = 4 * 1024 * 1024;
/// Share of the budget at which the gateway alert is raised.
pub const WARN_AT: f64 = 0.8;
/// Share of the budget below which it is cleared again.
pub const CLEAR_AT: f64 = 0.75;
/// Share of the filesystem the default budget takes.
pub const DEFAULT_SHARE: f64 = 0.5;

/// Where the journal stands against its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Fine,
    /// Past [`WARN_AT`]: the gateway alert is up.
    Warn,
    /// At or past the budget: telemetry is shed.
    Full,
}

/// The budget and what the last measurement said.
#[derive(Debug)]
pub struct Budget {
    pub max_bytes: u64,
    pub used: u64,
    /// Whether the gateway alert is raised (hysteresis between [`CLEAR_AT`] and [`WARN_AT`]).
    pub warned: bool,
    /// Whether the alert says telemetry is being shed.
    pub shed_announced: bool,
}

impl Budget {
    pub fn new(max_bytes: u64) -> Budget {
        Budget {
            max_bytes: max_bytes.max(MIN_BYTES),
            used: 0,
            warned: false,
            shed_announced: false,
        }
    }

    /// The level measured last was journaled (its gateway alert, if any, committed).
    pub fn committed(&mut self) {
        let level = self.level();
        self.warned = level != Level::Fine;
        self.shed_announced = level == Level::Full;
    }

    /// The level for `used` bytes, given whether the alert is already up.
    pub fn level(&self) -> Level {
        let share = self.used as f64 / self.max_bytes as f64;
        if self.used >= self.max_bytes {
            Level::Full
        } else if share >= WARN_AT || (self.warned && share >= CLEAR_AT) {
            Level::Warn
        } else {
            Level::Fine
        }
    }

    /// Whether telemetry is being shed.
    pub fn shedding(&self) -> bool {
        self.level() == Level::Full
    }
}

/// Bytes of the file in use (pages minus free pages).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) as u64).saturating_mul(size.max(0) as u64))
}

/// The default budget: [`DEFAULT_SHARE`] of the filesystem holding `dir`. `None` when the
/// filesystem cannot be asked (the caller then has no budget to enforce and says so).
pub fn default_for(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let total = s.f_blocks.saturating_mul(s.f_frsize);
    (total > 0).then(|| ((total as f64 * DEFAULT_SHARE) as u64).max(MIN_BYTES))
}

/// "1.6 GB" for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(used: u64, warned: bool) -> Level {
        Budget {
            max_bytes: 100 * MIN_BYTES,
            used: used * MIN_BYTES,
            warned,
            shed_announced: false,
        }
        .level()
    }

    #[test]
    fn the_alert_rises_at_80_percent_and_falls_below_75() {
        assert_eq!(at(79, false), Level::Fine);
        assert_eq!(at(80, false), Level::Warn);
        assert_eq!(at(77, true), Level::Warn, "hysteresis: still up at 77 %");
        assert_eq!(at(74, true), Level::Fine);
        assert_eq!(at(100, true), Level::Full);
        assert_eq!(at(130, false), Level::Full);
    }

    #[test]
    fn used_bytes_counts_pages_in_use_not_free_ones() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x BLOB); ").unwrap();
        let empty = used_bytes(&c).unwrap();
        for _ in 0..200 {
            c.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        let full = used_bytes(&c).unwrap();
        assert!(full > empty + 700_000, "{empty} → {full}");
        c.execute("DELETE FROM t", []).unwrap();
        let after = used_bytes(&c).unwrap();
        assert!(
            after < empty + 50_000,
            "freed pages are not in use: {after}"
        );
    }

    #[test]
    fn the_default_is_half_the_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let b = default_for(d.path()).unwrap();
        let s = rustix::fs::statvfs(d.path()).unwrap();
        let total = s.f_blocks * s.f_frsize;
        assert!(
            b <= total / 2 + 1 && b >= total / 2 - 4096,
            "{b} vs {total}"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(1_600_000_000), "1.6 GB");
        assert_eq!(human(250_000_000), "250 MB");
        assert_eq!(human(4_194_304), "4.2 MB");
    }
}
