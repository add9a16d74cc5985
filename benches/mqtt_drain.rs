//! `cargo bench --bench mqtt_drain`: a 100,000-message backlog queued for atgw's persistent
//! session, drained MQTT → profile → journal (durable) → upstream MQTT, timed from launch to the
//! last upstream message; compared with a plain rumqttc subscriber draining the same backlog.
//! DESIGN §11: ≥ 20,000 events/s, within 1.3× of the plain subscriber.
//!
//! Variants (`BENCH_DRAIN=atgw,mqtt_only,file_only,journal_only,plain`, all by default):
//! `atgw` has the upstream MQTT sink and a file sink; `mqtt_only` / `file_only` one of them;
//! `journal_only` no sink (timed to the last event committed); `plain` is the physical limit.
//! `BENCH_MESSAGES` (100000) and `BENCH_RUNS` (3) scale it.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const ALL: &[&str] = &["atgw", "mqtt_only", "file_only", "journal_only", "plain"];

#[derive(Clone, Copy, Debug)]
struct Run {
    secs: f64,
    hwm_kb: u64,
    idle_rss_kb: u64,
    duplicates: u64,
}

fn message(i: u64) -> (String, Vec<u8>) {
    (
        format!("zigbee2mqtt/dev-{}", i % 100),
        format!(r#"{{"action":"emergency","seq":{i}}}"#).into_bytes(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = env_or("BENCH_MESSAGES", 100_000);
    let runs = runs();
    let wanted: Vec<String> = std::env::var("BENCH_DRAIN")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_else(|_| ALL.iter().map(|s| s.to_string()).collect());
    let rt = runtime();
    println!(
        "mqtt_drain: {n} messages, {runs} runs per variant, binary {}",
        atgw_bin().display()
    );
    let mut results: Vec<(String, Vec<Run>)> = Vec::new();
    for variant in ALL.iter().filter(|v| wanted.iter().any(|w| w == *v)) {
        let mut rs = Vec::new();
        for r in 0..runs {
            let run = rt.block_on(one(variant, n));
            let memory = if *variant == "plain" {
                String::new()
            } else {
                format!(
                    ", peak RSS {:.1} MB, idle RSS after {:.1} MB",
                    mb(run.hwm_kb),
                    mb(run.idle_rss_kb)
                )
            };
            println!(
                "  {variant:<12} run {}: {:.3} s = {:.0} msg/s{memory}, {} duplicates",
                r + 1,
                run.secs,
                n as f64 / run.secs,
                run.duplicates
            );
            rs.push(run);
        }
        results.push((variant.to_string(), rs));
    }

    let mut variants = serde_json::Map::new();
    let mut medians = std::collections::HashMap::new();
    for (name, rs) in &results {
        let secs = summary(&rs.iter().map(|r| r.secs).collect::<Vec<_>>());
        let rate = summary(&rs.iter().map(|r| n as f64 / r.secs).collect::<Vec<_>>());
        medians.insert(name.clone(), secs.median);
        let mut v = serde_json::json!({ "seconds": secs.json(), "events_per_sec": rate.json() });
        if name != "plain" {
            v["peak_rss_mb"] = summary(&rs.iter().map(|r| mb(r.hwm_kb)).collect::<Vec<_>>()).json();
            v["idle_rss_after_mb"] =
                summary(&rs.iter().map(|r| mb(r.idle_rss_kb)).collect::<Vec<_>>()).json();
        }
        variants.insert(name.clone(), v);
    }
    let ratio = match (medians.get("atgw"), medians.get("plain")) {
        (Some(a), Some(p)) => Some(round(a / p)),
        _ => None,
    };
    emit(serde_json::json!({
        "bench": "mqtt_drain",
        "messages": n,
        "runs": runs,
        "variants": variants,
        "ratio_atgw_to_plain": ratio,
        "targets": { "events_per_sec": 20000, "ratio_max": 1.3 },
        "machine": machine(),
    }));
    println!("\nmqtt_drain summary ({n} messages, median [min-max] of {runs})");
    for (name, rs) in &results {
        let rate = summary(&rs.iter().map(|r| n as f64 / r.secs).collect::<Vec<_>>());
        let secs = summary(&rs.iter().map(|r| r.secs).collect::<Vec<_>>());
        print!(
            "  {name:<12} {:>8.0} msg/s [{:.0}-{:.0}]  {:.3} s [{:.3}-{:.3}]",
            rate.median, rate.min, rate.max, secs.median, secs.min, secs.max
        );
        if name != "plain" {
            let h = summary(&rs.iter().map(|r| mb(r.hwm_kb)).collect::<Vec<_>>());
            let i = summary(&rs.iter().map(|r| mb(r.idle_rss_kb)).collect::<Vec<_>>());
            print!(
                "  peak RSS {:.1} MB [{:.1}-{:.1}]  idle after {:.1} MB [{:.1}-{:.1}]",
                h.median, h.min, h.max, i.median, i.min, i.max
            );
        }
        println!();
    }
    if let Some(r) = ratio {
        println!("  atgw / plain time ratio: {r:.2} (target ≤ 1.3; ≥ 20,000 events/s)");
    }
}

async fn one(variant: &str, n: u64) -> Run {
    let dir = scratch("drain");
    let broker = broker(dir.path());
    let port = broker.port;
    if variant == "plain" {
        create_session(port, "bench-plain", "zigbee2mqtt/#").await;
        publish_backlog(port, n, message).await;
        let start = Instant::now();
        let c = Counter::start(port, "bench-plain", "zigbee2mqtt/#", n, whole_payload);
        let done = c
            .wait_done(Duration::from_secs(120))
            .await
            .expect("plain subscriber drained the backlog");
        return Run {
            secs: (done - start).as_secs_f64(),
            hwm_kb: 0,
            idle_rss_kb: 0,
            duplicates: c.total() - c.distinct(),
        };
    }

    let data = dir.path().join("state");
    let audit = dir.path().join("events.jsonl");
    let mut cfg = gateway_section(&data) + &mqtt_adapter(port);
    let upstream = matches!(variant, "atgw" | "mqtt_only");
    if upstream {
        cfg += &mqtt_sink(port);
    }
    if matches!(variant, "atgw" | "file_only") {
        cfg += &file_sink(&audit);
    }
    create_session(port, ADAPTER_CLIENT_ID, "zigbee2mqtt/#").await;
    let counter = if upstream {
        create_session(port, "bench-upstream", UPSTREAM_FILTER).await;
        Some(Counter::start(
            port,
            "bench-upstream",
            UPSTREAM_FILTER,
            n,
            event_id,
        ))
    } else {
        None
    };
    publish_backlog(port, n, message).await;
    // The upstream subscriber must be connected before atgw starts publishing.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let g = Gateway::launch(dir.path(), &cfg);
    let done = match (&counter, variant) {
        (Some(c), _) => c.wait_done(Duration::from_secs(180)).await,
        (None, "file_only") => wait_lines(&audit, n, Duration::from_secs(180)).await,
        _ => wait_journal(&data, n, Duration::from_secs(180)).await,
    };
    let Some(done) = done else {
        panic!(
            "{variant}: backlog not drained in time (upstream {:?}); atgw log:\n{}",
            counter.as_ref().map(|c| c.distinct()),
            g.log_text()
        );
    };
    let secs = (done - g.launched).as_secs_f64();
    let hwm_kb = g.memory().hwm_kb;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_kb = g.memory().rss_kb;
    let duplicates = counter
        .as_ref()
        .map(|c| c.total() - c.distinct())
        .unwrap_or(0);
    g.stop();
    let events = journal_count(&data, "SELECT count(*) FROM events");
    assert_eq!(
        events, n as i64,
        "{variant}: every message is one journaled event"
    );
    drop(broker);
    Run {
        secs,
        hwm_kb,
        idle_rss_kb,
        duplicates,
    }
}

/// Waits until the file sink has written `n` lines.
async fn wait_lines(path: &Path, n: u64, within: Duration) -> Option<Instant> {
    let t = Instant::now();
    let (mut lines, mut offset) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    while t.elapsed() < within {
        if let Ok(mut f) = std::fs::File::open(path) {
            f.seek(SeekFrom::Start(offset)).unwrap();
            loop {
                let k = f.read(&mut buf).unwrap_or(0);
                if k == 0 {
                    break;
                }
                offset += k as u64;
                lines += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
            }
            if lines >= n {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// Waits until the journal holds `n` events (read-only, beside the writer).
async fn wait_journal(data: &Path, n: u64, within: Duration) -> Option<Instant> {
    let t = Instant::now();
    while t.elapsed() < within {
        if data.join("atgw.db").exists()
            && journal_count(data, "SELECT coalesce(max(seq), 0) FROM events") >= n as i64
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
