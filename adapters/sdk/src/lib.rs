//! atgw-sdk: what every adapter and sink shares with the core, and nothing that knows SQLite or
//! alert policy.
//!
//! # Layout
//! - [`audit`]: `atgw audit`'s findings (ETSI EN 303 645), for components' own checks.
//! - [`bundle`]: holding notifications to the same people for one message (email, SMS; pure).
//! - [`component`]: the `Adapter` and `Sink` contracts every protocol and output implements.
//! - [`fhir`]: the FHIR Patient and Device ids the registry assigns, for FHIR sinks.
//! - [`event`]: the normalised event, schema v1, and the draft an adapter submits.
//! - [`schema`]: the JSON Schema document of schema v1 (`atgw schema` prints it).
//! - [`ingest`]: the handle through which an adapter commits events before acknowledging a device.
//! - [`sink`]: the contract between the outbox and an output.
//! - [`health`]: counters and connection state each component reports.
//! - [`clock`]: injected wall-clock time, so timers are tested without sleeping.
//! - [`peer_budget`]: connections and requests per second per client address.
//! - [`ratelimit`]: one log line per problem per interval, however fast bad input arrives.
//! - `testkit` (feature `testkit`): the conformance kit every adapter runs from its tests.
//! - [`secret`]: secrets read from files or systemd credentials, never printable.
//! - `listener` (feature `listener`): capped, idle-timed and TLS listeners for axum servers.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bundle;
pub mod clock;
pub mod component;
pub mod event;
pub mod fhir;
pub mod health;
pub mod ingest;
#[cfg(feature = "listener")]
pub mod listener;
pub mod peer_budget;
pub mod ratelimit;
pub mod schema;
pub mod secret;
pub mod sink;
pub mod suggest;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use event::{Event, EventData, EventDraft, Kind, Phase, Priority};
pub use health::Health;
pub use ingest::{Committed, DeadLetter, Ingest, IngestError, Seen, StateUpdate, Submission};

/// Cooperative shutdown, shared by every task (cancelled once, observed everywhere).
pub use tokio_util::sync::CancellationToken as Shutdown;
