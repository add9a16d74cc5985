//! The alerts the gateway raises about itself when one of its documented caps is reached
//! (dead letters, unregistered devices, API connections) or an adapter's link to its devices
//! is down: each part has its own device id, `gateway:<gateway-id>:<part>`, so one open alert
//! per cap or link, and the same shape everywhere.

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

/// The device id of the gateway's alert about `adapter`'s link.
pub fn link_device(gateway_id: &str, adapter: &str) -> String {
    format!("gateway:{gateway_id}:link:{adapter}")
}

/// A `device_fault` (high: every device behind the link is unheard) raised or cleared about
/// an adapter's link to its devices.
pub fn link(gateway_id: &str, adapter: &str, phase: Phase, message: String) -> EventDraft {
    let mut d = EventDraft::new(
        Kind::DeviceFault,
        phase,
        link_device(gateway_id, adapter),
        crate::GATEWAY_ADAPTER,
    );
    d.data.priority = Priority::High;
    d.data.message = Some(message);
    d.data.codes.vendor = Some("link_down".to_owned());
    d
}

/// A `device_fault` (medium, high once telemetry is being shed) raised or cleared about the
/// journal's disk budget (`gateway:<id>:journal_space`).
pub fn journal_space(
    gateway_id: &str,
    phase: Phase,
    shedding: bool,
    message: String,
) -> EventDraft {
    let mut d = EventDraft::new(
        Kind::DeviceFault,
        phase,
        format!("gateway:{gateway_id}:journal_space"),
        crate::GATEWAY_ADAPTER,
    );
    d.data.priority = if shedding {
        Priority::High
    } else {
        Priority::Medium
    };
    d.data.message = Some(message);
    d.data.codes.vendor = Some(
        if shedding {
            "journal_full"
        } else {
            "journal_space_low"
        }
        .to_owned(),
    );
    d
}
