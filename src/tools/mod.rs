//! The commands around the daemon: what an integrator, a pilot lead or a test runs, never
//! imported by the daemon's core (the core is everything in `src/` outside this folder; the
//! command line in `crate::cli` dispatches to both).
//!
//! - [`demo`]: `atgw demo`, the self-contained tour.
//! - [`simulate`]: `atgw simulate`, device simulators speaking the real wire.
//! - [`report`]: `atgw report`, the pilot evaluation (HTML with SVG charts, CSV) from the journal.
//! - [`audit`]: `atgw audit`, the security self-check against ETSI EN 303 645.
//! - [`alerts_cmd`]: `atgw alerts`, listing and acting on alerts from the shell.
//! - [`dead_letters`]: `atgw dead-letters`, what the adapters could not read.
//! - [`users_cmd`]: `atgw users`, the console's accounts.
//! - [`profile_test`]: `atgw profile test`, a profile run against sample messages.
//! - [`manpage`]: the manual pages.
//! - [`mosquitto`]: a private broker child process for the demo, tests and benchmarks.

pub mod alerts_cmd;
pub mod audit;
pub mod dead_letters;
pub mod demo;
pub mod manpage;
pub mod mosquitto;
pub mod profile_test;
pub mod report;
pub mod simulate;
pub mod users_cmd;
