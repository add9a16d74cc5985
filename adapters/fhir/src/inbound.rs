//! FHIR R4 in: what a POSTed body says, as data. Pure (no I/O, no clock), never panics, so the
//! HTTP ingest adapter decides what to commit and answer, and the fuzzer and property tests
//! hit exactly what a stranger's bytes reach.
//!
//! Accepted: a lone `Observation`, or a `Bundle` of `type` `batch` or `transaction` of at most
//! [`MAX_ENTRIES`] entries, each an `Observation` of one of the four vitals in [`crate::vitals`].
//! Each entry is read on its own: one bad entry is an [`EntryError`] in its slot, not a failure
//! of the body (a transaction's all-or-nothing rule is the caller's to apply).
//!
//! Rules, liberal where devices differ and strict where a mistake would be clinical:
//! - `code.coding` must hold a `http://loinc.org` coding of one of our vitals (2708-6 and
//!   59408-5 both mean SpO2); other codings (MDC, local) are ignored. A LOINC vital we do not
//!   take is `not-supported`, naming the code.
//! - `status` final, amended or corrected (our `final`) or preliminary; anything else is
//!   refused: a cancelled or entered-in-error reading must not reach the alert rules.
//! - `subject.reference` is required and must be `Patient/<id>`; `device.reference`, when
//!   present, `Device/<id>` or `DeviceMetric/<id>` (HL7's own SpO2 example names a
//!   DeviceMetric). Absolute URLs, `#contained` and `urn:uuid:` references are refused: we
//!   resolve nothing.
//! - `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.start` is required and must be
//!   a full instant with a zone offset (vs-1 asks for the day at least; we need a moment).
//! - `valueQuantity` with `system` UCUM and the vital's UCUM `code` (`%`, `/min`, `Cel`;
//!   `[degF]` for temperature is converted to Cel), a finite value inside the vital's
//!   plausible range; or `dataAbsentReason` (its first coding's code), never both (obs-6).
//! - `category` is not required (many devices omit it).
//! - Test data: a `meta.security` or `meta.tag` coding with code `HTEST` ("test health data",
//!   `http://terminology.hl7.org/CodeSystem/v3-ActReason`, or with no system) marks the
//!   reading `test`. That is the HL7 security label for test data; nothing else counts.
//! - Names, telecoms, addresses, `contained` resources, notes, `performer`: never read, so
//!   never copied. Only codes, numbers, times, references and the first identifier leave here.

use atgw_sdk::event::{Coding, Observation};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::vitals::{self, DATA_ABSENT_REASON, LOINC, UCUM, Vital};

/// Most entries read from one Bundle. A gateway's devices post a few readings at a time; a
/// bigger Bundle is refused whole (`too-costly`) before any entry is read.
pub const MAX_ENTRIES: usize = 500;

/// Longest identifier, reference or code copied out of a body; longer is refused (`value`).
const MAX_TEXT: usize = 256;

/// HL7 v3 ActReason, whose `HTEST` marks test health data.
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// What a POSTed body was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Observation,
    Batch,
    Transaction,
}

/// One Observation read from the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Index in the Bundle (0 for a lone Observation).
    pub entry: usize,
    /// `Bundle.entry.fullUrl`.
    pub full_url: Option<String>,
    /// First identifier with a value, as `system|value` (the value alone if it has no system).
    pub identifier: Option<String>,
    /// `subject.reference`, e.g. `Patient/p-42`.
    pub patient: String,
    /// `device.reference`, e.g. `Device/ox-7`.
    pub device: Option<String>,
    /// `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.start`.
    pub effective: Timestamp,
    /// The FHIR status as sent: final, amended, corrected or preliminary.
    pub status: String,
    /// In our schema: name, code (the profile's LOINC code), mdc, value in our UCUM unit, unit,
    /// absent_reason, method (`pulse-oximetry` when coded 59408-5), status (final|preliminary).
    pub observation: Observation,
    /// Marked `HTEST` in `meta.security` or `meta.tag`.
    pub test: bool,
}

/// Why a body or one of its entries was refused, in OperationOutcome terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub entry: usize,
    /// An OperationOutcome `issue.code`: invalid, structure, required, value, not-supported,
    /// too-costly.
    pub code: &'static str,
    pub diagnostics: String,
    /// FHIRPath of the offending element, relative to the entry's resource
    /// (`Observation.valueQuantity.code`), or `Bundle.…` for the body as a whole.
    pub expression: String,
}

/// A body read: what it was, and each Observation or why it was refused, in entry order.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub posted: Posted,
    pub readings: Vec<Result<Reading, EntryError>>,
}

/// How the caller dealt with one entry, for [`response_bundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Created { location: String },
    Duplicate { location: String },
    Failed(EntryError),
}

fn err(
    entry: usize,
    code: &'static str,
    expression: &str,
    diagnostics: impl Into<String>,
) -> EntryError {
    EntryError {
        entry,
        code,
        diagnostics: diagnostics.into(),
        expression: expression.to_owned(),
    }
}

/// Reads a POSTed body. `Err` means the body as a whole is unusable: not JSON, neither an
/// Observation nor a Bundle, a Bundle of another type than batch or transaction, or more than
/// [`MAX_ENTRIES`] entries.
pub fn read(body: &[u8]) -> Result<Read, EntryError> {
    // serde_json caps nesting (128 levels), so a hostile body cannot exhaust the stack.
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| err(0, "invalid", "", format!("the body is not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(err(0, "structure", "", "the body is not a JSON object"));
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some("Observation") => Ok(Read {
            posted: Posted::Observation,
            readings: vec![observation(0, None, obj)],
        }),
        Some("Bundle") => bundle(obj),
        Some(other) => Err(err(
            0,
            "not-supported",
            "",
            format!(
                "resourceType `{}` is not accepted; post an Observation or a batch or transaction Bundle",
                clip(other)
            ),
        )),
        None => Err(err(
            0,
            "required",
            "",
            "the body has no string `resourceType`",
        )),
    }
}

fn bundle(obj: &Map<String, Value>) -> Result<Read, EntryError> {
    let posted = match obj.get("type").and_then(Value::as_str) {
        Some("batch") => Posted::Batch,
        Some("transaction") => Posted::Transaction,
        Some(other) => {
            return Err(err(
                0,
                "not-supported",
                "Bundle.type",
                format!(
                    "Bundle.type `{}` is not accepted; use batch or transaction",
                    clip(other)
                ),
            ));
        }
        None => return Err(err(0, "required", "Bundle.type", "Bundle.type is missing")),
    };
    let entries: &[Value] = match obj.get("entry") {
        None => &[],
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(err(
                0,
                "structure",
                "Bundle.entry",
                "Bundle.entry must be an array",
            ));
        }
    };
    if entries.len() > MAX_ENTRIES {
        return Err(err(
            0,
            "too-costly",
            "Bundle.entry",
            format!(
                "the Bundle has {} entries; at most {MAX_ENTRIES} are taken in one request",
                entries.len()
            ),
        ));
    }
    let readings = entries
        .iter()
        .enumerate()
        .map(|(i, e)| bundle_entry(i, e))
        .collect();
    Ok(Read { posted, readings })
}

fn bundle_entry(i: usize, entry: &Value) -> Result<Reading, EntryError> {
    let Some(entry) = entry.as_object() else {
        return Err(err(
            i,
            "structure",
            "Bundle.entry",
            "the entry is not an object",
        ));
    };
    let full_url = match entry.get("fullUrl") {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_TEXT => Some(s.clone()),
        Some(_) => {
            return Err(err(
                i,
                "value",
                "Bundle.entry.fullUrl",
                format!("fullUrl must be a string of at most {MAX_TEXT} bytes"),
            ));
        }
    };
    // A request is optional here (liberal), but one that asks for something other than
    // creating or updating a reading is not ours to carry out.
    if let Some(method) = entry
        .get("request")
        .and_then(|r| r.get("method"))
        .and_then(Value::as_str)
        && method != "POST"
        && method != "PUT"
    {
        return Err(err(
            i,
            "not-supported",
            "Bundle.entry.request.method",
            format!(
                "request.method `{}` is not accepted; only POST (or PUT) of an Observation",
                clip(method)
            ),
        ));
    }
    let Some(resource) = entry.get("resource").and_then(Value::as_object) else {
        return Err(err(
            i,
            "required",
            "Bundle.entry.resource",
            "the entry has no resource",
        ));
    };
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Observation") => observation(i, full_url, resource),
        other => Err(err(
            i,
            "not-supported",
            "Bundle.entry.resource",
            format!(
                "resource `{}` is not accepted; only Observations",
                clip(other.unwrap_or("(none)"))
            ),
        )),
    }
}

/// Reads one Observation (`obj` is known to have resourceType Observation).
fn observation(
    entry: usize,
    full_url: Option<String>,
    obj: &Map<String, Value>,
) -> Result<Reading, EntryError> {
    let e = |code, expr: &str, d: String| err(entry, code, expr, d);
    let status = match obj.get("status").and_then(Value::as_str) {
        Some(s @ ("final" | "amended" | "corrected" | "preliminary")) => s.to_owned(),
        Some(other) => {
            return Err(e(
                "value",
                "Observation.status",
                format!(
                    "status `{}` is not accepted; only final, amended, corrected or preliminary readings",
                    clip(other)
                ),
            ));
        }
        None => {
            return Err(e(
                "required",
                "Observation.status",
                "status is required".into(),
            ));
        }
    };
    let (vital, by_oximetry, mdc) = code(obj).map_err(|(c, d)| e(c, "Observation.code", d))?;
    let patient = reference(obj, "subject", &["Patient"])
        .map_err(|(c, d)| e(c, "Observation.subject", d))?
        .ok_or_else(|| {
            e(
                "required",
                "Observation.subject",
                "subject (a Patient reference) is required".into(),
            )
        })?;
    let device = reference(obj, "device", &["Device", "DeviceMetric"])
        .map_err(|(c, d)| e(c, "Observation.device", d))?;
    let effective = effective(obj).map_err(|(c, expr, d)| e(c, expr, d))?;
    let (value, absent_reason) = value(obj, vital).map_err(|(c, expr, d)| e(c, expr, d))?;
    let identifier = identifier(obj).map_err(|d| e("value", "Observation.identifier", d))?;
    Ok(Reading {
        entry,
        full_url,
        identifier,
        patient,
        device,
        effective,
        observation: Observation {
            name: vital.name.to_owned(),
            code: Some(Coding {
                system: LOINC.to_owned(),
                code: vital.loinc.to_owned(),
            }),
            mdc: mdc.or(vital.mdc),
            value,
            unit: Some(vital.ucum.to_owned()),
            absent_reason,
            method: by_oximetry.then(|| "pulse-oximetry".to_owned()),
            status: Some(
                if status == "preliminary" {
                    "preliminary"
                } else {
                    "final"
                }
                .to_owned(),
            ),
        },
        status,
        test: is_test(obj),
    })
}

type Problem = (&'static str, String);

/// The vital `code.coding` names, whether it said "by pulse oximetry" (59408-5), and an MDC
/// code if one was sent.
fn code(obj: &Map<String, Value>) -> Result<(&'static Vital, bool, Option<u32>), Problem> {
    let codings = obj
        .get("code")
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .ok_or(("required", "code.coding is required".to_owned()))?;
    let mut found: Option<&'static Vital> = None;
    let mut oximetry = false;
    let mut mdc = None;
    let mut other_loinc = Vec::new();
    for c in codings {
        let system = c.get("system").and_then(Value::as_str);
        let Some(code) = c.get("code").and_then(Value::as_str) else {
            continue;
        };
        match system {
            Some(LOINC) => match vitals::by_loinc(code) {
                Some(v) => {
                    if found.is_some_and(|f| f.name != v.name) {
                        return Err((
                            "invalid",
                            "code.coding names two different vital signs".to_owned(),
                        ));
                    }
                    oximetry |= code == "59408-5";
                    found = Some(v);
                }
                None => other_loinc.push(clip(code).to_owned()),
            },
            Some(vitals::MDC) => mdc = code.parse().ok(),
            _ => {}
        }
    }
    match found {
        Some(v) => Ok((v, oximetry, mdc)),
        None if !other_loinc.is_empty() => Err((
            "not-supported",
            format!(
                "LOINC {} is not a vital sign atgw takes (SpO2 2708-6/59408-5, respiratory rate 9279-1, heart rate 8867-4, body temperature 8310-5)",
                other_loinc.join(", ")
            ),
        )),
        None => Err((
            "required",
            "code.coding has no http://loinc.org coding of a vital sign".to_owned(),
        )),
    }
}

/// `<key>.reference` as `Type/id` with Type in `types`: None when `key` is absent.
fn reference(
    obj: &Map<String, Value>,
    key: &str,
    types: &[&str],
) -> Result<Option<String>, Problem> {
    let Some(r) = obj.get(key) else {
        return Ok(None);
    };
    let Some(s) = r.get("reference").and_then(Value::as_str) else {
        return if key == "subject" {
            Err((
                "required",
                "subject.reference is required (a display or identifier alone is not resolved)"
                    .into(),
            ))
        } else {
            Ok(None)
        };
    };
    match s.split_once('/') {
        Some((t, id)) if types.contains(&t) && is_fhir_id(id) => Ok(Some(s.to_owned())),
        _ => Err((
            "value",
            format!(
                "{key}.reference `{}` must be {}/<id> (a relative literal reference; ids are 1-64 of A-Z a-z 0-9 - .)",
                clip(s),
                types.join("/<id> or ")
            ),
        )),
    }
}

/// FHIR R4 `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

type PathProblem = (&'static str, &'static str, String);

fn effective(obj: &Map<String, Value>) -> Result<Timestamp, PathProblem> {
    let (path, text) = if let Some(v) = obj.get("effectiveDateTime") {
        ("Observation.effectiveDateTime", v.as_str())
    } else if let Some(v) = obj.get("effectiveInstant") {
        ("Observation.effectiveInstant", v.as_str())
    } else if let Some(p) = obj.get("effectivePeriod") {
        (
            "Observation.effectivePeriod.start",
            p.get("start").and_then(Value::as_str),
        )
    } else {
        return Err((
            "required",
            "Observation.effective[x]",
            "effectiveDateTime (or effectivePeriod.start) is required".into(),
        ));
    };
    let Some(text) = text else {
        return Err(("required", path, "the time must be a string".into()));
    };
    text.parse::<Timestamp>().map_err(|_| {
        (
            "value",
            path,
            format!(
                "`{}` is not a full date and time with a zone offset (e.g. 2026-04-17T15:33:22Z)",
                clip(text)
            ),
        )
    })
}

/// The value in the vital's UCUM unit, or the data-absent reason.
fn value(
    obj: &Map<String, Value>,
    vital: &Vital,
) -> Result<(Option<f64>, Option<String>), PathProblem> {
    let dar = obj.get("dataAbsentReason");
    let q = obj.get("valueQuantity");
    if let Some(k) = obj
        .keys()
        .find(|k| k.starts_with("value") && k.as_str() != "valueQuantity")
    {
        return Err((
            "not-supported",
            "Observation.value[x]",
            format!(
                "`{}` is not accepted; a vital sign is a valueQuantity",
                clip(k)
            ),
        ));
    }
    match (q, dar) {
        (Some(_), Some(_)) => Err((
            "invalid",
            "Observation.dataAbsentReason",
            "dataAbsentReason must not be present with a value (obs-6)".into(),
        )),
        (None, Some(d)) => {
            let code = d
                .get("coding")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find_map(|c| c.get("code").and_then(Value::as_str))
                })
                .filter(|c| c.len() <= MAX_TEXT && !c.is_empty());
            match code {
                Some(c) => Ok((None, Some(c.to_owned()))),
                None => Err((
                    "required",
                    "Observation.dataAbsentReason.coding",
                    format!(
                        "dataAbsentReason needs a coding with a code (e.g. {DATA_ABSENT_REASON}#not-a-number)"
                    ),
                )),
            }
        }
        (None, None) => Err((
            "required",
            "Observation.value[x]",
            "a valueQuantity or a dataAbsentReason is required (vs-2)".into(),
        )),
        (Some(q), None) => quantity(q, vital).map(|v| (Some(v), None)),
    }
}

fn quantity(q: &Value, vital: &Vital) -> Result<f64, PathProblem> {
    let system = q.get("system").and_then(Value::as_str);
    if system != Some(UCUM) {
        return Err((
            "value",
            "Observation.valueQuantity.system",
            format!("valueQuantity.system must be {UCUM}"),
        ));
    }
    let code = q.get("code").and_then(Value::as_str).unwrap_or("");
    let convert: fn(f64) -> f64 = if code == vital.ucum {
        |v| v
    } else if vital.name == "body_temperature" && code == "[degF]" {
        |f| (f - 32.0) * 5.0 / 9.0
    } else {
        return Err((
            "value",
            "Observation.valueQuantity.code",
            format!(
                "UCUM code `{}` is not the unit of {} (`{}`)",
                clip(code),
                vital.name,
                vital.ucum
            ),
        ));
    };
    let Some(raw) = q.get("value").and_then(Value::as_f64) else {
        return Err((
            "required",
            "Observation.valueQuantity.value",
            "valueQuantity.value must be a number (or send dataAbsentReason instead)".into(),
        ));
    };
    let v = convert(raw);
    if !vital.plausible(v) {
        return Err((
            "value",
            "Observation.valueQuantity.value",
            format!(
                "{raw} {code} is not a believable {} (accepted {}-{} {})",
                vital.name, vital.range.0, vital.range.1, vital.ucum
            ),
        ));
    }
    Ok(v)
}

fn identifier(obj: &Map<String, Value>) -> Result<Option<String>, String> {
    let Some(ids) = obj.get("identifier").and_then(Value::as_array) else {
        return Ok(None);
    };
    let Some(first) = ids
        .iter()
        .find(|i| i.get("value").and_then(Value::as_str).is_some())
    else {
        return Ok(None);
    };
    let value = first
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = match first.get("system").and_then(Value::as_str) {
        Some(system) => format!("{system}|{value}"),
        None => value.to_owned(),
    };
    if text.len() > MAX_TEXT || text.is_empty() {
        return Err(format!(
            "the identifier must be 1-{MAX_TEXT} bytes as system|value"
        ));
    }
    Ok(Some(text))
}

fn is_test(obj: &Map<String, Value>) -> bool {
    let Some(meta) = obj.get("meta") else {
        return false;
    };
    ["security", "tag"].iter().any(|k| {
        meta.get(k).and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("code").and_then(Value::as_str) == Some("HTEST")
                    && c.get("system")
                        .and_then(Value::as_str)
                        .is_none_or(|s| s == ACT_REASON)
            })
        })
    })
}

/// At most 64 characters of a stranger's text for a diagnostic (on a char boundary).
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// An OperationOutcome with one `error` issue per error. `expression` is relative to the
/// entry's resource; with errors from several entries of a Bundle each diagnostic starts with
/// its entry number. With no errors (which should not be answered with one) a single
/// `information` issue says so, as `issue` is 1..*.
pub fn operation_outcome(errors: &[EntryError]) -> Value {
    let several = errors.iter().any(|e| e.entry != errors[0].entry);
    let issues: Vec<Value> = errors
        .iter()
        .map(|e| {
            let diagnostics = if several {
                format!("entry {}: {}", e.entry, e.diagnostics)
            } else {
                e.diagnostics.clone()
            };
            let mut issue =
                json!({"severity": "error", "code": e.code, "diagnostics": diagnostics});
            if !e.expression.is_empty() {
                issue["expression"] = json!([e.expression]);
            }
            issue
        })
        .collect();
    let issues = if issues.is_empty() {
        vec![
            json!({"severity": "information", "code": "informational", "diagnostics": "no errors"}),
        ]
    } else {
        issues
    };
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

/// The batch-response or transaction-response Bundle: one entry per input entry, in order.
/// A lone Observation is answered as a batch-response of one (the caller may instead answer it
/// with the status and `Location` alone).
pub fn response_bundle(posted: &Posted, outcomes: &[EntryOutcome]) -> Value {
    let kind = match posted {
        Posted::Transaction => "transaction-response",
        Posted::Batch | Posted::Observation => "batch-response",
    };
    let entries: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            EntryOutcome::Created { location } => {
                json!({"response": {"status": "201 Created", "location": location}})
            }
            EntryOutcome::Duplicate { location } => {
                json!({"response": {"status": "200 OK", "location": location}})
            }
            EntryOutcome::Failed(e) => json!({"response": {
                "status": "400 Bad Request",
                "outcome": operation_outcome(std::slice::from_ref(e)),
            }}),
        })
        .collect();
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

#[cfg(test)]
mod tests;
