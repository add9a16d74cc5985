//! `atgw audit --html`: the audit as a document a borough's security officer can file with the
//! deployment record. One self-contained page (no script, no external stylesheet): when and
//! where it was run (host, system, user, atgw version, the configuration's path and SHA-256),
//! the summary, then every provision with its status and each finding's evidence and fix.
//! Every string from the configuration or the host goes through [`esc`].

use std::fmt::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Report, Status};
use crate::tools::report::svg::esc;

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 1.8rem; border-bottom: 2px solid #0072B2; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; width: 100%; }
th, td { border: 1px solid #ccd; padding: .3rem .6rem; text-align: left; vertical-align: top; }
thead th { background: #eef2f8; }
.status { font-weight: 700; white-space: nowrap; }
.pass { color: #1a6b2f; } .warn { color: #8a5a00; } .fail { color: #a4161a; }
.fix { color: #333; font-style: italic; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { color: #555; } dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
"#;

/// Where and when the audit ran.
pub struct RunOn {
    pub at: String,
    pub hostname: String,
    pub system: String,
    pub kernel: String,
    pub arch: &'static str,
    pub user: String,
    /// SHA-256 of the configuration file as read, or why it could not be read.
    pub config_sha256: String,
}

impl RunOn {
    /// This host, now, and the configuration at `config`.
    pub fn here(config: &Path) -> RunOn {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into())
        };
        let system = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let uid = rustix::process::geteuid().as_raw();
        RunOn {
            at: jiff::Timestamp::now().to_string(),
            hostname: read("/proc/sys/kernel/hostname"),
            system,
            kernel: read("/proc/sys/kernel/osrelease"),
            arch: std::env::consts::ARCH,
            user: format!("uid {uid}"),
            config_sha256: match std::fs::read(config) {
                Ok(bytes) => Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                Err(e) => format!("not readable: {e}"),
            },
        }
    }
}

fn label(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Pass => ("PASS", "pass"),
        Status::Warn => ("WARN", "warn"),
        Status::Fail => ("FAIL", "fail"),
    }
}

/// The whole document.
pub fn document(r: &Report, on: &RunOn) -> String {
    let mut h = String::new();
    let verdict = if r.failed() {
        "FAILED: at least one provision is not met; fix each FAIL below before going live"
    } else if r.count(Status::Warn) > 0 {
        "passed with warnings: each WARN below says what is weaker than it should be"
    } else {
        "passed"
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>atgw security audit: {host}</title><style>{STYLE}</style></head><body>\n\
         <h1>atgw security audit</h1>\n\
         <p>Checked against ETSI EN 303 645 (consumer IoT security), the baseline the UK's product \
         security regime (PSTI) builds on. Result: <strong id=\"verdict\" class=\"{cls}\">{verdict}</strong>.</p>\n",
        host = esc(&on.hostname),
        cls = if r.failed() {
            "fail"
        } else if r.count(Status::Warn) > 0 {
            "warn"
        } else {
            "pass"
        },
    );
    h.push_str("<h2>Where and when</h2>\n<dl>\n");
    for (k, v) in [
        ("Date (UTC)", on.at.clone()),
        ("Host", on.hostname.clone()),
        ("System", on.system.clone()),
        ("Kernel", format!("{} ({})", on.kernel, on.arch)),
        ("Run by", on.user.clone()),
        ("atgw version", r.atgw_version.to_owned()),
        ("Configuration", r.config.display().to_string()),
        ("Configuration SHA-256", on.config_sha256.clone()),
    ] {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    h.push_str("</dl>\n");
    let _ = writeln!(
        h,
        "<h2>Summary</h2>\n<p id=\"summary\" data-pass=\"{p}\" data-warn=\"{w}\" data-fail=\"{f}\">\
         {p} pass, {w} warn, {f} fail.</p>\n<table><thead><tr><th>Provision</th><th>Title</th>\
         <th>Status</th></tr></thead><tbody>",
        p = r.count(Status::Pass),
        w = r.count(Status::Warn),
        f = r.count(Status::Fail),
    );
    for (p, s) in r.provisions() {
        let (text, cls) = label(s);
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#p-{id}\">{id}</a></td><td>{title}</td>\
             <td class=\"status {cls}\">{text}</td></tr>",
            id = esc(p.id()),
            title = esc(p.title()),
        );
    }
    h.push_str("</tbody></table>\n");
    for (p, s) in r.provisions() {
        let (text, cls) = label(s);
        let _ = writeln!(
            h,
            "<h2 id=\"p-{id}\">{id} {title}: <span class=\"{cls}\">{text}</span></h2>\n\
             <table><thead><tr><th>Status</th><th>Check</th><th>About</th><th>Evidence and fix</th>\
             </tr></thead><tbody>",
            id = esc(p.id()),
            title = esc(p.title()),
        );
        for f in r.findings.iter().filter(|f| f.provision == p) {
            let (text, cls) = label(f.status);
            let fix = f
                .fix
                .as_deref()
                .map(|x| format!("<br><span class=\"fix\">Fix: {}</span>", esc(x)))
                .unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr class=\"finding\" data-check=\"{check}\" data-status=\"{cls}\">\
                 <td class=\"status {cls}\">{text}</td><td>{check}</td><td>{subject}</td>\
                 <td>{found}{fix}</td></tr>",
                check = esc(f.check),
                subject = esc(&f.subject),
                found = esc(&f.found),
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str(
        "<p>Generated by <code>atgw audit --html</code>. The checks read the configuration and \
         the file system of this host; they make no network connection.</p>\n</body></html>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::audit::{Finding, Provision};

    #[test]
    fn every_finding_is_in_the_document_escaped_with_its_fix() {
        let r = Report {
            config: "/etc/atgw/<atgw>.toml".into(),
            atgw_version: "0.1.0",
            findings: vec![
                Finding::fail(
                    Provision::InputValidation,
                    "config-valid",
                    "sink `a<b>`",
                    "found \"x\" & y",
                    "do <this>",
                ),
                Finding::pass(Provision::InputValidation, "mqtt-tls", "adapter", "fine"),
            ],
        };
        let on = RunOn::here(Path::new("/nonexistent"));
        let d = document(&r, &on);
        assert!(d.contains("sink `a&lt;b&gt;`"), "{d}");
        assert!(d.contains("found &quot;x&quot; &amp; y") || d.contains("found \"x\" &amp; y"));
        assert!(d.contains("Fix: do &lt;this&gt;"));
        assert!(d.contains("data-pass=\"1\" data-warn=\"0\" data-fail=\"1\""));
        assert!(d.contains("/etc/atgw/&lt;atgw&gt;.toml"));
        assert!(!d.contains("<atgw>") && !d.contains("<script"));
        assert_eq!(d.matches("class=\"finding\"").count(), 2);
    }
}
