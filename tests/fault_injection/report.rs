//! The loss table: one row per scenario, written to `$CARGO_TARGET_TMPDIR/fault-report.txt`,
//! and the assertions every scenario ends with (nothing accepted was lost).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::accounting::{Accounting, scan_journal};
use super::world::World;

pub(crate) const HEADER: &str = "scenario                  | accepted | journaled | delivered | lost | alerts | dup alerts | redeliveries | duration | notes";

pub(crate) fn row(scenario: &str, a: &Accounting, took: Duration, notes: &str) -> String {
    format!(
        "{scenario:<25} | {:>8} | {:>9} | {:>9} | {:>4} | {:>6} | {:>10} | {:>12} | {:>7.1}s | {} malformed dead-lettered once; {notes}",
        a.accepted,
        a.journaled,
        a.delivered,
        a.lost.len(),
        a.alerts,
        a.dup_alerts,
        a.redeliveries,
        took.as_secs_f64(),
        a.dead_lettered,
    )
}

/// Prints the row and adds it to the suite's report: one file per scenario, and the table of
/// all of them in `fault-report.txt` (`order` keeps the table in the suite's order). Rows live
/// in a folder of this run's own (by process id) and older runs' folders are removed, so a
/// scenario that panicked before its row never shows an earlier run's result.
pub(crate) fn report(order: u32, scenario: &str, line: &str) {
    eprintln!("\n{HEADER}\n{line}\n");
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let all = base.join("fault-report.d");
    let rows = all.join(std::process::id().to_string());
    std::fs::create_dir_all(&rows).unwrap();
    for old in std::fs::read_dir(&all).unwrap().filter_map(|e| e.ok()) {
        if old.path() != rows {
            let _ = std::fs::remove_dir_all(old.path());
            let _ = std::fs::remove_file(old.path());
        }
    }
    let slug: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let when = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ");
    std::fs::write(
        rows.join(format!("{order:02}-{slug}.row")),
        format!("{line} (finished {when})\n"),
    )
    .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rows)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "row"))
        .collect();
    files.sort();
    let mut table = format!(
        "fault injection: loss accounting (tests/fault_injection.rs; definitions in its header)\n{HEADER}\n"
    );
    for f in files {
        table.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    // Several scenarios run in parallel: write whole, then rename, so a reader never sees half.
    let tmp = base.join(format!("fault-report.txt.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(table.as_bytes()).unwrap();
    std::fs::rename(&tmp, base.join("fault-report.txt")).unwrap();
}

/// The assertions every scenario ends with.
pub(crate) fn assert_no_loss(scenario: &str, w: &World, a: &Accounting) {
    let (sent, accepted, resent, refused) = w.ledger.summary();
    let context = format!(
        "{scenario}: devices sent {sent}, accepted {accepted}, sent again {resent}, refused answers {refused}\n{:#?}\n--- atgw log (tail) ---\n{}",
        Accounting {
            lost: a.lost.iter().take(20).cloned().collect(),
            dup_rows: a.dup_rows.iter().take(20).cloned().collect(),
            ..Default::default()
        },
        w.log_tail()
    );
    assert!(
        a.accepted >= 500,
        "too little load to mean anything ({} accepted): {context}",
        a.accepted
    );
    assert!(a.alerts >= 5, "too few alerts to mean anything: {context}");
    assert!(
        a.lost.is_empty(),
        "{} accepted messages lost: {:?}\n{context}",
        a.lost.len(),
        &a.lost[..a.lost.len().min(20)]
    );
    assert!(
        a.alerts_unpaged.is_empty(),
        "alerts never delivered to the carers: {:?}\n{context}",
        a.alerts_unpaged
    );
    assert_eq!(
        a.dup_alerts, 0,
        "duplicate alerts: {:?}\n{context}",
        a.dup_alert_detail
    );
    assert!(
        a.dup_rows.is_empty(),
        "journaled twice though sent once: {:?}\n{context}",
        a.dup_rows
    );
}

/// Every DC-09 frame ACKed so far, with the daemon dead: all must already be in the journal
/// (nothing can commit any more, so an ACK sent before its commit shows up here).
pub(crate) fn acked_but_not_journaled(w: &World) -> Vec<String> {
    let accepted = w.ledger.accepted();
    let j = scan_journal(&w.journal_path(), &w.ledger);
    let mut missing: Vec<String> = accepted
        .into_iter()
        .filter(|k| k.starts_with('d') && !j.by_key.contains_key(k))
        .collect();
    missing.sort();
    missing
}
