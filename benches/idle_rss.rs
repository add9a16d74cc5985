//! `cargo bench --bench idle_rss`: resident memory of atgw (DESIGN §11: ≤ 15 MB idle, ≤ 40 MB
//! with 10,000 registered devices under load).
//!
//! 1. `idle`: an MQTT adapter, an upstream MQTT sink and a file sink, connected to a private
//!    broker; VmRSS after `ready` + 5 s of idling.
//! 2. `devices_10k`: the same plus 10,000 `[[device]]` entries; VmRSS idle, then under
//!    2,000 events/s for 10 s spread over those devices (VmRSS at the end, VmHWM over the run).
//!
//! `BENCH_DEVICES` (10000), `BENCH_RATE` (2000), `BENCH_LOAD_SECS` (10),
//! `BENCH_RUNS` (3).

mod common;

use std::time::Duration;

use common::*;

struct Run {
    idle_kb: u64,
    dev_idle_kb: u64,
    load_rss_kb: u64,
    load_hwm_kb: u64,
    acked: u64,
    journaled: i64,
    registered_seen: i64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let devices: usize = env_or("BENCH_DEVICES", 10_000);
    let rate: u64 = env_or("BENCH_RATE", 2000);
    let load_secs: u64 = env_or("BENCH_LOAD_SECS", 10);
    let runs = runs();
    let rt = runtime();
    println!(
        "idle_rss: {devices} devices, {rate} events/s for {load_secs} s, {runs} runs, binary {}",
        atgw_bin().display()
    );
    let mut rs = Vec::new();
    for r in 0..runs {
        let run = rt.block_on(one(devices, rate, Duration::from_secs(load_secs)));
        println!(
            "  run {}: idle {:.1} MB; {devices} devices idle {:.1} MB, under load RSS {:.1} MB peak {:.1} MB ({} published, {} journaled, {} registered devices seen)",
            r + 1,
            mb(run.idle_kb),
            mb(run.dev_idle_kb),
            mb(run.load_rss_kb),
            mb(run.load_hwm_kb),
            run.acked,
            run.journaled,
            run.registered_seen
        );
        rs.push(run);
    }
    let s = |f: &dyn Fn(&Run) -> u64| summary(&rs.iter().map(|r| mb(f(r))).collect::<Vec<_>>());
    let idle = s(&|r| r.idle_kb);
    let dev_idle = s(&|r| r.dev_idle_kb);
    let load = s(&|r| r.load_rss_kb);
    let hwm = s(&|r| r.load_hwm_kb);
    emit(serde_json::json!({
        "bench": "idle_rss",
        "runs": runs,
        "idle_rss_mb": idle.json(),
        "devices": devices,
        "devices_idle_rss_mb": dev_idle.json(),
        "load_events_per_sec": rate,
        "load_seconds": load_secs,
        "devices_load_rss_mb": load.json(),
        "devices_load_peak_rss_mb": hwm.json(),
        "targets": { "idle_rss_mb": 15, "devices_load_rss_mb": 40 },
        "machine": machine(),
    }));
    println!("\nidle_rss summary (median [min-max] of {runs})");
    println!(
        "  idle (MQTT adapter + MQTT and file sinks): {:.1} MB [{:.1}-{:.1}]  (target ≤ 15 MB)",
        idle.median, idle.min, idle.max
    );
    println!(
        "  {devices} devices, idle:                   {:.1} MB [{:.1}-{:.1}]",
        dev_idle.median, dev_idle.min, dev_idle.max
    );
    println!(
        "  {devices} devices, {rate}/s load, RSS at end:  {:.1} MB [{:.1}-{:.1}]  peak {:.1} MB [{:.1}-{:.1}]  (target ≤ 40 MB)",
        load.median, load.min, load.max, hwm.median, hwm.min, hwm.max
    );
}

fn devices_toml(n: usize) -> String {
    let mut s = String::with_capacity(n * 160);
    for i in 0..n {
        s += &format!(
            "\n[[device]]\nid = \"pendant-{i}\"\nadapter = \"zigbee\"\nmatch = {{ device = \"dev-{i}\" }}\n\
             resident = \"res-{i:05}\"\nlocation = {{ area = \"wing-{}\", room = \"{i}\" }}\n",
            i / 500
        );
    }
    s
}

async fn one(devices: usize, rate: u64, load: Duration) -> Run {
    let dir = scratch("rss");
    let broker = broker(dir.path());
    let port = broker.port;
    let base = |data: &std::path::Path, audit: &std::path::Path| {
        gateway_section(data) + &mqtt_adapter(port) + &mqtt_sink(port) + &file_sink(audit)
    };

    // 1. Idle, no registry.
    let d1 = dir.path().join("idle");
    std::fs::create_dir_all(&d1).unwrap();
    let g = Gateway::start(&d1, &base(&d1.join("state"), &d1.join("events.jsonl")));
    g.wait_log("subscribed to", Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_kb = g.memory().rss_kb;
    g.stop();

    // 2. 10,000 registered devices, idle then under load.
    let d2 = dir.path().join("devices");
    std::fs::create_dir_all(&d2).unwrap();
    let data = d2.join("state");
    let cfg = base(&data, &d2.join("events.jsonl")) + &devices_toml(devices);
    create_session(port, "bench-upstream", UPSTREAM_FILTER).await;
    let upstream = Counter::start(port, "bench-upstream", UPSTREAM_FILTER, u64::MAX, event_id);
    let g = Gateway::start(&d2, &cfg);
    g.wait_log("subscribed to", Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let dev_idle_kb = g.memory().rss_kb;
    let n = devices as u64;
    let acked = publish_paced(port, rate, load, move |i| {
        (
            format!("zigbee2mqtt/dev-{}", i % n),
            format!(r#"{{"action":"emergency","battery":87,"linkquality":120,"seq":{i}}}"#)
                .into_bytes(),
        )
    })
    .await;
    // Let the tail of the load reach upstream before reading memory.
    let t = std::time::Instant::now();
    while upstream.distinct() < acked && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = g.memory();
    g.stop();
    Run {
        idle_kb,
        dev_idle_kb,
        load_rss_kb: m.rss_kb,
        load_hwm_kb: m.hwm_kb,
        acked,
        journaled: journal_count(&data, "SELECT count(*) FROM events"),
        registered_seen: journal_count(&data, "SELECT count(*) FROM devices WHERE registered = 1"),
    }
}
