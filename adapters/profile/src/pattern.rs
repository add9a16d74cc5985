//! Topic patterns: MQTT-style filters with named captures.
//!
//! A pattern is split on `/` into segments. Each segment is one of:
//! - a literal (`zigbee2mqtt`), matched exactly;
//! - `+`, any single segment;
//! - `{name}`, any single non-empty segment, captured as `name`;
//! - `#`, zero or more segments (anywhere, not only last: `zigbee2mqtt/#/set`);
//! - `{name#}`, one or more segments joined by `/`, captured as `name`. zigbee2mqtt friendly names
//!   may contain `/`, so `zigbee2mqtt/{device#}` captures `living/radar` whole.
//!
//! At most one multi-segment element (`#` or `{name#}`) is allowed per pattern. That keeps matching
//! a linear, unambiguous split (prefix, middle, suffix) instead of a backtracking search, and it
//! is all a topic layout needs in practice.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
    Capture(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Multi {
    Wildcard,
    Capture(String),
}

/// A compiled topic pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicPattern {
    text: String,
    prefix: Vec<Segment>,
    multi: Option<Multi>,
    suffix: Vec<Segment>,
}

/// Captured values, in pattern order.
pub(crate) type Captures = Vec<(String, String)>;

impl TopicPattern {
    pub(crate) fn parse(text: &str) -> Result<TopicPattern, String> {
        if text.is_empty() {
            return Err("a topic pattern cannot be empty".into());
        }
        let mut prefix = Vec::new();
        let mut multi = None;
        let mut suffix = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for raw in text.split('/') {
            let element = if raw == "#" {
                Err(Multi::Wildcard)
            } else if raw == "+" {
                Ok(Segment::Any)
            } else if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                let (name, is_multi) = match inner.strip_suffix('#') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                check_capture_name(name)?;
                if names.iter().any(|n| n == name) {
                    return Err(format!("capture `{{{name}}}` appears twice in `{text}`"));
                }
                names.push(name.to_owned());
                if is_multi {
                    Err(Multi::Capture(name.to_owned()))
                } else {
                    Ok(Segment::Capture(name.to_owned()))
                }
            } else if raw.contains(['{', '}', '+', '#']) {
                return Err(format!(
                    "segment `{raw}` of `{text}` mixes text with `{{`, `}}`, `+` or `#`; a wildcard or capture must be a whole segment"
                ));
            } else {
                Ok(Segment::Literal(raw.to_owned()))
            };
            match element {
                Ok(segment) if multi.is_none() => prefix.push(segment),
                Ok(segment) => suffix.push(segment),
                Err(m) if multi.is_none() => multi = Some(m),
                Err(_) => {
                    return Err(format!(
                        "`{text}` has more than one `#` or `{{name#}}`; at most one multi-segment element is allowed"
                    ));
                }
            }
        }
        Ok(TopicPattern {
            text: text.to_owned(),
            prefix,
            multi,
            suffix,
        })
    }

    /// Names of the captures, in pattern order.
    pub(crate) fn capture_names(&self) -> Vec<&str> {
        fn single(s: &Segment) -> Option<&str> {
            match s {
                Segment::Capture(n) => Some(n.as_str()),
                _ => None,
            }
        }
        let mut out = Vec::new();
        out.extend(self.prefix.iter().filter_map(single));
        if let Some(Multi::Capture(n)) = &self.multi {
            out.push(n.as_str());
        }
        out.extend(self.suffix.iter().filter_map(single));
        out
    }

    /// Matches `topic`, returning the captures, or `None`.
    pub(crate) fn matches(&self, topic: &str) -> Option<Captures> {
        let segments: Vec<&str> = topic.split('/').collect();
        let fixed = self.prefix.len() + self.suffix.len();
        let min = fixed + usize::from(matches!(self.multi, Some(Multi::Capture(_))));
        match self.multi {
            None if segments.len() != fixed => return None,
            Some(_) if segments.len() < min => return None,
            _ => {}
        }
        let mut captures = Vec::new();
        let (head, rest) = segments.split_at(self.prefix.len());
        let (middle, tail) = rest.split_at(rest.len() - self.suffix.len());
        for (segment, value) in self
            .prefix
            .iter()
            .zip(head)
            .chain(self.suffix.iter().zip(tail))
        {
            match segment {
                Segment::Literal(l) if l == value => {}
                Segment::Literal(_) => return None,
                Segment::Any => {}
                Segment::Capture(_) if value.is_empty() => return None,
                Segment::Capture(name) => captures.push((name.clone(), (*value).to_owned())),
            }
        }
        if let Some(Multi::Capture(name)) = &self.multi {
            let joined = middle.join("/");
            if joined.is_empty() {
                return None;
            }
            captures.push((name.clone(), joined));
        }
        Some(captures)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Capture and template names: ASCII letters, digits and `_`, not starting with a digit.
pub(crate) fn check_capture_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a capture name; use letters, digits and `_` (e.g. `{{device}}`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &str, t: &str) -> Option<Vec<(String, String)>> {
        TopicPattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn single_capture_takes_one_segment() {
        assert_eq!(
            caps("zigbee2mqtt/{device}", "zigbee2mqtt/0xa4c1"),
            Some(vec![("device".into(), "0xa4c1".into())])
        );
        assert_eq!(caps("zigbee2mqtt/{device}", "zigbee2mqtt/a/b"), None);
        assert_eq!(caps("zigbee2mqtt/{device}", "zigbee2mqtt/"), None);
    }

    #[test]
    fn multi_capture_spans_slashes_and_leaves_the_suffix() {
        assert_eq!(
            caps(
                "zigbee2mqtt/{device#}/availability",
                "zigbee2mqtt/living/radar/availability"
            ),
            Some(vec![("device".into(), "living/radar".into())])
        );
        assert_eq!(
            caps(
                "zigbee2mqtt/{device#}/availability",
                "zigbee2mqtt/availability"
            ),
            None
        );
    }

    #[test]
    fn hash_matches_zero_or_more_levels_anywhere() {
        assert!(caps("zigbee2mqtt/bridge/#", "zigbee2mqtt/bridge").is_some());
        assert!(caps("zigbee2mqtt/bridge/#", "zigbee2mqtt/bridge/state").is_some());
        assert!(caps("zigbee2mqtt/#/set", "zigbee2mqtt/a/b/set").is_some());
        assert!(caps("zigbee2mqtt/#/set", "zigbee2mqtt/a/b/get").is_none());
        assert!(caps("a/+/c", "a/b/c").is_some());
        assert!(caps("a/+/c", "a/b/x/c").is_none());
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(
            TopicPattern::parse("a/#/b/#")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            TopicPattern::parse("a/x{dev}")
                .unwrap_err()
                .contains("whole segment")
        );
        assert!(TopicPattern::parse("a/{1x}").is_err());
        assert!(
            TopicPattern::parse("{a}/{a}")
                .unwrap_err()
                .contains("twice")
        );
        assert!(TopicPattern::parse("").is_err());
    }
}
