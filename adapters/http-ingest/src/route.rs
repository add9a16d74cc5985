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
    /// What the profiles see in place of `path` (`netlia`).
    pub topic: String,
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
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|r| r.starts_with('/'))
    }
}

impl Route {
    /// The profiles' topic for a request to `path` (which this route takes).
    pub fn topic_of(&self, path: &str) -> String {
        let rest = if self.path == "/" {
            path
        } else {
            path.get(self.path.len()..).unwrap_or("")
        };
        match (self.topic.as_str(), rest.trim_start_matches('/')) {
            ("", r) => r.to_owned(),
            (t, "") => t.to_owned(),
            (t, r) => format!("{t}/{r}"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, topic: &str) -> Route {
        Route {
            path: path.into(),
            topic: topic.into(),
            format: Format::Profiles,
            profiles: Arc::default(),
            verifier: Verifier::Authorization { expected: [0; 32] },
            secret_headers: Vec::new(),
            dedupe: None,
            dedupe_window: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_longest_prefix_takes_a_path_and_its_topic_follows_the_route() {
        let routes = [
            route("/hooks", "hooks"),
            route("/hooks/b", "alt"),
            route("/n", "netlia"),
        ];
        let find_path = |p: &str| find(&routes, p).map(|r| r.path.as_str());
        assert_eq!(find_path("/hooks/alarm"), Some("/hooks"));
        assert_eq!(find_path("/hooks/b/alarm"), Some("/hooks/b"));
        assert_eq!(find_path("/hooksx"), None, "a prefix ends at a `/`");
        assert_eq!(find_path("/other"), None);
        assert_eq!(routes[1].topic_of("/hooks/b/alarm"), "alt/alarm");
        assert_eq!(routes[2].topic_of("/n"), "netlia");
        assert_eq!(
            routes[2].topic_of("/n/1/d/event-start"),
            "netlia/1/d/event-start"
        );
    }
}
