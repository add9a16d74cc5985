//! `cargo bench --bench mqtt_drain`: a 100,000-message backlog queued for atgw's persistent
//! session, drained MQTT → profile → journal (durable) → upstream MQTT, timed from launch to the
//! last upstream message; compared with a plain rumqttc subscriber draining the same backlog.
//! DESIGN §11: ≥ 20,000 events/s, within 1.3× of the plain subscriber.
//!
//! Variants (`BENCH_DRAIN=relay,atgw,atgw_unbounded,mqtt_only,file_only,journal_only,plain`, all
//! by default): `atgw` has the upstream MQTT sink and a file sink; `atgw_unbounded` is the same
//! with the adapter's in-memory window (`max_held_bytes`) made 1 GiB, as it was before the
//! window existed, to show what the window does to memory and time; `mqtt_only` / `file_only`
//! one sink; `journal_only` no sink (timed to the last event committed); `plain` is a bare
//! subscriber, and `relay` the floor the drain is judged against: a non-durable C relay
//! (`mosquitto_sub -c -q 1 | mosquitto_pub -l -q 1`) draining the same backlog to the same
//! upstream subscriber. `BENCH_MESSAGES` (100000) and `BENCH_RUNS` (3) scale it.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const ALL: &[&str] = &[
    "relay",
    "atgw",
    "atgw_unbounded",
    "mqtt_only",
    "file_only",
    "journal_only",
    "plain",
];

/// Variants that are not atgw, so have no atgw memory to report.
fn is_floor(variant: &str) -> bool {
    matches!(variant, "plain" | "relay")
}

#[derive(Clone, Copy, Debug)]
struct Run {
    secs: f64,
    hwm_kb: u64,
    idle_rss_kb: u64,
    duplicates: u64,
    /// `/proc/<pid>/io` of atgw after the drain and 2 s idle: bytes it sent to storage
    /// (`write_bytes`: journal, WAL, checkpoints, the file sink) and bytes it passed to
    /// `write(2)` (`wchar`, which also counts sockets), per event.
    disk_bytes_per_event: f64,
    write_calls_bytes_per_event: f64,
}

/// `write_bytes` and `wchar` of a process.
fn io_counters(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("write_bytes:"), field("wchar:"))
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
            let memory = if is_floor(variant) {
                String::new()
            } else {
                format!(
                    ", peak RSS {:.1} MB, idle RSS after {:.1} MB, {:.0} B/event to disk ({:.0} B/event written)",
                    mb(run.hwm_kb),
                    mb(run.idle_rss_kb),
                    run.disk_bytes_per_event,
                    run.write_calls_bytes_per_event
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
        if !is_floor(name) {
            v["peak_rss_mb"] = summary(&rs.iter().map(|r| mb(r.hwm_kb)).collect::<Vec<_>>()).json();
            v["idle_rss_after_mb"] =
                summary(&rs.iter().map(|r| mb(r.idle_rss_kb)).collect::<Vec<_>>()).json();
            v["disk_bytes_per_event"] = summary(
                &rs.iter()
                    .map(|r| r.disk_bytes_per_event)
                    .collect::<Vec<_>>(),
            )
            .json();
            v["write_bytes_per_event"] = summary(
                &rs.iter()
                    .map(|r| r.write_calls_bytes_per_event)
                    .collect::<Vec<_>>(),
            )
            .json();
        }
        variants.insert(name.clone(), v);
    }
    let ratio = match (medians.get("atgw"), medians.get("plain")) {
        (Some(a), Some(p)) => Some(round(a / p)),
        _ => None,
    };
    let relay_ratio = match (medians.get("atgw"), medians.get("relay")) {
        (Some(a), Some(r)) => Some(round(a / r)),
        _ => None,
    };
    emit(serde_json::json!({
        "bench": "mqtt_drain",
        "messages": n,
        "runs": runs,
        "variants": variants,
        "ratio_atgw_to_plain": ratio,
        "ratio_atgw_to_relay": relay_ratio,
        "targets": { "events_per_sec": 35000, "ratio_to_relay_max": 1.2, "peak_rss_mb_max": 25 },
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
        if !is_floor(name) {
            let h = summary(&rs.iter().map(|r| mb(r.hwm_kb)).collect::<Vec<_>>());
            let i = summary(&rs.iter().map(|r| mb(r.idle_rss_kb)).collect::<Vec<_>>());
            let d = summary(
                &rs.iter()
                    .map(|r| r.disk_bytes_per_event)
                    .collect::<Vec<_>>(),
            );
            print!(
                "  peak RSS {:.1} MB [{:.1}-{:.1}]  idle after {:.1} MB [{:.1}-{:.1}]  disk {:.0} B/event [{:.0}-{:.0}]",
                h.median, h.min, h.max, i.median, i.min, i.max, d.median, d.min, d.max
            );
        }
        println!();
    }
    if let Some(r) = ratio {
        println!("  atgw / plain time ratio: {r:.2}");
    }
    if let Some(r) = relay_ratio {
        println!(
            "  atgw / relay time ratio: {r:.2} (target ≤ 1.2; ≥ 35,000 events/s; peak RSS ≤ 25 MB)"
        );
    }
}

async fn one(variant: &str, n: u64) -> Run {
    let dir = scratch("drain");
    let broker = broker(dir.path());
    let port = broker.port;
    if variant == "plain" {
        create_session(port, "bench-plain", "zigbee2mqtt/#").await;
        publish_backlog(port, n, pendant_message).await;
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
            disk_bytes_per_event: 0.0,
            write_calls_bytes_per_event: 0.0,
        };
    }

    if variant == "relay" {
        return relay(port, n).await;
    }

    let data = dir.path().join("state");
    let audit = dir.path().join("events.jsonl");
    let mut cfg = gateway_section(&data) + &mqtt_adapter(port);
    if variant == "atgw_unbounded" {
        cfg += "max_held_bytes = 1073741824\n";
    }
    let upstream = matches!(variant, "atgw" | "atgw_unbounded" | "mqtt_only");
    if upstream {
        cfg += &mqtt_sink(port);
    }
    if matches!(variant, "atgw" | "atgw_unbounded" | "file_only") {
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
    publish_backlog(port, n, pendant_message).await;
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
    let (disk, wchar) = io_counters(g.pid());
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
        disk_bytes_per_event: disk as f64 / n as f64,
        write_calls_bytes_per_event: wchar as f64 / n as f64,
    }
}

/// The floor: the C clients relay the backlog from the device topics to the upstream topic,
/// QoS 1 on both legs, persistent session on the way in, nothing journaled. Timed from the
/// relay's spawn to the `n`-th distinct message at the same upstream subscriber atgw uses.
async fn relay(port: u16, n: u64) -> Run {
    create_session(port, "bench-relay", "zigbee2mqtt/#").await;
    create_session(port, "bench-upstream", UPSTREAM_FILTER).await;
    let c = Counter::start(port, "bench-upstream", UPSTREAM_FILTER, n, whole_payload);
    publish_backlog(port, n, pendant_message).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let relay = Relay::start(
        port,
        "-i bench-relay -c -q 1 -t 'zigbee2mqtt/#'",
        "-i bench-relay-out -q 1 -t atgw/bench/events/relay -l",
    );
    let done = c.wait_done(Duration::from_secs(180)).await;
    drop(relay);
    let done = done.unwrap_or_else(|| panic!("relay: drained only {} of {n}", c.distinct()));
    Run {
        secs: (done - start).as_secs_f64(),
        hwm_kb: 0,
        idle_rss_kb: 0,
        duplicates: c.total() - c.distinct(),
        disk_bytes_per_event: 0.0,
        write_calls_bytes_per_event: 0.0,
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
