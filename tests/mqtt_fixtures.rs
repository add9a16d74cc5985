//! Every device fixture sequence, published to a real broker, reaches the upstream broker as
//! exactly its expected events (and nothing where it expects nothing), each valid against
//! schema v1.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// (file, expectations per message: Some(expected object) or None for "no event").
fn fixture(name: &str) -> Vec<(String, Value, Option<Value>)> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/devices").join(name)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("_about").is_none())
        .map(|v| {
            let topic = v["topic"].as_str().unwrap().to_owned();
            let expect = match &v["expect"] {
                Value::Object(o) if o.contains_key("kind") => Some(Value::Object(o.clone())),
                _ => None,
            };
            (topic, v["payload"].clone(), expect)
        })
        .collect()
}

fn payload_bytes(p: &Value) -> Vec<u8> {
    match p {
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap(),
    }
}

fn check(expected: &Value, got: &Value) {
    let d = &got["data"];
    assert_eq!(d["kind"], expected["kind"], "kind of {got:#}");
    if let Some(p) = expected.get("phase") {
        assert_eq!(&d["phase"], p, "phase of {got:#}");
    }
    if let Some(p) = expected.get("priority") {
        assert_eq!(&d["priority"], p, "priority of {got:#}");
    }
    if let Some(c) = expected.get("confidence") {
        assert_eq!(&d["confidence"], c, "confidence of {got:#}");
    }
    if let Some(t) = expected.get("time") {
        assert_eq!(&got["time"], t, "time of {got:#}");
    }
    if let Some(b) = expected.get("battery_percent") {
        match b {
            Value::Null => assert!(
                d["battery"].get("percent").is_none_or(|v| v.is_null()),
                "battery of {got:#}"
            ),
            n => assert_eq!(
                d["battery"]["percent"].as_f64(),
                n.as_f64(),
                "battery of {got:#}"
            ),
        }
    }
    if let Some(l) = expected.get("lqi") {
        assert_eq!(d["signal"]["lqi"].as_f64(), l.as_f64(), "lqi of {got:#}");
    }
    if let Some(Value::Object(obs)) = expected.get("observations") {
        for (name, spec) in obs {
            let o = d["observations"]
                .as_array()
                .and_then(|a| a.iter().find(|o| o["name"] == name.as_str()))
                .unwrap_or_else(|| panic!("observation {name} missing in {got:#}"));
            assert_eq!(o["value"].as_f64(), spec[0].as_f64(), "{name} value");
            assert_eq!(o["unit"], spec[1], "{name} unit");
            assert_eq!(o["code"]["code"], spec[2], "{name} LOINC");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_sequence_yields_exactly_its_expected_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "fixture-devices").await;
    let schema = schema();

    let files = [
        "z2m-tuya-sos-button.jsonl",
        "z2m-ts0215a-sos-action-topic.jsonl",
        "z2m-water-leak.jsonl",
        "z2m-aqara-water-leak-state.jsonl",
        "z2m-tuya-mir-he200-fall.jsonl",
        "z2m-heiman-hs2fd-fall.jsonl",
        "z2m-availability.jsonl",
        "ble-hub-oximeter.jsonl",
    ];
    let mut seen_before = 0usize;
    for (n, file) in files.iter().enumerate() {
        let msgs = fixture(file);
        for (topic, payload, _) in &msgs {
            devices.send(topic, payload_bytes(payload)).await;
        }
        // A marker press: messages are committed in order, so once it arrives upstream every
        // message before it has been fully processed.
        let marker = format!("marker-{n}");
        devices
            .send(
                &format!("zigbee2mqtt/{marker}"),
                r#"{"action":"emergency"}"#,
            )
            .await;
        let is_marker =
            |e: &Value| e["data"]["device"]["id"] == format!("zigbee:{marker}").as_str();
        wait_until_async(Duration::from_secs(20), || {
            upstream.events().iter().any(is_marker)
        })
        .await
        .unwrap_or_else(|_| panic!("{file}: marker never arrived; log:\n{}", gw.log_text()));
        let all = upstream.events();
        let mut got: Vec<Value> = all[seen_before..]
            .iter()
            .filter(|e| !is_marker(e))
            .cloned()
            .collect();
        seen_before = all.len();
        for e in &got {
            assert_schema_valid(&schema, e);
        }
        // Lanes may reorder across priorities; the source sequence is the journal's order.
        got.sort_by(|a, b| a["sequence"].as_str().cmp(&b["sequence"].as_str()));
        let expected: Vec<Value> = msgs.iter().filter_map(|(_, _, e)| e.clone()).collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "{file}: expected {} events, got {}:\n{got:#?}",
            expected.len(),
            got.len()
        );
        for (e, g) in expected.iter().zip(&got) {
            check(e, g);
        }
    }
    // The /action string duplicate was ignored (counted), not dead-lettered.
    assert!(
        dead_letters(&gw).is_empty(),
        "no dead letters expected: {:?}",
        dead_letters(&gw)
    );
    broker.stop();
}
