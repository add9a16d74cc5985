//! What the server's answer means for the outbox (pure): delivered at `250`, and otherwise
//! when to try again. The core owns the retry schedule and the escalation that follows
//! repeated failure; this only says "delivered" or "again (after N s)".
//!
//! A permanent (`5xx`) answer is a `Retry` too, with a longer wait: see the crate doc for why
//! it never disables the sink.

use std::time::Duration;

use crate::notice::clean;

/// First wait after a permanent refusal; doubled per attempt up to [`PERMANENT_MAX`]. Short
/// enough that the core's `escalate_after_failed_attempts` (default 3) still tells the next
/// tier within about 15 s of the first refusal; the retries then slow down so a server that
/// refuses the message is not hammered.
pub const PERMANENT_FIRST: Duration = Duration::from_secs(5);
/// Longest wait between attempts after permanent refusals.
pub const PERMANENT_MAX: Duration = Duration::from_secs(15 * 60);

/// The sink's reading of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The server answered `250` to the end of DATA: it has the message.
    Delivered,
    Retry {
        /// `None`: the core's backoff.
        after: Option<Duration>,
        reason: String,
        /// A `5xx` answer: the server refuses this message as it is (health counts it).
        permanent: bool,
    },
}

/// The server's final answer, `code` and text: only `250` is delivered.
pub fn answered(code: u16, text: &str) -> Verdict {
    if code == 250 {
        return Verdict::Delivered;
    }
    Verdict::Retry {
        after: None,
        reason: format!(
            "the server answered {code} to the message, not 250: {}",
            redact(text)
        ),
        permanent: false,
    }
}

/// A negative answer `code` (4xx or 5xx) with its text, at `attempt` (0 for the first).
pub fn refused(code: u16, text: &str, attempt: u32) -> Verdict {
    let text = redact(text);
    if (500..600).contains(&code) {
        Verdict::Retry {
            after: Some(permanent_backoff(attempt)),
            reason: format!("refused for good ({code}): {text}; retrying slowly"),
            permanent: true,
        }
    } else {
        Verdict::Retry {
            after: None,
            reason: format!("refused for now ({code}): {text}"),
            permanent: false,
        }
    }
}

/// The wait after the `attempt`th permanent refusal.
pub fn permanent_backoff(attempt: u32) -> Duration {
    PERMANENT_FIRST
        .saturating_mul(1u32 << attempt.min(16))
        .min(PERMANENT_MAX)
}

/// A server's reply text fit for logs, health and the outbox row: one line, at most 200
/// characters, and every word with an `@` in it replaced by `<address>`, because servers name
/// the refused recipient ("550 5.1.1 <night@site.example>: no such user") and addresses are
/// not logged.
pub fn redact(text: &str) -> String {
    let one_line = clean(text, 400);
    let words: Vec<&str> = one_line
        .split(' ')
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect();
    clean(&words.join(" "), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_250_is_delivered() {
        assert_eq!(answered(250, "2.0.0 Ok: queued"), Verdict::Delivered);
        for code in [251, 252, 354] {
            assert!(matches!(
                answered(code, ""),
                Verdict::Retry {
                    permanent: false,
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_transient_refusal_is_left_to_the_core_schedule() {
        let v = refused(451, "4.3.0 try again later", 0);
        assert_eq!(
            v,
            Verdict::Retry {
                after: None,
                reason: "refused for now (451): 4.3.0 try again later".into(),
                permanent: false
            }
        );
    }

    #[test]
    fn a_permanent_refusal_retries_slowly_and_is_marked() {
        let Verdict::Retry {
            after,
            reason,
            permanent,
        } = refused(554, "5.6.0 no", 0)
        else {
            panic!("a 554 was delivered");
        };
        assert!(permanent, "{reason}");
        assert_eq!(after, Some(PERMANENT_FIRST));
        assert!(reason.contains("554"), "{reason}");
        assert_eq!(permanent_backoff(1), PERMANENT_FIRST * 2);
        assert_eq!(permanent_backoff(3), PERMANENT_FIRST * 8);
        assert_eq!(permanent_backoff(30), PERMANENT_MAX);
        // Escalation after three failures is not held up by long waits.
        assert!(permanent_backoff(0) + permanent_backoff(1) <= Duration::from_secs(15));
    }

    #[test]
    fn addresses_in_server_text_are_not_repeated() {
        assert_eq!(
            redact("5.1.1 <night@oakview.example>: Recipient\r\naddress rejected"),
            "5.1.1 <address> Recipient address rejected"
        );
        let v = refused(550, "5.1.1 <night@oakview.example>: no such user", 2);
        let Verdict::Retry { reason, .. } = v else {
            panic!()
        };
        assert!(!reason.contains("night@"), "{reason}");
    }
}
