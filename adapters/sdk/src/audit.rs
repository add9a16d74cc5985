//! What `atgw audit` reports, in terms every component can use for the checks only it knows
//! how to make (how its links are protected, what it listens on, how strictly it takes input):
//! findings against the ETSI EN 303 645 provisions, and the address scope helpers they share.

use std::net::{IpAddr, SocketAddr};

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

/// Where an address listens.
#[derive(Debug, PartialEq, Eq)]
pub enum Scope {
    Loopback,
    Everywhere,
    Address(IpAddr),
    Unparsed,
}

pub fn scope(listen: &str) -> Scope {
    if let Ok(a) = listen.parse::<SocketAddr>() {
        return match a.ip() {
            ip if ip.is_loopback() => Scope::Loopback,
            ip if ip.is_unspecified() => Scope::Everywhere,
            ip => Scope::Address(ip),
        };
    }
    match listen.rsplit_once(':') {
        Some((host, _)) if host.eq_ignore_ascii_case("localhost") => Scope::Loopback,
        _ => Scope::Unparsed,
    }
}

/// `localhost` or a loopback IP literal (brackets allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}
