//! `cargo bench --bench alarm_latency`: how long an alarm takes to reach people while telemetry
//! flows. DESIGN §11: device publish → upstream receipt p50 ≤ 1.2 ms, p99 ≤ 2.5 ms at 1,000
//! events/s of background telemetry, with the broker's `set_tcp_nodelay true`.
//!
//! atgw runs with one MQTT adapter (profiles `ble-hub-oximeter`, `zigbee2mqtt`), the upstream
//! MQTT sink (a stream sink: every event) and a webhook sink behind a route that a
//! `priority = ["high"]` policy notifies. A paced publisher sends BLE oximeter readings on
//! `dusun_pub` (one `vital_sign` event each, values that raise no vital-sign alert) while a
//! second device client presses SOS buttons (`{"action":"emergency"}` on
//! `zigbee2mqtt/sos-<n>`, a new device each time, so each press opens its own alert) at
//! jittered intervals. Per press the bench notes, on the same clock:
//! - `webhook`: publish → the `atgw.alert.*` POST arriving at an HTTP receiver in this process;
//! - `upstream`: publish → the `pendant_press` event arriving on `atgw/bench/events/…`;
//! - `broker`: publish → the raw press arriving at a plain subscriber (the broker hop alone,
//!   the floor under both);
//! - `relay`: publish → the press relayed by a non-durable C relay (`mosquitto_sub | mosquitto_pub
//!   -l`, QoS 1 on both legs) arriving at a subscriber: the same two broker hops atgw makes,
//!   with nothing journaled.
//!
//! Beside them an fsync probe writes 4 KiB and `fdatasync`s it in the data directory every
//! 10 ms: what one durable commit costs on that disk. atgw's excess is then its upstream
//! percentile minus the relay's and the fsync's, all from the same run.
//!
//! `BENCH_RATE` (1000 telemetry events/s), `BENCH_ALARMS_PER_SEC` (10), `BENCH_LOAD_SECS` (30),
//! `BENCH_RUNS` (3); `BENCH_SAMPLES_CSV=<path>` also writes every press's latencies to
//! `<path>.<unix time>` per run.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

/// Presses sent (and waited for) before the measured window: the webhook client's first
/// request also opens its TCP connection, which is not what this bench is about.
const WARM_ALARMS: u64 = 3;
/// Telemetry before the first measured press, so the pipeline is in its steady state.
const WARM_SECS: u64 = 2;
const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// First arrival per press index, on the bench's monotonic clock.
#[derive(Default)]
struct Arrivals(Mutex<HashMap<u64, Instant>>);

impl Arrivals {
    fn note(&self, n: u64, at: Instant) {
        self.0.lock().unwrap().entry(n).or_insert(at);
    }
    fn get(&self, n: u64) -> Option<Instant> {
        self.0.lock().unwrap().get(&n).copied()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Paths measured, indexes into `Run::latency`.
const WEBHOOK: usize = 0;
const UPSTREAM: usize = 1;
const BROKER: usize = 2;
const RELAY: usize = 3;
const PATHS: [&str; 4] = ["webhook", "upstream", "broker hop", "relay"];

struct Run {
    /// Latencies in ms of the measured presses, per path.
    latency: [Vec<f64>; 4],
    /// The fsync probe's `write` + `fdatasync` times in ms.
    fsync: Vec<f64>,
    alarms: u64,
    missing_webhook: u64,
    missing_upstream: u64,
    /// Webhook requests that were not about a press (e.g. a vital-sign alert): should be 0.
    other_webhooks: u64,
    telemetry_acked: u64,
    telemetry_secs: f64,
    vital_signs_journaled: i64,
    outbox_left: i64,
    atgw_cpu_pct: f64,
    loadavg: String,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rate: u64 = env_or("BENCH_RATE", 1000);
    let alarm_rate: f64 = env_or("BENCH_ALARMS_PER_SEC", 10.0);
    let secs: u64 = env_or("BENCH_LOAD_SECS", 30);
    let runs = runs();
    let rt = runtime();
    println!(
        "alarm_latency: {rate} telemetry events/s, {alarm_rate} alarms/s for {secs} s, {runs} runs, binary {}",
        atgw_bin().display()
    );
    let mut rs: Vec<Run> = Vec::new();
    for r in 0..runs {
        let run = rt.block_on(one(rate, alarm_rate, Duration::from_secs(secs)));
        let p = |v: &[f64]| {
            let s = sorted(v);
            format!(
                "p50 {:.3} p99 {:.3} max {:.3}",
                pct(&s, 0.50),
                pct(&s, 0.99),
                s.last().copied().unwrap_or(f64::NAN)
            )
        };
        println!(
            "  run {}: {} alarms; webhook {} ms ({} missing); upstream {} ms ({} missing); broker hop {} ms; relay {} ms; fsync {}; \
             telemetry {:.0}/s ({} acked, {} journaled), outbox left {}, atgw CPU {:.0} %, other webhooks {}, loadavg {}",
            r + 1,
            run.alarms,
            p(&run.latency[WEBHOOK]),
            run.missing_webhook,
            p(&run.latency[UPSTREAM]),
            run.missing_upstream,
            p(&run.latency[BROKER]),
            p(&run.latency[RELAY]),
            p(&run.fsync),
            run.telemetry_acked as f64 / run.telemetry_secs,
            run.telemetry_acked,
            run.vital_signs_journaled,
            run.outbox_left,
            run.atgw_cpu_pct,
            run.other_webhooks,
            run.loadavg,
        );
        rs.push(run);
    }

    let pooled = |path: usize| -> Vec<f64> {
        sorted(
            &rs.iter()
                .flat_map(|r| r.latency[path].iter().copied())
                .collect::<Vec<_>>(),
        )
    };
    let per_run = |path: usize, q: f64| {
        summary(
            &rs.iter()
                .map(|r| pct(&sorted(&r.latency[path]), q))
                .collect::<Vec<_>>(),
        )
    };
    let path_json = |path: usize| {
        let all = pooled(path);
        serde_json::json!({
            "samples": all.len(),
            "p50_ms": round(pct(&all, 0.50)),
            "p99_ms": round(pct(&all, 0.99)),
            "max_ms": round(all.last().copied().unwrap_or(f64::NAN)),
            "per_run_p50_ms": per_run(path, 0.50).json(),
            "per_run_p99_ms": per_run(path, 0.99).json(),
        })
    };
    let fsync = sorted(
        &rs.iter()
            .flat_map(|r| r.fsync.iter().copied())
            .collect::<Vec<_>>(),
    );
    // atgw's time beyond the floor: upstream minus (relay + one fsync), per percentile.
    let excess = |q: f64| pct(&pooled(UPSTREAM), q) - pct(&pooled(RELAY), q) - pct(&fsync, q);
    let telemetry = summary(
        &rs.iter()
            .map(|r| r.telemetry_acked as f64 / r.telemetry_secs)
            .collect::<Vec<_>>(),
    );
    let cpu = summary(&rs.iter().map(|r| r.atgw_cpu_pct).collect::<Vec<_>>());
    emit(serde_json::json!({
        "bench": "alarm_latency",
        "runs": runs,
        "load_secs": secs,
        "telemetry_per_sec_target": rate,
        "telemetry_per_sec": telemetry.json(),
        "alarms_per_sec": alarm_rate,
        "webhook": path_json(WEBHOOK),
        "upstream": path_json(UPSTREAM),
        "broker_hop": path_json(BROKER),
        "relay": path_json(RELAY),
        "fsync": {
            "samples": fsync.len(),
            "p50_ms": round(pct(&fsync, 0.50)),
            "p99_ms": round(pct(&fsync, 0.99)),
        },
        "excess_over_relay_and_fsync_ms": { "p50": round(excess(0.50)), "p99": round(excess(0.99)) },
        "missing": {
            "webhook": rs.iter().map(|r| r.missing_webhook).sum::<u64>(),
            "upstream": rs.iter().map(|r| r.missing_upstream).sum::<u64>(),
        },
        "other_webhooks": rs.iter().map(|r| r.other_webhooks).sum::<u64>(),
        "atgw_cpu_pct": cpu.json(),
        "targets": { "upstream_p50_ms": 0.6, "upstream_p99_ms": 2.0, "excess_p50_ms": 0.3, "excess_p99_ms": 1.0 },
        "machine": machine(),
    }));
    println!("\nalarm_latency summary: pooled over {runs} runs (per-run min-max)");
    for (path, name) in PATHS.iter().enumerate() {
        let all = pooled(path);
        let (m50, m99) = (per_run(path, 0.50), per_run(path, 0.99));
        println!(
            "  {name:<10} n={:<5} p50 {:.3} ms [{:.3}-{:.3}]  p99 {:.3} ms [{:.3}-{:.3}]  max {:.3} ms",
            all.len(),
            pct(&all, 0.50),
            m50.min,
            m50.max,
            pct(&all, 0.99),
            m99.min,
            m99.max,
            all.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "  telemetry {:.0} events/s [{:.0}-{:.0}], atgw CPU {:.0} % [{:.0}-{:.0}]",
        telemetry.median, telemetry.min, telemetry.max, cpu.median, cpu.min, cpu.max
    );
    println!(
        "  fsync      n={:<5} p50 {:.3} ms  p99 {:.3} ms",
        fsync.len(),
        pct(&fsync, 0.50),
        pct(&fsync, 0.99)
    );
    println!(
        "  atgw excess over relay + fsync: p50 {:.3} ms, p99 {:.3} ms (targets ≤ 0.3, ≤ 1.0)",
        excess(0.50),
        excess(0.99)
    );
    println!("  targets (upstream): p50 ≤ 0.6 ms, p99 ≤ 2.0 ms");
}

async fn one(rate: u64, alarm_rate: f64, duration: Duration) -> Run {
    let dir = scratch("alarm");
    let broker = broker(dir.path());
    let port = broker.port;
    let data = dir.path().join("state");

    let webhooks = Arc::new(Arrivals::default());
    let other_webhooks = Arc::new(AtomicU64::new(0));
    let hook_url = receiver(webhooks.clone(), other_webhooks.clone()).await;
    let cfg = config(dir.path(), &data, port, &hook_url);
    let g = Gateway::start(dir.path(), &cfg);
    g.wait_log("subscribed to", Duration::from_secs(20));

    let upstream = Arc::new(Arrivals::default());
    let u = upstream.clone();
    let _up = subscriber(
        port,
        "bench-upstream",
        "atgw/bench/events/pendant_press",
        move |payload, _, at| {
            if let Some(n) = press_index_in_event(payload) {
                u.note(n, at);
            }
        },
    )
    .await;
    let hop = Arc::new(Arrivals::default());
    let h = hop.clone();
    let _hop = subscriber(port, "bench-hop", "zigbee2mqtt/+", move |_, topic, at| {
        if let Some(n) = topic
            .strip_prefix("zigbee2mqtt/sos-")
            .and_then(|s| s.parse().ok())
        {
            h.note(n, at);
        }
    })
    .await;
    let relayed = Arc::new(Arrivals::default());
    let rl = relayed.clone();
    let relay_up = Arc::new(AtomicBool::new(false));
    let ru = relay_up.clone();
    let _relayed = subscriber(
        port,
        "bench-relayed",
        "bench/relay",
        move |payload, _, at| {
            if payload.trim_ascii() == RELAY_PROBE.as_bytes() {
                ru.store(true, Ordering::SeqCst);
            }
            if let Some(n) = std::str::from_utf8(payload)
                .ok()
                .and_then(|t| t.trim().strip_prefix("zigbee2mqtt/sos-"))
                .and_then(|s| s.parse().ok())
            {
                rl.note(n, at);
            }
        },
    )
    .await;
    // `mosquitto_sub` prints each press's topic, `mosquitto_pub -l` publishes each line.
    let _relay = Relay::start(
        port,
        "-i bench-relay-in -q 1 -t 'zigbee2mqtt/+' -F '%t'",
        "-i bench-relay-out -q 1 -t bench/relay -l",
    );
    let (sos, _sos_task, _) = publisher(port, "bench-sos").await;
    // The relay's two clients connect on their own: wait until a probe has made both legs.
    let t = Instant::now();
    while !relay_up.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the relay never came up"
        );
        sos.publish(RELAY_PROBE, QoS::AtLeastOnce, false, "{}")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let press = |n: u64| {
        let sos = sos.clone();
        let sent = sent.clone();
        async move {
            let payload = format!(r#"{{"action":"emergency","seq":{n}}}"#).into_bytes();
            let t = Instant::now();
            sos.publish(
                format!("zigbee2mqtt/sos-{n}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
            sent.lock().unwrap().insert(n, t);
        }
    };

    // Warm-up presses, one at a time, each waited for on both paths.
    for n in 0..WARM_ALARMS {
        press(n).await;
        let t = Instant::now();
        while webhooks.get(n).is_none() || upstream.get(n).is_none() || relayed.get(n).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "warm-up press {n} not delivered (webhook {:?}, upstream {:?}); atgw log:\n{}",
                webhooks.get(n),
                upstream.get(n),
                g.log_text()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    // Background telemetry for the whole window plus its warm-up.
    let (telemetry, _tele_task, telemetry_acked) = publisher(port, "bench-telemetry").await;
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = tokio::spawn(pace(telemetry, rate, stop.clone()));
    tokio::time::sleep(Duration::from_secs(WARM_SECS)).await;

    let cpu_before = cpu_ticks(g.pid());
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = fsync_probe(&data, probe_stop.clone());
    let window = Instant::now();
    let mean = Duration::from_secs_f64(1.0 / alarm_rate);
    let mut n = WARM_ALARMS;
    // Jittered gaps, so presses do not lock onto the telemetry pacer's ticks or the writer's
    // commit rhythm.
    let mut next = window + mean.mul_f64(rand::rng().random_range(0.5..1.5));
    while next < window + duration {
        tokio::time::sleep_until(next.into()).await;
        press(n).await;
        n += 1;
        next += mean.mul_f64(rand::rng().random_range(0.5..1.5));
    }
    let window_secs = window.elapsed().as_secs_f64();
    probe_stop.store(true, Ordering::SeqCst);
    let fsync = probe.join().expect("fsync probe");
    let cpu_after = cpu_ticks(g.pid());
    // Rows not yet delivered at the end of the window: near zero when the sinks keep up.
    let outbox_left = journal_count(&data, "SELECT count(*) FROM outbox");
    stop.store(true, Ordering::SeqCst);
    let telemetry_sent = pacer.await.unwrap();

    // Late arrivals, then what the window produced.
    let t = Instant::now();
    while (webhooks.len() < n as usize || upstream.len() < n as usize)
        && t.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    while telemetry_acked.load(Ordering::SeqCst) < telemetry_sent
        && t.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let vital_signs = "SELECT count(*) FROM events WHERE kind = 'vital_sign'";
    let t = Instant::now();
    while journal_count(&data, vital_signs) < telemetry_sent as i64
        && t.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sent.lock().unwrap().clone();
    let mut run = Run {
        latency: Default::default(),
        fsync,
        alarms: n - WARM_ALARMS,
        missing_webhook: 0,
        missing_upstream: 0,
        other_webhooks: other_webhooks.load(Ordering::SeqCst),
        telemetry_acked: telemetry_acked.load(Ordering::SeqCst),
        telemetry_secs: 0.0,
        vital_signs_journaled: 0,
        outbox_left,
        atgw_cpu_pct: (cpu_after - cpu_before) as f64 / clock_ticks() / window_secs * 100.0,
        loadavg,
    };
    let mut csv = String::from("offset_s,webhook_ms,upstream_ms,broker_ms\n");
    for i in WARM_ALARMS..n {
        let at = sent[&i];
        let ms = |t: Instant| (t - at).as_secs_f64() * 1000.0;
        let cell = |a: &Arrivals| {
            a.get(i)
                .map(|t| format!("{:.3}", ms(t)))
                .unwrap_or_default()
        };
        csv += &format!(
            "{:.3},{},{},{}\n",
            (at - window).as_secs_f64(),
            cell(&webhooks),
            cell(&upstream),
            cell(&hop)
        );
        match webhooks.get(i) {
            Some(t) => run.latency[WEBHOOK].push(ms(t)),
            None => run.missing_webhook += 1,
        }
        match upstream.get(i) {
            Some(t) => run.latency[UPSTREAM].push(ms(t)),
            None => run.missing_upstream += 1,
        }
        if let Some(t) = hop.get(i) {
            run.latency[BROKER].push(ms(t));
        }
        if let Some(t) = relayed.get(i) {
            run.latency[RELAY].push(ms(t));
        }
    }
    if let Ok(path) = std::env::var("BENCH_SAMPLES_CSV") {
        // One file per run: `<path>.<unix time>`, for looking at when the slow ones happen.
        let stamp = jiff::Timestamp::now().as_second();
        std::fs::write(format!("{path}.{stamp}"), csv).unwrap();
    }
    g.stop();
    run.vital_signs_journaled = journal_count(&data, vital_signs);
    run.telemetry_secs = WARM_SECS as f64 + window_secs;
    assert_eq!(
        run.vital_signs_journaled, telemetry_sent as i64,
        "every telemetry message is one journaled vital_sign event"
    );
    drop(broker);
    run
}

/// Published until it comes back through the relay (its topic is what `mosquitto_sub` prints).
const RELAY_PROBE: &str = "zigbee2mqtt/relay-probe";

/// Writes 4 KiB at the start of a file in the data directory and `fdatasync`s it every 10 ms
/// until `stop`: one durable commit's disk cost, on the journal's disk, during the same load.
fn fsync_probe(data: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f64>> {
    use std::io::{Seek, SeekFrom, Write};
    let path = data.join("fsync-probe");
    std::thread::spawn(move || {
        let mut f = std::fs::File::create(&path).expect("fsync probe file");
        let block = vec![0x5au8; 4096];
        let mut times = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(&block).unwrap();
            f.sync_data().unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&path);
        times
    })
}

/// atgw: the adapter hears both devices; `upstream` streams every event; `carers` is a webhook
/// that only the high-priority policy reaches.
fn config(dir: &Path, data: &Path, port: u16, hook_url: &str) -> String {
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, WEBHOOK_SECRET).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    format!(
        "{gateway}\n[[adapter]]\nname = \"zigbee\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         topics = [\"zigbee2mqtt/#\", \"dusun_pub\"]\nprofiles = [\"ble-hub-oximeter\", \"zigbee2mqtt\"]\n\
         reconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n\
         {upstream}\n[[sink]]\nname = \"carers\"\ntype = \"webhook\"\nurl = \"{hook_url}\"\nallow_http = true\n\
         secret_file = \"{secret}\"\ntimeout = \"2s\"\n\n\
         [[route]]\nname = \"carers\"\nsinks = [\"carers\"]\n\n\
         [[policy]]\nname = \"alarms\"\nmatch = {{ priority = [\"high\"] }}\nnotify = [\"carers\"]\n",
        gateway = gateway_section(data),
        upstream = mqtt_sink(port),
        secret = secret.display(),
    )
}

/// The care team's endpoint: notes when each alert about press `n` arrives, answers 200.
async fn receiver(arrivals: Arc<Arrivals>, others: Arc<AtomicU64>) -> String {
    use axum::body::Bytes;
    use axum::serve::ListenerExt;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let at = Instant::now();
            let (arrivals, others) = (arrivals.clone(), others.clone());
            async move {
                match press_index_in_event(&body) {
                    Some(n) => arrivals.note(n, at),
                    None => {
                        others.fetch_add(1, Ordering::Relaxed);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Nagle off here too: atgw's next request on this connection waits for the answer.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

/// The press index from a CloudEvent about device `zigbee:sos-<n>` (the device event itself or
/// an alert lifecycle event, whose data is the raising event's).
fn press_index_in_event(payload: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v["data"]["device"]["id"]
        .as_str()?
        .strip_prefix("zigbee:sos-")?
        .parse()
        .ok()
}

fn options(port: u16, client_id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(100);
    o
}

/// A QoS 1 device client with its own connection; returns it once connected, with its poll task
/// and a count of the broker's PUBACKs.
async fn publisher(
    port: u16,
    client_id: &str,
) -> (AsyncClient, tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let mut o = options(port, client_id);
    o.set_clean_session(true);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let a = acked.clone();
    let (ready, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready);
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("publisher connected")
        .unwrap();
    (client, task, acked)
}

/// Guard that stops a subscriber's poll task.
struct Subscription(tokio::task::JoinHandle<()>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A QoS 1 subscriber calling `on(payload, topic, arrival)` for every message; returns once the
/// broker confirmed the subscription.
async fn subscriber(
    port: u16,
    client_id: &str,
    filter: &str,
    on: impl Fn(&[u8], &str, Instant) + Send + 'static,
) -> Subscription {
    let mut o = options(port, client_id);
    o.set_clean_session(true);
    o.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let (ready, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready);
    let filter = filter.to_owned();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let at = Instant::now();
                    on(&p.payload, &p.topic, at);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("subscribed")
        .unwrap();
    Subscription(task)
}

/// Publishes oximeter readings at `rate` per second until `stop`, spread over 1 ms ticks (not
/// in bursts) and catching up if a tick was late. Returns how many it published.
async fn pace(client: AsyncClient, rate: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let payload = oximeter(sent, jiff::Timestamp::now().as_second());
            client
                .publish("dusun_pub", QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            sent += 1;
        }
    }
    sent
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may itself contain spaces: state is field 3, utime 14.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
