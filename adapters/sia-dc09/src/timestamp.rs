//! The DC-09 timestamp `_HH:MM:SS,MM-DD-YYYY` (always UTC, month before day) and the receiver's
//! acceptance window.
//!
//! The timestamp inside an encrypted frame is DC-09's only replay protection, which is why the
//! window check lives here as a pure function of (message time, receiver time) rather than in the
//! I/O loop: tests move a `ManualClock` instead of sleeping.

use jiff::civil::DateTime;
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

/// Bytes of the timestamp text after the `_` (`HH:MM:SS,MM-DD-YYYY`).
pub const TIMESTAMP_LEN: usize = 19;

/// A wall-clock instant as DC-09 writes it: whole seconds, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dc09Time(Timestamp);

impl Dc09Time {
    /// Parses `HH:MM:SS,MM-DD-YYYY` (without the leading `_`). `None` for anything else, including
    /// impossible dates such as 02-30.
    pub fn parse(text: &[u8]) -> Option<Dc09Time> {
        if text.len() != TIMESTAMP_LEN {
            return None;
        }
        let sep_ok = text[2] == b':'
            && text[5] == b':'
            && text[8] == b','
            && text[11] == b'-'
            && text[14] == b'-';
        if !sep_ok {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i32> {
            let mut v: i32 = 0;
            for &b in text.get(range)? {
                if !b.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i32::from(b - b'0');
            }
            Some(v)
        };
        let hour = i8::try_from(num(0..2)?).ok()?;
        let minute = i8::try_from(num(3..5)?).ok()?;
        let second = i8::try_from(num(6..8)?).ok()?;
        let month = i8::try_from(num(9..11)?).ok()?;
        let day = i8::try_from(num(12..14)?).ok()?;
        let year = i16::try_from(num(15..19)?).ok()?;
        let dt = DateTime::new(year, month, day, hour, minute, second, 0).ok()?;
        Offset::UTC.to_timestamp(dt).ok().map(Dc09Time)
    }

    /// The instant truncated to whole seconds (DC-09 has no sub-second precision).
    pub fn from_timestamp(ts: Timestamp) -> Dc09Time {
        Dc09Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
    }

    pub fn timestamp(self) -> Timestamp {
        self.0
    }

    /// `HH:MM:SS,MM-DD-YYYY`. Years outside 0000–9999 cannot be written in four digits; they are
    /// clamped, which only matters for a badly broken clock.
    pub fn format(self) -> String {
        let dt = Offset::UTC.to_datetime(self.0);
        format!(
            "{:02}:{:02}:{:02},{:02}-{:02}-{:04}",
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.month(),
            dt.day(),
            dt.year().clamp(0, 9999)
        )
    }
}

/// How far a message's timestamp may lag behind or run ahead of the receiver's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Oldest accepted message age (DC-09: 40 s).
    pub past: SignedDuration,
    /// Furthest accepted lead of the transmitter's clock (DC-09: 20 s).
    pub future: SignedDuration,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            past: SignedDuration::from_secs(40),
            future: SignedDuration::from_secs(20),
        }
    }
}

impl Window {
    /// `-past <= message - now <= +future`.
    pub fn accepts(&self, message: Dc09Time, now: Timestamp) -> bool {
        let diff = message.timestamp().duration_since(now);
        diff >= -self.past && diff <= self.future
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_month_before_day_in_utc() {
        let t = Dc09Time::parse(b"12:00:00,06-01-2024").unwrap();
        assert_eq!(t.timestamp(), ts("2024-06-01T12:00:00Z"));
        assert_eq!(t.format(), "12:00:00,06-01-2024");
    }

    #[test]
    fn impossible_dates_and_bad_separators_are_refused() {
        assert!(Dc09Time::parse(b"12:00:00,02-30-2024").is_none());
        assert!(Dc09Time::parse(b"25:00:00,06-01-2024").is_none());
        assert!(Dc09Time::parse(b"12-00:00,06-01-2024").is_none());
        assert!(Dc09Time::parse(b"12:00:00,06-01-202").is_none());
        assert!(Dc09Time::parse(b"1+:00:00,06-01-2024").is_none());
    }

    #[test]
    fn window_is_forty_seconds_back_and_twenty_ahead() {
        let w = Window::default();
        let now = ts("2024-06-01T12:00:00Z");
        let at = |s: &str| Dc09Time::from_timestamp(ts(s));
        assert!(w.accepts(at("2024-06-01T11:59:20Z"), now));
        assert!(!w.accepts(at("2024-06-01T11:59:19Z"), now));
        assert!(w.accepts(at("2024-06-01T12:00:20Z"), now));
        assert!(!w.accepts(at("2024-06-01T12:00:21Z"), now));
    }
}
