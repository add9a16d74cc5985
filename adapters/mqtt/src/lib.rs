//! atgw-mqtt: MQTT 3.1.1 (rumqttc) in both directions.
//!
//! # Layout
//! - [`audit`]: `atgw audit`'s checks of broker links and MQTT input.
//! - [`component`]: the adapter and the sink under atgw-sdk's component contract.
//! - [`config`]: `[[adapter]] type = "mqtt"` and `[[sink]] type = "mqtt"`, field by field.
//! - [`connection`]: rumqttc options (persistent session, credentials, rustls TLS, NODELAY) and
//!   the reconnect backoff rumqttc lacks.
//! - [`ingress`]: the device-facing adapter: profiles, commit, then PUBACK.
//! - [`window`]: the bound on messages held between read and commit, and the PUBACK queue.
//! - [`tracker`]: ties rumqttc's packet ids back to outbox rows, replay-aware.
//! - [`sink`]: the upstream sink that releases an outbox row only on its PUBACK.
//! - [`control`]: alert acknowledgements and resolutions from care teams over MQTT.
#![forbid(unsafe_code)]

pub mod audit;
pub mod component;
pub mod config;
pub mod connection;
pub mod control;
pub mod ingress;
pub mod sink;
pub mod tracker;
pub mod window;
