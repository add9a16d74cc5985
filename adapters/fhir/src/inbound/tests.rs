//! Unit tests of `inbound` with real-shaped bodies, and property tests that it never panics.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// The shape of HL7's SpO2 example (`observation-example-satO2`): three codings (2708-6,
/// 59408-5, MDC 150456), 95 %, a DeviceMetric, an interpretation, a local offset.
fn hl7_sat_o2() -> Value {
    json!({
      "resourceType": "Observation",
      "id": "satO2",
      "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
      "identifier": [{"system": "http://goodcare.org/observation/id", "value": "o1223435-10"}],
      "partOf": [{"reference": "Procedure/ob"}],
      "status": "final",
      "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs", "display": "Vital Signs"}],
                    "text": "Vital Signs"}],
      "code": {"coding": [
        {"system": "http://loinc.org", "code": "2708-6", "display": "Oxygen saturation in Arterial blood"},
        {"system": "http://loinc.org", "code": "59408-5", "display": "Oxygen saturation in Arterial blood by Pulse oximetry"},
        {"system": "urn:iso:std:iso:11073:10101", "code": "150456", "display": "MDC_PULS_OXIM_SAT_O2"}]},
      "subject": {"reference": "Patient/example", "display": "Amy Shaw"},
      "effectiveDateTime": "2014-12-05T09:30:10+01:00",
      "valueQuantity": {"value": 95, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
      "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                      "code": "N", "display": "Normal (applies to non-numeric results)"}]}],
      "device": {"reference": "DeviceMetric/example"},
      "referenceRange": [{"low": {"value": 90, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
                          "high": {"value": 99, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}]
    })
}

/// devices-and-schema §2.2's minimal heart rate.
fn heart_rate(value: Value) -> Value {
    json!({
      "resourceType": "Observation",
      "status": "final",
      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
      "subject": {"reference": "Patient/res-0042"},
      "device": {"reference": "Device/ox-7"},
      "effectiveDateTime": "2026-04-17T15:33:22Z",
      "valueQuantity": value
    })
}

fn one(v: &Value) -> Result<Reading, EntryError> {
    let r = read(v.to_string().as_bytes()).expect("body readable");
    assert_eq!(r.posted, Posted::Observation);
    assert_eq!(r.readings.len(), 1);
    r.readings.into_iter().next().unwrap()
}

fn refused(v: &Value) -> EntryError {
    one(v).expect_err("entry refused")
}

#[test]
fn hl7_spo2_example_reads_as_spo2_by_pulse_oximetry() {
    let r = one(&hl7_sat_o2()).unwrap();
    assert_eq!(r.patient, "Patient/example");
    assert_eq!(r.device.as_deref(), Some("DeviceMetric/example"));
    assert_eq!(
        r.identifier.as_deref(),
        Some("http://goodcare.org/observation/id|o1223435-10")
    );
    assert_eq!(r.effective.to_string(), "2014-12-05T08:30:10Z");
    assert_eq!(r.status, "final");
    assert!(!r.test);
    let o = &r.observation;
    assert_eq!(o.name, "spo2");
    assert_eq!(o.code.as_ref().map(|c| c.code.as_str()), Some("2708-6"));
    assert_eq!(o.mdc, Some(150456));
    assert_eq!(o.value, Some(95.0));
    assert_eq!(o.unit.as_deref(), Some("%"));
    assert_eq!(o.method.as_deref(), Some("pulse-oximetry"));
    assert_eq!(o.status.as_deref(), Some("final"));
    assert_eq!(o.absent_reason, None);
}

#[test]
fn names_and_displays_are_never_copied() {
    let r = one(&hl7_sat_o2()).unwrap();
    let text = format!("{r:?}");
    assert!(!text.contains("Amy Shaw"), "{text}");
}

#[test]
fn only_59408_5_still_means_spo2_and_category_is_optional() {
    let mut v = hl7_sat_o2();
    v["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "59408-5"}]});
    v.as_object_mut().unwrap().remove("category");
    let r = one(&v).unwrap();
    assert_eq!(r.observation.name, "spo2");
    assert_eq!(r.observation.code.unwrap().code, "2708-6");
}

#[test]
fn minimal_heart_rate_reads() {
    let r = one(&heart_rate(json!({"value": 72, "unit": "beats/minute",
        "system": "http://unitsofmeasure.org", "code": "/min"})))
    .unwrap();
    assert_eq!(r.observation.name, "heart_rate");
    assert_eq!(r.observation.value, Some(72.0));
    assert_eq!(r.observation.unit.as_deref(), Some("/min"));
    assert_eq!(r.observation.method, None);
    assert_eq!(r.device.as_deref(), Some("Device/ox-7"));
}

#[test]
fn wrong_unit_is_a_value_error_naming_the_code() {
    let e = refused(&heart_rate(json!({"value": 72, "unit": "%",
        "system": "http://unitsofmeasure.org", "code": "%"})));
    assert_eq!(e.code, "value");
    assert_eq!(e.expression, "Observation.valueQuantity.code");
    assert!(e.diagnostics.contains("/min"), "{}", e.diagnostics);
    let e = refused(&heart_rate(
        json!({"value": 72, "unit": "/min", "code": "/min"}),
    ));
    assert_eq!(e.expression, "Observation.valueQuantity.system");
}

#[test]
fn fahrenheit_temperature_is_converted_and_other_vitals_refuse_it() {
    let mut v = heart_rate(json!({"value": 98.6, "unit": "degF",
        "system": "http://unitsofmeasure.org", "code": "[degF]"}));
    v["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "8310-5"}]});
    let r = one(&v).unwrap();
    let c = r.observation.value.unwrap();
    assert!((c - 37.0).abs() < 1e-9, "{c}");
    assert_eq!(r.observation.unit.as_deref(), Some("Cel"));
    let e = refused(&heart_rate(json!({"value": 72,
        "system": "http://unitsofmeasure.org", "code": "[degF]"})));
    assert_eq!(e.expression, "Observation.valueQuantity.code");
}

#[test]
fn implausible_values_are_refused() {
    for (code, unit, value) in [
        ("2708-6", "%", 101.0),
        ("2708-6", "%", -1.0),
        ("8867-4", "/min", 400.0),
        ("9279-1", "/min", 121.0),
        ("8310-5", "Cel", 98.6),
    ] {
        let mut v = heart_rate(json!({"value": value,
            "system": "http://unitsofmeasure.org", "code": unit}));
        v["code"] = json!({"coding": [{"system": "http://loinc.org", "code": code}]});
        let e = refused(&v);
        assert_eq!(
            (e.code, e.expression.as_str()),
            ("value", "Observation.valueQuantity.value"),
            "{code} {value}"
        );
    }
}

#[test]
fn data_absent_reason_gives_no_value_and_the_reason() {
    let mut v = hl7_sat_o2();
    v.as_object_mut().unwrap().remove("valueQuantity");
    v["dataAbsentReason"] = json!({"coding": [{"system":
        "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-a-number"}]});
    let r = one(&v).unwrap();
    assert_eq!(r.observation.value, None);
    assert_eq!(r.observation.absent_reason.as_deref(), Some("not-a-number"));
    v["valueQuantity"] = hl7_sat_o2()["valueQuantity"].clone();
    assert_eq!(refused(&v).code, "invalid", "value and reason together");
    let mut v = hl7_sat_o2();
    v.as_object_mut().unwrap().remove("valueQuantity");
    assert_eq!(refused(&v).code, "required", "neither (vs-2)");
}

#[test]
fn other_vitals_are_not_supported_naming_the_code() {
    let mut v = hl7_sat_o2();
    v["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "8480-6"}]});
    let e = refused(&v);
    assert_eq!(e.code, "not-supported");
    assert!(e.diagnostics.contains("8480-6"), "{}", e.diagnostics);
    v["code"] = json!({"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "150456"}]});
    assert_eq!(refused(&v).code, "required", "MDC alone is not enough");
}

#[test]
fn required_elements_are_named() {
    let cases: Vec<(&str, &str)> = vec![
        ("status", "Observation.status"),
        ("subject", "Observation.subject"),
        ("effectiveDateTime", "Observation.effective[x]"),
        ("code", "Observation.code"),
    ];
    for (key, expr) in cases {
        let mut v = hl7_sat_o2();
        v.as_object_mut().unwrap().remove(key);
        let e = refused(&v);
        assert_eq!((e.code, e.expression.as_str()), ("required", expr), "{key}");
    }
}

#[test]
fn statuses_references_and_times_are_checked() {
    let mut v = hl7_sat_o2();
    v["status"] = json!("entered-in-error");
    assert_eq!(refused(&v).expression, "Observation.status");
    for (status, ours) in [("amended", "final"), ("preliminary", "preliminary")] {
        v["status"] = json!(status);
        let r = one(&v).unwrap();
        assert_eq!(
            (r.status.as_str(), r.observation.status.as_deref()),
            (status, Some(ours))
        );
    }
    let mut v = hl7_sat_o2();
    for bad in [
        "#p1",
        "urn:uuid:0c3ad6a0-0000-0000-0000-000000000000",
        "https://ehr.example/fhir/Patient/1",
        "Group/ward-3",
        "Patient/",
        "Patient/a b",
    ] {
        v["subject"] = json!({"reference": bad});
        assert_eq!(refused(&v).expression, "Observation.subject", "{bad}");
    }
    let mut v = hl7_sat_o2();
    for bad in ["2014-12-05", "2014-12-05T09:30:10", "yesterday"] {
        v["effectiveDateTime"] = json!(bad);
        assert_eq!(refused(&v).code, "value", "{bad}");
    }
    v.as_object_mut().unwrap().remove("effectiveDateTime");
    v["effectivePeriod"] = json!({"start": "2026-04-17T15:33:22.5Z"});
    assert_eq!(
        one(&v).unwrap().effective.to_string(),
        "2026-04-17T15:33:22.5Z"
    );
}

#[test]
fn htest_security_label_marks_test_data() {
    let mut v = hl7_sat_o2();
    v["meta"]["security"] =
        json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}]);
    assert!(one(&v).unwrap().test);
    let mut v = hl7_sat_o2();
    v["meta"]["tag"] = json!([{"code": "HTEST"}]);
    assert!(one(&v).unwrap().test);
    v["meta"]["tag"] = json!([{"system": "http://other.example", "code": "HTEST"}]);
    assert!(!one(&v).unwrap().test);
}

fn bundle_of(kind: &str, entries: Vec<Value>) -> Vec<u8> {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
        .to_string()
        .into_bytes()
}

#[test]
fn batch_reads_each_entry_on_its_own_in_order() {
    let bad = heart_rate(json!({"value": 72, "system": "http://unitsofmeasure.org", "code": "%"}));
    let body = bundle_of(
        "batch",
        vec![
            json!({"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                   "resource": hl7_sat_o2(), "request": {"method": "POST", "url": "Observation"}}),
            json!({"resource": bad, "request": {"method": "POST", "url": "Observation"}}),
            json!({"resource": {"resourceType": "Patient", "name": [{"family": "Shaw"}]}}),
            json!({"resource": hl7_sat_o2(), "request": {"method": "DELETE", "url": "Observation/1"}}),
        ],
    );
    let r = read(&body).unwrap();
    assert_eq!(r.posted, Posted::Batch);
    assert_eq!(r.readings.len(), 4);
    let first = r.readings[0].as_ref().unwrap();
    assert_eq!(first.entry, 0);
    assert_eq!(
        first.full_url.as_deref(),
        Some("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")
    );
    let codes: Vec<_> = r.readings[1..]
        .iter()
        .map(|x| {
            let e = x.as_ref().unwrap_err();
            (e.entry, e.code)
        })
        .collect();
    assert_eq!(
        codes,
        vec![(1, "value"), (2, "not-supported"), (3, "not-supported")]
    );
    assert!(!format!("{r:?}").contains("Shaw"));
}

#[test]
fn whole_body_refusals() {
    let e = read(b"not json").unwrap_err();
    assert_eq!(e.code, "invalid");
    let e = read(br#"{"resourceType":"Patient"}"#).unwrap_err();
    assert_eq!(e.code, "not-supported");
    let e = read(&bundle_of("collection", vec![])).unwrap_err();
    assert_eq!(
        (e.code, e.expression.as_str()),
        ("not-supported", "Bundle.type")
    );
    let many = vec![json!({"resource": hl7_sat_o2()}); MAX_ENTRIES + 1];
    assert_eq!(
        read(&bundle_of("transaction", many)).unwrap_err().code,
        "too-costly"
    );
    let cap = vec![json!({"resource": hl7_sat_o2()}); MAX_ENTRIES];
    let r = read(&bundle_of("transaction", cap)).unwrap();
    assert_eq!(r.posted, Posted::Transaction);
    assert!(r.readings.iter().all(Result::is_ok));
    assert_eq!(read(&bundle_of("batch", vec![])).unwrap().readings, vec![]);
}

#[test]
fn operation_outcome_carries_code_diagnostics_and_expression() {
    let e = refused(&heart_rate(
        json!({"value": 72, "system": "http://unitsofmeasure.org", "code": "%"}),
    ));
    let oo = operation_outcome(std::slice::from_ref(&e));
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["severity"], "error");
    assert_eq!(oo["issue"][0]["code"], "value");
    assert_eq!(
        oo["issue"][0]["expression"][0],
        "Observation.valueQuantity.code"
    );
    assert_eq!(oo["issue"][0]["diagnostics"], e.diagnostics.as_str());
    let mut later = e.clone();
    later.entry = 3;
    let oo = operation_outcome(&[e, later]);
    assert!(
        oo["issue"][1]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("entry 3: ")
    );
    assert_eq!(
        operation_outcome(&[])["issue"][0]["severity"],
        "information"
    );
}

#[test]
fn response_bundle_answers_every_entry_in_order() {
    let e = err(1, "value", "Observation.valueQuantity.code", "wrong unit");
    let b = response_bundle(
        &Posted::Batch,
        &[
            EntryOutcome::Created {
                location: "Observation/a/_history/1".into(),
            },
            EntryOutcome::Failed(e),
            EntryOutcome::Duplicate {
                location: "Observation/b/_history/1".into(),
            },
        ],
    );
    assert_eq!(b["type"], "batch-response");
    assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(
        b["entry"][0]["response"]["location"],
        "Observation/a/_history/1"
    );
    assert!(
        b["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("400")
    );
    assert_eq!(
        b["entry"][1]["response"]["outcome"]["issue"][0]["code"],
        "value"
    );
    assert_eq!(b["entry"][2]["response"]["status"], "200 OK");
    assert_eq!(
        response_bundle(&Posted::Transaction, &[])["type"],
        "transaction-response"
    );
}

/// Arbitrary JSON values, nested a few levels, biased towards our keys.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("resourceType".to_owned()),
        Just("type".to_owned()),
        Just("entry".to_owned()),
        Just("resource".to_owned()),
        Just("status".to_owned()),
        Just("code".to_owned()),
        Just("coding".to_owned()),
        Just("system".to_owned()),
        Just("valueQuantity".to_owned()),
        Just("value".to_owned()),
        Just("subject".to_owned()),
        Just("reference".to_owned()),
        Just("effectiveDateTime".to_owned()),
        Just("dataAbsentReason".to_owned()),
        Just("meta".to_owned()),
        Just("identifier".to_owned()),
        "[a-zA-Z]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("Observation".to_owned()),
            Just("Bundle".to_owned()),
            Just("batch".to_owned()),
            Just("transaction".to_owned()),
            Just("final".to_owned()),
            Just("http://loinc.org".to_owned()),
            Just("2708-6".to_owned()),
            Just("8310-5".to_owned()),
            Just("[degF]".to_owned()),
            Just("http://unitsofmeasure.org".to_owned()),
            Just("Patient/p".to_owned()),
            Just("2026-04-17T15:33:22Z".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn read_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read(&body);
    }

    #[test]
    fn read_never_panics_on_arbitrary_json(v in arb_json()) {
        let body = v.to_string();
        if let Ok(r) = read(body.as_bytes()) {
            for (i, x) in r.readings.iter().enumerate() {
                let entry = match x { Ok(r) => r.entry, Err(e) => e.entry };
                prop_assert_eq!(entry, i);
                if let Ok(r) = x {
                    let vital = crate::vitals::by_name(&r.observation.name).unwrap();
                    prop_assert!(r.observation.value.is_none_or(|v| vital.plausible(v)));
                }
            }
            let errs: Vec<_> = r.readings.iter().filter_map(|x| x.as_ref().err().cloned()).collect();
            let _ = operation_outcome(&errs);
        }
    }

    #[test]
    fn read_never_panics_on_mutated_real_bodies(key in "[a-zA-Z]{1,20}", v in arb_json()) {
        let mut o = hl7_sat_o2();
        o[key.as_str()] = v.clone();
        let _ = read(o.to_string().as_bytes());
        let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": o}, v]});
        let _ = read(b.to_string().as_bytes());
    }
}
