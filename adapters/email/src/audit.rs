//! `atgw audit`'s checks of an email sink: how the link to the server is protected, and
//! whether atgw proves who it is to it.

use atgw_sdk::audit::Finding;
use atgw_sdk::audit::Provision::*;

use crate::config::{EmailConfig, TlsMode};

/// 5.5: the link, and the account. The config already refuses plain SMTP to anything but
/// loopback, so plaintext across the network cannot be configured.
pub fn email(subject: &str, c: &EmailConfig) -> Vec<Finding> {
    let server = format!("{}:{}", c.host, c.port());
    let pinned = if c.ca_only {
        "; server pinned to its private CA"
    } else {
        ""
    };
    let link = match c.tls {
        TlsMode::Starttls => Finding::pass(
            SecureCommunication,
            "email-tls",
            subject,
            format!("SMTP to {server} with STARTTLS required (no fallback to plain text){pinned}"),
        ),
        TlsMode::Implicit => Finding::pass(
            SecureCommunication,
            "email-tls",
            subject,
            format!("SMTPS (TLS from the first byte) to {server}{pinned}"),
        ),
        TlsMode::None => Finding::warn(
            SecureCommunication,
            "email-tls",
            subject,
            format!(
                "tls = \"none\": plain SMTP to {server} (a relay on this machine); whatever it forwards to must use TLS"
            ),
            "point host at the mail server and use tls = \"starttls\" or \"implicit\"",
        ),
    };
    let auth = match &c.username {
        Some(_) => Finding::pass(
            SecureCommunication,
            "email-auth",
            subject,
            format!(
                "SMTP AUTH with the password from password_file{}",
                if c.tls == TlsMode::None {
                    " (in clear, on loopback only)"
                } else {
                    ", inside TLS"
                }
            ),
        ),
        None => Finding::warn(
            SecureCommunication,
            "email-auth",
            subject,
            format!("no SMTP AUTH: {server} takes mail from atgw without a login"),
            "give the gateway its own account on the mail server and set `username` and `password_file`",
        ),
    };
    vec![link, auth]
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::audit::Status;

    fn config() -> EmailConfig {
        EmailConfig::new(
            "m",
            "smtp.site.example",
            "a@site.example",
            vec!["b@site.example".into()],
        )
    }

    #[test]
    fn tls_with_auth_passes() {
        let mut c = config();
        c.username = Some("gw".into());
        c.password_file = Some("pw".into());
        let f = email("sink `m`", &c);
        assert!(f.iter().all(|f| f.status == Status::Pass), "{f:?}");
    }

    #[test]
    fn no_auth_and_a_plain_local_relay_warn() {
        let mut c = config();
        let f = email("sink `m`", &c);
        assert_eq!(f[1].status, Status::Warn);
        assert_eq!(f[1].check, "email-auth");
        c.host = "127.0.0.1".into();
        c.tls = TlsMode::None;
        let f = email("sink `m`", &c);
        assert_eq!(f[0].status, Status::Warn);
        assert!(f[0].found.contains("127.0.0.1:25"), "{:?}", f[0]);
    }

    #[test]
    fn findings_never_name_a_recipient() {
        let f = email("sink `m`", &config());
        assert!(f.iter().all(|f| !f.found.contains("b@site.example")));
    }
}
