//! `atgw audit`'s check of the link to the SMSC.

use atgw_sdk::audit::Finding;
use atgw_sdk::audit::Provision::SecureCommunication;

use crate::config::SmsConfig;

/// 5.5: the SMPP session carries the bind password and the alert texts.
pub fn smpp(subject: &str, c: &SmsConfig) -> Finding {
    let target = format!("{}:{}", c.host, c.port());
    if c.tls {
        Finding::pass(
            SecureCommunication,
            "sms-tls",
            subject,
            format!(
                "SMPP over TLS to {target}{}",
                if c.ca_file.is_some() {
                    ", the SMSC checked against ca_file"
                } else {
                    ", the SMSC checked against the system store"
                }
            ),
        )
    } else if c.is_loopback() {
        Finding::pass(
            SecureCommunication,
            "sms-tls",
            subject,
            format!("plain SMPP to {target} on this machine (a local relay)"),
        )
    } else {
        Finding::warn(
            SecureCommunication,
            "sms-tls",
            subject,
            format!(
                "tls = false: the bind password and alert texts cross the network to {target} in clear"
            ),
            "use the SMSC's TLS port (usually 3550) and remove `tls = false`, or reach it over a VPN",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::audit::Status;

    #[test]
    fn plain_smpp_is_a_warning_unless_it_stays_on_this_machine() {
        let mut c = SmsConfig::new(
            "t",
            "smsc.example.net",
            "id",
            "pw".into(),
            "Oakview",
            vec!["+447700900123".into()],
        );
        assert_eq!(smpp("s", &c).status, Status::Pass);
        c.tls = false;
        let f = smpp("s", &c);
        assert_eq!(f.status, Status::Warn);
        assert!(f.found.contains("smsc.example.net:2775"), "{}", f.found);
        c.host = "127.0.0.1".into();
        assert_eq!(smpp("s", &c).status, Status::Pass);
    }
}
