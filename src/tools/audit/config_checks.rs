//! Checks on what the configuration says: how each link is protected, what listens where, how
//! strictly input is taken, whether resident ids are pseudonymous, and whether a failing device
//! would be noticed. No file other than the configuration (and its profiles) is read here.

use super::Finding;
use super::Provision::*;
use crate::config::Config;

/// Key names that hold a credential when their value is written inline. `*_file` and
/// `*_format` keys name files and formats, not secrets.
fn is_secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    if n.ends_with("_file") || n.ends_with("_format") {
        return false;
    }
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "private_key",
        "auth",
        "credential",
    ];
    n == "key" || n.ends_with("_key") || WORDS.iter().any(|w| n.contains(w))
}

/// 5.4: a secret written in the configuration text itself. The loader refuses unknown keys, so
/// `password = "…"` cannot load; this names it as what it is. Header values are looked at too,
/// since `headers = { "x-api-key" = "…" }` would load.
pub fn inline_secrets(text: &str) -> Vec<Finding> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new(); // the loader reports the syntax error
    };
    let mut found = Vec::new();
    walk(&toml::Value::Table(table), String::new(), &mut found);
    if found.is_empty() {
        return vec![Finding::pass(
            SecureStorage,
            "inline-secret",
            "configuration text",
            "no secret written inline; secrets come only from `*_file` keys and systemd credentials",
        )];
    }
    found
        .into_iter()
        .map(|key| {
            Finding::fail(
                SecureStorage,
                "inline-secret",
                key,
                "a credential is written in the configuration text, where backups, `check-config` \
                 and support requests copy it",
                "remove it; put the value in a file of its own (chmod 600) or a systemd credential \
                 and name that file with the `*_file` key (password_file, token_file, secret_file, key_file)",
            )
        })
        .collect()
}

fn walk(v: &toml::Value, at: String, found: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, child) in t {
                let key = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if is_secret_key(k)
                    && !matches!(child, toml::Value::Table(_) | toml::Value::Array(_))
                {
                    found.push(key);
                } else {
                    walk(child, key, found);
                }
            }
        }
        toml::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Every configuration check.
pub fn all(cfg: &Config) -> Vec<Finding> {
    let mut out = vec![Finding::pass(
        NoDefaultPasswords,
        "built-in-credentials",
        "atgw",
        "atgw has no built-in password, token or key; each one is made per installation",
    )];
    out.extend(api(cfg));
    let site = atgw_sdk::component::Site {
        gateway_id: cfg.gateway.id.clone(),
        profiles_dir: cfg.gateway.profiles_dir.clone(),
        timezone: jiff::tz::TimeZone::get(&cfg.gateway.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        fhir: std::sync::Arc::new(
            crate::registry::fhir_ids(&cfg.devices, false).unwrap_or_default(),
        ),
    };
    for a in &cfg.adapters {
        out.extend(a.audit(&site));
    }
    for s in &cfg.sinks {
        out.extend(s.audit(&site));
    }
    out.extend(residents(cfg));
    out.extend(resilience(cfg));
    out
}

use atgw_sdk::audit::{Scope, scope};

/// 5.6: the local API speaks plain HTTP, so it stays on loopback.
fn api(cfg: &Config) -> Vec<Finding> {
    let Some(api) = &cfg.api else {
        return vec![Finding::pass(
            AttackSurface,
            "api-listen",
            "[api]",
            "no local API configured: nothing listens for operators",
        )];
    };
    let console = api.console.as_ref().is_some_and(|c| c.enabled);
    let f = match (scope(&api.listen), &api.tls) {
        (Scope::Loopback, _) => Finding::pass(
            AttackSurface,
            "api-listen",
            "api.listen",
            format!("{} is loopback only", api.listen),
        ),
        (_, Some(t)) => Finding::pass(
            AttackSurface,
            "api-listen",
            "api.listen",
            format!(
                "{} is reachable from the network, over TLS ({})",
                api.listen,
                if t.self_signed && t.cert_file.is_none() {
                    "self-signed certificate: check its fingerprint (logged at start) in each browser once"
                } else {
                    "configured certificate"
                }
            ),
        ),
        (other, None) => Finding::fail(
            AttackSurface,
            "api-listen",
            "api.listen",
            format!(
                "{} is {}: the API speaks plain HTTP, so its bearer token{} and the alerts cross the network in clear",
                api.listen,
                if other == Scope::Everywhere {
                    "every interface"
                } else {
                    "not loopback"
                },
                if console {
                    ", the console's passwords"
                } else {
                    ""
                }
            ),
            "add [api.tls] (cert_file and key_file, or self_signed = true), or set listen = \"127.0.0.1:8780\"",
        ),
    };
    let mut out = vec![f];
    if console {
        out.push(Finding::pass(
            NoDefaultPasswords,
            "console-accounts",
            "api.console",
            "the console has no default account: each person gets their own (`atgw users add`), Argon2id-hashed, locked after repeated wrong passwords",
        ));
    }
    out
}

/// Why a resident id is not pseudonymous, if it looks like it is not. The id itself is never
/// repeated in the report.
fn identifying(id: &str) -> Option<&'static str> {
    let digits: String = id.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() == 10 && digits.chars().all(|c| c.is_ascii_digit()) {
        return Some("looks like an NHS number");
    }
    if id.chars().any(char::is_whitespace) {
        return Some("contains a space, like a person's name");
    }
    if !id.chars().any(|c| c.is_ascii_digit()) {
        return Some("has no number in it, like a person's name");
    }
    None
}

/// 6: resident ids must be pseudonymous; they travel in every event.
fn residents(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut count = 0;
    let devices = cfg.devices.iter().enumerate().filter_map(|(i, d)| {
        d.resident
            .as_deref()
            .map(|r| (format!("device[{i}] `{}` resident", d.id), r))
    });
    let residents = cfg
        .residents
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("resident[{i}].id"), r.id.as_str()));
    for (subject, id) in devices.chain(residents) {
        count += 1;
        if let Some(why) = identifying(id) {
            out.push(Finding::fail(
                PersonalData,
                "resident-id",
                subject,
                format!("the resident id {why}; it travels in every event to every sink"),
                "use a pseudonymous id (e.g. res-0042) and keep the mapping to the person in the care record, not in atgw",
            ));
        }
    }
    if out.is_empty() && count > 0 {
        out.push(Finding::pass(
            PersonalData,
            "resident-id",
            "[[device]] and [[resident]]",
            format!("{count} resident id(s), all pseudonymous in form"),
        ));
    }
    out
}

/// 5.9 (the configuration's part): somewhere for events to go, and supervision of devices.
fn resilience(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    if cfg.sinks.is_empty() {
        out.push(Finding::warn(
            Resilience,
            "sinks",
            "[[sink]]",
            "no sink: events stay in this gateway's journal and reach no one",
            "add an upstream sink (mqtt or webhook) to the care platform",
        ));
    }
    let unrouted = crate::alerts::Policies::unrouted_life_safety(&cfg.policies);
    if cfg.policies.is_empty() {
        out.push(Finding::pass(
            Resilience,
            "life-safety-routing",
            "[[policy]]",
            "no [[policy]]: every event, alarms included, goes to every sink",
        ));
    } else if unrouted.is_empty() {
        out.push(Finding::pass(
            Resilience,
            "life-safety-routing",
            "[[policy]]",
            "every life-safety kind (smoke, co, gas, fall, pendant_press, assistance_call, medical) is routed by a policy",
        ));
    } else {
        let kinds: Vec<&str> = unrouted.iter().map(|k| k.as_str()).collect();
        out.push(Finding::fail(
            Resilience,
            "life-safety-routing",
            "[[policy]]",
            format!(
                "no policy routes {} at high priority for every device: such an alarm reaches only the fail-safe route, with no escalation",
                kinds.join(", ")
            ),
            "add a [[policy]] matching these kinds (e.g. match = { priority = [\"high\"] }) with notify and escalate tiers",
        ));
    }
    match crate::alerts::Policies::unregistered_destination(&cfg.routes, &cfg.alerts) {
        None => {}
        Some(Ok(route)) => out.push(Finding::pass(
            Resilience,
            "unregistered-routing",
            "[alerts] unregistered_route",
            format!("alerts from unregistered devices (location unknown) also go to {route}"),
        )),
        Some(Err(to)) => out.push(Finding::warn(
            Resilience,
            "unregistered-routing",
            "[alerts] unregistered_route",
            format!(
                "not set: alerts from unregistered devices (location unknown) {to}, not to whoever commissions devices"
            ),
            "set [alerts] unregistered_route to the commissioning or supervisor route, so a device that was never registered is found",
        )),
    }
    let silent: Vec<&str> = cfg
        .devices
        .iter()
        .filter(|d| d.check_in.is_none())
        .map(|d| d.id.as_str())
        .collect();
    if !cfg.devices.is_empty() {
        out.push(if silent.is_empty() {
            Finding::pass(
                Resilience,
                "supervision",
                "[[device]]",
                format!("all {} registered devices are supervised (check_in)", cfg.devices.len()),
            )
        } else {
            Finding::warn(
                Resilience,
                "supervision",
                "[[device]]",
                format!(
                    "{} of {} registered devices have no check_in, so a dead battery goes unnoticed: {}",
                    silent.len(),
                    cfg.devices.len(),
                    silent.join(", ")
                ),
                "set check_in on each device to its heartbeat interval with margin (e.g. \"25h\")",
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_names_are_recognised_and_file_keys_are_not() {
        for k in [
            "password",
            "token",
            "secret",
            "key",
            "x-api-key",
            "mqtt_password",
            "Authorization",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "password_file",
            "token_file",
            "key_file",
            "key_format",
            "topic_prefix",
            "accept_acks",
            "account",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn inline_secrets_are_named_by_their_key_path() {
        let f = inline_secrets(
            "[[adapter]]\nname = \"a\"\npassword = \"hunter2\"\n[[sink]]\nheaders = { \"x-api-key\" = \"k\" }\n",
        );
        let keys: Vec<&str> = f.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(keys, ["adapter[0].password", "sink[0].headers.x-api-key"]);
        assert!(f.iter().all(|f| !f.found.contains("hunter2")));
    }

    #[test]
    fn listen_scopes_tell_loopback_from_everywhere_from_one_address() {
        assert_eq!(scope("127.0.0.1:8780"), Scope::Loopback);
        assert_eq!(scope("[::1]:8780"), Scope::Loopback);
        assert_eq!(scope("localhost:8780"), Scope::Loopback);
        assert_eq!(scope("0.0.0.0:7777"), Scope::Everywhere);
        assert_eq!(scope("[::]:7777"), Scope::Everywhere);
        assert!(matches!(scope("192.168.10.2:7777"), Scope::Address(_)));
    }

    #[test]
    fn nhs_numbers_and_names_are_not_pseudonymous_resident_ids() {
        assert!(identifying("943 476 5919").is_some());
        assert!(identifying("9434765919").is_some());
        assert!(identifying("Mary Smith").is_some());
        assert!(identifying("msmith").is_some());
        assert!(identifying("res-0042").is_none());
    }
}
