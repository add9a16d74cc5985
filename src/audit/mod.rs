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

mod config_checks;
mod host;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

/// The ETSI EN 303 645 (v2.1.1) provisions atgw is audited against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Provision {
    /// 5.1 No universal default passwords.
    #[serde(rename = "5.1")]
    NoDefaultPasswords,
    /// 5.3 Keep software updated (version, no runtime installs).
    #[serde(rename = "5.3")]
    SoftwareUpdates,
    /// 5.4 Securely store sensitive security parameters.
    #[serde(rename = "5.4")]
    SecureStorage,
    /// 5.5 Communicate securely.
    #[serde(rename = "5.5")]
    SecureCommunication,
    /// 5.6 Minimize exposed attack surfaces.
    #[serde(rename = "5.6")]
    AttackSurface,
    /// 5.7 Ensure software integrity.
    #[serde(rename = "5.7")]
    SoftwareIntegrity,
    /// 5.9 Make systems resilient to outages.
    #[serde(rename = "5.9")]
    Resilience,
    /// 5.13 Validate input data.
    #[serde(rename = "5.13")]
    InputValidation,
    /// 6 Data protection (personal data).
    #[serde(rename = "6")]
    PersonalData,
}

impl Provision {
    /// The clause number, e.g. `"5.5"`.
    pub fn id(self) -> &'static str {
        match self {
            Provision::NoDefaultPasswords => "5.1",
            Provision::SoftwareUpdates => "5.3",
            Provision::SecureStorage => "5.4",
            Provision::SecureCommunication => "5.5",
            Provision::AttackSurface => "5.6",
            Provision::SoftwareIntegrity => "5.7",
            Provision::Resilience => "5.9",
            Provision::InputValidation => "5.13",
            Provision::PersonalData => "6",
        }
    }

    /// The clause title.
    pub fn title(self) -> &'static str {
        match self {
            Provision::NoDefaultPasswords => "no universal default passwords",
            Provision::SoftwareUpdates => "software updates and version",
            Provision::SecureStorage => "secure storage of secrets",
            Provision::SecureCommunication => "secure communication",
            Provision::AttackSurface => "minimised attack surface",
            Provision::SoftwareIntegrity => "software integrity",
            Provision::Resilience => "resilience to outages",
            Provision::InputValidation => "input validation",
            Provision::PersonalData => "personal data",
        }
    }
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub provision: Provision,
    pub status: Status,
    /// Stable name of the check (`mqtt-tls`, `secret-file`…), for scripts and tests.
    pub check: &'static str,
    /// What it is about: `sink \`upstream\``, `api.token_file`…
    pub subject: String,
    /// What was found, for a person. Never a secret's value or a resident id.
    pub found: String,
    /// What to do; present for every warn and fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn pass(
        provision: Provision,
        check: &'static str,
        subject: impl Into<String>,
        found: impl Into<String>,
    ) -> Finding {
        Finding {
            provision,
            status: Status::Pass,
            check,
            subject: subject.into(),
            found: found.into(),
            fix: None,
        }
    }

    pub fn warn(
        provision: Provision,
        check: &'static str,
        subject: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Warn,
            fix: Some(fix.into()),
            ..Finding::pass(provision, check, subject, found)
        }
    }

    pub fn fail(
        provision: Provision,
        check: &'static str,
        subject: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Fail,
            ..Finding::warn(provision, check, subject, found, fix)
        }
    }
}

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

/// `atgw audit`: prints the report; exit 1 when anything failed.
pub fn main(config: &Path, json: bool) -> ExitCode {
    let report = audit(config);
    if json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
