//! atgw-fhir: atgw's FHIR R4 side (docs/FHIR.md).
//!
//! # Layout
//! - [`vitals`]: the one table of vital signs (name, LOINC, extra codings, UCUM, profile,
//!   plausible range) that both directions read.
//! - [`inbound`]: a POSTed Observation or batch/transaction Bundle read into readings, and the
//!   OperationOutcome and response Bundle that answer it (pure, no I/O; the HTTP ingest
//!   adapter serves it).
#![forbid(unsafe_code)]

pub mod inbound;
pub mod vitals;
