//! Where in the file a key path is (`adapter[1].port` → line 27), so a configuration error
//! names the line as a profile error does. A best effort on the text: table headers are
//! followed (`[gateway]`, the n-th `[[adapter]]`, `[adapter.tls]`), then the key's own line
//! inside that table; `None` when it cannot be told (an environment override, a key that
//! is missing rather than wrong).

/// The 1-based line of `key` (`gateway.site`, `adapter[0].tls.ca_file`, `device[2]`).
pub(super) fn line_of(text: &str, key: &str) -> Option<usize> {
    let segments: Vec<(&str, Option<usize>)> = key
        .split('.')
        .map(|s| match s.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
            None => (s, None),
        })
        .collect();
    let (table, index) = *segments.first()?;
    let lines: Vec<&str> = text.lines().collect();
    // The table's header line: `[table]`, or the index-th `[[table]]`.
    let array = format!("[[{table}]]");
    let plain = format!("[{table}]");
    let mut seen = 0usize;
    let start = lines.iter().position(|l| {
        let l = l.trim();
        match index {
            Some(i) if l.starts_with(&array) => {
                seen += 1;
                seen == i + 1
            }
            None => l.starts_with(&plain),
            _ => false,
        }
    })?;
    if segments.len() == 1 {
        return Some(start + 1);
    }
    let (leaf, _) = *segments.last()?;
    // The table runs to the next header that is not one of its own sub-tables.
    let own = format!("[{table}.");
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let l = l.trim();
            l.starts_with('[') && !l.starts_with(&own)
        })
        .map_or(lines.len(), |p| start + 1 + p);
    lines[start + 1..end]
        .iter()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(leaf)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
                || l.contains(&format!("{leaf} ="))
                || l.contains(&format!("{leaf}="))
        })
        .map(|p| start + 2 + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[gateway]\nid = \"gw\"\nsites = \"x\"\n\n[[adapter]]\nname = \"a\"\n\n[[adapter]]\nname = \"b\"\nprot = 1\ntls = { ca_file = \"c.pem\" }\n\n[[sink]]\nname = \"s\"\n";

    #[test]
    fn keys_are_found_in_their_own_table() {
        assert_eq!(line_of(TEXT, "gateway.sites"), Some(3));
        assert_eq!(line_of(TEXT, "adapter[1].prot"), Some(10));
        assert_eq!(line_of(TEXT, "adapter[1].tls.ca_file"), Some(11));
        assert_eq!(line_of(TEXT, "adapter[0]"), Some(5));
        assert_eq!(line_of(TEXT, "sink[0].name"), Some(14));
    }

    #[test]
    fn what_is_not_there_has_no_line() {
        assert_eq!(line_of(TEXT, "adapter[0].prot"), None);
        assert_eq!(line_of(TEXT, "(environment)"), None);
        assert_eq!(line_of(TEXT, "api.listen"), None);
    }
}
