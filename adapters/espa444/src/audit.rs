//! `atgw audit`'s checks of an ESPA 4.4.4 link. ESPA has no authentication and no encryption:
//! on a serial cable that is the cable's physical security; over TCP, anyone who can reach the
//! port can raise (or reset) a nurse call, or read every page, so the link must stay on a
//! network only the nurse-call and paging equipment share.

use atgw_sdk::audit::Provision::*;
use atgw_sdk::audit::{Finding, Scope, is_loopback_host, scope};

use crate::config::Transport;

/// 5.5 and 5.6: where the link is and who can reach it.
pub fn link(subject: &str, t: &Transport, what: &str) -> Vec<Finding> {
    let subject = subject.to_owned();
    let plain = format!(
        "ESPA 4.4.4 has no authentication or encryption: anyone who reaches this port can {what}"
    );
    let fix = "keep the ESPA link on a cable or a VLAN only the nurse-call and paging equipment share; listen on that interface's address only and firewall the port to the serial server";
    if let Some(l) = &t.listen {
        let subject = format!("{subject} listen");
        return vec![match scope(l) {
            Scope::Loopback => Finding::pass(
                AttackSurface,
                "espa-listen",
                subject,
                format!("{l} is loopback only"),
            ),
            Scope::Address(ip) => Finding::warn(
                SecureCommunication,
                "espa-listen",
                subject,
                format!("{l}: {plain} (bound to {ip} only)"),
                fix,
            ),
            Scope::Everywhere | Scope::Unparsed => Finding::warn(
                AttackSurface,
                "espa-listen",
                subject,
                format!("{l} listens on every interface; {plain}"),
                fix,
            ),
        }];
    }
    if let Some(c) = &t.connect {
        let host = c.rsplit_once(':').map_or(c.as_str(), |(h, _)| h);
        let subject = format!("{subject} connect");
        return vec![if is_loopback_host(host) {
            Finding::pass(
                SecureCommunication,
                "espa-connect",
                subject,
                format!("{c} is loopback"),
            )
        } else {
            Finding::warn(
                SecureCommunication,
                "espa-connect",
                subject,
                format!("{c}: {plain}"),
                fix,
            )
        }];
    }
    if let Some(s) = &t.serial {
        return vec![Finding::pass(
            SecureCommunication,
            "espa-serial",
            format!("{subject} serial"),
            format!(
                "{}: a point-to-point serial line; its security is the cable's (the unit needs a drop-in naming the port: docs/ESPA.md)",
                s.device.display()
            ),
        )];
    }
    Vec::new()
}
