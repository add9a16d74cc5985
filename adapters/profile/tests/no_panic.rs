//! Whatever arrives on the wire, and whatever an integrator writes in a profile, the engine
//! answers with an outcome or an error: it never panics.

use std::collections::HashMap;
use std::path::Path;

use atgw_profile::{Input, Profile, ProfileSet};
use proptest::prelude::*;
use serde_json::{Map, Value};

const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/profiles");
const ORDER: &[&str] = &[
    "tuya-mir-he200-fall-radar",
    "heiman-hs2fd-fall",
    "ble-hub-oximeter",
    "zigbee2mqtt",
];

fn shipped() -> ProfileSet {
    let names: Vec<String> = ORDER.iter().map(|s| s.to_string()).collect();
    ProfileSet::load(Path::new(PROFILES), &names).unwrap()
}

/// Keys the shipped profiles read, so generated payloads reach the mapping code, not just the
/// "no key" paths.
const KEYS: &[&str] = &[
    "action",
    "battery",
    "battery_low",
    "linkquality",
    "last_seen",
    "water_leak",
    "sos",
    "smoke",
    "tamper",
    "test",
    "state",
    "fall_down_status",
    "fall_status",
    "voltage",
    "type",
    "data",
    "attribute",
    "value",
    "device_list",
    "ble_addr",
    "spo2",
    "pulse",
    "pi",
    "scan_time",
    "mac",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("emergency".to_owned()),
            Just("offline".to_owned()),
            Just("maybe_fall".to_owned()),
            Just("reportAttribute".to_owned()),
            Just("Oximeter JUMPER".to_owned()),
            Just("2026-04-17T23:33:22+08:00".to_owned()),
            Just("".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kvs| {
                Value::Object(
                    kvs.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn topic() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("zigbee2mqtt".to_owned()),
        Just("bridge".to_owned()),
        Just("state".to_owned()),
        Just("availability".to_owned()),
        Just("action".to_owned()),
        Just("set".to_owned()),
        Just("dusun_pub".to_owned()),
        Just("".to_owned()),
        "[^/]{0,8}",
    ];
    prop::collection::vec(segment, 0..6).prop_map(|s| s.join("/"))
}

fn run(set: &ProfileSet, topic: &str, payload: &[u8], state: &HashMap<String, String>) {
    let tz = jiff::tz::TimeZone::UTC;
    let input = Input {
        protocol: "mqtt",
        topic,
        payload,
        received: jiff::Timestamp::UNIX_EPOCH,
        adapter: "a",
        timezone: &tz,
        request: None,
    };
    let _ = set.evaluate(&input, state);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn evaluate_never_panics_on_arbitrary_bytes(topic in topic(), payload in prop::collection::vec(any::<u8>(), 0..200)) {
        run(&shipped(), &topic, &payload, &HashMap::new());
    }

    #[test]
    fn evaluate_never_panics_on_arbitrary_json(topic in topic(), payload in json_value(), stored in prop::collection::hash_map(".{0,10}", ".{0,10}", 0..4)) {
        let set = shipped();
        let bytes = serde_json::to_vec(&payload).unwrap();
        run(&set, &topic, &bytes, &stored);
        // The same payload on each shipped profile's own topics, to reach its mapping code.
        for t in ["zigbee2mqtt/0xabc", "zigbee2mqtt/0xabc/availability", "zigbee2mqtt/bridge/state", "dusun_pub"] {
            run(&set, t, &bytes, &stored);
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = Profile::parse("fuzz", &text);
    }

    #[test]
    fn parse_never_panics_on_mangled_shipped_profiles(which in 0..ORDER.len(), at in any::<prop::sample::Index>(), cut in 0usize..40, insert in "[\\[\\]{}\"=#.a-z0-9 \n^$|%]{0,8}") {
        let text = std::fs::read_to_string(Path::new(PROFILES).join(format!("{}.toml", ORDER[which]))).unwrap();
        let chars: Vec<char> = text.chars().collect();
        let start = at.index(chars.len());
        let end = (start + cut).min(chars.len());
        let mangled: String = chars[..start].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect();
        if let Ok(profile) = Profile::parse("fuzz", &mangled) {
            let set = ProfileSet::from_profiles(vec![profile]);
            run(&set, "zigbee2mqtt/0xabc", br#"{"action":"emergency","water_leak":true,"battery":"80.00"}"#, &HashMap::new());
        }
    }
}
