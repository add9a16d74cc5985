//! [`Rota`]: who of a team is on shift at an instant, and when that may next change. Built once
//! from validated config; every answer is a pure function of the instant.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::config::{PersonConfig, TeamConfig};
use super::window::Window;

/// Who to tell for a team at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnShift {
    /// Person names: shifts in config order, each shift's people in its order, each person
    /// once. The manager alone when `fallback`.
    pub people: Vec<String>,
    /// Names of the shifts in force, in config order (also when nobody works them).
    pub shifts: Vec<String>,
    /// Nobody was on shift, and these are the team's manager instead.
    pub fallback: bool,
}

/// The teams' shifts in the site's time zone, and people's contacts.
#[derive(Clone, Debug)]
pub struct Rota {
    tz: TimeZone,
    teams: Vec<Team>,
    contacts: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Clone, Debug)]
struct Team {
    name: String,
    manager: Option<String>,
    shifts: Vec<Shift>,
}

#[derive(Clone, Debug)]
struct Shift {
    name: String,
    window: Window,
    people: Vec<String>,
    /// By the local date an occurrence starts on.
    exceptions: BTreeMap<Date, Vec<String>>,
}

impl Rota {
    /// Builds the rota from config that [`super::validate`] accepted. It cannot fail, so an
    /// entry validation would reject (a shift with a bad time, an exception with a bad date or
    /// no shift) is left out rather than guessed at.
    pub fn new(people: &[PersonConfig], teams: &[TeamConfig], tz: TimeZone) -> Rota {
        let teams = teams
            .iter()
            .map(|t| {
                let mut shifts: Vec<Shift> = t
                    .shifts
                    .iter()
                    .filter_map(|s| {
                        Some(Shift {
                            name: s.name.clone(),
                            window: s.window().ok()?,
                            people: s.people.clone(),
                            exceptions: BTreeMap::new(),
                        })
                    })
                    .collect();
                for ex in &t.exceptions {
                    let (Ok(date), Some(shift)) = (
                        ex.parsed_date(),
                        shifts.iter_mut().find(|s| s.name == ex.shift),
                    ) else {
                        continue;
                    };
                    shift.exceptions.insert(date, ex.people.clone());
                }
                Team {
                    name: t.name.clone(),
                    manager: t.manager.clone(),
                    shifts,
                }
            })
            .collect();
        let contacts = people
            .iter()
            .map(|p| (p.name.clone(), p.contact.clone()))
            .collect();
        Rota {
            tz,
            teams,
            contacts,
        }
    }

    fn team(&self, name: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.name == name)
    }

    /// Who of `team` is on shift at `at`: everyone on any shift in force (an exception for the
    /// date a shift started replaces its people); nobody → the manager (`fallback`); no manager
    /// → empty. An unknown team has nobody and no fallback.
    pub fn on_shift(&self, team: &str, at: Timestamp) -> OnShift {
        let Some(team) = self.team(team) else {
            return OnShift::default();
        };
        let mut out = OnShift::default();
        for shift in &team.shifts {
            let Some(started) = shift.window.started_on(at, &self.tz) else {
                continue;
            };
            out.shifts.push(shift.name.clone());
            let people = shift.exceptions.get(&started).unwrap_or(&shift.people);
            for p in people {
                if !out.people.contains(p) {
                    out.people.push(p.clone());
                }
            }
        }
        if out.people.is_empty()
            && let Some(m) = &team.manager
        {
            out.people.push(m.clone());
            out.fallback = true;
        }
        out
    }

    /// The next instant after `after` at which one of `team`'s shifts starts or ends, when the
    /// people on shift may change. `None` for an unknown team or one without shifts.
    pub fn next_change(&self, team: &str, after: Timestamp) -> Option<Timestamp> {
        self.team(team)?
            .shifts
            .iter()
            .filter_map(|s| s.window.next_boundary(after, &self.tz))
            .min()
    }

    /// `person`'s address on `channel` (`email`, `sms`…), if they gave one.
    pub fn contact(&self, person: &str, channel: &str) -> Option<&str> {
        self.contacts.get(person)?.get(channel).map(String::as_str)
    }

    /// The time zone shifts are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rota::{Day, ExceptionConfig, Role, ShiftConfig, validate};
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").expect("tz database has Europe/London")
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn person(name: &str) -> PersonConfig {
        PersonConfig {
            name: name.into(),
            role: Role::Carer,
            contact: BTreeMap::new(),
        }
    }

    fn shift(name: &str, start: &str, end: &str, people: &[&str]) -> ShiftConfig {
        ShiftConfig {
            name: name.into(),
            start: start.into(),
            end: end.into(),
            days: None,
            people: people.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn exception(date: &str, shift: &str, people: &[&str]) -> ExceptionConfig {
        ExceptionConfig {
            date: date.into(),
            shift: shift.into(),
            people: people.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn people() -> Vec<PersonConfig> {
        let mut anna = person("Anna");
        anna.contact
            .insert("email".into(), "anna@example.org".into());
        let mut maria = person("Maria");
        maria.role = Role::Manager;
        vec![anna, person("Ben"), person("Cara"), person("Dan"), maria]
    }

    fn team(shifts: Vec<ShiftConfig>, exceptions: Vec<ExceptionConfig>) -> TeamConfig {
        TeamConfig {
            name: "west".into(),
            manager: Some("Maria".into()),
            shifts,
            exceptions,
        }
    }

    fn rota(team: TeamConfig) -> Rota {
        let people = people();
        let teams = [team];
        assert_eq!(validate(&people, &teams), Ok(()));
        Rota::new(&people, &teams, london())
    }

    fn day_night() -> Rota {
        rota(team(
            vec![
                shift("day", "07:00", "19:00", &["Anna", "Ben"]),
                shift("night", "19:00", "07:00", &["Cara"]),
            ],
            vec![],
        ))
    }

    fn who(r: &Rota, at: &str) -> (Vec<String>, Vec<String>) {
        let o = r.on_shift("west", utc(at));
        assert!(!o.fallback, "{at}: {o:?}");
        (o.people, o.shifts)
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ordinary_day_06_59_is_night_and_07_01_is_day() {
        let r = day_night();
        // January: local is UTC.
        assert_eq!(
            who(&r, "2026-01-14T06:59Z"),
            (names(&["Cara"]), names(&["night"]))
        );
        assert_eq!(
            who(&r, "2026-01-14T07:01Z"),
            (names(&["Anna", "Ben"]), names(&["day"]))
        );
        assert_eq!(who(&r, "2026-01-14T18:59Z").1, names(&["day"]));
        assert_eq!(who(&r, "2026-01-14T19:00Z").1, names(&["night"]));
    }

    #[test]
    fn spring_forward_06_59_and_07_01_bst_and_an_11_hour_night() {
        let r = day_night();
        // 07:00 BST is 06:00 UTC.
        assert_eq!(who(&r, "2026-03-29T05:59Z").1, names(&["night"]));
        assert_eq!(who(&r, "2026-03-29T06:01Z").1, names(&["day"]));
        // Local 01:30 never shows; around the jump the night carer stays on.
        assert_eq!(who(&r, "2026-03-29T00:59Z").0, names(&["Cara"]));
        assert_eq!(who(&r, "2026-03-29T01:30Z").0, names(&["Cara"])); // 02:30 BST
        let start = utc("2026-03-28T19:00Z");
        let end = r.next_change("west", start).expect("a change");
        assert_eq!(end, utc("2026-03-29T06:00Z"));
        assert_eq!(end.duration_since(start), SignedDuration::from_hours(11));
    }

    #[test]
    fn fall_back_06_59_and_07_01_gmt_and_a_13_hour_night() {
        let r = day_night();
        assert_eq!(who(&r, "2026-10-25T06:59Z").1, names(&["night"]));
        assert_eq!(who(&r, "2026-10-25T07:01Z").1, names(&["day"]));
        // 01:30 shows twice; the night carer has both.
        assert_eq!(who(&r, "2026-10-25T00:30Z").0, names(&["Cara"])); // 01:30 BST
        assert_eq!(who(&r, "2026-10-25T01:30Z").0, names(&["Cara"])); // 01:30 GMT
        let start = utc("2026-10-24T18:00Z"); // 19:00 BST
        let end = r.next_change("west", start).expect("a change");
        assert_eq!(end, utc("2026-10-25T07:00Z"));
        assert_eq!(end.duration_since(start), SignedDuration::from_hours(13));
    }

    #[test]
    fn a_handover_at_a_repeated_time_is_its_first_occurrence() {
        let r = rota(team(
            vec![
                shift("late", "19:00", "01:30", &["Anna"]),
                shift("early", "01:30", "07:00", &["Ben"]),
            ],
            vec![],
        ));
        assert_eq!(who(&r, "2026-10-25T00:29Z").0, names(&["Anna"]));
        assert_eq!(who(&r, "2026-10-25T00:30Z").0, names(&["Ben"])); // first 01:30
        assert_eq!(who(&r, "2026-10-25T01:30Z").0, names(&["Ben"])); // second 01:30
        assert_eq!(
            r.next_change("west", utc("2026-10-24T20:00Z")),
            Some(utc("2026-10-25T00:30Z"))
        );
    }

    #[test]
    fn a_handover_at_a_skipped_time_is_when_the_clocks_jump() {
        let r = rota(team(
            vec![
                shift("late", "19:00", "01:30", &["Anna"]),
                shift("early", "01:30", "07:00", &["Ben"]),
            ],
            vec![],
        ));
        assert_eq!(who(&r, "2026-03-29T00:59Z").0, names(&["Anna"]));
        assert_eq!(who(&r, "2026-03-29T01:00Z").0, names(&["Ben"])); // 02:00 BST
        assert_eq!(
            r.next_change("west", utc("2026-03-28T20:00Z")),
            Some(utc("2026-03-29T01:00Z"))
        );
    }

    #[test]
    fn an_exception_replaces_the_people_of_the_shift_starting_that_date() {
        let r = rota(team(
            vec![
                shift("day", "07:00", "19:00", &["Anna", "Ben"]),
                shift("night", "19:00", "07:00", &["Cara"]),
            ],
            vec![
                exception("2026-12-25", "day", &["Dan"]),
                exception("2026-12-25", "night", &["Ben"]),
            ],
        ));
        assert_eq!(who(&r, "2026-12-25T10:00Z").0, names(&["Dan"]));
        assert_eq!(who(&r, "2026-12-26T10:00Z").0, names(&["Anna", "Ben"]));
        // The night of the 24th is not the 25th's, though it runs into it.
        assert_eq!(who(&r, "2026-12-25T06:00Z").0, names(&["Cara"]));
        assert_eq!(who(&r, "2026-12-26T06:00Z").0, names(&["Ben"]));
    }

    #[test]
    fn an_empty_exception_tells_the_manager() {
        let r = rota(team(
            vec![shift("day", "07:00", "19:00", &["Anna", "Ben"])],
            vec![exception("2026-12-25", "day", &[])],
        ));
        let o = r.on_shift("west", utc("2026-12-25T10:00Z"));
        assert_eq!(
            o,
            OnShift {
                people: names(&["Maria"]),
                shifts: names(&["day"]),
                fallback: true
            }
        );
    }

    #[test]
    fn overlapping_shifts_tell_everyone_once() {
        let r = rota(team(
            vec![
                shift("day", "07:00", "19:00", &["Anna", "Ben"]),
                shift("night", "19:00", "07:00", &["Cara"]),
                shift("twilight", "18:00", "20:00", &["Ben", "Dan"]),
            ],
            vec![],
        ));
        assert_eq!(
            who(&r, "2026-01-14T18:30Z"),
            (names(&["Anna", "Ben", "Dan"]), names(&["day", "twilight"]))
        );
        assert_eq!(
            who(&r, "2026-01-14T19:30Z"),
            (
                names(&["Cara", "Ben", "Dan"]),
                names(&["night", "twilight"])
            )
        );
        assert_eq!(
            r.next_change("west", utc("2026-01-14T18:30Z")),
            Some(utc("2026-01-14T19:00Z"))
        );
    }

    #[test]
    fn nobody_on_shift_tells_the_manager_or_nobody_without_one() {
        let mut t = team(vec![shift("day", "07:00", "19:00", &["Anna"])], vec![]);
        let r = rota(t.clone());
        assert_eq!(
            r.on_shift("west", utc("2026-01-14T22:00Z")),
            OnShift {
                people: names(&["Maria"]),
                shifts: vec![],
                fallback: true
            }
        );
        t.manager = None;
        let r = rota(t);
        assert_eq!(
            r.on_shift("west", utc("2026-01-14T22:00Z")),
            OnShift::default()
        );
        assert_eq!(
            r.on_shift("east", utc("2026-01-14T10:00Z")),
            OnShift::default()
        );
        assert_eq!(r.next_change("east", utc("2026-01-14T10:00Z")), None);
    }

    #[test]
    fn a_friday_night_still_runs_on_saturday_morning() {
        let mut night = shift("night", "19:00", "07:00", &["Cara"]);
        night.days = Some(vec![Day::Fri]);
        let r = rota(team(vec![night], vec![]));
        // 2026-12-04 is a Friday.
        let o = |at| r.on_shift("west", utc(at));
        assert!(o("2026-12-04T06:00Z").fallback); // Thursday's night: none
        assert_eq!(o("2026-12-04T20:00Z").people, names(&["Cara"]));
        assert_eq!(o("2026-12-05T06:00Z").people, names(&["Cara"])); // Saturday 06:00
        assert!(o("2026-12-05T20:00Z").fallback); // Saturday's night: none
        assert_eq!(
            r.next_change("west", utc("2026-12-05T08:00Z")),
            Some(utc("2026-12-11T19:00Z"))
        );
    }

    #[test]
    fn contacts_are_found_by_person_and_channel() {
        let r = day_night();
        assert_eq!(r.contact("Anna", "email"), Some("anna@example.org"));
        assert_eq!(r.contact("Anna", "sms"), None);
        assert_eq!(r.contact("Zoe", "email"), None);
    }

    proptest! {
        #[test]
        fn every_instant_of_2026_has_exactly_day_or_night(
            second in 1_767_225_600i64..1_798_761_600i64, // 2026-01-01 .. 2027-01-01 UTC
            nanos in 0i32..1_000_000_000,
        ) {
            let r = day_night();
            let at = Timestamp::new(second, nanos).expect("in range");
            let o = r.on_shift("west", at);
            prop_assert_eq!(o.shifts.len(), 1, "{} {:?}", at, o);
            prop_assert!(!o.fallback);
            let expected = if o.shifts[0] == "day" { names(&["Anna", "Ben"]) } else { names(&["Cara"]) };
            prop_assert_eq!(o.people, expected);
            let next = r.next_change("west", at);
            prop_assert!(next.is_some_and(|n| n > at && n.duration_since(at) <= SignedDuration::from_hours(13)));
        }

        /// Nothing changes before `next_change`: the people just before it are those at `at`.
        #[test]
        fn who_is_on_shift_holds_until_the_next_change(
            second in 1_767_225_600i64..1_798_761_600i64,
        ) {
            let r = rota(team(
                vec![
                    shift("day", "07:00", "19:00", &["Anna", "Ben"]),
                    shift("late", "19:00", "01:30", &["Cara"]),
                    shift("twilight", "18:00", "20:00", &["Dan"]),
                ],
                vec![],
            ));
            let at = Timestamp::from_second(second).expect("in range");
            let next = r.next_change("west", at).expect("shifts every day");
            let before = next - SignedDuration::from_nanos(1);
            prop_assert_eq!(r.on_shift("west", at), r.on_shift("west", before));
        }
    }
}
