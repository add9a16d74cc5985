//! FHIR R4 out: what one committed event becomes in a transaction Bundle. Pure (no I/O), so
//! every mapping is tested without a server, and the resources are validated independently
//! (`tests/validator`).
//!
//! - A `vital_sign` event: one `Observation` per observation of ours in `data.observations`
//!   (the vital-signs profile and the vital's own in `meta.profile`, category vital-signs,
//!   LOINC (with 59408-5 and MDC 150456 for SpO2), a UCUM `valueQuantity` or a
//!   `dataAbsentReason`, `effectiveDateTime` = event time, `subject` = the resident's Patient,
//!   `device` = the device's Device, `identifier` `urn:atgw:event|<event id>#<name>`).
//! - An alert lifecycle event (`atgw.alert.*`): the alert's `Communication` ("this alert was
//!   sent", devices-and-schema §2.3), `identifier` `urn:atgw:alert|<alert id>`, in-progress
//!   until the alert is resolved, then completed. Not a `Flag`: a Flag is a standing warning on
//!   a record ("at risk of falls"), not a live event with a start and an end.
//!
//! Each entry is a conditional update, `PUT <Type>?identifier=<system>|<value>`: the server
//! creates the resource the first time and replaces it on a re-delivery, so a retried
//! transaction never duplicates, and a later lifecycle event of the same alert updates its
//! Communication.

use atgw_sdk::event::{Event, Kind, Observation, Priority};
use atgw_sdk::fhir::FhirIds;
use serde_json::{Value, json};

use crate::vitals::{
    self, DATA_ABSENT_REASON, LOINC, MDC, OBSERVATION_CATEGORY, UCUM, VITAL_SIGNS_CATEGORY,
    VITAL_SIGNS_PROFILE, Vital,
};

/// `Identifier.system` of our Observations: the value is `<event id>#<observation name>`.
pub const EVENT_IDENTIFIER: &str = "urn:atgw:event";
/// `Identifier.system` of our Communications: the value is the alert id.
pub const ALERT_IDENTIFIER: &str = "urn:atgw:alert";
/// Communication category code system (`alert`).
pub const COMMUNICATION_CATEGORY: &str =
    "http://terminology.hl7.org/CodeSystem/communication-category";
pub const SNOMED: &str = "http://snomed.info/sct";
/// SNOMED CT 1912002 "Fall" (devices-and-schema §2.3).
pub const SNOMED_FALL: &str = "1912002";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// What an event becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Transaction entries (resource and request), in order.
    Entries(Vec<Value>),
    /// Not for this sink; answered without sending. The reason is a counter label.
    Skip(&'static str),
    /// Meant for FHIR but cannot be valid FHIR yet (no Patient for its resident): must not be
    /// answered delivered.
    Unsendable(String),
}

/// What the sink sends, from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sends {
    pub vital_signs: bool,
    pub alerts: bool,
    pub test: bool,
}

/// Maps one event. `lifecycle` is `Delivery::lifecycle` (the core knows which events are
/// alert lifecycle events by their source).
pub fn map(event: &Event, lifecycle: bool, ids: &FhirIds, sends: Sends) -> Mapped {
    let d = &event.data;
    if d.test && !sends.test {
        return Mapped::Skip("test");
    }
    if lifecycle {
        if !sends.alerts {
            return Mapped::Skip("alerts_not_sent");
        }
        return communication(event, ids);
    }
    if d.kind != Kind::VitalSign {
        return Mapped::Skip("kind_not_sent");
    }
    if !sends.vital_signs {
        return Mapped::Skip("vital_signs_not_sent");
    }
    let ours: Vec<(&Observation, &Vital)> = d
        .observations
        .iter()
        .filter_map(|o| Some((o, vitals::by_name(&o.name)?)))
        .filter(|(o, v)| o.unit.as_deref().is_none_or(|u| u == v.ucum))
        .collect();
    if ours.is_empty() {
        return Mapped::Skip("no_vital_of_ours");
    }
    let Some(patient) = patient(event, ids) else {
        return Mapped::Unsendable(no_patient(event));
    };
    let device = ids.device(&d.device.id);
    Mapped::Entries(
        ours.into_iter()
            .map(|(o, v)| observation(event, o, v, patient, device))
            .collect(),
    )
}

/// The Patient of the event's resident, if the registry names one.
fn patient<'a>(event: &Event, ids: &'a FhirIds) -> Option<&'a str> {
    ids.patient(&event.data.resident.as_ref()?.id)
}

fn no_patient(event: &Event) -> String {
    match &event.data.resident {
        Some(r) => format!(
            "resident `{}` has no FHIR Patient (set `fhir_patient` on one of its [[device]] entries)",
            r.id
        ),
        None => format!(
            "device `{}` has no resident, and an Observation needs a Patient",
            event.data.device.id
        ),
    }
}

fn meta(profiles: &[&str], test: bool) -> Value {
    let mut m = json!({});
    if !profiles.is_empty() {
        m["profile"] = json!(profiles);
    }
    if test {
        m["security"] =
            json!([{"system": ACT_REASON, "code": "HTEST", "display": "test health data"}]);
    }
    m
}

/// One Observation and its conditional update.
fn observation(
    event: &Event,
    o: &Observation,
    v: &Vital,
    patient: &str,
    device: Option<&str>,
) -> Value {
    let mut coding = vec![json!({"system": LOINC, "code": v.loinc, "display": v.display})];
    for extra in v.extra_loinc {
        coding.push(json!({"system": LOINC, "code": extra}));
    }
    if let Some(mdc) = v.mdc {
        coding.push(json!({"system": MDC, "code": mdc.to_string()}));
    }
    let identifier = format!("{}#{}", event.id, v.name);
    let status = match o.status.as_deref() {
        Some("preliminary") => "preliminary",
        _ => "final",
    };
    let mut r = json!({
        "resourceType": "Observation",
        "meta": meta(&[VITAL_SIGNS_PROFILE, v.profile], event.data.test),
        "identifier": [{"system": EVENT_IDENTIFIER, "value": identifier}],
        "status": status,
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": VITAL_SIGNS_CATEGORY,
                                  "display": "Vital Signs"}]}],
        "code": {"coding": coding, "text": v.display},
        "subject": {"reference": patient},
        "effectiveDateTime": atgw_sdk::event::rfc3339_ms::format(&event.time),
    });
    match o.value {
        Some(value) => {
            r["valueQuantity"] =
                json!({"value": value, "unit": v.unit_text, "system": UCUM, "code": v.ucum});
        }
        None => {
            let code = o.absent_reason.as_deref().unwrap_or("unknown");
            r["dataAbsentReason"] =
                json!({"coding": [{"system": DATA_ABSENT_REASON, "code": code}]});
        }
    }
    if let Some(device) = device {
        r["device"] = json!({"reference": device});
    }
    entry(r, "Observation", EVENT_IDENTIFIER, &identifier)
}

/// Our priority in Communication's request-priority terms: high (potentially
/// life-threatening, address at once) → stat; medium → asap; low → urgent; info → routine.
pub fn priority(p: Priority) -> &'static str {
    match p {
        Priority::High => "stat",
        Priority::Medium => "asap",
        Priority::Low => "urgent",
        Priority::Info => "routine",
    }
}

/// The alert's Communication and its conditional update.
fn communication(event: &Event, ids: &FhirIds) -> Mapped {
    let d = &event.data;
    let Some(alert) = &d.alert else {
        return Mapped::Skip("lifecycle_without_alert");
    };
    let subject = match (&d.resident, patient(event, ids)) {
        (_, Some(p)) => Some(p),
        // A corridor smoke detector's alert is about nobody: Communication.subject is 0..1.
        (None, None) => None,
        (Some(_), None) => return Mapped::Unsendable(no_patient(event)),
    };
    let status = if alert.status == "resolved" {
        "completed"
    } else {
        "in-progress"
    };
    let mut r = json!({
        "resourceType": "Communication",
        "meta": meta(&[], d.test),
        "identifier": [{"system": ALERT_IDENTIFIER, "value": alert.id}],
        "status": status,
        "category": [{"coding": [{"system": COMMUNICATION_CATEGORY, "code": "alert", "display": "Alert"}]}],
        "priority": priority(d.priority),
        "sent": atgw_sdk::event::rfc3339_ms::format(&event.time),
        "payload": [{"contentString": short_message(event)}],
    });
    if r["meta"].as_object().is_some_and(|m| m.is_empty())
        && let Some(o) = r.as_object_mut()
    {
        o.remove("meta");
    }
    if let Some(s) = subject {
        r["subject"] = json!({"reference": s});
    }
    let snomed = d
        .codes
        .snomed
        .as_deref()
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
        .map(|c| (c, None))
        .or((d.kind == Kind::Fall).then_some((SNOMED_FALL, Some("Fall"))));
    if let Some((code, display)) = snomed {
        let mut c = json!({"system": SNOMED, "code": code});
        if let Some(display) = display.or((code == SNOMED_FALL).then_some("Fall")) {
            c["display"] = json!(display);
        }
        r["reasonCode"] = json!([{"coding": [c]}]);
    }
    Mapped::Entries(vec![entry(r, "Communication", ALERT_IDENTIFIER, &alert.id)])
}

/// What happened and where, in the gateway's own words: the kind's label, the room, and the
/// alert's state. Built here rather than copied from `data.message`, which for lifecycle events
/// may name the carer who acknowledged; a care record's payload must not carry staff or
/// resident names from free text.
fn short_message(event: &Event) -> String {
    let d = &event.data;
    let mut m = d.kind.label().to_owned();
    if let Some(room) = &d.location.room {
        m.push_str(&format!(" - room {room}"));
    }
    if let Some(area) = &d.location.area {
        m.push_str(&format!(", {area}"));
    }
    if let Some(a) = &d.alert {
        m.push_str(&format!(" ({})", a.status));
    }
    m
}

fn entry(resource: Value, ty: &str, system: &str, value: &str) -> Value {
    json!({
        "resource": resource,
        "request": {"method": "PUT", "url": format!("{ty}?identifier={}", query_value(&format!("{system}|{value}")))},
    })
}

/// A query parameter value percent-encoded (RFC 3986: all but unreserved characters), so the
/// `|` of a token search and the `#` of our identifiers survive the URL.
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The transaction Bundle of these entries.
pub fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Whether a server's 2xx answer confirms every entry: a `transaction-response` Bundle with
/// one entry per request entry, each `response.status` 2xx. `Err` says what is missing.
pub fn confirmed(body: &[u8], entries: usize) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| "the 2xx answer is not a JSON transaction-response".to_owned())?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Bundle")
        || v.get("type").and_then(Value::as_str) != Some("transaction-response")
    {
        return Err("the 2xx answer is not a transaction-response Bundle".into());
    }
    let got = v
        .get("entry")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if got.len() != entries {
        return Err(format!(
            "the transaction-response has {} entries for {entries} sent",
            got.len()
        ));
    }
    for (i, e) in got.iter().enumerate() {
        let status = e
            .get("response")
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !status.starts_with('2') {
            return Err(format!(
                "entry {i} answered `{}`",
                status.chars().take(40).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// The first diagnostics of an OperationOutcome in an error answer, for the retry reason.
pub fn diagnostics(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let issue = v.get("issue")?.as_array()?.first()?;
    let text = issue
        .get("diagnostics")
        .and_then(Value::as_str)
        .or_else(|| issue.get("code").and_then(Value::as_str))?;
    Some(text.chars().filter(|c| !c.is_control()).take(200).collect())
}

#[cfg(test)]
mod tests;
