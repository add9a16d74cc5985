//! atgw-espa444: ESPA 4.4.4, the serial interface between nurse-call systems and paging or DECT
//! systems (legacy.md §4). atgw sits on both sides: as the **paging system** (adapter) it takes
//! the nurse-call system's calls in as events, ACKing each block only after its event is
//! committed; as the **control station** (sink) it pages carers' handsets with alerts, counting
//! a page delivered only on the paging system's ACK.
//!
//! # Layout
//! - [`block`]: the data block's typed form, its decode (BCC, records, Latin-1) and encode.
//! - [`wire`]: stream reassembly, bytes as they arrive → link tokens (bounded, noise-proof).
//! - [`receive`]: the paging-system side of the link as a pure state machine.
//! - [`send`]: the control-station side sending one block, as a pure state machine.
#![forbid(unsafe_code)]

pub mod block;
pub mod receive;
pub mod send;
pub mod wire;
