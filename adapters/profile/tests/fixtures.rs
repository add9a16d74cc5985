//! Every device fixture, fed in order through the shipped profiles in the order an integrator
//! configures them (device-specific first, then the generic zigbee2mqtt profile), yields exactly
//! its expected event, and nothing where it expects nothing.

use std::collections::HashMap;
use std::path::Path;

use atgw_profile::{Evaluation, Input, ProfileSet};
use atgw_sdk::event::rfc3339_ms;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/devices");
const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/profiles");

/// The recommended order: device-specific profiles, then the generic one.
const ORDER: &[&str] = &[
    "tuya-mir-he200-fall-radar",
    "heiman-hs2fd-fall",
    "ble-hub-oximeter",
    "zigbee2mqtt",
];

fn shipped() -> ProfileSet {
    let names: Vec<String> = ORDER.iter().map(|s| s.to_string()).collect();
    ProfileSet::load(Path::new(PROFILES), &names).expect("shipped profiles load")
}

fn payload_bytes(payload: &Value) -> Vec<u8> {
    match payload {
        // A JSON string in the fixture is a bare text payload on the wire (`offline`).
        Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).unwrap(),
    }
}

#[test]
fn every_device_fixture_yields_exactly_its_expectation() {
    let set = shipped();
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(1));
    let mut files: Vec<_> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter(|p| !p.ends_with("standard-webhooks-vector.jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the device fixtures, found {files:?}"
    );

    let mut checked = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let mut state: HashMap<String, String> = HashMap::new();
        for (n, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let case: Value = serde_json::from_str(line).unwrap();
            if case.get("_about").is_some() {
                continue;
            }
            let at = format!("{name}:{}", n + 1);
            let topic = case["topic"].as_str().unwrap();
            let bytes = payload_bytes(&case["payload"]);
            let input = Input {
                protocol: "mqtt",
                topic,
                payload: &bytes,
                received: "2026-04-17T15:33:23Z".parse().unwrap(),
                adapter: "zigbee2mqtt",
                timezone: &tz,
                request: None,
            };
            let outcome = set.evaluate(&input, &state);
            let events = match &outcome {
                Evaluation::Mapped {
                    events,
                    state: updates,
                    ..
                } => {
                    for u in updates {
                        match &u.value {
                            Some(v) => state.insert(u.key.clone(), v.clone()),
                            None => state.remove(&u.key),
                        };
                    }
                    events.clone()
                }
                Evaluation::Ignored { .. } => Vec::new(),
                Evaluation::Rejected { reason, detail } => {
                    panic!("{at}: rejected {reason}: {detail}")
                }
            };
            match &case["expect"] {
                Value::Object(expect) => {
                    assert_eq!(events.len(), 1, "{at}: expected one event, got {events:#?}");
                    let e = &events[0];
                    let d = &e.data;
                    assert_eq!(d.kind.as_str(), expect["kind"], "{at}: kind");
                    if let Some(phase) = expect.get("phase") {
                        assert_eq!(d.phase.as_str(), phase, "{at}: phase");
                    }
                    if let Some(priority) = expect.get("priority") {
                        assert_eq!(d.priority.as_str(), priority, "{at}: priority");
                    }
                    if let Some(confidence) = expect.get("confidence") {
                        assert_eq!(
                            d.confidence.map(|c| c.as_str()),
                            confidence.as_str(),
                            "{at}: confidence"
                        );
                    }
                    if let Some(time) = expect.get("time") {
                        assert_eq!(
                            e.time.map(|t| rfc3339_ms::format(&t)).as_deref(),
                            time.as_str(),
                            "{at}: time"
                        );
                    }
                    if let Some(percent) = expect.get("battery_percent") {
                        let got = d.battery.as_ref().and_then(|b| b.percent);
                        assert_eq!(got, percent.as_f64(), "{at}: battery percent");
                    }
                    if let Some(lqi) = expect.get("lqi") {
                        assert_eq!(
                            d.signal.as_ref().and_then(|s| s.lqi),
                            lqi.as_f64(),
                            "{at}: lqi"
                        );
                    }
                    if let Some(Value::Object(observations)) = expect.get("observations") {
                        for (obs_name, want) in observations {
                            let o = d
                                .observations
                                .iter()
                                .find(|o| &o.name == obs_name)
                                .unwrap_or_else(|| panic!("{at}: no observation {obs_name}"));
                            assert_eq!(o.value, want[0].as_f64(), "{at}: {obs_name} value");
                            assert_eq!(
                                o.unit.as_deref(),
                                want[1].as_str(),
                                "{at}: {obs_name} unit"
                            );
                            let code = o.code.as_ref().unwrap();
                            assert_eq!(code.system, "http://loinc.org");
                            assert_eq!(
                                code.code,
                                want[2].as_str().unwrap(),
                                "{at}: {obs_name} loinc"
                            );
                        }
                    }
                    let raw = d.raw.as_ref().expect("raw");
                    assert_eq!(raw.protocol, "mqtt");
                    assert_eq!(raw.topic.as_deref(), Some(topic));
                    assert_eq!(d.device.adapter, "zigbee2mqtt");
                    assert!(!d.test, "{at}: fixture events are not tests");
                }
                Value::Null | Value::String(_) => {
                    assert!(events.is_empty(), "{at}: expected nothing, got {events:#?}");
                }
                other => panic!("{at}: unexpected expect {other}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fixture messages checked");
}
