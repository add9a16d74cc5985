//! `atgw audit`'s checks of MQTT links and input: how each broker connection is protected
//! and what the adapter accepts.

use atgw_sdk::audit::Finding;
use atgw_sdk::audit::Provision::*;
use atgw_sdk::audit::is_loopback_host;

/// 5.5 (and 5.1): one MQTT connection.
pub fn broker(subject: &str, b: &crate::config::Broker, carries: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let at = format!("{}:{}", b.host, b.port);
    let local = is_loopback_host(&b.host);
    let client_cert = b.tls.as_ref().is_some_and(|t| t.cert_file.is_some());
    out.push(match (&b.tls, local) {
        (None, true) => Finding::pass(
            SecureCommunication,
            "mqtt-tls",
            subject,
            format!("plain MQTT to {at}, which is this machine: nothing crosses a network"),
        ),
        (None, false) => Finding::fail(
            SecureCommunication,
            "mqtt-tls",
            subject,
            format!("plain MQTT to {at}: {carries} and any password cross the network in clear"),
            "enable TLS on the broker (port 8883) and set tls = { ca_file = \"…\", cert_file = \"…\", key_file = \"…\" }",
        ),
        (Some(_), _) if client_cert => Finding::pass(
            SecureCommunication,
            "mqtt-tls",
            subject,
            format!("TLS to {at} with a client certificate"),
        ),
        (Some(_), true) => Finding::pass(
            SecureCommunication,
            "mqtt-tls",
            subject,
            format!("TLS to {at} (this machine)"),
        ),
        (Some(_), false) => Finding::warn(
            SecureCommunication,
            "mqtt-tls",
            subject,
            format!(
                "TLS to {at} without a client certificate: the broker knows this gateway only by {}",
                if b.password_file.is_some() {
                    "its password"
                } else {
                    "nothing"
                }
            ),
            "issue the gateway a client certificate and set tls.cert_file and tls.key_file; require it on the broker",
        ),
    });
    if b.username.is_some() && b.password_file.is_none() {
        out.push(Finding::warn(
            NoDefaultPasswords,
            "mqtt-auth",
            subject,
            format!(
                "user name `{}` without a password",
                b.username.as_deref().unwrap_or_default()
            ),
            "give the broker account a unique password and set password_file (chmod 600)",
        ));
    } else if !local && b.username.is_none() && !client_cert {
        out.push(Finding::warn(
            SecureCommunication,
            "mqtt-auth",
            subject,
            format!("connects to {at} anonymously"),
            "require authentication on the broker: a client certificate, or username + password_file",
        ));
    }
    out
}

/// 5.13: what an MQTT adapter accepts.
pub fn input(
    subject: &str,
    m: &crate::config::AdapterConfig,
    profiles_dir: &std::path::Path,
) -> Vec<Finding> {
    let subject = subject.to_owned();
    let mut out = vec![
        match atgw_profile::ProfileSet::load(profiles_dir, &m.profiles) {
            Ok(_) => Finding::pass(
                InputValidation,
                "profiles",
                subject.clone(),
                format!(
                    "{} profile(s) load; a message no profile maps is dead-lettered",
                    m.profiles.len()
                ),
            ),
            Err(e) => Finding::fail(
                InputValidation,
                "profiles",
                subject.clone(),
                format!("profiles do not load: {e}"),
                "correct the profile (`atgw profile test` shows what it makes of a sample)",
            ),
        },
    ];
    if m.max_payload > 1 << 20 {
        out.push(Finding::warn(
            InputValidation,
            "mqtt-max-payload",
            subject,
            format!(
                "max_payload = {} bytes: one device message may hold that much memory",
                m.max_payload
            ),
            "keep max_payload at or below 262144 (the default) unless a device really sends more",
        ));
    }
    out
}
