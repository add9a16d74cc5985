//! `atgw demo`: a self-contained tour. It starts the real daemon in-process with a temporary
//! data directory, a private Mosquitto on a free loopback port, simulated zigbee2mqtt and BLE
//! devices publishing real payloads, and a console standing in for the care team's screens that
//! prints each event as it arrives upstream. It ends with a summary read from the journal.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_sdk::Event;
use rumqttc::{AsyncClient, Event as MqttEvent, Incoming, MqttOptions, QoS};

use crate::mosquitto::Mosquitto;

/// Profiles shipped in `config/profiles/`, embedded so the demo needs only the binary.
pub const SHIPPED_PROFILES: &[(&str, &str)] = &[
    (
        "zigbee2mqtt",
        include_str!("../config/profiles/zigbee2mqtt.toml"),
    ),
    (
        "tuya-mir-he200-fall-radar",
        include_str!("../config/profiles/tuya-mir-he200-fall-radar.toml"),
    ),
    (
        "heiman-hs2fd-fall",
        include_str!("../config/profiles/heiman-hs2fd-fall.toml"),
    ),
    (
        "ble-hub-oximeter",
        include_str!("../config/profiles/ble-hub-oximeter.toml"),
    ),
];

/// One scripted device message: seconds into the cycle, topic, payload.
struct Step(f64, &'static str, &'static str);

/// A care-home morning, repeated: a pendant press, a suspected then confirmed fall, a leak, SpO2
/// readings (one low, one "finger out" sentinel), a device dropping off the network, and one
/// garbage payload that is dead-lettered.
const SCRIPT: &[Step] = &[
    Step(
        0.5,
        "zigbee2mqtt/0xa4c13899607febd1",
        r#"{"action":null,"battery":100,"linkquality":14}"#,
    ),
    Step(
        1.0,
        "zigbee2mqtt/0xa4c13899607febd1",
        r#"{"action":"emergency","battery":100,"linkquality":18}"#,
    ),
    Step(
        1.2,
        "zigbee2mqtt/0xa4c13899607febd1",
        r#"{"action":"","battery":100,"linkquality":18}"#,
    ),
    Step(
        2.0,
        "dusun_pub",
        r#"{"from":"BLE","to":"CLOUD","time":TIME,"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{"device_list":[{"scan_time":TIME,"ble_addr":"ff23041920b4","pulse":72,"spo2":96,"pi":43}]}}}"#,
    ),
    Step(
        3.0,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"none","linkquality":120}"#,
    ),
    Step(
        4.0,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"maybe_fall","linkquality":120}"#,
    ),
    Step(
        5.5,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"fall","linkquality":120}"#,
    ),
    Step(
        6.0,
        "zigbee2mqtt/0x005043c95f277c80",
        r#"{"water_leak":true,"linkquality":94,"tamper":false,"battery_low":false}"#,
    ),
    Step(
        7.0,
        "dusun_pub",
        r#"{"from":"BLE","to":"CLOUD","time":TIME,"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{"device_list":[{"scan_time":TIME,"ble_addr":"ff23041920b4","pulse":104,"spo2":88,"pi":12}]}}}"#,
    ),
    Step(
        8.0,
        "zigbee2mqtt/0xa4c13899607febd1/availability",
        r#"{"state":"offline"}"#,
    ),
    Step(
        9.0,
        "zigbee2mqtt/0x005043c95f277c80",
        r#"{"water_leak":false,"linkquality":97,"tamper":false,"battery_low":false}"#,
    ),
    Step(
        9.5,
        "zigbee2mqtt/0xa4c13899607febd1/availability",
        r#"{"state":"online"}"#,
    ),
    Step(
        10.0,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"none","linkquality":120}"#,
    ),
    Step(
        10.5,
        "dusun_pub",
        r#"{"from":"BLE","to":"CLOUD","time":TIME,"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{"device_list":[{"scan_time":TIME,"ble_addr":"ff23041920b4","pulse":127,"spo2":127,"pi":0}]}}}"#,
    ),
    Step(11.0, "zigbee2mqtt/0xa4c13899607febd1", "this is not json {"),
];
const CYCLE: f64 = 12.0;

/// Legacy telecare on the same timeline: an alarm panel (account 1234, plain) reporting a
/// pendant and a fall detector in Contact ID, and a second home unit (account 5678) that
/// encrypts with AES-128.
const DC09_SCRIPT: &[(f64, &str, &str)] = &[
    (1.5, "1234", "1101 01 003"),
    (3.5, "5678", "1103 01 002"),
    (6.5, "1234", "1103 01 005"),
    (8.5, "1234", "3103 01 005"),
    (9.8, "5678", "1602 00 000"),
    (11.5, "1234", "NULL"),
];

const DEMO_DEVICES: &str = r#"
[[device]]
id = "pendant-room12"
adapter = "zigbee"
match = { device = "0xa4c13899607febd1" }
resident = "res-0042"
location = { area = "east", room = "12" }

[[device]]
id = "fall-radar-room14"
adapter = "zigbee"
match = { device = "0xdc8e95fffe4dc3dd" }
resident = "res-0057"
location = { area = "east", room = "14" }

[[device]]
id = "leak-kitchen"
adapter = "zigbee"
match = { device = "0x005043c95f277c80" }
location = { area = "ground", room = "kitchen" }

[[device]]
id = "oximeter-room14"
adapter = "zigbee"
match = { device = "ff23041920b4" }
resident = "res-0057"
location = { area = "east", room = "14" }

[[device]]
id = "pendant-flat3"
adapter = "alarms"
match = { account = "1234", zone = "003" }
resident = "res-0071"
location = { area = "west", room = "3" }

[[device]]
id = "falls-detector-flat3"
adapter = "alarms"
match = { account = "1234", zone = "005" }
resident = "res-0071"
location = { area = "west", room = "3" }

[[device]]
id = "home-unit-flat9"
adapter = "alarms"
match = { account = "5678" }
resident = "res-0090"
location = { area = "west", room = "9" }
"#;

struct Seen {
    at: Duration,
    event: Event,
    latency_ms: f64,
}

/// Runs the demo for `duration` (or until Ctrl-C).
pub async fn run(duration: Duration) -> ExitCode {
    match tour(duration).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atgw demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn tour(duration: Duration) -> Result<(), String> {
    let colour = std::io::stdout().is_terminal();
    let dir = tempfile::Builder::new()
        .prefix("atgw-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = dir.path();
    println!(
        "atgw demo: a care home's devices, one gateway, one schema (data in {})",
        root.display()
    );

    // The MQTT half needs a broker; without one the demo still shows the legacy (DC-09) half.
    let mut broker = match crate::mosquitto::find() {
        Some(_) => {
            let b = Mosquitto::start(&root.join("broker"), "")
                .map_err(|e| format!("cannot start a private mosquitto: {e}"))?;
            println!(
                "atgw demo: private mosquitto on 127.0.0.1:{} (zigbee2mqtt devices, BLE hub, upstream)",
                b.port
            );
            Some(b)
        }
        None => {
            println!(
                "atgw demo: `mosquitto` is not installed: showing only the DC-09 alarm panels, read from the audit file."
            );
            println!(
                "           Install it (Debian/Ubuntu: sudo apt-get install mosquitto) to see the MQTT devices and the upstream broker."
            );
            None
        }
    };
    let profiles = root.join("profiles");
    std::fs::create_dir_all(&profiles)
        .and_then(|_| {
            SHIPPED_PROFILES
                .iter()
                .try_for_each(|(n, t)| std::fs::write(profiles.join(format!("{n}.toml")), t))
        })
        .map_err(|e| format!("cannot write profiles: {e}"))?;
    let key_hex: String = (0..16)
        .map(|_| format!("{:02X}", rand::random::<u8>()))
        .collect();
    let key_file = root.join("dc09-5678.key");
    write_private(&key_file, &key_hex).map_err(|e| format!("cannot write the demo key: {e}"))?;
    let dc09_port = crate::mosquitto::free_port().map_err(|e| e.to_string())?;

    let mut config_text = format!(
        r#"
[gateway]
id = "gw-demo"
site = "oakview"
data_dir = "state"
profiles_dir = "profiles"
timezone = "Europe/London"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:{dc09_port}"
accounts = [{{ account = "1234" }}, {{ account = "5678", key_file = "dc09-5678.key", key_format = "hex" }}]

[[sink]]
name = "audit"
type = "file"
path = "events.jsonl"
"#
    );
    if let Some(b) = &broker {
        config_text.push_str(&format!(
            r#"
[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topics = ["zigbee2mqtt/#", "dusun_pub"]
profiles = ["tuya-mir-he200-fall-radar", "heiman-hs2fd-fall", "ble-hub-oximeter", "zigbee2mqtt"]

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topic_prefix = "atgw/oakview"
"#,
            port = b.port
        ));
        config_text.push_str(DEMO_DEVICES);
    } else {
        // Only the DC-09 registry entries: the zigbee adapter does not exist without a broker.
        if let Some(at) = DEMO_DEVICES.find("[[device]]\nid = \"pendant-flat3\"") {
            config_text.push_str(&DEMO_DEVICES[at..]);
        }
    }
    let config_path = root.join("atgw.toml");
    std::fs::write(&config_path, config_text).map_err(|e| format!("cannot write config: {e}"))?;
    let cfg = crate::config::load(&config_path)
        .map_err(|e| format!("generated config is invalid: {e}"))?;
    let running = crate::runtime::start(cfg)
        .await
        .map_err(|e| format!("cannot start the gateway: {e}"))?;
    println!(
        "atgw demo: DC-09 receiver on 127.0.0.1:{dc09_port} (alarm panels, one of them AES-encrypted)"
    );

    let started = Instant::now();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    match &broker {
        Some(b) => {
            tasks.push(tokio::spawn(care_team_console(
                b.port,
                started,
                seen.clone(),
                colour,
            )));
            tasks.push(tokio::spawn(simulated_devices(b.port, started)));
        }
        None => tasks.push(tokio::spawn(audit_console(
            root.join("events.jsonl"),
            started,
            seen.clone(),
            colour,
        ))),
    }
    let key = atgw_sia_dc09::crypto::AesKey::parse(&key_hex, atgw_sia_dc09::crypto::KeyFormat::Hex)
        .map_err(|e| e.to_string())?;
    tasks.push(tokio::spawn(alarm_panels(dc09_port, key, started)));
    println!(
        "atgw demo: running for {}s (Ctrl-C to stop early)\n",
        duration.as_secs()
    );
    println!(
        "  {:>7}  {:<6}  {:<15} {:<8} {:<10} {:<16} message",
        "t", "prio", "kind", "phase", "confidence", "where"
    );
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = tokio::signal::ctrl_c() => println!("\natgw demo: interrupted"),
    }
    // Let the last events arrive before stopping the gateway and the consoles.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for t in &tasks {
        t.abort();
    }
    let journal = running.journal_path.clone();
    running.stop().await;
    if let Some(b) = broker.as_mut() {
        b.stop();
    }
    summary(&seen, &journal, broker.is_some());
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
}

/// DC-09 transmitters: each scripted Contact ID event is one frame that must be ACKed.
async fn alarm_panels(port: u16, key: atgw_sia_dc09::crypto::AesKey, started: Instant) {
    use atgw_sia_dc09::simulator::SimPayload;
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut cycle = 0u32;
    loop {
        for (at, account, cid) in DC09_SCRIPT {
            let due = Duration::from_secs_f64(cycle as f64 * CYCLE + at);
            tokio::time::sleep_until(tokio::time::Instant::from_std(started + due)).await;
            let mut cfg = atgw_sia_dc09::SimulatorConfig::new(target, *account);
            cfg.payload = if *cid == "NULL" {
                SimPayload::Null
            } else {
                SimPayload::ContactId((*cid).into())
            };
            if *account == "5678" {
                cfg.key = Some(key.clone());
            }
            match atgw_sia_dc09::simulate(cfg).await {
                Ok(r) if r.acked == 1 => {}
                Ok(r) => println!("  alarm panel {account}: frame not acknowledged ({r:?})"),
                Err(e) => println!("  alarm panel {account}: {e}"),
            }
        }
        cycle += 1;
    }
}

/// Without a broker, the console reads the audit file sink instead of the upstream broker.
async fn audit_console(
    path: std::path::PathBuf,
    started: Instant,
    seen: Arc<Mutex<Vec<Seen>>>,
    colour: bool,
) {
    let mut offset = 0usize;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text.len() <= offset {
            continue;
        }
        for line in text[offset..].lines() {
            if let Ok(event) = serde_json::from_str::<Event>(line) {
                print_line(started.elapsed(), &event, colour);
                let latency_ms = jiff::Timestamp::now()
                    .duration_since(event.recordedtime)
                    .as_secs_f64()
                    * 1000.0;
                if let Ok(mut s) = seen.lock() {
                    s.push(Seen {
                        at: started.elapsed(),
                        event,
                        latency_ms,
                    });
                }
            }
        }
        offset = text.len();
    }
}

async fn simulated_devices(port: u16, started: Instant) {
    let mut o = MqttOptions::new("demo-devices", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let mut cycle = 0u32;
    loop {
        for Step(at, topic, payload) in SCRIPT {
            let due = Duration::from_secs_f64(cycle as f64 * CYCLE + at);
            tokio::time::sleep_until(tokio::time::Instant::from_std(started + due)).await;
            let now = jiff::Timestamp::now().as_second().to_string();
            let body = payload.replace("TIME", &now);
            let _ = client.publish(*topic, QoS::AtLeastOnce, false, body).await;
        }
        cycle += 1;
    }
}

async fn care_team_console(port: u16, started: Instant, seen: Arc<Mutex<Vec<Seen>>>, colour: bool) {
    let mut o = MqttOptions::new("demo-care-team", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let _ = client
        .subscribe("atgw/oakview/events/#", QoS::AtLeastOnce)
        .await;
    loop {
        match eventloop.poll().await {
            Ok(MqttEvent::Incoming(Incoming::Publish(p))) => {
                let Ok(event) = serde_json::from_slice::<Event>(&p.payload) else {
                    continue;
                };
                let latency_ms = jiff::Timestamp::now()
                    .duration_since(event.recordedtime)
                    .as_secs_f64()
                    * 1000.0;
                print_line(started.elapsed(), &event, colour);
                if let Ok(mut s) = seen.lock() {
                    s.push(Seen {
                        at: started.elapsed(),
                        event,
                        latency_ms,
                    });
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn print_line(at: Duration, e: &Event, colour: bool) {
    let d = &e.data;
    let prio = d.priority.as_str();
    let (on, off) = match (colour, d.priority) {
        (false, _) => ("", ""),
        (true, atgw_sdk::Priority::High) => ("\x1b[1;31m", "\x1b[0m"),
        (true, atgw_sdk::Priority::Medium) => ("\x1b[33m", "\x1b[0m"),
        (true, atgw_sdk::Priority::Low) => ("\x1b[36m", "\x1b[0m"),
        (true, atgw_sdk::Priority::Info) => ("\x1b[2m", "\x1b[0m"),
    };
    let place = match (&d.location.area, &d.location.room) {
        (Some(a), Some(r)) => format!("{a}/{r}"),
        _ => d.device.id.clone(),
    };
    let conf = d.confidence.map(|c| c.as_str()).unwrap_or("");
    println!(
        "{on}  {:>6.2}s  {:<6}  {:<15} {:<8} {:<10} {:<16} {}{off}",
        at.as_secs_f64(),
        prio,
        d.kind.as_str(),
        d.phase.as_str(),
        conf,
        place,
        d.message.as_deref().unwrap_or("")
    );
}

fn summary(seen: &Mutex<Vec<Seen>>, journal: &std::path::Path, upstream: bool) {
    let seen = match seen.lock() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in seen.iter() {
        *by_kind
            .entry((
                s.event.data.kind.to_string(),
                s.event.data.phase.to_string(),
            ))
            .or_default() += 1;
    }
    let place = if upstream {
        "the care team's upstream broker"
    } else {
        "the audit file"
    };
    println!("\nSummary: {} events reached {place}", seen.len());
    println!("  {:<26} {:<8} {:>5}", "kind", "phase", "count");
    for ((k, p), n) in &by_kind {
        println!("  {k:<26} {p:<8} {n:>5}");
    }
    let mut lat: Vec<f64> = seen.iter().map(|s| s.latency_ms).collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    if !lat.is_empty() {
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
        println!(
            "  gateway receipt -> {place}: p50 {:.1} ms, max {:.1} ms",
            p(0.5),
            p(1.0)
        );
    }
    let _ = seen.last().map(|s| s.at);
    if let Ok(r) = crate::journal::Reader::open(journal) {
        if let Ok(n) = r.event_count() {
            println!("  journaled events: {n}");
        }
        if let Ok(rows) = r.dead_letters_by_reason() {
            for (reason, n) in rows {
                println!("  dead letters ({reason}): {n}");
            }
        }
    }
}
