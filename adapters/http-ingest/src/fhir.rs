//! FHIR R4 in: a route with `format = "fhir"` takes a POSTed `Observation`, or a `batch` or
//! `transaction` `Bundle` of them ([`atgw_fhir::inbound`] reads them), and journals each
//! reading as a `vital_sign` event with its observation, so the NEWS2 rules apply as they do
//! to an oximeter on MQTT.
//!
//! - The reading's `subject` (`Patient/<id>`) and `device` (`Device/<id>`) are the registry
//!   keys `patient` and `device`: `[[device]] adapter = "<this adapter>", match = { patient =
//!   "Patient/p-42" }` places the reading and names the resident. The event's device is
//!   `fhir:<device reference>` (else `fhir:<patient reference>`).
//! - What is kept as `raw.payload` is the Observation's codes, numbers, times, references and
//!   identifier only: names, notes, `contained` resources, `performer` and narrative are never
//!   journaled (they are PII the gateway has no use for).
//! - Dedupe: the reading's first identifier (`system|value`), else a hash of the resource as
//!   sent, so a client's retry is journaled once and answered again. The `Location` of a
//!   reading is derived from the same key, so a retry is answered with the same location.
//! - Answers, only after commit: a lone Observation `201 Created` with `Location` (a
//!   duplicate: `200 OK`); a Bundle `200` with a batch-response or transaction-response
//!   Bundle. A transaction with any bad entry is refused whole (`400`, nothing journaled);
//!   in a batch the good entries are journaled and the bad ones answered in their slots. An
//!   unusable body or entry is dead-lettered and explained by an `OperationOutcome`; a failed
//!   commit is `503` with an `OperationOutcome` (`transient`) and `Retry-After`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use atgw_fhir::inbound::{self, EntryError, EntryOutcome, Posted, Reading};
use atgw_sdk::event::{Kind, Phase, Raw};
use atgw_sdk::ingest::{DeadLetter, Seen, Submission};
use atgw_sdk::{Committed, EventDraft};
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::route::Route;
use crate::server::{PROTOCOL, Shared};

/// The registry keys a FHIR reading carries.
pub const REGISTRY_KEYS: &[&str] = &["patient", "device"];

/// The FHIR JSON media type.
const FHIR_JSON: &str = "application/fhir+json";

pub async fn handle(
    s: &Shared,
    route: &Route,
    path: &str,
    body: Bytes,
    peer: SocketAddr,
) -> Response {
    let read = match inbound::read(&body) {
        Ok(r) => r,
        Err(e) => return refuse(s, path, peer, &body, &[e]).await,
    };
    let resources = resources(&body, read.posted);
    let errors: Vec<EntryError> = read
        .readings
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if read.posted == Posted::Transaction && !errors.is_empty() {
        return refuse(s, path, peer, &body, &errors).await;
    }
    if read.posted == Posted::Observation && !errors.is_empty() {
        return refuse(s, path, peer, &body, &errors).await;
    }
    let good: Vec<&Reading> = read
        .readings
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .collect();
    let keys: Vec<String> = good
        .iter()
        .map(|r| dedupe_key(route, r, resources.get(r.entry)))
        .collect();
    let submissions: Vec<Submission> = good
        .iter()
        .zip(&keys)
        .map(|(r, key)| submission(s, route, path, r, resources.get(r.entry), key.clone()))
        .collect();
    let committed = if submissions.is_empty() {
        Vec::new()
    } else {
        match s.submit(submissions).await {
            Ok(c) => c,
            Err(e) => return unavailable(s, &e),
        }
    };
    if !errors.is_empty() {
        // A batch with bad entries: the good ones are in; the rest are kept for a person.
        let detail = summary(&errors);
        let letter = DeadLetter {
            reason: "fhir_invalid".into(),
            detail,
            origin: format!("{path} from {peer}"),
            raw: body.to_vec(),
        };
        s.health.rejected("fhir_invalid");
        if let Err(e) = s.ingest.reject(letter).await {
            return unavailable(s, &e.to_string());
        }
    }
    let mut outcomes: BTreeMap<usize, EntryOutcome> = BTreeMap::new();
    for ((r, key), c) in good.iter().zip(&keys).zip(&committed) {
        let location = format!("Observation/{}", location_id(key));
        outcomes.insert(
            r.entry,
            match c {
                Committed::Stored { .. } => {
                    s.health.committed(1);
                    EntryOutcome::Created { location }
                }
                Committed::Duplicate => {
                    s.health.duplicate();
                    EntryOutcome::Duplicate { location }
                }
            },
        );
    }
    for e in errors {
        outcomes.insert(e.entry, EntryOutcome::Failed(e));
    }
    let outcomes: Vec<EntryOutcome> = outcomes.into_values().collect();
    match read.posted {
        Posted::Observation => match outcomes.first() {
            Some(EntryOutcome::Created { location }) => located(StatusCode::CREATED, location),
            Some(EntryOutcome::Duplicate { location }) => located(StatusCode::OK, location),
            _ => unavailable(s, "no outcome for the Observation"),
        },
        posted => fhir(StatusCode::OK, inbound::response_bundle(&posted, &outcomes)),
    }
}

/// One reading as a submission.
fn submission(
    s: &Shared,
    route: &Route,
    path: &str,
    r: &Reading,
    resource: Option<&Value>,
    key: String,
) -> Submission {
    let device_id = format!("fhir:{}", r.device.as_deref().unwrap_or(&r.patient));
    let mut keys = BTreeMap::from([("patient".to_owned(), r.patient.clone())]);
    if let Some(d) = &r.device {
        keys.insert("device".into(), d.clone());
    }
    let mut draft = EventDraft::new(Kind::VitalSign, Phase::Point, device_id.clone(), &s.name);
    draft.time = Some(r.effective);
    draft.registry_keys = keys.clone();
    draft.data.test = r.test;
    draft.data.observations = vec![r.observation.clone()];
    draft.data.raw = Some(Raw {
        protocol: PROTOCOL.to_owned(),
        topic: None,
        path: Some(path.to_owned()),
        payload: resource.map(kept).unwrap_or(Value::Null),
        upstream_id: r.identifier.clone(),
    });
    Submission {
        events: vec![draft],
        dedupe_key: Some(key),
        dedupe_window: Some(route.dedupe_window),
        first_delivery: false,
        state: Vec::new(),
        seen: vec![Seen {
            device_id,
            registry_keys: keys,
        }],
    }
}

/// The resources of the body by entry index (a lone Observation is entry 0).
fn resources(body: &[u8], posted: Posted) -> Vec<Value> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    match posted {
        Posted::Observation => vec![v],
        Posted::Batch | Posted::Transaction => v
            .get("entry")
            .and_then(Value::as_array)
            .map(|es| {
                es.iter()
                    .map(|e| e.get("resource").cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The parts of an Observation the journal keeps: what it measured and when, about which
/// references. Nothing a person wrote, and no names.
fn kept(resource: &Value) -> Value {
    const KEEP: &[&str] = &[
        "resourceType",
        "id",
        "identifier",
        "status",
        "category",
        "code",
        "effectiveDateTime",
        "effectiveInstant",
        "effectivePeriod",
        "valueQuantity",
        "dataAbsentReason",
        "interpretation",
        "meta",
    ];
    let Some(obj) = resource.as_object() else {
        return Value::Null;
    };
    let mut out: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| KEEP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for field in ["subject", "device"] {
        if let Some(r) = obj.get(field).and_then(|v| v.get("reference")) {
            out.insert(field.into(), json!({ "reference": r }));
        }
    }
    Value::Object(out)
}

fn dedupe_key(route: &Route, r: &Reading, resource: Option<&Value>) -> String {
    match &r.identifier {
        Some(id) => format!("fhir:{}:{id}", route.path),
        None => {
            let text = resource.map(Value::to_string).unwrap_or_default();
            format!(
                "fhir:{}:sha256:{}",
                route.path,
                hex::encode(Sha256::digest(text))
            )
        }
    }
}

/// A FHIR id (`[A-Za-z0-9.-]{1,64}`) that is the same for every retry of a reading.
fn location_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

fn summary(errors: &[EntryError]) -> String {
    let mut s = errors
        .iter()
        .take(5)
        .map(|e| format!("entry {}: {} ({})", e.entry, e.diagnostics, e.expression))
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > 5 {
        s.push_str(&format!("; and {} more", errors.len() - 5));
    }
    s
}

/// Dead-letters the body and answers 400 with the OperationOutcome.
async fn refuse(
    s: &Shared,
    path: &str,
    peer: SocketAddr,
    body: &[u8],
    errors: &[EntryError],
) -> Response {
    s.health.rejected("fhir_invalid");
    let detail = summary(errors);
    if let Some(n) = s.warn.allow("fhir_invalid") {
        tracing::warn!(adapter = %s.name, suppressed = n, "{peer} on {path}: dead-lettered a FHIR body: {detail}");
    }
    let letter = DeadLetter {
        reason: "fhir_invalid".into(),
        detail,
        origin: format!("{path} from {peer}"),
        raw: body.to_vec(),
    };
    match s.ingest.reject(letter).await {
        Ok(()) => fhir(StatusCode::BAD_REQUEST, inbound::operation_outcome(errors)),
        Err(e) => unavailable(s, &e.to_string()),
    }
}

fn unavailable(s: &Shared, why: &str) -> Response {
    s.commit_failed(why);
    let mut r = fhir(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient",
               "diagnostics": "the gateway could not store this now; send it again"}]}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn fhir(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        body.to_string(),
    )
        .into_response()
}

fn located(status: StatusCode, location: &str) -> Response {
    let mut r = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
