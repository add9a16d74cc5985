//! `atgw dead-letters`: what the adapters could not read, from the journal. Without options,
//! a count per reason; `--list` the letters themselves (newest first, filtered, paged);
//! `--show ID` one whole, its raw bytes printed so that nothing a device sent can drive the
//! terminal (text escaped, anything not UTF-8 as a hex dump).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::journal::reader::{DeadLetterFilter, DeadLetterRow};
use crate::logging::escape;

/// `atgw dead-letters` options.
#[derive(Args, Debug, Default)]
pub struct DeadLettersArgs {
    /// List the dead letters (newest first) instead of counting them.
    #[arg(long)]
    pub list: bool,
    /// Show one dead letter whole, raw payload included.
    #[arg(long, value_name = "ID", conflicts_with = "list")]
    pub show: Option<i64>,
    /// Only this adapter's (with --list).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Only this reason (`malformed_json`, `bad_crc`, …; with --list).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only those recorded since this time (RFC 3339, e.g. 2026-12-02T06:00:00Z; with --list).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many (with --list).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The next page: only ids below this one (the listing says which).
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    /// JSON (one object per line) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command on the journal at `journal`.
pub fn run(journal: &Path, args: &DeadLettersArgs) -> ExitCode {
    let reader = match crate::journal::Reader::open(journal) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("atgw: cannot read journal {}: {e}", journal.display());
            return ExitCode::FAILURE;
        }
    };
    let failed = |e: rusqlite::Error| {
        eprintln!("atgw: cannot read journal {}: {e}", journal.display());
        ExitCode::FAILURE
    };
    if let Some(id) = args.show {
        return match reader.dead_letter(id) {
            Ok(Some(l)) => {
                print!("{}", if args.json { json_line(&l) } else { show(&l) });
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("atgw: no dead letter {id}");
                ExitCode::FAILURE
            }
            Err(e) => failed(e),
        };
    }
    if !args.list {
        return match reader.dead_letters_by_reason() {
            Ok(rows) => {
                if rows.is_empty() {
                    println!("no dead letters");
                }
                for (reason, n) in rows {
                    println!("{reason:<20} {n}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        };
    }
    let since_ms = match args.since.as_deref().map(str::parse::<jiff::Timestamp>) {
        None => None,
        Some(Ok(t)) => Some(t.as_millisecond()),
        Some(Err(e)) => {
            eprintln!("atgw: --since: not an RFC 3339 time ({e}); e.g. 2026-12-02T06:00:00Z");
            return ExitCode::from(2);
        }
    };
    let filter = DeadLetterFilter {
        adapter: args.adapter.clone(),
        reason: args.reason.clone(),
        since_ms,
        before: args.before,
    };
    // One more than asked for tells whether there is a next page.
    let mut rows = match reader.dead_letters(&filter, args.limit.saturating_add(1)) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let more = rows.len() > args.limit;
    rows.truncate(args.limit);
    if args.json {
        for l in &rows {
            print!("{}", json_line(l));
        }
        return ExitCode::SUCCESS;
    }
    if rows.is_empty() {
        println!("no dead letters match");
    }
    for l in &rows {
        println!("{}", list_line(l));
    }
    if more && let Some(last) = rows.last() {
        println!(
            "… more: add --before {} for the next {}",
            last.id, args.limit
        );
    }
    ExitCode::SUCCESS
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| atgw_sdk::event::rfc3339_ms::format(&t))
        .unwrap_or_else(|_| ms.to_string())
}

/// One line: id, time, adapter, reason, detail and the first bytes of the payload.
fn list_line(l: &DeadLetterRow) -> String {
    let preview: String = String::from_utf8_lossy(&l.raw).chars().take(48).collect();
    format!(
        "{:>6}  {}  {:<12} {:<20} {}  [{} B] {}",
        l.id,
        time(l.recorded_ms),
        escape(&l.adapter),
        escape(&l.reason),
        escape(&cut(&l.detail, 60)),
        l.raw_len,
        escape(&preview)
    )
}

fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Everything about one dead letter.
fn show(l: &DeadLetterRow) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "id        {}", l.id);
    let _ = writeln!(out, "recorded  {}", time(l.recorded_ms));
    let _ = writeln!(out, "adapter   {}", escape(&l.adapter));
    let _ = writeln!(out, "reason    {}", escape(&l.reason));
    let _ = writeln!(out, "detail    {}", escape(&l.detail));
    let _ = writeln!(out, "from      {}", escape(&l.origin));
    let kept = l.raw.len() as i64;
    if kept < l.raw_len {
        let _ = writeln!(
            out,
            "payload   {} bytes, the first {kept} kept ([journal] dead_letter_bytes)",
            l.raw_len
        );
    } else {
        let _ = writeln!(out, "payload   {} bytes", l.raw_len);
    }
    match std::str::from_utf8(&l.raw) {
        Ok(text) => {
            let _ = writeln!(out, "{}", escape(text));
        }
        Err(_) => out.push_str(&hex_dump(&l.raw)),
    }
    out
}

/// 16 bytes a line: offset, hex, and the printable ASCII.
fn hex_dump(raw: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in raw.chunks(16).enumerate() {
        let _ = write!(out, "{:08x}  ", i * 16);
        for b in chunk {
            let _ = write!(out, "{b:02x} ");
        }
        for _ in chunk.len()..16 {
            out.push_str("   ");
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

fn json_line(l: &DeadLetterRow) -> String {
    let raw = match std::str::from_utf8(&l.raw) {
        Ok(t) => serde_json::json!({ "text": t }),
        Err(_) => serde_json::json!({
            "hex": l.raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        }),
    };
    let v = serde_json::json!({
        "id": l.id,
        "recorded": time(l.recorded_ms),
        "adapter": l.adapter,
        "reason": l.reason,
        "detail": l.detail,
        "origin": l.origin,
        "raw_len": l.raw_len,
        "raw": raw,
    });
    format!("{v}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(raw: &[u8], len: i64) -> DeadLetterRow {
        DeadLetterRow {
            id: 7,
            recorded_ms: 1_764_655_200_000,
            adapter: "zigbee".into(),
            reason: "malformed_json".into(),
            detail: "expected value at line 1 column 12".into(),
            origin: "zigbee2mqtt/pendant-1".into(),
            raw: raw.to_vec(),
            raw_len: len,
        }
    }

    #[test]
    fn a_payload_cannot_forge_lines_or_drive_the_terminal() {
        let l = letter(b"{\"state\":\"off\n2026 ERROR forged\x1b[31m\"}", 40);
        let shown = show(&l);
        assert!(!shown.contains('\x1b'), "{shown:?}");
        assert!(shown.contains("off\\n2026 ERROR forged"), "{shown}");
        assert_eq!(list_line(&l).lines().count(), 1);
    }

    #[test]
    fn binary_is_a_hex_dump_and_a_cut_payload_says_so() {
        let l = letter(&[0x0a, 0xff, 0x41, 0x00], 9000);
        let shown = show(&l);
        assert!(shown.contains("00000000  0a ff 41 00"), "{shown}");
        assert!(shown.contains("..A."), "{shown}");
        assert!(shown.contains("9000 bytes, the first 4 kept"), "{shown}");
    }
}
