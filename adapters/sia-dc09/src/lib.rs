//! atgw-sia-dc09: a SIA DC-09 receiver (CSR) for atgw. Panels and social-alarm hubs report
//! Contact ID or SIA DC-03 events over TCP or UDP; we check, decrypt, map them to atgw events,
//! commit them through the ingest handle, and only then acknowledge.
//!
//! # Layout
//! - [`frame`]: one frame's typed form, its parse (CRC, length, header, data) and its encoding.
//! - [`codec`]: stream reassembly, bytes as they arrive → complete `LF…CR` frames (bounded).
//! - [`timestamp`]: the `_HH:MM:SS,MM-DD-YYYY` timestamp and the −40 s/+20 s window.
//! - [`crypto`]: AES-CBC with zero IV and prefix pad; keys in hex or ASCII form.
//! - [`contact_id`]: Contact ID (ADM-CID) payloads and their event-code table.
//! - [`sia`]: SIA DC-03 (SIA-DCS) payloads and their code table.
//! - [`mapping`]: decoded payload → `EventDraft`s (kind, phase, device, registry keys, message).
//! - [`keys`]: the registry keys (`account`, `zone`) in their one canonical form, for both the
//!   events we report and the `[[device]] match` values the core loads.
//! - [`response`]: the ACK / `*ACK`, NAK and DUH we send.
//! - [`handler`]: the decision for one frame (dead letter, commit, answer) as data, no I/O.
//! - [`config`]: the adapter's serde config, documented field by field, and its validation.
//! - [`budget`]: per-peer connection and frame-rate budgets, and rate-limited warnings.
//! - [`connections`]: the TCP connection table (the oldest frameless connection makes room).
//! - [`adapter`]: binding the listeners and running them: the TCP and UDP loops that execute
//!   the handler's decisions against `Ingest` (commit, then ACK).
//! - [`component`]: the receiver under atgw-sdk's component contract.
//! - [`audit`]: `atgw audit`'s checks of the receiver (listeners, encryption, input).
//! - [`simulator`]: a transmitter (`atgw simulate dc09`) that checks every answer it gets.
//! - [`error`]: the adapter's top-level error.
#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod contact_id;
pub mod crypto;
pub mod frame;
pub mod handler;
pub mod keys;
pub mod mapping;
pub mod response;
pub mod sia;
pub mod timestamp;

pub mod adapter;
pub mod audit;
pub mod budget;
pub mod component;
pub mod connections;
pub mod error;

pub use adapter::{Dc09Adapter, run};
pub use component::Dc09Component;
pub use config::Config;
pub use error::Dc09Error;
pub mod simulator;

pub use simulator::{SimReport, SimulatorConfig, simulate};
