//! FHIR R4 in: pending the atgw-fhir merge.
use crate::route::Route;
use crate::server::Shared;
use axum::body::Bytes;
use axum::response::Response;
use std::net::SocketAddr;
pub const REGISTRY_KEYS: &[&str] = &["patient", "device"];
pub async fn handle(
    s: &Shared,
    _route: &Route,
    _path: &str,
    _body: Bytes,
    _peer: SocketAddr,
) -> Response {
    s.unavailable("fhir pending")
}
