//! What a receiver's answer means for the outbox: pure, so every status is tested without a
//! server. The core owns the retry schedule; this only says "delivered", "again (maybe after
//! N s)" or "stop".

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

/// Longest `Retry-After` honoured. A receiver asking for hours would park care alarms that
/// long; past this the core's own backoff (and tier failover) decides instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 60);

/// The sink's reading of one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Disabled {
        reason: String,
    },
}

/// Maps a status (and its `Retry-After`, if any) to a verdict.
///
/// - 2xx: delivered.
/// - 410 Gone: the receiver wants nothing more (Standard Webhooks: disable the endpoint).
/// - 429 and 503 with a `Retry-After` of delta-seconds or an HTTP-date: retry after that,
///   capped at [`MAX_RETRY_AFTER`]; without a usable header, the core's backoff.
/// - 3xx: retry, explaining that redirects are not followed (a signed POST must not wander).
/// - anything else: retry with the core's backoff.
pub fn classify(status: StatusCode, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    if status.is_success() {
        return Verdict::Delivered;
    }
    let name = describe(status);
    if status == StatusCode::GONE {
        return Verdict::Disabled {
            reason: format!("{name}: the receiver asked atgw to stop sending"),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        let after = retry_after.and_then(|v| parse_retry_after(v, now));
        let reason = match after {
            Some(d) => format!("{name}, Retry-After {}s", d.as_secs()),
            None => name,
        };
        return Verdict::Retry { after, reason };
    }
    if status.is_redirection() {
        return Verdict::Retry {
            after: None,
            reason: format!("{name}: redirects are not followed; set `url` to the final address"),
        };
    }
    Verdict::Retry {
        after: None,
        reason: name,
    }
}

/// `HTTP 503 Service Unavailable`.
fn describe(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(r) => format!("HTTP {} {r}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// `Retry-After` per RFC 9110 §10.2.3: delta-seconds or an HTTP-date (all three historical date
/// formats). A date in the past means "now". Garbage means "no advice".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let after = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn success_statuses_are_delivered() {
        for s in [200, 201, 202, 204] {
            let s = StatusCode::from_u16(s).unwrap();
            assert_eq!(classify(s, None, at(0)), Verdict::Delivered);
        }
    }

    #[test]
    fn gone_disables() {
        let v = classify(StatusCode::GONE, None, at(0));
        assert!(matches!(v, Verdict::Disabled { reason } if reason.starts_with("HTTP 410 Gone")));
    }

    #[test]
    fn throttling_honours_retry_after_seconds_and_dates() {
        let v = classify(StatusCode::TOO_MANY_REQUESTS, Some("7"), at(0));
        assert_eq!(
            v,
            Verdict::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 429 Too Many Requests, Retry-After 7s".into()
            }
        );
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date).
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            let v = classify(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(date),
                at(784111777 - 30),
            );
            assert!(
                matches!(v, Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(30)),
                "{date}"
            );
        }
    }

    #[test]
    fn retry_after_in_the_past_is_now_and_huge_values_are_capped() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(784111777 + 5)),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("86400", at(0)), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", at(0)), None);
        assert_eq!(parse_retry_after("-5", at(0)), None);
    }

    #[test]
    fn throttling_without_usable_retry_after_leaves_the_schedule_to_the_core() {
        let v = classify(StatusCode::TOO_MANY_REQUESTS, Some("later"), at(0));
        assert!(matches!(v, Verdict::Retry { after: None, .. }));
        let v = classify(StatusCode::SERVICE_UNAVAILABLE, None, at(0));
        assert!(matches!(v, Verdict::Retry { after: None, .. }));
    }

    #[test]
    fn other_failures_retry_naming_the_status() {
        let v = classify(StatusCode::INTERNAL_SERVER_ERROR, Some("5"), at(0));
        assert_eq!(
            v,
            Verdict::Retry {
                after: None,
                reason: "HTTP 500 Internal Server Error".into()
            }
        );
        let v = classify(StatusCode::UNAUTHORIZED, None, at(0));
        assert!(matches!(v, Verdict::Retry { reason, .. } if reason == "HTTP 401 Unauthorized"));
        let v = classify(StatusCode::MOVED_PERMANENTLY, None, at(0));
        assert!(matches!(v, Verdict::Retry { reason, .. } if reason.contains("redirects")));
    }
}
