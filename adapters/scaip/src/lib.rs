//! atgw-scaip: a SCAIP (SS 91100, CLC/TS 50134-9) alarm receiver for atgw. Digital social-alarm
//! units and grouped schemes send `<mrq>` XML in SIP `MESSAGE`s; we authenticate them, decode
//! and map the request, commit it through the ingest handle, and only then answer `200 OK`
//! and send the `<mrs>` reply.
//!
//! # Layout
//! - [`codec`]: the `<mrq>`/`<mrs>` XML: typed requests, typed errors carrying their `snu`.
//! - [`mapping`]: a request → an `EventDraft` (Annex A/C/D codes → kind, phase, zone).
//! - [`sip`]: the SIP subset: messages, URIs, stream framing, digest auth, transactions,
//!   registrations.
//! - [`handler`]: the decision for one SCAIP request (dead letter, commit, answer) as data.
//! - [`config`]: the adapter's serde config, documented field by field, and its validation.
//! - [`dispatch`]: one SIP request → its response and `<mrs>` MESSAGE: methods, digest auth,
//!   registrations, and the commit that comes before any answer.
//! - [`server`]: the UDP, TCP and TLS listeners executing those decisions, and the client side
//!   of our `<mrs>` MESSAGEs (UDP retransmission).
//! - [`tls`]: rustls server (and simulator client) configs for SIP over TLS (`sips:`).
//! - [`audit`]: `atgw audit`'s checks of the receiver.
//! - [`component`]: the receiver under atgw-sdk's component contract.
//! - [`simulator`]: a unit (`atgw simulate scaip`) that checks every answer it gets.
#![forbid(unsafe_code)]

pub mod audit;
pub mod codec;
pub mod component;
pub mod config;
pub mod dispatch;
pub mod handler;
pub mod mapping;
pub mod server;
pub mod simulator;
pub mod sip;
pub mod tls;

pub use component::ScaipComponent;
pub use config::Config;
