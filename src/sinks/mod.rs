//! Sinks the core implements itself (protocol sinks live in their adapter crates, e.g. the MQTT
//! upstream sink in `atgw-mqtt`).

pub mod file;
