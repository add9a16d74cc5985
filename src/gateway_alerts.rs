//! The alerts the gateway raises about itself when one of its documented caps is reached
//! (dead letters, unregistered devices, API connections): each part has its own device id,
//! `gateway:<gateway-id>:<part>`, so one open alert per cap, and the same shape everywhere.

use atgw_sdk::{EventDraft, Kind, Phase, Priority};

/// A `device_fault` (medium) from the gateway's `part`: `message` for carers and the
/// integrator, `code` (`dead_letters_capped`, …) for scripts.
pub fn cap_reached(gateway_id: &str, part: &str, message: String, code: &str) -> EventDraft {
    let mut d = EventDraft::new(
        Kind::DeviceFault,
        Phase::Raised,
        format!("gateway:{gateway_id}:{part}"),
        crate::GATEWAY_ADAPTER,
    );
    d.data.priority = Priority::Medium;
    d.data.message = Some(message);
    d.data.codes.vendor = Some(code.to_owned());
    d
}
