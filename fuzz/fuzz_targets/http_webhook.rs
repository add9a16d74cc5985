//! A stranger's webhook as the HTTP ingest adapter reads it: arbitrary header values, query and
//! body. Every route's verifier answers Ok or an error, the request's `@` view is built, and
//! the shipped vendor profiles map the body with it, never panicking.
//!
//! Input layout: up to four `\n`-separated header values (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, `x-timestamp`, reused for the other schemes' headers), then a line of
//! query, then the body.
#![no_main]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use atgw_http_ingest::auth::Verifier;
use atgw_http_ingest::config::{AuthConfig, TimestampUnit};
use atgw_profile::{Input, ProfileSet};
use atgw_sdk::secret::Secret;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn verifiers() -> &'static Vec<Verifier> {
    static V: OnceLock<Vec<Verifier>> = OnceLock::new();
    V.get_or_init(|| {
        let p = PathBuf::new;
        let tol = Duration::from_secs(300);
        [
            AuthConfig::StandardWebhooks { secret_file: p(), tolerance: tol },
            AuthConfig::HmacSha256 {
                secret_file: p(),
                header: "x-purelife-cloud-signature".into(),
                prefix: "sha256=".into(),
            },
            AuthConfig::TimestampedHmac {
                secret_file: p(),
                signature_header: "x-signature".into(),
                timestamp_header: "x-timestamp".into(),
                timestamp_unit: TimestampUnit::Milliseconds,
                tolerance: tol,
            },
            AuthConfig::Bearer { secret_file: p() },
            AuthConfig::ApiKey { secret_file: p(), header: "x-api-key".into() },
            AuthConfig::Basic { user: "u".into(), secret_file: p() },
        ]
        .iter()
        .map(|c| {
            Verifier::new(c, Secret::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_owned()))
                .expect("the fuzz secret is usable")
        })
        .collect()
    })
}

fn profiles() -> &'static ProfileSet {
    static P: OnceLock<ProfileSet> = OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
        let names: Vec<String> = ["netlia", "purelife-vayyar", "novee", "webhook-alarm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        ProfileSet::load(&dir, &names).expect("the shipped vendor profiles load")
    })
}

const NAMES: [&str; 4] = ["webhook-id", "webhook-timestamp", "webhook-signature", "x-timestamp"];
const ALSO: [&str; 4] = ["x-purelife-cloud-signature", "x-signature", "authorization", "x-api-key"];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(6, |&b| b == b'\n');
    let mut headers = HeaderMap::new();
    for (i, v) in parts.by_ref().take(4).enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.insert(HeaderName::from_static(NAMES[i]), v.clone());
            headers.insert(HeaderName::from_static(ALSO[i]), v);
        }
    }
    let query = parts.next().map(|q| String::from_utf8_lossy(q).into_owned());
    let body = parts.next().unwrap_or(&[]);
    for v in verifiers() {
        let _ = v.verify(&headers, body, 1_765_000_000_000);
    }
    let request = atgw_http_ingest::request::meta(&headers, query.as_deref(), &["x-api-key"]);
    let tz = jiff::tz::TimeZone::UTC;
    let state: HashMap<String, String> = HashMap::new();
    for topic in ["netlia/1/d/event-start", "purelife", "novee", "hooks/alarm"] {
        let input = Input {
            protocol: "http",
            topic,
            payload: body,
            received: jiff::Timestamp::UNIX_EPOCH,
            adapter: "clouds",
            timezone: &tz,
            request: Some(&request),
        };
        let _ = profiles().evaluate(&input, &state);
    }
});
