//! `atgw audit`'s checks of a SCAIP receiver: where it listens, whether units must
//! authenticate, and whether its SIP crosses the network in clear: a UDP or TCP listener on a
//! non-loopback address warns (as the API's plain listener does, but a warning, not a failure:
//! many digital units speak only UDP/TCP, and digest auth still stops forgery); TLS passes.

use atgw_sdk::audit::Provision::*;
use atgw_sdk::audit::{Finding, Scope, scope};

/// 5.5, 5.6 and 5.13: a SCAIP receiver.
pub fn receiver(subject: &str, c: &crate::Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, addr) in [
        ("listen_udp", &c.listen_udp),
        ("listen_tcp", &c.listen_tcp),
        ("listen_tls", &c.listen_tls),
    ] {
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
    out.extend(encryption(subject, c));
    out
}

/// 5.5: one finding per clear listener reachable from the network, else one pass.
fn encryption(subject: &str, c: &crate::Config) -> Vec<Finding> {
    let clear: Vec<Finding> = [("listen_udp", &c.listen_udp), ("listen_tcp", &c.listen_tcp)]
        .into_iter()
        .filter_map(|(key, addr)| {
            let addr = addr.as_ref()?;
            (scope(addr) != Scope::Loopback).then(|| {
                Finding::warn(
                    SecureCommunication,
                    "scaip-encryption",
                    format!("{subject} {key}"),
                    format!("{addr}: SIP in clear on the network; alarms can be read there (digest auth stops forgery, not eavesdropping)"),
                    if c.listen_tls.is_some() {
                        "move the units to sips: (listen_tls) and remove this listener, or keep it on a separate, firewalled VLAN"
                    } else {
                        "add listen_tls with tls = { cert_file, key_file } and move the units to sips:, or keep them on a separate, firewalled VLAN"
                    },
                )
            })
        })
        .collect();
    if !clear.is_empty() {
        return clear;
    }
    let how = match (
        &c.listen_tls,
        c.tls.as_ref().and_then(|t| t.client_ca_file.as_ref()),
    ) {
        (Some(_), Some(_)) => "SIP over TLS only, units present client certificates",
        (Some(_), None) => "SIP over TLS only (units authenticate by digest)",
        (None, _) => "SIP listens on loopback only",
    };
    vec![Finding::pass(
        SecureCommunication,
        "scaip-encryption",
        subject.to_owned(),
        how,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::audit::Status as Verdict;

    fn config(text: &str) -> crate::Config {
        toml::from_str(&format!(
            "name = \"u\"\nallow_unauthenticated = true\n{text}"
        ))
        .unwrap()
    }

    fn encryption_verdicts(text: &str) -> Vec<Verdict> {
        encryption("adapter u", &config(text))
            .iter()
            .map(|f| f.status)
            .collect()
    }

    #[test]
    fn sip_in_clear_off_loopback_warns_and_tls_only_passes() {
        let tls = "tls = { cert_file = \"c\", key_file = \"k\" }";
        assert_eq!(
            encryption_verdicts("listen_udp = \"192.168.1.5:5060\"\nlisten_tcp = \"0.0.0.0:5060\""),
            [Verdict::Warn, Verdict::Warn]
        );
        assert_eq!(
            encryption_verdicts(&format!(
                "listen_udp = \"10.0.0.2:5060\"\nlisten_tls = \"0.0.0.0:5061\"\n{tls}"
            )),
            [Verdict::Warn]
        );
        assert_eq!(
            encryption_verdicts(&format!("listen_tls = \"0.0.0.0:5061\"\n{tls}")),
            [Verdict::Pass]
        );
        assert_eq!(
            encryption_verdicts("listen_udp = \"127.0.0.1:5060\""),
            [Verdict::Pass]
        );
    }
}
