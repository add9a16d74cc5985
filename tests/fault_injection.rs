//! Fault injection (issue "Fault-injection suite"): the real binary, a private Mosquitto and
//! DC-09 over real TCP, under mixed load — pendant presses that open alerts (a policy pages the
//! carers' webhook), telemetry, and now and then a malformed message — with one fault per
//! scenario:
//! - `kill -9` twenty times at seeded random moments (`ATGW_FAULT_SEED` repeats a schedule);
//! - the device broker (which also carries the upstream sink) stopped and started twice;
//! - sink outages: the webhook refusing connections, then answering 500; the upstream broker
//!   (a second one) stopped;
//! - disk full: `data_dir` on a 64 MiB tmpfs filled by another file (kept full while held),
//!   with a supervised device whose missed check-in falls due meanwhile;
//! - a journal file with pages overwritten in the middle while the daemon is stopped;
//! - 1,000 idle TCP connections on the DC-09 port from 241 loopback addresses, each re-opened
//!   when the daemon closes it (here every panel frame must also be ACKed, not only not lost).
//!
//! Each scenario ends with loss accounting, printed and added to the suite's report
//! (`$CARGO_TARGET_TMPDIR/fault-report.txt`, which `.ci/run` prints after the tests):
//! - **accepted**: an MQTT message the broker PUBACKed to its device (QoS 1; atgw PUBACKs the
//!   broker only after commit, so anything it let go uncommitted is missing below); a DC-09
//!   frame atgw ACKed. Messages without an acknowledgement do not count, whatever became of
//!   them. Malformed messages are accounted apart: each must be in `dead_letters` exactly once.
//! - **journaled**: the accepted message's stable key has a row in `events` (MQTT: the `seq`
//!   the payload carries; DC-09: the frame's message text, which holds account, seq, event and
//!   timestamp).
//! - **delivered**: that row's event id reached every stream sink (upstream MQTT and the file).
//! - **lost**: accepted but not journaled, or journaled but never delivered.
//! - **alerts**: alerts in the journal; each one's `raised` event must reach the carers' webhook
//!   and upstream.
//! - **dup alerts**: a second alert for one incident (device and kind; no alert is resolved in
//!   these runs, so a later press must attach to the open alert), counted from the `alerts`
//!   table and from distinct `raised` event ids seen anywhere.
//! - **redeliveries**: the same event id received again by a sink: allowed (at-least-once;
//!   receivers deduplicate by id), reported separately.
//!
//! Where nothing can commit any more (the daemon just killed, the disk held full), every DC-09
//! ACK given so far is also checked against the journal at that moment: an ACK before its
//! commit would show there even if a later retransmission filled the gap.
//!
//! Loads are modest (about 140 messages/s together) so the whole suite stays within a few
//! minutes on two shared cores in a debug build.

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::frame::{Frame, Token};
use atgw_sia_dc09::simulator::{SimPayload, SimulatorConfig, build_frame, seq_for};
use common::*;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, MqttOptions, Outgoing, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// CloudEvents `source` of each adapter and of alert lifecycle events.
const MQTT_SOURCE: &str = "urn:atgw:gw-test:zigbee";
const DC09_SOURCE: &str = "urn:atgw:gw-test:alarms";
const ALERTS_SOURCE: &str = "urn:atgw:gw-test:alerts";
/// How long a panel waits for an answer before it sends the same frame again.
const DC09_ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How long the accounting waits for the journal and the sinks to catch up.
const SETTLE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The devices' side: what was sent, and what the protocol accepted
// ---------------------------------------------------------------------------------------------

/// Every message the devices sent, by stable key, and which ones their protocol accepted.
#[derive(Default)]
struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Default)]
struct LedgerInner {
    sent: HashSet<String>,
    accepted: HashSet<String>,
    /// Sent more than once by the device (MQTT replay after a reconnect, DC-09 retransmission).
    resent: HashSet<String>,
    /// Keys of malformed messages: they belong in `dead_letters`, not in `events`.
    malformed: HashSet<String>,
    /// DC-09 message text → key.
    dc09: HashMap<String, String>,
    /// DC-09 answers other than ACK (NAK, DUH).
    refused: u64,
}

impl Ledger {
    fn sent(&self, key: &str) {
        self.inner.lock().unwrap().sent.insert(key.to_owned());
    }
    fn accept(&self, key: &str) {
        self.inner.lock().unwrap().accepted.insert(key.to_owned());
    }
    fn resent(&self, key: &str) {
        self.inner.lock().unwrap().resent.insert(key.to_owned());
    }
    fn accepted(&self) -> HashSet<String> {
        self.inner.lock().unwrap().accepted.clone()
    }
    fn malformed(&self) -> HashSet<String> {
        self.inner.lock().unwrap().malformed.clone()
    }
    fn resent_keys(&self) -> HashSet<String> {
        self.inner.lock().unwrap().resent.clone()
    }
    fn dc09_key(&self, message: &str) -> Option<String> {
        self.inner.lock().unwrap().dc09.get(message).cloned()
    }
    fn summary(&self) -> (usize, usize, usize, u64) {
        let i = self.inner.lock().unwrap();
        (i.sent.len(), i.accepted.len(), i.resent.len(), i.refused)
    }
}

/// Packet ids of one MQTT device connection → the key each one carries. rumqttc reports
/// `Outgoing::Publish(pkid)` in the order publishes were requested, again with the same pkid
/// when it replays an unacknowledged one after a reconnect, and `AwaitAck(pkid)` when a new
/// publish must wait for its pkid to be freed.
#[derive(Default)]
struct Pkids {
    queued: VecDeque<String>,
    inflight: HashMap<u16, String>,
    collided: HashMap<u16, String>,
}

/// One MQTT device connection publishing at QoS 1: alarms (zigbee2mqtt pendant presses, a new
/// pendant every few presses so incidents keep opening), telemetry (pulse-oximeter readings
/// through a BLE hub) and now and then a malformed message (for the dead-letter table), each
/// payload carrying its key as `seq`.
struct MqttDevice {
    pkids: Arc<Mutex<Pkids>>,
    producer: JoinHandle<()>,
    poller: JoinHandle<()>,
}

impl MqttDevice {
    async fn start(
        port: u16,
        id: String,
        per_sec: u32,
        ledger: Arc<Ledger>,
        stop: Arc<AtomicBool>,
    ) -> MqttDevice {
        let mut o = MqttOptions::new(
            format!("fault-{id}-{}", std::process::id()),
            "127.0.0.1",
            port,
        );
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_inflight(20);
        let (client, mut el) = AsyncClient::new(o, 64);
        let pkids = Arc::new(Mutex::new(Pkids::default()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let (p, l) = (pkids.clone(), ledger.clone());
        let poller = tokio::spawn(async move {
            use rumqttc::{Event, Incoming};
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let mut p = p.lock().unwrap();
                        if let Some(key) = p.inflight.get(&pkid) {
                            l.resent(key);
                        } else if let Some(key) =
                            p.collided.remove(&pkid).or_else(|| p.queued.pop_front())
                        {
                            p.inflight.insert(pkid, key);
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                        let mut p = p.lock().unwrap();
                        if let Some(key) = p.queued.pop_front() {
                            p.collided.insert(pkid, key);
                        }
                    }
                    Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                        if let Some(key) = p.lock().unwrap().inflight.remove(&ack.pkid) {
                            l.accept(&key);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("device connected to the broker")
            .unwrap();
        let p = pkids.clone();
        let producer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let key = format!("m{id}-{i}");
                let (topic, body) = if i % 25 == 13 {
                    ledger.inner.lock().unwrap().malformed.insert(key.clone());
                    (
                        format!("zigbee2mqtt/{id}-garbled"),
                        Value::String(format!(r#"{{"seq":"{key}", "action": emer"#)),
                    )
                } else if i.is_multiple_of(5) {
                    // A new pendant every 4 presses: a new incident, so alerts open throughout.
                    let pendant = i / 20;
                    (
                        format!("zigbee2mqtt/{id}-pendant-{pendant}"),
                        json!({"action": "emergency", "seq": key}),
                    )
                } else {
                    let now = jiff::Timestamp::now().as_second();
                    (
                        "dusun_pub".to_owned(),
                        json!({
                            "type": "reportAttribute", "mac": "DC:DA:0C:5A:80:44", "seq": key,
                            "data": {"attribute": "Oximeter JUMPER", "mac": "DC:DA:0C:5A:80:44",
                                     "value": {"device_list": [{"scan_time": now,
                                     "ble_addr": format!("ff2304{id}"), "pulse": 72, "spo2": 97,
                                     "pi": 43}]}}
                        }),
                    )
                };
                p.lock().unwrap().queued.push_back(key.clone());
                ledger.sent(&key);
                let body = match body {
                    Value::String(raw) => raw,
                    json => json.to_string(),
                };
                if client
                    .publish(topic, QoS::AtLeastOnce, false, body)
                    .await
                    .is_err()
                {
                    return;
                }
                i += 1;
            }
        });
        MqttDevice {
            pkids,
            producer,
            poller,
        }
    }

    /// Publishes not yet acknowledged by the broker (requested, or in flight).
    fn pending(&self) -> usize {
        let p = self.pkids.lock().unwrap();
        p.queued.len() + p.inflight.len() + p.collided.len()
    }
}

impl Drop for MqttDevice {
    fn drop(&mut self) {
        self.producer.abort();
        self.poller.abort();
    }
}

/// The message text of a DC-09 frame: what the journal keeps as `raw.payload`.
fn message_of(frame: &[u8]) -> String {
    let (f, _) = Frame::decode(frame).expect("the simulator builds valid frames");
    String::from_utf8(f.message()).expect("plaintext frames are ASCII")
}

/// The next frame on `sock`, or `None` on EOF, error or timeout.
async fn read_frame(sock: &mut TcpStream, dec: &mut FrameDecoder) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + DC09_ANSWER_WAIT;
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(f)) = dec.next_frame() {
            return Some(f);
        }
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => dec.extend(&buf[..n]),
            _ => return None,
        }
    }
}

/// A DC-09 panel on TCP: one frame at a time, paced; a frame without an ACK is sent again,
/// byte for byte, on the same or a new connection, as panels do. Every fifth frame is a
/// personal emergency (Contact ID 101, an alert), the others periodic test reports (602).
async fn panel(
    to: SocketAddr,
    account: String,
    tag: String,
    per_sec: u32,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<(TcpStream, FrameDecoder)> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // seq_for wraps after 9999; a run never gets near that.
    for i in 0..9_000u64 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tick.tick().await;
        let event = if i.is_multiple_of(5) {
            format!("1101 01 {:03}", 1 + (i / 5) % 50)
        } else {
            "1602 00 000".to_owned()
        };
        let mut cfg = SimulatorConfig::new(([127, 0, 0, 1], 9).into(), account.as_str());
        cfg.payload = SimPayload::ContactId(event);
        let seq = seq_for(i);
        let frame = build_frame(&cfg, &seq, jiff::Timestamp::now(), &mut rand::rng());
        let key = format!("d{tag}{account}-{i}");
        {
            let mut l = ledger.inner.lock().unwrap();
            l.dc09.insert(message_of(&frame), key.clone());
            l.sent.insert(key.clone());
        }
        let give_up = Instant::now() + Duration::from_secs(150);
        let mut sends = 0;
        while Instant::now() < give_up {
            let Some((sock, dec)) = conn.as_mut() else {
                match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(to)).await {
                    Ok(Ok(s)) => conn = Some((s, FrameDecoder::new(8192))),
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                continue;
            };
            if sock.write_all(&frame).await.is_err() {
                conn = None;
                continue;
            }
            sends += 1;
            if sends == 2 {
                ledger.resent(&key);
            }
            match read_frame(sock, dec).await {
                Some(answer) => match Frame::decode(&answer) {
                    Ok((a, _)) if a.header.token == Token::Ack && a.header.seq == seq => {
                        ledger.accept(&key);
                        break;
                    }
                    _ => {
                        ledger.inner.lock().unwrap().refused += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                None => conn = None,
            }
        }
    }
}

/// The devices of one scenario: MQTT connections and DC-09 panels, running until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    mqtt: Vec<MqttDevice>,
    panels: Vec<JoinHandle<()>>,
}

/// DC-09 accounts the receiver serves. A load uses three (one panel each); the corrupt-journal
/// scenario's second load uses the other three, because a DC-09 device is its account and an
/// alert opened before the corruption is (by design) not known to the fresh journal.
const ACCOUNTS: [&str; 6] = ["4001", "4002", "4003", "4004", "4005", "4006"];

impl Load {
    /// Two MQTT devices at 40 messages/s each and three panels at 20 frames/s each. `tag` keeps
    /// keys (and so devices, and so incidents) of a second load in one scenario apart.
    async fn start(w: &World, tag: &str, accounts: &[&str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut mqtt = Vec::new();
        for n in 0..2 {
            let id = format!("{tag}{n}");
            mqtt.push(
                MqttDevice::start(w.broker.port, id, 40, w.ledger.clone(), stop.clone()).await,
            );
        }
        let panels = accounts
            .iter()
            .map(|a| {
                tokio::spawn(panel(
                    w.dc09,
                    (*a).to_owned(),
                    tag.to_owned(),
                    20,
                    w.ledger.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Load { stop, mqtt, panels }
    }

    /// Stops producing, then lets every device finish what it started: MQTT publishes until the
    /// broker acknowledged them, panels until their last frame is ACKed.
    async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.mqtt.iter().any(|d| d.pending() > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for p in self.panels.drain(..) {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left.max(Duration::from_secs(5)), p).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sinks' side
// ---------------------------------------------------------------------------------------------

/// The carers' webhook: records every request and answers with a settable status; can be taken
/// down (connection refused) and brought back on the same port.
struct Hook {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// (webhook-id, status answered, body).
    got: Arc<Mutex<Vec<(String, u16, Value)>>>,
    server: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Hook {
    async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut h = Hook {
            addr: listener.local_addr().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            got: Arc::default(),
            server: None,
        };
        h.serve(listener);
        h
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode};
        let (status, got) = (self.status.clone(), self.got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (status, got) = (status.clone(), got.clone());
                async move {
                    let answered = status.load(Ordering::SeqCst);
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let json = serde_json::from_slice(&body).unwrap_or_default();
                    got.lock().unwrap().push((id, answered, json));
                    StatusCode::from_u16(answered).unwrap_or(StatusCode::OK)
                }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        self.server = Some((tx, task));
    }

    /// Stops listening and closes its connections: atgw now sees "connection refused".
    async fn down(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Listens again on the same address.
    async fn up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.set_reuseaddr(true).unwrap();
            match s.bind(self.addr).and_then(|()| s.listen(128)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("webhook receiver: rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Event ids answered 2xx, with their bodies.
    fn delivered(&self) -> Vec<(String, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s < 300)
            .map(|(id, _, v)| (id.clone(), v.clone()))
            .collect()
    }

    fn refused_answers(&self) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s >= 300)
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// One scenario's world
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Setup {
    /// The upstream sink on its own broker (so it can be down while devices still publish).
    separate_upstream: bool,
    /// `data_dir` on a tmpfs of this many MiB.
    tmpfs_mib: Option<u32>,
    /// Appended to the config (`[[device]]`, `[[policy]]`).
    extra_config: &'static str,
    /// The file sink writes into `data_dir` (so it shares the journal's disk) instead of beside it.
    audit_in_data_dir: bool,
    /// The local API, for `/readyz` and `/metrics`.
    api: bool,
}

/// A tmpfs mounted for one test; unmounted when dropped.
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn mount(at: &Path, mib: u32) -> Result<TmpfsMount, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0750"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(TmpfsMount(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Fields drop in order: the daemon first, then brokers and receivers, the mount, the directory.
struct World {
    gw: Gateway,
    hook: Hook,
    upstream: Upstream,
    broker: Mosquitto,
    up_broker: Option<Mosquitto>,
    ledger: Arc<Ledger>,
    dc09: SocketAddr,
    /// The file sink's JSON lines.
    audit: PathBuf,
    started: Instant,
    /// The local API's root URL and token, when the setup asked for it.
    api: Option<(String, String)>,
    /// Held for its `Drop` (unmount after the daemon is gone).
    _mount: Option<TmpfsMount>,
    dir: tempfile::TempDir,
}

fn gateway_config(
    dir: &Path,
    ingress_port: u16,
    upstream_port: u16,
    dc09: SocketAddr,
    hook_url: &str,
    audit: &Path,
    extra: &str,
) -> String {
    let accounts: Vec<String> = ACCOUNTS
        .iter()
        .map(|a| format!("{{ account = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"
timezone = "Europe/London"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = {ingress_port}
topics = ["zigbee2mqtt/#", "dusun_pub"]
profiles = {PROFILES}
reconnect_min = "100ms"
reconnect_max = "1s"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "{dc09}"
accounts = [{accounts}]
# All panels share 127.0.0.1; retransmissions keep their first timestamp, so the window is wide.
per_peer_frames_per_sec = 1000000
per_peer_connections = 64
max_timestamp_age = "1h"

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = {upstream_port}
topic_prefix = "atgw/oakview"
reconnect_min = "100ms"
reconnect_max = "1s"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"
{hook}
[[route]]
name = "carers"
sinks = ["carers"]

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["carers"]
{extra}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        audit = audit.display(),
        accounts = accounts.join(", "),
        hook = webhook_sink(dir, "carers", hook_url),
    )
}

impl World {
    /// Brokers, receivers, then the daemon; returns once it has subscribed. `Err` only when
    /// the requested tmpfs cannot be mounted here.
    async fn start(setup: Setup) -> Result<World, String> {
        let dir = tempfile::tempdir().unwrap();
        let mount = match setup.tmpfs_mib {
            Some(mib) => Some(TmpfsMount::mount(&dir.path().join("state"), mib)?),
            None => None,
        };
        let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
        let up_broker = setup
            .separate_upstream
            .then(|| Mosquitto::start(&dir.path().join("upstream-broker"), "").unwrap());
        let up_port = up_broker.as_ref().map_or(broker.port, |b| b.port);
        let upstream = Upstream::start(up_port, "atgw/oakview/#").await;
        let hook = Hook::start().await;
        let dc09 = SocketAddr::from(([127, 0, 0, 1], atgw::tools::mosquitto::free_port().unwrap()));
        let audit = match setup.audit_in_data_dir {
            true => dir.path().join("state/events.jsonl"),
            false => dir.path().join("events.jsonl"),
        };
        let (api_config, api) = match setup.api {
            true => {
                let (block, base, token) = api_block(dir.path());
                let root = base.trim_end_matches("/api/v1").to_owned();
                (block, Some((root, token)))
            }
            false => (String::new(), None),
        };
        let text = gateway_config(
            dir.path(),
            broker.port,
            up_port,
            dc09,
            &hook.url(),
            &audit,
            &format!("{}{api_config}", setup.extra_config),
        );
        let gw = tokio::task::block_in_place(|| Gateway::start(dir.path(), &text));
        gw.wait_subscribed().await;
        Ok(World {
            gw,
            hook,
            upstream,
            broker,
            up_broker,
            ledger: Arc::default(),
            dc09,
            audit,
            started: Instant::now(),
            api,
            _mount: mount,
            dir,
        })
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.path().join("state/atgw.db")
    }

    fn restart_gateway(&mut self) {
        tokio::task::block_in_place(|| self.gw.restart());
    }

    fn log_tail(&self) -> String {
        let log = self.gw.log_text();
        let start = log.len().saturating_sub(6_000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        log[start..].to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Loss accounting
// ---------------------------------------------------------------------------------------------

/// What the journal holds, by the devices' keys.
#[derive(Default, Clone)]
struct JournalView {
    /// Device key → event ids journaled for it.
    by_key: HashMap<String, Vec<String>>,
    /// Alert id → (device id`#`component, kind), from the `alerts` table.
    alerts: HashMap<String, (String, String)>,
    /// Event ids of `raised` lifecycle events (reason "raised"), with their alert id.
    raised: HashMap<String, String>,
    /// Malformed message key → dead letters holding it.
    dead: HashMap<String, usize>,
}

fn scan_journal(db: &Path, ledger: &Ledger) -> JournalView {
    let mut view = JournalView::default();
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return view;
    };
    let _ = c.busy_timeout(Duration::from_secs(5));
    let rows: Vec<(String, String, String)> = c
        .prepare("SELECT id, source, json FROM events")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    for (id, source, json) in rows {
        let Ok(v) = serde_json::from_str::<Value>(&json) else {
            continue;
        };
        let key = match source.as_str() {
            MQTT_SOURCE => v["data"]["raw"]["payload"]["seq"]
                .as_str()
                .map(str::to_owned),
            DC09_SOURCE => v["data"]["raw"]["payload"]
                .as_str()
                .and_then(|m| ledger.dc09_key(m)),
            ALERTS_SOURCE => {
                if is_first_raise(&v) {
                    let alert = v["correlationid"].as_str().unwrap_or_default();
                    view.raised.insert(id.clone(), alert.to_owned());
                }
                None
            }
            _ => None,
        };
        if let Some(key) = key {
            view.by_key.entry(key).or_default().push(id);
        }
    }
    let raws: Vec<Vec<u8>> = c
        .prepare("SELECT raw FROM dead_letters")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    for raw in raws {
        let text = String::from_utf8_lossy(&raw);
        if let Some(key) = text
            .strip_prefix(r#"{"seq":""#)
            .and_then(|t| t.split('"').next())
        {
            *view.dead.entry(key.to_owned()).or_default() += 1;
        }
    }
    view.alerts = c
        // An alert's identity is (device, component, kind): a panel's zones are separate.
        .prepare("SELECT id, device_id || coalesce('#' || component, ''), kind FROM alerts")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    view
}

/// An alert's first `raised` notification (not a repeat, escalation or upgrade).
fn is_first_raise(e: &Value) -> bool {
    e["type"] == "atgw.alert.raised" && e["data"]["alert"]["reason"] == "raised"
}

/// Event ids as one sink received them, with how often.
fn id_counts<'a>(events: impl IntoIterator<Item = &'a Value>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in events {
        if let Some(id) = e["id"].as_str() {
            *m.entry(id.to_owned()).or_default() += 1;
        }
    }
    m
}

/// Lines of the file sink's output that are not JSON (torn or glued together).
fn audit_garbled(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .count()
}

/// The file sink's lines (a line torn by kill -9 is skipped: its row was not released, so it
/// is written again).
fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[derive(Default, Debug)]
struct Accounting {
    /// Accepted messages that became events (malformed ones are counted in `dead_lettered`).
    accepted: usize,
    /// Accepted malformed messages found (once) in `dead_letters`.
    dead_lettered: usize,
    journaled: usize,
    delivered: usize,
    /// Accepted keys not journaled, or journaled and not delivered to every stream sink.
    lost: Vec<String>,
    alerts: usize,
    /// Alerts whose `raised` event did not reach the carers' webhook and upstream.
    alerts_unpaged: Vec<String>,
    dup_alerts: usize,
    dup_alert_detail: Vec<String>,
    redeliveries: usize,
    /// Keys journaled (or dead-lettered) more than once although the device sent them once.
    dup_rows: Vec<String>,
}

/// Accounts for every accepted key. `earlier` is what a previous journal held (the corrupt
/// scenario's first phase, verified before the file was damaged).
fn account(w: &World, earlier: &JournalView) -> Accounting {
    let accepted = w.ledger.accepted();
    let resent = w.ledger.resent_keys();
    let mut j = scan_journal(&w.journal_path(), &w.ledger);
    for (k, ids) in &earlier.by_key {
        j.by_key.entry(k.clone()).or_default().extend(ids.clone());
    }
    for (k, n) in &earlier.dead {
        *j.dead.entry(k.clone()).or_default() += n;
    }
    j.raised.extend(earlier.raised.clone());
    let upstream = w.upstream.events();
    let audit = audit_events(&w.audit);
    let hook = w.hook.delivered();
    let up_ids = id_counts(&upstream);
    let audit_ids = id_counts(&audit);
    let mut hook_ids: HashMap<String, usize> = HashMap::new();
    for (id, _) in &hook {
        *hook_ids.entry(id.clone()).or_default() += 1;
    }

    let malformed = w.ledger.malformed();
    let mut a = Accounting {
        alerts: j.alerts.len(),
        ..Default::default()
    };
    for key in accepted.iter().filter(|k| malformed.contains(*k)) {
        match j.dead.get(key).copied().unwrap_or(0) {
            0 => a.lost.push(format!("{key}: malformed, not dead-lettered")),
            1 => a.dead_lettered += 1,
            n => a.dup_rows.push(format!("{key}: {n} dead letters")),
        }
    }
    for key in accepted.iter().filter(|k| !malformed.contains(*k)) {
        a.accepted += 1;
        let Some(ids) = j.by_key.get(key) else {
            a.lost.push(format!("{key}: not journaled"));
            continue;
        };
        a.journaled += 1;
        // A DC-09 retransmission is the same frame, which the receiver must recognise: one
        // row whatever the panel resent. An MQTT device's replay after a reconnect is a new
        // QoS 1 message to the broker, so it may be journaled again.
        let may_repeat = resent.contains(key) && !key.starts_with('d');
        if ids.len() > 1 && !may_repeat {
            a.dup_rows.push(format!("{key}: {} rows", ids.len()));
        }
        // Delivered means every row journaled for it reached both stream sinks.
        if ids
            .iter()
            .all(|id| up_ids.contains_key(id) && audit_ids.contains_key(id))
        {
            a.delivered += 1;
        } else {
            let up = ids.iter().all(|id| up_ids.contains_key(id));
            let file = ids.iter().all(|id| audit_ids.contains_key(id));
            a.lost
                .push(format!("{key}: journaled, upstream={up}, file={file}"));
        }
    }

    // Every alert pages the carers once it is raised; one alert per incident.
    let raised_by_alert: HashMap<&str, &str> = j
        .raised
        .iter()
        .map(|(event, alert)| (alert.as_str(), event.as_str()))
        .collect();
    for alert in j.alerts.keys() {
        let paged = raised_by_alert
            .get(alert.as_str())
            .is_some_and(|e| hook_ids.contains_key(*e) && up_ids.contains_key(*e));
        if !paged {
            a.alerts_unpaged.push(alert.clone());
        }
    }
    let mut per_incident: HashMap<(String, String), usize> = HashMap::new();
    for (device, kind) in j.alerts.values() {
        *per_incident
            .entry((device.clone(), kind.clone()))
            .or_default() += 1;
    }
    for ((device, kind), n) in &per_incident {
        if *n > 1 {
            a.dup_alerts += n - 1;
            a.dup_alert_detail
                .push(format!("{device}/{kind}: {n} alerts"));
        }
    }
    // Distinct `raised` events per alert, and per incident, as anyone received them.
    let mut raised_ids: HashMap<String, HashSet<String>> = HashMap::new();
    let mut raised_incidents: HashMap<(String, String), HashSet<String>> = HashMap::new();
    let seen = upstream
        .iter()
        .chain(audit.iter())
        .chain(hook.iter().map(|(_, v)| v))
        .filter(|e| is_first_raise(e));
    for e in seen {
        let (Some(id), Some(alert)) = (e["id"].as_str(), e["correlationid"].as_str()) else {
            continue;
        };
        raised_ids
            .entry(alert.to_owned())
            .or_default()
            .insert(id.to_owned());
        let mut device = e["data"]["device"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(c) = e["data"]["device"]["component"].as_str() {
            device = format!("{device}#{c}");
        }
        let kind = e["data"]["kind"].as_str().unwrap_or_default();
        raised_incidents
            .entry((device, kind.to_owned()))
            .or_default()
            .insert(alert.to_owned());
    }
    for (alert, ids) in &raised_ids {
        if ids.len() > 1 {
            a.dup_alerts += ids.len() - 1;
            a.dup_alert_detail
                .push(format!("alert {alert}: {} raised events", ids.len()));
        }
    }
    for ((device, kind), alerts) in &raised_incidents {
        let in_table = per_incident
            .get(&(device.clone(), kind.clone()))
            .copied()
            .unwrap_or(0);
        if alerts.len() > 1 && alerts.len() > in_table {
            a.dup_alerts += alerts.len() - in_table.max(1);
            a.dup_alert_detail.push(format!(
                "{device}/{kind}: raised under {} alert ids",
                alerts.len()
            ));
        }
    }
    a.redeliveries = [&up_ids, &audit_ids, &hook_ids]
        .iter()
        .flat_map(|m| m.values())
        .map(|n| n - 1)
        .sum();
    a.lost.sort();
    a
}

/// Waits until nothing accepted is missing from the journal or the sinks (or `SETTLE`
/// passes), and returns the final accounting.
async fn settle(w: &World, earlier: &JournalView) -> Accounting {
    let deadline = Instant::now() + SETTLE;
    loop {
        let a = tokio::task::block_in_place(|| account(w, earlier));
        let done = a.lost.is_empty() && a.alerts_unpaged.is_empty();
        if done || Instant::now() >= deadline {
            // Let a late redelivery or a (wrong) second raise arrive before the final count.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return tokio::task::block_in_place(|| account(w, earlier));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

const HEADER: &str = "scenario                  | accepted | journaled | delivered | lost | alerts | dup alerts | redeliveries | duration | notes";

fn row(scenario: &str, a: &Accounting, took: Duration, notes: &str) -> String {
    format!(
        "{scenario:<25} | {:>8} | {:>9} | {:>9} | {:>4} | {:>6} | {:>10} | {:>12} | {:>7.1}s | {} malformed dead-lettered once; {notes}",
        a.accepted,
        a.journaled,
        a.delivered,
        a.lost.len(),
        a.alerts,
        a.dup_alerts,
        a.redeliveries,
        took.as_secs_f64(),
        a.dead_lettered,
    )
}

/// Prints the row and adds it to the suite's report: one file per scenario, and the table of
/// all of them in `fault-report.txt` (`order` keeps the table in the suite's order). Rows live
/// in a folder of this run's own (by process id) and older runs' folders are removed, so a
/// scenario that panicked before its row never shows an earlier run's result.
fn report(order: u32, scenario: &str, line: &str) {
    eprintln!("\n{HEADER}\n{line}\n");
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let all = base.join("fault-report.d");
    let rows = all.join(std::process::id().to_string());
    std::fs::create_dir_all(&rows).unwrap();
    for old in std::fs::read_dir(&all).unwrap().filter_map(|e| e.ok()) {
        if old.path() != rows {
            let _ = std::fs::remove_dir_all(old.path());
            let _ = std::fs::remove_file(old.path());
        }
    }
    let slug: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let when = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ");
    std::fs::write(
        rows.join(format!("{order:02}-{slug}.row")),
        format!("{line} (finished {when})\n"),
    )
    .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rows)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "row"))
        .collect();
    files.sort();
    let mut table = format!(
        "fault injection: loss accounting (tests/fault_injection.rs; definitions in its header)\n{HEADER}\n"
    );
    for f in files {
        table.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    // Several scenarios run in parallel: write whole, then rename, so a reader never sees half.
    let tmp = base.join(format!("fault-report.txt.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(table.as_bytes()).unwrap();
    std::fs::rename(&tmp, base.join("fault-report.txt")).unwrap();
}

/// The assertions every scenario ends with.
fn assert_no_loss(scenario: &str, w: &World, a: &Accounting) {
    let (sent, accepted, resent, refused) = w.ledger.summary();
    let context = format!(
        "{scenario}: devices sent {sent}, accepted {accepted}, sent again {resent}, refused answers {refused}\n{:#?}\n--- atgw log (tail) ---\n{}",
        Accounting {
            lost: a.lost.iter().take(20).cloned().collect(),
            dup_rows: a.dup_rows.iter().take(20).cloned().collect(),
            ..Default::default()
        },
        w.log_tail()
    );
    assert!(
        a.accepted >= 500,
        "too little load to mean anything ({} accepted): {context}",
        a.accepted
    );
    assert!(a.alerts >= 5, "too few alerts to mean anything: {context}");
    assert!(
        a.lost.is_empty(),
        "{} accepted messages lost: {:?}\n{context}",
        a.lost.len(),
        &a.lost[..a.lost.len().min(20)]
    );
    assert!(
        a.alerts_unpaged.is_empty(),
        "alerts never delivered to the carers: {:?}\n{context}",
        a.alerts_unpaged
    );
    assert_eq!(
        a.dup_alerts, 0,
        "duplicate alerts: {:?}\n{context}",
        a.dup_alert_detail
    );
    assert!(
        a.dup_rows.is_empty(),
        "journaled twice though sent once: {:?}\n{context}",
        a.dup_rows
    );
}

/// Every DC-09 frame ACKed so far, with the daemon dead: all must already be in the journal
/// (nothing can commit any more, so an ACK sent before its commit shows up here).
fn acked_but_not_journaled(w: &World) -> Vec<String> {
    let accepted = w.ledger.accepted();
    let j = scan_journal(&w.journal_path(), &w.ledger);
    let mut missing: Vec<String> = accepted
        .into_iter()
        .filter(|k| k.starts_with('d') && !j.by_key.contains_key(k))
        .collect();
    missing.sort();
    missing
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_under_mixed_load_loses_no_accepted_message_and_raises_each_alert_once()
{
    let seed: u64 = std::env::var("ATGW_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill -9 schedule seed {seed} (ATGW_FAULT_SEED={seed} repeats the schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut w = World::start(Setup::default()).await.unwrap();
    let load = Load::start(&w, "k", &ACCOUNTS[..3]).await;
    let mut violations = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..1_500))).await;
        w.gw.kill9();
        violations.extend(tokio::task::block_in_place(|| acked_but_not_journaled(&w)));
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        w.restart_gateway();
    }
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    let took = w.started.elapsed();
    let (_, _, resent, _) = w.ledger.summary();
    report(
        1,
        "kill -9 x20",
        &row(
            "kill -9 x20",
            &a,
            took,
            &format!("seed {seed}; {resent} messages sent again by devices"),
        ),
    );
    assert!(
        violations.is_empty(),
        "DC-09 frames ACKed but not journaled when the daemon died: {violations:?}"
    );
    assert_no_loss("kill -9 x20", &w, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_broker_stopped_and_started_twice_under_load_loses_nothing() {
    let mut w = World::start(Setup::default()).await.unwrap();
    let load = Load::start(&w, "b", &ACCOUNTS[..3]).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| w.broker.stop());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        tokio::task::block_in_place(|| w.broker.restart()).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    let (_, _, resent, _) = w.ledger.summary();
    report(
        2,
        "broker stop/start x2",
        &row(
            "broker stop/start x2",
            &a,
            w.started.elapsed(),
            &format!("ingress and upstream on the stopped broker; {resent} sent again"),
        ),
    );
    assert!(
        w.gw.log_text().contains("broker connection lost"),
        "the outage was noticed"
    );
    assert_no_loss("broker stop/start", &w, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_outages_webhook_500_then_refused_and_upstream_broker_down_lose_nothing() {
    let mut w = World::start(Setup {
        separate_upstream: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let load = Load::start(&w, "s", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Refused first (its failure is the first one logged), then up but answering 500.
    w.hook.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.hook.status.store(500, Ordering::SeqCst);
    w.hook.up().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.hook.status.store(200, Ordering::SeqCst);
    let up_broker = w.up_broker.as_mut().expect("separate upstream broker");
    tokio::task::block_in_place(|| up_broker.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| up_broker.restart()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    let refused = w.hook.refused_answers();
    report(
        3,
        "sink outages",
        &row(
            "sink outages",
            &a,
            w.started.elapsed(),
            &format!(
                "webhook refused connections 3s, then 500 for 3s ({refused} requests); upstream broker down 3s"
            ),
        ),
    );
    assert!(refused > 0, "the webhook's 500 phase was exercised");
    assert!(
        w.gw.log_text()
            .contains("webhook delivery failed, will retry: cannot connect"),
        "the webhook's refused phase was exercised:\n{}",
        w.log_tail()
    );
    assert!(
        w.gw.log_text().contains("upstream broker connection lost"),
        "the upstream broker outage was noticed"
    );
    assert_no_loss("sink outages", &w, &a);
}

/// The gateway's own alerts about its sinks (`sink:<name>`), raised ones.
fn sink_alerts_raised(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM events WHERE kind = 'device_fault' AND phase = 'raised'
                 AND json_extract(json, '$.source') = 'urn:atgw:gw-test:gateway'
                 AND json_extract(json, '$.data.device.id') LIKE 'sink:%'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(-1)
}

/// A short `sink_failing_alert_after`, so a quiet period longer than it fits in a test.
const SINK_ALERT_AFTER_2S: &str = "\n[alerts]\nsink_failing_alert_after = \"2s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_period_longer_than_the_sink_alert_threshold_then_alarms_raises_no_gateway_alert() {
    let w = World::start(Setup {
        extra_config: SINK_ALERT_AFTER_2S,
        ..Default::default()
    })
    .await
    .unwrap();
    // Nothing to deliver for twice the threshold, then the mixed load, twice (on other panels
    // the second time: a panel that starts again starts its sequence numbers again).
    for (round, accounts) in [("q", &ACCOUNTS[..3]), ("q2-", &ACCOUNTS[3..])] {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let load = Load::start(&w, round, accounts).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        load.finish().await;
    }
    let a = settle(&w, &JournalView::default()).await;
    let false_alerts = sink_alerts_raised(&w.journal_path());
    let error_lines = w.gw.log_text().matches(" ERROR ").count();
    report(
        6,
        "quiet period then alarm",
        &row(
            "quiet period then alarm",
            &a,
            w.started.elapsed(),
            &format!(
                "2 x (4s with nothing to deliver, sink_failing_alert_after 2s, then 3s of load): \
                 {false_alerts} false gateway alerts, {error_lines} ERROR lines"
            ),
        ),
    );
    assert_eq!(
        false_alerts,
        0,
        "a quiet period raised gateway sink alerts:\n{}",
        w.log_tail()
    );
    assert_eq!(error_lines, 0, "errors logged:\n{}", w.log_tail());
    assert_no_loss("quiet period then alarm", &w, &a);
}

/// `device_offline` alerts of the silent panel.
fn silent_panel_alerts(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM alerts WHERE device_id = 'silent-panel' AND kind = 'device_offline'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// Fills `path`'s filesystem by appending to one file; returns the bytes written.
fn fill_filesystem(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    for size in [1 << 20, 64 << 10, 4 << 10, 512] {
        while let Ok(n) = f.write(&chunk[..size]) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
    }
    let _ = f.sync_all();
    written
}

impl World {
    /// `/readyz`: its HTTP status and whether it reports the journal ready.
    async fn journal_ready(&self) -> (u16, bool) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (root, _) = self.api.as_ref().expect("a setup with the API");
        let resp = reqwest::get(format!("{root}/readyz")).await.unwrap();
        let status = resp.status().as_u16();
        let report: Value = resp.json().await.unwrap_or_default();
        (status, report["components"]["journal"]["ready"] == true)
    }

    /// `atgw_journal_commit_failures_total` on `/metrics`.
    async fn commit_failures(&self) -> u64 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (root, token) = self.api.as_ref().expect("a setup with the API");
        let text = reqwest::Client::new()
            .get(format!("{root}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("atgw_journal_commit_failures_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// The answer's token to one frame from `account` on a fresh connection (`None`: no answer).
async fn dc09_answer(to: SocketAddr, account: &str, n: u64) -> Option<Token> {
    let mut cfg = SimulatorConfig::new(([127, 0, 0, 1], 9).into(), account);
    cfg.payload = SimPayload::ContactId("1602 00 000".into());
    let frame = build_frame(&cfg, &seq_for(n), jiff::Timestamp::now(), &mut rand::rng());
    let mut sock = TcpStream::connect(to).await.ok()?;
    sock.write_all(&frame).await.ok()?;
    let answer = read_frame(&mut sock, &mut FrameDecoder::new(8192)).await?;
    Frame::decode(&answer).ok().map(|(f, _)| f.header.token)
}

/// The gateway's alerts about the journal (raised ones): their `codes.vendor`.
fn journal_outage_alerts(db: &Path) -> Vec<String> {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut s) = c.prepare(
        "SELECT json_extract(json, '$.data.codes.vendor') FROM events
         WHERE json_extract(json, '$.data.device.id') = 'gateway:gw-test:journal'
         AND json_extract(json, '$.source') = 'urn:atgw:gw-test:gateway' AND phase = 'raised'",
    ) else {
        return Vec::new();
    };
    s.query_map([], |r| r.get::<_, Option<String>>(0))
        .map(|rows| rows.filter_map(|r| r.ok().flatten()).collect())
        .unwrap_or_default()
}

/// A supervised panel that never reports: its `device_offline` falls due while the disk is full.
const SILENT_PANEL: &str = r#"
[[device]]
id = "silent-panel"
adapter = "alarms"
match = { account = "4009" }
location = { area = "north", room = "9" }
check_in = "5s"

[[policy]]
name = "supervision"
match = { kind = ["device_offline"] }
notify = ["carers"]
"#;
/// Its check-in interval.
const SILENT_PANEL_CHECK_IN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_withholds_acks_keeps_running_and_recovers_without_loss_when_space_returns() {
    let mut w = match World::start(Setup {
        tmpfs_mib: Some(64),
        extra_config: SILENT_PANEL,
        audit_in_data_dir: true,
        api: true,
        ..Default::default()
    })
    .await
    {
        Ok(w) => w,
        Err(e) if std::env::var_os("CI").is_none() => {
            // Mounting needs root (CAP_SYS_ADMIN); CI runs as root and must run this.
            eprintln!("SKIPPED disk-full scenario: cannot mount a tmpfs here ({e})");
            report(
                4,
                "disk full (tmpfs)",
                &format!(
                    "{:<25} | skipped: cannot mount a tmpfs ({e})",
                    "disk full (tmpfs)"
                ),
            );
            return;
        }
        Err(e) => panic!("the disk-full scenario mounts a tmpfs and could not: {e}"),
    };
    let load = Load::start(&w, "f", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failures_before = w.gw.log_text().matches("journal commit failed").count();
    let ballast = w.dir.path().join("state/ballast");
    let mut filled = fill_filesystem(&ballast);
    let full_at = Instant::now();
    // Wait until the journal hits the wall, then keep the disk full a while longer, taking
    // back whatever space frees up (as the other writer that filled it would).
    let hit = wait_until_async(Duration::from_secs(30), || {
        filled += fill_filesystem(&ballast);
        w.gw.log_text().matches("journal commit failed").count() > failures_before
    })
    .await;
    let dc09_acked = |w: &World| {
        w.ledger
            .accepted()
            .iter()
            .filter(|k| k.starts_with('d'))
            .count()
    };
    let (acked_at_wall, resent_at_wall) = (dc09_acked(&w), w.ledger.summary().2);
    // While commits fail: the journal is not ready, and a transmitter hears a NAK, not silence.
    // (Now and then a commit fits into space the WAL already holds, so both are probed until
    // seen; an ACK a probe gets then is for a committed frame.)
    let mut ready_while_full = w.journal_ready().await;
    let mut answers_while_full = vec![dc09_answer(w.dc09, ACCOUNTS[5], 0).await];
    let mut violations = std::collections::BTreeSet::new();
    let mut probes = 0;
    // Held at least 4 s, and past the silent panel's missed check-in.
    let hold_until = (Instant::now() + Duration::from_secs(4))
        .max(w.started + SILENT_PANEL_CHECK_IN + Duration::from_millis(1_500));
    let due_while_full = full_at < w.started + SILENT_PANEL_CHECK_IN;
    while Instant::now() < hold_until {
        filled += fill_filesystem(&ballast);
        if ready_while_full != (503, false) {
            ready_while_full = w.journal_ready().await;
        }
        if !answers_while_full.contains(&Some(Token::Nak)) {
            let n = answers_while_full.len() as u64;
            answers_while_full.push(dc09_answer(w.dc09, ACCOUNTS[5], n).await);
        }
        // Whatever a panel was ACKed must be committed, full disk or not.
        violations.extend(tokio::task::block_in_place(|| {
            let acked = w.ledger.accepted();
            let j = scan_journal(&w.journal_path(), &w.ledger);
            acked
                .into_iter()
                .filter(|k| k.starts_with('d') && !j.by_key.contains_key(k))
                .collect::<Vec<_>>()
        }));
        probes += 1;
        assert!(
            w.gw.is_running(),
            "atgw exited on a full disk:\n{}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let acked_while_full = dc09_acked(&w) - acked_at_wall;
    let resent_while_full = w.ledger.summary().2 - resent_at_wall;
    let failures = w.gw.log_text().matches("journal commit failed").count() - failures_before;
    let failed_batches = w.commit_failures().await;
    std::fs::remove_file(&ballast).unwrap();
    let full_for = full_at.elapsed();
    let ready_again = wait_until_async(Duration::from_secs(20), || {
        !journal_outage_alerts(&w.journal_path()).is_empty()
    })
    .await;
    let outage_alerts = journal_outage_alerts(&w.journal_path());
    let ready_after = w.journal_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.finish().await;
    let a = settle(&w, &JournalView::default()).await;
    assert!(w.gw.is_running(), "atgw exited:\n{}", w.log_tail());
    // The check-in the silent panel missed while the disk was full still raises, once.
    let offline = wait_until_async(Duration::from_secs(10), || {
        silent_panel_alerts(&w.journal_path()) > 0
    })
    .await;
    let offline_alerts = silent_panel_alerts(&w.journal_path());

    // The journal survived: a clean stop, an intact file, and a restart that keeps it.
    let status = tokio::task::block_in_place(|| w.gw.terminate());
    let integrity: String = rusqlite::Connection::open_with_flags(
        w.journal_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    .unwrap_or_else(|e| e.to_string());
    w.restart_gateway();
    let moved_aside = w.gw.log_text().contains("journal was corrupt");
    let notes = format!(
        "tmpfs 64 MiB, full for {:.1}s ({} MiB ballast): {failed_batches} commits failed (ENOSPC), \
         {failures} log lines; /readyz while full {ready_while_full:?}, after {ready_after:?}; \
         probe frames got {answers_while_full:?}; in the \
         4s held full {acked_while_full} DC-09 ACKs ({} not journaled at the time) and \
         {resent_while_full} frames retransmitted for lack of one; after: {status}, \
         integrity_check {integrity}, reopened as is; check-in missed while full: \
         {offline_alerts} device_offline alert; audit file (same disk): {} garbled lines",
        full_for.as_secs_f64(),
        filled >> 20,
        violations.len(),
        audit_garbled(&w.audit),
    );
    report(
        4,
        "disk full (tmpfs)",
        &row("disk full (tmpfs)", &a, w.started.elapsed(), &notes),
    );
    assert!(
        hit.is_ok(),
        "the journal never hit the full disk ({filled} bytes of ballast):\n{}",
        w.log_tail()
    );
    assert!(probes > 0);
    assert_eq!(
        ready_while_full,
        (503, false),
        "/readyz reports the journal not ready while commits fail"
    );
    assert!(
        answers_while_full.contains(&Some(Token::Nak))
            && answers_while_full
                .iter()
                .all(|a| matches!(a, Some(Token::Nak | Token::Ack))),
        "a DC-09 frame that cannot be committed gets a NAK, never silence: {answers_while_full:?}"
    );
    assert!(
        failed_batches >= 5 && failures * 5 <= failed_batches as usize,
        "{failed_batches} failed commits counted, {failures} `journal commit failed` log lines: \
         the log is rate-limited and the counter counts them all"
    );
    assert!(
        ready_again.is_ok() && outage_alerts.len() == 1,
        "one gateway alert about the outage once commits succeed: {outage_alerts:?}\n{}",
        w.log_tail()
    );
    assert!(
        outage_alerts[0].starts_with("journal commits failed for ")
            && outage_alerts[0].contains("batches refused"),
        "{outage_alerts:?}"
    );
    assert!(
        ready_after.1,
        "the journal is ready again once commits succeed"
    );
    assert!(
        due_while_full,
        "the silent panel's check-in fell due before the disk was full; the test timing is off"
    );
    assert!(
        offline.is_ok() && offline_alerts == 1,
        "a check-in missed while the disk was full raised {offline_alerts} device_offline alerts \
         once space returned (want 1):\n{}",
        w.log_tail()
    );
    assert!(
        violations.is_empty(),
        "DC-09 frames ACKed while the disk was full but not journaled: {violations:?}"
    );
    assert!(
        status.success(),
        "atgw stopped cleanly after the disk-full episode: {status}"
    );
    assert_eq!(
        integrity, "ok",
        "the journal is intact after the disk-full episode"
    );
    assert!(
        !moved_aside,
        "the journal was not taken for corrupt after the episode"
    );
    assert_no_loss("disk full", &w, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_corrupted_while_stopped_is_moved_aside_alerted_and_devices_flow_on_a_fresh_one()
{
    let mut w = World::start(Setup::default()).await.unwrap();
    let load = Load::start(&w, "c", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    load.finish().await;
    let first = settle(&w, &JournalView::default()).await;
    assert!(
        first.lost.is_empty(),
        "before the corruption: {:?}",
        first.lost
    );
    let before = tokio::task::block_in_place(|| scan_journal(&w.journal_path(), &w.ledger));
    let status = tokio::task::block_in_place(|| w.gw.terminate());
    assert!(status.success());

    // Overwrite eight pages in the middle of the file (the header page stays intact, so it
    // still opens as a database; the damage is inside its b-trees).
    let path = w.journal_path();
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / 4096;
    assert!(
        pages >= 32,
        "a journal of {pages} pages is too small to damage in the middle"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0bad_f11e);
    for b in &mut bytes[(pages / 2) * 4096..(pages / 2 + 8) * 4096] {
        *b = rng.random();
    }
    std::fs::write(&path, &bytes).unwrap();

    w.restart_gateway();
    let kept: Vec<String> = std::fs::read_dir(w.dir.path().join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("atgw.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .collect();
    let fault = wait_until_async(Duration::from_secs(20), || {
        w.upstream.events().iter().any(|e| {
            e["source"] == "urn:atgw:gw-test:gateway" && e["data"]["kind"] == "device_fault"
        })
    })
    .await;
    // The event says what happened and where the file is; the quick_check dump stays in the
    // log, on one line (escaped and capped), and in the file itself.
    for e in w.upstream.events().iter().filter(|e| {
        e["source"] == "urn:atgw:gw-test:gateway" && e["data"]["kind"] == "device_fault"
    }) {
        let vendor = e["data"]["codes"]["vendor"].as_str().unwrap_or("");
        assert!(
            vendor.len() < 200 && vendor.contains("moved aside to"),
            "codes.vendor is {} bytes: {vendor:?}",
            vendor.len()
        );
    }
    let log = w.gw.log_text();
    let corrupt_lines: Vec<&str> = log.lines().filter(|l| l.contains("quick_check")).collect();
    assert_eq!(
        corrupt_lines.len(),
        1,
        "one line for the corrupt journal:\n{log}"
    );
    assert!(corrupt_lines[0].len() < 3 * 1024, "{}", corrupt_lines[0]);
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[10] == b'T',
            "a log line that is not an event of its own: {line:?}"
        );
    }
    w.gw.wait_subscribed().await;
    let load = Load::start(&w, "c2-", &ACCOUNTS[3..]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    load.finish().await;
    let a = settle(&w, &before).await;
    report(
        5,
        "corrupt journal",
        &row(
            "corrupt journal",
            &a,
            w.started.elapsed(),
            &format!(
                "8 pages of {pages} overwritten while stopped; moved aside: {kept:?}; {} messages \
                 before it counted from the old journal (verified before the damage)",
                first.accepted
            ),
        ),
    );
    assert_eq!(kept.len(), 1, "the corrupt journal is kept for inspection");
    assert!(
        fault.is_ok(),
        "no gateway device_fault event upstream:\n{}",
        w.log_tail()
    );
    assert!(
        a.accepted > first.accepted + 500,
        "devices flowed after the restart"
    );
    assert_no_loss("corrupt journal", &w, &a);
}

/// Opens `n` idle TCP connections to `to` from 127.0.0.10-250 (under the per-address budget)
/// and re-opens each one 1-2 s after the daemon closes it, until `stop`. Returns how many
/// connections the daemon closed.
fn idle_connections(
    to: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<JoinHandle<()>>, Arc<std::sync::atomic::AtomicUsize>) {
    let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = (0..n)
        .map(|i| {
            let (stop, closed) = (stop.clone(), closed.clone());
            let from = std::net::Ipv4Addr::new(127, 0, 0, 10 + (i % 241) as u8);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sock = tokio::net::TcpSocket::new_v4()
                        .and_then(|s| s.bind((from, 0).into()).map(|_| s));
                    let Ok(sock) = sock else { return };
                    let Ok(mut s) = sock.connect(to).await else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    };
                    let mut buf = [0u8; 64];
                    loop {
                        tokio::select! {
                            r = s.read(&mut buf) => match r {
                                Ok(k) if k > 0 => continue,
                                _ => break,
                            },
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                if stop.load(Ordering::Relaxed) {
                                    return;
                                }
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::Relaxed);
                    let pause = 1000 + (i as u64 * 37) % 1000;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            })
        })
        .collect();
    (tasks, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_held_under_load_lose_nothing() {
    let w = World::start(Setup::default()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // The attackers first (they fill max_connections), then the transmitters.
    let (idle, closed) = idle_connections(w.dc09, 1000, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let load = Load::start(&w, "i", &ACCOUNTS[..3]).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    load.finish().await;
    stop.store(true, Ordering::Relaxed);
    for t in idle {
        let _ = t.await;
    }
    let a = settle(&w, &JournalView::default()).await;
    let (_, _, resent, _) = w.ledger.summary();
    report(
        6,
        "1,000 idle connections",
        &row(
            "1,000 idle connections",
            &a,
            w.started.elapsed(),
            &format!(
                "1,000 idle TCP connections from 241 addresses held, re-opened when closed ({} \
                 closed by the daemon); {resent} sent again",
                closed.load(Ordering::Relaxed)
            ),
        ),
    );
    // Loss accounting counts accepted frames only; here every frame must also be accepted: a
    // panel refused for the whole run would lose nothing "accepted" and still be unheard.
    let (dc09_sent, dc09_acked) = {
        let l = w.ledger.inner.lock().unwrap();
        let sent: Vec<&String> = l.sent.iter().filter(|k| k.starts_with("di")).collect();
        let acked = sent.iter().filter(|k| l.accepted.contains(**k)).count();
        (sent.len(), acked)
    };
    assert!(dc09_sent > 300, "the panels kept sending: {dc09_sent}");
    assert_eq!(
        dc09_acked, dc09_sent,
        "every frame the panels sent was ACKed while 1,000 idle connections were held"
    );
    assert_no_loss("1,000 idle connections", &w, &a);
}
