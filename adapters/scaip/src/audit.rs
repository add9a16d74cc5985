//! `atgw audit`'s checks of a SCAIP receiver: where it listens, whether units must
//! authenticate, and that its SIP is not encrypted (TLS is not implemented yet).

use atgw_sdk::audit::Provision::*;
use atgw_sdk::audit::{Finding, Scope, scope};

/// 5.5, 5.6 and 5.13: a SCAIP receiver.
pub fn receiver(subject: &str, c: &crate::Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, addr) in [("listen_udp", &c.listen_udp), ("listen_tcp", &c.listen_tcp)] {
        let Some(addr) = addr else { continue };
        let s = format!("{subject} {key}");
        out.push(match scope(addr) {
            Scope::Loopback => Finding::pass(
                AttackSurface,
                "scaip-listen",
                s,
                format!("{addr} is loopback only"),
            ),
            Scope::Address(ip) => Finding::pass(
                AttackSurface,
                "scaip-listen",
                s,
                format!("{addr}: the LAN address {ip} only (firewall it to the units)"),
            ),
            Scope::Everywhere | Scope::Unparsed => Finding::warn(
                AttackSurface,
                "scaip-listen",
                s,
                format!("{addr} listens on every interface, including any uplink to the internet"),
                "listen on the LAN interface's address only and firewall SIP to the units",
            ),
        });
    }
    out.push(if c.allow_unauthenticated {
        Finding::warn(
            InputValidation,
            "scaip-auth",
            subject.to_owned(),
            "allow_unauthenticated: any host that can reach the port can raise (or reset) alarms",
            "give every unit an account (accounts = [{ user, password_file }]) and remove allow_unauthenticated",
        )
    } else {
        Finding::pass(
            InputValidation,
            "scaip-auth",
            subject.to_owned(),
            "units must pass SIP digest authentication",
        )
    });
    out.push(Finding::warn(
        SecureCommunication,
        "scaip-encryption",
        subject.to_owned(),
        "SIP over UDP/TCP without TLS: alarms can be read on the network (digest auth stops forgery, not eavesdropping)",
        "keep the units on a separate, firewalled LAN or VLAN until sips: (TLS) is supported",
    ));
    out
}
