//! A route as the server runs it: its path prefix, what reads its bodies (profiles or FHIR),
//! its verifier, its dedupe id, and the edge-detection memory of its profiles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_profile::ProfileSet;

use crate::auth::Verifier;
use crate::config::{AuthConfig, Format};

pub struct Route {
    /// `/netlia`.
    pub path: String,
    pub format: Format,
    pub profiles: Arc<ProfileSet>,
    pub verifier: Verifier,
    /// Headers holding credentials or signatures, kept from `@header` paths.
    pub secret_headers: Vec<String>,
    /// Where the vendor's event id is (a profile path: `EventId`, `@header.webhook-id`).
    pub dedupe: Option<atgw_profile::ValuePath>,
    pub dedupe_window: Duration,
}

impl Route {
    /// Whether `path` is this route's path or below it.
    pub fn takes(&self, path: &str) -> bool {
        self.path == "/"
            || path == self.path
                || path.strip_prefix(self.path.as_str()).is_some_and(|r| r.starts_with('/'))
    }
}

/// The route with the longest path that takes `path`.
pub fn find<'r>(routes: &'r [Route], path: &str) -> Option<&'r Route> {
    routes
        .iter()
        .filter(|r| r.takes(path))
        .max_by_key(|r| r.path.len())
}

/// Header names a scheme reads credentials from.
pub fn secret_headers(auth: &AuthConfig) -> Vec<String> {
    match auth {
        AuthConfig::StandardWebhooks { .. } => vec!["webhook-signature".into()],
        AuthConfig::HmacSha256 { header, .. } => vec![header.clone()],
        AuthConfig::TimestampedHmac {
            signature_header, ..
        } => vec![signature_header.clone()],
        AuthConfig::Bearer { .. } | AuthConfig::Basic { .. } => Vec::new(),
        AuthConfig::ApiKey { header, .. } => vec![header.clone()],
    }
}

/// The profiles' edge-detection memory, shared by every route of the adapter (profile names
/// prefix its keys, so routes cannot collide).
pub type EdgeState = Mutex<HashMap<String, String>>;
