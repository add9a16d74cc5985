//! The manual pages and the end of `atgw --help`, from one source: clap's definition of the
//! command line renders NAME, SYNOPSIS, OPTIONS and SUBCOMMANDS (so they cannot drift from
//! `--help`), and the tables here add FILES, ENVIRONMENT and EXIT STATUS.
//!
//! `atgw man --dir DIR` (hidden) writes `atgw.1` and one page per subcommand (`atgw-run.1`, …).
//! The pages the .deb ships are committed under `packaging/man/`, and a test fails when they
//! differ from what the binary renders, so `cargo deb` needs no generation step.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where things live on a gateway.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/atgw/atgw.toml",
        "the configuration (--config, $ATGW_CONFIG)",
    ),
    (
        "/etc/atgw/profiles/",
        "device profiles (gateway.profiles_dir)",
    ),
    (
        "/etc/atgw/api-token",
        "the local API's bearer token (api.token_file)",
    ),
    ("/var/lib/atgw/atgw.db", "the journal (gateway.data_dir)"),
    (
        "/usr/lib/systemd/system/atgw.service",
        "the hardened systemd unit (Type=notify, WatchdogSec=)",
    ),
];

/// Environment variables atgw reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("ATGW_CONFIG", "the configuration file"),
    (
        "ATGW_<SECTION>__<KEY>",
        "overrides a scalar of the configuration, e.g. ATGW_GATEWAY__SITE",
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "a relative *_file secret is read from here first (systemd LoadCredential=)",
    ),
    (
        "NOTIFY_SOCKET",
        "set by systemd: READY=1, STATUS= and STOPPING=1 go there",
    ),
    (
        "WATCHDOG_USEC",
        "set by systemd's WatchdogSec=: pings follow journal commits",
    ),
    ("JOURNAL_STREAM", "set by systemd: logs go to journald"),
    ("RUST_LOG", "log filter, e.g. info,atgw=debug"),
];

const EXIT_STATUS: &str = "0 success, 1 runtime failure, 2 invalid configuration or usage.";

const SEE_ALSO: &str = "The configuration reference and the device-profile guide: \
/usr/share/doc/atgw/README.md and PROFILES.md (or the repository's README).";

/// The end of `atgw --help`.
pub fn after_long_help() -> String {
    let mut s = String::from("Files:\n");
    let width = FILES
        .iter()
        .chain(ENVIRONMENT)
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    for (k, v) in FILES {
        s.push_str(&format!("  {k:width$}  {v}\n"));
    }
    s.push_str("\nEnvironment:\n");
    for (k, v) in ENVIRONMENT {
        s.push_str(&format!("  {k:width$}  {v}\n"));
    }
    s.push_str(&format!("\nExit status: {EXIT_STATUS}\n\n{SEE_ALSO}"));
    s
}

/// Writes every visible command's page into `dir`; returns the files written.
pub fn write_all(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_pages(sub.clone(), dir, &mut written)?;
    }
    let path = dir.join(format!("{}.1", cmd.get_name()));
    let mut out = Vec::new();
    top_page(cmd, &mut out)?;
    std::fs::write(&path, out)?;
    written.push(path);
    Ok(written)
}

fn subcommand_pages(
    cmd: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_pages(sub.clone(), dir, written)?;
    }
    written.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
    Ok(())
}

/// `atgw.1`: clap's sections, then FILES, ENVIRONMENT, EXIT STATUS and SEE ALSO as roff
/// tagged paragraphs (clap would reflow `after_long_help` into one paragraph).
fn top_page(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone().after_long_help(None::<&'static str>));
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    man.render_subcommands_section(w)?;
    for (title, rows) in [("FILES", FILES), ("ENVIRONMENT", ENVIRONMENT)] {
        writeln!(w, ".SH {title}")?;
        for (k, v) in rows {
            writeln!(w, ".TP\n\\fB{}\\fR\n{}", escape(k), escape(v))?;
        }
    }
    writeln!(w, ".SH \"EXIT STATUS\"\n{}", escape(EXIT_STATUS))?;
    writeln!(
        w,
        ".SH \"SEE ALSO\"\n\\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5)\n.PP\n{}",
        escape(SEE_ALSO)
    )?;
    man.render_version_section(w)?;
    Ok(())
}

/// Text safe inside a roff paragraph: backslashes and hyphens escaped, no line starting with a
/// control character.
fn escape(s: &str) -> String {
    let t = s.replace('\\', "\\\\").replace('-', "\\-");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_roff_from_reading_text_as_requests() {
        assert_eq!(escape("a-b\\c"), "a\\-b\\\\c");
        assert_eq!(escape(".hidden"), "\\&.hidden");
    }

    #[test]
    fn the_help_tail_lists_every_file_and_variable() {
        let h = after_long_help();
        for (k, _) in FILES.iter().chain(ENVIRONMENT) {
            assert!(h.contains(k), "{k} missing from --help");
        }
    }
}
