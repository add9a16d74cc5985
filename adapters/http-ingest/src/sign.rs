//! The sender's side of each authentication scheme: the headers a vendor cloud puts on a
//! request. Used by `atgw simulate http` and the tests, so what they send is what
//! [`crate::auth`] is checked against, byte for byte.

use atgw_http::signing::{self, WebhookKey};
use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Hex HMAC-SHA256 of the parts, in order, with `key` as given.
pub fn hex_hmac(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`.
pub fn standard_webhooks(key: &WebhookKey, id: &str, unix_s: i64, body: &[u8]) -> Headers {
    vec![
        ("webhook-id".into(), id.to_owned()),
        ("webhook-timestamp".into(), unix_s.to_string()),
        (
            "webhook-signature".into(),
            signing::sign(key, id, unix_s, body),
        ),
    ]
}

/// GitHub style: `header: prefix + hex HMAC(body)`.
pub fn hmac_sha256(secret: &str, header: &str, prefix: &str, body: &[u8]) -> Headers {
    vec![(
        header.to_owned(),
        format!("{prefix}{}", hex_hmac(secret, &[body])),
    )]
}

/// Timestamped: `timestamp_header: ts`, `signature_header: hex HMAC("{ts}.{body}")`.
pub fn timestamped_hmac(
    secret: &str,
    signature_header: &str,
    timestamp_header: &str,
    ts: &str,
    body: &[u8],
) -> Headers {
    vec![
        (timestamp_header.to_owned(), ts.to_owned()),
        (
            signature_header.to_owned(),
            hex_hmac(secret, &[ts.as_bytes(), b".", body]),
        ),
    ]
}

pub fn bearer(token: &str) -> Headers {
    vec![("authorization".into(), format!("Bearer {token}"))]
}

pub fn basic(user: &str, password: &str) -> Headers {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    vec![("authorization".into(), format!("Basic {pair}"))]
}

pub fn api_key(header: &str, key: &str) -> Headers {
    vec![(header.to_owned(), key.to_owned())]
}

/// Header name and value pairs.
pub type Headers = Vec<(String, String)>;
