//! `cargo bench --bench console_fanout`: how long an alert transition takes to reach the
//! care-team consoles, from its commit to its card being painted, with 20 consoles open.
//!
//! The real binary with one MQTT adapter and the console; 20 headless chromium pages (Debian's
//! chromium, driven by `tests/console/driver.js`, each in its own browser context so each holds
//! its own live stream), logged in as one carer. The bench presses `BENCH_PRESSES` (30) SOS
//! buttons, each a new device (a new alert), `BENCH_PRESS_GAP_MS` (300) apart, and takes for
//! every (page, alert) pair: the card's first paint (`requestAnimationFrame` after the card is
//! in the DOM, on the page's `performance` clock) minus the raised lifecycle event's
//! `recorded_ms` (the gateway's clock in the committing batch). Both clocks are this machine's
//! wall clock.
//!
//! The floor, measured in the same run: the same transitions arriving as Server-Sent Events at a
//! raw HTTP client (no browser: no parse, layout or paint), logged in as the same carer, taken
//! as the arrival of each alert's first `transition` event minus the same `recorded_ms`. The
//! stream wakes on the writer's commit ([`atgw::journal::WriterHandle::commits`]), so neither
//! includes a poll interval. The load average before and after is recorded beside the figures.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, MqttOptions, QoS};

const PASSWORD: &str = "bench password for the console";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let consoles: usize = env_or("BENCH_CONSOLES", 20);
    let presses: usize = env_or("BENCH_PRESSES", 30);
    let gap = Duration::from_millis(env_or("BENCH_PRESS_GAP_MS", 300));
    let driver_dir = repo().join("tests/console");
    if !driver_dir.join("node_modules/playwright-core").is_dir() {
        let ok = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&driver_dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci --prefix tests/console failed");
    }

    let dir = scratch("console_fanout");
    let broker = broker(dir.path());
    let api_port = atgw::tools::mosquitto::free_port().unwrap();
    let token = dir.path().join("api-token");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token)
            .unwrap();
        f.write_all(b"bench-token-console-fanout\n").unwrap();
    }
    let config = format!(
        "{}{}{}\n[api]\nlisten = \"127.0.0.1:{api_port}\"\ntoken_file = \"{}\"\nmax_connections = 512\nidle_timeout = \"5m\"\n\n[api.console]\nenabled = true\n\n[[route]]\nname = \"carers\"\nsinks = [\"audit\"]\n\n[[policy]]\nname = \"alarms\"\nmatch = {{ priority = [\"high\"] }}\nnotify = [\"carers\"]\n",
        gateway_section(&dir.path().join("state")),
        mqtt_adapter(broker.port),
        file_sink(&dir.path().join("events.jsonl")),
        token.display()
    );
    let gw = Gateway::start(dir.path(), &config);
    let mut add = Command::new(atgw_bin())
        .args(["users", "--config"])
        .arg(dir.path().join("atgw.toml"))
        .args(["add", "bench", "--role", "carer"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success());

    let base = format!("http://127.0.0.1:{api_port}");
    let mut node = Command::new("node")
        .arg(driver_dir.join("driver.js"))
        .arg(&base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut cmd = |args: &[&str]| -> serde_json::Value {
        writeln!(stdin, "{}", serde_json::to_string(args).unwrap()).unwrap();
        if args == ["quit"] {
            // The driver exits without an answer.
            return serde_json::Value::Null;
        }
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the browser driver exited during {args:?}"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true, "{args:?}: {}", v["error"]);
        v
    };
    cmd(&["open"]);
    cmd(&["login", "bench", PASSWORD]);
    let n = consoles.to_string();
    cmd(&["fanout", &n]);
    let (ready, listening) = tokio::sync::oneshot::channel();
    let raw = tokio::spawn(raw_client(base.clone(), presses, ready));
    // Its stream open (its `hello` heard) before the first press, like the pages'.
    tokio::time::timeout(Duration::from_secs(30), listening)
        .await
        .expect("the raw client's stream opened")
        .expect("the raw client's stream opened");
    let load_before = loadavg();

    let (client, mut el) = AsyncClient::new(
        MqttOptions::new("console-fanout-devices", "127.0.0.1", broker.port),
        100,
    );
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    for i in 0..presses {
        client
            .publish(
                format!("zigbee2mqtt/bench-sos-{i}"),
                QoS::AtLeastOnce,
                false,
                r#"{"action":"emergency"}"#,
            )
            .await
            .unwrap();
        tokio::time::sleep(gap).await;
    }

    let journal = dir.path().join("state").join(atgw::journal::FILE_NAME);
    let raised = || -> HashMap<String, f64> {
        let c = rusqlite::Connection::open(&journal).unwrap();
        let mut stmt = c
            .prepare(
                "SELECT correlation_id, min(recorded_ms) FROM events
                 WHERE correlation_id IS NOT NULL AND json LIKE '%\"atgw.alert.raised\"%'
                 GROUP BY correlation_id",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as f64)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let waiting = Instant::now() + Duration::from_secs(20);
    let mut recorded = raised();
    while recorded.len() < presses && Instant::now() < waiting {
        tokio::time::sleep(Duration::from_millis(200)).await;
        recorded = raised();
    }
    assert_eq!(recorded.len(), presses, "every press opened an alert");

    let deadline = Instant::now() + Duration::from_secs(30);
    let pages = loop {
        let v = cmd(&["painted"]);
        let pages = v["pages"].as_array().cloned().unwrap_or_default();
        let seen: usize = pages
            .iter()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        if seen >= consoles * presses || Instant::now() > deadline {
            break pages;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut lat = Vec::new();
    let mut missing = 0;
    for p in &pages {
        for (id, at) in &recorded {
            match p.get(id).and_then(|t| t.as_f64()) {
                Some(t) => lat.push(t - at),
                None => missing += 1,
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let load_after = loadavg();
    let arrived = tokio::time::timeout(Duration::from_secs(10), raw)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut floor: Vec<f64> = recorded
        .iter()
        .filter_map(|(id, at)| arrived.get(id).map(|t| t - at))
        .collect();
    floor.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cmd(&["quit"]);
    let _ = node.wait();
    gw.stop();
    let result = serde_json::json!({
        "bench": "console_fanout",
        "consoles": consoles,
        "transitions": presses,
        "samples": lat.len(),
        "missing": missing,
        "p50_ms": round(percentile(&lat, 50.0)),
        "p90_ms": round(percentile(&lat, 90.0)),
        "p99_ms": round(percentile(&lat, 99.0)),
        "max_ms": round(lat.last().copied().unwrap_or(f64::NAN)),
        "min_ms": round(lat.first().copied().unwrap_or(f64::NAN)),
        "floor_raw_sse": {
            "samples": floor.len(),
            "p50_ms": round(percentile(&floor, 50.0)),
            "p99_ms": round(percentile(&floor, 99.0)),
            "min_ms": round(floor.first().copied().unwrap_or(f64::NAN)),
            "max_ms": round(floor.last().copied().unwrap_or(f64::NAN)),
        },
        "fallback_poll_ms": atgw::console::stream::FALLBACK.as_millis() as u64,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "machine": machine(),
    });
    println!(
        "console_fanout: {} transitions to {} consoles: commit → paint p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, min–max {:.1}–{:.1} ms ({} missing); floor (raw SSE client, same run, {} samples): p50 {:.1} ms, p99 {:.1} ms, min–max {:.1}–{:.1} ms; load {} → {}",
        presses,
        consoles,
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        lat.first().copied().unwrap_or(f64::NAN),
        lat.last().copied().unwrap_or(f64::NAN),
        missing,
        floor.len(),
        percentile(&floor, 50.0),
        percentile(&floor, 99.0),
        floor.first().copied().unwrap_or(f64::NAN),
        floor.last().copied().unwrap_or(f64::NAN),
        load_before,
        load_after,
    );
    emit(result);
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The floor: the live stream read by a plain HTTP client as the same carer; when each alert's
/// first transition arrived (wall clock, ms), until `presses` alerts were heard or the stream
/// ends.
async fn raw_client(
    base: String,
    presses: usize,
    ready: tokio::sync::oneshot::Sender<()>,
) -> HashMap<String, f64> {
    let mut ready = Some(ready);
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/console/login"))
        .json(&serde_json::json!({"name": "bench", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the raw client logs in");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut r = client
        .get(format!("{base}/console/api/stream?since=0"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the raw client's stream");
    let mut seen = HashMap::new();
    let mut buf = String::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        let now = wall_ms();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let ev: String = buf.drain(..end + 2).collect();
            if ev.lines().any(|l| l.trim() == "event: hello")
                && let Some(r) = ready.take()
            {
                let _ = r.send(());
            }
            if !ev.lines().any(|l| l.trim() == "event: transition") {
                continue;
            }
            let data: String = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&data)
                && let Some(id) = v["alert"]["id"].as_str()
            {
                seen.entry(id.to_owned()).or_insert(now);
            }
        }
        if seen.len() >= presses {
            break;
        }
    }
    seen
}
