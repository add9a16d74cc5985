//! Policies and routes (`[[policy]]`, `[[route]]`, `[alerts]`): which events become alerts, who
//! is told first, and who next when nobody acknowledges. Matching is a pure function of the
//! event, so it is tested without a journal.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use atgw_sdk::event::{EventData, Kind, Phase, Priority};
use jiff::Timestamp;
use serde::Deserialize;

/// `[[route]]`: a named list of sinks (a team, a pager group, the ARC).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Sink names; a sink used by any route receives only what routes send it.
    pub sinks: Vec<String>,
    /// "Whoever is on shift in this `[[team]]`": each notification through the route also goes
    /// to them, by the contact their `[[person]]` entry has for each sink's type (`email`,
    /// `sms`), besides the sink's own recipients; nobody on shift means the team's manager.
    #[serde(default)]
    pub team: Option<String>,
}

/// `[[policy]]`: events it matches become alerts, notified and escalated as it says.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Name kept with each alert (default `policy-<n>`); escalation follows the policy of this
    /// name after a restart.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matches: PolicyMatch,
    /// Routes told at once.
    pub notify: Vec<String>,
    /// Tiers told when the alert is still unacknowledged `after` its raise.
    #[serde(default)]
    pub escalate: Vec<Tier>,
    /// Tell everyone notified so far again, this often, until acknowledged.
    #[serde(default, with = "humantime_serde")]
    pub repeat: Option<Duration>,
    /// Once acknowledged, remind them this long after if still not resolved.
    #[serde(default, with = "humantime_serde")]
    pub remind: Option<Duration>,
    /// Reminders sent for one acknowledgement at most (the last one says it is the last): an
    /// alert someone has taken must not page everyone every `remind` without end.
    #[serde(default = "default_max_reminders")]
    pub max_reminders: u32,
    /// Once acknowledged, resolve it within this time, or it is open again and escalates from
    /// the tier it had reached ("acknowledged is not attended"). Absent: an acknowledgement
    /// stands until the alert is resolved.
    #[serde(default, with = "humantime_serde")]
    pub attend_within: Option<Duration>,
    /// Resident kinds (see [`restore_is_information`]) whose device restore or resident's cancel
    /// closes the alert (`cleared`) under this policy, as it does for a device's own condition.
    /// Empty (the default) is the safe rule: the restore is recorded and the alert stays open
    /// and escalating until a person acknowledges it.
    #[serde(default)]
    pub clear_on_restore: Vec<Kind>,
}

/// Kinds that always open an alert, with or without a matching policy (as does every
/// high-priority event): a fire, a gas or CO leak, a fall, a resident's call for help.
pub const LIFE_SAFETY: &[Kind] = &[
    Kind::Smoke,
    Kind::Co,
    Kind::Gas,
    Kind::Fall,
    Kind::PendantPress,
    Kind::AssistanceCall,
    Kind::Medical,
];

/// Kinds a resident raised, or that may mean someone is hurt: the device's restore (or the
/// resident's cancel) is information about the alert, not the end of it.
pub const RESIDENT_KINDS: &[Kind] = &[
    Kind::PendantPress,
    Kind::AssistanceCall,
    Kind::Medical,
    Kind::NurseCall,
    Kind::Fall,
    Kind::Seizure,
    Kind::Spo2Low,
    Kind::HeartRateAbnormal,
    Kind::RespiratoryRateAbnormal,
];

/// Calls a resident makes and can cancel (Contact ID 406, SIA `OC`, ESPA reset): a cancel
/// applies to these only, never to a fire, gas or a device's condition.
pub const CANCELLABLE: &[Kind] = &[
    Kind::PendantPress,
    Kind::AssistanceCall,
    Kind::NurseCall,
    Kind::Medical,
];

/// Reminders per acknowledgement unless a policy says otherwise.
pub const DEFAULT_MAX_REMINDERS: u32 = 3;

fn default_max_reminders() -> u32 {
    DEFAULT_MAX_REMINDERS
}

/// Name under which alerts opened by the fail-safe are kept (no `[[policy]]` may use it).
pub const FAILSAFE: &str = "fail-safe";

/// How often the fail-safe tells its routes again until someone acknowledges.
const FAILSAFE_REPEAT: Duration = Duration::from_secs(60);

/// Whether a device's restore (or cancel) of an alert of this kind only records information on
/// it (`true`) or closes it (`false`). Device conditions (a leak that dried, smoke gone, a device
/// back online) close; resident kinds stay open unless `policy` loosens that kind.
pub fn restore_is_information(kind: Kind, policy: Option<&PolicyConfig>) -> bool {
    RESIDENT_KINDS.contains(&kind) && !policy.is_some_and(|p| p.clear_on_restore.contains(&kind))
}

/// Conditions of a policy; an empty list matches anything.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyMatch {
    #[serde(default)]
    pub kind: Vec<Kind>,
    #[serde(default)]
    pub priority: Vec<Priority>,
    /// Registry device ids.
    #[serde(default)]
    pub device: Vec<String>,
    #[serde(default)]
    pub area: Vec<String>,
    /// Pseudonymous resident ids.
    #[serde(default)]
    pub resident: Vec<String>,
    /// Only within these hours, site time: `"22:00-07:00"` (crossing midnight) or
    /// `"09:00-17:00"`. Absent: all day. A condition raised outside them that is still
    /// raised when they begin is alerted then.
    #[serde(default)]
    pub hours: Option<String>,
    /// Only on these days (`mon` … `sun`; the day the `hours` begin on). Empty: every day.
    #[serde(default)]
    pub days: Vec<crate::rota::Day>,
}

/// One escalation step.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    pub notify: Vec<String>,
}

/// `[alerts]`: settings for all policies.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Route that receives test events (`test = true`); they never open alerts or reach any
    /// other route. Absent: test events are journaled and streamed, and page nobody.
    #[serde(default)]
    pub test_route: Option<String>,
    /// Failed attempts to deliver one notification of an open alert after which its next
    /// escalation tier is told at once instead of after its delay. 0 turns this off.
    #[serde(default = "default_failed_attempts")]
    pub escalate_after_failed_attempts: u32,
    /// How long the oldest event waiting for a sink may stay undelivered before the gateway
    /// raises a `device_fault` alert about the sink (cleared once it has delivered what was
    /// late). Time without anything to deliver never counts.
    #[serde(default = "default_sink_failing", with = "humantime_serde")]
    pub sink_failing_alert_after: Duration,
    /// Fail-safe route: a life-safety or high-priority event that no `[[policy]]` matches opens
    /// an alert here (policy `fail-safe`, repeated every 60 s until acknowledged). Absent: every
    /// route.
    #[serde(default)]
    pub default_route: Option<String>,
    /// Commissioning or supervisor route: every alert from a device the registry does not know
    /// (its location is unknown) is also told here, from its first notification to its end.
    /// Absent: `default_route`; without that, no route beyond the alert's own policy.
    #[serde(default)]
    pub unregistered_route: Option<String>,
    /// How long an adapter may be unable to hear its devices (an MQTT adapter's broker link
    /// down) before the gateway raises one alert about it. Its supervised devices' missed
    /// check-ins are held from the first second, whatever this says (see
    /// [`crate::supervision`]).
    #[serde(default = "default_link_down", with = "humantime_serde")]
    pub link_down_alert_after: Duration,
    /// The longest a person may shelve a device's technical alerts
    /// ([`super::shelf`]); every shelf ends.
    #[serde(default = "default_max_shelve", with = "humantime_serde")]
    pub max_shelve: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            test_route: None,
            escalate_after_failed_attempts: default_failed_attempts(),
            sink_failing_alert_after: default_sink_failing(),
            default_route: None,
            unregistered_route: None,
            link_down_alert_after: default_link_down(),
            max_shelve: default_max_shelve(),
        }
    }
}

fn default_max_shelve() -> Duration {
    super::shelf::DEFAULT_MAX_SHELVE
}

fn default_link_down() -> Duration {
    Duration::from_secs(60)
}

fn default_failed_attempts() -> u32 {
    3
}

fn default_sink_failing() -> Duration {
    Duration::from_secs(120)
}

/// Policies compiled against the sinks that exist.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub policies: Vec<(String, PolicyConfig)>,
    routes: BTreeMap<String, Vec<String>>,
    /// Routes that name a team: route → team.
    route_teams: BTreeMap<String, String>,
    /// Sinks no route names: they receive every event (audit trails, upstream streams).
    pub stream_sinks: Vec<String>,
    pub test_route: Option<String>,
    /// What an unmatched life-safety event is alerted under ([`FAILSAFE`]); `None` when no
    /// route exists (every sink is then a stream sink and already receives every event).
    failsafe: Option<PolicyConfig>,
    /// Routes also told of every alert from an unregistered device ([`AlertSettings`]
    /// `unregistered_route`, else `default_route`, else none).
    pub unregistered_routes: Vec<String>,
    /// Routes told when a shelf starts or ends (`default_route`, else every route).
    announcement_routes: Vec<String>,
    /// `[alerts] max_shelve`.
    pub max_shelve: Duration,
    /// Per policy (same order), its `match.hours`/`match.days`; `None`: always.
    windows: Vec<Option<crate::rota::Window>>,
    /// The site's time zone, for the windows (`None`: UTC).
    tz: Option<jiff::tz::TimeZone>,
}

/// The policy an event is alerted under.
#[derive(Clone, Copy, Debug)]
pub struct Chosen<'a> {
    pub name: &'a str,
    pub policy: &'a PolicyConfig,
    /// No `[[policy]]` matched: the fail-safe took it.
    pub failsafe: bool,
}

impl Policies {
    pub fn new(
        policies: &[PolicyConfig],
        routes: &[RouteConfig],
        settings: &AlertSettings,
        sinks: &[String],
    ) -> Policies {
        let routed: BTreeSet<&str> = routes
            .iter()
            .flat_map(|r| r.sinks.iter().map(String::as_str))
            .collect();
        Policies {
            policies: policies
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        p.name
                            .clone()
                            .unwrap_or_else(|| format!("policy-{}", i + 1)),
                        p.clone(),
                    )
                })
                .collect(),
            routes: routes
                .iter()
                .map(|r| (r.name.clone(), r.sinks.clone()))
                .collect(),
            route_teams: routes
                .iter()
                .filter_map(|r| Some((r.name.clone(), r.team.clone()?)))
                .collect(),
            stream_sinks: sinks
                .iter()
                .filter(|s| !routed.contains(s.as_str()))
                .cloned()
                .collect(),
            test_route: settings.test_route.clone(),
            // Not every route by default (unlike the fail-safe): during commissioning many
            // devices are not registered yet, and paging the senior and the ARC at once for each
            // of their alerts would teach people to ignore pages.
            unregistered_routes: settings
                .unregistered_route
                .as_ref()
                .or(settings.default_route.as_ref())
                .map(|r| vec![r.clone()])
                .unwrap_or_default(),
            announcement_routes: match &settings.default_route {
                Some(r) => vec![r.clone()],
                None => routes.iter().map(|r| r.name.clone()).collect(),
            },
            max_shelve: settings.max_shelve,
            windows: policies.iter().map(|p| p.matches.window()).collect(),
            tz: None,
            failsafe: (!routes.is_empty()).then(|| PolicyConfig {
                name: Some(FAILSAFE.into()),
                matches: PolicyMatch::default(),
                notify: match &settings.default_route {
                    Some(r) => vec![r.clone()],
                    None => routes.iter().map(|r| r.name.clone()).collect(),
                },
                escalate: Vec::new(),
                repeat: Some(FAILSAFE_REPEAT),
                remind: None,
                max_reminders: DEFAULT_MAX_REMINDERS,
                attend_within: None,
                clear_on_restore: Vec::new(),
            }),
        }
    }

    /// The first policy that turns this event into an alert. Only conditions that begin
    /// (`raised`) or happen (`point`) open alerts, and never test events.
    pub fn matching(&self, d: &EventData, at: Timestamp) -> Option<&(String, PolicyConfig)> {
        if d.test || !matches!(d.phase, Phase::Raised | Phase::Point) {
            return None;
        }
        self.policies
            .iter()
            .zip(&self.windows)
            .find(|((_, p), w)| p.matches.accepts(d) && self.open(w.as_ref(), at))
            .map(|(p, _)| p)
    }

    /// The site's time zone: the windows' hours are its wall-clock time.
    pub fn in_time_zone(mut self, tz: jiff::tz::TimeZone) -> Policies {
        self.tz = Some(tz);
        self
    }

    fn tz(&self) -> jiff::tz::TimeZone {
        self.tz.clone().unwrap_or(jiff::tz::TimeZone::UTC)
    }

    fn open(&self, w: Option<&crate::rota::Window>, at: Timestamp) -> bool {
        w.is_none_or(|w| w.contains(at, &self.tz()))
    }

    /// For a condition that begins (`raised`) and that no policy takes now only because their
    /// hours have not begun: when the first of them begins. The condition, if still raised
    /// then, is alerted then (someone up at 21:55 and still up at 22:05 under a 22:00 policy).
    pub fn held_until(&self, d: &EventData, at: Timestamp) -> Option<Timestamp> {
        if d.test || d.phase != Phase::Raised || self.matching(d, at).is_some() {
            return None;
        }
        self.policies
            .iter()
            .zip(&self.windows)
            .filter(|((_, p), _)| p.matches.accepts(d))
            .filter_map(|(_, w)| w.as_ref()?.next_opening(at, &self.tz()))
            .min()
    }

    /// The policy this event is alerted under: the first matching `[[policy]]`, else, for a
    /// life-safety kind or a high-priority event, the fail-safe. `None`: no alert.
    pub fn choose(&self, d: &EventData, at: Timestamp) -> Option<Chosen<'_>> {
        if let Some((name, policy)) = self.matching(d, at) {
            return Some(Chosen {
                name,
                policy,
                failsafe: false,
            });
        }
        if d.test || !matches!(d.phase, Phase::Raised | Phase::Point) {
            return None;
        }
        if !(LIFE_SAFETY.contains(&d.kind) || d.priority == Priority::High) {
            return None;
        }
        self.failsafe.as_ref().map(|policy| Chosen {
            name: FAILSAFE,
            policy,
            failsafe: true,
        })
    }

    pub fn by_name(&self, name: &str) -> Option<&PolicyConfig> {
        self.policies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .or_else(|| self.failsafe.as_ref().filter(|_| name == FAILSAFE))
    }

    /// Whether `candidate` is stricter than `current`: its first escalation comes sooner (a
    /// policy that never escalates is the least strict), then it repeats sooner. An upgraded
    /// alert moves to the stricter of the two.
    pub fn stricter(candidate: &PolicyConfig, current: &PolicyConfig) -> bool {
        let key = |p: &PolicyConfig| {
            (
                p.escalate.first().map_or(Duration::MAX, |t| t.after),
                p.repeat.unwrap_or(Duration::MAX),
            )
        };
        key(candidate) < key(current)
    }

    /// Life-safety kinds no `[[policy]]` routes for every device at high priority: only the
    /// fail-safe would catch them. Empty when there is no policy at all (every event then
    /// streams to every sink).
    pub fn unrouted_life_safety(policies: &[PolicyConfig]) -> Vec<Kind> {
        if policies.is_empty() {
            return Vec::new();
        }
        LIFE_SAFETY
            .iter()
            .copied()
            .filter(|k| {
                !policies.iter().any(|p| {
                    let m = &p.matches;
                    (m.kind.is_empty() || m.kind.contains(k))
                        && (m.priority.is_empty() || m.priority.contains(&Priority::High))
                        && m.device.is_empty()
                        && m.area.is_empty()
                        && m.resident.is_empty()
                })
            })
            .collect()
    }

    /// Where alerts from unregistered devices also go, for `check-config` and `audit`: `Ok` names
    /// the configured `unregistered_route`; `Err` says what the unset default does.
    /// `None`: no `[[route]]`, so every sink hears every event anyway.
    pub fn unregistered_destination(
        routes: &[RouteConfig],
        settings: &AlertSettings,
    ) -> Option<Result<String, String>> {
        if routes.is_empty() {
            return None;
        }
        Some(
            match (&settings.unregistered_route, &settings.default_route) {
                (Some(r), _) => Ok(format!("route `{r}`")),
                (None, Some(r)) => Err(format!("also go to the default route `{r}`")),
                (None, None) => {
                    Err("go only to the routes their policy names (no default_route either)".into())
                }
            },
        )
    }

    /// Sinks of the given routes, each once.
    pub fn sinks_of<'a>(&self, routes: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in routes {
            for s in self.routes.get(r).into_iter().flatten() {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    /// Where a device event itself goes: every stream sink, and a test event also to the test
    /// route.
    pub fn device_event_sinks(&self, d: &EventData) -> Vec<String> {
        let mut out = self.stream_sinks.clone();
        if d.test
            && let Some(r) = &self.test_route
        {
            for s in self.sinks_of([r]) {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// The team a route tells whoever is on shift in.
    pub fn route_team(&self, route: &str) -> Option<&str> {
        self.route_teams.get(route).map(String::as_str)
    }

    /// Where a shelf's start and end are announced: the announcement routes' sinks and the
    /// stream sinks.
    pub fn announcement_sinks(&self) -> Vec<String> {
        let mut out = self.stream_sinks.clone();
        for s in self.sinks_of(&self.announcement_routes) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Routes notified once `level` tiers have fired (level 0: the first notification).
    pub fn routes_up_to(policy: &PolicyConfig, level: usize) -> Vec<String> {
        let mut out = policy.notify.clone();
        for t in policy.escalate.iter().take(level) {
            for r in &t.notify {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// Checks names: routes name sinks that exist, policies name routes that exist.
    pub fn validate(
        policies: &[PolicyConfig],
        routes: &[RouteConfig],
        settings: &AlertSettings,
        sinks: &[&str],
    ) -> Result<(), (String, String)> {
        let mut names = BTreeSet::new();
        for (i, r) in routes.iter().enumerate() {
            if !names.insert(r.name.as_str()) {
                return Err((
                    format!("route[{i}].name"),
                    format!("`{}` is used twice", r.name),
                ));
            }
            for s in &r.sinks {
                if !sinks.contains(&s.as_str()) {
                    return Err((
                        format!("route[{i}].sinks"),
                        format!("no [[sink]] is named `{s}`"),
                    ));
                }
            }
        }
        let known = |r: &String| names.contains(r.as_str());
        for (i, p) in policies.iter().enumerate() {
            if p.name.as_deref() == Some(FAILSAFE) {
                return Err((
                    format!("policy[{i}].name"),
                    format!("`{FAILSAFE}` is the name of the built-in fail-safe; choose another"),
                ));
            }
            if let Some(k) = p
                .clear_on_restore
                .iter()
                .find(|k| !RESIDENT_KINDS.contains(k))
            {
                return Err((
                    format!("policy[{i}].clear_on_restore"),
                    format!(
                        "`{k}` is a device condition and already clears on its restore; list only {}",
                        RESIDENT_KINDS
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if p.notify.is_empty() {
                return Err((
                    format!("policy[{i}].notify"),
                    "needs at least one route".into(),
                ));
            }
            if let Some(r) = p.notify.iter().find(|r| !known(r)) {
                return Err((
                    format!("policy[{i}].notify"),
                    format!("no [[route]] is named `{r}`"),
                ));
            }
            let mut last = Duration::ZERO;
            for (t, tier) in p.escalate.iter().enumerate() {
                if let Some(r) = tier.notify.iter().find(|r| !known(r)) {
                    return Err((
                        format!("policy[{i}].escalate[{t}].notify"),
                        format!("no [[route]] is named `{r}`"),
                    ));
                }
                if tier.after <= last {
                    return Err((
                        format!("policy[{i}].escalate[{t}].after"),
                        "tiers must come later and later".into(),
                    ));
                }
                last = tier.after;
            }
            if p.repeat.is_some_and(|r| r < Duration::from_secs(1)) {
                return Err((format!("policy[{i}].repeat"), "must be at least 1s".into()));
            }
            if p.attend_within.is_some_and(|w| w < Duration::from_secs(1)) {
                return Err((
                    format!("policy[{i}].attend_within"),
                    "must be at least 1s".into(),
                ));
            }
            if (p.matches.hours.is_some() || !p.matches.days.is_empty())
                && let Err(e) =
                    crate::rota::Window::parse(p.matches.hours.as_deref(), &p.matches.days)
            {
                return Err((format!("policy[{i}].match.hours"), e));
            }
            if p.max_reminders == 0 {
                return Err((
                    format!("policy[{i}].max_reminders"),
                    "must be at least 1 (leave `remind` out for no reminders)".into(),
                ));
            }
        }
        if let Some(r) = &settings.test_route
            && !known(r)
        {
            return Err((
                "alerts.test_route".into(),
                format!("no [[route]] is named `{r}`"),
            ));
        }
        if let Some(r) = &settings.default_route
            && !known(r)
        {
            return Err((
                "alerts.default_route".into(),
                format!("no [[route]] is named `{r}`"),
            ));
        }
        if let Some(r) = &settings.unregistered_route
            && !known(r)
        {
            return Err((
                "alerts.unregistered_route".into(),
                format!(
                    "no [[route]] is named `{r}`; name the commissioning or supervisor route that should hear of alerts from unregistered devices"
                ),
            ));
        }
        Ok(())
    }
}

impl PolicyMatch {
    /// The compiled `hours`/`days` (validated at load: a bad one is `None`, i.e. always, but
    /// [`Policies::validate`] refused it first).
    fn window(&self) -> Option<crate::rota::Window> {
        if self.hours.is_none() && self.days.is_empty() {
            return None;
        }
        crate::rota::Window::parse(self.hours.as_deref(), &self.days).ok()
    }

    fn accepts(&self, d: &EventData) -> bool {
        fn any<T: PartialEq>(list: &[T], v: Option<&T>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(v))
        }
        any(&self.kind, Some(&d.kind))
            && any(&self.priority, Some(&d.priority))
            && any(&self.device, Some(&d.device.id))
            && any(&self.area, d.location.area.as_ref())
            && any(&self.resident, d.resident.as_ref().map(|r| &r.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::EventDraft;

    fn policies() -> Policies {
        let p = PolicyConfig {
            name: Some("alarms".into()),
            matches: PolicyMatch {
                priority: vec![Priority::High],
                ..Default::default()
            },
            notify: vec!["carers".into()],
            escalate: vec![Tier {
                after: Duration::from_secs(60),
                notify: vec!["senior".into()],
            }],
            repeat: Some(Duration::from_secs(60)),
            remind: None,
            max_reminders: DEFAULT_MAX_REMINDERS,
            attend_within: None,
            clear_on_restore: Vec::new(),
        };
        let routes = vec![
            RouteConfig {
                name: "carers".into(),
                sinks: vec!["carers-hook".into()],
                team: None,
            },
            RouteConfig {
                name: "senior".into(),
                sinks: vec!["senior-hook".into()],
                team: None,
            },
            RouteConfig {
                name: "test".into(),
                sinks: vec!["maintenance".into()],
                team: None,
            },
        ];
        let sinks: Vec<String> = ["carers-hook", "senior-hook", "maintenance", "audit"]
            .map(String::from)
            .to_vec();
        Policies::new(
            &[p],
            &routes,
            &AlertSettings {
                test_route: Some("test".into()),
                ..AlertSettings::default()
            },
            &sinks,
        )
    }

    #[test]
    fn only_raises_and_points_that_match_open_alerts() {
        let p = policies();
        let mut d = EventDraft::new(Kind::Fall, Phase::Raised, "x", "a").data;
        assert!(p.matching(&d, Timestamp::UNIX_EPOCH).is_some());
        d.phase = Phase::Cleared;
        assert!(p.matching(&d, Timestamp::UNIX_EPOCH).is_none());
        let d = EventDraft::new(Kind::LowBattery, Phase::Raised, "x", "a").data;
        assert!(
            p.matching(&d, Timestamp::UNIX_EPOCH).is_none(),
            "low priority matches no policy"
        );
    }

    #[test]
    fn a_policy_with_hours_matches_inside_them_and_holds_a_condition_raised_before() {
        let night = PolicyConfig {
            name: Some("bed-at-night".into()),
            matches: PolicyMatch {
                kind: vec![Kind::BedExit],
                hours: Some("22:00-07:00".into()),
                ..Default::default()
            },
            notify: vec!["carers".into()],
            escalate: Vec::new(),
            repeat: None,
            remind: None,
            max_reminders: DEFAULT_MAX_REMINDERS,
            attend_within: None,
            clear_on_restore: Vec::new(),
        };
        let routes = [RouteConfig {
            name: "carers".into(),
            sinks: vec!["hook".into()],
            team: None,
        }];
        let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let p = Policies::new(
            &[night],
            &routes,
            &AlertSettings::default(),
            &["hook".into()],
        )
        .in_time_zone(london);
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut d = EventDraft::new(Kind::BedExit, Phase::Raised, "bed-9", "a").data;
        // 21:55 and 22:05 in BST (UTC+1) on a summer day.
        assert!(p.matching(&d, at("2026-07-01T20:55:00Z")).is_none());
        assert!(p.matching(&d, at("2026-07-01T21:05:00Z")).is_some());
        assert_eq!(
            p.held_until(&d, at("2026-07-01T20:55:00Z")),
            Some(at("2026-07-01T21:00:00Z")),
            "held until 22:00 local"
        );
        assert_eq!(
            p.held_until(&d, at("2026-07-01T21:05:00Z")),
            None,
            "matched, not held"
        );
        // GMT in winter: 22:00 local is 22:00 UTC.
        assert_eq!(
            p.held_until(&d, at("2026-12-01T21:55:00Z")),
            Some(at("2026-12-01T22:00:00Z"))
        );
        d.phase = Phase::Point;
        assert_eq!(
            p.held_until(&d, at("2026-07-01T20:55:00Z")),
            None,
            "a momentary event is not held"
        );
        let other = EventDraft::new(Kind::DoorExit, Phase::Raised, "door", "a").data;
        assert_eq!(p.held_until(&other, at("2026-07-01T20:55:00Z")), None);
    }

    #[test]
    fn bad_hours_are_refused_naming_the_key() {
        let mut p = policies().policies[0].1.clone();
        p.matches.hours = Some("10pm-7am".into());
        let routes = [
            RouteConfig {
                name: "carers".into(),
                sinks: vec!["s".into()],
                team: None,
            },
            RouteConfig {
                name: "senior".into(),
                sinks: vec!["s".into()],
                team: None,
            },
        ];
        let err = Policies::validate(&[p], &routes, &AlertSettings::default(), &["s"]).unwrap_err();
        assert_eq!(err.0, "policy[0].match.hours", "{err:?}");
    }

    #[test]
    fn test_events_open_no_alert_and_reach_only_the_test_route() {
        let p = policies();
        let mut d = EventDraft::new(Kind::PendantPress, Phase::Point, "x", "a").data;
        d.test = true;
        assert!(p.matching(&d, Timestamp::UNIX_EPOCH).is_none());
        assert_eq!(
            p.device_event_sinks(&d),
            vec!["audit".to_string(), "maintenance".to_string()]
        );
    }

    #[test]
    fn routed_sinks_get_no_stream_and_escalation_adds_routes() {
        let p = policies();
        assert_eq!(p.stream_sinks, vec!["audit".to_string()]);
        let (_, pol) = &p.policies[0];
        assert_eq!(Policies::routes_up_to(pol, 0), vec!["carers".to_string()]);
        assert_eq!(
            Policies::routes_up_to(pol, 1),
            vec!["carers".to_string(), "senior".to_string()]
        );
        assert_eq!(
            p.sinks_of(&Policies::routes_up_to(pol, 1)),
            vec!["carers-hook".to_string(), "senior-hook".to_string()]
        );
    }
}
