//! JSON paths: where in a payload a value lives.
//!
//! Syntax: dot-separated keys with array indexes, `data.value.device_list[0].spo2`. A key that
//! itself contains `.`, `[` or `]` is quoted in brackets: `attrs["temp.c"]`. `$` alone is the
//! value being mapped (the whole payload, or the current element under `for_each`; a bare text
//! payload is a JSON string there). A leading `^` reaches the whole message from inside a
//! `for_each` (`^.data.mac`); outside `for_each` it is the same as `$`. A leading `@` reaches
//! what the transport knew around the payload: for HTTP the request's `@header.<lower-case
//! name>` and `@query.<name>` (first value of each); for MQTT it is empty.

use std::fmt;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    /// The current element (or the payload).
    Item,
    /// The whole message, even inside `for_each`.
    Message,
    /// The request around the message (HTTP headers and query), see [`Input::request`].
    ///
    /// [`Input::request`]: crate::Input::request
    Request,
}

/// A compiled JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonPath {
    text: String,
    root: Root,
    steps: Vec<Step>,
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| Err(format!("`{text}` is not a JSON path: {why}"));
        let (root, mut rest) = match text.as_bytes().first() {
            Some(b'$') => (Root::Item, &text[1..]),
            Some(b'^') => (Root::Message, &text[1..]),
            Some(b'@') => (Root::Request, &text[1..]),
            Some(_) => (Root::Item, text),
            None => return bad("it is empty (use `$` for the whole payload)"),
        };
        // `@header.x` names the request's part right after the sign; `$`/`^` take a `.` first.
        let explicit_root = match root {
            Root::Request => rest.starts_with(['.', '[']),
            _ => rest.len() != text.len(),
        };
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                if let Some(quoted) = after.strip_prefix('"') {
                    let Some(end) = quoted.find("\"]") else {
                        return bad("a quoted key needs a closing `\"]`");
                    };
                    steps.push(Step::Key(quoted[..end].to_owned()));
                    rest = &quoted[end + 2..];
                } else {
                    let Some(end) = after.find(']') else {
                        return bad("`[` needs a closing `]`");
                    };
                    let Ok(index) = after[..end].trim().parse::<usize>() else {
                        return bad("an index must be a whole number, like `[0]`");
                    };
                    steps.push(Step::Index(index));
                    rest = &after[end + 1..];
                }
            } else {
                let key_text = if first && !explicit_root {
                    rest
                } else if let Some(after) = rest.strip_prefix('.') {
                    after
                } else {
                    return bad("expected `.` or `[` between parts");
                };
                let end = key_text.find(['.', '[', ']']).unwrap_or(key_text.len());
                if end == 0 {
                    return bad("a key is empty (two dots, or a dot before `[`?)");
                }
                steps.push(Step::Key(key_text[..end].to_owned()));
                rest = &key_text[end..];
                if rest.starts_with(']') {
                    return bad("unexpected `]`");
                }
            }
            first = false;
        }
        Ok(JsonPath {
            text: text.to_owned(),
            root,
            steps,
        })
    }

    /// The value at this path, if every step exists.
    pub(crate) fn get<'v>(
        &self,
        item: &'v Value,
        message: &'v Value,
        request: &'v Value,
    ) -> Option<&'v Value> {
        let mut at = match self.root {
            Root::Item => item,
            Root::Message => message,
            Root::Request => request,
        };
        for step in &self.steps {
            at = match (step, at) {
                (Step::Key(k), Value::Object(map)) => map.get(k)?,
                (Step::Index(i), Value::Array(list)) => list.get(*i)?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// Where the path stopped finding anything: the part that exists (`$` for the root) and
    /// the keys of the object there (empty when it is no object), for "`contacts` is absent;
    /// the message has `contact`, `battery`".
    pub(crate) fn nearest_keys(
        &self,
        item: &Value,
        message: &Value,
        request: &Value,
    ) -> (String, Vec<String>) {
        let mut at = match self.root {
            Root::Item => item,
            Root::Message => message,
            Root::Request => request,
        };
        let mut found = String::from(match self.root {
            Root::Request => "@",
            _ => "$",
        });
        for step in &self.steps {
            let next = match (step, at) {
                (Step::Key(k), Value::Object(map)) => map.get(k).filter(|v| !v.is_null()),
                (Step::Index(i), Value::Array(list)) => list.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            match step {
                Step::Key(k) => {
                    found.push('.');
                    found.push_str(k);
                }
                Step::Index(i) => found.push_str(&format!("[{i}]")),
            }
            at = next;
        }
        let keys = match at {
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        (found, keys)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path reads the request around the message (`@…`).
    pub(crate) fn reads_request(&self) -> bool {
        self.root == Root::Request
    }

    /// Whether the path starts with a key, i.e. can only find something in an object.
    pub(crate) fn needs_object(&self) -> bool {
        self.root != Root::Request && matches!(self.steps.first(), Some(Step::Key(_)))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One or more paths tried in order; the first one that holds a non-null value wins. Lets one
/// rule read vendor variants (`["data.ble_mac", "data.mac"]`) or JSON-or-text payloads
/// (`["state", "$"]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Paths(Vec<JsonPath>);

impl Paths {
    pub(crate) fn parse(texts: &[String]) -> Result<Paths, String> {
        if texts.is_empty() {
            return Err("needs at least one path".into());
        }
        texts
            .iter()
            .map(|t| JsonPath::parse(t))
            .collect::<Result<_, _>>()
            .map(Paths)
    }

    /// The first non-null value, with the path that found it.
    pub(crate) fn get<'v>(
        &self,
        item: &'v Value,
        message: &'v Value,
        request: &'v Value,
    ) -> Option<(&JsonPath, &'v Value)> {
        self.0.iter().find_map(|p| {
            p.get(item, message, request)
                .filter(|v| !v.is_null())
                .map(|v| (p, v))
        })
    }

    /// Every path in the list, in order.
    pub(crate) fn all(&self) -> &[JsonPath] {
        &self.0
    }

    /// The first path, which names the whole list in messages and edge keys.
    pub(crate) fn first(&self) -> &JsonPath {
        // `parse` refuses an empty list, so there always is a first path.
        &self.0[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(path: &str, v: &Value) -> Option<Value> {
        JsonPath::parse(path)
            .unwrap()
            .get(v, v, &Value::Null)
            .cloned()
    }

    #[test]
    fn dotted_keys_and_indexes_walk_the_payload() {
        let v = json!({"data": {"value": {"device_list": [{"spo2": 96}, {"spo2": 97}]}}});
        assert_eq!(get("data.value.device_list[1].spo2", &v), Some(json!(97)));
        assert_eq!(get("$.data.value.device_list[0].spo2", &v), Some(json!(96)));
        assert_eq!(get("data.value.device_list[2]", &v), None);
        assert_eq!(get("data.missing", &v), None);
        assert_eq!(get("$", &v), Some(v.clone()));
    }

    #[test]
    fn quoted_keys_may_contain_dots() {
        let v = json!({"a": {"b.c": 1}});
        assert_eq!(get(r#"a["b.c"]"#, &v), Some(json!(1)));
    }

    #[test]
    fn caret_reaches_the_message_from_an_element() {
        let message = json!({"mac": "aa", "list": [{"x": 1}]});
        let item = &message["list"][0];
        let p = JsonPath::parse("^.mac").unwrap();
        assert_eq!(p.get(item, &message, &Value::Null), Some(&json!("aa")));
        assert_eq!(
            JsonPath::parse("x")
                .unwrap()
                .get(item, &message, &Value::Null),
            Some(&json!(1))
        );
    }

    #[test]
    fn at_reaches_the_request_around_the_message() {
        let body = json!({"EventId": "e1"});
        let request = json!({"header": {"webhook-id": "msg_1"}, "query": {"site": "oak"}});
        let p = JsonPath::parse("@header.webhook-id").unwrap();
        assert_eq!(p.get(&body, &body, &request), Some(&json!("msg_1")));
        assert_eq!(p.get(&body, &body, &Value::Null), None);
        assert!(p.reads_request() && !p.needs_object());
        let (at, keys) = JsonPath::parse("@query.room")
            .unwrap()
            .nearest_keys(&body, &body, &request);
        assert_eq!((at.as_str(), keys), ("@.query", vec!["site".to_owned()]));
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "a..b", "a[", "a[x]", "a]", ".a", "$a", "@.", "a[\"b"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn alternatives_skip_missing_and_null() {
        let paths = Paths::parse(&["state".into(), "$".into()]).unwrap();
        let obj = json!({"state": "offline"});
        assert_eq!(
            paths.get(&obj, &obj, &Value::Null).map(|(_, v)| v),
            Some(&json!("offline"))
        );
        let text = json!("offline");
        assert_eq!(
            paths.get(&text, &text, &Value::Null).map(|(_, v)| v),
            Some(&json!("offline"))
        );
        let null = json!({"state": null});
        assert_eq!(
            paths
                .get(&null, &null, &Value::Null)
                .map(|(p, _)| p.as_str()),
            Some("$")
        );
    }
}
