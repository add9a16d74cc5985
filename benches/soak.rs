//! `cargo bench --bench soak`: a care home for a month, in minutes. 200 devices on a private
//! Mosquitto (20 BLE-hub pulse oximeters, 60 zigbee2mqtt pendants that report hourly and are
//! pressed about ten times a day, 40 Tuya fall radars that report every 5 minutes and see one
//! suspected fall a day, 80 door and bed sensors), every one of them supervised (`check_in`),
//! journaled by atgw on a real SQLite file and forwarded to an upstream Mosquitto (a stream
//! sink, and a carers' route whose alerts a simulated carer resolves over MQTT). The upstream
//! broker is stopped for 5 minutes every simulated hour.
//!
//! Time is injected: the gateway runs in a child process (this executable, `SOAK_ROLE=gateway`)
//! on an [`atgw_sdk::clock::ManualClock`] that the driver sets through the child's stdin before
//! each simulated second's messages. Everything the gateway times with the clock (received
//! times, retention windows, supervision, alert timers) lives in simulated time; what it times
//! with the machine's monotonic clock (sink retry backoff, batching windows) does not, so an
//! outage that lasts 5 simulated minutes lasts as long in real time as the sink takes to
//! reconnect. The driver publishes as fast as the broker takes it (QoS 1, 100 in flight; the
//! adapter's window holds the gateway's share), and at each `prune_every` boundary waits for
//! every message to be committed (the adapter's `committed` count) and for the
//! gateway's retention cycle to finish (`atgw_journal_prune_cycles_total`): a real home's
//! gateway is idle almost all of the time, which a run at full speed does not have.
//!
//! Recorded every 6 simulated hours: the journal's files (database + WAL) on disk, the bytes in
//! use (`atgw_journal_bytes`), the child's RSS and the group commit p99 (from
//! `atgw_commit_latency_seconds`: the upper bound of the bucket it falls in). At the end: every event reached the upstream subscriber (by
//! event id, distinct), no supervised device was reported offline, no alert was left open.
//! The curves go to `benches/results/soak.svg`.
//!
//! `SOAK_DAYS` (30), `SOAK_OXIMETER_HZ` (1: each oximeter's readings per second; 0.1 = one
//! reading every 10 s), `SOAK_TELEMETRY_RETENTION` (`7d`), `SOAK_OUTAGE_MIN` (5).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{AsyncClient, Event, Incoming, QoS};

const DAY: u64 = 86_400;
/// Simulated seconds between samples.
const SAMPLE_EVERY: u64 = 6 * 3600;
/// `[journal] prune_every` (its default).
const PRUNE_EVERY: u64 = 600;
/// 2026-01-05T00:00:00Z, a Monday.
const START_S: i64 = 1_767_571_200;
/// How far (simulated seconds) the devices may run ahead of what the gateway has committed: a
/// message's receipt time is the clock when the adapter maps it, so the lead must stay well
/// inside `[gateway] max_clock_skew` (2 min) of the time the device put in it.
const LEAD_S: usize = 90;
const OXIMETERS: u64 = 20;
const PENDANTS: u64 = 60;
const RADARS: u64 = 40;
const DOORS: u64 = 80;

fn main() {
    if std::env::var("SOAK_ROLE").as_deref() == Ok("gateway") {
        gateway_role();
        return;
    }
    let days: u64 = env_or("SOAK_DAYS", 30);
    let hz: f64 = env_or("SOAK_OXIMETER_HZ", 1.0);
    let retention: String = env_or("SOAK_TELEMETRY_RETENTION", "7d".to_owned());
    let outage_min: u64 = env_or("SOAK_OUTAGE_MIN", 5);
    let oximeter_period = ((1.0 / hz).round() as u64).max(1);
    let rt = runtime();
    rt.block_on(soak(days, oximeter_period, &retention, outage_min));
}

// ---- the gateway, in a child process on an injected clock ------------------------------------

/// `SOAK_ROLE=gateway SOAK_CONFIG=… SOAK_START_US=…`: runs the gateway; stdin lines `t <µs>` set
/// the clock, `c` prints how many messages the `home` adapter has committed, `p` how many
/// retention cycles have finished, `m` the metrics text and a line `end`; EOF stops it.
fn gateway_role() {
    use atgw_sdk::clock::ManualClock;
    atgw::logging::init(atgw::logging::LogFormat::Text, "warn");
    let config = PathBuf::from(std::env::var("SOAK_CONFIG").expect("SOAK_CONFIG"));
    let start: i64 = std::env::var("SOAK_START_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("SOAK_START_US");
    let cfg = atgw::config::load_with_env(&config, HashMap::new()).expect("soak config");
    let clock = ManualClock::new(jiff::Timestamp::from_microsecond(start).unwrap());
    let rt = runtime();
    let running = rt
        .block_on(atgw::runtime::start_with_clock(
            &cfg,
            Arc::new(clock.clone()),
        ))
        .expect("start the gateway");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(us) = line.strip_prefix("t ") {
            if let Ok(us) = us.parse::<i64>()
                && let Ok(t) = jiff::Timestamp::from_microsecond(us)
            {
                clock.set(t);
            }
        } else if line == "c" {
            let n = running
                .health
                .get("adapter:home")
                .map_or(0, |h| h.snapshot().committed);
            writeln!(out, "{n}").unwrap();
            out.flush().unwrap();
        } else if line == "p" {
            writeln!(out, "{}", running.metrics.prune_cycles()).unwrap();
            out.flush().unwrap();
        } else if line == "m" {
            let text = running.metrics.encode().unwrap_or_default();
            writeln!(out, "{text}").unwrap();
            for (name, h) in &running.health {
                writeln!(
                    out,
                    "soak_committed{{component=\"{name}\"}} {}",
                    h.snapshot().committed
                )
                .unwrap();
            }
            writeln!(out, "end").unwrap();
            out.flush().unwrap();
        }
    }
    rt.block_on(running.stop());
}

/// The driver's end of the child.
struct GatewayChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl GatewayChild {
    fn start(dir: &Path, config: &Path) -> GatewayChild {
        let log = dir.join("gateway.log");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("SOAK_ROLE", "gateway")
            .env("SOAK_CONFIG", config)
            .env("SOAK_START_US", (START_S * 1_000_000).to_string())
            .env("RUST_LOG", "warn,rumqttc=error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn the soak gateway");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "gateway did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        GatewayChild {
            child,
            stdin,
            stdout,
            log,
        }
    }

    fn set_clock(&mut self, sim_s: u64) {
        let us = (START_S + sim_s as i64) * 1_000_000;
        writeln!(self.stdin, "t {us}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// `name{labels} value` lines of the metrics text, summed per name.
    fn metrics(&mut self) -> Metrics {
        writeln!(self.stdin, "m").unwrap();
        self.stdin.flush().unwrap();
        let mut m = Metrics::default();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap() == 0 || line.trim() == "end" {
                break;
            }
            m.read(line.trim());
        }
        m
    }

    /// Device messages the `home` adapter has committed.
    fn committed(&mut self) -> u64 {
        writeln!(self.stdin, "c").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().parse().unwrap_or(0)
    }

    /// Retention cycles finished.
    fn prune_cycles(&mut self) -> u64 {
        writeln!(self.stdin, "p").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().parse().unwrap_or(0)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// EOF on stdin: a clean stop.
    fn stop(mut self) {
        drop(self.stdin);
        stop_within(&mut self.child, Duration::from_secs(30));
    }
}

/// What the driver reads of the gateway's metrics.
#[derive(Clone, Debug, Default)]
struct Metrics {
    /// Device messages the `home` adapter has committed (and so acknowledged to the broker).
    committed: u64,
    prune_cycles: u64,
    /// When the latest retention cycle finished, simulated Unix seconds.
    prune_finished_s: i64,
    events_in: u64,
    journal_bytes: u64,
    pruned_telemetry: u64,
    /// `atgw_commit_latency_seconds_bucket`: (upper bound in seconds, cumulative count).
    commit_buckets: Vec<(f64, u64)>,
}

impl Metrics {
    fn read(&mut self, line: &str) {
        if line.starts_with('#') {
            return;
        }
        let Some((name, value)) = line.rsplit_once(' ') else {
            return;
        };
        let Ok(v) = value.parse::<f64>() else { return };
        let base = name.split('{').next().unwrap_or(name);
        match base {
            "soak_committed" if name.contains("adapter:home") => self.committed = v as u64,
            "atgw_journal_prune_cycles_total" => self.prune_cycles = v as u64,
            "atgw_journal_prune_finished_timestamp_seconds" => self.prune_finished_s = v as i64,
            "atgw_events_in_total" => self.events_in += v as u64,
            "atgw_journal_bytes" => self.journal_bytes = v as u64,
            "atgw_journal_pruned_total" if name.contains("what=\"telemetry\"") => {
                self.pruned_telemetry = v as u64
            }
            "atgw_commit_latency_seconds_bucket" => {
                let le = name
                    .split("le=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(|s| {
                        if s == "+Inf" {
                            f64::INFINITY
                        } else {
                            s.parse().unwrap_or(f64::NAN)
                        }
                    })
                    .unwrap_or(f64::NAN);
                self.commit_buckets.push((le, v as u64));
            }
            _ => {}
        }
    }

    /// The p99 of the commits since `before`, as the upper bound of its bucket (ms).
    fn commit_p99_ms(&self, before: &Metrics) -> f64 {
        let counts: Vec<(f64, u64)> = self
            .commit_buckets
            .iter()
            .map(|&(le, n)| {
                let was = before
                    .commit_buckets
                    .iter()
                    .find(|(l, _)| *l == le)
                    .map_or(0, |b| b.1);
                (le, n.saturating_sub(was))
            })
            .collect();
        let total = counts.last().map_or(0, |c| c.1);
        if total == 0 {
            return f64::NAN;
        }
        let want = (total as f64 * 0.99).ceil() as u64;
        counts
            .iter()
            .find(|(_, n)| *n >= want)
            .map_or(f64::NAN, |(le, _)| le * 1000.0)
    }
}

// ---- the home -----------------------------------------------------------------------------

fn config(dir: &Path, devices: u16, upstream: u16, retention: &str) -> String {
    let data_dir = dir.join("data");
    let mut c = gateway_section(&data_dir);
    c += &format!(
        "\n[journal]\ntelemetry_retention = \"{retention}\"\nprune_every = \"{PRUNE_EVERY}s\"\n"
    );
    c += &format!(
        "\n[[adapter]]\nname = \"home\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {devices}\n\
         topics = [\"zigbee2mqtt/#\", \"dusun_pub\"]\n\
         profiles = [\"ble-hub-oximeter\", \"tuya-mir-he200-fall-radar\", \"zigbee2mqtt\"]\n\
         reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n"
    );
    c += &mqtt_sink(upstream);
    c += &format!(
        "\n[[sink]]\nname = \"carers\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {upstream}\n\
         topic_prefix = \"atgw/carers\"\naccept_acks = false\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n\
         \n[[route]]\nname = \"carers\"\nsinks = [\"carers\"]\n\
         \n[alerts]\ndefault_route = \"carers\"\nunregistered_route = \"carers\"\n\
         \n[[policy]]\nname = \"alarms\"\nmatch = {{ priority = [\"high\", \"medium\"] }}\nnotify = [\"carers\"]\nrepeat = \"5m\"\n"
    );
    let device = |id: &str, key: &str, check_in: &str, area: &str, room: u64| {
        format!(
            "\n[[device]]\nid = \"{id}\"\nadapter = \"home\"\nmatch = {{ device = \"{key}\" }}\n\
             resident = \"r-{room:03}\"\nlocation = {{ area = \"{area}\", room = \"{room}\" }}\ncheck_in = \"{check_in}\"\n"
        )
    };
    for i in 0..OXIMETERS {
        c += &device(
            &format!("oximeter-{i:02}"),
            &oximeter_addr(i),
            "30m",
            "respiratory",
            i + 1,
        );
    }
    for i in 0..PENDANTS {
        c += &device(
            &format!("pendant-{i:02}"),
            &format!("pendant-{i:02}"),
            "25h",
            "east",
            i + 1,
        );
    }
    for i in 0..RADARS {
        c += &device(
            &format!("radar-{i:02}"),
            &format!("radar-{i:02}"),
            "1h",
            "west",
            i + 1,
        );
    }
    for i in 0..DOORS {
        c += &device(
            &format!("door-{i:02}"),
            &format!("door-{i:02}"),
            "25h",
            "east",
            i % 60 + 1,
        );
    }
    c
}

fn oximeter_addr(i: u64) -> String {
    format!("ff2304{i:06x}")
}

/// What the home's devices send in simulated second `s`.
fn messages(s: u64, oximeter_period: u64, out: &mut Vec<(String, Vec<u8>)>) {
    let now_s = START_S + s as i64;
    let now_ms = now_s * 1000;
    let day = s / DAY;
    let battery = 95 - (day / 4).min(60); // never below 35 %: no low-battery alerts
    for i in 0..OXIMETERS {
        if (s + i).is_multiple_of(oximeter_period) {
            let addr = oximeter_addr(i);
            out.push((
                "dusun_pub".into(),
                format!(
                    r#"{{"from":"BLE","to":"CLOUD","time":{now_s},"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{{"device_list":[{{"scan_time":{now_s},"ble_addr":"{addr}","pulse":{},"spo2":{},"pi":{}}}]}}}}}}"#,
                    60 + (s + i) % 31,
                    95 + (s / 7 + i) % 5,
                    20 + (s + i) % 60
                )
                .into_bytes(),
            ));
        }
    }
    for i in 0..PENDANTS {
        if (s + i * 60).is_multiple_of(3600) {
            out.push((
                format!("zigbee2mqtt/pendant-{i:02}"),
                format!(
                    r#"{{"battery":{battery},"linkquality":{},"last_seen":{now_ms}}}"#,
                    80 + i % 100
                )
                .into_bytes(),
            ));
        }
    }
    // About ten presses a day, each by a different pendant.
    if s % 8640 == 4321 {
        let i = (s / 8640) % PENDANTS;
        out.push((
            format!("zigbee2mqtt/pendant-{i:02}"),
            format!(r#"{{"action":"emergency","battery":{battery},"linkquality":90,"last_seen":{now_ms}}}"#).into_bytes(),
        ));
    }
    for i in 0..RADARS {
        // One suspected fall a day (a different radar each day, at 14:00 + i minutes), over a
        // minute later.
        let fall_at = day * DAY + 14 * 3600 + (day % RADARS) * 60;
        let faller = i == day % RADARS;
        let status = if faller && s == fall_at {
            Some("maybe_fall")
        } else if (faller && s == fall_at + 60) || (s + i * 7).is_multiple_of(300) {
            Some("none")
        } else {
            None
        };
        if let Some(status) = status {
            out.push((
                format!("zigbee2mqtt/radar-{i:02}"),
                format!(r#"{{"fall_down_status":"{status}","presence":true,"linkquality":{},"last_seen":{now_ms}}}"#, 100 + i).into_bytes(),
            ));
        }
    }
    for i in 0..DOORS {
        if (s + i * 45).is_multiple_of(4200) {
            out.push((
                format!("zigbee2mqtt/door-{i:02}"),
                format!(
                    r#"{{"contact":{},"battery":{battery},"linkquality":{},"last_seen":{now_ms}}}"#,
                    (s / 4200).is_multiple_of(2),
                    60 + i
                )
                .into_bytes(),
            ));
        }
    }
}

// ---- device side ----------------------------------------------------------------------------

/// The devices' QoS 1 client (100 in flight): the broker's PUBACKs pace it, not atgw's commits.
fn device_publisher(port: u16) -> AsyncClient {
    let mut o = options(port, "soak-devices", true);
    o.set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 1000);
    tokio::spawn(async move {
        loop {
            // A lost broker shows as messages that are never committed (`wait_committed`).
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    client
}

// ---- upstream side: the stream subscriber and the carer --------------------------------------

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    id: &'a str,
    source: &'a str,
}

/// Distinct upstream event ids (UUIDs as `u128`) and every message.
#[derive(Default)]
struct Upstream {
    distinct: AtomicU64,
    total: AtomicU64,
    resolves_sent: AtomicU64,
}

fn follow_upstream(port: u16) -> Arc<Upstream> {
    let up = Arc::new(Upstream::default());
    let u = up.clone();
    let (client, mut el) = AsyncClient::new(options(port, "soak-upstream", false), 1000);
    tokio::spawn(async move {
        let mut seen: HashSet<u128> = HashSet::new();
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = client.try_subscribe("atgw/bench/events/#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    u.total.fetch_add(1, Ordering::Relaxed);
                    // The devices' events (source `urn:atgw:<gw>:home`), not the gateway's own.
                    if let Ok(e) = serde_json::from_slice::<Envelope>(&p.payload)
                        && e.source.ends_with(":home")
                        && let Ok(id) = uuid::Uuid::try_parse(e.id)
                        && seen.insert(id.as_u128())
                    {
                        u.distinct.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    // A carer: every live alert the carers' route shows (retained at atgw/carers/alerts/<id>)
    // is resolved through the upstream sink's acknowledgement topic.
    let u = up.clone();
    let (carer, mut el) = AsyncClient::new(options(port, "soak-carer", true), 1000);
    tokio::spawn(async move {
        // Resolved once per connection: the retained state a reconnect brings back is an alert
        // whose resolution may have been lost with the broker, so it is resolved again.
        let mut resolved: HashSet<String> = HashSet::new();
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    resolved.clear();
                    let _ = carer.try_subscribe("atgw/carers/alerts/+", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) if !p.payload.is_empty() => {
                    let topic = p.topic.clone();
                    let Some(id) = topic.rsplit('/').next() else {
                        continue;
                    };
                    let live = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        .ok()
                        .is_some_and(|v| v["type"] != "atgw.alert.resolved");
                    if live && resolved.insert(id.to_owned()) {
                        u.resolves_sent.fetch_add(1, Ordering::Relaxed);
                        let _ = carer.try_publish(
                            format!("atgw/bench/alerts/{id}/resolve"),
                            QoS::AtLeastOnce,
                            false,
                            r#"{"by":"carer-1","outcome":"assisted"}"#,
                        );
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    up
}

// ---- the run --------------------------------------------------------------------------------

#[derive(Clone, Debug, serde::Serialize)]
struct Sample {
    day: f64,
    real_s: f64,
    disk_mb: f64,
    in_use_mb: f64,
    rss_mb: f64,
    commit_p99_ms: f64,
    events: u64,
    pruned_telemetry: u64,
    outbox: i64,
}

fn disk_bytes(data_dir: &Path) -> u64 {
    ["atgw.db", "atgw.db-wal", "atgw.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(data_dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Until the gateway has committed every device message sent so far (the adapter acknowledges
/// a message to the broker only once its batch is committed).
async fn wait_committed(gw: &mut GatewayChild, sent: u64) -> Metrics {
    let t = Instant::now();
    loop {
        let n = gw.committed();
        if n >= sent {
            return gw.metrics();
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "device messages not committed for 2 min: {n} of {sent}"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

async fn soak(days: u64, oximeter_period: u64, retention: &str, outage_min: u64) {
    let dir = scratch("soak");
    let devices = broker(&dir.path().join("devices"));
    let mut upstream = Mosquitto::start(&dir.path().join("upstream"), "").expect("upstream broker");
    let up = follow_upstream(upstream.port);
    let config_path = dir.path().join("atgw.toml");
    std::fs::write(
        &config_path,
        config(dir.path(), devices.port, upstream.port, retention),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let mut gw = GatewayChild::start(dir.path(), &config_path);
    // The adapter's session exists before the first message.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = device_publisher(devices.port);
    println!(
        "soak: {days} days, 200 devices, oximeters every {oximeter_period} s, telemetry kept {retention}, upstream down {outage_min} min an hour"
    );

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut before = gw.metrics();
    let mut batch = Vec::new();
    let mut prune_waits = Duration::ZERO;
    let mut outages = 0u64;
    let (mut rss_peak_kb, mut messages_sent) = (0u64, 0u64);
    let end = days * DAY;
    let mut sent_by_second: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let mut committed_seen = 0u64;
    for s in 0..end {
        gw.set_clock(s);
        if s % 3600 == 0 && s > 0 {
            upstream.stop();
            outages += 1;
        }
        if s % 3600 == outage_min * 60 && s > 3600 && !upstream.is_running() {
            upstream.restart().expect("upstream broker back");
        }
        batch.clear();
        messages(s, oximeter_period, &mut batch);
        for (topic, payload) in batch.drain(..) {
            messages_sent += 1;
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish");
        }
        sent_by_second.push_back(messages_sent);
        if sent_by_second.len() > LEAD_S {
            let need = sent_by_second.pop_front().unwrap_or(0);
            while committed_seen < need {
                committed_seen = gw.committed();
                if committed_seen < need {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
        if s % PRUNE_EVERY == PRUNE_EVERY - 1 {
            // The idle time a real home has: everything committed, then the retention cycle
            // due by the next second (`prune_every` after the last one finished, or one still
            // under way) runs to its end.
            let t = Instant::now();
            let m = wait_committed(&mut gw, messages_sent).await;
            let next = s + 1;
            let due = m.prune_finished_s == 0
                || START_S + next as i64 >= m.prune_finished_s + PRUNE_EVERY as i64;
            if due {
                gw.set_clock(next);
                // The writer looks at the clock when it wakes: a pendant's check-in wakes it.
                messages_sent += 1;
                let ms = (START_S + next as i64) * 1000;
                client
                    .publish(
                        "zigbee2mqtt/pendant-00",
                        QoS::AtLeastOnce,
                        false,
                        format!(r#"{{"battery":90,"last_seen":{ms}}}"#),
                    )
                    .await
                    .expect("publish");
                wait_committed(&mut gw, messages_sent).await;
                while gw.prune_cycles() == m.prune_cycles {
                    assert!(
                        t.elapsed() < Duration::from_secs(60),
                        "no retention cycle finished within 60 s at day {:.2}",
                        next as f64 / DAY as f64
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                prune_waits += t.elapsed();
            }
        }
        if (s + 1) % SAMPLE_EVERY == 0 {
            let now = gw.metrics();
            let mem = memory(gw.pid());
            rss_peak_kb = rss_peak_kb.max(mem.hwm_kb);
            let sample = Sample {
                day: round((s + 1) as f64 / DAY as f64),
                real_s: round(started.elapsed().as_secs_f64()),
                disk_mb: round(disk_bytes(&data_dir) as f64 / 1e6),
                in_use_mb: round(now.journal_bytes as f64 / 1e6),
                rss_mb: round(mb(mem.rss_kb)),
                commit_p99_ms: round(now.commit_p99_ms(&before)),
                events: now.events_in,
                pruned_telemetry: now.pruned_telemetry,
                outbox: if (s + 1) % DAY == 0 {
                    journal_count(&data_dir, "SELECT count(*) FROM outbox")
                } else {
                    -1
                },
            };
            println!(
                "day {:>5.2} (+{:>6.0} s): disk {:>8.1} MB (in use {:>8.1}), RSS {:>5.1} MB, commit p99 ≤ {:>5.1} ms, events {}, pruned {}{}",
                sample.day,
                sample.real_s,
                sample.disk_mb,
                sample.in_use_mb,
                sample.rss_mb,
                sample.commit_p99_ms,
                sample.events,
                sample.pruned_telemetry,
                if sample.outbox >= 0 {
                    format!(", outbox {}", sample.outbox)
                } else {
                    String::new()
                }
            );
            samples.push(sample);
            before = now;
        }
    }
    if !upstream.is_running() {
        upstream.restart().expect("upstream broker back");
    }
    wait_committed(&mut gw, messages_sent).await;
    // Everything journaled reaches the upstream subscriber.
    let journaled = gw.metrics().events_in;
    let t = Instant::now();
    while up.distinct.load(Ordering::Relaxed) < journaled && t.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let upstream_distinct = up.distinct.load(Ordering::Relaxed);
    let offline = journal_count(
        &data_dir,
        "SELECT count(*) FROM alerts WHERE kind = 'device_offline'",
    );
    let open = journal_count(
        &data_dir,
        "SELECT count(*) FROM alerts WHERE status != 'resolved'",
    );
    let alerts = journal_count(&data_dir, "SELECT count(*) FROM alerts");
    let gateway_alerts = journal_count(
        &data_dir,
        "SELECT count(*) FROM alerts WHERE device_id LIKE 'gateway:%'",
    );
    let real = started.elapsed();
    let log = std::fs::read_to_string(&gw.log).unwrap_or_default();
    gw.stop();

    let after_first = samples
        .iter()
        .filter(|x| x.day > parse_days(retention) + 1.0)
        .collect::<Vec<_>>();
    let spread = |f: fn(&Sample) -> f64| {
        let v: Vec<f64> = after_first
            .iter()
            .map(|x| f(x))
            .filter(|x| x.is_finite())
            .collect();
        let (lo, hi) = (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        serde_json::json!({ "min": round(lo), "max": round(hi) })
    };
    println!(
        "soak: {messages_sent} device messages, {journaled} events journaled, {upstream_distinct} distinct upstream ({} messages), {outages} upstream outages, {alerts} alerts ({gateway_alerts} the gateway's, {} resolves sent), {offline} device_offline, {open} left open; {:.0} s real ({:.0} s of it waiting for retention cycles)",
        up.total.load(Ordering::Relaxed),
        up.resolves_sent.load(Ordering::Relaxed),
        real.as_secs_f64(),
        prune_waits.as_secs_f64()
    );
    let warn_lines = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    // What the warnings were, numbers and times folded, most frequent first.
    let mut kinds: HashMap<String, u64> = HashMap::new();
    for l in log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
    {
        let at = l.find("WARN").or_else(|| l.find("ERROR")).unwrap_or(0);
        let folded: String = l[at..]
            .split_whitespace()
            .map(|w| {
                if w.contains(|c: char| c.is_ascii_digit()) {
                    "#"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(160)
            .collect();
        *kinds.entry(folded).or_default() += 1;
    }
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (k, n) in kinds.iter().take(8) {
        println!("soak: log {n} × {k}");
    }
    let svg = svg(&samples, retention);
    if std::env::var_os("BENCH_NO_RECORD").is_none() {
        std::fs::write(repo().join("benches/results/soak.svg"), &svg).unwrap();
    }
    std::fs::write(dir.path().join("soak.svg"), &svg).unwrap();
    emit(serde_json::json!({
        "bench": "soak",
        "days": days,
        "devices": OXIMETERS + PENDANTS + RADARS + DOORS,
        "oximeter_period_s": oximeter_period,
        "telemetry_retention": retention,
        "outage_min": outage_min,
        "real_s": round(real.as_secs_f64()),
        "device_messages": messages_sent,
        "events_journaled": journaled,
        "upstream_distinct": upstream_distinct,
        "lost": journaled.saturating_sub(upstream_distinct),
        "upstream_outages": outages,
        "alerts": alerts,
        "gateway_alerts": gateway_alerts,
        "device_offline_alerts": offline,
        "alerts_left_open": open,
        "log_warnings": warn_lines,
        "rss_peak_mb": round(mb(rss_peak_kb)),
        "after_first_cycle": {
            "disk_mb": spread(|x| x.disk_mb),
            "in_use_mb": spread(|x| x.in_use_mb),
            "rss_mb": spread(|x| x.rss_mb),
            "commit_p99_ms": spread(|x| x.commit_p99_ms),
        },
        "samples": samples,
        "machine": machine(),
    }));
    if journaled > upstream_distinct || offline > 0 {
        eprintln!(
            "soak: FAILED (lost {} upstream, {offline} false offline alerts); log tail:",
            journaled.saturating_sub(upstream_distinct)
        );
        for l in log.lines().rev().take(20) {
            eprintln!("  {l}");
        }
        std::process::exit(1);
    }
    drop(devices);
}

fn parse_days(retention: &str) -> f64 {
    humantime::parse_duration(retention).map_or(7.0, |d| d.as_secs_f64() / DAY as f64)
}

// ---- the picture ----------------------------------------------------------------------------

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v`: axis ticks at quarters of it stay round.
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

/// Three panels over simulated days: disk (file and in use), RSS, commit and PUBACK p99; a
/// dashed line where the first retention cycle could first delete telemetry.
fn svg(samples: &[Sample], retention: &str) -> String {
    let (w, panel_h, left, right, top) = (760.0, 170.0, 64.0, 16.0, 28.0);
    let gap = 46.0;
    let h = top + 3.0 * panel_h + 2.0 * gap + 40.0;
    let max_day = samples.last().map_or(1.0, |s| s.day).max(1.0);
    let x = |d: f64| left + (w - left - right) * d / max_day;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    type Series<'a> = (&'a str, &'a str, fn(&Sample) -> f64);
    let panels: [(&str, Vec<Series>); 3] = [
        (
            "journal on disk, MB",
            vec![
                ("file (db + WAL)", "#1f77b4", |s| s.disk_mb),
                ("in use", "#9ecae1", |s| s.in_use_mb),
            ],
        ),
        ("gateway RSS, MB", vec![("RSS", "#2ca02c", |s| s.rss_mb)]),
        (
            "group commit p99, ms (upper bound of its histogram bucket)",
            vec![("commit p99", "#d62728", |s| s.commit_p99_ms)],
        ),
    ];
    for (k, (title, series)) in panels.iter().enumerate() {
        let y0 = top + k as f64 * (panel_h + gap);
        let ymax = nice_ceiling(
            series
                .iter()
                .flat_map(|(_, _, f)| samples.iter().map(f))
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max)
                * 1.1,
        );
        let y = |v: f64| y0 + panel_h - panel_h * v / ymax;
        out += &format!(
            "<text x=\"{left}\" y=\"{}\" font-weight=\"bold\">{title}</text>\n",
            y0 - 8.0
        );
        out += &format!(
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{}\" height=\"{panel_h}\" fill=\"none\" stroke=\"#999\"/>\n",
            w - left - right
        );
        for t in 0..=4 {
            let v = ymax * t as f64 / 4.0;
            out += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
                left - 4.0,
                y(v) + 4.0,
                if ymax >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            );
        }
        let first = parse_days(retention);
        if first < max_day {
            out += &format!(
                "<line x1=\"{0}\" x2=\"{0}\" y1=\"{y0}\" y2=\"{1}\" stroke=\"#777\" stroke-dasharray=\"4 3\"/>\n",
                x(first),
                y0 + panel_h
            );
        }
        for (j, (name, colour, f)) in series.iter().enumerate() {
            let pts: Vec<String> = samples
                .iter()
                .filter(|s| f(s).is_finite())
                .map(|s| format!("{:.1},{:.1}", x(s.day), y(f(s))))
                .collect();
            out += &format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" points=\"{}\"/>\n",
                pts.join(" ")
            );
            out += &format!(
                "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
                left + 8.0 + 210.0 * j as f64,
                y0 + 14.0
            );
        }
        for d in (0..=(max_day as u64)).step_by(5) {
            out += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{d}</text>\n",
                x(d as f64),
                y0 + panel_h + 14.0
            );
        }
    }
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">simulated day (dashed: telemetry_retention = {retention}, the first day telemetry can be pruned)</text>\n</svg>\n",
        (w + left) / 2.0,
        h - 8.0
    );
    out
}
