//! The device registry (`[[device]]`): which resident and room a device belongs to. Adapters
//! report what they know from the wire (`registry_keys`); the registry turns that into the
//! gateway's view. Lookups are hash lookups per distinct key shape, so 10,000 devices cost the
//! same per event as ten.
//!
//! Keys compare exactly, which is a numeric comparison where the protocol's keys are numbers:
//! each adapter crate owns one canonical form for its keys, reports them in it, and the config
//! loader puts every `match` value into the same form (`AdapterConfig::canonical_match`). For
//! DC-09, `zone = "7"` and a panel's `Nri1MA0007` are both `007` (`atgw_sia_dc09::keys`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use atgw_sdk::event::{Location, Resident};
use serde::Deserialize;

/// `[[device]]`: the registry entry saying who and where a device is.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The id events carry for this device (`device.id`).
    pub id: String,
    /// Name of the adapter that hears it.
    pub adapter: String,
    /// Keys the adapter reports for it (`device` for MQTT profiles; `account`, `zone` for DC-09).
    /// After loading, each value is in its adapter's canonical form
    /// ([`crate::components::AdapterConfig::canonical_match`]): `zone = "7"` reads back as `"007"`.
    #[serde(rename = "match")]
    pub match_keys: BTreeMap<String, String>,
    /// Pseudonymous resident id (never a name or NHS number).
    #[serde(default)]
    pub resident: Option<String>,
    #[serde(default)]
    pub location: DeviceLocation,
    /// Supervision interval (`25h`); absent means not supervised.
    #[serde(default, with = "humantime_serde")]
    pub check_in: Option<Duration>,
    /// Replaces `[vitals] not_reading_after` for this device (e.g. `"20m"` for a spot-check
    /// oximeter, `"0s"` for none).
    #[serde(default, with = "humantime_serde")]
    pub not_reading_after: Option<Duration>,
    /// The resident's FHIR Patient (`Patient/<id>`): the `subject` a FHIR sink gives this
    /// resident's Observations and Communications. Needs `resident`; every device of one
    /// resident that names one names the same.
    #[serde(default)]
    pub fhir_patient: Option<String>,
    /// This device's FHIR Device (`Device/<id>`): `Observation.device` of its readings.
    #[serde(default)]
    pub fhir_device: Option<String>,
}

/// Where a registered device is installed.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceLocation {
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

/// The FHIR ids `[[device]]` entries name, checked: each `Type/id` (id per FHIR R4:
/// 1-64 of `A-Z a-z 0-9 - .`), a Patient only with a resident, one Patient per resident, and,
/// when the site sends to a FHIR sink (`fhir_sink`), a Patient for every resident a device
/// names: FHIR requires an Observation's subject, and a resident's alerts without it would
/// reach the care record as nobody's. Errors are (key, problem), like the config's.
pub fn fhir_ids(
    devices: &[DeviceConfig],
    fhir_sink: bool,
) -> Result<atgw_sdk::fhir::FhirIds, (String, String)> {
    let mut ids = atgw_sdk::fhir::FhirIds::default();
    for (i, d) in devices.iter().enumerate() {
        let key = |k: &str| format!("device[{i}].{k}");
        if let Some(p) = &d.fhir_patient {
            check_reference(p, "Patient").map_err(|e| (key("fhir_patient"), e))?;
            let Some(resident) = &d.resident else {
                return Err((
                    key("fhir_patient"),
                    "needs `resident`: the Patient is the resident's, not the device's".into(),
                ));
            };
            if let Some(other) = ids.patients.insert(resident.clone(), p.clone())
                && other != *p
            {
                return Err((
                    key("fhir_patient"),
                    format!(
                        "resident `{resident}` is `{other}` on another device and `{p}` here; one resident is one Patient"
                    ),
                ));
            }
        }
        if let Some(dev) = &d.fhir_device {
            check_reference(dev, "Device").map_err(|e| (key("fhir_device"), e))?;
            ids.devices.insert(d.id.clone(), dev.clone());
        }
    }
    if fhir_sink {
        for (i, d) in devices.iter().enumerate() {
            if let Some(r) = &d.resident
                && !ids.patients.contains_key(r)
            {
                return Err((
                    format!("device[{i}].fhir_patient"),
                    format!(
                        "resident `{r}` (device `{}`) has no FHIR Patient, and a FHIR sink is configured: set `fhir_patient = \"Patient/<id>\"` on one of the resident's devices",
                        d.id
                    ),
                ));
            }
        }
    }
    Ok(ids)
}

/// `Type/id` with the given type and a FHIR R4 id.
fn check_reference(r: &str, ty: &str) -> Result<(), String> {
    match r.split_once('/') {
        Some((t, id))
            if t == ty
                && (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{r}` is not `{ty}/<id>` (a FHIR id is 1-64 of A-Z a-z 0-9 - .)"
        )),
    }
}

/// What the registry knows about one device.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: String,
    pub resident: Option<String>,
    pub location: Location,
    pub check_in: Option<std::time::Duration>,
    /// Values of the `match` keys this entry was registered by: a device component among them
    /// (`zone = "003"`) is placed by the entry itself; any other is named in messages.
    pub match_values: Vec<String>,
}

impl Entry {
    pub fn resident(&self) -> Option<Resident> {
        self.resident.as_ref().map(|id| Resident { id: id.clone() })
    }
}

/// Index from (adapter, the values of a fixed set of keys) to a device.
#[derive(Debug, Default)]
pub struct Registry {
    site: String,
    /// Per adapter: the distinct key-name sets used by its devices, most specific first.
    shapes: HashMap<String, Vec<Vec<String>>>,
    entries: HashMap<(String, Vec<(String, String)>), Entry>,
}

impl Registry {
    pub fn new(site: &str, devices: &[DeviceConfig]) -> Registry {
        let mut reg = Registry {
            site: site.to_owned(),
            ..Registry::default()
        };
        for d in devices {
            let names: Vec<String> = d.match_keys.keys().cloned().collect();
            let shapes = reg.shapes.entry(d.adapter.clone()).or_default();
            if !shapes.contains(&names) {
                shapes.push(names);
                shapes.sort_by_key(|s| std::cmp::Reverse(s.len()));
            }
            let key: Vec<(String, String)> = d
                .match_keys
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            reg.entries.insert(
                (d.adapter.clone(), key),
                Entry {
                    id: d.id.clone(),
                    resident: d.resident.clone(),
                    location: Location {
                        site: site.to_owned(),
                        area: d.location.area.clone(),
                        room: d.location.room.clone(),
                        zone: d.location.zone.clone(),
                    },
                    check_in: d.check_in,
                    match_values: d.match_keys.values().cloned().collect(),
                },
            );
        }
        reg
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    /// The most specific registered device whose `match` keys all equal the reported ones.
    pub fn resolve(&self, adapter: &str, keys: &BTreeMap<String, String>) -> Option<&Entry> {
        let shapes = self.shapes.get(adapter)?;
        for shape in shapes {
            let mut probe = Vec::with_capacity(shape.len());
            for name in shape {
                match keys.get(name) {
                    Some(v) => probe.push((name.clone(), v.clone())),
                    None => break,
                }
            }
            if probe.len() != shape.len() {
                continue;
            }
            if let Some(e) = self.entries.get(&(adapter.to_owned(), probe)) {
                return Some(e);
            }
        }
        None
    }

    /// The adapter and `match` keys a registered device id was registered with.
    pub fn find(&self, id: &str) -> Option<(String, BTreeMap<String, String>)> {
        self.entries
            .iter()
            .find(|(_, e)| e.id == id)
            .map(|((adapter, keys), _)| (adapter.clone(), keys.iter().cloned().collect()))
    }

    /// Devices with a `check_in` interval: (id, adapter, match keys, interval).
    pub fn supervised(
        &self,
    ) -> Vec<(
        String,
        String,
        BTreeMap<String, String>,
        std::time::Duration,
    )> {
        self.entries
            .iter()
            .filter_map(|((adapter, keys), e)| {
                e.check_in.map(|every| {
                    (
                        e.id.clone(),
                        adapter.clone(),
                        keys.iter().cloned().collect(),
                        every,
                    )
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str, keys: &[(&str, &str)], room: &str) -> DeviceConfig {
        DeviceConfig {
            id: id.into(),
            adapter: "alarms".into(),
            match_keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            resident: Some("res-1".into()),
            location: DeviceLocation {
                area: Some("east".into()),
                room: Some(room.into()),
                zone: None,
            },
            check_in: None,
            not_reading_after: None,
            fhir_patient: None,
            fhir_device: None,
        }
    }

    #[test]
    fn fhir_ids_are_checked_and_mapped() {
        let mut a = dev("ox-1", &[("device", "a")], "12");
        a.fhir_patient = Some("Patient/p-1".into());
        a.fhir_device = Some("Device/ox.1".into());
        let b = dev("pendant-1", &[("device", "b")], "12");
        let ids = fhir_ids(&[a.clone(), b.clone()], true).unwrap();
        assert_eq!(ids.patient("res-1"), Some("Patient/p-1"));
        assert_eq!(ids.device("ox-1"), Some("Device/ox.1"));
        assert_eq!(ids.device("pendant-1"), None);

        let mut c = b.clone();
        c.fhir_patient = Some("Patient/p-2".into());
        let e = fhir_ids(&[a.clone(), c], false).unwrap_err();
        assert_eq!(e.0, "device[1].fhir_patient");
        assert!(e.1.contains("one resident is one Patient"), "{}", e.1);

        for bad in [
            "p-1",
            "Device/p-1",
            "Patient/",
            "Patient/a b",
            "Patient/a/b",
        ] {
            let mut x = a.clone();
            x.fhir_patient = Some(bad.into());
            assert_eq!(
                fhir_ids(&[x], false).unwrap_err().0,
                "device[0].fhir_patient",
                "{bad}"
            );
        }
        let mut x = a.clone();
        x.fhir_device = Some("Patient/p-1".into());
        assert_eq!(
            fhir_ids(&[x], false).unwrap_err().0,
            "device[0].fhir_device"
        );
        let mut x = a.clone();
        x.resident = None;
        assert!(
            fhir_ids(&[x], false)
                .unwrap_err()
                .1
                .contains("needs `resident`")
        );
    }

    #[test]
    fn with_a_fhir_sink_every_resident_needs_a_patient() {
        let mut b = dev("pendant-1", &[("device", "b")], "12");
        assert!(fhir_ids(std::slice::from_ref(&b), false).is_ok());
        let e = fhir_ids(std::slice::from_ref(&b), true).unwrap_err();
        assert_eq!(e.0, "device[0].fhir_patient");
        assert!(e.1.contains("res-1"), "{}", e.1);
        b.resident = None;
        assert!(
            fhir_ids(&[b], true).is_ok(),
            "a device of nobody needs no Patient"
        );
    }

    fn keys(k: &[(&str, &str)]) -> BTreeMap<String, String> {
        k.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The whole path: an integrator's `zone = "7"` through config loading, and the keys the
    /// DC-09 adapter reports for a zone however the panel wrote it.
    #[test]
    fn a_configured_dc09_zone_matches_the_zone_however_the_panel_writes_it() {
        let text = r#"
[gateway]
id = "gw-1"
site = "oakview"
data_dir = "state"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:7777"

[[device]]
id = "pendant-7"
adapter = "alarms"
match = { account = "1234", zone = "7" }

[[device]]
id = "panel"
adapter = "alarms"
match = { account = "1234" }
"#;
        let cfg = crate::config::parse_with_env(
            text,
            std::path::Path::new("/x/atgw.toml"),
            std::collections::HashMap::new(),
        )
        .unwrap();
        let reg = Registry::new("oakview", &cfg.devices);
        for z in ["7", "07", "007", "0007"] {
            let reported = atgw_sia_dc09::keys::reported("1234", Some(z));
            let e = reg.resolve("alarms", &reported).map(|e| e.id.as_str());
            assert_eq!(e, Some("pendant-7"), "zone written {z}");
        }
        let other = atgw_sia_dc09::keys::reported("1234", Some("70"));
        assert_eq!(
            reg.resolve("alarms", &other).map(|e| e.id.as_str()),
            Some("panel")
        );
        let padded_account = atgw_sia_dc09::keys::reported("001234", Some("7"));
        assert!(reg.resolve("alarms", &padded_account).is_none());
    }

    #[test]
    fn the_most_specific_match_wins() {
        let reg = Registry::new(
            "oakview",
            &[
                dev("panel", &[("account", "1234")], "hall"),
                dev("pendant", &[("account", "1234"), ("zone", "003")], "12"),
            ],
        );
        let e = reg
            .resolve("alarms", &keys(&[("account", "1234"), ("zone", "003")]))
            .unwrap();
        assert_eq!(e.id, "pendant");
        let e = reg
            .resolve("alarms", &keys(&[("account", "1234"), ("zone", "009")]))
            .unwrap();
        assert_eq!(e.id, "panel");
        assert!(
            reg.resolve("alarms", &keys(&[("account", "9999")]))
                .is_none()
        );
        assert!(
            reg.resolve("other", &keys(&[("account", "1234")]))
                .is_none()
        );
    }
}
