//! "Did you mean …?" for a near-miss key: serde's `unknown field `valeus`, expected one of
//! `values`, `other`` gains the closest expected name, so the message finishes the sentence.

/// `message` with ", did you mean `…`?" appended when it is serde's unknown field or variant
/// error and one expected name is close to the unknown one (a typo, a plural, a swapped pair).
pub fn did_you_mean(message: &str) -> String {
    match closest(message) {
        Some(best) => format!("{message}; did you mean `{best}`?"),
        None => message.to_owned(),
    }
}

fn closest(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected one of ")?.1;
    let candidates = expected
        .split(", ")
        .filter_map(|c| c.trim().strip_prefix('`')?.split('`').next());
    let budget = (unknown.chars().count() / 3).max(1);
    candidates
        .map(|c| (strsim::osa_distance(unknown, c), c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_the_closest_expected_name() {
        assert_eq!(
            did_you_mean("unknown field `valeus`, expected one of `path`, `values`, `other`"),
            "unknown field `valeus`, expected one of `path`, `values`, `other`; did you mean `values`?"
        );
        assert_eq!(
            did_you_mean("unknown field `priorty`, expected one of `kind`, `priority`"),
            "unknown field `priorty`, expected one of `kind`, `priority`; did you mean `priority`?"
        );
        assert!(
            did_you_mean("unknown variant `mqt`, expected one of `mqtt`, `sia-dc09`")
                .ends_with("did you mean `mqtt`?")
        );
    }

    #[test]
    fn nothing_close_or_another_message_is_left_alone() {
        let far = "unknown field `zzzzzz`, expected one of `path`, `values`";
        assert_eq!(did_you_mean(far), far);
        assert_eq!(did_you_mean("invalid type: string"), "invalid type: string");
    }
}
