//! `atgw simulate <protocol>`: speak a real wire protocol to a running gateway, for
//! commissioning and load. Each answer is checked; the exit code says whether all were good.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use atgw_sia_dc09::crypto::{AesKey, KeyFormat};
use atgw_sia_dc09::simulator::{SimPayload, Transport};
use atgw_sia_dc09::{SimulatorConfig, simulate};

/// `atgw simulate dc09` options.
#[derive(clap::Args, Debug)]
pub struct Dc09Args {
    /// Receiver address (the gateway's `listen_tcp` / `listen_udp`).
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub target: SocketAddr,
    /// Send over UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Account number (kept as text: leading zeros matter).
    #[arg(long, default_value = "1234")]
    pub account: String,
    /// Encrypt with the AES key in this file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// How the key file is written.
    #[arg(long, value_parser = ["hex", "ascii"], default_value = "hex")]
    pub key_format: String,
    /// Contact ID event "QEEE GG ZZZ", e.g. "1101 01 003" (new personal emergency, zone 003).
    #[arg(long, default_value = "1101 01 003", conflicts_with_all = ["sia", "null"])]
    pub cid: String,
    /// SIA DC-03 data instead, e.g. "Nri1/MA003".
    #[arg(long)]
    pub sia: Option<String>,
    /// Supervision (NULL) frames instead.
    #[arg(long)]
    pub null: bool,
    /// Frames to send.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Frames per second (0: as fast as they are answered).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

pub async fn dc09(a: Dc09Args) -> ExitCode {
    let mut cfg = SimulatorConfig::new(a.target, a.account.clone());
    cfg.transport = if a.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    cfg.count = a.count;
    cfg.rate_per_sec = a.rate;
    cfg.payload = match (&a.sia, a.null) {
        (_, true) => SimPayload::Null,
        (Some(s), false) => SimPayload::Sia(s.clone()),
        (None, false) => SimPayload::ContactId(a.cid.clone()),
    };
    if let Some(path) = &a.key_file {
        let format = if a.key_format == "ascii" {
            KeyFormat::Ascii
        } else {
            KeyFormat::Hex
        };
        let key = atgw_sdk::secret::read_secret_file(path)
            .map_err(|e| e.to_string())
            .and_then(|s| AesKey::parse(s.expose(), format).map_err(|e| e.to_string()));
        match key {
            Ok(k) => cfg.key = Some(k),
            Err(e) => {
                eprintln!("atgw simulate dc09: --key-file: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match simulate(cfg).await {
        Ok(r) => {
            let ms = |d: Option<Duration>| {
                d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or("-".into())
            };
            println!(
                "sent {} acked {} nak {} duh {} timeouts {} bad answers {}; ack latency p50 {} p99 {}",
                r.sent,
                r.acked,
                r.nak,
                r.duh,
                r.timeouts,
                r.bad_answers,
                ms(r.latency_p50),
                ms(r.latency_p99)
            );
            if r.acked == r.sent && r.sent > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("atgw simulate dc09: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which end of an ESPA 4.4.4 link `atgw simulate espa` plays.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EspaRole {
    /// A nurse-call control station (address 1) sending calls to the gateway's adapter.
    Control,
    /// A paging system (address 2) taking the gateway's pages and printing them.
    Pager,
}

/// `atgw simulate espa` options.
#[derive(clap::Args, Debug)]
pub struct EspaArgs {
    /// Which end to play.
    #[arg(long, value_enum, default_value = "control")]
    pub role: EspaRole,
    /// Connect to this `host:port` (the adapter's `listen`, or a serial server).
    #[arg(long, conflicts_with_all = ["listen", "serial"])]
    pub connect: Option<String>,
    /// Listen on this `host:port` for the gateway (the sink's `connect`).
    #[arg(long, conflicts_with = "serial")]
    pub listen: Option<String>,
    /// Use this serial port (9600 8N1) instead of TCP.
    #[arg(long)]
    pub serial: Option<PathBuf>,
    /// Call address of the first call (control station).
    #[arg(long, default_value_t = 1234)]
    pub address: u64,
    /// Calls cycle through this many consecutive addresses.
    #[arg(long, default_value_t = 1)]
    pub addresses: u64,
    /// Display text of each call.
    #[arg(long, default_value = "Call Room 12")]
    pub text: String,
    /// Priority record: 1 alarm, 2 high, 3 normal.
    #[arg(long, default_value = "2", value_parser = ["1", "2", "3"])]
    pub priority: String,
    /// Send a reset (call type 1) after each call.
    #[arg(long)]
    pub reset: bool,
    /// Calls to send (control), or pages to take before exiting (pager; 0: until stopped).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Calls per second (0: as fast as they are answered).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// How long to wait for each answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn espa(a: EspaArgs) -> ExitCode {
    use atgw_espa444::simulator;
    let transport = atgw_espa444::config::Transport {
        listen: a.listen.clone(),
        connect: match (&a.connect, &a.listen, &a.serial, a.role) {
            (None, None, None, EspaRole::Control) => Some("127.0.0.1:2023".into()),
            (c, ..) => c.clone(),
        },
        serial: a.serial.clone().map(|device| atgw_espa444::config::Serial {
            device,
            baud: 9600,
            data_bits: 8,
            parity: atgw_espa444::config::Parity::None,
            stop_bits: 1,
        }),
    };
    if let Err(e) = transport.validate() {
        eprintln!("atgw simulate espa: give one of --connect, --listen, --serial ({e})");
        return ExitCode::from(2);
    }
    match a.role {
        EspaRole::Control => {
            let plan = simulator::CallPlan {
                transport,
                address: a.address,
                addresses: a.addresses,
                text: a.text,
                priority: a.priority.chars().next().unwrap_or('2'),
                reset: a.reset,
                count: a.count,
                rate: a.rate,
                timeout: a.timeout,
            };
            match simulator::control_station(plan).await {
                Ok(r) => {
                    let ms = |d: Option<Duration>| {
                        d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                            .unwrap_or("-".into())
                    };
                    let rate = r.acked as f64 / r.elapsed.as_secs_f64().max(1e-9);
                    println!(
                        "sent {} acked {} nak {} timeouts {}; {rate:.0} blocks/s; ack latency p50 {} p99 {}",
                        r.sent,
                        r.acked,
                        r.refused,
                        r.timeouts,
                        ms(r.latency_p50),
                        ms(r.latency_p99)
                    );
                    if r.acked == r.sent && r.sent > 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("atgw simulate espa: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        EspaRole::Pager => {
            let r = simulator::pager(transport, a.count, |p| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{p}");
                let _ = out.flush();
            })
            .await;
            match r {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("atgw simulate espa: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `atgw simulate scaip` options.
#[derive(clap::Args, Debug)]
pub struct ScaipArgs {
    /// Receiver address (the gateway's SCAIP `listen_udp` / `listen_tcp`).
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub target: SocketAddr,
    /// Send over TCP instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// Send over TLS (`sips:`, the receiver's `listen_tls`); needs --ca-file.
    #[arg(long, conflicts_with = "tcp", requires = "ca_file")]
    pub tls: bool,
    /// PEM CA certificate(s) the receiver's certificate must chain to (with --tls).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate to present (a receiver with `tls.client_ca_file`); with --key-file.
    #[arg(long, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of --cert-file.
    #[arg(long, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// The name the receiver's certificate must carry (default: the target's IP address).
    #[arg(long)]
    pub server_name: Option<String>,
    /// The unit's controller id (`cid`), also its SIP user unless --user is given.
    #[arg(long, default_value = "678")]
    pub cid: String,
    /// Device type (SS 91100 Annex A), e.g. 3 pendant, 5 fall detector, 23 smoke.
    #[arg(long, default_value_t = 3)]
    pub dty: u16,
    /// Status code (Annex C); omitted means "alarm".
    #[arg(long)]
    pub stc: Option<u16>,
    /// Location code (Annex D), e.g. 11 bathroom, 12 bedroom.
    #[arg(long)]
    pub lco: Option<u16>,
    /// Device id (`did`) within the unit.
    #[arg(long)]
    pub did: Option<String>,
    /// SIP digest user (default: the cid).
    #[arg(long)]
    pub user: Option<String>,
    /// File holding the SIP digest password (never on the command line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Alarms to send (each with a new `ref`).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// After each alarm, send an information update (`mty IN`) for its `ref`.
    #[arg(long)]
    pub update: bool,
    /// After each alarm (and update), reset it (`mty RE`).
    #[arg(long)]
    pub reset: bool,
    /// Heartbeats (`mty PI`) to send after the alarms.
    #[arg(long, default_value_t = 0)]
    pub heartbeats: u64,
    /// Offer `hbo` on heartbeats and require the receiver's `hbi` in the answer.
    #[arg(long)]
    pub hbo: bool,
    /// Pause between requests (e.g. "1s", "500ms").
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// How long one request may take to be answered (final response and `<mrs>`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn scaip(a: ScaipArgs) -> ExitCode {
    use atgw_scaip::simulator::{SimTransport, SimulatorConfig, Step, simulate};
    let mut cfg = SimulatorConfig::new(a.target, &a.cid);
    cfg.transport = if a.tls {
        SimTransport::Tls
    } else if a.tcp {
        SimTransport::Tcp
    } else {
        SimTransport::Udp
    };
    if let Some(ca) = &a.ca_file {
        let client = a.cert_file.as_deref().zip(a.key_file.as_deref());
        match atgw_scaip::tls::client_config(ca, client) {
            Ok(c) => cfg.tls = Some(c),
            Err(e) => {
                eprintln!("atgw simulate scaip: {e}");
                return ExitCode::from(2);
            }
        }
    }
    cfg.server_name = a.server_name.clone();
    cfg.dty = a.dty;
    cfg.stc = a.stc;
    cfg.lco = a.lco;
    cfg.did = a.did.clone();
    cfg.user = a.user.clone();
    cfg.hbo = a.hbo;
    cfg.interval = a.interval;
    cfg.timeout = a.timeout;
    if let Some(path) = &a.password_file {
        match atgw_sdk::secret::read_secret_file(path) {
            Ok(s) => cfg.password = Some(s.expose().to_owned()),
            Err(e) => {
                eprintln!("atgw simulate scaip: --password-file: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut steps = Vec::new();
    for _ in 0..a.count {
        steps.push(Step::Alarm);
        if a.update {
            steps.push(Step::Update);
        }
        if a.reset {
            steps.push(Step::Reset);
        }
    }
    steps.extend((0..a.heartbeats).map(|_| Step::Heartbeat));
    cfg.steps = steps;
    match simulate(cfg).await {
        Ok(r) => {
            for x in r.exchanges.iter().filter(|x| x.problem.is_some()) {
                println!(
                    "{:?} ref {}: {}",
                    x.step,
                    x.reference,
                    x.problem.as_deref().unwrap_or_default()
                );
            }
            let ms = |d: Option<Duration>| {
                d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or("-".into())
            };
            let challenged = r.exchanges.iter().filter(|x| x.challenges > 0).count();
            println!(
                "sent {} answered {} (200 + <mrs> snu 0, ref echoed) challenged {} problems {}; reply latency p50 {} p99 {}",
                r.exchanges.len(),
                r.good(),
                challenged,
                r.exchanges.len() - r.good(),
                ms(r.latency(50.0)),
                ms(r.latency(99.0))
            );
            if r.all_good() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("atgw simulate scaip: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `atgw simulate mqtt` devices send.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttDeviceKind {
    /// BLE pulse oximeter readings through a BLE hub (`dusun_pub`): telemetry.
    Oximeter,
    /// zigbee2mqtt SOS buttons pressed (`action: emergency`): alarms.
    Button,
    /// zigbee2mqtt fall radars reporting a fall: alarms.
    FallRadar,
    /// Oximeter readings with one button press in a hundred messages.
    Mixed,
}

/// `atgw simulate mqtt` options.
#[derive(clap::Args, Debug)]
pub struct MqttArgs {
    /// Broker the gateway's MQTT adapter subscribes to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port (1883 plain, 8883 TLS by convention).
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Broker user name.
    #[arg(long)]
    pub username: Option<String>,
    /// File holding the broker password (never on the command line).
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
    /// Connect with TLS, trusting the CA(s) in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// What the simulated devices are.
    #[arg(long, value_enum, default_value = "oximeter")]
    pub kind: MqttDeviceKind,
    /// Number of distinct simulated devices (messages rotate over them).
    #[arg(long, default_value_t = 10)]
    pub devices: u32,
    /// Messages to publish in all.
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// Messages per second (0: as fast as the broker acknowledges).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Also follow the gateway's upstream MQTT sink under this topic prefix (its
    /// `topic_prefix`) and report how many messages came through, with latency.
    #[arg(long)]
    pub upstream_prefix: Option<String>,
    /// How long to wait for the last messages upstream.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
}

/// One simulated device message: topic and JSON payload carrying `sim_run` and `sim_seq`, which
/// profiles ignore and the upstream follower reads back from `data.raw.payload`.
fn mqtt_message(kind: MqttDeviceKind, devices: u32, seq: u64, run: &str) -> (String, String) {
    let device = seq % u64::from(devices.max(1));
    let now = jiff::Timestamp::now().as_second();
    let oximeter = || {
        (
            "dusun_pub".to_owned(),
            format!(
                r#"{{"from":"BLE","to":"CLOUD","time":{now},"mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{{"device_list":[{{"scan_time":{now},"ble_addr":"5a{device:010x}","pulse":72,"spo2":97,"pi":40}}]}}}},"sim_run":"{run}","sim_seq":{seq}}}"#
            ),
        )
    };
    let button = || {
        (
            format!("zigbee2mqtt/0xa4c1{device:012x}"),
            format!(
                r#"{{"action":"emergency","battery":95,"linkquality":80,"sim_run":"{run}","sim_seq":{seq}}}"#
            ),
        )
    };
    match kind {
        MqttDeviceKind::Oximeter => oximeter(),
        MqttDeviceKind::Button => button(),
        MqttDeviceKind::Mixed if seq % 100 == 99 => button(),
        MqttDeviceKind::Mixed => oximeter(),
        MqttDeviceKind::FallRadar => (
            format!("zigbee2mqtt/0xdc8e{device:012x}"),
            format!(
                r#"{{"presence":true,"occupancy":true,"fall_down_status":"fall","linkquality":120,"sim_run":"{run}","sim_seq":{seq}}}"#
            ),
        ),
    }
}

/// What the upstream follower saw: arrivals per sequence number, first-arrival latencies.
type Followed = (std::collections::HashMap<u64, u32>, Vec<Duration>);

/// Publishes simulated device messages at QoS 1 and counts the broker's acknowledgements;
/// with `--upstream-prefix`, also counts what the gateway delivered upstream and how fast.
pub async fn mqtt(a: MqttArgs) -> ExitCode {
    match mqtt_run(a).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("atgw simulate mqtt: {e}");
            ExitCode::from(2)
        }
    }
}

async fn mqtt_run(a: MqttArgs) -> Result<bool, String> {
    use rumqttc::{AsyncClient, Event, Incoming, QoS};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    let run = format!("{:08x}", rand::random::<u32>());
    let broker = |client_id: String| atgw_mqtt::config::Broker {
        host: a.host.clone(),
        port: a.port,
        client_id: Some(client_id),
        username: a.username.clone(),
        password_file: a.password_file.clone(),
        tls: a.ca_file.clone().map(|ca| atgw_mqtt::config::Tls {
            ca_file: Some(ca),
            cert_file: None,
            key_file: None,
            server_name: None,
        }),
        keep_alive: Duration::from_secs(30),
        reconnect_min: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(2),
    };
    let options = |id: String| {
        atgw_mqtt::connection::options(&broker(id), "", 1 << 20)
            .map(|mut o| {
                // A simulator's session is throwaway; the gateway's is the durable one.
                o.set_clean_session(true);
                o
            })
            .map_err(|e| e.to_string())
    };

    // Publish time of each message, by sequence number, for upstream latency.
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let upstream = match &a.upstream_prefix {
        None => None,
        Some(prefix) => {
            let (client, mut eventloop) =
                AsyncClient::new(options(format!("atgw-sim-up-{run}"))?, 1024);
            client
                .subscribe(format!("{prefix}/events/#"), QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string())?;
            let seen: Arc<Mutex<Followed>> = Arc::default();
            let (seen2, sent2, run2) = (seen.clone(), sent_at.clone(), run.clone());
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Incoming::SubAck(_))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                            else {
                                continue;
                            };
                            let raw = &v["data"]["raw"]["payload"];
                            if raw["sim_run"].as_str() != Some(run2.as_str()) {
                                continue;
                            }
                            let Some(seq) = raw["sim_seq"].as_u64() else {
                                continue;
                            };
                            let at = sent2.lock().ok().and_then(|s| s.get(&seq).copied());
                            if let Ok(mut s) = seen2.lock() {
                                let n = s.0.entry(seq).or_default();
                                *n += 1;
                                if let (1, Some(at)) = (*n, at) {
                                    s.1.push(at.elapsed());
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("atgw simulate mqtt: upstream follower: {e}");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
            tokio::time::timeout(Duration::from_secs(10), ready_rx)
                .await
                .map_err(|_| "no SUBACK from the upstream broker within 10 s".to_owned())?
                .map_err(|_| "upstream follower stopped".to_owned())?;
            Some((seen, task))
        }
    };

    let (client, mut eventloop) = AsyncClient::new(options(format!("atgw-sim-{run}"))?, 1024);
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let acked2 = acked.clone();
    let pump = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    acked2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("atgw simulate mqtt: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    let started = Instant::now();
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / a.rate));
    for seq in 0..a.count {
        if let Some(i) = interval {
            tokio::time::sleep_until(started + i.mul_f64(seq as f64)).await;
        }
        let (topic, payload) = mqtt_message(a.kind, a.devices, seq, &run);
        if let Ok(mut s) = sent_at.lock() {
            s.insert(seq, Instant::now());
        }
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + a.settle;
    while acked.load(std::sync::atomic::Ordering::Relaxed) < a.count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let acked = acked.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "published {} acked by the broker {} in {:.2} s ({:.0} msg/s), {} devices, kind {:?}",
        a.count,
        acked,
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64().max(1e-9),
        a.devices,
        a.kind
    );
    let mut ok = acked == a.count;
    if let Some((seen, task)) = upstream {
        let through = || seen.lock().map(|s| s.0.len() as u64).unwrap_or(0);
        while through() < a.count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
        let (counts, mut latencies) = seen.lock().map(|s| s.clone()).unwrap_or_default();
        latencies.sort_unstable();
        let pick = |q: f64| {
            latencies
                .get(((latencies.len().saturating_sub(1)) as f64 * q).round() as usize)
                .map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "-".into())
        };
        let redelivered = counts.values().filter(|n| **n > 1).count();
        println!(
            "upstream: {} of {} arrived ({} more than once), publish -> upstream p50 {} p99 {} max {}",
            counts.len(),
            a.count,
            redelivered,
            pick(0.5),
            pick(0.99),
            pick(1.0)
        );
        ok &= counts.len() as u64 == a.count;
    }
    client.disconnect().await.ok();
    pump.abort();
    Ok(ok)
}

/// `atgw simulate http` options.
#[derive(clap::Args, Debug)]
pub struct HttpArgs {
    /// Which cloud to be: netlia, purelife, novee or standard-webhooks (README, "HTTP ingest").
    #[arg(long, value_parser = atgw_http_ingest::simulator::Vendor::NAMES.to_vec())]
    pub vendor: String,
    /// The gateway's HTTP ingest listener.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub url: String,
    /// The route's secret: the API key, HMAC key or `whsec_` secret the route checks.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// Trust only the CA(s) in this PEM file (a gateway's private CA or self-signed cert).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Webhooks to send.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
}

pub async fn http(a: HttpArgs) -> ExitCode {
    match http_run(a).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("atgw simulate http: {e}");
            ExitCode::from(2)
        }
    }
}

async fn http_run(a: HttpArgs) -> Result<bool, String> {
    use atgw_http_ingest::simulator::{Run, Vendor, run};
    let vendor = Vendor::parse(&a.vendor).ok_or_else(|| format!("unknown vendor {}", a.vendor))?;
    let secret = atgw_sdk::secret::read_secret_file(&a.secret_file)
        .map_err(|e| format!("--secret-file: {e}"))?;
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true);
    if let Some(path) = &a.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        b = b.tls_certs_only(certs);
    }
    let client = b.build().map_err(|e| e.to_string())?;
    let report = run(Run {
        vendor,
        base: a.url.clone(),
        secret: secret.expose().to_owned(),
        client,
        count: a.count,
        concurrency: a.concurrency,
        run_id: uuid::Uuid::now_v7().simple().to_string(),
    })
    .await?;
    let ms = |d: Option<Duration>| {
        d.map_or("-".to_owned(), |d| {
            format!("{:.2} ms", d.as_secs_f64() * 1e3)
        })
    };
    println!(
        "{}: sent {}, answered 2xx {}, in {:.2} s ({:.0}/s); latency p50 {}, p99 {}",
        a.vendor,
        report.sent,
        report.ok,
        report.elapsed.as_secs_f64(),
        report.ok as f64 / report.elapsed.as_secs_f64().max(1e-9),
        ms(report.percentile(0.50)),
        ms(report.percentile(0.99)),
    );
    for (status, n) in &report.failed {
        if *status == 0 {
            println!("  no answer: {n}");
        } else {
            println!("  answered {status}: {n}");
        }
    }
    Ok(report.ok == report.sent)
}
