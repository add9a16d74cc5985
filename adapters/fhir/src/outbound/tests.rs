//! Unit tests of `outbound`: each event shape and what it becomes.

use atgw_sdk::event::{AlertInfo, Event};
use atgw_sdk::fhir::FhirIds;
use serde_json::{Value, json};

use super::*;

pub(crate) fn ids() -> FhirIds {
    FhirIds {
        patients: [("res-0042".to_owned(), "Patient/p-42".to_owned())].into(),
        devices: [("ble:ox-7".to_owned(), "Device/ox-7".to_owned())].into(),
    }
}

const ALL: Sends = Sends {
    vital_signs: true,
    alerts: true,
    test: false,
};

fn vital_event() -> Event {
    serde_json::from_value(json!({
        "specversion": "1.0", "id": "0196484f-0001-7000-8000-000000000001",
        "source": "urn:atgw:gw-1:ble", "type": "atgw.vital_sign",
        "time": "2026-04-17T03:12:09.000Z", "recordedtime": "2026-04-17T03:12:09.050Z",
        "sequence": "00000000000000000913", "datacontenttype": "application/json",
        "dataschema": "urn:atgw:schema:event:1",
        "data": {"kind": "vital_sign", "phase": "point", "priority": "info", "test": false,
          "device": {"id": "ble:ox-7", "adapter": "ble", "registered": true},
          "location": {"site": "oakview", "area": "east", "room": "14"},
          "resident": {"id": "res-0042"},
          "observations": [
            {"name": "spo2", "code": {"system": "http://loinc.org", "code": "59408-5"}, "mdc": 150456,
             "value": 88, "unit": "%", "method": "pulse-oximetry", "status": "final"},
            {"name": "heart_rate", "value": 104, "unit": "/min", "status": "preliminary"},
            {"name": "respiratory_rate", "absent_reason": "not-a-number", "unit": "/min"},
            {"name": "perfusion_index", "value": 2.5, "unit": "%"}]}
    }))
    .unwrap()
}

fn lifecycle(status: &str, kind: &str, priority: &str) -> Event {
    let mut e = vital_event();
    e.id = "0196484f-0002-7000-8000-000000000002".into();
    e.event_type = "atgw.alert.raised".into();
    e.data.kind = kind.parse().unwrap();
    e.data.priority = priority.parse().unwrap();
    e.data.observations.clear();
    e.data.message = Some("Acknowledged by Jane Smith".into());
    e.data.alert = Some(AlertInfo {
        id: "al-9".into(),
        status: status.into(),
        level: 0,
        reason: "raised".into(),
        policy: "falls".into(),
        by: Some("Jane Smith".into()),
        outcome: None,
        note: None,
    });
    e
}

fn entries(m: Mapped) -> Vec<Value> {
    match m {
        Mapped::Entries(e) => e,
        other => panic!("expected entries, got {other:?}"),
    }
}

#[test]
fn a_vital_sign_event_is_one_observation_per_vital_of_ours() {
    let e = entries(map(&vital_event(), false, &ids(), ALL));
    assert_eq!(e.len(), 3, "perfusion index is not one of ours");
    let spo2 = &e[0]["resource"];
    assert_eq!(spo2["resourceType"], "Observation");
    assert_eq!(
        spo2["meta"]["profile"],
        json!([
            VITAL_SIGNS_PROFILE,
            "http://hl7.org/fhir/StructureDefinition/oxygensat"
        ])
    );
    assert_eq!(spo2["category"][0]["coding"][0]["code"], "vital-signs");
    let codes: Vec<&str> = spo2["code"]["coding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["2708-6", "59408-5", "150456"]);
    assert_eq!(spo2["code"]["coding"][2]["system"], MDC);
    assert_eq!(
        spo2["valueQuantity"],
        json!({"value": 88.0, "unit": "%", "system": UCUM, "code": "%"})
    );
    assert_eq!(spo2["subject"]["reference"], "Patient/p-42");
    assert_eq!(spo2["device"]["reference"], "Device/ox-7");
    assert_eq!(spo2["effectiveDateTime"], "2026-04-17T03:12:09.000Z");
    assert_eq!(
        spo2["identifier"][0],
        json!({"system": EVENT_IDENTIFIER, "value": "0196484f-0001-7000-8000-000000000001#spo2"})
    );
    assert_eq!(e[0]["request"]["method"], "PUT");
    assert_eq!(
        e[0]["request"]["url"],
        "Observation?identifier=urn:atgw:event%7C0196484f-0001-7000-8000-000000000001%23spo2"
    );
    let hr = &e[1]["resource"];
    assert_eq!(hr["status"], "preliminary");
    assert_eq!(hr["valueQuantity"]["unit"], "beats/minute");
    let rr = &e[2]["resource"];
    assert!(rr.get("valueQuantity").is_none());
    assert_eq!(rr["dataAbsentReason"]["coding"][0]["code"], "not-a-number");
    assert!(spo2.get("meta").unwrap().get("security").is_none());
}

#[test]
fn what_is_not_sent_is_skipped_and_a_missing_patient_is_unsendable() {
    let mut e = vital_event();
    e.data.kind = "pendant_press".parse().unwrap();
    assert_eq!(map(&e, false, &ids(), ALL), Mapped::Skip("kind_not_sent"));
    let e = vital_event();
    let no_vitals = Sends {
        vital_signs: false,
        ..ALL
    };
    assert_eq!(
        map(&e, false, &ids(), no_vitals),
        Mapped::Skip("vital_signs_not_sent")
    );
    let mut t = vital_event();
    t.data.test = true;
    assert_eq!(map(&t, false, &ids(), ALL), Mapped::Skip("test"));
    let with_test = Sends { test: true, ..ALL };
    let e = entries(map(&t, false, &ids(), with_test));
    assert_eq!(e[0]["resource"]["meta"]["security"][0]["code"], "HTEST");
    let m = map(&vital_event(), false, &FhirIds::default(), ALL);
    assert!(
        matches!(&m, Mapped::Unsendable(r) if r.contains("res-0042")),
        "{m:?}"
    );
}

#[test]
fn an_alert_is_one_communication_updated_until_resolved() {
    let open = entries(map(&lifecycle("open", "fall", "high"), true, &ids(), ALL));
    assert_eq!(open.len(), 1);
    let c = &open[0]["resource"];
    assert_eq!(c["resourceType"], "Communication");
    assert_eq!(c["status"], "in-progress");
    assert_eq!(c["priority"], "stat");
    assert_eq!(
        c["category"][0]["coding"][0],
        json!({"system": COMMUNICATION_CATEGORY, "code": "alert", "display": "Alert"})
    );
    assert_eq!(c["reasonCode"][0]["coding"][0]["code"], SNOMED_FALL);
    assert_eq!(c["subject"]["reference"], "Patient/p-42");
    assert_eq!(c["sent"], "2026-04-17T03:12:09.000Z");
    assert_eq!(
        c["identifier"][0],
        json!({"system": ALERT_IDENTIFIER, "value": "al-9"})
    );
    assert_eq!(
        open[0]["request"]["url"],
        "Communication?identifier=urn:atgw:alert%7Cal-9"
    );
    let text = c["payload"][0]["contentString"].as_str().unwrap();
    assert_eq!(text, "Fall - room 14, east (open)");
    assert!(!c.to_string().contains("Jane"), "no names: {c}");
    let done = entries(map(
        &lifecycle("resolved", "fall", "high"),
        true,
        &ids(),
        ALL,
    ));
    assert_eq!(done[0]["resource"]["status"], "completed");
    assert_eq!(
        done[0]["request"], open[0]["request"],
        "the same resource, updated"
    );
    let press = entries(map(
        &lifecycle("acknowledged", "pendant_press", "medium"),
        true,
        &ids(),
        ALL,
    ));
    assert_eq!(press[0]["resource"]["priority"], "asap");
    assert!(press[0]["resource"].get("reasonCode").is_none());
}

#[test]
fn an_alert_of_nobody_has_no_subject_but_a_residents_needs_its_patient() {
    let mut smoke = lifecycle("open", "smoke", "high");
    smoke.data.resident = None;
    let e = entries(map(&smoke, true, &ids(), ALL));
    assert!(e[0]["resource"].get("subject").is_none());
    let m = map(
        &lifecycle("open", "fall", "high"),
        true,
        &FhirIds::default(),
        ALL,
    );
    assert!(matches!(m, Mapped::Unsendable(_)));
    let no_alerts = Sends {
        alerts: false,
        ..ALL
    };
    assert_eq!(
        map(&lifecycle("open", "fall", "high"), true, &ids(), no_alerts),
        Mapped::Skip("alerts_not_sent")
    );
}

#[test]
fn priorities_map_to_request_priorities() {
    use atgw_sdk::event::Priority::*;
    let got: Vec<_> = [High, Medium, Low, Info]
        .into_iter()
        .map(priority)
        .collect();
    assert_eq!(got, ["stat", "asap", "urgent", "routine"]);
}

#[test]
fn transaction_responses_are_read_strictly() {
    let ok = json!({"resourceType": "Bundle", "type": "transaction-response",
        "entry": [{"response": {"status": "201 Created"}}, {"response": {"status": "200 OK"}}]});
    assert_eq!(confirmed(ok.to_string().as_bytes(), 2), Ok(()));
    assert!(
        confirmed(ok.to_string().as_bytes(), 3)
            .unwrap_err()
            .contains("2 entries for 3")
    );
    let bad = json!({"resourceType": "Bundle", "type": "transaction-response",
        "entry": [{"response": {"status": "201 Created"}}, {"response": {"status": "400 Bad Request"}}]});
    assert!(
        confirmed(bad.to_string().as_bytes(), 2)
            .unwrap_err()
            .contains("entry 1")
    );
    assert!(confirmed(b"", 1).is_err());
    assert!(confirmed(br#"{"resourceType":"OperationOutcome"}"#, 1).is_err());
    let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad\nunit"}]});
    assert_eq!(
        diagnostics(oo.to_string().as_bytes()).as_deref(),
        Some("badunit")
    );
}
