//! What a profile's `@` paths read from a request: `@header.<lower-case name>` and
//! `@query.<name>`, the first value of each. Credentials never reach a profile (and so never an
//! event): `authorization`, `cookie`, `proxy-authorization` and the route's own secret-bearing
//! headers are left out.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

/// Headers that carry credentials in every scheme.
const NEVER: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// Most query parameters read; the rest are ignored (a query is the sender's to make long).
const MAX_QUERY_PAIRS: usize = 32;

/// `{"header": {…}, "query": {…}}` for the profile engine.
pub fn meta(headers: &HeaderMap, query: Option<&str>, secret_headers: &[&str]) -> Value {
    let mut h = Map::new();
    for (name, value) in headers {
        let n = name.as_str();
        if NEVER.contains(&n) || secret_headers.contains(&n) || h.contains_key(n) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            h.insert(n.to_owned(), Value::String(v.to_owned()));
        }
    }
    let mut q = Map::new();
    for pair in query.unwrap_or("").split('&').take(MAX_QUERY_PAIRS) {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (decode(k), decode(v)) else {
            continue;
        };
        q.entry(k).or_insert(Value::String(v));
    }
    let mut m = Map::new();
    m.insert("header".into(), Value::Object(h));
    m.insert("query".into(), Value::Object(q));
    Value::Object(m)
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte); `None` when
/// the result is not UTF-8 or an escape is broken.
fn decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    #[test]
    fn headers_and_query_are_read_without_credentials() {
        let mut h = HeaderMap::new();
        h.insert("x-event-type", HeaderValue::from_static("fall"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        let m = meta(
            &h,
            Some("room=12&site=oak+view&bad=%zz&room=13"),
            &["x-api-key"],
        );
        assert_eq!(
            m,
            json!({"header": {"x-event-type": "fall"}, "query": {"room": "12", "site": "oak view"}})
        );
    }

    proptest::proptest! {
        #[test]
        fn any_query_is_read_without_panicking(q in ".{0,200}") {
            let _ = meta(&HeaderMap::new(), Some(&q), &[]);
        }
    }
}
