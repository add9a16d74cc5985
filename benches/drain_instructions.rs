//! `cargo bench --bench drain_instructions`: the drain path's cost in instructions per event,
//! counted by `valgrind --tool=callgrind`, so a change's cost shows even when wall time is noise
//! on a shared box (instruction counts do not depend on what else the machine runs).
//!
//! atgw runs under callgrind with the `mqtt_drain` bench's setup (MQTT adapter with the
//! zigbee2mqtt profile, upstream MQTT sink and file sink, durable journal) and drains a backlog
//! queued for its session; it is stopped (SIGTERM) once the journal holds every event and the
//! outbox is empty. The same is done with an empty backlog (start, connect, stop), and
//! instructions per event are `(Ir(n) − Ir(0)) / n`. The floor, in the same run and the same
//! units: the C relay (`mosquitto_sub | mosquitto_pub -l`, QoS 1 both legs) and the broker, each
//! counted under callgrind for the same backlog the same way.
//!
//! `BENCH_MESSAGES` (5000). Needs `valgrind`; skipped with a message when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("drain_instructions: valgrind not found; skipped");
        return;
    }
    let n: u64 = env_or("BENCH_MESSAGES", 5000);
    let rt = runtime();
    println!(
        "drain_instructions: {n} messages under callgrind, binary {}",
        atgw_bin().display()
    );
    let atgw_empty = rt.block_on(atgw(0));
    let atgw_full = rt.block_on(atgw(n));
    let relay_empty = rt.block_on(relay(0));
    let relay_full = rt.block_on(relay(n));
    let per = |full: u64, empty: u64| full.saturating_sub(empty) as f64 / n as f64;
    let atgw_per = per(atgw_full, atgw_empty);
    let relay_per = per(relay_full, relay_empty);
    println!(
        "  atgw:  Ir {atgw_full} with {n}, {atgw_empty} with 0 -> {atgw_per:.0} instructions/event"
    );
    println!(
        "  relay: Ir {relay_full} with {n}, {relay_empty} with 0 -> {relay_per:.0} instructions/message (mosquitto_sub + mosquitto_pub)"
    );
    println!("  atgw / relay: {:.1}", atgw_per / relay_per);
    emit(serde_json::json!({
        "bench": "drain_instructions",
        "messages": n,
        "atgw_instructions_per_event": atgw_per.round(),
        "relay_instructions_per_message": relay_per.round(),
        "ratio_atgw_to_relay": round(atgw_per / relay_per),
        "raw": {
            "atgw": { "empty": atgw_empty, "full": atgw_full },
            "relay": { "empty": relay_empty, "full": relay_full },
        },
        "machine": machine(),
    }));
}

/// atgw under callgrind draining `n` queued messages; its total instruction count.
async fn atgw(n: u64) -> u64 {
    let dir = scratch("drain-ir");
    let broker = broker(dir.path());
    let port = broker.port;
    let data = dir.path().join("state");
    let cfg = gateway_section(&data)
        + &mqtt_adapter(port)
        + &mqtt_sink(port)
        + &file_sink(&dir.path().join("events.jsonl"));
    create_session(port, ADAPTER_CLIENT_ID, "zigbee2mqtt/#").await;
    create_session(port, "bench-upstream", UPSTREAM_FILTER).await;
    if n > 0 {
        publish_backlog(port, n, pendant_message).await;
    }
    let config = dir.path().join("atgw.toml");
    std::fs::write(&config, cfg).unwrap();
    let out = dir.path().join("callgrind.out");
    let log = std::fs::File::create(dir.path().join("atgw.log")).unwrap();
    let inner = atgw_command(&config);
    let mut c = callgrind(&out);
    c.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let mut child = c
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn valgrind");
    let log_path = dir.path().join("atgw.log");
    wait_for(
        || {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("atgw ready")
        },
        Duration::from_secs(300),
        "atgw ready under callgrind",
    );
    wait_for(
        || {
            data.join("atgw.db").exists()
                && journal_count(&data, "SELECT count(*) FROM events") >= n as i64
                && journal_count(&data, "SELECT count(*) FROM outbox") == 0
        },
        Duration::from_secs(600),
        "backlog drained and delivered",
    );
    stop(&mut child);
    assert_eq!(
        journal_count(&data, "SELECT count(*) FROM events"),
        n as i64,
        "every message is one event"
    );
    drop(broker);
    instructions(&out)
}

/// The C relay under callgrind (both processes) for `n` queued messages, until the upstream
/// subscriber has them all.
async fn relay(n: u64) -> u64 {
    let dir = scratch("relay-ir");
    let broker = broker(dir.path());
    let port = broker.port;
    create_session(port, "bench-relay", "zigbee2mqtt/#").await;
    create_session(port, "bench-upstream", UPSTREAM_FILTER).await;
    let counter = Counter::start(
        port,
        "bench-upstream",
        UPSTREAM_FILTER,
        n.max(1),
        whole_payload,
    );
    if n > 0 {
        publish_backlog(port, n, pendant_message).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sub_out = dir.path().join("sub.out");
    let pub_out = dir.path().join("pub.out");
    let mut sub = callgrind(&sub_out)
        .args([
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-i",
            "bench-relay",
            "-c",
            "-q",
            "1",
            "-t",
            "zigbee2mqtt/#",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto_sub under valgrind");
    let pipe = sub.stdout.take().expect("piped stdout");
    let mut publ = callgrind(&pub_out)
        .args([
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-i",
            "bench-relay-out",
            "-q",
            "1",
            "-t",
            "atgw/bench/events/relay",
            "-l",
        ])
        .stdin(Stdio::from(pipe))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto_pub under valgrind");
    if n > 0 {
        let t = Instant::now();
        while counter.distinct() < n {
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "relay drained {} of {n}",
                counter.distinct()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    } else {
        // Long enough to connect and subscribe under valgrind.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    stop(&mut sub);
    stop(&mut publ);
    drop(broker);
    instructions(&sub_out) + instructions(&pub_out)
}

fn callgrind(out: &Path) -> Command {
    let mut c = Command::new("valgrind");
    c.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--dump-instr=no")
        .stdin(Stdio::null());
    c
}

fn wait_for(mut ok: impl FnMut() -> bool, within: Duration, what: &str) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < within, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then wait (valgrind writes its output at exit).
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The `summary:` (total Ir) line of a callgrind output file.
fn instructions(out: &PathBuf) -> u64 {
    let text = std::fs::read_to_string(out)
        .unwrap_or_else(|e| panic!("callgrind output {}: {e}", out.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {}", out.display()))
}
