//! atgw-example-line: a worked example of an atgw adapter, for integrators to copy.
//!
//! The protocol ("LINE/1") is made up and deliberately small: a device connects over TCP and
//! sends one event per line, `<seq> <device> <kind> [<phase>]`, for example
//! `17 pendant-3 pendant_press`. `kind` is a schema v1 kind, `phase` defaults to `raised`. The
//! gateway answers `ACK <seq>` once the event is committed, `NAK <seq> <reason>` when it could
//! not commit it (the device resends) or `NAK - <reason>` for a line it cannot read.
//!
//! # Layout (the shape every adapter crate has)
//! - [`line`]: the pure codec: bytes → a typed line or a typed error, never a panic.
//! - [`config`]: the `[[adapter]] type = "example-line"` table, with its validation.
//! - [`adapter`]: the contract ([`atgw_sdk::component::Adapter`]) and the I/O: listen, read
//!   lines, commit through `Ingest`, and only then answer.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod config;
pub mod line;

pub use adapter::LineAdapter;
pub use config::Config;
