//! Rules: pure functions that turn committed events into alert verdicts.
//!
//! A rule is a function of (configuration, its persisted state, the event's content, the event's
//! time) that returns verdicts and updates the state. It does no I/O and reads no clock, so the
//! journal's single writer can run it inside the transaction that commits the event, persist the
//! state beside the event, and a restart neither forgets a half-met persistence count nor repeats
//! a raise. The same purity lets the tests replay long sequences in microseconds.
//!
//! # Layout
//! - [`vitals`]: vital-sign thresholds (NEWS2 bands by default, per-resident overrides,
//!   persistence before raising, absent readings that never breach).

pub mod vitals;
