//! Who may post to a route: each scheme checks a request's headers against its raw body with a
//! secret read from a file. Every comparison is constant-time (HMAC tags through
//! `Mac::verify_slice`; tokens and passwords by comparing SHA-256 digests of both sides with
//! `subtle`, so neither the content nor the length of the secret leaks through timing).
//!
//! A failure names what was wrong for the log (`missing webhook-signature`, `stale
//! timestamp`) and never echoes the secret or the presented credential.

use std::time::Duration;

use atgw_http::signing::{self, WebhookKey};
use atgw_sdk::secret::Secret;
use axum::http::HeaderMap;
use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, TimestampUnit};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a request was not let in (answered `401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("missing header {0}")]
    MissingNamed(String),
    #[error("header {0} is not text")]
    NotText(String),
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("stale timestamp: {0} s outside the tolerance")]
    Stale(i64),
    #[error("wrong credentials")]
    Wrong,
    #[error("standard webhooks: {0}")]
    Standard(signing::VerifyError),
}

impl AuthError {
    /// A short machine-readable reason, for metrics (`atgw_rejected_total{reason=…}`).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing(_) | AuthError::MissingNamed(_) | AuthError::NotText(_) => {
                "auth_missing"
            }
            AuthError::Stale(_)
            | AuthError::Standard(
                signing::VerifyError::TooOld(_) | signing::VerifyError::TooNew(_),
            ) => "auth_stale",
            _ => "auth_failed",
        }
    }
}

/// A route's scheme with its secret loaded.
pub enum Verifier {
    StandardWebhooks {
        key: WebhookKey,
        tolerance: Duration,
    },
    HmacSha256 {
        key: Secret,
        header: String,
        prefix: String,
    },
    TimestampedHmac {
        key: Secret,
        signature_header: String,
        timestamp_header: String,
        unit: TimestampUnit,
        tolerance: Duration,
    },
    /// `Authorization` must equal this exactly (`Bearer …`, `Basic …`).
    Authorization {
        expected: [u8; 32],
    },
    ApiKey {
        header: String,
        expected: [u8; 32],
    },
}

/// Why a token (bearer token, API key) cannot travel in a header, if it cannot: it must be one
/// line of visible ASCII without spaces, or no request could ever present it.
pub fn token_problem(token: &str) -> Option<String> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(
            "not one line of visible ASCII without spaces (it must fit in a header)".into(),
        );
    }
    None
}

/// Why a secret file's content cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyProblem(String);

impl Verifier {
    /// The scheme with `secret` (the file's content, already read and checked private).
    pub fn new(cfg: &AuthConfig, secret: Secret) -> Result<Verifier, KeyProblem> {
        let nonempty = |s: &Secret| {
            if s.expose().is_empty() {
                Err(KeyProblem("the secret file is empty".into()))
            } else {
                Ok(())
            }
        };
        nonempty(&secret)?;
        if matches!(cfg, AuthConfig::Bearer { .. } | AuthConfig::ApiKey { .. })
            && let Some(p) = token_problem(secret.expose())
        {
            return Err(KeyProblem(p));
        }
        Ok(match cfg {
            AuthConfig::StandardWebhooks { tolerance, .. } => Verifier::StandardWebhooks {
                key: WebhookKey::parse(secret.expose()).map_err(|e| KeyProblem(e.to_string()))?,
                tolerance: *tolerance,
            },
            AuthConfig::HmacSha256 { header, prefix, .. } => Verifier::HmacSha256 {
                key: secret,
                header: header.clone(),
                prefix: prefix.clone(),
            },
            AuthConfig::TimestampedHmac {
                signature_header,
                timestamp_header,
                timestamp_unit,
                tolerance,
                ..
            } => Verifier::TimestampedHmac {
                key: secret,
                signature_header: signature_header.clone(),
                timestamp_header: timestamp_header.clone(),
                unit: *timestamp_unit,
                tolerance: *tolerance,
            },
            AuthConfig::Bearer { .. } => Verifier::Authorization {
                expected: digest(format!("Bearer {}", secret.expose()).as_bytes()),
            },
            AuthConfig::Basic { user, .. } => {
                let pair = format!("{user}:{}", secret.expose());
                Verifier::Authorization {
                    expected: digest(
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(pair)
                        )
                        .as_bytes(),
                    ),
                }
            }
            AuthConfig::ApiKey { header, .. } => Verifier::ApiKey {
                header: header.clone(),
                expected: digest(secret.expose().as_bytes()),
            },
        })
    }

    /// Checks one request. `now` is unix milliseconds.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now_ms: i64) -> Result<(), AuthError> {
        match self {
            Verifier::StandardWebhooks { key, tolerance } => {
                let id = text(headers, "webhook-id")?;
                let ts = text(headers, "webhook-timestamp")?;
                let sig = text(headers, "webhook-signature")?;
                signing::verify(key, id, ts, sig, body, now_ms / 1000, *tolerance)
                    .map_err(AuthError::Standard)
            }
            Verifier::HmacSha256 {
                key,
                header,
                prefix,
            } => {
                let presented = named(headers, header)?;
                let hex_tag = presented
                    .trim()
                    .strip_prefix(prefix.as_str())
                    .ok_or(AuthError::BadSignature)?;
                let tag = hex::decode(hex_tag).map_err(|_| AuthError::BadSignature)?;
                let mut mac = mac(key);
                mac.update(body);
                mac.verify_slice(&tag).map_err(|_| AuthError::BadSignature)
            }
            Verifier::TimestampedHmac {
                key,
                signature_header,
                timestamp_header,
                unit,
                tolerance,
            } => {
                let ts_text = named(headers, timestamp_header)?.trim();
                let sig = named(headers, signature_header)?.trim();
                let ts: i64 = ts_text.parse().map_err(|_| AuthError::BadTimestamp)?;
                let ts_ms = match unit {
                    TimestampUnit::Milliseconds => ts,
                    TimestampUnit::Seconds => ts.saturating_mul(1000),
                };
                let tol = i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX);
                // Saturating: both times may be anything a sender writes.
                let off = now_ms.saturating_sub(ts_ms).unsigned_abs();
                let tol = tol.unsigned_abs();
                if off > tol {
                    let s = i64::try_from((off - tol) / 1000).unwrap_or(i64::MAX);
                    return Err(AuthError::Stale(s));
                }
                let tag = hex::decode(sig).map_err(|_| AuthError::BadSignature)?;
                let mut mac = mac(key);
                mac.update(ts_text.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(&tag).map_err(|_| AuthError::BadSignature)
            }
            Verifier::Authorization { expected } => {
                let presented = text(headers, "authorization")?;
                same(presented, expected)
            }
            Verifier::ApiKey { header, expected } => same(named(headers, header)?, expected),
        }
    }
}

fn mac(key: &Secret) -> HmacSha256 {
    // HMAC takes a key of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn same(presented: &str, expected: &[u8; 32]) -> Result<(), AuthError> {
    if bool::from(digest(presented.as_bytes()).ct_eq(expected)) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, AuthError> {
    headers
        .get(name)
        .ok_or(AuthError::Missing(name))?
        .to_str()
        .map_err(|_| AuthError::NotText(name.to_owned()))
}

fn named<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, AuthError> {
    headers
        .get(name)
        .ok_or_else(|| AuthError::MissingNamed(name.to_owned()))?
        .to_str()
        .map_err(|_| AuthError::NotText(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::hex_hmac;
    use axum::http::HeaderValue;
    use std::path::PathBuf;

    fn secret(s: &str) -> Secret {
        Secret::from(s.to_owned())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_standard_webhooks_reference_vector_verifies() {
        // standard-webhooks' own test vector (devices-and-schema.md §4.2).
        let cfg = AuthConfig::StandardWebhooks {
            secret_file: PathBuf::new(),
            tolerance: Duration::from_secs(300),
        };
        let v = Verifier::new(&cfg, secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let h = headers(&[
            ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
            ("webhook-timestamp", "1649367553"),
            (
                "webhook-signature",
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ]);
        let now = 1_649_367_553_000;
        v.verify(&h, body, now).unwrap();
        assert!(v.verify(&h, b"{}", now).is_err(), "another body");
        let late = v.verify(&h, body, now + 301_000).unwrap_err();
        assert_eq!(late.reason(), "auth_stale");
        let mut missing = h.clone();
        missing.remove("webhook-signature");
        assert_eq!(
            v.verify(&missing, body, now).unwrap_err().reason(),
            "auth_missing"
        );
    }

    #[test]
    fn github_style_hmac_checks_prefix_and_tag() {
        let cfg = AuthConfig::HmacSha256 {
            secret_file: PathBuf::new(),
            header: "x-purelife-cloud-signature".into(),
            prefix: "sha256=".into(),
        };
        let v = Verifier::new(&cfg, secret("s3cret")).unwrap();
        let body = br#"{"eventId":"e1"}"#;
        let good = format!("sha256={}", hex_hmac("s3cret", &[body]));
        v.verify(&headers(&[("x-purelife-cloud-signature", &good)]), body, 0)
            .unwrap();
        let wrong = format!("sha256={}", hex_hmac("other", &[body]));
        assert_eq!(
            v.verify(&headers(&[("x-purelife-cloud-signature", &wrong)]), body, 0),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify(
                &headers(&[("x-purelife-cloud-signature", &good[7..])]),
                body,
                0
            ),
            Err(AuthError::BadSignature),
            "the prefix is required"
        );
        assert!(v.verify(&HeaderMap::new(), body, 0).is_err());
    }

    #[test]
    fn timestamped_hmac_signs_the_timestamp_and_refuses_stale_ones() {
        let cfg = AuthConfig::TimestampedHmac {
            secret_file: PathBuf::new(),
            signature_header: "x-signature".into(),
            timestamp_header: "x-timestamp".into(),
            timestamp_unit: TimestampUnit::Milliseconds,
            tolerance: Duration::from_secs(300),
        };
        let v = Verifier::new(&cfg, secret("k")).unwrap();
        let body = br#"{"userUUID":"u"}"#;
        let ts = "1771338600000";
        let sig = hex_hmac("k", &[ts.as_bytes(), b".", body]);
        let h = headers(&[("x-timestamp", ts), ("x-signature", &sig)]);
        v.verify(&h, body, 1_771_338_600_000 + 10_000).unwrap();
        assert!(matches!(
            v.verify(&h, body, 1_771_338_600_000 + 400_000),
            Err(AuthError::Stale(_))
        ));
        let other_ts = headers(&[("x-timestamp", "1771338600001"), ("x-signature", &sig)]);
        assert_eq!(
            v.verify(&other_ts, body, 1_771_338_600_000),
            Err(AuthError::BadSignature),
            "the timestamp is part of what is signed"
        );
    }

    #[test]
    fn tokens_keys_and_passwords_must_match_exactly() {
        let bearer = Verifier::new(
            &AuthConfig::Bearer {
                secret_file: PathBuf::new(),
            },
            secret("tok"),
        )
        .unwrap();
        bearer
            .verify(&headers(&[("authorization", "Bearer tok")]), b"", 0)
            .unwrap();
        for bad in ["Bearer to", "Bearer tokk", "bearer tok", "tok"] {
            assert_eq!(
                bearer.verify(&headers(&[("authorization", bad)]), b"", 0),
                Err(AuthError::Wrong),
                "{bad}"
            );
        }
        let key = Verifier::new(
            &AuthConfig::ApiKey {
                secret_file: PathBuf::new(),
                header: "x-api-key".into(),
            },
            secret("abc"),
        )
        .unwrap();
        key.verify(&headers(&[("x-api-key", "abc")]), b"", 0)
            .unwrap();
        assert!(
            key.verify(&headers(&[("x-api-key", "abd")]), b"", 0)
                .is_err()
        );
        let basic = Verifier::new(
            &AuthConfig::Basic {
                user: "purelife".into(),
                secret_file: PathBuf::new(),
            },
            secret("pw"),
        )
        .unwrap();
        // base64("purelife:pw")
        basic
            .verify(
                &headers(&[("authorization", "Basic cHVyZWxpZmU6cHc=")]),
                b"",
                0,
            )
            .unwrap();
        assert!(
            basic
                .verify(
                    &headers(&[("authorization", "Basic cHVyZWxpZmU6cHg=")]),
                    b"",
                    0
                )
                .is_err()
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let sw = Verifier::new(
            &AuthConfig::StandardWebhooks {
                secret_file: PathBuf::new(),
                tolerance: Duration::from_secs(300),
            },
            secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
        )
        .unwrap();
        let th = Verifier::new(
            &AuthConfig::TimestampedHmac {
                secret_file: PathBuf::new(),
                signature_header: "x-signature".into(),
                timestamp_header: "x-timestamp".into(),
                timestamp_unit: TimestampUnit::Seconds,
                tolerance: Duration::from_secs(300),
            },
            secret("k"),
        )
        .unwrap();
        for ts in ["-9223372036854775808", "9223372036854775807"] {
            let h = headers(&[
                ("webhook-id", "m"),
                ("webhook-timestamp", ts),
                ("webhook-signature", "v1,AAAA"),
                ("x-timestamp", ts),
                ("x-signature", "00"),
            ]);
            for now in [i64::MIN, 0, 1_765_000_000_000, i64::MAX] {
                assert_eq!(
                    sw.verify(&h, b"", now).unwrap_err().reason(),
                    "auth_stale",
                    "{ts} {now}"
                );
                assert!(th.verify(&h, b"", now).is_err());
            }
        }
    }

    #[test]
    fn a_token_that_cannot_travel_in_a_header_is_refused() {
        for bad in ["two words", "tab\there", "caf\u{e9}"] {
            let r = Verifier::new(
                &AuthConfig::Bearer {
                    secret_file: PathBuf::new(),
                },
                secret(bad),
            );
            assert!(r.is_err(), "{bad:?}");
        }
        assert!(token_problem("Zx9-_.~+/=abc").is_none());
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let r = Verifier::new(
            &AuthConfig::Bearer {
                secret_file: PathBuf::new(),
            },
            secret(""),
        );
        assert!(r.is_err());
    }

    proptest::proptest! {
        /// Whatever a stranger puts in the headers and body, every scheme answers Ok or Err.
        #[test]
        fn no_header_or_body_makes_a_verifier_panic(
            values in proptest::collection::vec("[ -~]{0,80}", 4),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            now in proptest::num::i64::ANY,
        ) {
            let names = ["webhook-id", "webhook-timestamp", "webhook-signature", "x-signature"];
            let mut h = HeaderMap::new();
            for (n, v) in names.iter().zip(&values) {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.insert(*n, v);
                }
            }
            for (n, v) in ["x-timestamp", "authorization", "x-api-key", "x-purelife-cloud-signature"].iter().zip(&values) {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.insert(*n, v);
                }
            }
            let p = PathBuf::new;
            let tol = Duration::from_secs(300);
            for cfg in [
                AuthConfig::StandardWebhooks { secret_file: p(), tolerance: tol },
                AuthConfig::HmacSha256 { secret_file: p(), header: "x-purelife-cloud-signature".into(), prefix: "sha256=".into() },
                AuthConfig::TimestampedHmac { secret_file: p(), signature_header: "x-signature".into(), timestamp_header: "x-timestamp".into(), timestamp_unit: TimestampUnit::Seconds, tolerance: tol },
                AuthConfig::Bearer { secret_file: p() },
                AuthConfig::ApiKey { secret_file: p(), header: "x-api-key".into() },
                AuthConfig::Basic { user: "u".into(), secret_file: p() },
            ] {
                let v = Verifier::new(&cfg, secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
                let _ = v.verify(&h, &body, now);
            }
        }
    }
}
