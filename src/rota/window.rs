//! [`Window`]: a daily span of local wall-clock time on some days of the week — a policy's
//! `match.hours`/`match.days` and a rota's shift alike, so both follow the same DST rule
//! ([`super::wall`]) and the same "a span belongs to the day it starts on".

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::wall::{self, WallTime};

/// A day of the week as written in the configuration (`"mon"` … `"sun"`). Its own type, not
/// jiff's [`Weekday`], so that config files read the way people write them.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    pub fn of(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Monday => Day::Mon,
            Weekday::Tuesday => Day::Tue,
            Weekday::Wednesday => Day::Wed,
            Weekday::Thursday => Day::Thu,
            Weekday::Friday => Day::Fri,
            Weekday::Saturday => Day::Sat,
            Weekday::Sunday => Day::Sun,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A span of local time repeated on some days: `start` to `end` on the day it starts, or to
/// `end` the next day when `end` comes before `start` (`22:00-07:00`). `00:00-24:00` is the
/// whole day.
///
/// Built from config strings by [`Window::parse`] (a policy's `hours`/`days`) or, for shifts,
/// by the rota's config; the config keeps the strings so that a mistake is reported against its
/// key rather than as a bare serde error.
///
/// Instants follow the rota's one DST rule (`rota/wall.rs`): a wall time is the first instant the clock reads it or later,
/// so a window's real length changes on the days the clocks do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    start: WallTime,
    end: WallTime,
    /// One bit per [`Day`] the window may start on.
    days: u8,
}

/// Dates before the local date of an instant whose occurrence may still be in force: one for
/// a span crossing midnight, and one more so that a zone moving its clocks back across midnight
/// cannot hide yesterday's occurrence.
const BACK: usize = 2;
/// Dates after it searched for the next start or end: a week, whatever the days filter.
const FORWARD: usize = 8;

impl Window {
    /// `hours` is `"HH:MM-HH:MM"`; absent means the whole day. `days` are the days a window may
    /// start on; empty means every day (as an empty list matches anything in a policy).
    pub fn parse(hours: Option<&str>, days: &[Day]) -> Result<Window, String> {
        let Some(hours) = hours else {
            return Window::new(WallTime::MIDNIGHT, WallTime::END_OF_DAY, days);
        };
        let Some((start, end)) = hours.split_once('-') else {
            return Err(format!(
                "`{hours}` is not a span of hours: write HH:MM-HH:MM, e.g. `22:00-07:00`"
            ));
        };
        let start = WallTime::parse(start.trim()).map_err(|e| format!("start: {e}"))?;
        let end = WallTime::parse(end.trim()).map_err(|e| format!("end: {e}"))?;
        Window::new(start, end, days)
    }

    /// A window from parsed times; the errors are what a person must change.
    pub(crate) fn new(start: WallTime, end: WallTime, days: &[Day]) -> Result<Window, String> {
        if start == WallTime::END_OF_DAY {
            return Err("cannot start at 24:00: start at 00:00 instead".into());
        }
        if start == end {
            return Err(format!(
                "{start} to {end} is no time at all; for the whole day write 00:00-24:00"
            ));
        }
        let days = if days.is_empty() {
            Day::ALL.iter()
        } else {
            days.iter()
        }
        .fold(0, |bits, d| bits | d.bit());
        Ok(Window { start, end, days })
    }

    /// Whether the window may start on `date` (its days filter).
    pub(crate) fn runs_on(&self, date: Date) -> bool {
        self.days & Day::of(date.weekday()).bit() != 0
    }

    /// The instants `[start, end)` of the window starting on `date`, if it runs that day. May be
    /// empty: a window lying wholly inside a skipped hour does not happen that day.
    fn occurrence(&self, date: Date, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
        if !self.runs_on(date) {
            return None;
        }
        let end_date = if self.end > self.start {
            date
        } else {
            date.tomorrow().ok()?
        };
        Some((
            wall::resolve(tz, date, self.start)?,
            wall::resolve(tz, end_date, self.end)?,
        ))
    }

    /// Occurrences that may matter around `at`, in start order.
    fn occurrences_around<'a>(
        &'a self,
        at: Timestamp,
        tz: &'a TimeZone,
        forward: usize,
    ) -> impl Iterator<Item = (Date, Timestamp, Timestamp)> + 'a {
        let mut first = tz.to_datetime(at).date();
        for _ in 0..BACK {
            if let Ok(d) = first.yesterday() {
                first = d;
            }
        }
        std::iter::successors(Some(first), |d| d.tomorrow().ok())
            .take(BACK + forward + 1)
            .filter_map(move |d| self.occurrence(d, tz).map(|(s, e)| (d, s, e)))
    }

    /// The date the occurrence in force at `at` started on (the date a rota exception names).
    /// Occurrences never overlap: each lasts at most a day of wall time and resolution is
    /// monotonic.
    pub(crate) fn started_on(&self, at: Timestamp, tz: &TimeZone) -> Option<Date> {
        self.occurrences_around(at, tz, 1)
            .find(|&(_, s, e)| s <= at && at < e)
            .map(|(d, _, _)| d)
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: Timestamp, tz: &TimeZone) -> bool {
        self.started_on(at, tz).is_some()
    }

    /// The next instant after `after` at which the window opens: it is open then and was
    /// closed just before. `None` when it never closes (`00:00-24:00` every day). Used to
    /// re-evaluate a condition already raised when, say, a night window opens at 22:00.
    pub fn next_opening(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let just_before = |t: Timestamp| t.checked_sub(SignedDuration::from_nanos(1)).ok();
        self.occurrences_around(after, tz, FORWARD)
            .map(|(_, s, e)| (s, e))
            .filter(|&(s, e)| s > after && s < e)
            .find(|&(s, _)| just_before(s).is_some_and(|b| !self.contains(b, tz)))
            .map(|(s, _)| s)
    }

    /// The next instant after `after` at which the window starts or ends (on some day), for
    /// scheduling a look at what changed.
    pub fn next_boundary(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        self.occurrences_around(after, tz, FORWARD)
            .filter(|&(_, s, e)| s < e)
            .flat_map(|(_, s, e)| [s, e])
            .filter(|&t| t > after)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").expect("tz database has Europe/London")
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn night() -> Window {
        Window::parse(Some("22:00-07:00"), &[]).expect("valid window")
    }

    #[test]
    fn a_night_window_holds_22_05_not_21_55() {
        let tz = london();
        // 2026-01-14 is in GMT: local is UTC.
        assert!(!night().contains(utc("2026-01-14T21:55Z"), &tz));
        assert!(night().contains(utc("2026-01-14T22:05Z"), &tz));
        assert!(night().contains(utc("2026-01-15T06:59Z"), &tz));
        assert!(!night().contains(utc("2026-01-15T07:00Z"), &tz));
        // In BST local is UTC+1.
        assert!(!night().contains(utc("2026-07-14T20:55Z"), &tz));
        assert!(night().contains(utc("2026-07-14T21:05Z"), &tz));
    }

    #[test]
    fn next_opening_from_21_55_is_22_00_local() {
        let tz = london();
        assert_eq!(
            night().next_opening(utc("2026-01-14T21:55Z"), &tz),
            Some(utc("2026-01-14T22:00Z"))
        );
        assert_eq!(
            night().next_opening(utc("2026-07-14T20:55Z"), &tz),
            Some(utc("2026-07-14T21:00Z"))
        );
        // From inside the window, the next opening is tomorrow's.
        assert_eq!(
            night().next_opening(utc("2026-01-14T23:00Z"), &tz),
            Some(utc("2026-01-15T22:00Z"))
        );
        // From the opening itself: strictly after.
        assert_eq!(
            night().next_opening(utc("2026-01-14T22:00Z"), &tz),
            Some(utc("2026-01-15T22:00Z"))
        );
    }

    #[test]
    fn spring_forward_night_closes_at_07_00_bst_and_reopens_at_22_00_bst() {
        let tz = london();
        // Opened 2026-03-28 22:00 GMT; 07:00 BST on the 29th is 06:00 UTC: 8 h of real time.
        assert!(night().contains(utc("2026-03-29T01:30Z"), &tz));
        assert!(night().contains(utc("2026-03-29T05:59Z"), &tz));
        assert!(!night().contains(utc("2026-03-29T06:01Z"), &tz));
        assert_eq!(
            night().next_boundary(utc("2026-03-28T22:00Z"), &tz),
            Some(utc("2026-03-29T06:00Z"))
        );
        assert_eq!(
            night().next_opening(utc("2026-03-29T20:55Z"), &tz),
            Some(utc("2026-03-29T21:00Z"))
        );
    }

    #[test]
    fn fall_back_night_closes_at_07_00_gmt_and_reopens_at_22_00_gmt() {
        let tz = london();
        // Opened 2026-10-24 22:00 BST (21:00 UTC); closes 07:00 GMT: 10 h of real time.
        assert!(night().contains(utc("2026-10-24T21:00Z"), &tz));
        assert!(night().contains(utc("2026-10-25T00:30Z"), &tz)); // 01:30 BST
        assert!(night().contains(utc("2026-10-25T01:30Z"), &tz)); // 01:30 GMT
        assert!(night().contains(utc("2026-10-25T06:59Z"), &tz));
        assert!(!night().contains(utc("2026-10-25T07:01Z"), &tz));
        assert_eq!(
            night().next_opening(utc("2026-10-24T20:55Z"), &tz),
            Some(utc("2026-10-24T21:00Z"))
        );
        assert_eq!(
            night().next_opening(utc("2026-10-25T21:55Z"), &tz),
            Some(utc("2026-10-25T22:00Z"))
        );
    }

    #[test]
    fn days_name_the_day_a_window_starts_on() {
        let tz = london();
        // 2026-12-04 is a Friday.
        let friday_night = Window::parse(Some("22:00-07:00"), &[Day::Fri]).expect("valid");
        assert!(!friday_night.contains(utc("2026-12-04T06:00Z"), &tz)); // Thursday's night
        assert!(friday_night.contains(utc("2026-12-04T22:05Z"), &tz));
        assert!(friday_night.contains(utc("2026-12-05T06:00Z"), &tz)); // Saturday morning
        assert!(!friday_night.contains(utc("2026-12-05T22:05Z"), &tz));
        assert_eq!(
            friday_night.next_opening(utc("2026-12-05T21:55Z"), &tz),
            Some(utc("2026-12-11T22:00Z"))
        );
    }

    #[test]
    fn a_whole_day_window_never_opens_once_open() {
        let tz = london();
        let always = Window::parse(Some("00:00-24:00"), &[]).expect("valid");
        let absent = Window::parse(None, &[]).expect("valid");
        assert_eq!(always, absent);
        for t in [
            "2026-03-29T01:00Z",
            "2026-10-25T00:59Z",
            "2026-10-25T23:59Z",
        ] {
            assert!(always.contains(utc(t), &tz), "{t}");
        }
        assert_eq!(always.next_opening(utc("2026-06-01T12:00Z"), &tz), None);
        // 2026-12-02 is a Wednesday; a weekend opens Saturday 00:00 and Sunday is no opening.
        let weekend = Window::parse(None, &[Day::Sat, Day::Sun]).expect("valid");
        assert_eq!(
            weekend.next_opening(utc("2026-12-02T12:00Z"), &tz),
            Some(utc("2026-12-05T00:00Z"))
        );
        assert_eq!(
            weekend.next_opening(utc("2026-12-05T12:00Z"), &tz),
            Some(utc("2026-12-12T00:00Z"))
        );
        assert!(weekend.contains(utc("2026-12-06T23:59Z"), &tz));
        assert!(!weekend.contains(utc("2026-12-07T00:00Z"), &tz));
    }

    #[test]
    fn a_window_inside_the_skipped_hour_does_not_happen_that_day() {
        let tz = london();
        let w = Window::parse(Some("01:10-01:50"), &[]).expect("valid");
        assert!(w.contains(utc("2026-03-28T01:20Z"), &tz));
        assert!(!w.contains(utc("2026-03-29T01:00Z"), &tz));
        assert_eq!(
            w.next_opening(utc("2026-03-28T12:00Z"), &tz),
            Some(utc("2026-03-30T00:10Z"))
        );
        assert_eq!(
            w.next_boundary(utc("2026-03-28T12:00Z"), &tz),
            Some(utc("2026-03-30T00:10Z"))
        );
    }

    proptest::proptest! {
        /// Whatever the hours, days and instant (2026, London), the next opening is open, was
        /// closed a nanosecond before, and nothing opens in between.
        #[test]
        fn next_opening_is_an_opening(
            start in 0u16..1440,
            end in 1u16..=1440,
            days in 1u8..128,
            second in 1_767_225_600i64..1_798_761_600i64,
        ) {
            proptest::prop_assume!(start != end);
            let tz = london();
            let days: Vec<Day> = Day::ALL.into_iter().filter(|d| days & d.bit() != 0).collect();
            let wall = |m: u16| WallTime::parse(&format!("{:02}:{:02}", m / 60, m % 60)).expect("valid");
            let w = Window::new(wall(start), wall(end), &days).expect("valid");
            let after = Timestamp::from_second(second).expect("in range");
            let just_before = |t: Timestamp| t - SignedDuration::from_nanos(1);
            match w.next_opening(after, &tz) {
                Some(open) => {
                    proptest::prop_assert!(open > after);
                    proptest::prop_assert!(w.contains(open, &tz));
                    proptest::prop_assert!(!w.contains(just_before(open), &tz));
                    if let Some(b) = w.next_boundary(after, &tz) {
                        proptest::prop_assert!(b <= open);
                    }
                }
                None => proptest::prop_assert!(w.contains(after, &tz)),
            }
        }
    }

    #[test]
    fn bad_hours_are_explained() {
        let err = |h: &str| Window::parse(Some(h), &[]).expect_err(h);
        assert!(err("22:00").contains("HH:MM-HH:MM"));
        assert!(err("10pm-7am").contains("HH:MM"));
        assert!(err("24:00-07:00").contains("start at 00:00"));
        assert!(err("07:00-07:00").contains("no time at all"));
        assert!(err("00:00-00:00").contains("00:00-24:00"));
        assert!(Window::parse(Some("22:00 - 07:00"), &[]).is_ok());
    }
}
