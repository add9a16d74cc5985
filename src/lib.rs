//! atgw: the assistive-technology telemetry gateway daemon.
//!
//! # Layout
//! - [`components`]: the one list of adapter and sink types (the component contract's other half).
//! - [`config`]: the configuration file, its loading and its checks.
//! - [`registry`]: `[[device]]` entries; who and where a device is.
//! - [`gateway_alerts`]: the gateway's own alert when one of its caps is reached.
//! - [`envelope`]: an adapter's draft becomes the journaled CloudEvent.
//! - [`journal`]: the SQLite journal, its single writer and its readers.
//! - [`pipeline`]: what happens to an event inside its transaction (dedupe, seal, rules,
//!   alerts, outbox rows); the writer runs it.
//! - [`paths`]: the paths atgw owns (`data_dir`, file sinks): no symlinks followed, no foreign
//!   directory chmodded.
//! - [`outbox`]: per-sink dispatch of committed events, alarms first, with retries.
//! - [`sinks`]: sinks implemented in the core (`file`).
//! - [`alerts`]: policies, the alert lifecycle, escalation timers.
//! - [`api`]: the local HTTP API (token required except `/healthz` and `/readyz`).
//! - [`api_act`]: acting as a person on alerts and shelves, shared by the token API and the console.
//! - [`api_listener`]: the API's listener: its connection cap and idle timeout.
//! - [`api_tls`]: TLS on that listener (configured or self-signed certificate).
//! - [`console`]: the care-team console (a live page on the API's listener, per-user logins).
//! - [`metrics`]: the metrics registry and its Prometheus exposition (`/metrics`).
//! - [`readiness`]: per-adapter and per-sink readiness (`/readyz`).
//! - [`rules`]: vital-sign thresholds that derive alerts from measurements.
//! - [`rota`]: people, teams and shifts (who is on shift now) and policies' time windows; pure.
//! - [`supervision`]: `device_offline` when a supervised device misses its check-in.
//! - [`runtime`]: starts and stops the whole daemon in the right order.
//! - [`daemon`]: the service's life: reload on SIGHUP, drain on SIGTERM.
//! - [`systemd`]: `Type=notify` readiness, status, and the watchdog that proves the journal
//!   still commits.
//! - [`cli`]: the command line (the binary's edge: dispatches to the daemon and to the tools);
//!   [`logging`]: where log lines go.
//! - [`tools`]: the commands around the daemon (demo, simulate, report, audit, alerts,
//!   profile test, manual pages, a private broker); nothing above imports them.
//!
//! Protocol code lives in `adapters/*` crates; the event schema and the adapter/sink contracts in
//! `atgw-sdk`.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod api_act;
pub mod api_listener;
pub mod api_tls;
pub mod cli;
pub mod components;
pub mod config;
pub mod console;
pub mod daemon;
pub mod envelope;
pub mod gateway_alerts;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod paths;
pub mod pipeline;
pub mod readiness;
pub mod registry;
pub mod rota;
pub mod rules;
pub mod runtime;
pub mod sinks;
pub mod supervision;
pub mod systemd;
pub mod tools;

/// Adapter name of events the gateway raises about itself.
pub const GATEWAY_ADAPTER: &str = "gateway";
