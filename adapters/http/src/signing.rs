//! Standard Webhooks v1 signatures: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
//!
//! Pure functions, no I/O: the sink signs each attempt with them, and tests (and a future
//! inbound `http` adapter) verify with them. The spec is standard-webhooks v1.0.0; the test
//! vector is `tests/fixtures/devices/standard-webhooks-vector.jsonl` in the workspace.
//!
//! # Secrets
//! A secret is written either way:
//! - `whsec_<base64>`, the Standard Webhooks form: the HMAC key is the base64-*decoded* bytes
//!   (padding optional, as the reference libraries accept). Prefer this form: it is what the
//!   receiving side's Standard Webhooks library expects to be given.
//! - anything without the `whsec_` prefix is a *raw* secret: its UTF-8 bytes are the HMAC key
//!   as they are. This is for receivers that hand out a plain shared string. Note that the
//!   reference libraries base64-decode an unprefixed string, so a receiver built on one of them
//!   must be given `whsec_` + base64 of the raw secret, not the raw text.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks serialised secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a `webhook-timestamp` may be from the verifier's clock, either way (the reference
/// implementations' tolerance).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Standard alphabet, padding optional: secrets are shared by people, who drop the `=`.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A parsed webhook secret, keyed and ready to sign. `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookKey {
    /// HMAC state after absorbing the key; cloned per signature.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey(***)")
    }
}

/// Why a secret is not usable. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the secret is empty")]
    Empty,
    #[error(
        "the part after `whsec_` is not valid base64 (standard alphabet); re-copy the secret from the receiver"
    )]
    NotBase64,
}

impl WebhookKey {
    /// Parses a secret in either form (see the module docs). Surrounding whitespace is ignored.
    pub fn parse(secret: &str) -> Result<WebhookKey, KeyError> {
        let secret = secret.trim();
        let key: Vec<u8> = match secret.strip_prefix(SECRET_PREFIX) {
            Some(b64) => LENIENT.decode(b64).map_err(|_| KeyError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        // HMAC takes keys of any length, so this cannot fail for a non-empty key; map it anyway
        // rather than trust that.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| KeyError::Empty)?;
        Ok(WebhookKey { mac })
    }

    fn digest(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` value for one attempt: `v1,<base64 signature>`.
///
/// `body` must be the exact bytes sent; `timestamp` is unix seconds, the same value sent in
/// `webhook-timestamp`.
pub fn sign(key: &WebhookKey, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = key.digest(msg_id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Why a signed request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp `{0}` is not unix seconds")]
    BadTimestamp(String),
    #[error("webhook-timestamp is {0} s older than allowed")]
    TooOld(i64),
    #[error("webhook-timestamp is {0} s in the future")]
    TooNew(i64),
    #[error("no v1 signature in webhook-signature matches")]
    NoMatch,
}

/// Checks a request's Standard Webhooks headers against its raw body.
///
/// `signatures` is the `webhook-signature` header: space-separated `version,base64` entries
/// (several during key rotation); entries of other versions (`v1a` is ed25519) or that are
/// malformed are skipped, and one matching `v1` entry is enough. Comparison is constant-time.
/// `now` is unix seconds; the timestamp must lie within `tolerance` of it either way.
pub fn verify(
    key: &WebhookKey,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.chars().take(32).collect()))?;
    let tol = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    // Saturating: the timestamp is whatever the sender wrote (i64::MIN included).
    if ts < now.saturating_sub(tol) {
        return Err(VerifyError::TooOld(
            now.saturating_sub(tol).saturating_sub(ts),
        ));
    }
    if ts > now.saturating_add(tol) {
        return Err(VerifyError::TooNew(ts.saturating_sub(now)));
    }
    for entry in signatures.split(' ').filter(|s| !s.is_empty()) {
        let Some(("v1", sig)) = entry.split_once(',') else {
            continue;
        };
        let Ok(sig) = general_purpose::STANDARD.decode(sig) else {
            continue;
        };
        if key.digest(msg_id, ts, body).verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared vector, read from the workspace fixture so code and docs cannot drift apart.
    struct Vector {
        secret: String,
        id: String,
        timestamp: i64,
        body: String,
        expect: String,
    }

    fn vector() -> Vector {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/devices/standard-webhooks-vector.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("fixture present");
        let line = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("jsonl"))
            .find(|v| v.get("expect").is_some())
            .expect("a vector line");
        let s = |k: &str| line[k].as_str().expect(k).to_owned();
        Vector {
            secret: s("secret"),
            id: s("id"),
            timestamp: line["timestamp"].as_i64().expect("timestamp"),
            body: s("body"),
            expect: s("expect"),
        }
    }

    #[test]
    fn standard_webhooks_vector_signs_exactly() {
        let v = vector();
        let key = WebhookKey::parse(&v.secret).unwrap();
        let sig = sign(&key, &v.id, v.timestamp, v.body.as_bytes());
        assert_eq!(sig, v.expect);
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn vector_verifies_within_tolerance_and_not_outside() {
        let v = vector();
        let key = WebhookKey::parse(&v.secret).unwrap();
        let ts = v.timestamp.to_string();
        let ok = |now| {
            verify(
                &key,
                &v.id,
                &ts,
                &v.expect,
                v.body.as_bytes(),
                now,
                TOLERANCE,
            )
        };
        assert_eq!(ok(v.timestamp), Ok(()));
        assert_eq!(ok(v.timestamp + 300), Ok(()));
        assert_eq!(ok(v.timestamp - 300), Ok(()));
        assert_eq!(ok(v.timestamp + 301), Err(VerifyError::TooOld(1)));
        assert_eq!(ok(v.timestamp - 301), Err(VerifyError::TooNew(301)));
    }

    #[test]
    fn any_one_of_several_signatures_may_match() {
        let v = vector();
        let key = WebhookKey::parse(&v.secret).unwrap();
        let header = format!(
            "v1a,AAAA v1,bm90IHRoZSBzaWduYXR1cmU= garbage v1,%%% {}",
            v.expect
        );
        let ts = v.timestamp.to_string();
        let r = verify(
            &key,
            &v.id,
            &ts,
            &header,
            v.body.as_bytes(),
            v.timestamp,
            TOLERANCE,
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn a_changed_body_id_or_key_does_not_verify() {
        let v = vector();
        let key = WebhookKey::parse(&v.secret).unwrap();
        let ts = v.timestamp.to_string();
        let now = v.timestamp;
        let body = v.body.as_bytes();
        let r = verify(&key, &v.id, &ts, &v.expect, b"{}", now, TOLERANCE);
        assert_eq!(r, Err(VerifyError::NoMatch));
        let r = verify(&key, "msg_other", &ts, &v.expect, body, now, TOLERANCE);
        assert_eq!(r, Err(VerifyError::NoMatch));
        let other = WebhookKey::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let r = verify(&other, &v.id, &ts, &v.expect, body, now, TOLERANCE);
        assert_eq!(r, Err(VerifyError::NoMatch));
        let r = verify(&key, &v.id, "soon", &v.expect, body, now, TOLERANCE);
        assert!(matches!(r, Err(VerifyError::BadTimestamp(_))));
    }

    #[test]
    fn unpadded_base64_secret_is_the_same_key() {
        let v = vector();
        // The vector's secret has no padding to drop; use one that does.
        let padded = WebhookKey::parse("whsec_c2VjcmV0IQ==").unwrap();
        let unpadded = WebhookKey::parse("whsec_c2VjcmV0IQ").unwrap();
        let raw = WebhookKey::parse("secret!").unwrap();
        let a = sign(&padded, &v.id, 1, b"x");
        assert_eq!(a, sign(&unpadded, &v.id, 1, b"x"));
        // A raw secret's bytes are the key: "c2VjcmV0IQ==" is base64 of "secret!".
        assert_eq!(a, sign(&raw, &v.id, 1, b"x"));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        assert_eq!(WebhookKey::parse("whsec_").unwrap_err(), KeyError::Empty);
        assert_eq!(WebhookKey::parse("  \n").unwrap_err(), KeyError::Empty);
        let e = WebhookKey::parse("whsec_not*base64!").unwrap_err();
        assert_eq!(e, KeyError::NotBase64);
        assert!(!e.to_string().contains("not*base64"));
        let k = WebhookKey::parse("whsec_c2VjcmV0IQ==").unwrap();
        assert_eq!(format!("{k:?}"), "WebhookKey(***)");
    }
}
