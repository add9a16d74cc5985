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
//! - [`mapping`]: a call block → the submission to commit (kind, phase, priority, registry
//!   key, dedupe key) and the adapter's memory across blocks and restarts.
//! - [`config`]: the adapter's and the sink's serde configs, documented field by field.
//! - [`serial`]: a local serial port (termios) as a tokio byte stream.
//! - [`transport`]: TCP listener, TCP client to a serial server, or serial port.
//! - [`adapter`]: the nurse-call adapter (atgw as the paging system): commit, then ACK.
//! - [`page`]: a delivery → the blocks paging its handsets (text cut for the display).
//! - [`status`]: header 2 status reports from the paging system (paged, absent, acknowledged).
//! - [`sink`]: the paging sink (atgw as the control station): delivered only on ACK.
//! - [`audit`]: `atgw audit`'s checks of the link (ESPA has no authentication).
//! - [`simulator`]: `atgw simulate espa`: a control station sending calls, a paging system
//!   printing pages.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod audit;
pub mod block;
pub mod config;
pub mod mapping;
pub mod page;
pub mod receive;
pub mod send;
pub mod serial;
pub mod simulator;
pub mod sink;
pub mod status;
pub mod transport;
pub mod wire;

pub use adapter::EspaAdapter;
pub use sink::EspaSink;
