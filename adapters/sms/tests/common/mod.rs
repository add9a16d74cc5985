//! The test peer: `tests/peer/smsc.js`, an SMSC built on the npm `smpp` package, run with
//! node on a free port; and a way to start the sms sink as the core would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_sdk::component::{Sink, SinkContext, Site};
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Shutdown};
use atgw_sms::{SmsConfig, SmsSink};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub const SYSTEM_ID: &str = "atgw-kit";
pub const PASSWORD: &str = "s3cret!";
pub const NUMBERS: [&str; 2] = ["+447700900123", "+447700900456"];

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer")
}

/// A running `smsc.js`.
pub struct Smsc {
    pub port: u16,
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Smsc {
    /// Starts the peer; panics with what to do when node or the npm package is missing.
    pub async fn start() -> Smsc {
        Smsc::start_with(&[]).await
    }

    /// Starts the peer with extra arguments (a TLS certificate and key file).
    pub async fn start_with(extra: &[&Path]) -> Smsc {
        let dir = peer_dir();
        ensure_peer(&dir);
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .arg(SYSTEM_ID)
            .arg(PASSWORD)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node (Node.js) must be installed to run the SMPP peer");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, mut port_rx) = mpsc::channel(1);
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("smsc.js: {line}");
                    continue;
                };
                if v["event"] == "listening" {
                    let _ = port_tx.send(v["port"].as_u64().unwrap_or(0) as u16).await;
                }
                sink.lock().unwrap().push(v);
            }
        });
        let port = tokio::time::timeout(Duration::from_secs(20), port_rx.recv())
            .await
            .expect("smsc.js did not start listening within 20 s")
            .expect("smsc.js exited before listening");
        Smsc {
            port,
            child,
            stdin,
            lines,
        }
    }

    /// Sends a command (`accept`, `refuse`, `throttle 1`, …) and waits for its confirmation.
    pub async fn command(&mut self, c: &str) {
        let before = self.events("ok").len();
        self.stdin
            .write_all(format!("{c}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        self.wait_for("ok", before + 1).await;
    }

    /// Every line with `event` = `kind` so far.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["event"] == kind)
            .cloned()
            .collect()
    }

    /// Waits until there are `n` lines of `kind`; returns them.
    pub async fn wait_for(&self, kind: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.events(kind);
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 15 s for {n} `{kind}` lines; the peer said: {:#?}",
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A password file with mode 0600 holding `password`.
pub fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("smsc.password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// A plain-TCP loopback config for the peer.
pub fn config(port: u16, password_file: PathBuf, to: &[&str]) -> SmsConfig {
    let mut c = SmsConfig::new(
        "carers",
        "127.0.0.1",
        SYSTEM_ID,
        password_file,
        "Oakview",
        to.iter().map(|s| s.to_string()).collect(),
    );
    c.tls = false;
    c.port = Some(port);
    c.response_timeout = Duration::from_secs(3);
    c.event_id_tag = Some(0x1400);
    c
}

pub fn site() -> Site {
    Site {
        gateway_id: "gw-sms".into(),
        profiles_dir: PathBuf::from("/nonexistent"),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    }
}

/// The sink, checked and started as the core does, and our ends of its channels.
pub struct Running {
    pub to_sink: mpsc::Sender<Delivery>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
    pub health: Arc<Health>,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn start(config: SmsConfig) -> Running {
    let prepared = SmsSink::check(&config, &site()).unwrap_or_else(|e| panic!("check: {e}"));
    let (to_sink, deliveries) = mpsc::channel(SmsSink::window(&config));
    let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
    let (alert_requests, _alert_rx) = mpsc::channel(8);
    let health = Arc::new(Health::default());
    let shutdown = Shutdown::new();
    let ctx = SinkContext {
        site: site(),
        io: SinkIo {
            deliveries,
            outcomes: outcomes_tx,
        },
        health: health.clone(),
        clock: Arc::new(atgw_sdk::clock::SystemClock),
        shutdown: shutdown.clone(),
        intake_shutdown: Shutdown::new(),
        alert_requests,
        extra_health: Default::default(),
    };
    let tasks = prepared
        .start(ctx)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    Running {
        to_sink,
        outcomes,
        health,
        shutdown,
        task: tokio::spawn(tasks.output),
    }
}

impl Running {
    pub async fn next_outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(15), self.outcomes.recv())
            .await
            .expect("no outcome within 15 s")
            .expect("the sink closed its outcome channel")
    }

    /// Waits until the sink is bound (health connected).
    pub async fn bound(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !self.health.is_connected() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not bound within 15 s: {:?}",
                self.health.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the sink did not stop within 5 s")
            .unwrap();
    }
}

/// An alert lifecycle event as the core writes it (`atgw.alert.raised`).
pub fn alert_delivery(n: i64, attempt: u32, message: &str) -> Delivery {
    let id = format!("0190sms0-0000-7000-8000-{n:012}");
    let json = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "urn:atgw:gw-sms:alerts",
        "type": "atgw.alert.raised", "time": "2026-01-05T14:02:31.000Z",
        "recordedtime": "2026-01-05T14:02:31.000Z", "sequence": "00000000000000000001",
        "correlationid": "alert-1", "subject": "site/oakview/area/West wing/room/9",
        "datacontenttype": "application/json", "dataschema": "https://atgw.example/schema/event/v1",
        "data": {
            "kind": "fall", "phase": "raised", "priority": "high", "test": false,
            "device": {"id": "radar-9"},
            "location": {"site": "oakview", "area": "West wing", "room": "9"},
            "message": message,
            "alert": {"id": "alert-1", "status": "open", "level": 0, "reason": "raised", "policy": "falls"}
        }
    })
    .to_string();
    Delivery {
        outbox_id: n,
        event_id: id.into(),
        kind: atgw_sdk::Kind::Fall,
        priority: atgw_sdk::Priority::High,
        device_id: "radar-9".into(),
        json: json.into(),
        attempt,
        alert_id: Some("alert-1".into()),
        lifecycle: true,
        recipients: Default::default(),
    }
}

/// Installs the peer's npm packages (as `package-lock.json` pins them) when they are missing,
/// so that `cargo test` alone runs it; `.ci/run` installs them first.
fn ensure_peer(dir: &Path) {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = ONCE.lock();
    if dir.join("node_modules/smpp").is_dir() {
        return;
    }
    let out = std::process::Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(dir)
        .output();
    assert!(
        dir.join("node_modules/smpp").is_dir(),
        "the SMPP test peer could not be installed: install Node.js and npm, then `npm ci --prefix adapters/sms/tests/peer` ({out:?})"
    );
}
