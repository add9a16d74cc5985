//! `cargo bench --bench scaip_throughput`: several concurrent SCAIP units (`atgw-scaip`'s
//! simulator) against atgw (SCAIP receiver → journal, durable → file sink), over UDP and over
//! TCP, each sending its next alarm as soon as the previous one is answered: the SIP `200 OK`
//! and then the `<mrs>` MESSAGE (`snu 0`, `ref` echoed), which atgw sends only after the commit.
//! Reports acknowledged alarms/s and the reply latency (send → `<mrs>` received) p50/p99.
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
        };
        for &u in &units {
            let mut rs = Vec::new();
            for r in 0..runs {
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
            println!(
                "  {name} {u:>3} units: {:.0} alarms/s [{:.0}-{:.0}]  p50 {:.2} ms  p99 {:.2} ms [{:.2}-{:.2}]",
                rate.median, rate.min, rate.max, p50.median, p99.median, p99.min, p99.max
            );
            per.push(serde_json::json!({
                "transport": name,
                "units": u,
                "alarms_per_sec": rate.json(),
                "reply_p50_ms": p50.json(),
                "reply_p99_ms": p99.json(),
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
    let (answered, problems, secs, mut lat) = rt.block_on(async {
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
    });
    g.stop();
    lat.sort_unstable();
    let pct = |p: usize| {
        lat.get((lat.len().max(1) - 1) * p / 100)
            .map_or(f64::NAN, |v| *v as f64 / 1000.0)
    };
    Run {
        answered,
        problems,
        secs,
        p50_ms: pct(50),
        p99_ms: pct(99),
        journaled: journal_count(&data, "SELECT count(*) FROM events"),
    }
}
