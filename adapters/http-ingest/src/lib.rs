//! atgw-http-ingest: vendor clouds and FHIR clients that push events over HTTPS. Each route
//! is a vendor: its path prefix, how its requests prove who sent them, and either device
//! profiles (the same engine as the MQTT adapter, applied to the JSON body with the path as
//! topic and headers and query as `@` paths) or FHIR R4 Observations. A request is answered
//! `2xx` only after its events are committed; the vendor's event id makes its retries land once.
//!
//! # Layout
//! - [`config`]: `[[adapter]] type = "http"` and its `[[adapter.route]]`s.
//! - [`auth`]: the authentication schemes (Standard Webhooks, HMAC, tokens, Basic).
//! - [`route`]: a route as the server runs it, and which route takes a path.
//! - [`request`]: the headers and query a profile's `@` paths read.
//! - [`server`]: the one request handler: limits, authentication, mapping, commit, answer.
//! - [`fhir`]: FHIR R4 Observations and Bundles in (mapping by `atgw-fhir`).
//! - [`listen`]: the capped, idle-timed (TLS) listener and shutdown.
//! - [`component`]: the adapter under the component contract.
//! - [`sign`]: the sender's side of each scheme (the simulator's and the tests').
//! - [`simulator`]: `atgw simulate http`: a vendor cloud posting signed webhooks.
//! - [`audit`]: `atgw audit` findings.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod component;
pub mod config;
pub mod fhir;
pub mod listen;
pub mod request;
pub mod route;
pub mod server;
pub mod sign;
pub mod simulator;

pub use component::HttpAdapter;
pub use config::Config;
