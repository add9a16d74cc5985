//! Local wall-clock times (`"07:00"`) and the one rule that turns a wall time on a date into an
//! instant, whatever daylight saving does that night.
//!
//! **The rule: wall time `W` on date `D` is the first instant at which the site's clock reads `W`
//! or later on `D`.**
//! - Ordinary days: the one instant the clock shows `W`.
//! - A skipped time (spring forward; `01:30` on 2026-03-29 in Europe/London never shows): the
//!   first instant after the gap (02:00 BST, 01:00 UTC). A shift starting in the gap starts when
//!   the clocks jump; one ending in it ends then.
//! - A repeated time (fall back; `01:30` on 2026-10-25 shows at 00:30 UTC in BST and again at
//!   01:30 UTC in GMT): the first occurrence, for a start and for an end alike.
//!
//! Why one rule for both ends rather than "ends at the later occurrence": the end of one shift
//! is usually the start of the next at the same wall time, and resolving both the same way makes
//! that handover one instant. Starting at the first and ending at the later occurrence would put
//! both shifts in force for an hour (paging a carer who has gone home); the other way round,
//! neither (paging the manager for nothing). The rule is also monotonic — a later wall time never
//! resolves to an earlier instant — so a span never runs backwards. Whoever is on shift across
//! the change works the hour more or less: a 19:00–07:00 night is 11 h in March, 13 h in October.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};

/// Minutes since local midnight, `0..=1440`; 1440 (`24:00`) is the next midnight, allowed as the
/// end of a span only (see [`super::Window`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WallTime(u16);

const HOW: &str = "write HH:MM on the 24-hour clock, e.g. `07:00` or `19:30`";

impl WallTime {
    pub(crate) const MIDNIGHT: WallTime = WallTime(0);
    pub(crate) const END_OF_DAY: WallTime = WallTime(24 * 60);

    /// `"HH:MM"`, 00:00 to 23:59, or `24:00`.
    pub(crate) fn parse(s: &str) -> Result<WallTime, String> {
        let b = s.as_bytes();
        let digit = |i: usize| b[i].is_ascii_digit();
        if b.len() != 5 || b[2] != b':' || !(digit(0) && digit(1) && digit(3) && digit(4)) {
            return Err(format!("`{s}` is not a time: {HOW}"));
        }
        let two = |i: usize| u16::from(b[i] - b'0') * 10 + u16::from(b[i + 1] - b'0');
        let (h, m) = (two(0), two(3));
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(format!(
                "`{s}` is not a time of day: {HOW} (`24:00` only as an end, meaning midnight)"
            ));
        }
        Ok(WallTime(h * 60 + m))
    }
}

impl std::fmt::Display for WallTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// The instant of `wall` on `date` in `tz`, by the rule in the module doc. `None` only at the
/// ends of jiff's supported range (years -9999 and 9999), which no site reaches.
pub(crate) fn resolve(tz: &TimeZone, date: Date, wall: WallTime) -> Option<Timestamp> {
    let (date, minutes) = if wall == WallTime::END_OF_DAY {
        (date.tomorrow().ok()?, 0)
    } else {
        (date, wall.0)
    };
    // Both fit in i8: minutes < 1440.
    let dt = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => ambiguous.unambiguous().ok(),
        // The first occurrence of a repeated time.
        AmbiguousOffset::Fold { .. } => ambiguous.earlier().ok(),
        // Read with the offset in force after the gap, `dt` lands before the transition; the
        // transition itself is the first instant after the gap.
        AmbiguousOffset::Gap { after, .. } => {
            let before_gap = after.to_timestamp(dt).ok()?;
            tz.following(before_gap).next().map(|t| t.timestamp())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").expect("tz database has Europe/London")
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn wall(s: &str) -> WallTime {
        WallTime::parse(s).expect("test wall time")
    }

    #[test]
    fn parses_hh_mm_and_24_00() {
        assert_eq!(wall("00:00").0, 0);
        assert_eq!(wall("07:05").0, 425);
        assert_eq!(wall("23:59").0, 1439);
        assert_eq!(wall("24:00"), WallTime::END_OF_DAY);
    }

    #[test]
    fn rejects_what_is_not_hh_mm_and_says_how_to_write_it() {
        for bad in [
            "7am",
            "7:00",
            "07:0",
            "07.00",
            "",
            "07:00:00",
            "+7:00",
            "٠٧:٠٠",
        ] {
            let err = WallTime::parse(bad).expect_err(bad);
            assert!(err.contains("HH:MM"), "{bad}: {err}");
        }
        for bad in ["24:01", "25:00", "07:60", "99:99"] {
            let err = WallTime::parse(bad).expect_err(bad);
            assert!(err.contains("not a time of day"), "{bad}: {err}");
        }
    }

    #[test]
    fn ordinary_times_resolve_to_their_one_instant() {
        let tz = london();
        assert_eq!(
            resolve(&tz, date(2026, 1, 14), wall("07:00")),
            Some(utc("2026-01-14T07:00Z"))
        );
        assert_eq!(
            resolve(&tz, date(2026, 7, 14), wall("07:00")),
            Some(utc("2026-07-14T06:00Z"))
        );
        assert_eq!(
            resolve(&tz, date(2026, 7, 14), WallTime::END_OF_DAY),
            Some(utc("2026-07-14T23:00Z"))
        );
    }

    #[test]
    fn a_skipped_time_is_the_first_instant_after_the_gap() {
        // 2026-03-29: 01:00 GMT becomes 02:00 BST at 01:00 UTC.
        let tz = london();
        let jump = Some(utc("2026-03-29T01:00Z"));
        assert_eq!(resolve(&tz, date(2026, 3, 29), wall("01:00")), jump);
        assert_eq!(resolve(&tz, date(2026, 3, 29), wall("01:30")), jump);
        assert_eq!(resolve(&tz, date(2026, 3, 29), wall("01:59")), jump);
        assert_eq!(resolve(&tz, date(2026, 3, 29), wall("02:00")), jump);
        assert_eq!(
            resolve(&tz, date(2026, 3, 29), wall("00:59")),
            Some(utc("2026-03-29T00:59Z"))
        );
    }

    #[test]
    fn a_repeated_time_is_its_first_occurrence() {
        // 2026-10-25: 02:00 BST becomes 01:00 GMT at 01:00 UTC; 01:30 shows twice.
        let tz = london();
        assert_eq!(
            resolve(&tz, date(2026, 10, 25), wall("01:30")),
            Some(utc("2026-10-25T00:30Z"))
        );
        assert_eq!(
            resolve(&tz, date(2026, 10, 25), wall("02:00")),
            Some(utc("2026-10-25T02:00Z"))
        );
    }

    #[test]
    fn resolution_never_runs_backwards_on_either_change_day() {
        let tz = london();
        for day in [date(2026, 3, 29), date(2026, 10, 25)] {
            let mut last = None;
            for m in 0..=1440 {
                let t = resolve(&tz, day, WallTime(m));
                assert!(t.is_some());
                assert!(t >= last, "{day} {}", WallTime(m));
                last = t;
            }
        }
    }
}
