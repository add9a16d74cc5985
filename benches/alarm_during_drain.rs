//! `cargo bench --bench alarm_during_drain`: a DC-09 pendant press arriving while a 100,000-
//! message MQTT telemetry backlog drains must be ACKed at once and reach the upstream sink ahead
//! of the backlog (priority lanes). A persistent session holds 100k BLE-hub oximeter readings
//! (`vital_sign`, info priority) when atgw starts; while it drains them to the upstream MQTT
//! sink, a DC-09 transmitter sends 100 presses (Contact ID 1101, a zone of their own each, one
//! every 50 ms, each on its own TCP connection as a panel dials in). Reports the press ACK
//! p50/p99 and press → upstream p50/p99 (send → the upstream subscriber has it), and how much
//! of the backlog was still undrained when the last press was answered (it must be > 0 for the
//! presses to have been "during the drain").
//!
//! The floor, in the same run: the same 100 presses to the same gateway after the drain, with
//! no backlog (what a press costs on an idle gateway).
//!
//! `BENCH_DRAIN_BACKLOG` (100000), `BENCH_PRESSES` (100), `BENCH_RUNS` (3), `BENCH_MQTT_BATCH`
//! (the adapter's `batch`; default its own).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw::tools::mosquitto::free_port;
use atgw_sia_dc09::simulator::{SimPayload, SimulatorConfig};
use common::*;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

const ACCOUNT: &str = "1234";
const UPSTREAM_PRESSES: &str = "atgw/bench/events/pendant_press";

/// When the upstream subscriber had each zone's press.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn follow_presses(
    rt: &tokio::runtime::Runtime,
    port: u16,
) -> (Arrivals, tokio::task::JoinHandle<()>) {
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    let mut o = MqttOptions::new("bench-press-follower", "127.0.0.1", port);
    o.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut el) = AsyncClient::new(o, 100);
    let task = rt.spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = client.try_subscribe(UPSTREAM_PRESSES, QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let at = Instant::now();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        && let Some(zone) = v["data"]["device"]["component"].as_str()
                    {
                        a.lock().unwrap().entry(zone.to_owned()).or_insert(at);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    (arrivals, task)
}

struct Presses {
    ack_ms: Vec<f64>,
    upstream_ms: Vec<f64>,
    /// (zone, sent at).
    sent: Vec<(String, Instant)>,
}

/// `n` presses, zones `first..first+n`, one every `every`.
async fn press(target: SocketAddr, first: u32, n: u32, every: Duration) -> Presses {
    let mut out = Presses {
        ack_ms: Vec::new(),
        upstream_ms: Vec::new(),
        sent: Vec::new(),
    };
    let mut tick = tokio::time::interval(every);
    for i in 0..n {
        tick.tick().await;
        let zone = format!("{:03}", first + i);
        let mut cfg = SimulatorConfig::new(target, ACCOUNT);
        cfg.payload = SimPayload::ContactId(format!("1101 01 {zone}"));
        cfg.count = 1;
        cfg.timeout = Duration::from_secs(10);
        let at = Instant::now();
        let r = atgw_sia_dc09::simulate(cfg)
            .await
            .expect("the transmitter runs");
        assert_eq!(r.acked, 1, "press {zone} ACKed: {r:?}");
        if let Some(l) = r.latency_p50 {
            out.ack_ms.push(l.as_secs_f64() * 1e3);
        }
        out.sent.push((zone, at));
    }
    out
}

struct Run {
    during: Presses,
    idle: Presses,
    undrained_at_last_press: i64,
    drain_s: f64,
}

fn one(rt: &tokio::runtime::Runtime, backlog: u64, presses: u32) -> Run {
    let dir = scratch("alarm_during_drain");
    let broker = broker(dir.path());
    let mport = broker.port;
    let dport = free_port().unwrap();
    rt.block_on(create_session(mport, ADAPTER_CLIENT_ID, "dusun_pub"));
    let (arrivals, follower) = follow_presses(rt, mport);
    let now_s = jiff::Timestamp::now().as_second();
    rt.block_on(publish_backlog(mport, backlog, move |i| {
        ("dusun_pub".to_owned(), oximeter(i, now_s))
    }));
    let data = dir.path().join("state");
    let cfg = gateway_section(&data)
        + &format!(
            "\n[[adapter]]\nname = \"zigbee\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {mport}\n\
             topics = [\"dusun_pub\"]\nprofiles = [\"ble-hub-oximeter\"]\n{batch}\
             \n[[adapter]]\nname = \"alarms\"\ntype = \"sia-dc09\"\nlisten_tcp = \"127.0.0.1:{dport}\"\n\
             accounts = [{{ account = \"{ACCOUNT}\" }}]\n",
            batch = mqtt_batch()
        )
        + &mqtt_sink(mport);
    let g = Gateway::start(dir.path(), &cfg);
    let started = Instant::now();
    let target: SocketAddr = ([127, 0, 0, 1], dport).into();
    let journal = || {
        rusqlite::Connection::open_with_flags(
            data.join("atgw.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            c.busy_timeout(Duration::from_secs(5))?;
            c.query_row(
                "SELECT count(*) FROM events WHERE kind = 'vital_sign'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(-1)
    };
    let mut during = rt.block_on(press(target, 1, presses, Duration::from_millis(50)));
    let undrained = backlog as i64 - journal();
    // The drain's end: every reading journaled and every outbox row released.
    let deadline = Instant::now() + Duration::from_secs(600);
    while journal() < backlog as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drain_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let mut idle = rt.block_on(press(target, 500, presses, Duration::from_millis(50)));
    std::thread::sleep(Duration::from_secs(2));
    let got = arrivals.lock().unwrap().clone();
    for p in [&mut during, &mut idle] {
        for (zone, at) in &p.sent {
            let arrived = got
                .get(zone)
                .unwrap_or_else(|| panic!("press {zone} never reached upstream"));
            p.upstream_ms
                .push(arrived.duration_since(*at).as_secs_f64() * 1e3);
        }
    }
    follower.abort();
    g.stop();
    drop(broker);
    Run {
        during,
        idle,
        undrained_at_last_press: undrained,
        drain_s,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let backlog: u64 = env_or("BENCH_DRAIN_BACKLOG", 100_000);
    let presses: u32 = env_or("BENCH_PRESSES", 100);
    let runs = runs();
    let rt = runtime();
    println!(
        "alarm_during_drain: {presses} DC-09 presses during a {backlog}-message drain, {runs} runs, binary {}",
        atgw_bin().display()
    );
    let mut rs = Vec::new();
    for r in 0..runs {
        let run = one(&rt, backlog, presses);
        println!(
            "  run {r}: during the drain ACK p50 {:.2} p99 {:.2} ms, upstream p50 {:.2} p99 {:.2} ms ({} readings undrained at the last press, drain {:.1} s); idle ACK p99 {:.2}, upstream p99 {:.2} ms",
            percentile(&run.during.ack_ms, 0.5),
            percentile(&run.during.ack_ms, 0.99),
            percentile(&run.during.upstream_ms, 0.5),
            percentile(&run.during.upstream_ms, 0.99),
            run.undrained_at_last_press,
            run.drain_s,
            percentile(&run.idle.ack_ms, 0.99),
            percentile(&run.idle.upstream_ms, 0.99),
        );
        assert!(
            run.undrained_at_last_press > 0,
            "the presses must fall inside the drain: raise BENCH_DRAIN_BACKLOG"
        );
        rs.push(run);
    }
    let s = |f: &dyn Fn(&Run) -> f64| summary(&rs.iter().map(f).collect::<Vec<_>>()).json();
    emit(serde_json::json!({
        "bench": "alarm_during_drain",
        "backlog": backlog,
        "presses": presses,
        "runs": runs,
        "machine": machine(),
        "during": {
            "ack_p50_ms": s(&|r| percentile(&r.during.ack_ms, 0.5)),
            "ack_p99_ms": s(&|r| percentile(&r.during.ack_ms, 0.99)),
            "upstream_p50_ms": s(&|r| percentile(&r.during.upstream_ms, 0.5)),
            "upstream_p99_ms": s(&|r| percentile(&r.during.upstream_ms, 0.99)),
        },
        "idle": {
            "ack_p50_ms": s(&|r| percentile(&r.idle.ack_ms, 0.5)),
            "ack_p99_ms": s(&|r| percentile(&r.idle.ack_ms, 0.99)),
            "upstream_p50_ms": s(&|r| percentile(&r.idle.upstream_ms, 0.5)),
            "upstream_p99_ms": s(&|r| percentile(&r.idle.upstream_ms, 0.99)),
        },
        "undrained_at_last_press": s(&|r| r.undrained_at_last_press as f64),
        "drain_s": s(&|r| r.drain_s),
    }));
}
