//! String templates: `zigbee:{device}`, `ble:{ble_addr}`, `Fall in {^.room}`.
//!
//! A `{name}` placeholder is a topic capture when the rule's topic pattern captures `name`,
//! otherwise a JSON path into the payload (see `path.rs`). Deciding this when the profile is
//! compiled, not per message, means a payload can never shadow a capture. `{{` and `}}` are
//! literal braces.

use serde_json::Value;

use crate::path::JsonPath;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Capture(String),
    Path(JsonPath),
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    text: String,
    parts: Vec<Part>,
}

/// What a template reads from.
pub(crate) struct Scope<'a> {
    pub captures: &'a [(String, String)],
    pub item: &'a Value,
    pub message: &'a Value,
    pub request: &'a Value,
}

/// Why a template could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderError {
    /// The placeholder's path is absent or null.
    Missing(String),
    /// The placeholder's path holds an object or array.
    NotScalar(String),
}

impl Template {
    pub(crate) fn parse(text: &str, capture_names: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let start = at + 1;
                    let Some(len) = text[start..].find('}') else {
                        return Err(format!("`{text}`: `{{` has no closing `}}`"));
                    };
                    let name = text[start..start + len].trim();
                    // Skip the placeholder's characters.
                    while chars.peek().is_some_and(|&(i, _)| i <= start + len) {
                        chars.next();
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    if capture_names.contains(&name) {
                        parts.push(Part::Capture(name.to_owned()));
                    } else {
                        let path = JsonPath::parse(name).map_err(|e| format!("`{text}`: {e}"))?;
                        parts.push(Part::Path(path));
                    }
                }
                '}' => return Err(format!("`{text}`: a lone `}}` (write `}}}}` for a brace)")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    pub(crate) fn render(&self, scope: &Scope<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Capture(name) => {
                    let value = scope
                        .captures
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v);
                    match value {
                        Some(v) => out.push_str(v),
                        None => return Err(RenderError::Missing(name.clone())),
                    }
                }
                Part::Path(path) => match path.get(scope.item, scope.message, scope.request) {
                    None | Some(Value::Null) => {
                        return Err(RenderError::Missing(path.as_str().to_owned()));
                    }
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Number(n)) => out.push_str(&n.to_string()),
                    Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
                    Some(_) => return Err(RenderError::NotScalar(path.as_str().to_owned())),
                },
            }
        }
        Ok(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn captures_win_over_payload_keys_and_paths_fill_the_rest() {
        let t = Template::parse("zigbee:{device} {name} {{x}}", &["device"]).unwrap();
        let payload = json!({"device": "from-payload", "name": 7});
        let captures = vec![("device".to_owned(), "0xabc".to_owned())];
        let scope = Scope {
            captures: &captures,
            item: &payload,
            message: &payload,
            request: &Value::Null,
        };
        assert_eq!(t.render(&scope).unwrap(), "zigbee:0xabc 7 {x}");
        let request = json!({"query": {"room": "12"}});
        let at = Template::parse("room {@query.room}", &[]).unwrap();
        let scope = Scope {
            request: &request,
            ..scope
        };
        assert_eq!(at.render(&scope).unwrap(), "room 12");
    }

    #[test]
    fn missing_and_structured_values_are_errors() {
        let payload = json!({"obj": {}, "nul": null});
        let scope = Scope {
            captures: &[],
            item: &payload,
            message: &payload,
            request: &Value::Null,
        };
        let render = |t: &str| Template::parse(t, &[]).unwrap().render(&scope);
        assert_eq!(render("{gone}"), Err(RenderError::Missing("gone".into())));
        assert_eq!(render("{nul}"), Err(RenderError::Missing("nul".into())));
        assert_eq!(render("{obj}"), Err(RenderError::NotScalar("obj".into())));
    }

    #[test]
    fn unbalanced_braces_are_refused() {
        assert!(Template::parse("a{b", &[]).is_err());
        assert!(Template::parse("a}b", &[]).is_err());
        assert!(Template::parse("a{}", &[]).is_err());
    }
}
