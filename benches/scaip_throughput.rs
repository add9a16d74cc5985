//! `cargo bench --bench scaip_throughput`: several concurrent SCAIP units (`atgw-scaip`'s
//! simulator) against atgw (SCAIP receiver → journal, durable → file sink), over UDP and over
//! TCP, each sending its next alarm as soon as the previous one is answered: the SIP `200 OK`
//! and then the `<mrs>` MESSAGE (`snu 0`, `ref` echoed), which atgw sends only after the commit.
//! Reports acknowledged alarms/s and the reply latency (send → `<mrs>` received) p50/p99.
//!
//! The floor, measured in the same run with the same units: a bare SIP responder in its own
//! runtime (two worker threads, as the daemon's), which decodes the `<mrq>` and answers `200 OK`
//! then the `<mrs>` MESSAGE exactly as atgw does (the same codec and MESSAGE builder) but
//! journals nothing, authenticates nothing and maps nothing. atgw's figure over the floor's is
//! what the journal (a durable commit before every answer), mapping and dedupe cost.
//!
//! Units do not authenticate here (`allow_unauthenticated`): digest adds one round trip per
//! request for a unit that does not reuse its nonce, which the simulator does not.
//!
//! `BENCH_SCAIP_UNITS` (16, a comma list sweeps), `BENCH_SCAIP_ALARMS` (alarms per unit, 300),
//! `BENCH_RUNS` (3).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use atgw_scaip::simulator::{SimTransport, SimulatorConfig, Step, simulate};
use common::*;

struct Run {
    answered: u64,
    problems: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    journaled: i64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let units: Vec<usize> = std::env::var("BENCH_SCAIP_UNITS")
        .unwrap_or_else(|_| "16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let alarms: usize = env_or("BENCH_SCAIP_ALARMS", 300);
    let runs = runs();
    let rt = runtime();
    println!(
        "scaip_throughput: {alarms} alarms per unit, {runs} runs, units {units:?}, binary {}",
        atgw_bin().display()
    );
    let mut per = Vec::new();
    for transport in [SimTransport::Udp, SimTransport::Tcp] {
        let name = match transport {
            SimTransport::Udp => "udp",
            SimTransport::Tcp => "tcp",
            SimTransport::Tls => "tls",
        };
        for &u in &units {
            let mut rs = Vec::new();
            let mut fs = Vec::new();
            for r in 0..runs {
                let floor = floor_run(&rt, transport, u, alarms);
                println!(
                    "  {name} {u:>3} units run {} floor (bare responder): {:.0} alarms/s ({} problems), reply p50 {:.2} ms p99 {:.2} ms",
                    r + 1,
                    floor.answered as f64 / floor.secs,
                    floor.problems,
                    floor.p50_ms,
                    floor.p99_ms,
                );
                fs.push(floor);
                let run = one(&rt, transport, u, alarms);
                println!(
                    "  {name} {u:>3} units run {}: {:.0} alarms/s answered ({} in {:.1} s, {} journaled, {} problems), reply p50 {:.2} ms p99 {:.2} ms",
                    r + 1,
                    run.answered as f64 / run.secs,
                    run.answered,
                    run.secs,
                    run.journaled,
                    run.problems,
                    run.p50_ms,
                    run.p99_ms,
                );
                rs.push(run);
            }
            let rate = summary(
                &rs.iter()
                    .map(|r| r.answered as f64 / r.secs)
                    .collect::<Vec<_>>(),
            );
            let p50 = summary(&rs.iter().map(|r| r.p50_ms).collect::<Vec<_>>());
            let p99 = summary(&rs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
            let f_rate = summary(
                &fs.iter()
                    .map(|r| r.answered as f64 / r.secs)
                    .collect::<Vec<_>>(),
            );
            let f_p50 = summary(&fs.iter().map(|r| r.p50_ms).collect::<Vec<_>>());
            let f_p99 = summary(&fs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
            // Ratios per run (atgw and its floor measured back to back), then their median.
            let rate_ratio = summary(
                &rs.iter()
                    .zip(&fs)
                    .map(|(a, f)| (f.answered as f64 / f.secs) / (a.answered as f64 / a.secs))
                    .collect::<Vec<_>>(),
            );
            let p99_ratio = summary(
                &rs.iter()
                    .zip(&fs)
                    .map(|(a, f)| a.p99_ms / f.p99_ms)
                    .collect::<Vec<_>>(),
            );
            println!(
                "  {name} {u:>3} units: {:.0} alarms/s [{:.0}-{:.0}]  p50 {:.2} ms  p99 {:.2} ms [{:.2}-{:.2}]",
                rate.median, rate.min, rate.max, p50.median, p99.median, p99.min, p99.max
            );
            println!(
                "  {name} {u:>3} units floor: {:.0} alarms/s [{:.0}-{:.0}]  p50 {:.2} ms  p99 {:.2} ms; floor/atgw rate {:.2}x [{:.2}-{:.2}], atgw/floor p99 {:.2}x [{:.2}-{:.2}]",
                f_rate.median,
                f_rate.min,
                f_rate.max,
                f_p50.median,
                f_p99.median,
                rate_ratio.median,
                rate_ratio.min,
                rate_ratio.max,
                p99_ratio.median,
                p99_ratio.min,
                p99_ratio.max
            );
            per.push(serde_json::json!({
                "transport": name,
                "units": u,
                "alarms_per_sec": rate.json(),
                "reply_p50_ms": p50.json(),
                "reply_p99_ms": p99.json(),
                "floor_alarms_per_sec": f_rate.json(),
                "floor_reply_p50_ms": f_p50.json(),
                "floor_reply_p99_ms": f_p99.json(),
                "floor_over_atgw_rate": rate_ratio.json(),
                "atgw_over_floor_p99": p99_ratio.json(),
            }));
        }
    }
    emit(serde_json::json!({
        "bench": "scaip_throughput",
        "alarms_per_unit": alarms,
        "runs": runs,
        "results": per,
        "machine": machine(),
    }));
}

/// The units against `target`: (answered, problems, seconds, latencies µs).
async fn drive(
    target: SocketAddr,
    transport: SimTransport,
    units: usize,
    alarms: usize,
) -> (u64, u64, f64, Vec<u64>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..units {
        let mut c = SimulatorConfig::new(target, &format!("{}", 100_000 + i));
        c.transport = transport;
        c.dty = 3;
        c.first_ref = 0;
        c.timeout = Duration::from_secs(10);
        c.steps = vec![Step::Alarm; alarms];
        tasks.push(tokio::spawn(simulate(c)));
    }
    let (mut ok, mut bad, mut lat) = (0u64, 0u64, Vec::new());
    for t in tasks {
        let r = t.await.unwrap().expect("a unit ran");
        for x in &r.exchanges {
            match &x.problem {
                None => {
                    ok += 1;
                    lat.push(x.latency.as_micros() as u64);
                }
                Some(_) => bad += 1,
            }
        }
    }
    (ok, bad, start.elapsed().as_secs_f64(), lat)
}

fn percentiles(mut lat: Vec<u64>) -> (f64, f64) {
    lat.sort_unstable();
    let pct = |p: usize| {
        lat.get((lat.len().max(1) - 1) * p / 100)
            .map_or(f64::NAN, |v| *v as f64 / 1000.0)
    };
    (pct(50), pct(99))
}

/// The floor: the same units against [`floor::serve`] (no journal).
fn floor_run(
    rt: &tokio::runtime::Runtime,
    transport: SimTransport,
    units: usize,
    alarms: usize,
) -> Run {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = free_port().unwrap();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let (udp, tcp) = server.block_on(async {
        (
            tokio::net::UdpSocket::bind(target).await.unwrap(),
            tokio::net::TcpListener::bind(target).await.unwrap(),
        )
    });
    server.spawn(floor::udp(udp));
    server.spawn(floor::tcp(tcp));
    let (answered, problems, secs, lat) = rt.block_on(drive(target, transport, units, alarms));
    server.shutdown_background();
    let (p50_ms, p99_ms) = percentiles(lat);
    Run {
        answered,
        problems,
        secs,
        p50_ms,
        p99_ms,
        journaled: 0,
    }
}

/// A bare SCAIP responder: `200 OK` then the `<mrs>`, nothing journaled.
mod floor {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use atgw_scaip::codec::{Request, Response};
    use atgw_scaip::dispatch::{Origin, Transport, outgoing_mrs};
    use atgw_scaip::sip::framing::{Frame, Framer};
    use atgw_scaip::sip::{Message, StartLine};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The two answers to one request, as atgw builds them.
    fn answers(req: &Message, origin: Origin) -> Option<(Vec<u8>, Vec<u8>)> {
        if !matches!(req.start, StartLine::Request { .. }) || req.method() != Some("MESSAGE") {
            return None;
        }
        let mrq = Request::decode(&req.body).ok()?;
        let mrs = Response {
            reference: Some(mrq.reference),
            snu: 0,
            mre: Some(0),
            ..Response::default()
        };
        let ok = req.response(200, "OK", "floor").encode();
        Some((ok, outgoing_mrs(req, origin, &mrs.encode()).encode()))
    }

    pub async fn udp(sock: tokio::net::UdpSocket) {
        let sock = Arc::new(sock);
        let local = sock.local_addr().unwrap();
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(msg) = Message::parse(&buf[..n]) else {
                continue;
            };
            let origin = Origin {
                transport: Transport::Udp,
                peer,
                local,
            };
            if let Some((ok, mrs)) = answers(&msg, origin) {
                let _ = sock.send_to(&ok, peer).await;
                let _ = sock.send_to(&mrs, peer).await;
            }
        }
    }

    pub async fn tcp(listener: tokio::net::TcpListener) {
        loop {
            let Ok((mut s, peer)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let local: SocketAddr = s.local_addr().unwrap();
            tokio::spawn(async move {
                let mut framer = Framer::default();
                let mut buf = vec![0u8; 16_384];
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    framer.push(&buf[..n]);
                    while let Ok(Some(frame)) = framer.next_frame() {
                        let Frame::Message(raw) = frame else { continue };
                        let Ok(msg) = Message::parse(&raw) else {
                            continue;
                        };
                        let origin = Origin {
                            transport: Transport::Tcp,
                            peer,
                            local,
                        };
                        if let Some((mut ok, mrs)) = answers(&msg, origin) {
                            ok.extend_from_slice(&mrs);
                            if s.write_all(&ok).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    }
}

fn one(rt: &tokio::runtime::Runtime, transport: SimTransport, units: usize, alarms: usize) -> Run {
    let dir = scratch("scaip");
    let data = dir.path().join("state");
    let port = free_port().unwrap();
    let cfg = gateway_section(&data)
        + &format!(
            "\n[[adapter]]\nname = \"units\"\ntype = \"scaip\"\nlisten_udp = \"127.0.0.1:{port}\"\n\
             listen_tcp = \"127.0.0.1:{port}\"\nallow_unauthenticated = true\nmax_connections = {m}\n",
            m = units + 8
        )
        + &file_sink(&dir.path().join("events.jsonl"));
    let g = Gateway::start(dir.path(), &cfg);
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let (answered, problems, secs, lat) = rt.block_on(drive(target, transport, units, alarms));
    g.stop();
    let (p50_ms, p99_ms) = percentiles(lat);
    Run {
        answered,
        problems,
        secs,
        p50_ms,
        p99_ms,
        journaled: journal_count(&data, "SELECT count(*) FROM events"),
    }
}
