//! `atgw audit`'s checks of a DC-09 receiver: where it listens, which accounts encrypt, what it
//! accepts.

use atgw_sdk::audit::Provision::*;
use atgw_sdk::audit::{Finding, Scope, scope};

/// 5.6, 5.5 and 5.13: a DC-09 receiver.
pub fn receiver(subject: &str, d: &crate::Config) -> Vec<Finding> {
    let subject = subject.to_owned();
    let mut out = Vec::new();
    for (key, addr) in [("listen_tcp", &d.listen_tcp), ("listen_udp", &d.listen_udp)] {
        let Some(addr) = addr else { continue };
        let subject = format!("{subject} {key}");
        out.push(match scope(addr) {
            Scope::Loopback => Finding::pass(
                AttackSurface,
                "dc09-listen",
                subject,
                format!("{addr} is loopback only"),
            ),
            Scope::Address(ip) => Finding::pass(
                AttackSurface,
                "dc09-listen",
                subject,
                format!(
                    "{addr}: the LAN address {ip} only, where the alarm panels are (firewall it to them)"
                ),
            ),
            Scope::Everywhere | Scope::Unparsed => Finding::warn(
                AttackSurface,
                "dc09-listen",
                subject,
                format!("{addr} listens on every interface, including any uplink to the internet"),
                "listen on the LAN interface's address only, e.g. \"192.168.10.2:7777\", and firewall the port to the panels",
            ),
        });
    }
    for a in &d.accounts {
        if a.key_file.is_none() {
            out.push(Finding::warn(
                SecureCommunication,
                "dc09-encryption",
                format!("{subject} account {}", a.account),
                "no AES key: this panel's alarms can be read and forged by anyone on the network",
                "enable DC-09 encryption on the panel and set key_file (and key_format) for this account",
            ));
        } else {
            out.push(Finding::pass(
                SecureCommunication,
                "dc09-encryption",
                format!("{subject} account {}", a.account),
                "AES-encrypted; plaintext frames from this account are refused",
            ));
        }
    }
    if d.accept_unknown {
        out.push(Finding::warn(
            InputValidation,
            "dc09-unknown-accounts",
            subject.clone(),
            "accept_unknown: frames from accounts not listed are journaled and acknowledged",
            "list every panel's account under `accounts` and remove accept_unknown",
        ));
    } else {
        out.push(Finding::pass(
            InputValidation,
            "dc09-unknown-accounts",
            subject.clone(),
            "frames from unlisted accounts are refused (DUH) and dead-lettered",
        ));
    }
    let (age, ahead) = (
        d.max_timestamp_age.as_secs(),
        d.max_timestamp_ahead.as_secs(),
    );
    if age > 40 || ahead > 20 {
        out.push(Finding::warn(
            InputValidation,
            "dc09-replay-window",
            subject,
            format!(
                "timestamps accepted from {age}s old to {ahead}s ahead: a wider replay window than DC-09's 40s / 20s"
            ),
            "remove max_timestamp_age and max_timestamp_ahead (or set them to \"40s\" and \"20s\") and fix the panels' clocks",
        ));
    }
    out
}
