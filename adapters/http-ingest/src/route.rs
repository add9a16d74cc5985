//! A route as the server runs it: its path prefix, what reads its bodies (profiles or FHIR),
//! its verifier, its dedupe id, and the edge-detection memory of its profiles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_profile::ProfileSet;

use crate::auth::Verifier;
use crate::config::{AuthConfig, Format, RouteConfig};

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

/// A route's path prefix and the topic it gives its profiles: what both the running
/// [`Route`] and its [`RouteConfig`] (for `atgw profile test`) answer.
pub trait Mount {
    /// `/netlia`.
    fn prefix(&self) -> &str;
    /// What the profiles see in place of the prefix (`netlia`).
    fn topic_base(&self) -> std::borrow::Cow<'_, str>;

    /// Whether `path` is this route's path or below it.
    fn takes(&self, path: &str) -> bool {
        let p = self.prefix();
        p == "/" || path == p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
    }

    /// The profiles' topic for a request to `path` (which this route takes).
    fn topic_of(&self, path: &str) -> String {
        let p = self.prefix();
        let rest = if p == "/" {
            path
        } else {
            path.get(p.len()..).unwrap_or("")
        };
        match (self.topic_base().as_ref(), rest.trim_start_matches('/')) {
            ("", r) => r.to_owned(),
            (t, "") => t.to_owned(),
            (t, r) => format!("{t}/{r}"),
        }
    }
}

impl Mount for Route {
    fn prefix(&self) -> &str {
        &self.path
    }
    fn topic_base(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.topic)
    }
}

impl Mount for RouteConfig {
    fn prefix(&self) -> &str {
        &self.path
    }
    fn topic_base(&self) -> std::borrow::Cow<'_, str> {
        match &self.topic {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => std::borrow::Cow::Borrowed(self.path.trim_start_matches('/')),
        }
    }
}

/// The route with the longest path that takes `path`.
pub fn find<'r, R: Mount>(routes: &'r [R], path: &str) -> Option<&'r R> {
    find_index(routes, path).map(|i| &routes[i])
}

/// Where in `routes` the one that takes `path` is.
pub fn find_index<R: Mount>(routes: &[R], path: &str) -> Option<usize> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.takes(path))
        .max_by_key(|(_, r)| r.prefix().len())
        .map(|(i, _)| i)
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
