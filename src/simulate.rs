//! `atgw simulate <protocol>`: speak a real wire protocol to a running gateway, for
//! commissioning and load. Each answer is checked; the exit code says whether all were good.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use atgw_sia_dc09::crypto::{AesKey, KeyFormat};
use atgw_sia_dc09::simulator::{SimPayload, Transport};
use atgw_sia_dc09::{SimulatorConfig, simulate};

/// `atgw simulate dc09` options.
#[derive(clap::Args, Debug)]
pub struct Dc09Args {
    /// Receiver address (the gateway's `listen_tcp` / `listen_udp`).
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub target: SocketAddr,
    /// Send over UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Account number (kept as text: leading zeros matter).
    #[arg(long, default_value = "1234")]
    pub account: String,
    /// Encrypt with the AES key in this file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// How the key file is written.
    #[arg(long, value_parser = ["hex", "ascii"], default_value = "hex")]
    pub key_format: String,
    /// Contact ID event "QEEE GG ZZZ", e.g. "1101 01 003" (new personal emergency, zone 003).
    #[arg(long, default_value = "1101 01 003", conflicts_with_all = ["sia", "null"])]
    pub cid: String,
    /// SIA DC-03 data instead, e.g. "Nri1/MA003".
    #[arg(long)]
    pub sia: Option<String>,
    /// Supervision (NULL) frames instead.
    #[arg(long)]
    pub null: bool,
    /// Frames to send.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Frames per second (0: as fast as they are answered).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

pub async fn dc09(a: Dc09Args) -> ExitCode {
    let mut cfg = SimulatorConfig::new(a.target, a.account.clone());
    cfg.transport = if a.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    cfg.count = a.count;
    cfg.rate_per_sec = a.rate;
    cfg.payload = match (&a.sia, a.null) {
        (_, true) => SimPayload::Null,
        (Some(s), false) => SimPayload::Sia(s.clone()),
        (None, false) => SimPayload::ContactId(a.cid.clone()),
    };
    if let Some(path) = &a.key_file {
        let format = if a.key_format == "ascii" {
            KeyFormat::Ascii
        } else {
            KeyFormat::Hex
        };
        let key = atgw_sdk::secret::read_secret_file(path)
            .map_err(|e| e.to_string())
            .and_then(|s| AesKey::parse(s.expose(), format).map_err(|e| e.to_string()));
        match key {
            Ok(k) => cfg.key = Some(k),
            Err(e) => {
                eprintln!("atgw simulate dc09: --key-file: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match simulate(cfg).await {
        Ok(r) => {
            let ms = |d: Option<Duration>| {
                d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or("-".into())
            };
            println!(
                "sent {} acked {} nak {} duh {} timeouts {} bad answers {}; ack latency p50 {} p99 {}",
                r.sent,
                r.acked,
                r.nak,
                r.duh,
                r.timeouts,
                r.bad_answers,
                ms(r.latency_p50),
                ms(r.latency_p99)
            );
            if r.acked == r.sent && r.sent > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("atgw simulate dc09: {e}");
            ExitCode::FAILURE
        }
    }
}
