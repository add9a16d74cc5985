//! The devices' side of the fault-injection suite: MQTT devices and DC-09 panels under load,
//! and the [`Ledger`] of what each sent and which messages its protocol accepted (PUBACK, ACK).
//! Also the odd one-frame probe (`dc09_answer`) and the idle-connection flood.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::frame::{Frame, Token};
use atgw_sia_dc09::simulator::{SimPayload, SimulatorConfig, build_frame, seq_for};
use rumqttc::{AsyncClient, MqttOptions, Outgoing, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::common::Subscriber;
use super::world::World;

/// How long a panel waits for an answer before it sends the same frame again.
pub(crate) const DC09_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Every message the devices sent, by stable key, and which ones their protocol accepted.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) inner: Mutex<LedgerInner>,
}

#[derive(Default)]
pub(crate) struct LedgerInner {
    pub(crate) sent: HashSet<String>,
    pub(crate) accepted: HashSet<String>,
    /// Sent more than once by the device (MQTT replay after a reconnect, DC-09 retransmission).
    pub(crate) resent: HashSet<String>,
    /// Keys of malformed messages: they belong in `dead_letters`, not in `events`.
    pub(crate) malformed: HashSet<String>,
    /// DC-09 message text → key.
    pub(crate) dc09: HashMap<String, String>,
    /// DC-09 answers other than ACK (NAK, DUH).
    pub(crate) refused: u64,
}

impl Ledger {
    pub(crate) fn sent(&self, key: &str) {
        self.inner.lock().unwrap().sent.insert(key.to_owned());
    }
    pub(crate) fn accept(&self, key: &str) {
        self.inner.lock().unwrap().accepted.insert(key.to_owned());
    }
    pub(crate) fn resent(&self, key: &str) {
        self.inner.lock().unwrap().resent.insert(key.to_owned());
    }
    pub(crate) fn accepted(&self) -> HashSet<String> {
        self.inner.lock().unwrap().accepted.clone()
    }
    pub(crate) fn sent_keys(&self) -> HashSet<String> {
        self.inner.lock().unwrap().sent.clone()
    }
    pub(crate) fn malformed(&self) -> HashSet<String> {
        self.inner.lock().unwrap().malformed.clone()
    }
    pub(crate) fn resent_keys(&self) -> HashSet<String> {
        self.inner.lock().unwrap().resent.clone()
    }
    pub(crate) fn dc09_key(&self, message: &str) -> Option<String> {
        self.inner.lock().unwrap().dc09.get(message).cloned()
    }
    pub(crate) fn summary(&self) -> (usize, usize, usize, u64) {
        let i = self.inner.lock().unwrap();
        (i.sent.len(), i.accepted.len(), i.resent.len(), i.refused)
    }
}

/// Packet ids of one MQTT device connection → the key each one carries. rumqttc reports
/// `Outgoing::Publish(pkid)` in the order publishes were requested, again with the same pkid
/// when it replays an unacknowledged one after a reconnect, and `AwaitAck(pkid)` when a new
/// publish must wait for its pkid to be freed.
#[derive(Default)]
pub(crate) struct Pkids {
    pub(crate) queued: VecDeque<String>,
    pub(crate) inflight: HashMap<u16, String>,
    pub(crate) collided: HashMap<u16, String>,
}

/// The broker's own record of what the MQTT devices published: a QoS 1 subscriber with a
/// persistent session on the ingress topics, keeping the `seq` key of every message routed to
/// it (garbled ones too). The device-side pairing of packet ids to messages ([`Pkids`])
/// follows rumqttc's event order; the witness does not, so a key the pairing calls accepted
/// that the broker never routed shows the pairing wrong, and a key the broker routed is owed
/// to atgw whatever the pairing saw.
pub(crate) struct Witness(Subscriber<String>);

impl Witness {
    pub(crate) async fn start(port: u16) -> Witness {
        Witness(Subscriber::start_keeping(port, &["zigbee2mqtt/#", "dusun_pub"], seq_key).await)
    }

    pub(crate) fn keys(&self) -> HashSet<String> {
        self.0.received.lock().unwrap().iter().cloned().collect()
    }
}

/// The `"seq":"…"` key of a device payload, read as text (a garbled payload is no JSON).
fn seq_key(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let at = text.find(r#""seq":""#)? + 7;
    let end = text[at..].find('"')?;
    Some(text[at..at + end].to_owned())
}

/// One MQTT device connection publishing at QoS 1: alarms (zigbee2mqtt pendant presses, a new
/// pendant every few presses so incidents keep opening), telemetry (pulse-oximeter readings
/// through a BLE hub) and now and then a malformed message (for the dead-letter table), each
/// payload carrying its key as `seq`.
pub(crate) struct MqttDevice {
    pub(crate) pkids: Arc<Mutex<Pkids>>,
    pub(crate) producer: JoinHandle<()>,
    pub(crate) poller: JoinHandle<()>,
}

impl MqttDevice {
    pub(crate) async fn start(
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
    pub(crate) fn pending(&self) -> usize {
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
pub(crate) fn message_of(frame: &[u8]) -> String {
    let (f, _) = Frame::decode(frame).expect("the simulator builds valid frames");
    String::from_utf8(f.message()).expect("plaintext frames are ASCII")
}

/// The next frame on `sock`, or `None` on EOF, error or timeout.
pub(crate) async fn read_frame(sock: &mut TcpStream, dec: &mut FrameDecoder) -> Option<Vec<u8>> {
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
pub(crate) async fn panel(
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
pub(crate) struct Load {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) mqtt: Vec<MqttDevice>,
    pub(crate) panels: Vec<JoinHandle<()>>,
}

/// DC-09 accounts the receiver serves. A load uses three (one panel each); the corrupt-journal
/// scenario's second load uses the other three, because a DC-09 device is its account and an
/// alert opened before the corruption is (by design) not known to the fresh journal.
pub(crate) const ACCOUNTS: [&str; 6] = ["4001", "4002", "4003", "4004", "4005", "4006"];

impl Load {
    /// Two MQTT devices at 40 messages/s each and three panels at 20 frames/s each. `tag` keeps
    /// keys (and so devices, and so incidents) of a second load in one scenario apart.
    pub(crate) async fn start(w: &World, tag: &str, accounts: &[&str]) -> Load {
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
    pub(crate) async fn finish(mut self) {
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

/// The answer's token to one frame from `account` on a fresh connection (`None`: no answer).
pub(crate) async fn dc09_answer(to: SocketAddr, account: &str, n: u64) -> Option<Token> {
    let mut cfg = SimulatorConfig::new(([127, 0, 0, 1], 9).into(), account);
    cfg.payload = SimPayload::ContactId("1602 00 000".into());
    let frame = build_frame(&cfg, &seq_for(n), jiff::Timestamp::now(), &mut rand::rng());
    let mut sock = TcpStream::connect(to).await.ok()?;
    sock.write_all(&frame).await.ok()?;
    let answer = read_frame(&mut sock, &mut FrameDecoder::new(8192)).await?;
    Frame::decode(&answer).ok().map(|(f, _)| f.header.token)
}

/// Opens `n` idle TCP connections to `to` from 127.0.0.10-250 (under the per-address budget)
/// and re-opens each one 1-2 s after the daemon closes it, until `stop`. Returns how many
/// connections the daemon closed.
pub(crate) fn idle_connections(
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
