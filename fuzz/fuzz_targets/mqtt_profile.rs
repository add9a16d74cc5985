//! MQTT messages through the shipped profiles, as the MQTT adapter maps them: a short sequence
//! of arbitrary topics and payloads (so edge-detection state carries from one to the next),
//! each outcome's state applied, each event sealed into a CloudEvent and serialised as the
//! journal stores it. Never a panic, whatever the bytes.
//!
//! Input: messages separated by `\0`, each `topic\tpayload` (no tab: all topic, empty payload).
//! The topic is read as UTF-8 with replacement, as rumqttc only hands over valid UTF-8 topics.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use atgw::registry::Registry;
use atgw_profile::{Input, Evaluation, Profile, ProfileSet};
use libfuzzer_sys::fuzz_target;

/// The shipped profiles (embedded in atgw for the demo), in the order an integrator lists them:
/// device-specific first, the generic one last.
const ORDER: [&str; 4] = [
    "tuya-mir-he200-fall-radar",
    "heiman-hs2fd-fall",
    "ble-hub-oximeter",
    "zigbee2mqtt",
];

/// At most this many messages per input: longer sequences add time, not new paths.
const MAX_MESSAGES: usize = 8;

struct Fixture {
    profiles: ProfileSet,
    registry: Registry,
    timezone: jiff::tz::TimeZone,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let shipped = atgw::tools::demo::script::SHIPPED_PROFILES;
        let profiles = ORDER
            .iter()
            .map(|name| {
                shipped
                    .iter()
                    .find(|(n, _)| n == name)
                    .expect("a shipped profile")
            })
            .map(|(name, text)| Profile::parse(name, text).expect("shipped profile parses"))
            .collect();
        // One registered device, so sealing takes the registry path as well as the stranger's.
        let pendant = atgw::config::DeviceConfig {
            id: "pendant-12".into(),
            adapter: "zigbee".into(),
            match_keys: [("device".to_owned(), "0xa4c13899607febd1".to_owned())].into(),
            resident: Some("res-0042".into()),
            location: atgw::config::DeviceLocation {
                area: Some("east".into()),
                room: Some("12".into()),
                zone: None,
            },
            check_in: None,
            not_reading_after: None,
            fhir_patient: None,
            fhir_device: None,
        };
        Fixture {
            profiles: ProfileSet::from_profiles(profiles),
            registry: Registry::new("oakview", &[pendant]),
            timezone: jiff::tz::TimeZone::get("Europe/London").unwrap_or(jiff::tz::TimeZone::UTC),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let received =
        jiff::Timestamp::from_second(1_795_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut state: HashMap<String, String> = HashMap::new();
    let mut seq = 0u64;
    for message in data.split(|&b| b == 0).take(MAX_MESSAGES) {
        let (topic, payload) = match message.iter().position(|&b| b == b'\t') {
            Some(i) => (&message[..i], &message[i + 1..]),
            None => (message, &[][..]),
        };
        let topic = String::from_utf8_lossy(topic);
        let input = Input {
            protocol: "mqtt",
            topic: &topic,
            payload,
            received,
            adapter: "zigbee",
            timezone: &f.timezone,
            request: None,
        };
        if let Evaluation::Mapped {
            events,
            state: updates,
            ..
        } = f.profiles.evaluate(&input, &state)
        {
            for u in updates {
                match u.value {
                    Some(v) => state.insert(u.key, v),
                    None => state.remove(&u.key),
                };
            }
            for draft in events {
                seq += 1;
                let event =
                    atgw::envelope::seal(&f.registry, "gw-fuzz", "zigbee", draft, received, seq);
                let json = serde_json::to_string(&event).expect("a sealed event serialises");
                assert!(!json.is_empty());
            }
        }
    }
});
