//! Shared harness for the benchmark drivers: the release `atgw` binary as a child process, a
//! private Mosquitto on a free loopback port, MQTT helpers (session setup, backlog publisher,
//! counting subscriber), `/proc` memory readings and the result line.
//!
//! Every driver prints one `BENCH {json}` line per benchmark and a human summary, and stops by
//! itself. All traffic goes to 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use atgw::tools::mosquitto::{Mosquitto, free_port};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: `$ATGW_BIN`, else the `atgw` cargo built beside this bench (the bench
/// profile inherits `release`, so that is `$CARGO_TARGET_DIR/release/atgw`).
pub fn atgw_bin() -> PathBuf {
    let p = std::env::var_os("ATGW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_atgw")));
    assert!(
        p.is_file(),
        "atgw binary not found at {} (cargo build --release, or set ATGW_BIN)",
        p.display()
    );
    p
}

/// Scratch space under the target directory (same filesystem as a real `data_dir`, unlike a
/// tmpfs `/tmp` would be), removed on drop.
pub fn scratch(name: &str) -> tempfile::TempDir {
    let base = bench_dir();
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(base)
        .unwrap()
}

/// `<target>/bench`: scratch directories and cached fixtures (e.g. the 1M-event journal).
pub fn bench_dir() -> PathBuf {
    // current_exe = <target>/release/deps/<bench>-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("bench"))
        .unwrap_or_else(|| repo().join("target/bench"))
}

/// Starts a private broker (persistence, `max_queued_messages 0`, `set_tcp_nodelay true`).
pub fn broker(dir: &Path) -> Mosquitto {
    Mosquitto::start(&dir.join("broker"), "").expect("start mosquitto")
}

/// The `[gateway]` table every bench uses.
pub fn gateway_section(data_dir: &Path) -> String {
    format!(
        "[gateway]\nid = \"gw-bench\"\nsite = \"bench\"\ndata_dir = \"{}\"\nprofiles_dir = \"{}\"\ntimezone = \"UTC\"\n",
        data_dir.display(),
        repo().join("config/profiles").display()
    )
}

/// An MQTT adapter `zigbee` with the shipped zigbee2mqtt profile.
pub fn mqtt_adapter(port: u16) -> String {
    format!(
        "\n[[adapter]]\nname = \"zigbee\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         topics = [\"zigbee2mqtt/#\"]\nprofiles = [\"zigbee2mqtt\"]\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n{}",
        mqtt_batch()
    )
}

/// `batch = N` for an MQTT adapter when `BENCH_MQTT_BATCH` sets it (else the adapter's default),
/// to weigh messages per journal transaction against an alarm's wait behind one.
pub fn mqtt_batch() -> String {
    std::env::var("BENCH_MQTT_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| format!("batch = {n}\n"))
        .unwrap_or_default()
}

/// The upstream MQTT sink, topic prefix `atgw/bench`.
pub fn mqtt_sink(port: u16) -> String {
    format!(
        "\n[[sink]]\nname = \"upstream\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         topic_prefix = \"atgw/bench\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n"
    )
}

/// A file sink; no rotation during a run (a bench tails the file).
pub fn file_sink(path: &Path) -> String {
    format!(
        "\n[[sink]]\nname = \"audit\"\ntype = \"file\"\npath = \"{}\"\nrotate_bytes = 4294967296\n",
        path.display()
    )
}

/// The MQTT adapter's client id (`<gateway.id>-<adapter name>`).
pub const ADAPTER_CLIENT_ID: &str = "gw-bench-zigbee";
pub const UPSTREAM_FILTER: &str = "atgw/bench/events/#";

/// `atgw run --config FILE` with a clean environment: atgw reads `ATGW_<SECTION>__<KEY>`
/// overrides, so no `ATGW_*` variable of the caller (e.g. `ATGW_BIN`) reaches it.
pub fn atgw_command(config: &Path) -> Command {
    let mut c = Command::new(atgw_bin());
    c.args(["run", "--config"]).arg(config);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ATGW_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "info,rumqttc=warn").stdin(Stdio::null());
    c
}

/// The real daemon, `atgw run`, logging to a file.
pub struct Gateway {
    pub child: Child,
    pub log: PathBuf,
    pub launched: Instant,
}

impl Gateway {
    /// Launches without waiting for anything.
    pub fn launch(dir: &Path, config_text: &str) -> Gateway {
        let config = dir.join("atgw.toml");
        std::fs::write(&config, config_text).unwrap();
        let log = dir.join("atgw.log");
        let out = std::fs::File::create(&log).unwrap();
        let launched = Instant::now();
        let child = atgw_command(&config)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn atgw");
        Gateway {
            child,
            log,
            launched,
        }
    }

    /// Launches and waits for `atgw ready`.
    pub fn start(dir: &Path, config_text: &str) -> Gateway {
        let g = Gateway::launch(dir, config_text);
        g.wait_log("atgw ready", Duration::from_secs(30));
        g
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, within: Duration) {
        let t = Instant::now();
        while !self.log_text().contains(needle) {
            assert!(
                t.elapsed() < within,
                "atgw: no `{needle}` within {within:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `VmRSS` and `VmHWM` in kB.
    pub fn memory(&self) -> Memory {
        memory(self.pid())
    }

    /// SIGTERM and wait (a clean stop checkpoints the journal).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        stop_within(&mut self.child, Duration::from_secs(20));
    }
}

/// Waits for `child` to exit for at most `within`, then kills it.
pub fn stop_within(child: &mut Child, within: Duration) {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn memory(pid: u32) -> Memory {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    }
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Median, min and max of a few runs.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summary(values: &[f64]) -> Summary {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Summary {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

impl Summary {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "median": round(self.median), "min": round(self.min), "max": round(self.max) })
    }
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Prints the machine-readable result line, keeps it in `benches/results/<bench>.json`, and
/// rewrites that bench's row of the "Latest runs" table in `BENCHMARKS.md` (between its
/// markers), so the table always shows the last measurement and the command that made it.
/// `BENCH_NO_RECORD=1` only prints.
pub fn emit(v: serde_json::Value) {
    println!("BENCH {v}");
    if std::env::var_os("BENCH_NO_RECORD").is_some() {
        return;
    }
    if let Err(e) = record(&v) {
        eprintln!("bench: result not recorded: {e}");
    }
}

const TABLE_BEGIN: &str = "<!-- bench:latest:begin -->";
const TABLE_END: &str = "<!-- bench:latest:end -->";

fn record(v: &serde_json::Value) -> std::io::Result<()> {
    let bench = v["bench"].as_str().unwrap_or("unknown").to_owned();
    let dir = repo().join("benches/results");
    std::fs::create_dir_all(&dir)?;
    let mut stored = v.clone();
    stored["measured_at"] = jiff::Timestamp::now().to_string().into();
    stored["commit"] = git_head().into();
    std::fs::write(
        dir.join(format!("{bench}.json")),
        serde_json::to_string_pretty(&stored)? + "\n",
    )?;

    // Rebuild the table from every stored result, one row per bench.
    let mut rows = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for path in names {
        let Ok(r) = std::fs::read_to_string(&path)
            .map_err(|_| ())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|_| ()))
        else {
            continue;
        };
        let name = r["bench"].as_str().unwrap_or("?");
        rows.push(format!(
            "| `{name}` | {} | {} | `{}` | `cargo bench --bench {name}` |",
            headline(&r),
            r["measured_at"]
                .as_str()
                .unwrap_or("?")
                .get(..16)
                .unwrap_or("?"),
            r["commit"].as_str().unwrap_or("?"),
        ));
    }
    let table = format!(
        "{TABLE_BEGIN}\n| bench | latest figures (median of runs) | measured (UTC) | commit | reproduce |\n|---|---|---|---|---|\n{}\n{TABLE_END}",
        rows.join("\n")
    );
    let md_path = repo().join("BENCHMARKS.md");
    let md = std::fs::read_to_string(&md_path)?;
    let updated = match (md.find(TABLE_BEGIN), md.find(TABLE_END)) {
        (Some(a), Some(b)) if a < b => format!("{}{table}{}", &md[..a], &md[b + TABLE_END.len()..]),
        _ => format!("{md}\n## Latest runs (written by the benches)\n\n{table}\n"),
    };
    std::fs::write(md_path, updated)
}

fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

/// The figures a reader compares with the targets, per bench.
pub fn headline(r: &serde_json::Value) -> String {
    let med = |p: &str| {
        r.pointer(p)
            .and_then(|x| x.as_f64())
            .map(|x| format!("{x}"))
            .unwrap_or_else(|| "?".into())
    };
    match r["bench"].as_str() {
        Some("mqtt_drain") => format!(
            "{} events/s; {}× the C relay's time; peak RSS {} MB (idle after {} MB)",
            med("/variants/atgw/events_per_sec/median"),
            med("/ratio_atgw_to_relay"),
            med("/variants/atgw/peak_rss_mb/median"),
            med("/variants/atgw/idle_rss_after_mb/median")
        ),
        Some("drain_instructions") => format!(
            "{} instructions/event (the C relay: {} per message)",
            med("/atgw_instructions_per_event"),
            med("/relay_instructions_per_message")
        ),
        Some("scaip_throughput") => format!(
            "UDP {} alarms/s, reply p99 {} ms; TCP {} alarms/s, reply p99 {} ms",
            med("/results/0/alarms_per_sec/median"),
            med("/results/0/reply_p99_ms/median"),
            med("/results/1/alarms_per_sec/median"),
            med("/results/1/reply_p99_ms/median")
        ),
        Some("dc09_throughput") => format!(
            "{} frames/s, ACK p99 {} ms ({} connections)",
            med("/results/0/frames_per_sec/median"),
            med("/results/0/ack_p99_ms/median"),
            med("/results/0/connections")
        ),
        Some("espa_throughput") => format!(
            "{} calls/s, ACK p99 {} ms (one TCP link, select+block+EOT per call)",
            med("/calls_per_sec/median"),
            med("/ack_p99_ms/median")
        ),
        Some("idle_rss") => format!(
            "idle {} MB; {} devices under load {} MB",
            med("/idle_rss_mb/median"),
            med("/devices"),
            med("/devices_load_rss_mb/median")
        ),
        Some("start_ready") => format!(
            "{} ms to ready with {} events ({} ms quick_check)",
            med("/ready_ms/median"),
            med("/events"),
            med("/quick_check_ms/median")
        ),
        Some("alarm_latency") => format!(
            "upstream p50 {} / p99 {} ms, webhook p50 {} / p99 {} ms at {} telemetry/s; excess over relay + fsync p50 {} / p99 {} ms",
            med("/upstream/p50_ms"),
            med("/upstream/p99_ms"),
            med("/webhook/p50_ms"),
            med("/webhook/p99_ms"),
            med("/telemetry_per_sec/median"),
            med("/excess_over_relay_and_fsync_ms/p50"),
            med("/excess_over_relay_and_fsync_ms/p99")
        ),
        Some("alarm_during_drain") => format!(
            "DC-09 press during a {}-message drain: ACK p99 {} ms, press → upstream p99 {} ms (idle: {} / {} ms)",
            med("/backlog"),
            med("/during/ack_p99_ms/median"),
            med("/during/upstream_p99_ms/median"),
            med("/idle/ack_p99_ms/median"),
            med("/idle/upstream_p99_ms/median")
        ),
        Some("http_ingest") => format!(
            "{} webhooks/s acknowledged after commit, p99 {} ms ({} in flight; the bare HTTPS floor {}/s, p99 {} ms)",
            med("/results/1/atgw/webhooks_per_sec/median"),
            med("/results/1/atgw/p99_ms/median"),
            med("/results/1/concurrency"),
            med("/results/1/floor/webhooks_per_sec/median"),
            med("/results/1/floor/p99_ms/median")
        ),
        Some("console_fanout") => format!(
            "commit → render on {} consoles p50 {} / p99 {} ms ({} transitions)",
            med("/consoles"),
            med("/p50_ms"),
            med("/p99_ms"),
            med("/transitions")
        ),
        Some("soak") => format!(
            "{} simulated days in {} s: after the first retention cycle disk {}–{} MB, RSS {}–{} MB, commit p99 ≤ {}–{} ms; {} lost, {} false offline alerts",
            med("/days"),
            med("/real_s"),
            med("/after_first_cycle/disk_mb/min"),
            med("/after_first_cycle/disk_mb/max"),
            med("/after_first_cycle/rss_mb/min"),
            med("/after_first_cycle/rss_mb/max"),
            med("/after_first_cycle/commit_p99_ms/min"),
            med("/after_first_cycle/commit_p99_ms/max"),
            med("/lost"),
            med("/device_offline_alerts")
        ),
        _ => "see the JSON".into(),
    }
}

/// What a result line says about the machine.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mosquitto = atgw::tools::mosquitto::find()
        .and_then(|b| Command::new(b).arg("-h").output().ok())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mosquitto": mosquitto,
    })
}

/// Runs count for a driver: `BENCH_RUNS` (default 3).
pub fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A single-threaded-enough runtime for the bench's own clients (2 workers, like atgw).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn options(port: u16, client_id: &str, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_clean_session(clean);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(4 << 20, 4 << 20);
    o
}

/// Creates a persistent session with a QoS 1 subscription, then disconnects: the broker queues
/// everything matching `filter` for `client_id` from now on.
pub async fn create_session(port: u16, client_id: &str, filter: &str) {
    let (client, mut el) = AsyncClient::new(options(port, client_id, false), 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "session setup for {client_id} timed out"
        );
        match el.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                client.try_subscribe(filter, QoS::AtLeastOnce).unwrap();
            }
            Ok(Event::Incoming(Incoming::SubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("session setup for {client_id}: {e}"),
        }
    }
    client.try_disconnect().unwrap();
    while el.poll().await.is_ok() {}
}

/// Publishes `count` messages at QoS 1 and returns once the broker acknowledged all of them.
/// `message(i)` gives topic and payload.
pub async fn publish_backlog(
    port: u16,
    count: u64,
    message: impl Fn(u64) -> (String, Vec<u8>) + Send + 'static,
) -> Duration {
    let mut o = options(port, "bench-publisher", true);
    o.set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        for i in 0..count {
            let (t, p) = message(i);
            if client.publish(t, QoS::AtLeastOnce, false, p).await.is_err() {
                return;
            }
        }
        // keep the client (and with it the request channel) alive until acks are in
        std::future::pending::<()>().await;
    });
    let mut acked = 0u64;
    while acked < count {
        match el.poll().await {
            Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("backlog publisher: {e}"),
        }
    }
    feeder.abort();
    start.elapsed()
}

/// Publishes at a steady rate for a while (QoS 1), from a background task. Returns how many were
/// acknowledged by the broker.
pub async fn publish_paced(
    port: u16,
    per_sec: u64,
    duration: Duration,
    message: impl Fn(u64) -> (String, Vec<u8>) + Send + 'static,
) -> u64 {
    let mut o = options(port, "bench-paced", true);
    o.set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let a = acked.clone();
    let poll = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    a.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let tick = Duration::from_millis(10);
    let per_tick = (per_sec / 100).max(1);
    let mut interval = tokio::time::interval(tick);
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < duration {
        interval.tick().await;
        for _ in 0..per_tick {
            let (t, p) = message(i);
            i += 1;
            client.publish(t, QoS::AtLeastOnce, false, p).await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while acked.load(Ordering::Relaxed) < i && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    poll.abort();
    acked.load(Ordering::Relaxed)
}

/// A persistent-session QoS 1 subscriber (auto-ack) that counts distinct messages and notes
/// when the `target`-th arrived. Messages are told apart by `key(payload)`.
pub struct Counter {
    pub distinct: Arc<AtomicU64>,
    pub total: Arc<AtomicU64>,
    done: Arc<Mutex<Option<Instant>>>,
    connected: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    /// Connects `client_id` (whose session and subscription already exist, or subscribes now).
    pub fn start(
        port: u16,
        client_id: &str,
        filter: &str,
        target: u64,
        key: fn(&[u8]) -> Option<Vec<u8>>,
    ) -> Counter {
        let (client, mut el) = AsyncClient::new(options(port, client_id, false), 1000);
        let distinct = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let done = Arc::new(Mutex::new(None));
        let connected = Arc::new(Mutex::new(None));
        let (d, t, dn, c) = (
            distinct.clone(),
            total.clone(),
            done.clone(),
            connected.clone(),
        );
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(target.min(1 << 20) as usize);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        *c.lock().unwrap() = Some(Instant::now());
                        let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        t.fetch_add(1, Ordering::Relaxed);
                        if let Some(k) = key(&p.payload)
                            && seen.insert(k)
                        {
                            let n = d.fetch_add(1, Ordering::Relaxed) + 1;
                            if n == target {
                                *dn.lock().unwrap() = Some(Instant::now());
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Counter {
            distinct,
            total,
            done,
            connected,
            task,
        }
    }

    /// When the target count was reached, waiting at most `within`.
    pub async fn wait_done(&self, within: Duration) -> Option<Instant> {
        let t = Instant::now();
        loop {
            if let Some(at) = *self.done.lock().unwrap() {
                return Some(at);
            }
            if t.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn distinct(&self) -> u64 {
        self.distinct.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Key of an upstream CloudEvent: its `id`.
pub fn event_id(payload: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: &'a str,
    }
    serde_json::from_slice::<Id>(payload)
        .ok()
        .map(|i| i.id.as_bytes().to_vec())
}

/// Key of a raw device message: the payload itself.
pub fn whole_payload(payload: &[u8]) -> Option<Vec<u8>> {
    Some(payload.to_vec())
}

/// A read-only look at a journal.
pub fn journal_count(data_dir: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(
        data_dir.join("atgw.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

/// One of the drain benches' backlog messages: a `pendant_press` from one of 100 devices.
pub fn pendant_message(i: u64) -> (String, Vec<u8>) {
    (
        format!("zigbee2mqtt/dev-{}", i % 100),
        format!(r#"{{"action":"emergency","seq":{i}}}"#).into_bytes(),
    )
}

/// The C relay floor (`mosquitto_sub SUB | mosquitto_pub -l PUB`, both on the broker at `port`)
/// as its own process group, killed with it when dropped.
pub struct Relay(Child);

impl Relay {
    /// `sub` and `publish` are the two clients' arguments after host and port.
    pub fn start(port: u16, sub: &str, publish: &str) -> Relay {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "mosquitto_sub -h 127.0.0.1 -p {port} {sub} | mosquitto_pub -h 127.0.0.1 -p {port} {publish}"
            ))
            .process_group(0)
            .spawn()
            .expect("spawn the mosquitto_sub | mosquitto_pub relay (mosquitto-clients)");
        Relay(child)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // `--` matters: procps-ng's `kill -TERM -<pgid>` signals every process (pid -1).
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// A BLE hub's report of one reading, unique per `i` (the adapter deduplicates identical
/// messages), from one of 50 oximeters, with values that score 0 on NEWS2 (no alert).
pub fn oximeter(i: u64, now_s: i64) -> Vec<u8> {
    format!(
        r#"{{"from":"BLE","to":"CLOUD","time":{now_s},"seq":{i},"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{{"device_list":[{{"scan_time":{now_s},"ble_addr":"ff2304{:06x}","pulse":{},"spo2":{},"pi":{}}}]}}}}}}"#,
        i % 50,
        60 + i % 31,
        96 + i % 4,
        20 + i % 60,
    )
    .into_bytes()
}

/// The `p` quantile (0–1) of `values` by the nearest-rank rule; NaN for none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}
