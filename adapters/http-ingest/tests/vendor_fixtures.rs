//! Every vendor webhook fixture (`tests/fixtures/http/*.jsonl`), run in order through its
//! shipped profile as the adapter runs it (the request path as topic), yields exactly its
//! expected event, or nothing where it expects nothing. The same fixtures go over real HTTP in
//! the workspace's `tests/http_ingest.rs`.

use std::collections::HashMap;
use std::path::Path;

use atgw_profile::{Evaluation, Input, ProfileSet};
use atgw_sdk::event::rfc3339_ms;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/http");
const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/profiles");

#[test]
fn every_vendor_fixture_yields_exactly_its_expectation() {
    let tz = jiff::tz::TimeZone::UTC;
    let mut checked = 0;
    for (file, profile) in [
        ("netlia.jsonl", "netlia"),
        ("purelife-vayyar.jsonl", "purelife-vayyar"),
        ("novee.jsonl", "novee"),
        ("standard-webhooks.jsonl", "webhook-alarm"),
    ] {
        let set = ProfileSet::load(Path::new(PROFILES), &[profile.to_owned()])
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        let mut state: HashMap<String, String> = HashMap::new();
        let text = std::fs::read_to_string(Path::new(FIXTURES).join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let case: Value = serde_json::from_str(line).unwrap();
            if case.get("_about").is_some() {
                continue;
            }
            let at = format!("{file}:{}", n + 1);
            let body = serde_json::to_vec(&case["payload"]).unwrap();
            let path = case["path"].as_str().unwrap();
            let input = Input {
                protocol: "http",
                topic: path.trim_start_matches('/'),
                payload: &body,
                received: "2026-12-07T12:00:00Z".parse().unwrap(),
                adapter: "clouds",
                timezone: &tz,
                request: None,
            };
            let events = match set.evaluate(&input, &state) {
                Evaluation::Mapped {
                    events,
                    state: updates,
                    ..
                } => {
                    for u in updates {
                        match u.value {
                            Some(v) => state.insert(u.key, v),
                            None => state.remove(&u.key),
                        };
                    }
                    events
                }
                Evaluation::Ignored { .. } => Vec::new(),
                Evaluation::Rejected { reason, detail } => panic!("{at}: {reason}: {detail}"),
            };
            let Value::Object(expect) = &case["expect"] else {
                assert!(events.is_empty(), "{at}: expected nothing, got {events:#?}");
                checked += 1;
                continue;
            };
            assert_eq!(events.len(), 1, "{at}: {events:#?}");
            let (e, d) = (&events[0], &events[0].data);
            assert_eq!(d.kind.as_str(), expect["kind"], "{at}: kind");
            assert_eq!(
                d.device.id,
                expect["device"].as_str().unwrap(),
                "{at}: device"
            );
            for (key, got) in [
                ("phase", Some(d.phase.as_str())),
                ("priority", Some(d.priority.as_str())),
                ("confidence", d.confidence.map(|c| c.as_str())),
            ] {
                if let Some(want) = expect.get(key) {
                    assert_eq!(got, want.as_str(), "{at}: {key}");
                }
            }
            if let Some(want) = expect.get("time") {
                let got = e.time.map(|t| rfc3339_ms::format(&t));
                assert_eq!(got.as_deref(), want.as_str(), "{at}: time");
            }
            assert_eq!(
                d.test,
                expect.get("test").and_then(Value::as_bool).unwrap_or(false),
                "{at}: test"
            );
            if let Some(Value::Object(obs)) = expect.get("observations") {
                for (name, want) in obs {
                    let o = d.observations.iter().find(|o| &o.name == name);
                    assert_eq!(o.and_then(|o| o.value), want.as_f64(), "{at}: {name}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} cases");
}
