//! `[[person]]` and `[[team]]` as written in the configuration, and their checks. Times and
//! dates stay strings here so that a mistake is reported against its key
//! (`team[0].shift[1].start`), with what to write instead.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use serde::Deserialize;

use super::wall::WallTime;
use super::window::{Day, Window};

/// Longest person name: it appears on pagers and in email subjects.
pub const MAX_NAME: usize = 64;

/// `[[person]]`: someone who can be told about an alert.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    /// Unique, 1–64 characters; shifts, exceptions and managers name people by it.
    pub name: String,
    pub role: Role,
    /// Channel name (a sink type: `email`, `sms`, `espa444`…) → the address on that channel,
    /// opaque here; the sink of that type reads it.
    #[serde(default)]
    pub contact: BTreeMap<String, String>,
}

/// What a person does on site.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Carer,
    Senior,
    Manager,
    Integrator,
}

/// `[[team]]`: people who share alerts, by shift.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    /// A `[[person]]` told instead when nobody is on shift.
    #[serde(default)]
    pub manager: Option<String>,
    #[serde(default, rename = "shift")]
    pub shifts: Vec<ShiftConfig>,
    #[serde(default, rename = "exception")]
    pub exceptions: Vec<ExceptionConfig>,
}

/// `[[team.shift]]`: who works a daily span of local time.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    /// Unique within its team; exceptions name the shift by it.
    pub name: String,
    /// `"HH:MM"` local time in the site's time zone.
    pub start: String,
    /// `"HH:MM"`; before `start` means the shift ends the next day. `24:00` is midnight.
    pub end: String,
    /// Days the shift starts on; absent means every day. A night shift starting on Friday
    /// still runs on Saturday morning with `days = ["fri"]`.
    #[serde(default)]
    pub days: Option<Vec<Day>>,
    /// `[[person]]` names; may be empty (then the manager is told).
    pub people: Vec<String>,
}

/// `[[team.exception]]`: on one date, other people work a shift (a holiday, sickness).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExceptionConfig {
    /// `"YYYY-MM-DD"`, the local date the shift starts on.
    pub date: String,
    /// A `[[team.shift]]` name of the same team.
    pub shift: String,
    /// Who works it instead; empty means nobody (then the manager is told).
    pub people: Vec<String>,
}

impl ShiftConfig {
    /// The shift's span, or the key under the shift (`start`, `end`, `days`) and what is wrong.
    pub(crate) fn window(&self) -> Result<Window, (&'static str, String)> {
        let start = WallTime::parse(&self.start).map_err(|e| ("start", e))?;
        let end = WallTime::parse(&self.end).map_err(|e| ("end", e))?;
        let days = match &self.days {
            Some(days) if days.is_empty() => {
                return Err((
                    "days",
                    "lists no day, so the shift never happens; name its days or leave `days` out \
                     for every day"
                        .into(),
                ));
            }
            Some(days) => days.as_slice(),
            None => &[],
        };
        Window::new(start, end, days).map_err(|e| {
            let key = if start == WallTime::END_OF_DAY {
                "start"
            } else {
                "end"
            };
            (key, e)
        })
    }
}

impl ExceptionConfig {
    pub(crate) fn parsed_date(&self) -> Result<Date, String> {
        // jiff would also take a datetime here; a date is all that is meant.
        let well_formed = self.date.len() == 10;
        match self.date.parse::<Date>() {
            Ok(d) if well_formed => Ok(d),
            _ => Err(format!(
                "`{}` is not a date: write YYYY-MM-DD, e.g. `2026-12-25`",
                self.date
            )),
        }
    }
}

/// Checks names and times: every person named exists, names are unique, times and dates are
/// well formed, no shift is empty, every exception names a shift of its team on a day it runs,
/// and every team has a shift or a manager. The error is (key path, problem).
pub fn validate(people: &[PersonConfig], teams: &[TeamConfig]) -> Result<(), (String, String)> {
    let mut known = BTreeSet::new();
    for (i, p) in people.iter().enumerate() {
        let len = p.name.chars().count();
        if len == 0 || len > MAX_NAME || p.name.trim() != p.name {
            return Err((
                format!("person[{i}].name"),
                format!(
                    "`{}` must be 1 to {MAX_NAME} characters without spaces at either end",
                    p.name
                ),
            ));
        }
        if !known.insert(p.name.as_str()) {
            return Err((
                format!("person[{i}].name"),
                format!("`{}` is used twice", p.name),
            ));
        }
        if let Some((channel, _)) = p.contact.iter().find(|(_, a)| a.trim().is_empty()) {
            return Err((
                format!("person[{i}].contact.{channel}"),
                "is empty: give the address or leave the channel out".into(),
            ));
        }
    }
    let check_people = |key: String, names: &[String]| -> Result<(), (String, String)> {
        let mut seen = BTreeSet::new();
        for n in names {
            if !known.contains(n.as_str()) {
                return Err((key, format!("no [[person]] is named `{n}`")));
            }
            if !seen.insert(n.as_str()) {
                return Err((key, format!("`{n}` is listed twice")));
            }
        }
        Ok(())
    };

    let mut team_names = BTreeSet::new();
    for (t, team) in teams.iter().enumerate() {
        let at = |k: &str| format!("team[{t}].{k}");
        if team.name.is_empty() {
            return Err((at("name"), "is empty".into()));
        }
        if !team_names.insert(team.name.as_str()) {
            return Err((at("name"), format!("`{}` is used twice", team.name)));
        }
        if let Some(m) = &team.manager
            && !known.contains(m.as_str())
        {
            return Err((at("manager"), format!("no [[person]] is named `{m}`")));
        }
        if team.shifts.is_empty() && team.manager.is_none() {
            return Err((
                at("shift"),
                "the team has no [[team.shift]] and no manager, so nobody would ever be told; \
                 add a shift or a manager"
                    .into(),
            ));
        }
        let mut windows = BTreeMap::new();
        for (s, shift) in team.shifts.iter().enumerate() {
            let at = |k: &str| format!("team[{t}].shift[{s}].{k}");
            if shift.name.is_empty() {
                return Err((at("name"), "is empty".into()));
            }
            let window = shift.window().map_err(|(k, e)| (at(k), e))?;
            if windows.insert(shift.name.as_str(), window).is_some() {
                return Err((
                    at("name"),
                    format!("`{}` is used twice in this team", shift.name),
                ));
            }
            check_people(at("people"), &shift.people)?;
        }
        let mut dated = BTreeSet::new();
        for (e, ex) in team.exceptions.iter().enumerate() {
            let at = |k: &str| format!("team[{t}].exception[{e}].{k}");
            let Some(window) = windows.get(ex.shift.as_str()) else {
                return Err((
                    at("shift"),
                    format!("this team has no [[team.shift]] named `{}`", ex.shift),
                ));
            };
            let date = ex.parsed_date().map_err(|e| (at("date"), e))?;
            if !window.runs_on(date) {
                return Err((
                    at("date"),
                    format!(
                        "the shift `{}` does not start on {} ({}); check the date or the shift's days",
                        ex.shift,
                        date,
                        date.strftime("%A")
                    ),
                ));
            }
            if !dated.insert((date, ex.shift.as_str())) {
                return Err((
                    at("date"),
                    format!("a second exception for `{}` on {date}", ex.shift),
                ));
            }
            check_people(at("people"), &ex.people)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the module doc, parsed as the configuration will embed it.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        person: Vec<PersonConfig>,
        #[serde(default)]
        team: Vec<TeamConfig>,
    }

    const EXAMPLE: &str = r#"
[[person]]
name = "Anna"
role = "carer"
contact = { email = "anna@example.org", sms = "+447700900123" }
[[person]]
name = "Ben"
role = "carer"
[[person]]
name = "Cara"
role = "senior"
[[person]]
name = "Dan"
role = "carer"
[[person]]
name = "Maria"
role = "manager"

[[team]]
name = "west-carers"
manager = "Maria"
[[team.shift]]
name = "day"
start = "07:00"
end = "19:00"
days = ["mon","tue","wed","thu","fri","sat","sun"]
people = ["Anna", "Ben"]
[[team.shift]]
name = "night"
start = "19:00"
end = "07:00"
people = ["Cara"]
[[team.exception]]
date = "2026-12-25"
shift = "day"
people = ["Dan"]
"#;

    fn example() -> File {
        toml::from_str(EXAMPLE).expect("example parses")
    }

    fn problem(edit: impl FnOnce(&mut File)) -> (String, String) {
        let mut f = example();
        edit(&mut f);
        validate(&f.person, &f.team).expect_err("should be rejected")
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let f = example();
        assert_eq!(f.person[0].role, Role::Carer);
        assert_eq!(f.person[0].contact["sms"], "+447700900123");
        assert_eq!(f.team[0].shifts[1].days, None);
        assert_eq!(f.team[0].exceptions[0].people, ["Dan"]);
        assert_eq!(validate(&f.person, &f.team), Ok(()));
    }

    #[test]
    fn unknown_keys_and_roles_are_rejected_by_serde() {
        let typo = EXAMPLE.replace("people = [\"Cara\"]", "peeple = [\"Cara\"]");
        assert!(toml::from_str::<File>(&typo).is_err());
        let role = EXAMPLE.replace("role = \"senior\"", "role = \"nurse\"");
        assert!(toml::from_str::<File>(&role).is_err());
        let day = EXAMPLE.replace("\"sun\"]", "\"sunday\"]");
        assert!(toml::from_str::<File>(&day).is_err());
    }

    #[test]
    fn people_errors_name_the_person_key() {
        let (k, e) = problem(|f| f.person[2].name = "Anna".into());
        assert_eq!(k, "person[2].name");
        assert!(e.contains("used twice"), "{e}");
        let (k, _) = problem(|f| f.person[1].name = String::new());
        assert_eq!(k, "person[1].name");
        let (k, e) = problem(|f| f.person[1].name = "x".repeat(65));
        assert_eq!(k, "person[1].name");
        assert!(e.contains("1 to 64"), "{e}");
        assert_eq!(
            validate(
                &[PersonConfig {
                    name: "é".repeat(64),
                    role: Role::Carer,
                    contact: BTreeMap::new()
                }],
                &[]
            ),
            Ok(())
        );
        let (k, _) = problem(|f| {
            f.person[0].contact.insert("sms".into(), " ".into());
        });
        assert_eq!(k, "person[0].contact.sms");
    }

    #[test]
    fn unknown_people_are_named_under_their_key() {
        let (k, e) = problem(|f| f.team[0].shifts[1].people.push("Zoe".into()));
        assert_eq!(k, "team[0].shift[1].people");
        assert!(e.contains("`Zoe`"), "{e}");
        let (k, _) = problem(|f| f.team[0].shifts[0].people.push("Anna".into()));
        assert_eq!(k, "team[0].shift[0].people");
        let (k, _) = problem(|f| f.team[0].manager = Some("Zoe".into()));
        assert_eq!(k, "team[0].manager");
        let (k, _) = problem(|f| f.team[0].exceptions[0].people = vec!["Zoe".into()]);
        assert_eq!(k, "team[0].exception[0].people");
    }

    #[test]
    fn bad_times_explain_hh_mm() {
        let (k, e) = problem(|f| f.team[0].shifts[0].start = "7am".into());
        assert_eq!(k, "team[0].shift[0].start");
        assert!(e.contains("HH:MM"), "{e}");
        let (k, _) = problem(|f| f.team[0].shifts[1].end = "7:00".into());
        assert_eq!(k, "team[0].shift[1].end");
        let (k, _) = problem(|f| f.team[0].shifts[1].start = "24:00".into());
        assert_eq!(k, "team[0].shift[1].start");
    }

    #[test]
    fn a_shift_of_zero_length_is_rejected() {
        let (k, e) = problem(|f| f.team[0].shifts[1].end = "19:00".into());
        assert_eq!(k, "team[0].shift[1].end");
        assert!(e.contains("no time at all"), "{e}");
        let (k, _) = problem(|f| f.team[0].shifts[1].days = Some(vec![]));
        assert_eq!(k, "team[0].shift[1].days");
    }

    #[test]
    fn duplicate_team_and_shift_names_are_rejected() {
        let (k, _) = problem(|f| f.team[0].shifts[1].name = "day".into());
        assert_eq!(k, "team[0].shift[1].name");
        let (k, _) = problem(|f| {
            let twin = f.team[0].clone();
            f.team.push(twin);
        });
        assert_eq!(k, "team[1].name");
    }

    #[test]
    fn exceptions_must_name_a_shift_on_a_day_it_runs() {
        let (k, e) = problem(|f| f.team[0].exceptions[0].shift = "evening".into());
        assert_eq!(k, "team[0].exception[0].shift");
        assert!(e.contains("`evening`"), "{e}");
        let (k, e) = problem(|f| f.team[0].exceptions[0].date = "25/12/2026".into());
        assert_eq!(k, "team[0].exception[0].date");
        assert!(e.contains("YYYY-MM-DD"), "{e}");
        let (k, _) = problem(|f| f.team[0].exceptions[0].date = "2026-12-25T07:00".into());
        assert_eq!(k, "team[0].exception[0].date");
        // 2026-12-25 is a Friday.
        let (k, e) = problem(|f| f.team[0].shifts[0].days = Some(vec![Day::Mon]));
        assert_eq!(k, "team[0].exception[0].date");
        assert!(e.contains("Friday"), "{e}");
        let (k, _) = problem(|f| {
            let twin = f.team[0].exceptions[0].clone();
            f.team[0].exceptions.push(twin);
        });
        assert_eq!(k, "team[0].exception[1].date");
        // Nobody at all is allowed: the manager is told.
        let mut f = example();
        f.team[0].exceptions[0].people.clear();
        assert_eq!(validate(&f.person, &f.team), Ok(()));
    }

    #[test]
    fn a_team_needs_a_shift_or_a_manager() {
        let (k, e) = problem(|f| {
            f.team[0].shifts.clear();
            f.team[0].exceptions.clear();
            f.team[0].manager = None;
        });
        assert_eq!(k, "team[0].shift");
        assert!(e.contains("manager"), "{e}");
        let mut f = example();
        f.team[0].shifts.clear();
        f.team[0].exceptions.clear();
        assert_eq!(validate(&f.person, &f.team), Ok(()));
    }
}
