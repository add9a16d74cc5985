//! `atgw demo`: a self-contained tour. It starts the real daemon in-process with a temporary
//! (or given) data directory, simulated devices on every protocol atgw speaks, a policy with
//! short escalation delays, and a stand-in for the care team's phones that acknowledges some
//! alerts through the local API and lets others escalate. It prints the story of each alert as
//! it happens and ends with a summary read from the journal.
//!
//! The MQTT half (zigbee2mqtt devices, a BLE hub, the upstream broker) needs a private
//! Mosquitto; without one the DC-09 half still runs and the console reads the audit file.
//!
//! # Layout
//! - [`script`]: the simulated devices, what they send and when, and their registry entries.
//! - [`phones`]: the webhook receiver that verifies signatures and plays carers and senior.
//! - [`timeline`]: the live, ordered, aligned lines; telemetry dimmed.
//! - [`nurse_call`]: the ESPA 4.4.4 path on loopback: a pull cord, the senior's DECT handset.
//! - [`summary`]: the per-alert table, totals per protocol path and the verdicts.

pub mod nurse_call;
pub mod phones;
pub mod scaip_unit;
pub mod script;
pub mod summary;
pub mod team;
pub mod timeline;

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atgw_sdk::{Event, Shutdown};
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, Incoming, MqttOptions, QoS};
use tokio::signal::unix::{SignalKind, signal};

use crate::tools::mosquitto::Mosquitto;
use phones::{Phones, PhonesSetup};
pub use script::SHIPPED_PROFILES;
use team::Team;
use timeline::{PolicyTimes, Timeline};

/// An unacknowledged alert goes to the senior after this long. Seconds, not the minutes of a
/// real site, so the escalation shows within the default run.
pub const ESCALATE_AFTER: Duration = Duration::from_secs(5);
/// Everyone told so far is told again this often until someone acknowledges: once before the
/// escalation, not again after it (the senior answers within a second).
pub const REPEAT_EVERY: Duration = Duration::from_secs(4);
/// Once acknowledged, a reminder this long after if still not resolved: shorter than a pendant
/// call's visit and longer than the others', so it shows for the pendant calls only.
pub const REMIND_AFTER: Duration = Duration::from_secs(8);

/// `atgw demo` options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub duration: Duration,
    /// Use and keep this directory (new or empty) instead of a temporary one.
    pub data_dir: Option<PathBuf>,
    /// Leave out the MQTT half, as when `mosquitto` is not installed.
    pub no_mqtt: bool,
}

enum DemoError {
    /// The command line asked for something that cannot be done: exit 2.
    Usage(String),
    Failed(String),
}

impl From<String> for DemoError {
    fn from(s: String) -> Self {
        DemoError::Failed(s)
    }
}

/// Runs the demo for `duration` (or until Ctrl-C or SIGTERM).
pub async fn run(opts: DemoOptions) -> ExitCode {
    match tour(opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(DemoError::Usage(e)) => {
            eprintln!("atgw demo: {e}");
            ExitCode::from(2)
        }
        Err(DemoError::Failed(e)) => {
            eprintln!("atgw demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the demo wrote to its directory and the ports it chose.
struct Generated {
    config: PathBuf,
    dc09_port: u16,
    scaip_port: u16,
    scaip_password: String,
    api_port: u16,
    token: String,
    carers_secret: String,
    senior_secret: String,
    key_hex: String,
}

async fn tour(opts: DemoOptions) -> Result<(), DemoError> {
    // Installed first, so a Ctrl-C at any point from here is a clean stop, not a kill.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (root, temp) = workspace(opts.data_dir.as_deref())?;

    println!("atgw demo: a care home's devices, one gateway, alerts to the care team's phones");
    match &temp {
        Some(_) => println!(
            "  data    {} (temporary; --data-dir DIR keeps it)",
            root.display()
        ),
        None => println!("  data    {} (kept)", root.display()),
    }

    // The MQTT half needs a broker; without one the demo still shows the legacy (DC-09) half.
    let mut missing: Vec<(&'static str, String)> = Vec::new();
    let mut broker = if opts.no_mqtt {
        missing.push(("mqtt", "--no-mqtt".into()));
        println!("  mqtt    left out (--no-mqtt): only the DC-09 alarm panels run");
        None
    } else if crate::tools::mosquitto::find().is_none() {
        missing.push(("mqtt", "mosquitto is not installed".into()));
        println!(
            "  mqtt    NOT SHOWN: `mosquitto` is not installed, so there are no zigbee2mqtt/BLE devices and no upstream broker;"
        );
        println!(
            "          only the DC-09 alarm panels run, and the console reads the audit file. Install it (Debian/Ubuntu: sudo apt-get install mosquitto) to see both."
        );
        None
    } else {
        let b = Mosquitto::start_own_process_group(&root.join("broker"))
            .map_err(|e| format!("cannot start a private mosquitto: {e}"))?;
        println!(
            "  mqtt    private mosquitto on 127.0.0.1:{}: zigbee2mqtt SOS button, fall radar and leak sensor, BLE oximeter hub; upstream for the care platform",
            b.port
        );
        Some(b)
    };

    // The phones listen first: the webhook sinks' URLs go into the config.
    let phones_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen for the phones' webhooks: {e}"))?;
    let phones_addr = phones_listener
        .local_addr()
        .map_err(|e| format!("cannot listen for the phones' webhooks: {e}"))?;
    let mut nurse = nurse_call::NurseCall::bind().await?;
    let generated = write_files(
        &root,
        broker.as_ref().map(|b| b.port),
        phones_addr,
        &nurse.config(),
    )?;
    let cfg = crate::config::load(&generated.config)
        .map_err(|e| format!("generated config is invalid: {e}"))?;
    let paths: HashMap<String, &'static str> = cfg
        .devices
        .iter()
        .map(|d| (d.id.clone(), timeline::path_of(&d.adapter)))
        .collect();
    let running = crate::runtime::start(&cfg)
        .await
        .map_err(|e| format!("cannot start the gateway: {e}"))?;
    println!(
        "  dc09    DC-09 receiver on 127.0.0.1:{}: alarm panel 1234 (pendant, fall detector; flat 3), home unit 5678 (AES-128; flat 9)",
        generated.dc09_port
    );
    println!("{}", nurse.line());
    println!(
        "  scaip   SCAIP receiver (SIP, digest auth) on 127.0.0.1:{}: digital home unit 2100 (fall detector, pendant; flat 11)",
        generated.scaip_port
    );
    println!(
        "  api     local API on 127.0.0.1:{} (bearer token in {})",
        generated.api_port,
        root.join("api-token").display()
    );
    // A console account made for this run, with a password of its own: never a fixed one.
    let demo_password = random_hex(10);
    let journal = cfg.gateway.data_dir.join(crate::journal::FILE_NAME);
    crate::tools::users_cmd::open(&journal)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            crate::console::accounts::add(
                &c,
                "demo",
                crate::console::accounts::Role::Manager,
                &demo_password,
                crate::console::now_ms(),
            )
            .or_else(|e| match e {
                // A kept --data-dir from an earlier run: give it this run's password.
                crate::console::accounts::AccountError::Exists(_) => {
                    crate::console::accounts::set_password(
                        &c,
                        "demo",
                        &demo_password,
                        crate::console::now_ms(),
                    )
                }
                e => Err(e),
            })
            .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("cannot make the demo's console account: {e}"))?;
    println!(
        "  console http://127.0.0.1:{}/console in a browser: log in as `demo`, password {demo_password} (new each run)",
        generated.api_port
    );
    println!(
        "  phones  webhooks to {phones_addr}/carers and /senior, Standard Webhooks signed, one secret each"
    );
    println!(
        "  policy  high and medium alerts: carers at once, told again every {}s, senior after {}s unacknowledged; reminder {}s after acknowledging",
        REPEAT_EVERY.as_secs(),
        ESCALATE_AFTER.as_secs(),
        REMIND_AFTER.as_secs()
    );
    println!(
        "  people  carers acknowledge pendant calls, leaks and device alerts {:.1}s after their phones ring and resolve them after the visit;",
        phones::CARERS_ANSWER_AFTER.as_secs_f64()
    );
    println!(
        "          falls and the pull cord ring unanswered (the carers are busy), escalate, and the senior answers {:.0}s later.",
        phones::SENIOR_ANSWERS_AFTER.as_secs_f64()
    );

    // The care platform's console subscribes before any device speaks, so it misses nothing.
    let console_link = match &broker {
        Some(b) => Some(console_connect(b.port).await?),
        None => None,
    };
    if broker.is_some() {
        wait_connected(&running, "adapter:zigbee").await;
    }

    let start = jiff::Timestamp::now();
    let started = Instant::now();
    let timeline = Timeline::new(
        start,
        colour,
        PolicyTimes {
            escalate_after: ESCALATE_AFTER,
        },
    );
    let phones = Phones::start(
        phones_listener,
        PhonesSetup {
            api_base: format!("http://127.0.0.1:{}/api/v1", generated.api_port),
            token: generated.token.clone(),
            carers_secret: generated.carers_secret.clone(),
            senior_secret: generated.senior_secret.clone(),
        },
        timeline.clone(),
    )?;
    let printing = Shutdown::new();
    let printer = tokio::spawn(timeline.clone().printer(printing.clone()));
    let console = match console_link {
        Some((client, eventloop)) => {
            tokio::spawn(care_team_console(client, eventloop, timeline.clone()))
        }
        None => tokio::spawn(audit_console(root.join("events.jsonl"), timeline.clone())),
    };
    let mut devices = Vec::new();
    if let Some(b) = &broker {
        devices.push(tokio::spawn(script::mqtt_devices(b.port, started)));
    }
    let key = atgw_sia_dc09::crypto::AesKey::parse(
        &generated.key_hex,
        atgw_sia_dc09::crypto::KeyFormat::Hex,
    )
    .map_err(|e| e.to_string())?;
    devices.push(tokio::spawn(script::alarm_panels(
        generated.dc09_port,
        key,
        started,
        timeline.clone(),
    )));

    devices.extend(nurse.start(started, timeline.clone()));
    devices.push(tokio::spawn(scaip_unit::run(
        generated.scaip_port,
        generated.scaip_password.clone(),
        started,
        timeline.clone(),
    )));

    println!(
        "\natgw demo: running for {}s (Ctrl-C to stop early)\n",
        opts.duration.as_secs()
    );
    timeline.print_header();
    let interrupted = tokio::select! {
        _ = tokio::time::sleep(opts.duration) => false,
        _ = interrupt.recv() => true,
        _ = terminate.recv() => true,
    };
    if interrupted {
        // Lines still held would print after this one; let them out first.
        timeline.flush(true);
        println!("\natgw demo: interrupted; stopping the devices, the gateway and the broker");
    }

    // Devices and people first, then the gateway (it drains to the phones and upstream while
    // they still listen), then the listeners and the broker.
    for d in &devices {
        d.abort();
    }
    phones.hang_up();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let journal = running.journal_path.clone();
    tokio::select! {
        _ = running.stop() => {}
        _ = interrupt.recv() => println!("atgw demo: stopping at once"),
    }
    // Lifecycle events the gateway delivered while stopping reach the console and the printer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    console.abort();
    phones.stop();
    printing.cancel();
    let _ = printer.await;
    if let Some(b) = broker.as_mut() {
        b.stop();
    }

    let ran: Vec<&'static str> = if broker.is_some() {
        vec!["mqtt", "dc09", "espa", "scaip"]
    } else {
        vec!["dc09", "espa", "scaip"]
    };
    summary::print(&summary::Context {
        journal: &journal,
        paths: &paths,
        start,
        stats: timeline.stats(),
        upstream: if broker.is_some() {
            "the upstream broker"
        } else {
            "the audit file"
        },
        ran: &ran,
        missing: &missing,
    });
    nurse.print_summary();
    println!();
    match temp {
        Some(_) => println!(
            "atgw demo: the temporary data directory is removed now; run with --data-dir DIR to keep the journal and config."
        ),
        None => {
            println!(
                "atgw demo: kept: config {}, journal {}, audit trail {}",
                generated.config.display(),
                journal.display(),
                root.join("events.jsonl").display()
            );
            println!(
                "atgw demo: the pilot report of this run: atgw report --config {} --out {}",
                generated.config.display(),
                root.join("report").display()
            );
        }
    }
    Ok(())
}

/// The demo's directory: the one given (new or empty, kept) or a temporary one (removed at
/// the end, when the returned guard drops).
fn workspace(data_dir: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>), DemoError> {
    let Some(dir) = data_dir else {
        let t = tempfile::Builder::new()
            .prefix("atgw-demo-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        return Ok((t.path().to_path_buf(), Some(t)));
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            // The demo writes a config, secrets and a journal: never among someone's files.
            if entries.next().is_some() {
                return Err(DemoError::Usage(format!(
                    "--data-dir {}: the directory is not empty; give a new or empty one",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            // It will hold the API token and the webhook secrets.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| DemoError::Usage(format!("--data-dir {}: {e}", dir.display())))?;
        }
        Err(e) => {
            return Err(DemoError::Usage(format!(
                "--data-dir {}: {e}",
                dir.display()
            )));
        }
    }
    let dir = dir
        .canonicalize()
        .map_err(|e| DemoError::Usage(format!("--data-dir {}: {e}", dir.display())))?;
    Ok((dir, None))
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A Standard Webhooks secret: `whsec_` and 24 random bytes in base64.
fn webhook_secret() -> String {
    use base64::Engine as _;
    let key: [u8; 24] = rand::random();
    format!(
        "{}{}",
        atgw_http::signing::SECRET_PREFIX,
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Writes profiles, secrets (mode 600) and the config into `root`.
fn write_files(
    root: &Path,
    mqtt_port: Option<u16>,
    phones: std::net::SocketAddr,
    nurse_call: &str,
) -> Result<Generated, String> {
    let profiles = root.join("profiles");
    std::fs::create_dir_all(&profiles)
        .and_then(|_| {
            SHIPPED_PROFILES
                .iter()
                .try_for_each(|(n, t)| std::fs::write(profiles.join(format!("{n}.toml")), t))
        })
        .map_err(|e| format!("cannot write profiles: {e}"))?;
    let g = Generated {
        config: root.join("atgw.toml"),
        dc09_port: crate::tools::mosquitto::free_port().map_err(|e| e.to_string())?,
        scaip_port: crate::tools::mosquitto::free_port().map_err(|e| e.to_string())?,
        scaip_password: random_hex(16),
        api_port: crate::tools::mosquitto::free_port().map_err(|e| e.to_string())?,
        token: random_hex(24),
        carers_secret: webhook_secret(),
        senior_secret: webhook_secret(),
        key_hex: random_hex(16).to_uppercase(),
    };
    for (name, text) in [
        ("dc09-5678.key", &g.key_hex),
        ("scaip-2100.pass", &g.scaip_password),
        ("api-token", &g.token),
        ("carers-phones.secret", &g.carers_secret),
        ("senior-phone.secret", &g.senior_secret),
    ] {
        write_private(&root.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    let mut text = format!(
        r#"# Written by `atgw demo`. Short delays so that one run shows the whole story; a real site
# escalates after minutes, not seconds.

[gateway]
id = "gw-demo"
site = "oakview"
data_dir = "state"
profiles_dir = "profiles"
timezone = "Europe/London"

[api]
listen = "127.0.0.1:{api_port}"
token_file = {token_file}

[api.console]
enabled = true

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:{dc09_port}"
accounts = [{{ account = "1234" }}, {{ account = "5678", key_file = "dc09-5678.key", key_format = "hex" }}]

[[sink]]
name = "audit"
type = "file"
path = "events.jsonl"

[[sink]]
name = "{carers}"
type = "webhook"
url = "http://{phones}/carers"
allow_http = true
secret_file = {carers_secret}
timeout = "2s"

[[sink]]
name = "{senior}"
type = "webhook"
url = "http://{phones}/senior"
allow_http = true
secret_file = {senior_secret}
timeout = "2s"

[[route]]
name = "{carers_route}"
sinks = ["{carers}"]

[[route]]
name = "{senior_route}"
sinks = ["{senior}", "dect"]

[[policy]]
name = "alarms"
match = {{ priority = ["high", "medium"] }}
notify = ["{carers_route}"]
escalate = [{{ after = "{escalate}s", notify = ["{senior_route}"] }}]
repeat = "{repeat}s"
remind = "{remind}s"
"#,
        api_port = g.api_port,
        dc09_port = g.dc09_port,
        carers = Team::Carers.sink(),
        senior = Team::Senior.sink(),
        carers_route = Team::Carers.route(),
        senior_route = Team::Senior.route(),
        // Absolute: unlike key_file, these are not looked up beside the config file.
        token_file = toml_path(&root.join("api-token")),
        carers_secret = toml_path(&root.join("carers-phones.secret")),
        senior_secret = toml_path(&root.join("senior-phone.secret")),
        escalate = ESCALATE_AFTER.as_secs(),
        repeat = REPEAT_EVERY.as_secs(),
        remind = REMIND_AFTER.as_secs(),
    );
    if let Some(port) = mqtt_port {
        text.push_str(&format!(
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
"#
        ));
        text.push_str(script::MQTT_DEVICES);
    }
    text.push_str(script::DC09_DEVICES);
    text.push_str(nurse_call);
    text.push_str(&scaip_unit::adapter_toml(
        g.scaip_port,
        &toml_path(&root.join("scaip-2100.pass")),
    ));
    text.push_str(scaip_unit::DEVICES);
    std::fs::write(&g.config, text).map_err(|e| format!("cannot write the config: {e}"))?;
    Ok(g)
}

/// A path as a TOML string, quoted and escaped.
fn toml_path(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
}

/// Waits (a few seconds at most) until a component reports its connection up.
async fn wait_connected(running: &crate::runtime::Running, component: &str) {
    let Some(h) = running.health.get(component) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.is_connected() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Connected means its subscription is on the wire; give the broker a moment to confirm.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// The care platform's connection to the upstream broker, returned once it is subscribed to
/// both the event stream and the alerts' lifecycle topics.
async fn console_connect(port: u16) -> Result<(AsyncClient, EventLoop), String> {
    let mut o = MqttOptions::new("demo-care-platform", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    client
        .subscribe_many(
            ["atgw/oakview/events/#", "atgw/oakview/alerts/#"]
                .map(|t| rumqttc::SubscribeFilter::new(t.into(), QoS::AtLeastOnce)),
        )
        .await
        .map_err(|e| format!("care platform console: {e}"))?;
    let subscribed = async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Incoming::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("care platform console: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| "care platform console: the broker did not confirm the subscription")??;
    Ok((client, eventloop))
}

async fn care_team_console(_client: AsyncClient, mut eventloop: EventLoop, tl: Arc<Timeline>) {
    loop {
        match eventloop.poll().await {
            Ok(MqttEvent::Incoming(Incoming::Publish(p))) => {
                if let Ok(event) = serde_json::from_slice::<Event>(&p.payload) {
                    tl.upstream(&event);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Without a broker, the console follows the audit file sink instead.
async fn audit_console(path: PathBuf, tl: Arc<Timeline>) {
    let mut offset = 0u64;
    let mut partial = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(mut f) = std::fs::File::open(&path) else {
            continue;
        };
        let mut fresh = Vec::new();
        if f.seek(std::io::SeekFrom::Start(offset)).is_err() || f.read_to_end(&mut fresh).is_err() {
            continue;
        }
        offset += fresh.len() as u64;
        partial.extend_from_slice(&fresh);
        // Only whole lines: the sink may be half-way through writing one.
        let Some(end) = partial.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let rest = partial.split_off(end + 1);
        for line in partial.split(|b| *b == b'\n') {
            if let Ok(event) = serde_json::from_slice::<Event>(line) {
                tl.upstream(&event);
            }
        }
        partial = rest;
    }
}
