//! atgw-fhir: atgw's FHIR R4 side (docs/FHIR.md): vital-sign Observations read from POSTed
//! bodies (for the HTTP ingest adapter), and the `fhir` sink, which sends vital signs as
//! Observations and alerts as Communications in transaction Bundles of conditional updates.
//!
//! Alerts are `Communication`s ("this alert was sent to the care team", with a status that
//! goes from in-progress to completed), not `Flag`s: a Flag is a standing warning on a
//! patient's record ("at risk of falls"), which a care team sets, not a live event from a
//! device. (R6's DeviceAlert would fit best; it is not in R4.)
//!
//! # Layout
//! - [`vitals`]: the one table of vital signs (name, LOINC, extra codings, UCUM, profile,
//!   plausible range) that both directions read.
//! - [`inbound`]: a POSTed Observation or batch/transaction Bundle read into readings, and the
//!   OperationOutcome and response Bundle that answer it (pure, no I/O).
//! - [`outbound`]: an event as transaction entries (Observation, Communication), the
//!   transaction Bundle, and the reading of the server's transaction-response (pure).
//! - [`config`]: `[[sink]] type = "fhir"`, field by field, and its validation.
//! - [`sink`]: the task that batches deliveries into transactions, keeps each device's order,
//!   and answers `Outcome`s.
//! - [`component`]: the sink under atgw-sdk's component contract.
//! - [`audit`]: `atgw audit`'s checks of a FHIR sink.
//! - [`error`]: why a FHIR sink cannot start.
//!
//! TLS is rustls with whatever crypto provider the process installed (atgw installs ring);
//! this crate pulls neither aws-lc nor OpenSSL.
#![forbid(unsafe_code)]

pub mod audit;
pub mod component;
pub mod config;
pub mod error;
pub mod inbound;
pub mod outbound;
pub mod sink;
pub mod vitals;

pub use component::FhirSink;
pub use config::FhirConfig;
pub use error::FhirError;

/// `type = "fhir"` in `[[sink]]`.
pub const SINK_TYPE: &str = "fhir";
