//! The SIP subset SCAIP needs (RFC 3261, RFC 3428 MESSAGE): messages, URIs, TCP framing, digest
//! authentication as a server, UDP server transactions and registrations. Written for this
//! subset rather than taken from a crate: the few Rust SIP crates (`rsip`, `sipmsg`, `libsip`)
//! are either unmaintained or far larger than the six headers a SCAIP receiver reads, and this
//! one is fuzzed (`fuzz/fuzz_targets/sip_message.rs`).
pub mod digest;
pub mod framing;
pub mod message;
pub mod nonce_counts;
pub mod registrar;
pub mod transactions;
pub mod uri;

pub use message::{Message, SipError, StartLine};
