//! The real binary with a `fhir` sink: a pulse oximeter's reading published over MQTT (through
//! the shipped BLE-hub profile) reaches a FHIR server as vital-signs Observations for the
//! resident's Patient and the device's Device, valid per the independent validator of
//! `adapters/fhir/tests/validator`; a fall from the resident's radar reaches it as the alert's
//! Communication for the same Patient; and `check-config` refuses a resident without a Patient
//! once a `fhir` sink exists. The FHIR server here is plain HTTP on loopback (`allow_http`):
//! TLS is the sink crate's own tests' business.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-token-0123456789abcdefghij";

type Received = Arc<Mutex<Vec<Value>>>;

/// Takes transaction Bundles at `/fhir` and answers every entry `201 Created`; keeps each
/// entry (resource and request).
async fn fhir_server() -> (String, Received) {
    async fn transaction(
        State(got): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {TOKEN}")) {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        let Ok(b) = serde_json::from_slice::<Value>(&body) else {
            return (StatusCode::BAD_REQUEST, String::new());
        };
        let entries = b["entry"].as_array().cloned().unwrap_or_default();
        let answers: Vec<Value> = entries
            .iter()
            .map(|_| json!({"response": {"status": "201 Created"}}))
            .collect();
        got.lock().unwrap().extend(entries);
        let resp =
            json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers});
        (StatusCode::OK, resp.to_string())
    }
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route("/fhir", axum::routing::post(transaction))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/fhir"), got)
}

fn fhir_config(dir: &std::path::Path, port: u16, base: &str, patient: &str) -> String {
    fhir_config_with(dir, port, base, patient, "")
}

/// The oximeter of [`fhir_config`], plus `extra` (more devices, routes, policies).
fn fhir_config_with(
    dir: &std::path::Path,
    port: u16,
    base: &str,
    patient: &str,
    extra: &str,
) -> String {
    let token = write_secret(&dir.join("fhir.token"), TOKEN);
    config(
        dir,
        port,
        &format!(
            r#"
[[sink]]
name = "ehr"
type = "fhir"
base_url = "{base}"
allow_http = true
token_file = "{token}"

[[device]]
id = "ble:ff23041920b4"
adapter = "zigbee"
match = {{ device = "ff23041920b4" }}
resident = "res-0057"
location = {{ area = "east", room = "14" }}
{patient}
fhir_device = "Device/ox-14"
{extra}
"#,
            token = token.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_oximeter_reading_reaches_the_fhir_server_as_valid_observations() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (base, got) = fhir_server().await;
    let text = fhir_config(
        dir.path(),
        broker.port,
        &base,
        "fhir_patient = \"Patient/p-57\"",
    );
    let gw = Gateway::start(dir.path(), &text);
    gw.wait_subscribed().await;
    let hub = Publisher::connect(broker.port, "ble-hub").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    hub.send("dusun_pub", oximeter(now, 95, 72)).await;

    let observations = || {
        got.lock()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_until_async(Duration::from_secs(20), || observations().len() >= 2)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no Observations reached the FHIR server:\n{}",
                gw.log_text()
            )
        });
    let obs = observations();
    let event_id = gw.column::<String>("SELECT id FROM events WHERE kind = 'vital_sign'");
    assert_eq!(event_id.len(), 1);
    let by_name = |code: &str| {
        obs.iter()
            .map(|e| &e["resource"])
            .find(|r| r["code"]["coding"][0]["code"] == code)
            .unwrap_or_else(|| panic!("no LOINC {code} among {obs:?}"))
            .clone()
    };
    let spo2 = by_name("2708-6");
    assert_eq!(spo2["subject"]["reference"], "Patient/p-57");
    assert_eq!(spo2["device"]["reference"], "Device/ox-14");
    assert_eq!(spo2["valueQuantity"]["value"], 95.0);
    assert_eq!(spo2["valueQuantity"]["code"], "%");
    assert_eq!(
        spo2["identifier"][0]["value"],
        format!("{}#spo2", event_id[0])
    );
    let hr = by_name("8867-4");
    assert_eq!(hr["valueQuantity"]["value"], 72.0);
    assert_eq!(hr["valueQuantity"]["code"], "/min");
    for e in &obs {
        assert_eq!(e["request"]["method"], "PUT");
        assert!(
            e["request"]["url"]
                .as_str()
                .unwrap()
                .starts_with("Observation?identifier=urn:atgw:event%7C"),
            "{e}"
        );
    }

    let resources: Vec<Value> = obs.iter().map(|e| e["resource"].clone()).collect();
    validate(dir.path(), resources);
}

/// Independent validation of what the binary sent (panics on any issue, or without node or
/// the pinned packages).
fn validate(dir: &std::path::Path, resources: Vec<Value>) {
    let validator = repo().join("adapters/fhir/tests/validator");
    assert!(
        validator.join("node_modules/@medplum/core").is_dir(),
        "the FHIR validator's packages are not installed: run .ci/run (npm ci --prefix adapters/fhir/tests/validator)"
    );
    let file = dir.join("sent.json");
    std::fs::write(&file, Value::Array(resources).to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg("--experimental-websocket")
        .arg(validator.join("validate.mjs"))
        .arg(&file)
        .current_dir(&validator)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 20+ and run .ci/run"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the validator found issues:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A route for the alerts (to the upstream MQTT sink), so the `fhir` sink stays a stream sink
/// and receives every lifecycle event; and the resident's fall radar, which names no Patient
/// itself: the resident's oximeter does.
const FALLS: &str = r#"
[[device]]
id = "zigbee:0xdc8e95fffe4dc3dd"
adapter = "zigbee"
match = { device = "0xdc8e95fffe4dc3dd" }
resident = "res-0057"
location = { area = "east", room = "14" }

[[route]]
name = "upstream"
sinks = ["upstream"]

[[policy]]
name = "falls"
match = { priority = ["high"] }
notify = ["upstream"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fall_reaches_the_fhir_server_as_the_alerts_communication_for_the_residents_patient() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (base, got) = fhir_server().await;
    let text = fhir_config_with(
        dir.path(),
        broker.port,
        &base,
        "fhir_patient = \"Patient/p-57\"",
        FALLS,
    );
    let gw = Gateway::start(dir.path(), &text);
    gw.wait_subscribed().await;
    let radar = Publisher::connect(broker.port, "fall-radar").await;
    radar
        .send(
            "zigbee2mqtt/0xdc8e95fffe4dc3dd",
            r#"{"fall_down_status":"fall","presence":true}"#,
        )
        .await;
    let communications = || {
        got.lock()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Communication")
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_until_async(Duration::from_secs(20), || !communications().is_empty())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no Communication reached the FHIR server:\n{}",
                gw.log_text()
            )
        });
    let alert = gw.column::<String>("SELECT id FROM alerts WHERE kind = 'fall'");
    assert_eq!(alert.len(), 1, "one fall alert");
    let sent = communications();
    let c = &sent[0]["resource"];
    assert_eq!(c["identifier"][0]["system"], "urn:atgw:alert");
    assert_eq!(c["identifier"][0]["value"], alert[0].as_str());
    assert_eq!(c["status"], "in-progress");
    assert_eq!(c["priority"], "stat");
    assert_eq!(c["subject"]["reference"], "Patient/p-57");
    assert_eq!(c["reasonCode"][0]["coding"][0]["code"], "1912002");
    assert_eq!(
        c["payload"][0]["contentString"],
        "Fall - room 14, east (open)"
    );
    assert_eq!(
        sent[0]["request"]["url"],
        format!("Communication?identifier=urn:atgw:alert%7C{}", alert[0])
    );
    // The radar's own fall event is not a vital sign: answered without sending.
    assert!(
        got.lock()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["resourceType"] == "Communication"),
        "only the alert was sent"
    );
    validate(
        dir.path(),
        sent.iter().map(|e| e["resource"].clone()).collect(),
    );
}

#[test]
fn check_config_refuses_a_resident_without_a_patient_when_a_fhir_sink_exists() {
    let dir = tempfile::tempdir().unwrap();
    let text = fhir_config(dir.path(), 1883, "https://ehr.example/fhir", "");
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains("device[0].fhir_patient") && err.contains("res-0057"),
        "{err}"
    );
}
