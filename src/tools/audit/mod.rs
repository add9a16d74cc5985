//! `atgw audit`: a security self-check of one configuration and the host it runs on, judged
//! against the ETSI EN 303 645 provisions that apply to a gateway like this one. Every check
//! yields a [`Finding`]: the provision, pass / warn / fail, what was found and, unless it passed,
//! the fix. Any fail makes the command exit non-zero, so it can gate an installation.
//!
//! The checks read the configuration (as the daemon would load it, environment overrides and
//! `$CREDENTIALS_DIRECTORY` included) and the file system; they never connect anywhere.
//!
//! Judgements that are not obvious:
//! - Plain MQTT to a loopback broker passes (the bytes never leave the machine); to any other
//!   host it fails. TLS without a client certificate warns: the issue asks for client
//!   certificates on every network link.
//! - The local API speaks plain HTTP with a bearer token, so any non-loopback `listen` fails.
//! - A DC-09 receiver must listen on the site LAN, where the alarm panels are: a specific LAN
//!   address passes, every interface (`0.0.0.0`, `[::]`) warns (it includes any uplink), and
//!   accounts without an AES key warn (panels often cannot encrypt; DC-09 still authenticates
//!   nothing without it).
//! - Running as root warns rather than fails: it is how many appliances start, and the systemd
//!   unit (DESIGN §10) is the fix.
//!
//! # Layout
//! - this file: the finding types, running every check, the text and JSON reports.
//! - [`config_checks`]: what the configuration says (links, listeners, inputs, resident ids).
//! - [`host`]: what the file system says (secret files, modes, free space, user, binary).
//! - [`html`]: the report as a document for the deployment record (`--html`).

mod config_checks;
mod host;
pub mod html;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

pub use atgw_sdk::audit::{Finding, Provision, Status};

/// Every finding about one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: PathBuf,
    pub atgw_version: &'static str,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// Each provision that applies with its worst status, one line each.
    pub fn provisions(&self) -> Vec<(Provision, Status)> {
        let mut out: Vec<(Provision, Status)> = Vec::new();
        for f in &self.findings {
            match out.iter_mut().find(|(p, _)| *p == f.provision) {
                Some((_, s)) => *s = (*s).max(f.status),
                None => out.push((f.provision, f.status)),
            }
        }
        out.sort();
        out
    }

    /// A line per provision, its findings below it (each fix below its finding), a summary.
    pub fn text(&self) -> String {
        let label = |s: Status| match s {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let mut out = format!(
            "atgw audit of {} against ETSI EN 303 645\n",
            self.config.display()
        );
        for (p, status) in self.provisions() {
            out.push_str(&format!("\n{} {:<5}{}\n", label(status), p.id(), p.title()));
            for f in self.findings.iter().filter(|f| f.provision == p) {
                out.push_str(&format!(
                    "     {} {} [{}]: {}\n",
                    label(f.status).to_ascii_lowercase(),
                    f.subject,
                    f.check,
                    f.found
                ));
                if let Some(fix) = &f.fix {
                    out.push_str(&format!("          fix: {fix}\n"));
                }
            }
        }
        out.push_str(&format!(
            "\n{} pass, {} warn, {} fail\n",
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }

    /// The report as one JSON document (`--json`): the findings, each provision's status and
    /// the counts.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(items) = v["findings"].as_array_mut() {
            for (item, f) in items.iter_mut().zip(&self.findings) {
                item["title"] = f.provision.title().into();
            }
        }
        v["provisions"] = self
            .provisions()
            .into_iter()
            .map(|(p, s)| serde_json::json!({ "id": p, "title": p.title(), "status": s }))
            .collect();
        v["summary"] = serde_json::json!({
            "pass": self.count(Status::Pass),
            "warn": self.count(Status::Warn),
            "fail": self.count(Status::Fail),
        });
        v
    }
}

/// Runs every check on the configuration at `path` and on this host.
pub fn audit(path: &Path) -> Report {
    let mut findings = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            findings.push(Finding::fail(
                Provision::InputValidation,
                "config-valid",
                path.display().to_string(),
                format!("cannot read the configuration: {e}"),
                "pass the gateway's configuration with --config (default /etc/atgw/atgw.toml)",
            ));
            None
        }
    };
    if let Some(text) = &text {
        findings.extend(config_checks::inline_secrets(text));
        findings.extend(host::config_file(path));
        match crate::config::load(path) {
            Ok(cfg) => {
                findings.push(Finding::pass(
                    Provision::InputValidation,
                    "config-valid",
                    path.display().to_string(),
                    "loads and validates (unknown keys are refused, so `password = …` cannot be written)",
                ));
                findings.extend(config_checks::all(&cfg));
                findings.extend(host::for_config(&cfg));
            }
            Err(e) => findings.push(Finding::fail(
                Provision::InputValidation,
                "config-valid",
                path.display().to_string(),
                format!("does not load: {e}"),
                "correct the key named (`atgw check-config` says the same); the remaining checks need a valid file",
            )),
        }
    }
    findings.extend(host::process());
    findings.sort_by_key(|f| f.provision);
    Report {
        config: path.to_path_buf(),
        atgw_version: env!("CARGO_PKG_VERSION"),
        findings,
    }
}

/// How `atgw audit` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Html,
}

/// `atgw audit`: prints the report; exit 1 when anything failed.
pub fn main(config: &Path, format: Format) -> ExitCode {
    let report = audit(config);
    match format {
        Format::Json => println!("{:#}", report.json()),
        Format::Html => print!("{}", html::document(&report, &html::RunOn::here(config))),
        Format::Text => print!("{}", report.text()),
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
