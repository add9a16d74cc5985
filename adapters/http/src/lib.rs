//! atgw-http: atgw's HTTP output, the `webhook` sink (DESIGN §7): committed events are POSTed
//! as CloudEvents structured JSON over HTTPS, signed per Standard Webhooks v1, one outbox row
//! released per 2xx.
//!
//! # Layout
//! - [`signing`]: Standard Webhooks v1 secrets, `sign` and `verify` (pure, no I/O).
//! - [`audit`]: `atgw audit`'s check of the webhook target.
//! - [`component`]: the sink under atgw-sdk's component contract.
//! - [`config`]: `[[sink]] type = "webhook"`, field by field, and its validation.
//! - [`response`]: what an HTTP status and `Retry-After` mean for the outbox (pure).
//! - [`sink`]: the task that turns `Delivery`s into signed POSTs and answers `Outcome`s.
//! - [`client`]: the HTTPS client an HTTP sink builds (timeouts, no redirects, TLS roots).
//! - [`error`]: why a webhook sink cannot start.
//!
//! TLS is rustls with whatever crypto provider the process installed (atgw installs ring at
//! startup); this crate pulls neither aws-lc nor OpenSSL.
#![forbid(unsafe_code)]

pub mod audit;
pub mod client;
pub mod component;
pub mod config;
pub mod error;
pub mod response;
pub mod signing;
pub mod sink;

pub use component::WebhookSink;
pub use config::WebhookConfig;
pub use error::WebhookError;
pub use sink::run;
