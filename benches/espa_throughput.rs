//! `cargo bench --bench espa_throughput`: one ESPA 4.4.4 control station over TCP against atgw
//! (espa444 adapter → journal, durable → file sink), the whole link procedure per call
//! (`1 ENQ 2 ENQ` → ACK, block → ACK, EOT), each call to its own call address so none is a
//! retransmission, for ~10 s. Reports ACKed calls/s and the ACK latency (block written → ACK
//! read) p50/p99. ESPA is one half-duplex link: this is what one nurse-call system can get
//! through, far above the few calls a minute a care home makes.
//!
//! The floor, measured in the same run: the same station for the same time against a bare
//! TCP peer on loopback that ACKs each select and block as soon as it has read it (no journal,
//! no codec beyond finding the BCC). The ratio of atgw's ACK p99 to the floor's is the figure
//! to quote.
//!
//! `journaled` counts the calls' own events (device adapter `nurse-call`); any other row (the
//! gateway's own events) is listed by kind, so the two counts can be compared exactly.
//!
//! `BENCH_ESPA_SECS` (10), `BENCH_RUNS` (3).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Run {
    acked: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    journaled: i64,
    /// Rows that are not the calls' events, `kind/phase device` with their count.
    others: String,
    floor: Floor,
}

/// The bare peer's figures in the same run.
struct Floor {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = env_or("BENCH_ESPA_SECS", 10);
    let runs = runs();
    let rt = runtime();
    println!(
        "espa_throughput: {secs} s per run, {runs} runs, binary {}",
        atgw_bin().display()
    );
    let mut rs = Vec::new();
    for r in 0..runs {
        let run = one(&rt, Duration::from_secs(secs));
        println!(
            "  run {}: {:.0} calls/s acked ({} in {:.1} s, {} call events journaled; other rows: {}), ACK p50 {:.2} ms p99 {:.2} ms; floor (bare TCP peer) {:.0} calls/s, p50 {:.3} ms p99 {:.3} ms",
            r + 1,
            run.acked as f64 / run.secs,
            run.acked,
            run.secs,
            run.journaled,
            if run.others.is_empty() {
                "none"
            } else {
                &run.others
            },
            run.p50_ms,
            run.p99_ms,
            run.floor.rate,
            run.floor.p50_ms,
            run.floor.p99_ms,
        );
        rs.push(run);
    }
    let rate = summary(
        &rs.iter()
            .map(|r| r.acked as f64 / r.secs)
            .collect::<Vec<_>>(),
    );
    let p50 = summary(&rs.iter().map(|r| r.p50_ms).collect::<Vec<_>>());
    let p99 = summary(&rs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
    let floor_rate = summary(&rs.iter().map(|r| r.floor.rate).collect::<Vec<_>>());
    let floor_p99 = summary(&rs.iter().map(|r| r.floor.p99_ms).collect::<Vec<_>>());
    let ratio = summary(
        &rs.iter()
            .map(|r| r.p99_ms / r.floor.p99_ms.max(0.001))
            .collect::<Vec<_>>(),
    );
    println!(
        "\nespa_throughput summary (median [min-max] of {runs}): {:.0} calls/s [{:.0}-{:.0}]  p50 {:.2} ms  p99 {:.2} ms [{:.2}-{:.2}]",
        rate.median, rate.min, rate.max, p50.median, p99.median, p99.min, p99.max
    );
    println!(
        "  floor (bare TCP peer, same run): {:.0} calls/s  p99 {:.3} ms; atgw's ACK p99 is {:.1}x the floor's [{:.1}-{:.1}]",
        floor_rate.median, floor_p99.median, ratio.median, ratio.min, ratio.max
    );
    emit(serde_json::json!({
        "bench": "espa_throughput",
        "seconds": secs,
        "runs": runs,
        "calls_per_sec": rate.json(),
        "ack_p50_ms": p50.json(),
        "ack_p99_ms": p99.json(),
        "floor_calls_per_sec": floor_rate.json(),
        "floor_ack_p99_ms": floor_p99.json(),
        "ack_p99_over_floor": ratio.json(),
        "machine": machine(),
    }));
}

fn one(rt: &tokio::runtime::Runtime, duration: Duration) -> Run {
    let dir = scratch("espa");
    let data = dir.path().join("state");
    let port = free_port().unwrap();
    let cfg = gateway_section(&data)
        + &format!(
            "\n[[adapter]]\nname = \"nurse-call\"\ntype = \"espa444\"\nlisten = \"127.0.0.1:{port}\"\n"
        )
        + &file_sink(&dir.path().join("events.jsonl"));
    let g = Gateway::start(dir.path(), &cfg);
    let (acked, secs, mut lat) = rt.block_on(station(port, duration));
    g.stop();
    lat.sort_unstable();
    let floor = rt.block_on(floor(duration));
    Run {
        acked,
        secs,
        p50_ms: pct(&lat, 50),
        p99_ms: pct(&lat, 99),
        journaled: journal_count(
            &data,
            "SELECT count(*) FROM events WHERE json_extract(json, '$.data.device.adapter') = 'nurse-call'",
        ),
        others: journal_text(
            &data,
            "SELECT coalesce(group_concat(what || ' x' || n, ', '), '') FROM (
               SELECT kind || '/' || json_extract(json, '$.data.phase') || ' ' || device_id AS what, count(*) AS n
                 FROM events WHERE coalesce(json_extract(json, '$.data.device.adapter'), '') != 'nurse-call'
                GROUP BY what)",
        ),
        floor,
    }
}

fn pct(lat: &[u64], p: usize) -> f64 {
    lat[(lat.len() - 1) * p / 100] as f64 / 1000.0
}

fn journal_text(data_dir: &std::path::Path, sql: &str) -> String {
    rusqlite::Connection::open_with_flags(
        data_dir.join("atgw.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
    .unwrap_or_else(|e| format!("(cannot read: {e})"))
}

/// The same station against a bare peer that ACKs each select and block once read.
async fn floor(duration: Duration) -> Floor {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let (mut prev, mut in_block, mut bcc_next) = (0u8, false, false);
        let mut buf = [0u8; 512];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            let mut out = Vec::new();
            for &x in &buf[..n] {
                if bcc_next {
                    (in_block, bcc_next) = (false, false);
                    out.push(0x06);
                } else if in_block {
                    bcc_next = x == 0x03;
                } else if x == 0x01 {
                    in_block = true;
                } else if x == 0x05 && prev == b'2' {
                    out.push(0x06);
                }
                prev = x;
            }
            if !out.is_empty() && s.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let (acked, secs, mut lat) = station(port, duration).await;
    peer.abort();
    lat.sort_unstable();
    Floor {
        rate: acked as f64 / secs,
        p50_ms: pct(&lat, 50),
        p99_ms: pct(&lat, 99),
    }
}

/// `SOH 1 STX 1 US <address> RS 2 US <text> RS 6 US 2 ETX BCC`.
fn call(address: u64) -> Vec<u8> {
    let mut b = vec![0x01, b'1', 0x02, b'1', 0x1F];
    b.extend(address.to_string().bytes());
    b.extend(b"\x1e2\x1fCall Room 12\x1e6\x1f2\x03");
    let bcc = b[1..].iter().fold(0u8, |a, x| a ^ x);
    b.push(bcc);
    b
}

async fn answer(sock: &mut TcpStream) -> u8 {
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut b))
        .await
        .expect("answer within 5 s")
        .expect("read answer");
    assert_eq!(n, 1, "atgw closed the link");
    b[0]
}

/// Calls until `duration` is over; the ACK count, the wall time and each ACK latency in µs.
async fn station(port: u16, duration: Duration) -> (u64, f64, Vec<u64>) {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to atgw");
    sock.set_nodelay(true).unwrap();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(100_000);
    let mut i = 0u64;
    while start.elapsed() < duration {
        sock.write_all(b"1\x052\x05").await.unwrap();
        assert_eq!(answer(&mut sock).await, 0x06, "select not ACKed");
        let block = call(100_000 + i);
        let sent = Instant::now();
        sock.write_all(&block).await.unwrap();
        assert_eq!(answer(&mut sock).await, 0x06, "call {i} not ACKed");
        lat.push(sent.elapsed().as_micros() as u64);
        sock.write_all(&[0x04]).await.unwrap();
        i += 1;
    }
    (i, start.elapsed().as_secs_f64(), lat)
}
