//! `cargo bench --bench dc09_throughput`: several concurrent DC-09 transmitters over TCP against
//! atgw (DC-09 listener → journal, durable → file sink), each sending its next frame as soon as
//! the previous one is acknowledged, for ~10 s. Reports acknowledged frames/s and ACK latency
//! p50/p99 (DESIGN §11: ≥ 5,000 frames/s, p99 ≤ 5 ms).
//!
//! `BENCH_DC09_CONNS` (16, a comma list sweeps), `BENCH_DC09_SECS` (10),
//! `BENCH_RUNS` (3).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::frame::{Frame, Token};
use atgw_sia_dc09::simulator::{SimPayload, SimulatorConfig, build_frame, seq_for};
use common::*;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Run {
    acked: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    journaled: i64,
    hwm_kb: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let conns: Vec<usize> = std::env::var("BENCH_DC09_CONNS")
        .unwrap_or_else(|_| "16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u64 = env_or("BENCH_DC09_SECS", 10);
    let runs = runs();
    let rt = runtime();
    println!(
        "dc09_throughput: {secs} s per run, {runs} runs, connections {conns:?}, binary {}",
        atgw_bin().display()
    );
    let mut out = Vec::new();
    for &c in &conns {
        let mut rs = Vec::new();
        for r in 0..runs {
            let run = one(&rt, c, Duration::from_secs(secs));
            println!(
                "  {c:>3} connections run {}: {:.0} frames/s acked ({} in {:.1} s, {} journaled), ACK p50 {:.2} ms p99 {:.2} ms max {:.1} ms, peak RSS {:.1} MB",
                r + 1,
                run.acked as f64 / run.secs,
                run.acked,
                run.secs,
                run.journaled,
                run.p50_ms,
                run.p99_ms,
                run.max_ms,
                mb(run.hwm_kb)
            );
            rs.push(run);
        }
        out.push((c, rs));
    }
    let mut per = Vec::new();
    println!("\ndc09_throughput summary (median [min-max] of {runs})");
    for (c, rs) in &out {
        let rate = summary(
            &rs.iter()
                .map(|r| r.acked as f64 / r.secs)
                .collect::<Vec<_>>(),
        );
        let p50 = summary(&rs.iter().map(|r| r.p50_ms).collect::<Vec<_>>());
        let p99 = summary(&rs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
        let hwm = summary(&rs.iter().map(|r| mb(r.hwm_kb)).collect::<Vec<_>>());
        println!(
            "  {c:>3} connections: {:.0} frames/s [{:.0}-{:.0}]  p50 {:.2} ms [{:.2}-{:.2}]  p99 {:.2} ms [{:.2}-{:.2}]  (targets ≥ 5000 frames/s, p99 ≤ 5 ms)",
            rate.median,
            rate.min,
            rate.max,
            p50.median,
            p50.min,
            p50.max,
            p99.median,
            p99.min,
            p99.max
        );
        per.push(serde_json::json!({
            "connections": c,
            "frames_per_sec": rate.json(),
            "ack_p50_ms": p50.json(),
            "ack_p99_ms": p99.json(),
            "peak_rss_mb": hwm.json(),
        }));
    }
    emit(serde_json::json!({
        "bench": "dc09_throughput",
        "seconds": secs,
        "runs": runs,
        "results": per,
        "targets": { "frames_per_sec": 5000, "ack_p99_ms": 5.0 },
        "machine": machine(),
    }));
}

fn one(rt: &tokio::runtime::Runtime, conns: usize, duration: Duration) -> Run {
    let dir = scratch("dc09");
    let data = dir.path().join("state");
    let port = free_port().unwrap();
    let accounts: Vec<String> = (0..conns).map(|i| format!("B{i:04}")).collect();
    let list = accounts
        .iter()
        .map(|a| format!("{{ account = \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = gateway_section(&data)
        + &format!(
            "\n[[adapter]]\nname = \"alarms\"\ntype = \"sia-dc09\"\nlisten_tcp = \"127.0.0.1:{port}\"\n\
             accounts = [{list}]\nmax_connections = {m}\nper_peer_connections = {m}\nper_peer_frames_per_sec = 1000000\n",
            m = conns + 8
        )
        + &file_sink(&dir.path().join("events.jsonl"));
    let g = Gateway::start(dir.path(), &cfg);
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let (acked, secs, mut lat) = rt.block_on(async {
        let start = Instant::now();
        let stop_at = start + duration;
        let mut tasks = Vec::new();
        for a in &accounts {
            tasks.push(tokio::spawn(transmitter(target, a.clone(), stop_at)));
        }
        let mut acked = 0u64;
        let mut lat = Vec::new();
        for t in tasks {
            let (n, l) = t.await.unwrap();
            acked += n;
            lat.extend(l);
        }
        (acked, start.elapsed().as_secs_f64(), lat)
    });
    let hwm_kb = g.memory().hwm_kb;
    g.stop();
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() - 1) * p / 100] as f64 / 1000.0;
    Run {
        acked,
        secs,
        p50_ms: pct(50),
        p99_ms: pct(99),
        max_ms: *lat.last().unwrap() as f64 / 1000.0,
        journaled: journal_count(&data, "SELECT count(*) FROM events"),
        hwm_kb,
    }
}

/// One transmitter: next frame as soon as the previous one is acknowledged. Returns the ACK
/// count and each ACK latency in µs. The Contact ID zone changes every 9,999 frames so a reused
/// sequence number is a new event, not a retransmission.
async fn transmitter(target: SocketAddr, account: String, stop_at: Instant) -> (u64, Vec<u64>) {
    let mut cfg = SimulatorConfig::new(target, account);
    let mut sock = TcpStream::connect(target).await.expect("connect to atgw");
    sock.set_nodelay(true).unwrap();
    let mut decoder = FrameDecoder::new(8192);
    let mut buf = vec![0u8; 4096];
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut lat = Vec::with_capacity(100_000);
    let mut i = 0u64;
    while Instant::now() < stop_at {
        let seq = seq_for(i);
        cfg.payload = SimPayload::ContactId(format!("1101 01 {:03}", (i / 9999) % 1000));
        let frame = build_frame(&cfg, &seq, jiff::Timestamp::now(), &mut rng);
        let sent = Instant::now();
        sock.write_all(&frame).await.expect("send frame");
        let answer = loop {
            if let Some(a) = decoder.next_frame().expect("answer frame") {
                break a;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
                .await
                .expect("answer within 5 s")
                .expect("read answer");
            assert!(n > 0, "atgw closed the connection");
            decoder.extend(&buf[..n]);
        };
        let us = sent.elapsed().as_micros() as u64;
        let (f, _) = Frame::decode(&answer).expect("decodable answer");
        assert!(
            f.header.token == Token::Ack && f.header.seq == seq,
            "expected ACK for {seq}, got {:?}",
            String::from_utf8_lossy(&answer)
        );
        lat.push(us);
        i += 1;
    }
    (i, lat)
}
