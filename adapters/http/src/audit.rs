//! `atgw audit`'s check of a webhook target.

use atgw_sdk::audit::Finding;
use atgw_sdk::audit::Provision::*;

/// 5.5: a webhook target. The config already refuses plain http to anything but loopback.
pub fn webhook(subject: &str, w: &crate::WebhookConfig) -> Finding {
    let shown = crate::config::redact(&w.url);
    if w.url.starts_with("https://") {
        Finding::pass(
            SecureCommunication,
            "webhook-tls",
            subject,
            format!(
                "HTTPS to {shown}, signed per Standard Webhooks{}{}",
                if w.ca_only {
                    "; receiver pinned to its private CA"
                } else {
                    ""
                },
                if w.cert_file.is_some() {
                    "; mutual TLS with a client certificate"
                } else {
                    ""
                }
            ),
        )
    } else {
        Finding::warn(
            SecureCommunication,
            "webhook-tls",
            subject,
            format!(
                "allow_http: plain HTTP to {shown} (a relay on this machine); whatever it forwards to must use HTTPS"
            ),
            "point url at the receiver's https:// address and remove allow_http",
        )
    }
}
