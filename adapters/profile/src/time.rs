//! Device timestamps: RFC 3339 with an offset, epoch seconds, epoch milliseconds, or a
//! `strftime`-style pattern; zone-less readings are interpreted in the site's time zone.
//!
//! A time that cannot be read is `None`, never an error: the core then uses the receipt time. An
//! alarm must not be lost because a device's clock field is odd.
//!
//! A zone-less local time in the hour the clocks go back (01:30 on the last Sunday of October
//! in Europe/London) happens twice. Taking the first silently makes a report written at 01:30
//! GMT an hour old; the device's clock is not far from the gateway's, so of the two instants the
//! one nearer the receipt time is the one meant ([`local`]).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, fmt::strtime};
use serde_json::Value;

/// How a profile says a time is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TimeFormat {
    /// Numbers are epoch seconds or milliseconds (by magnitude); strings are RFC 3339, zone-less
    /// ISO 8601 (site zone) or digits (as numbers).
    Auto,
    Rfc3339,
    EpochSeconds,
    EpochMillis,
    /// A jiff `strptime` pattern such as `%d/%m/%Y %H:%M:%S`; without `%z`/`%Q` it is read in
    /// the site's zone.
    Pattern(String),
}

/// Numbers at or above this are milliseconds in `auto` mode: 1e11 seconds is the year 5138,
/// while 1e11 milliseconds is March 1973, before any device here was made.
const MILLIS_THRESHOLD: f64 = 1e11;

impl TimeFormat {
    pub(crate) fn parse(spec: &str) -> Result<TimeFormat, String> {
        match spec {
            "auto" => Ok(TimeFormat::Auto),
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "epoch_s" => Ok(TimeFormat::EpochSeconds),
            "epoch_ms" => Ok(TimeFormat::EpochMillis),
            pattern if pattern.contains('%') => {
                // Proves the pattern can read what it writes, so a pattern without a date (or
                // with a typo'd directive) is refused at load time, not at 3 a.m.
                let sample = Timestamp::from_second(1_776_440_002).unwrap_or(Timestamp::UNIX_EPOCH);
                let written = sample.strftime(pattern).to_string();
                if from_pattern(pattern, &written, &TimeZone::UTC, sample).is_some() {
                    Ok(TimeFormat::Pattern(pattern.to_owned()))
                } else {
                    Err(format!(
                        "`{pattern}` cannot read a full date and time back (it wrote `{written}`); include at least %Y %m %d %H %M"
                    ))
                }
            }
            other => Err(format!(
                "`{other}` is not a time format; expected auto, rfc3339, epoch_s, epoch_ms or a pattern like \"%Y-%m-%d %H:%M:%S\""
            )),
        }
    }

    /// Reads `value` in this format; `received` settles a local time the clocks going back
    /// made ambiguous.
    pub(crate) fn read(
        &self,
        value: &Value,
        tz: &TimeZone,
        received: Timestamp,
    ) -> Option<Timestamp> {
        match (self, value) {
            (TimeFormat::Auto, Value::Number(n)) => auto_epoch(n.as_f64()?),
            (TimeFormat::Auto, Value::String(s)) => {
                let s = s.trim();
                if let Ok(n) = s.parse::<f64>() {
                    return auto_epoch(n);
                }
                if let Ok(ts) = s.parse::<Timestamp>() {
                    return Some(ts);
                }
                let civil = s.parse::<DateTime>().ok()?;
                local(tz, civil, received)
            }
            (TimeFormat::Rfc3339, Value::String(s)) => s.trim().parse::<Timestamp>().ok(),
            (TimeFormat::EpochSeconds, v) => from_millis(number(v)? * 1000.0),
            (TimeFormat::EpochMillis, v) => from_millis(number(v)?),
            (TimeFormat::Pattern(p), Value::String(s)) => from_pattern(p, s.trim(), tz, received),
            _ => None,
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn auto_epoch(n: f64) -> Option<Timestamp> {
    if n.abs() >= MILLIS_THRESHOLD {
        from_millis(n)
    } else {
        from_millis(n * 1000.0)
    }
}

fn from_millis(ms: f64) -> Option<Timestamp> {
    // Beyond jiff's range (years -9999..=9999) `from_millisecond` errors; the bound also keeps
    // the cast below exact and NaN out.
    if ms.is_nan() || ms.abs() >= 3.0e14 {
        return None;
    }
    Timestamp::from_millisecond(ms.round() as i64).ok()
}

fn from_pattern(
    pattern: &str,
    text: &str,
    tz: &TimeZone,
    received: Timestamp,
) -> Option<Timestamp> {
    let parsed = strtime::parse(pattern, text).ok()?;
    if parsed.offset().is_some() {
        return parsed.to_timestamp().ok();
    }
    local(tz, parsed.to_datetime().ok()?, received)
}

/// A civil time in the site's zone. In a fold (the repeated hour when the clocks go back) the
/// occurrence nearer `received` wins; in a gap (the skipped hour) the time after it, as RFC 5545
/// says.
fn local(tz: &TimeZone, civil: DateTime, received: Timestamp) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    match ambiguous.offset() {
        jiff::tz::AmbiguousOffset::Fold { .. } => {
            let earlier = ambiguous.earlier().ok()?;
            let later = ambiguous.later().ok()?;
            let off = |t: Timestamp| t.duration_since(received).unsigned_abs();
            Some(if off(later) < off(earlier) {
                later
            } else {
                earlier
            })
        }
        _ => ambiguous.compatible().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(format: &str, v: Value, tz: &TimeZone) -> Option<String> {
        let received = "2026-04-17T15:33:25Z".parse().unwrap();
        TimeFormat::parse(format)
            .unwrap()
            .read(&v, tz, received)
            .map(|t| t.to_string())
    }

    #[test]
    fn a_local_time_the_clocks_going_back_repeat_is_the_one_nearer_its_receipt() {
        let london = TimeZone::get("Europe/London").unwrap();
        let at = |received: &str, written: &str, format: &str| {
            TimeFormat::parse(format)
                .unwrap()
                .read(&json!(written), &london, received.parse().unwrap())
                .map(|t| t.to_string())
        };
        // 01:30 on 25 October 2026 happens at 00:30Z (BST) and again at 01:30Z (GMT).
        for format in ["auto", "%Y-%m-%d %H:%M:%S"] {
            assert_eq!(
                at("2026-10-25T00:30:04Z", "2026-10-25 01:30:00", format).as_deref(),
                Some("2026-10-25T00:30:00Z"),
                "{format}: first 01:30 (BST)"
            );
            assert_eq!(
                at("2026-10-25T01:30:04Z", "2026-10-25 01:30:00", format).as_deref(),
                Some("2026-10-25T01:30:00Z"),
                "{format}: second 01:30 (GMT), not an hour early"
            );
        }
        // Outside the fold nothing changes; in the spring gap the time after it.
        assert_eq!(
            at("2026-10-25T03:00:00Z", "2026-10-25 03:00:00", "auto").as_deref(),
            Some("2026-10-25T03:00:00Z")
        );
        assert_eq!(
            at("2026-03-29T01:30:00Z", "2026-03-29 01:30:00", "auto").as_deref(),
            Some("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn auto_reads_offsets_epochs_and_zoneless_local_time() {
        let utc = TimeZone::UTC;
        let plus8 = TimeZone::fixed(jiff::tz::offset(8));
        assert_eq!(
            read("auto", json!("2026-04-17T23:33:22+08:00"), &utc).as_deref(),
            Some("2026-04-17T15:33:22Z")
        );
        assert_eq!(
            read("auto", json!(1656118444933_i64), &utc).as_deref(),
            Some("2022-06-25T00:54:04.933Z")
        );
        assert_eq!(
            read("auto", json!(1836946958), &utc).as_deref(),
            Some("2028-03-17T23:02:38Z")
        );
        assert_eq!(
            read("auto", json!("2026-04-17 23:33:22"), &plus8).as_deref(),
            Some("2026-04-17T15:33:22Z")
        );
        assert_eq!(read("auto", json!("soon"), &utc), None);
        assert_eq!(read("auto", json!(true), &utc), None);
    }

    #[test]
    fn explicit_formats_read_only_their_form() {
        let utc = TimeZone::UTC;
        assert_eq!(
            read("epoch_s", json!("1700000000"), &utc).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            read("epoch_ms", json!(1700000000000_i64), &utc).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(read("rfc3339", json!("2026-04-17 23:33:22"), &utc), None);
        assert_eq!(read("epoch_s", json!(1e300), &utc), None);
    }

    #[test]
    fn patterns_without_offset_use_the_site_zone() {
        let london = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(
            read("%d/%m/%Y %H:%M:%S", json!("17/04/2026 10:00:00"), &london).as_deref(),
            Some("2026-04-17T09:00:00Z")
        );
    }

    #[test]
    fn unusable_formats_are_refused_at_load() {
        assert!(TimeFormat::parse("%H:%M").is_err());
        assert!(TimeFormat::parse("iso").is_err());
        for odd in ["%", "%Q", "%%", "%Ez", "%::::z", "%Y%", "%-", "%.3f"] {
            let _ = TimeFormat::parse(odd);
        }
        assert!(TimeFormat::parse("%Y-%m-%dT%H:%M:%S%:z").is_ok());
    }
}
