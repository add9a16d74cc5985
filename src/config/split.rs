//! Reading a large registry without holding the whole document's parse tree.
//!
//! A site's `[[device]]` and `[[resident]]` entries grow with the site: 10,000 devices are
//! 1.5 MB of TOML, and parsing that in one piece takes about 70 MB of heap (a token list and
//! a spanned table per entry) that the allocator keeps long after it is freed. Here the
//! document is cut at its table headers with toml's own lexer (so strings, comments and
//! multi-line arrays are never mistaken for headers), each registry entry is parsed on its
//! own, and everything else is parsed as one smaller document.
//!
//! The cut is conservative: anything it does not fully understand (a quoted header key, a
//! `[device]` table, a `[device.location]` that does not follow its `[[device]]`, a root
//! `device = […]`, or any parse error) makes [`read`] return `None`, and the caller parses the
//! whole document as usual. That is also where errors are reported, with their line numbers.

use std::ops::Range;

use serde::Deserialize;
use toml_parser::Source;
use toml_parser::lexer::TokenKind;

use super::DeviceConfig;

/// The registry sections, read straight from the TOML rather than through config-rs. They
/// grow with the site (10,000 devices are 1.5 MB of TOML) and config-rs keeps an origin-tagged
/// value tree of several KB per device while layering, for overrides the environment cannot
/// express anyway: an array of tables has no `ATGW_…` form. Large ones are read an entry at a
/// time ([`read`]).
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct RegistrySections {
    #[serde(default, rename = "device")]
    pub(super) devices: Vec<DeviceConfig>,
    #[serde(default, rename = "resident")]
    pub(super) residents: Vec<crate::rules::vitals::config::ResidentVitals>,
}

impl RegistrySections {
    pub(super) const KEYS: [&'static str; 2] = ["device", "resident"];
}

/// Which part of the document a run of text belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    /// Everything but registry entries: parsed together.
    Rest,
    /// One `[[device]]` or `[[resident]]` entry and its sub-tables.
    Entry(&'static str),
}

/// The document as registry entries (read one at a time) and the rest (as TOML text), or
/// `None` when the caller should parse the whole document instead.
pub(super) fn read(text: &str) -> Option<(String, RegistrySections)> {
    let parts = cut(text)?;
    let mut rest = String::new();
    let mut registry = RegistrySections::default();
    let mut entries = 0usize;
    for (part, range) in parts {
        let piece = &text[range];
        match part {
            Part::Rest => rest.push_str(piece),
            Part::Entry(_) => {
                let one: RegistrySections = toml::from_str(piece).ok()?;
                entries += one.devices.len() + one.residents.len();
                registry.devices.extend(one.devices);
                registry.residents.extend(one.residents);
            }
        }
    }
    if entries == 0 {
        // Nothing was cut out: the plain path is the same work, with better errors.
        return None;
    }
    let table: toml::Table = rest.parse().ok()?;
    if RegistrySections::KEYS
        .iter()
        .any(|k| table.contains_key(*k))
    {
        return None;
    }
    Some((rest, registry))
}

/// Where each part of the document starts and ends, in order.
fn cut(text: &str) -> Option<Vec<(Part, Range<usize>)>> {
    let mut parts: Vec<(Part, Range<usize>)> = Vec::new();
    let mut current = Part::Rest;
    let mut start = 0usize;
    // Nesting of `[` and `{` inside values; a header can only start at depth 0.
    let mut depth = 0usize;
    let mut line_start = true;
    let mut tokens = Source::new(text).lex().peekable();
    while let Some(token) = tokens.next() {
        match token.kind() {
            TokenKind::Whitespace | TokenKind::Comment => continue,
            TokenKind::Newline => {
                line_start = depth == 0;
                continue;
            }
            TokenKind::LeftSquareBracket if depth == 0 && line_start => {
                let at = token.span().start();
                let array = tokens
                    .peek()
                    .is_some_and(|t| t.kind() == TokenKind::LeftSquareBracket);
                if array {
                    tokens.next();
                }
                let (first, segments) = header_key(text, &mut tokens)?;
                let next = match RegistrySections::KEYS.into_iter().find(|k| *k == first) {
                    Some(key) => match (array, segments) {
                        // `[[device]]`: a new entry.
                        (true, 1) => Part::Entry(key),
                        // `[device]`: not an entry; let the whole parse judge it.
                        (false, 1) => return None,
                        // `[device.location]` belongs to the entry it follows.
                        _ if current == Part::Entry(key) => current,
                        _ => return None,
                    },
                    None => Part::Rest,
                };
                // Every `[[device]]` starts an entry of its own, even right after another one.
                if next != current || (array && segments == 1 && next != Part::Rest) {
                    if at > start {
                        parts.push((current, start..at));
                    }
                    start = at;
                    current = next;
                }
            }
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.saturating_sub(1)
            }
            TokenKind::Eof => break,
            _ => {}
        }
        line_start = false;
    }
    if start < text.len() {
        parts.push((current, start..text.len()));
    }
    Some(parts)
}

/// Reads a header's key up to its closing bracket(s): the first segment as written and the
/// number of segments. A quoted first segment gives `None` (the caller falls back).
fn header_key<'t>(
    text: &'t str,
    tokens: &mut std::iter::Peekable<toml_parser::lexer::Lexer<'_>>,
) -> Option<(&'t str, usize)> {
    let mut first: Option<&'t str> = None;
    let mut segments = 0usize;
    for token in tokens.by_ref() {
        let span = token.span();
        match token.kind() {
            TokenKind::Whitespace | TokenKind::Dot => {}
            TokenKind::Atom => {
                segments += 1;
                if first.is_none() {
                    first = Some(text.get(span.start()..span.end())?);
                }
            }
            TokenKind::BasicString | TokenKind::LiteralString if first.is_some() => segments += 1,
            TokenKind::RightSquareBracket => {
                // An array header's second `]` is skipped by the caller's loop as depth 0.
                return Some((first?, segments));
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the whole-document parse makes of `text`: the rest as a table, and the registry.
    fn whole(text: &str) -> Option<(toml::Table, RegistrySections)> {
        let (rest, registry) =
            super::super::load::whole_document(text, std::path::Path::new("t")).ok()?;
        Some((rest.parse().ok()?, registry))
    }

    fn split(text: &str) -> Option<(toml::Table, RegistrySections)> {
        let (rest, registry) = read(text)?;
        Some((
            rest.parse().expect("the rest parsed once already"),
            registry,
        ))
    }

    const TRICKY: &str = r#"# a site
[gateway]
id = "gw"   # [[device]] in a comment
site = "s"
banner = """
[[device]]
id = "not-a-device"
"""

[[device]]
id = "p1"
adapter = "zigbee"
match = { device = "a" }
[device.location]
area = "east"
room = "1"

[[adapter]]
name = "zigbee"
type = "mqtt"
topics = [
  ["nested"],
[ "at line start inside a value" ],
]

[[device]]
id = "p2"
adapter = "zigbee"
match = { device = "b",
  other = "c" }
location = { area = "west" }

[[resident]]
id = "r1"
spo2_scale = 2

[alerts]
"#;

    #[test]
    fn a_registry_read_entry_by_entry_is_the_registry_read_whole() {
        let (rest, registry) = split(TRICKY).expect("split");
        let (whole_rest, whole_registry) = whole(TRICKY).expect("whole");
        assert_eq!(registry, whole_registry);
        assert_eq!(rest, whole_rest);
        let ids: Vec<&str> = registry.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert_eq!(registry.devices[0].location.room.as_deref(), Some("1"));
        assert_eq!(registry.residents[0].spo2_scale, 2);
        assert!(
            rest["gateway"]["banner"]
                .as_str()
                .unwrap()
                .contains("not-a-device")
        );
        assert!(rest.contains_key("alerts") && rest.contains_key("adapter"));
    }

    #[test]
    fn what_the_cut_does_not_fully_understand_goes_to_the_whole_parse() {
        let entry = "[[device]]\nid = \"p\"\nadapter = \"a\"\nmatch = { d = \"x\" }\n";
        for text in [
            // No registry at all: nothing to gain.
            "[gateway]\nid = \"g\"\n".to_string(),
            // A plain `[device]` table.
            format!("{entry}[device]\nid = \"q\"\n"),
            // A sub-table that does not follow its entry.
            format!("{entry}[gateway]\nid = \"g\"\n[device.location]\nroom = \"1\"\n"),
            // A quoted header key.
            format!("{entry}[\"device\".location]\nroom = \"1\"\n"),
            // The registry written as a root value as well.
            format!("device = []\n{entry}"),
            // A broken entry: the whole parse reports it with its line.
            format!("{entry}[[device]]\nid = \n"),
        ] {
            assert!(read(&text).is_none(), "{text}");
        }
    }

    /// Pieces of config files, mostly valid ones (so the cut is taken often), with the shapes
    /// that must send it to the whole parse mixed in.
    fn fragment() -> impl Strategy<Value = String> {
        let s = |t: &str| Just(t.to_string());
        prop_oneof![
            4 => s("[[device]]\nid = \"d\"\nadapter = \"a\"\nmatch = { k = \"v\" }\n"),
            3 => s("[device.location]\nroom = \"1\"\n"),
            2 => s("[[device]]\nid = \"e\" # [[resident]]\nadapter = \"a\"\nmatch = {\n k = \"[\",\n}\n"),
            2 => s("[ [ device ] ]\nid = \"w\"\nadapter = \"a\"\nmatch = {}\n"),
            2 => s("[[resident]]\nid = \"r\"\n"),
            2 => s("[[adapter]]\nname = \"a\"\ntopics = [\n[\"x\"],\n]\n"),
            1 => s("[gateway]\nid = \"g\"\nsite = \"s\"\n"),
            1 => s("[alerts]\nnote = '''\n[[device]]\n'''\n"),
            1 => s("# [[device]]\n"),
            1 => s("[device]\nid = \"t\"\n"),
            1 => s("[[device.extra]]\nx = 1\n"),
            1 => s("device = [{ id = \"i\", adapter = \"a\", match = { k = \"v\" } }]\n"),
            1 => s("[\"device\"]\n"),
            1 => "[ -~\n]{0,24}".boxed(),
        ]
    }

    proptest! {
        // About one generated file in ten is a valid one with a registry (the cut is taken);
        // the rest check that it agrees by declining.
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Whenever the cut is taken, it agrees with the whole-document parse; it never panics.
        #[test]
        fn the_cut_agrees_with_the_whole_parse(parts in proptest::collection::vec(fragment(), 0..12)) {
            let text = parts.concat();
            if let Some(cut) = split(&text) {
                prop_assert_eq!(Some(cut), whole(&text), "{}", text);
            }
        }

        #[test]
        fn the_cut_never_panics(text in "\\PC{0,200}") {
            let _ = read(&text);
        }
    }
}
