//! The checks serde cannot make: names unique and well formed, referenced names existing,
//! each component's own `validate`, each failure naming its key.

use std::collections::HashSet;

use super::Config;

impl Config {
    /// Checks what serde cannot: names unique and referenced names existing.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let g = &self.gateway;
        if g.id.is_empty() || g.id.contains([':', '/', ' ', '#', '+']) {
            return Err((
                "gateway.id".into(),
                "must be non-empty without `:`, `/`, spaces or MQTT wildcards".into(),
            ));
        }
        if g.site.is_empty() || g.site.contains('/') {
            return Err((
                "gateway.site".into(),
                "must be non-empty without `/`".into(),
            ));
        }
        if jiff::tz::TimeZone::get(&g.timezone).is_err() {
            return Err((
                "gateway.timezone".into(),
                format!(
                    "`{}` is not a known IANA time zone (e.g. Europe/London)",
                    g.timezone
                ),
            ));
        }
        if g.max_clock_skew.is_zero() {
            return Err((
                "gateway.max_clock_skew".into(),
                "must be above zero, e.g. \"2m\"".into(),
            ));
        }
        let j = &self.journal;
        if j.telemetry_retention > j.alert_retention {
            return Err((
                "journal.telemetry_retention".into(),
                "must not be longer than journal.alert_retention (the daily figures kept in place of telemetry go with the alert history)".into(),
            ));
        }
        if j.telemetry_retention < std::time::Duration::from_secs(1)
            || j.prune_every < std::time::Duration::from_secs(1)
        {
            return Err((
                "journal.telemetry_retention".into(),
                "retention windows and prune_every must be at least 1s".into(),
            ));
        }
        if j.max_bytes
            .is_some_and(|b| b < crate::journal::budget::MIN_BYTES)
        {
            return Err((
                "journal.max_bytes".into(),
                format!(
                    "must be at least {} bytes (4 MiB): below that the journal's own tables do not fit",
                    crate::journal::budget::MIN_BYTES
                ),
            ));
        }
        let mut adapters = HashSet::new();
        for (i, a) in self.adapters.iter().enumerate() {
            let key = |k: &str| format!("adapter[{i}].{k}");
            if !valid_name(a.name()) {
                return Err((
                    key("name"),
                    "must be non-empty letters, digits, `-` or `_`".into(),
                ));
            }
            if !adapters.insert(a.name())
                || [
                    crate::GATEWAY_ADAPTER,
                    crate::envelope::ALERTS_SOURCE,
                    crate::envelope::RULES_SOURCE,
                ]
                .contains(&a.name())
            {
                return Err((
                    key("name"),
                    format!("`{}` is used twice (or reserved)", a.name()),
                ));
            }
            a.validate()
                .map_err(|e| (component_key(&format!("adapter[{i}]"), &e.key), e.problem))?;
        }
        let mut sinks = HashSet::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let key = |k: &str| format!("sink[{i}].{k}");
            if !valid_name(s.name()) {
                return Err((
                    key("name"),
                    "must be non-empty letters, digits, `-` or `_`".into(),
                ));
            }
            if !sinks.insert(s.name()) {
                return Err((key("name"), format!("`{}` is used twice", s.name())));
            }
            s.validate()
                .map_err(|e| (component_key(&format!("sink[{i}]"), &e.key), e.problem))?;
        }
        self.vitals
            .validate()
            .map_err(|e| (format!("vitals.{}", e.key), e.problem))?;
        let mut residents = HashSet::new();
        for (i, r) in self.residents.iter().enumerate() {
            r.validate()
                .map_err(|e| (format!("resident[{i}].{}", e.key), e.problem))?;
            if !residents.insert(r.id.as_str()) {
                return Err((
                    format!("resident[{i}].id"),
                    format!("`{}` is used twice", r.id),
                ));
            }
        }
        crate::rota::validate(&self.people, &self.teams)?;
        for (i, p) in self.people.iter().enumerate() {
            if let Some(channel) = p
                .contact
                .keys()
                .find(|k| !crate::components::SINK_TYPES.contains(&k.as_str()))
            {
                return Err((
                    format!("person[{i}].contact.{channel}"),
                    format!(
                        "is no sink type; a contact is keyed by the type of sink that uses it: {}",
                        crate::components::SINK_TYPES.join(", ")
                    ),
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(team) = &r.team
                && !self.teams.iter().any(|t| &t.name == team)
            {
                return Err((
                    format!("route[{i}].team"),
                    format!("no [[team]] is named `{team}`"),
                ));
            }
        }
        let sink_names: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        crate::alerts::policy::Policies::validate(
            &self.policies,
            &self.routes,
            &self.alerts,
            &sink_names,
        )?;
        let mut ids = HashSet::new();
        let mut matches = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("device[{i}].{k}");
            if d.id.is_empty() || !ids.insert(d.id.as_str()) {
                return Err((key("id"), format!("`{}` is empty or used twice", d.id)));
            }
            if !adapters.contains(d.adapter.as_str()) {
                return Err((
                    key("adapter"),
                    format!("no [[adapter]] is named `{}`", d.adapter),
                ));
            }
            if d.match_keys.is_empty() {
                return Err((
                    key("match"),
                    "needs at least one key, e.g. { device = \"0xa4c1…\" }".into(),
                ));
            }
            if !matches.insert((d.adapter.as_str(), &d.match_keys)) {
                return Err((
                    key("match"),
                    format!(
                        "another device has the same adapter and match {{ {} }} \
                         (values as the adapter compares them: `zone = \"7\"` is \"007\")",
                        d.match_keys
                            .iter()
                            .map(|(k, v)| format!("{k} = \"{v}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let fhir_sink = self
            .sinks
            .iter()
            .any(|s| s.type_name() == atgw_fhir::SINK_TYPE);
        crate::registry::fhir_ids(&self.devices, fhir_sink)?;
        Ok(())
    }
}

/// `adapter[2].port`, or `adapter[2]` for a problem of the whole table.
fn component_key(table: &str, key: &str) -> String {
    if key.is_empty() {
        table.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
