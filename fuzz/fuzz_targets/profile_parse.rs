//! Arbitrary text as a profile file: parsing and checking it answers a profile or an error,
//! never a panic; a profile that loads then maps a few typical messages without panicking.
#![no_main]

use std::collections::HashMap;

use atgw_profile::{Input, Profile, ProfileSet};
use libfuzzer_sys::fuzz_target;

/// Messages that reach each shipped profile's mapping code (and most hand-written ones).
const MESSAGES: &[(&str, &[u8])] = &[
    ("zigbee2mqtt/0xa4c13899607febd1", br#"{"action":"emergency","battery":100,"linkquality":18,"last_seen":"2026-04-17T23:33:22+08:00"}"#),
    ("zigbee2mqtt/0xa4c13899607febd1", br#"{"water_leak":true,"battery_low":false,"fall_down_status":"maybe_fall","state":"ON"}"#),
    ("zigbee2mqtt/0xa4c13899607febd1/availability", b"offline"),
    ("zigbee2mqtt/bridge/state", br#"{"state":"online"}"#),
    ("dusun_pub", br#"{"type":"reportAttribute","mac":"DC:DA:0C:5A:80:44","data":{"attribute":"Oximeter JUMPER","value":{"device_list":[{"scan_time":1836946958,"ble_addr":"ff23041920b4","pulse":72,"spo2":96,"pi":43}]}}}"#),
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(profile) = Profile::parse("fuzz", &text) else {
        return;
    };
    let set = ProfileSet::from_profiles(vec![profile]);
    let tz = jiff::tz::TimeZone::UTC;
    let mut state: HashMap<String, String> = HashMap::new();
    for (topic, payload) in MESSAGES {
        let input = Input {
            protocol: "mqtt",
            topic,
            payload,
            received: jiff::Timestamp::UNIX_EPOCH,
            adapter: "fuzz",
            timezone: &tz,
            request: None,
        };
        if let atgw_profile::Evaluation::Mapped { state: updates, .. } = set.evaluate(&input, &state) {
            for u in updates {
                match u.value {
                    Some(v) => state.insert(u.key, v),
                    None => state.remove(&u.key),
                };
            }
        }
    }
});
