//! The demo's digital home unit: a SCAIP unit (`atgw_scaip::simulator`) in flat 11 that
//! authenticates by digest and, once per story cycle, sends its fall detector's alarm over SIP
//! on loopback (UDP), its pendant's (TCP), then a heartbeat (TCP). The alarms become alerts like
//! any other: the fall rings unanswered and escalates to the senior; a carer takes the pendant.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use atgw_scaip::simulator::{SimTransport, SimulatorConfig, Step, simulate};

use super::script::CYCLE;
use super::timeline::Timeline;

/// The adapter's name in the demo's config (the timeline's `scaip` path).
pub const ADAPTER: &str = "units";
/// The unit's controller id and SIP user.
const CID: &str = "2100";
/// What it sends when in each cycle (seconds): (at, transport, step, dty, lco).
const SCRIPT: &[(f64, SimTransport, Step, u16, u16)] = &[
    (5.0, SimTransport::Udp, Step::Alarm, 5, 11), // fall detector, bathroom
    (9.0, SimTransport::Tcp, Step::Alarm, 3, 12), // pendant, bedroom
    (14.0, SimTransport::Tcp, Step::Heartbeat, 2, 12),
];

/// The `[[adapter]]` table: UDP and TCP on one loopback port, the unit's account.
pub fn adapter_toml(port: u16, password_file: &str) -> String {
    format!(
        r#"
[[adapter]]
name = "{ADAPTER}"
type = "scaip"
listen_udp = "127.0.0.1:{port}"
listen_tcp = "127.0.0.1:{port}"
accounts = [{{ user = "{CID}", password_file = {password_file} }}]
"#
    )
}

/// The registry entry: who and where the unit is.
pub const DEVICES: &str = r#"
[[device]]
id = "digital-unit-flat11"
adapter = "units"
match = { cid = "2100" }
resident = "res-0110"
location = { area = "west", room = "11" }
"#;

/// Runs the unit until aborted.
pub async fn run(port: u16, password: String, started: Instant, timeline: Arc<Timeline>) {
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cycle = 0u32;
    loop {
        for &(at, transport, step, dty, lco) in SCRIPT {
            let due = started + std::time::Duration::from_secs_f64(f64::from(cycle) * CYCLE + at);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let mut cfg = SimulatorConfig::new(target, CID);
            cfg.transport = transport;
            cfg.password = Some(password.clone());
            cfg.dty = dty;
            cfg.lco = Some(lco);
            cfg.steps = vec![step];
            match simulate(cfg).await {
                Ok(r) if r.all_good() => {}
                Ok(r) => timeline.problem(format!(
                    "digital home unit {CID}: {step:?} not answered as SCAIP requires ({:?})",
                    r.exchanges.first().and_then(|x| x.problem.clone())
                )),
                Err(e) => timeline.problem(format!("digital home unit {CID}: {e}")),
            }
        }
        cycle += 1;
    }
}
