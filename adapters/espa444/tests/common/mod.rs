//! A nurse-call control station written from the spec (legacy.md §4.3–4.4), not from the
//! crate: its own BCC and block builder, so a misreading shared with atgw cannot hide.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const SOH: u8 = 0x01;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const EOT: u8 = 0x04;
pub const ENQ: u8 = 0x05;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const US: u8 = 0x1F;
pub const RS: u8 = 0x1E;

/// `SOH 1 STX <id US data> RS … ETX BCC`, BCC the XOR of every byte after SOH through ETX.
pub fn call_block(records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![SOH, b'1', STX];
    for (i, (id, data)) in records.iter().enumerate() {
        if i > 0 {
            b.push(RS);
        }
        b.push(*id);
        b.push(US);
        b.extend_from_slice(data);
    }
    b.push(ETX);
    let bcc = b[1..].iter().fold(0u8, |a, x| a ^ x);
    b.push(bcc);
    b
}

/// A control station (address `1`) selecting paging system `2` and sending blocks.
pub struct ControlStation<S> {
    pub io: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ControlStation<S> {
    /// One byte from the paging system, or `None` after `within`.
    pub async fn answer(&mut self, within: Duration) -> Option<u8> {
        let mut b = [0u8; 1];
        match tokio::time::timeout(within, self.io.read(&mut b)).await {
            Ok(Ok(1)) => Some(b[0]),
            _ => None,
        }
    }

    /// `1 ENQ 2 ENQ`: what the paging system answers.
    pub async fn select(&mut self) -> Option<u8> {
        self.io.write_all(&[b'1', ENQ, b'2', ENQ]).await.ok()?;
        self.answer(Duration::from_secs(3)).await
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.io.write_all(bytes).await;
    }

    /// Select, send one block and return its answer (`None`: no answer within `within`).
    pub async fn send(&mut self, block: &[u8], within: Duration) -> Option<u8> {
        assert_eq!(self.select().await, Some(ACK), "the select was not ACKed");
        self.write(block).await;
        self.answer(within).await
    }

    pub async fn eot(&mut self) {
        self.write(&[EOT]).await;
    }
}

/// A socat pseudo-terminal pair (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`): two real tty
/// devices wired back to back, like a null-modem cable. Killed on drop.
pub struct PtyPair {
    child: std::process::Child,
    pub a: std::path::PathBuf,
    pub b: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    pub fn start() -> PtyPair {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
        let child = std::process::Command::new("socat")
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (apt-get install socat; .ci/run installs it)");
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !(a.exists() && b.exists()) {
            assert!(std::time::Instant::now() < until, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(20));
        }
        PtyPair {
            child,
            a,
            b,
            _dir: dir,
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a pty end for the test's own station: raw, non-blocking, through tokio.
pub fn open_tty(path: &std::path::Path) -> atgw_espa444::serial::SerialPort {
    atgw_espa444::serial::SerialPort::open(&atgw_espa444::config::Serial {
        device: path.to_owned(),
        baud: 9600,
        data_bits: 8,
        parity: atgw_espa444::config::Parity::None,
        stop_bits: 1,
    })
    .unwrap()
}

/// How the test's paging system answers blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answering {
    Ack,
    Nak,
    Silent,
}

/// A paging system (address `2`) written from the spec, on any byte stream: ACKs a select of
/// `2`, checks each block's BCC and answers it as `mode` says; records the good blocks.
pub struct PagingSystem {
    pub mode: std::sync::Arc<std::sync::Mutex<Answering>>,
    pub blocks: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl PagingSystem {
    pub fn spawn<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(mut io: S) -> PagingSystem {
        let mode = std::sync::Arc::new(std::sync::Mutex::new(Answering::Ack));
        let blocks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m, b) = (mode.clone(), blocks.clone());
        tokio::spawn(async move {
            let mut prev = 0u8;
            let mut block: Option<Vec<u8>> = None;
            let mut bcc_next = false;
            let mut buf = [0u8; 256];
            loop {
                let n = match io.read(&mut buf).await {
                    Ok(n) if n > 0 => n,
                    _ => return,
                };
                for &x in &buf[..n] {
                    if let Some(bl) = block.as_mut() {
                        bl.push(x);
                        if bcc_next {
                            let done = block.take().unwrap_or_default();
                            bcc_next = false;
                            let body = &done[1..done.len() - 1];
                            let good = body.iter().fold(0u8, |a, y| a ^ y) == done[done.len() - 1];
                            let answer = *m.lock().unwrap();
                            if good {
                                b.lock().unwrap().push(done.clone());
                            }
                            let reply = match (good, answer) {
                                (false, _) | (true, Answering::Nak) => Some(NAK),
                                (true, Answering::Ack) => Some(ACK),
                                (true, Answering::Silent) => None,
                            };
                            if let Some(r) = reply {
                                let _ = io.write_all(&[r]).await;
                            }
                        } else if x == ETX {
                            bcc_next = true;
                        }
                        continue;
                    }
                    match x {
                        SOH => block = Some(vec![SOH]),
                        ENQ if prev == b'2' => {
                            let _ = io.write_all(&[ACK]).await;
                        }
                        _ => {}
                    }
                    prev = x;
                }
            }
        });
        PagingSystem { mode, blocks }
    }

    pub fn set(&self, a: Answering) {
        *self.mode.lock().unwrap() = a;
    }

    /// Records of each good block received: id → data (Latin-1).
    pub fn records(&self) -> Vec<std::collections::BTreeMap<char, String>> {
        self.blocks
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                let stx = b.iter().position(|&x| x == STX).unwrap_or(0);
                let text = &b[stx + 1..b.len() - 2];
                text.split(|&x| x == RS)
                    .filter_map(|r| {
                        let us = r.iter().position(|&x| x == US)?;
                        Some((
                            char::from(r[0]),
                            r[us + 1..].iter().map(|&c| char::from(c)).collect(),
                        ))
                    })
                    .collect()
            })
            .collect()
    }
}

/// A started sink with its channels.
pub struct SinkRun {
    pub deliveries: tokio::sync::mpsc::Sender<atgw_sdk::sink::Delivery>,
    pub outcomes: tokio::sync::mpsc::UnboundedReceiver<atgw_sdk::sink::Outcome>,
    pub health: std::sync::Arc<atgw_sdk::Health>,
    pub shutdown: atgw_sdk::Shutdown,
}

pub async fn start_sink(config: atgw_espa444::config::SinkConfig) -> SinkRun {
    use atgw_sdk::component::{Sink, SinkContext, Site};
    let site = Site {
        gateway_id: "gw".into(),
        profiles_dir: std::env::temp_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let (dtx, drx) = tokio::sync::mpsc::channel(1);
    let (otx, orx) = tokio::sync::mpsc::unbounded_channel();
    let (atx, _arx) = tokio::sync::mpsc::channel(1);
    let health = std::sync::Arc::new(atgw_sdk::Health::default());
    let shutdown = atgw_sdk::Shutdown::new();
    let ctx = SinkContext {
        site: site.clone(),
        io: atgw_sdk::sink::SinkIo {
            deliveries: drx,
            outcomes: otx,
        },
        health: health.clone(),
        clock: std::sync::Arc::new(atgw_sdk::clock::SystemClock),
        shutdown: shutdown.clone(),
        intake_shutdown: shutdown.clone(),
        alert_requests: atx,
        extra_health: Default::default(),
    };
    let tasks = atgw_espa444::EspaSink::check(&config, &site)
        .unwrap()
        .start(ctx)
        .await
        .unwrap();
    tokio::spawn(tasks.output);
    SinkRun {
        deliveries: dtx,
        outcomes: orx,
        health,
        shutdown,
    }
}

/// An escalated fall alert in room 12 (the lifecycle event a route hands a sink).
pub fn escalated_fall(outbox_id: i64, recipients: &[&str]) -> atgw_sdk::sink::Delivery {
    lifecycle(outbox_id, "escalated", "ack_timeout", recipients)
}

pub fn lifecycle(
    outbox_id: i64,
    phase: &str,
    reason: &str,
    recipients: &[&str],
) -> atgw_sdk::sink::Delivery {
    let json = serde_json::json!({
        "id": format!("ev-{outbox_id}"), "type": format!("atgw.alert.{phase}"),
        "data": {"kind": "fall", "phase": phase, "priority": "high",
                 "location": {"site": "oakview", "room": "12", "area": "West wing"},
                 "message": "Fall detected", "alert": {"reason": reason}}
    })
    .to_string();
    atgw_sdk::sink::Delivery {
        outbox_id,
        event_id: format!("ev-{outbox_id}").into(),
        kind: atgw_sdk::Kind::Fall,
        priority: atgw_sdk::Priority::High,
        device_id: "radar-12".into(),
        json: json.into(),
        attempt: 0,
        alert_id: Some("alert-1".into()),
        lifecycle: true,
        recipients: recipients
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into(),
    }
}

/// A Python with `digimat-espa` importable: the system one when it has it, else a venv under
/// the target directory, created and filled on first use (`.ci/run` installs it too).
pub fn python_with_digimat() -> std::path::PathBuf {
    let has = |py: &std::path::Path| {
        std::process::Command::new(py)
            .args(["-c", "import digimat.espa"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = std::path::PathBuf::from("python3");
    if has(&system) {
        return system;
    }
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("espa-venv");
    let py = venv.join("bin/python3");
    if !has(&py) {
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new(&py)
                .args(["-m", "pip", "install", "--quiet", "digimat-espa==0.1.17"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && has(&py),
            "could not install digimat-espa into {}",
            venv.display()
        );
    }
    py
}
