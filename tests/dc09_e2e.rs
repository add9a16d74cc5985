//! SIA DC-09 through the real `atgw` binary (issue "Legacy telecare alarms"): transmitters on
//! real TCP and UDP sockets on 127.0.0.x, the journal read from its SQLite file, and a private
//! Mosquitto standing in for the care platform upstream.
//!
//! Answers are compared field by field with the frame they answer (parsed with the crate's own
//! frame parser), never byte for byte: an ACK may carry the receiver's time, so its bytes are not
//! fixed. Each test runs its own gateway, broker, ports and temporary directory.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::crypto::{self, AesKey, KeyFormat};
use atgw_sia_dc09::frame::{Body, Frame, Token, parse_payload, wrap_message};
use atgw_sia_dc09::simulator::{SimPayload, SimulatorConfig, build_frame, seq_for};
use common::*;
use jiff::{SignedDuration, Timestamp};
use rand::{RngCore, SeedableRng};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// CloudEvents `source` of everything the DC-09 adapter journals.
const SOURCE: &str = "urn:atgw:gw-test:alarms";
/// How long a transmitter waits for one answer (a bound, not an expectation).
const ANSWER_WAIT: Duration = Duration::from_secs(10);
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// legacy.md §7.2's K128, and an AES-256 key, both written as hex.
const K128_HEX: &str = "000102030405060708090A0B0C0D0E0F";
const K256_HEX: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
/// pysiaalarm/Ajax style: the 16 characters' ASCII codes are the key bytes.
const ASCII_KEY: &str = "0123456789ABCDEF";
/// The registry used by the tests that look at where an event lands.
const REGISTRY: &str = r#"
[[device]]
id = "pendant-12"
adapter = "alarms"
match = { account = "1234", zone = "003" }
resident = "res-0042"
location = { area = "east", room = "12" }

[[device]]
id = "medical-7"
adapter = "alarms"
match = { account = "1234", zone = "001" }
resident = "res-0043"
location = { area = "west", room = "7" }

[[device]]
id = "panel-1234"
adapter = "alarms"
match = { account = "1234" }
location = { area = "ground", room = "hall" }
"#;

/// One test's world: a private broker with an upstream subscriber, and the daemon with its DC-09
/// receiver on a port free for both TCP and UDP.
struct Rig {
    dir: tempfile::TempDir,
    broker: Mosquitto,
    upstream: Upstream,
    gw: Gateway,
    tcp: SocketAddr,
    udp: SocketAddr,
}

impl Rig {
    /// `dir` already holds whatever the config names (key files).
    async fn start(dir: tempfile::TempDir, adapter_keys: &str, extra: &str) -> Rig {
        let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
        let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
        let port = free_tcp_udp_port();
        let text = dc09_config(dir.path(), broker.port, port, port, adapter_keys, extra);
        let gw = Gateway::start(dir.path(), &text);
        let addr = SocketAddr::from((LOCALHOST, port));
        Rig {
            dir,
            broker,
            upstream,
            gw,
            tcp: addr,
            udp: addr,
        }
    }

    /// Sends `frame` from 127.0.0.1 and returns the answer.
    async fn ask(&self, via: Via, frame: &[u8]) -> Vec<u8> {
        self.ask_from(LOCALHOST, via, frame).await
    }

    /// Sends `frame` from `from` and returns the answer; no answer fails the test, with the log.
    async fn ask_from(&self, from: Ipv4Addr, via: Via, frame: &[u8]) -> Vec<u8> {
        let answer = match via {
            Via::Tcp => tcp_exchange(from, self.tcp, frame).await,
            Via::Udp => udp_exchange(from, self.udp, frame).await,
        };
        answer.unwrap_or_else(|| {
            panic!(
                "no answer over {via:?} from {from} within {ANSWER_WAIT:?} to {}\n{}",
                show(frame),
                self.gw.log_text()
            )
        })
    }

    /// Upstream events from the DC-09 adapter.
    fn upstream_dc09(&self) -> Vec<Value> {
        self.upstream
            .events()
            .into_iter()
            .filter(|e| e["source"] == SOURCE)
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.gw.kill9();
        self.broker.stop();
    }
}

/// Every event the DC-09 adapter journaled, oldest first.
fn journal_dc09(g: &Gateway) -> Vec<Value> {
    let c = g.journal();
    let mut s = c
        .prepare("SELECT json FROM events WHERE source = ?1 ORDER BY seq")
        .unwrap();
    s.query_map([SOURCE], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| serde_json::from_str(&r.unwrap()).unwrap())
        .collect()
}

/// `(detail, raw)` of the dead letters with `reason`.
fn dead_letters_for(g: &Gateway, reason: &str) -> Vec<(String, Vec<u8>)> {
    let c = g.journal();
    let mut s = c
        .prepare("SELECT detail, raw FROM dead_letters WHERE reason = ?1 ORDER BY id")
        .unwrap();
    s.query_map([reason], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// The message part of a frame (from the first `"` to the byte before CR): what the journal
/// keeps as `raw.payload` for a plaintext frame.
fn message_of(frame: &[u8]) -> String {
    let f = parse(frame);
    String::from_utf8(f.message()).unwrap()
}

fn parse(bytes: &[u8]) -> Frame {
    Frame::decode(bytes)
        .unwrap_or_else(|e| {
            panic!(
                "not a DC-09 frame ({e}): {:?}",
                String::from_utf8_lossy(bytes)
            )
        })
        .0
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Asserts `answer` is the ACK for `request`: same seq, R, L and account, not encrypted and
/// empty for a plaintext frame; encrypted for an encrypted one, decrypting with `key` to our
/// `]_<receiver time>`. Returns the receiver time an encrypted ACK carries.
fn assert_ack_for(request: &[u8], answer: &[u8], key: Option<&AesKey>) -> Option<Timestamp> {
    let (req, ans) = (parse(request), parse(answer));
    let context = format!("request {} answer {}", show(request), show(answer));
    assert_eq!(ans.header.token, Token::Ack, "{context}");
    assert_eq!(ans.header.seq, req.header.seq, "seq echoed: {context}");
    assert_eq!(
        ans.header.receiver, req.header.receiver,
        "R echoed: {context}"
    );
    assert_eq!(ans.header.prefix, req.header.prefix, "L echoed: {context}");
    assert_eq!(
        ans.header.account, req.header.account,
        "account echoed: {context}"
    );
    assert_eq!(ans.header.encrypted, key.is_some(), "{context}");
    match (&ans.body, key) {
        (Body::Clear(p), None) => {
            assert!(p.data.is_empty() && p.xdata.is_empty(), "{context}");
            p.timestamp.map(|t| t.timestamp())
        }
        (Body::Encrypted(hex), Some(key)) => {
            let text = crypto::open(key, hex)
                .unwrap_or_else(|e| panic!("*ACK does not decrypt with the key ({e}): {context}"));
            let p =
                parse_payload(&text).unwrap_or_else(|e| panic!("*ACK cleartext ({e}): {context}"));
            assert!(p.data.is_empty(), "{context}");
            Some(
                p.timestamp
                    .unwrap_or_else(|| panic!("*ACK without receiver time: {context}"))
                    .timestamp(),
            )
        }
        _ => panic!("ACK body does not match the request's encryption: {context}"),
    }
}

/// Connects from `from` (any 127.x address is loopback) to the receiver.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind((from, 0).into())?;
    s.connect(to).await
}

/// The next complete frame on `sock`, or `None` on EOF, error or after [`ANSWER_WAIT`].
async fn read_frame(sock: &mut TcpStream, dec: &mut FrameDecoder) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
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

/// How a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Tcp,
    Udp,
}

/// One frame on a new TCP connection from `from`, and its answer.
async fn tcp_exchange(from: Ipv4Addr, to: SocketAddr, frame: &[u8]) -> Option<Vec<u8>> {
    let mut s = connect_from(from, to).await.ok()?;
    s.write_all(frame).await.ok()?;
    read_frame(&mut s, &mut FrameDecoder::new(8192)).await
}

/// One frame as a datagram from `from`, and its answer. Like a real transmitter it sends the
/// same frame again if no answer comes (a retransmission is re-acknowledged, never re-journaled).
async fn udp_exchange(from: Ipv4Addr, to: SocketAddr, frame: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind((from, 0)).await.ok()?;
    s.connect(to).await.ok()?;
    let mut buf = vec![0u8; 65_536];
    for _ in 0..3 {
        s.send(frame).await.ok()?;
        if let Ok(Ok(n)) = tokio::time::timeout(ANSWER_WAIT / 3, s.recv(&mut buf)).await {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// A frame as `atgw simulate dc09` builds it, stamped `at`.
fn frame(
    account: &str,
    seq: &str,
    payload: SimPayload,
    key: Option<&AesKey>,
    at: Timestamp,
) -> Vec<u8> {
    let mut cfg = SimulatorConfig::new(([127, 0, 0, 1], 9).into(), account);
    cfg.payload = payload;
    cfg.key = key.cloned();
    build_frame(&cfg, seq, at, &mut rand::rng())
}

fn cid(event: &str) -> SimPayload {
    SimPayload::ContactId(event.into())
}

/// The vectors file holds frame bytes as code points 0–255.
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("byte-valued"))
        .collect()
}

struct Vector {
    name: String,
    frame: Vec<u8>,
}

/// The plaintext transmitter frames of `vectors.json` with a correct CRC and length (responses
/// and encrypted frames excluded).
fn plaintext_vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/dc09/vectors.json")).unwrap();
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.iter()
        .filter(|v| v["key_hex"].is_null())
        .filter(|v| v["crc_ok"] != false && v["len_ok"] != false)
        .map(|v| Vector {
            name: v["name"].as_str().unwrap().to_owned(),
            frame: latin1(v["frame"].as_str().unwrap()),
        })
        .filter(|v| {
            let f = parse(&v.frame);
            !f.header.encrypted
                && matches!(f.header.token, Token::SiaDcs | Token::AdmCid | Token::Null)
        })
        .collect()
}

/// How many journaled events came from each of `frames` (matched on their message text).
fn journaled_per_frame(g: &Gateway, frames: &[Vec<u8>]) -> Vec<usize> {
    let mut by_message: HashMap<String, usize> = HashMap::new();
    for e in journal_dc09(g) {
        if let Some(m) = e["data"]["raw"]["payload"].as_str() {
            *by_message.entry(m.to_owned()).or_default() += 1;
        }
    }
    frames
        .iter()
        .map(|f| by_message.get(&message_of(f)).copied().unwrap_or(0))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Answers and upstream delivery
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_vectors_get_an_ack_echoing_seq_account_receiver_and_prefix_over_tcp_and_udp() {
    let vectors = plaintext_vectors();
    assert!(
        vectors.len() >= 15,
        "vectors.json lost its plaintext frames: {}",
        vectors.len()
    );
    let accounts: BTreeSet<String> = vectors
        .iter()
        .map(|v| parse(&v.frame).header.account.unwrap())
        .collect();
    let accounts_toml: Vec<String> = accounts
        .iter()
        .map(|a| format!("{{ account = \"{a}\" }}"))
        .collect();
    // The vectors are stamped 2015–2024; this test is about framing and answers, so the window
    // is opened wide (the window has its own test below).
    let keys = format!(
        "accounts = [{}]\nmax_timestamp_age = \"876000h\"",
        accounts_toml.join(", ")
    );
    let mut rig = Rig::start(tempfile::tempdir().unwrap(), &keys, "").await;
    let frames: Vec<Vec<u8>> = vectors.iter().map(|v| v.frame.clone()).collect();

    for v in &vectors {
        let answer = rig.ask(Via::Tcp, &v.frame).await;
        assert_ack_for(&v.frame, &answer, None);
        // ACK after commit: the frame's event is in the journal the moment its ACK arrived,
        // read before the next frame is sent (a NULL supervision frame journals nothing).
        let n = journaled_per_frame(&rig.gw, std::slice::from_ref(&v.frame))[0];
        let is_null = parse(&v.frame).header.token == Token::Null;
        assert_eq!(
            n == 0,
            is_null,
            "{}: {n} events journaled at its ACK",
            v.name
        );
    }
    let after_tcp = journaled_per_frame(&rig.gw, &frames);

    // The same frames over UDP are retransmissions: acknowledged again, journaled once.
    for v in &vectors {
        let answer = rig.ask(Via::Udp, &v.frame).await;
        assert_ack_for(&v.frame, &answer, None);
    }
    assert_eq!(
        journaled_per_frame(&rig.gw, &frames),
        after_tcp,
        "a retransmission over the other transport was journaled again"
    );
    let schema = schema();
    for e in journal_dc09(&rig.gw) {
        assert_schema_valid(&schema, &e);
    }

    // A frame with the right CRC but a wrong length (pysiaalarm's negative vector) is not
    // answered: on one connection, the first answer that comes back is the next frame's ACK.
    let bad = latin1("\n57150047\"ADM-CID\"0247R4F39L4F39#4F39[#4F39|3401 01 057]\r");
    let mut s = TcpStream::connect(rig.tcp).await.unwrap();
    s.write_all(&bad).await.unwrap();
    s.write_all(&vectors[0].frame).await.unwrap();
    let answer = read_frame(&mut s, &mut FrameDecoder::new(8192))
        .await
        .unwrap();
    assert_ack_for(&vectors[0].frame, &answer, None);
    assert_eq!(dead_letters_for(&rig.gw, "bad_length").len(), 1);
    assert!(rig.gw.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_id_and_sia_events_reach_upstream_with_registry_location_and_schema_v1() {
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        REGISTRY,
    )
    .await;
    let now = Timestamp::now();
    // (frame, how) — what a panel sends about the pendant in room 12, a medical sensor in
    // room 7 and a low battery on zone 12, which has no entry of its own (the panel's does).
    let sends = [
        (
            frame("1234", "0101", cid("1101 01 003"), None, now),
            Via::Tcp,
        ),
        (
            frame("1234", "0102", cid("3101 01 003"), None, now),
            Via::Udp,
        ),
        (
            frame(
                "1234",
                "0103",
                SimPayload::Sia("Nri1/MA001".into()),
                None,
                now,
            ),
            Via::Tcp,
        ),
        (
            frame("1234", "0104", cid("1384 01 012"), None, now),
            Via::Udp,
        ),
    ];
    for (f, via) in &sends {
        let answer = rig.ask(*via, f).await;
        assert_ack_for(f, &answer, None);
    }

    wait_until_async(Duration::from_secs(30), || rig.upstream_dc09().len() >= 4)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "upstream got {:?}\n{}",
                rig.upstream_dc09(),
                rig.gw.log_text()
            )
        });
    let events = rig.upstream_dc09();
    let schema = schema();
    for e in &events {
        assert_schema_valid(&schema, e);
    }
    let by_message: HashMap<String, &Value> = events
        .iter()
        .map(|e| (e["data"]["raw"]["payload"].as_str().unwrap().to_owned(), e))
        .collect();
    let event_of = |f: &[u8]| -> &Value {
        by_message
            .get(&message_of(f))
            .unwrap_or_else(|| panic!("no upstream event for {}: {events:#?}", show(f)))
    };

    let press = event_of(&sends[0].0);
    assert_eq!(press["type"], "atgw.pendant_press");
    assert_eq!(press["data"]["kind"], "pendant_press");
    assert_eq!(press["data"]["phase"], "raised");
    assert_eq!(press["data"]["codes"]["contact_id"], "101");
    assert_eq!(press["data"]["device"]["id"], "pendant-12");
    assert_eq!(press["data"]["device"]["registered"], true);
    assert_eq!(press["data"]["resident"]["id"], "res-0042");
    assert_eq!(press["data"]["location"]["site"], "oakview");
    assert_eq!(press["data"]["location"]["area"], "east");
    assert_eq!(press["data"]["location"]["room"], "12");
    assert_eq!(press["subject"], "site/oakview/area/east/room/12");
    assert_eq!(press["data"]["raw"]["protocol"], "sia-dc09");

    let restore = event_of(&sends[1].0);
    assert_eq!(restore["data"]["kind"], "pendant_press");
    assert_eq!(restore["data"]["phase"], "cleared");
    assert_eq!(restore["data"]["codes"]["contact_id"], "101");
    assert_eq!(restore["data"]["device"]["id"], "pendant-12");
    assert_eq!(restore["data"]["resident"]["id"], "res-0042");

    let medical = event_of(&sends[2].0);
    assert_eq!(medical["data"]["kind"], "medical");
    assert_eq!(medical["data"]["phase"], "raised");
    assert_eq!(medical["data"]["codes"]["sia"], "MA");
    assert_eq!(medical["data"]["device"]["id"], "medical-7");
    assert_eq!(medical["data"]["resident"]["id"], "res-0043");
    assert_eq!(medical["data"]["location"]["area"], "west");
    assert_eq!(medical["data"]["location"]["room"], "7");

    let battery = event_of(&sends[3].0);
    assert_eq!(battery["data"]["kind"], "low_battery");
    assert_eq!(battery["data"]["phase"], "raised");
    assert_eq!(battery["data"]["codes"]["contact_id"], "384");
    assert_eq!(battery["data"]["device"]["id"], "panel-1234");
    assert_eq!(battery["data"]["location"]["room"], "hall");
    assert!(battery["data"]["resident"].is_null());

    // Upstream holds exactly what the journal holds, under the journal's ids.
    let journal_ids: BTreeSet<String> = journal_dc09(&rig.gw)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let upstream_ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(upstream_ids, journal_ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_frames_get_an_encrypted_ack_that_decrypts_with_the_account_key() {
    let dir = tempfile::tempdir().unwrap();
    let hex128 = write_secret(&dir.path().join("dc09-5678.key"), &format!("{K128_HEX}\n"));
    let hex256 = write_secret(&dir.path().join("dc09-4242.key"), K256_HEX);
    let ascii = write_secret(&dir.path().join("dc09-9abc.key"), &format!("{ASCII_KEY}\n"));
    let keys = format!(
        r#"accounts = [
  {{ account = "5678", key_file = "{}", key_format = "hex" }},
  {{ account = "4242", key_file = "{}", key_format = "hex" }},
  {{ account = "9ABC", key_file = "{}", key_format = "ascii" }},
]"#,
        hex128.display(),
        hex256.display(),
        ascii.display()
    );
    let rig = Rig::start(dir, &keys, "").await;
    let k128 = AesKey::parse(K128_HEX, KeyFormat::Hex).unwrap();
    let k256 = AesKey::parse(K256_HEX, KeyFormat::Hex).unwrap();
    let kascii = AesKey::parse(ASCII_KEY, KeyFormat::Ascii).unwrap();

    let now = Timestamp::now();
    let cases = [
        ("5678", &k128, cid("1101 01 003"), Via::Tcp),
        ("5678", &k128, SimPayload::Null, Via::Udp),
        (
            "4242",
            &k256,
            SimPayload::Sia("Nri1/MA001".into()),
            Via::Udp,
        ),
        ("9ABC", &kascii, cid("1101 01 004"), Via::Tcp),
        ("9ABC", &kascii, cid("1384 01 012"), Via::Udp),
    ];
    let mut with_events = Vec::new();
    for (i, (account, key, payload, via)) in cases.into_iter().enumerate() {
        let has_event = payload != SimPayload::Null;
        let f = frame(account, &seq_for(i as u64 + 200), payload, Some(key), now);
        assert!(parse(&f).header.encrypted);
        let answer = rig.ask(via, &f).await;
        let receiver_time = assert_ack_for(&f, &answer, Some(key));
        assert!(
            receiver_time.is_some(),
            "an *ACK carries the receiver's time"
        );
        // The answer is bound to the account's key: another account's key does not open it to
        // a timestamped payload (without the timestamp, random cleartext ending in `]` would
        // parse now and then).
        let other = if std::ptr::eq(key, &k128) {
            &kascii
        } else {
            &k128
        };
        let Body::Encrypted(hex) = parse(&answer).body else {
            unreachable!()
        };
        assert!(
            crypto::open(other, &hex)
                .ok()
                .and_then(|t| parse_payload(&t).ok())
                .is_none_or(|p| p.timestamp.is_none()),
            "*ACK for {account} also opened with another key"
        );
        if has_event {
            with_events.push((account, f));
        }
    }

    // The journal keeps the decrypted content, with the account's seq as upstream id.
    let journal = journal_dc09(&rig.gw);
    for (account, f) in &with_events {
        let seq = parse(f).header.seq;
        let e = journal
            .iter()
            .find(|e| e["data"]["raw"]["upstream_id"] == format!("{account}:{seq}"))
            .unwrap_or_else(|| panic!("{account}:{seq} not journaled: {journal:#?}"));
        let raw = e["data"]["raw"]["payload"].as_str().unwrap();
        assert!(
            raw.contains(&format!("[#{account}|")),
            "decrypted data kept: {raw}"
        );
    }
    assert_eq!(journal.len(), with_events.len());

    // atgw's own transmitter, reading the ASCII key from a file as an installer would.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args([
            "simulate",
            "dc09",
            "--target",
            &rig.tcp.to_string(),
            "--account",
            "9ABC",
        ])
        .arg("--key-file")
        .arg(rig.dir.path().join("dc09-9abc.key"))
        .args([
            "--key-format",
            "ascii",
            "--cid",
            "1101 01 005",
            "--count",
            "3",
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("atgw simulate finished")
        .unwrap();
    assert!(
        out.status.success(),
        "atgw simulate dc09 with an ascii key file: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_timestamp_gets_nak_with_receiver_time_and_the_corrected_frame_is_acked() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_secret(&dir.path().join("dc09-5678.key"), K128_HEX);
    let keys = format!(
        r#"accounts = [{{ account = "1234" }}, {{ account = "5678", key_file = "{}" }}]"#,
        key_file.display()
    );
    let rig = Rig::start(dir, &keys, "").await;
    let k128 = AesKey::parse(K128_HEX, KeyFormat::Hex).unwrap();
    // A transmitter whose clock is an hour slow (the default window is -40 s/+20 s).
    let slow = Timestamp::now() - SignedDuration::from_hours(1);
    let mut messages = BTreeSet::new();
    for (account, key, via) in [
        ("1234", None, Via::Tcp),
        ("5678", Some(&k128), Via::Tcp),
        ("5678", Some(&k128), Via::Udp),
    ] {
        let f = frame(account, "0301", cid("1101 01 003"), key, slow);
        let answer = rig.ask(via, &f).await;
        let nak = parse(&answer);
        let context = format!("{} -> {}", show(&f), show(&answer));
        assert_eq!(nak.header.token, Token::Nak, "{context}");
        assert!(!nak.header.encrypted, "a NAK is never encrypted: {context}");
        assert_eq!(nak.header.seq, "0000", "{context}");
        let Body::Clear(p) = &nak.body else {
            unreachable!()
        };
        let theirs = p
            .timestamp
            .unwrap_or_else(|| panic!("NAK without the receiver's time: {context}"))
            .timestamp();
        // The NAK carries the receiver's clock, not the frame's (which is an hour off).
        let off_ours = theirs.duration_since(Timestamp::now()).as_secs().abs();
        assert!(
            off_ours < 15 * 60,
            "NAK time {theirs} is not the receiver's: {context}"
        );

        // Like dc09_spt, the transmitter adopts the receiver's time and sends again: ACK.
        let corrected = frame(account, "0301", cid("1101 01 003"), key, theirs);
        let answer = rig.ask(via, &corrected).await;
        assert_ack_for(&corrected, &answer, key);
        messages.insert((account, theirs.as_second()));
    }
    let stale = dead_letters_for(&rig.gw, "stale_timestamp");
    assert_eq!(stale.len(), 3, "{stale:?}");
    assert!(stale[0].0.contains("1234"), "{}", stale[0].0);
    // One event per distinct message: the 5678 frame over UDP repeats the TCP one (same seq,
    // same data) and is a retransmission when it carries the same time (DC-09 time has whole
    // seconds), a new message otherwise.
    assert_eq!(journal_dc09(&rig.gw).len(), messages.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_id_token_gets_duh_echoing_seq_and_account() {
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        "",
    )
    .await;
    for (msg, via) in [
        (&b"\"XNM\"0401L0#1234[]"[..], Via::Tcp),
        (&b"\"SIA-PUL\"0402R1L0#1234[#1234|1]"[..], Via::Udp),
    ] {
        let f = wrap_message(msg);
        let answer = rig.ask(via, &f).await;
        let (req, duh) = (parse(&f), parse(&answer));
        let context = format!("{} -> {}", show(&f), show(&answer));
        assert_eq!(duh.header.token, Token::Duh, "{context}");
        assert!(!duh.header.encrypted, "{context}");
        assert_eq!(duh.header.seq, req.header.seq, "{context}");
        assert_eq!(duh.header.receiver, req.header.receiver, "{context}");
        assert_eq!(duh.header.prefix, req.header.prefix, "{context}");
        assert_eq!(duh.header.account, req.header.account, "{context}");
    }
    let letters = dead_letters_for(&rig.gw, "unknown_token");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].1, wrap_message(b"\"XNM\"0401L0#1234[]"));
    assert!(journal_dc09(&rig.gw).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9
// ---------------------------------------------------------------------------------------------

/// What the transmitters saw: frames ACKed (in order), and frames sent more than once.
#[derive(Default)]
struct Ledger {
    acked: Mutex<Vec<Vec<u8>>>,
    acked_count: AtomicUsize,
    retransmitted: Mutex<Vec<Vec<u8>>>,
}

/// A panel on one TCP connection: each frame is sent and its answer awaited; on a broken
/// connection or no answer it reconnects and sends the same bytes again (same seq, content and
/// timestamp), as DC-09 transmitters do.
async fn transmit(to: SocketAddr, frames: Vec<Vec<u8>>, ledger: Arc<Ledger>) {
    let mut conn: Option<(TcpStream, FrameDecoder)> = None;
    for f in frames {
        let mut sent = 0;
        loop {
            let Some((sock, dec)) = conn.as_mut() else {
                match TcpStream::connect(to).await {
                    Ok(s) => conn = Some((s, FrameDecoder::new(8192))),
                    // The receiver is down (killed): retry, as a panel does, after a short pause.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                continue;
            };
            if sock.write_all(&f).await.is_err() {
                conn = None;
                continue;
            }
            sent += 1;
            if sent == 2 {
                ledger.retransmitted.lock().unwrap().push(f.clone());
            }
            match read_frame(sock, dec).await {
                Some(answer) => {
                    assert_ack_for(&f, &answer, None);
                    ledger.acked.lock().unwrap().push(f.clone());
                    ledger.acked_count.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                None => conn = None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_acked_frame_and_a_retransmission_is_journaled_once() {
    const LINKS: usize = 10;
    const PER_LINK: usize = 500;
    const FRAMES: usize = LINKS * PER_LINK;
    let accounts: Vec<String> = (0..LINKS).map(|i| format!("{}", 3001 + i)).collect();
    let accounts_toml: Vec<String> = accounts
        .iter()
        .map(|a| format!("{{ account = \"{a}\" }}"))
        .collect();
    // All panels share 127.0.0.1, so its frame budget is raised; the window is an hour so that a
    // frame sent before the kill can be sent again, byte for byte, however long the run takes.
    let keys = format!(
        "accounts = [{}]\nper_peer_frames_per_sec = 1000000\nmax_timestamp_age = \"1h\"",
        accounts_toml.join(", ")
    );
    let mut rig = Rig::start(tempfile::tempdir().unwrap(), &keys, "").await;

    // Every frame is unique: its own account and seq, and the zone follows the seq.
    let ledger = Arc::new(Ledger::default());
    let mut all = Vec::with_capacity(FRAMES);
    let mut links = tokio::task::JoinSet::new();
    for account in &accounts {
        let frames: Vec<Vec<u8>> = (0..PER_LINK as u64)
            .map(|i| {
                let event = format!("1101 01 {:03}", i % 1000);
                frame(account, &seq_for(i), cid(&event), None, Timestamp::now())
            })
            .collect();
        all.extend(frames.iter().cloned());
        links.spawn(transmit(rig.tcp, frames, ledger.clone()));
    }

    // Kill it while it is busy: some frames acknowledged, some in flight, most still to come.
    wait_until_async(Duration::from_secs(120), || {
        ledger.acked_count.load(Ordering::Relaxed) >= 1_500
    })
    .await
    .unwrap_or_else(|_| panic!("no progress before the kill\n{}", rig.gw.log_text()));
    rig.gw.kill9();
    let acked_before_kill = ledger.acked.lock().unwrap().clone();
    assert!(
        acked_before_kill.len() < FRAMES,
        "the kill happened mid-stream ({} of {FRAMES} acked)",
        acked_before_kill.len()
    );
    // Every frame that got an ACK is in the journal the dead process left behind.
    let at_kill: HashMap<Vec<u8>, usize> = all
        .iter()
        .cloned()
        .zip(journaled_per_frame(&rig.gw, &all))
        .collect();
    let missing: Vec<String> = acked_before_kill
        .iter()
        .map(|f| (f, at_kill[f]))
        .filter(|(_, n)| *n != 1)
        .map(|(f, n)| format!("{} journaled {n} times", show(f)))
        .collect();
    assert!(missing.is_empty(), "acked before kill -9 but: {missing:?}");

    rig.gw.restart();
    let finished = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(r) = links.join_next().await {
            r.unwrap();
        }
    })
    .await;
    assert!(
        finished.is_ok(),
        "transmitters did not finish: {} of {FRAMES} acked\n{}",
        ledger.acked_count.load(Ordering::Relaxed),
        rig.gw.log_text()
    );

    // A retransmission after the restart of frames acked before the kill (same account, seq,
    // content and timestamp), over TCP and over UDP: acknowledged again, journaled once.
    let resend = [
        acked_before_kill.first().unwrap().clone(),
        acked_before_kill.last().unwrap().clone(),
    ];
    for f in &resend {
        assert_ack_for(f, &rig.ask(Via::Tcp, f).await, None);
        assert_ack_for(f, &rig.ask(Via::Udp, f).await, None);
    }

    let acked = ledger.acked.lock().unwrap().clone();
    assert_eq!(acked.len(), FRAMES, "every frame was acked in the end");
    let counts = journaled_per_frame(&rig.gw, &all);
    let wrong: Vec<String> = all
        .iter()
        .zip(&counts)
        .filter(|(_, n)| **n != 1)
        .map(|(f, n)| format!("{} journaled {n} times", show(f)))
        .take(10)
        .collect();
    assert!(wrong.is_empty(), "each frame exactly once: {wrong:?}");
    assert_eq!(journal_dc09(&rig.gw).len(), FRAMES, "no other rows");
    // The frames in flight at the kill were sent again on new connections; those the dead
    // process had committed but not acknowledged are the retransmissions dedupe exists for.
    let retransmitted = ledger.retransmitted.lock().unwrap().clone();
    let committed_unacked = retransmitted.iter().filter(|f| at_kill[*f] == 1).count();
    eprintln!(
        "kill -9 after {} ACKs ({} frames journaled); {} frames in flight sent again after the \
         restart, {committed_unacked} of them already committed; each journaled once",
        acked_before_kill.len(),
        at_kill.values().sum::<usize>(),
        retransmitted.len(),
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Garbage and idle sockets
// ---------------------------------------------------------------------------------------------

/// Whether the peer closed `s` (EOF or reset), without waiting.
fn closed_by_peer(s: &std::net::TcpStream) -> bool {
    match s.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// What "still served" means here, given the receiver's budgets:
/// - `max_connections` counts TCP connections *and* UDP datagrams being processed, all peers
///   together. It is raised to 2,100, above everything this test can hold at once: the 1,000
///   idle sockets (the worst case for the daemon: all of them hold a slot), 16 from the greedy
///   address, the garbage connections, and all 1,024 junk datagrams in flight at the same time
///   (each holds a slot until its dead letter is committed; the per-peer frame budget limits
///   their rate, not how many are in flight). So a refusal can only mean the daemon stopped
///   serving. With the default of 256, idle sockets from 16 addresses fill every slot until
///   `idle_timeout`, and nobody new is served over TCP or UDP: that is the cap doing what it is
///   configured to do, not something a test could call "served". (With 1,100, the junk
///   datagrams' slots alone made the transmitter's connection be refused: see the report.)
///   Since issue 11 UDP has its own budget and a frameless connection makes room for a
///   newcomer: `a_transmitter_is_acked_within_1s_over_tcp_and_udp_while_1000_idle_connections_are_held`
///   covers the defaults; this test keeps every idle socket open on purpose.
/// - `per_peer_connections` stays at its default of 16, so the idle sockets come from 63
///   addresses (127.0.1.1–127.0.1.63, at most 16 each); 100 more from one address (127.0.0.3)
///   show that the excess beyond 16 is closed at once.
/// - The transmitter has its own address, 127.0.0.2, so its per-peer budgets are its own.
/// - `idle_timeout` and `first_frame_timeout` are 10 minutes so that no idle socket is closed
///   while the test looks at it.
///
/// Served = the transmitter's first attempt gets its ACK over TCP and over UDP and both frames
/// are journaled, while all 1,000 idle sockets are still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_and_1000_idle_connections_leave_another_transmitter_served() {
    let keys = r#"accounts = [{ account = "1234" }]
max_connections = 2100
max_udp_in_flight = 2100
idle_timeout = "10m"
first_frame_timeout = "10m""#;
    let mut rig = Rig::start(tempfile::tempdir().unwrap(), keys, "").await;

    // 1,000 idle connections, at most per_peer_connections (16) per address.
    let mut idle = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let from = Ipv4Addr::new(127, 0, 1, (i / 16 + 1) as u8);
        let s = connect_from(from, rig.tcp).await.unwrap();
        idle.push(s.into_std().unwrap());
    }
    // One address over its budget: everything beyond 16 is closed by the daemon.
    let mut greedy = Vec::with_capacity(100);
    for _ in 0..100 {
        let s = connect_from(Ipv4Addr::new(127, 0, 0, 3), rig.tcp)
            .await
            .unwrap();
        greedy.push(s.into_std().unwrap());
    }

    // 1 MiB of random bytes on the TCP port. The daemon closes a connection after a few
    // unusable frames (or more than a frame's worth of garbage) and the kernel then discards
    // whatever it had not read, so the bytes go 4 KiB per connection, and each connection is
    // followed to its end (the daemon's close, or its reaction to ours) before the next starts:
    // the daemon has looked at every chunk.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xDC09);
    let mut junk = vec![0u8; 1 << 20];
    rng.fill_bytes(&mut junk);
    let mut connections = 0;
    for chunk in junk.chunks(4096) {
        connections += 1;
        let mut s = TcpStream::connect(rig.tcp)
            .await
            .unwrap_or_else(|e| panic!("TCP port refused connection {connections}: {e}"));
        if s.write_all(chunk).await.is_ok() {
            let _ = s.shutdown().await;
        }
        let mut sink = [0u8; 1024];
        let ended = tokio::time::timeout(ANSWER_WAIT, async {
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "the daemon neither closed nor finished connection {connections}"
        );
    }
    // And 1 MiB as 1 KiB datagrams on the UDP port.
    let u = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    for chunk in junk.chunks(1024) {
        u.send_to(chunk, rig.udp).await.unwrap();
    }

    // Another transmitter is served, over TCP and UDP.
    let now = Timestamp::now();
    let over_tcp = frame("1234", "0501", cid("1101 01 003"), None, now);
    let over_udp = frame("1234", "0502", cid("1101 01 004"), None, now);
    let from = Ipv4Addr::new(127, 0, 0, 2);
    assert_ack_for(
        &over_tcp,
        &rig.ask_from(from, Via::Tcp, &over_tcp).await,
        None,
    );
    assert_ack_for(
        &over_udp,
        &rig.ask_from(from, Via::Udp, &over_udp).await,
        None,
    );
    assert_eq!(journaled_per_frame(&rig.gw, &[over_tcp, over_udp]), [1, 1]);

    assert!(rig.gw.is_running(), "daemon still running");
    let closed = idle.iter().filter(|s| closed_by_peer(s)).count();
    assert_eq!(closed, 0, "idle connections within the budgets stay open");
    // The transmitter was accepted after all of these, so the daemon has decided about each.
    wait_until_async(Duration::from_secs(10), || {
        greedy.iter().filter(|s| closed_by_peer(s)).count() >= 100 - 16
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} of 100 connections from one address closed (budget 16)",
            greedy.iter().filter(|s| closed_by_peer(s)).count()
        )
    });
    let greedy_open = greedy.iter().filter(|s| !closed_by_peer(s)).count();
    assert_eq!(
        greedy_open, 16,
        "the 16 within the address's budget stay open"
    );
    let letters = dead_letters(&rig.gw);
    assert!(
        letters.values().sum::<i64>() > 0,
        "the random bytes left dead letters: {letters:?}"
    );
    eprintln!(
        "1 MiB of random bytes took {connections} TCP connections; dead letters: {letters:?}"
    );
    assert!(
        !rig.gw.log_text().contains("panicked"),
        "{}",
        rig.gw.log_text()
    );
}

/// One hostile address's idle connection, held until the daemon closes it, then opened again
/// after a pause (as an attacker keeping the pressure on would). Counts the daemon's closes and
/// how many of them came before `first_frame_timeout` (an eviction, not a timeout).
async fn hold_idle(
    from: Ipv4Addr,
    to: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    connected: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
    early_closes: Arc<AtomicUsize>,
    first_frame_timeout: Duration,
) {
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = connect_from(from, to).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if std::mem::take(&mut first) {
            connected.fetch_add(1, Ordering::Relaxed);
        }
        let opened = tokio::time::Instant::now();
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        }
        closes.fetch_add(1, Ordering::Relaxed);
        if opened.elapsed() + Duration::from_millis(500) < first_frame_timeout {
            early_closes.fetch_add(1, Ordering::Relaxed);
        }
        // Reconnect after 1-2 s (spread, so 1,000 attackers do not reconnect in lock step).
        let pause = 1000 + u64::from(from.octets()[3]) * 4 % 1000;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Issue 11 item 1. With the default budgets (`max_connections` 256, 16 per address,
/// `first_frame_timeout` 10 s), 1,000 idle TCP connections from 241 loopback addresses
/// (127.0.0.10-250, at most 5 each) are held and re-opened whenever the daemon closes one, for
/// 30 s. Meanwhile a transmitter on 127.0.0.2 sends one frame over a new TCP connection and one
/// datagram every second: each must be ACKed within 1 s and journaled once. A frameless
/// connection is the one evicted when the table is full, and UDP has its own budget, so the
/// idle sockets can never starve either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmitter_is_acked_within_1s_over_tcp_and_udp_while_1000_idle_connections_are_held() {
    const ATTACKERS: usize = 1000;
    const HOLD: Duration = Duration::from_secs(30);
    const WITHIN: Duration = Duration::from_secs(1);
    let first_frame_timeout = Duration::from_secs(10);
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        "",
    )
    .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (connected, closes, early) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut attackers = Vec::with_capacity(ATTACKERS);
    for i in 0..ATTACKERS {
        let from = Ipv4Addr::new(127, 0, 0, 10 + (i % 241) as u8);
        attackers.push(tokio::spawn(hold_idle(
            from,
            rig.tcp,
            stop.clone(),
            connected.clone(),
            closes.clone(),
            early.clone(),
            first_frame_timeout,
        )));
    }
    wait_until_async(Duration::from_secs(30), || {
        connected.load(Ordering::Relaxed) >= ATTACKERS
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {ATTACKERS} attackers connected",
            connected.load(Ordering::Relaxed)
        )
    });

    let from = Ipv4Addr::new(127, 0, 0, 2);
    let udp = UdpSocket::bind((from, 0)).await.unwrap();
    let mut sent = Vec::new();
    let (mut max_tcp, mut max_udp) = (Duration::ZERO, Duration::ZERO);
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u32;
    while started.elapsed() < HOLD {
        tick.tick().await;
        n += 1;
        let now = Timestamp::now();
        let over_tcp = frame(
            "1234",
            &format!("{:04}", 2 * n),
            cid("1101 01 003"),
            None,
            now,
        );
        let over_udp = frame(
            "1234",
            &format!("{:04}", 2 * n + 1),
            cid("1101 01 004"),
            None,
            now,
        );
        let tcp = async {
            let t0 = tokio::time::Instant::now();
            let answer = tokio::time::timeout(WITHIN * 3, async {
                let mut s = connect_from(from, rig.tcp).await.ok()?;
                s.write_all(&over_tcp).await.ok()?;
                read_frame(&mut s, &mut FrameDecoder::new(8192)).await
            })
            .await
            .ok()
            .flatten();
            (answer, t0.elapsed())
        };
        let udp_side = async {
            let t0 = tokio::time::Instant::now();
            let mut buf = vec![0u8; 65_536];
            let answer = async {
                udp.send_to(&over_udp, rig.udp).await.ok()?;
                let n = tokio::time::timeout(WITHIN * 3, udp.recv(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                Some(buf[..n].to_vec())
            }
            .await;
            (answer, t0.elapsed())
        };
        let ((tcp_answer, tcp_took), (udp_answer, udp_took)) = tokio::join!(tcp, udp_side);
        let at = started.elapsed();
        for (via, answer, took, f) in [
            ("TCP", tcp_answer, tcp_took, &over_tcp),
            ("UDP", udp_answer, udp_took, &over_udp),
        ] {
            let Some(answer) = answer else {
                panic!(
                    "{via} frame {n} at {at:?} got no answer within {:?} (1,000 idle connections held)\n{}",
                    WITHIN * 3,
                    rig.gw.log_text()
                );
            };
            assert_ack_for(f, &answer, None);
            assert!(
                took < WITHIN,
                "{via} frame {n} at {at:?} ACKed after {took:?}, over {WITHIN:?}"
            );
        }
        max_tcp = max_tcp.max(tcp_took);
        max_udp = max_udp.max(udp_took);
        sent.push(over_tcp);
        sent.push(over_udp);
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    let per_frame = journaled_per_frame(&rig.gw, &sent);
    assert!(
        per_frame.iter().all(|&k| k == 1),
        "each frame journaled once: {per_frame:?}"
    );
    let log = rig.gw.log_text();
    assert!(
        log.contains("DC-09 connection limit reached: evicting idle connection from"),
        "the eviction is logged\n{log}"
    );
    println!(
        "1,000 idle connections held for {HOLD:?}: {} frames ACKed ({n} TCP, {n} UDP), max ACK \
         latency TCP {max_tcp:?} UDP {max_udp:?}; the daemon closed {} attacker connections, {} \
         of them evicted before first_frame_timeout",
        sent.len(),
        closes.load(Ordering::Relaxed),
        early.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Unknown account
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_account_gets_duh_a_dead_letter_and_a_gateway_alert() {
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        REGISTRY,
    )
    .await;
    let f = frame("9999", "0601", cid("1101 01 003"), None, Timestamp::now());
    let answer = rig.ask(Via::Tcp, &f).await;
    let (req, duh) = (parse(&f), parse(&answer));
    assert_eq!(duh.header.token, Token::Duh, "{}", show(&answer));
    assert_eq!(duh.header.seq, req.header.seq);
    assert_eq!(duh.header.account.as_deref(), Some("9999"));
    assert!(!duh.header.encrypted);

    let letters = dead_letters_for(&rig.gw, "unknown_account");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1, f, "the dead letter keeps the raw frame");
    assert!(letters[0].0.contains("9999"), "{}", letters[0].0);

    // The gateway alert is journaled (the frame's own event is not) and goes upstream.
    let journal = journal_dc09(&rig.gw);
    assert_eq!(journal.len(), 1, "{journal:#?}");
    let alert = &journal[0];
    assert_eq!(alert["data"]["kind"], "unknown");
    assert_eq!(alert["data"]["priority"], "medium");
    assert_eq!(alert["data"]["raw"]["payload"]["alert"], "unknown_account");
    assert_eq!(alert["data"]["raw"]["payload"]["account"], "9999");
    let message = alert["data"]["message"].as_str().unwrap();
    assert!(message.contains("Unknown DC-09 account 9999"), "{message}");
    assert_eq!(alert["data"]["device"]["registered"], false);

    wait_until_async(Duration::from_secs(30), || !rig.upstream_dc09().is_empty())
        .await
        .unwrap_or_else(|_| panic!("alert not upstream\n{}", rig.gw.log_text()));
    let up = rig.upstream_dc09();
    assert_eq!(up[0]["id"], alert["id"]);
    assert_schema_valid(&schema(), &up[0]);
}

// ---------------------------------------------------------------------------------------------
// 6. Retransmissions and reused sequence numbers (issue 11 item 4)
// ---------------------------------------------------------------------------------------------

/// A route and a policy so that a pendant press opens an alert, told upstream (whose control
/// topics take the resolution).
const PENDANT_POLICY: &str = r#"
[[route]]
name = "carers"
sinks = ["upstream"]

[[policy]]
name = "alarms"
match = { priority = ["high"] }
notify = ["carers"]
"#;

/// `(id, status)` of every pendant-press alert, oldest first.
fn pendant_alerts(g: &Gateway) -> Vec<(String, String)> {
    let c = g.journal();
    let mut s = c
        .prepare("SELECT id, status FROM alerts WHERE kind = 'pendant_press' ORDER BY raised_ms")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// A panel that restarted (or wrapped at 9999) reuses a sequence number: the same account,
/// sequence and event, but a new message (its timestamp), 2 s after the first alarm was
/// resolved. DC-09 calls a frame a retransmission only when account, sequence *and* message are
/// the same, so this is a new alarm: a second event and a second alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_sequence_number_with_a_new_timestamp_is_a_new_alarm_and_a_new_alert() {
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        &format!("{REGISTRY}\n{PENDANT_POLICY}"),
    )
    .await;
    let t0 = Timestamp::now();
    let first = frame("1234", "0042", cid("1101 01 003"), None, t0);
    assert_ack_for(&first, &rig.ask(Via::Tcp, &first).await, None);
    wait_until_async(Duration::from_secs(10), || {
        pendant_alerts(&rig.gw).len() == 1
    })
    .await
    .unwrap_or_else(|_| panic!("no alert for the first press\n{}", rig.gw.log_text()));
    let (alert_id, _) = pendant_alerts(&rig.gw)[0].clone();

    // A carer resolves it (over the upstream sink's control topic).
    let carer = Publisher::connect(rig.broker.port, "carer-phone").await;
    carer
        .send(
            &format!("atgw/oakview/alerts/{alert_id}/resolve"),
            r#"{"by": "carer-1", "outcome": "assisted"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(10), || {
        pendant_alerts(&rig.gw)[0].1 == "resolved"
    })
    .await
    .unwrap_or_else(|_| panic!("alert not resolved\n{}", rig.gw.log_text()));

    // 2 s later the panel, renumbered from the same point, reports a new press.
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs(2)).await;
    let second = frame(
        "1234",
        "0042",
        cid("1101 01 003"),
        None,
        t0 + SignedDuration::from_secs(2),
    );
    assert_ne!(first, second, "the timestamp differs");
    assert_ack_for(&second, &rig.ask(Via::Tcp, &second).await, None);
    assert_eq!(
        journaled_per_frame(&rig.gw, &[first, second]),
        [1, 1],
        "both presses journaled\n{}",
        rig.gw.log_text()
    );
    wait_until_async(Duration::from_secs(10), || {
        pendant_alerts(&rig.gw).len() == 2
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no second alert: {:?}\n{}",
            pendant_alerts(&rig.gw),
            rig.gw.log_text()
        )
    });
    assert_eq!(pendant_alerts(&rig.gw)[1].1, "open");
}

/// A true retransmission (the same bytes: account, sequence and message) within
/// `retransmit_window` is ACKed and journaled once; the same frame after the window is a new
/// event (the transmitter's retries are long over, so it is a panel repeating itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmission_is_journaled_once_within_retransmit_window_and_again_after_it() {
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        "accounts = [{ account = \"1234\" }]\nretransmit_window = \"3s\"",
        "",
    )
    .await;
    let f = frame("1234", "0077", cid("1101 01 003"), None, Timestamp::now());
    assert_ack_for(&f, &rig.ask(Via::Tcp, &f).await, None);
    assert_ack_for(&f, &rig.ask(Via::Udp, &f).await, None);
    assert_ack_for(&f, &rig.ask(Via::Tcp, &f).await, None);
    assert_eq!(
        journaled_per_frame(&rig.gw, std::slice::from_ref(&f)),
        [1],
        "retransmissions within the window are journaled once"
    );
    // After the window (and still inside the 40 s timestamp window): a new event.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_ack_for(&f, &rig.ask(Via::Tcp, &f).await, None);
    assert_eq!(
        journaled_per_frame(&rig.gw, std::slice::from_ref(&f)),
        [2],
        "the same frame after retransmit_window is a new event\n{}",
        rig.gw.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// 7. A panel with a wrong clock (issue 12 item 8)
// ---------------------------------------------------------------------------------------------

/// A panel whose clock is 55 s slow sends the same alarm again and again, ignoring the time in
/// our NAKs. Each frame gets a NAK with the receiver's time and a dead letter, and, because all
/// its alarms are being refused, one gateway alert names the panel and the offset (once per
/// hour per account, not once per frame).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_whose_clock_is_off_gets_naks_and_one_gateway_alert_saying_its_alarms_are_refused()
{
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "2222" }]"#,
        "",
    )
    .await;
    let slow = Timestamp::now() - SignedDuration::from_secs(55);
    let f = frame("2222", "0001", cid("1110 01 007"), None, slow);
    for _ in 0..4 {
        let answer = rig.ask(Via::Tcp, &f).await;
        let nak = parse(&answer);
        assert_eq!(nak.header.token, Token::Nak, "{}", show(&answer));
        let Body::Clear(p) = &nak.body else {
            unreachable!()
        };
        let theirs = p
            .timestamp
            .expect("NAK carries the receiver's time")
            .timestamp();
        assert!(theirs.duration_since(Timestamp::now()).as_secs().abs() < 5);
    }
    assert_eq!(dead_letters_for(&rig.gw, "stale_timestamp").len(), 4);

    let journal = journal_dc09(&rig.gw);
    assert_eq!(
        journal.len(),
        1,
        "one gateway alert, no alarm: {journal:#?}"
    );
    let alert = &journal[0];
    assert_eq!(alert["data"]["kind"], "device_fault");
    assert_eq!(alert["data"]["priority"], "high");
    assert_eq!(alert["data"]["raw"]["payload"]["alert"], "clock_fault");
    assert_eq!(alert["data"]["raw"]["payload"]["account"], "2222");
    let message = alert["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("panel 2222: clock off by 5")
            && message.contains("its alarms are being refused"),
        "{message}"
    );
    wait_until_async(Duration::from_secs(30), || !rig.upstream_dc09().is_empty())
        .await
        .unwrap_or_else(|_| panic!("alert not upstream\n{}", rig.gw.log_text()));
    assert_eq!(rig.upstream_dc09()[0]["id"], alert["id"]);
}

// ---------------------------------------------------------------------------------------------
// 5. Interop with an independent transmitter
// ---------------------------------------------------------------------------------------------

fn interop_script() -> PathBuf {
    repo().join("tests/fixtures/dc09/spt_interop.py")
}

/// The `my-dc09-spt` package (PyPI; `.ci/run` installs it) sends plain and AES frames (hex and
/// ASCII keys) over TCP and UDP, through its block builder and through its dialler, and its own
/// answer check (`dc09_msg.dc09answer`: length, CRC, seq, `*ACK` decryption) passes on every
/// answer; the events are journaled with their decrypted content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_dc09_spt_transmitter_is_acked_and_its_own_answer_check_passes() {
    let python_path = python_path_with("my_dc09_spt", "my-dc09-spt");
    let dir = tempfile::tempdir().unwrap();
    // my-dc09-spt takes 16- or 32-byte keys only.
    let hex = write_secret(&dir.path().join("dc09-5678.key"), K128_HEX);
    let ascii = write_secret(&dir.path().join("dc09-9abc.key"), ASCII_KEY);
    let keys = format!(
        r#"accounts = [
  {{ account = "1234" }},
  {{ account = "YA247940" }},
  {{ account = "5678", key_file = "{}", key_format = "hex" }},
  {{ account = "9ABC", key_file = "{}", key_format = "ascii" }},
]"#,
        hex.display(),
        ascii.display()
    );
    let rig = Rig::start(dir, &keys, REGISTRY).await;

    let run = tokio::process::Command::new("python3")
        .env("PYTHONPATH", &python_path)
        .arg(interop_script())
        .args(["--tcp-port", &rig.tcp.port().to_string()])
        .args(["--udp-port", &rig.udp.port().to_string()])
        .args(["--hex-account", "5678", "--hex-key", K128_HEX])
        .args(["--ascii-account", "9ABC", "--ascii-key", ASCII_KEY])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the interop script finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("my-dc09-spt exchanges:\n{stdout}");
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    assert_eq!(results.len(), 9, "{stdout}\n{stderr}");
    for r in &results {
        assert_eq!(
            r["verdict"],
            "ACK",
            "{r:#}\n{stderr}\n{}",
            rig.gw.log_text()
        );
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // The block builder's frames (ours to compare, as it sent them) are each journaled once.
    let sent: Vec<Vec<u8>> = results
        .iter()
        .filter(|r| {
            !r["case"].as_str().unwrap().starts_with("dialler")
                && !r["case"].as_str().unwrap().starts_with("null")
        })
        .map(|r| latin1(r["sent"].as_str().unwrap()))
        .filter(|f| !parse(f).header.encrypted)
        .collect();
    assert_eq!(journaled_per_frame(&rig.gw, &sent), vec![1; sent.len()]);

    let journal = journal_dc09(&rig.gw);
    let find = |upstream_id: &str, kind: &str| -> &Value {
        journal
            .iter()
            .find(|e| e["data"]["raw"]["upstream_id"] == upstream_id && e["data"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event {upstream_id}: {journal:#?}"))
    };
    let press = find("1234:0011", "pendant_press");
    assert_eq!(press["data"]["device"]["id"], "pendant-12");
    assert_eq!(press["data"]["phase"], "raised");
    assert_eq!(find("1234:0012", "medical")["data"]["codes"]["sia"], "MA");
    assert_eq!(
        find("1234:0013", "low_battery")["data"]["device"]["id"],
        "panel-1234"
    );
    find("YA247940:0014", "pendant_press");
    let aes = find("5678:0015", "pendant_press");
    assert!(
        aes["data"]["raw"]["payload"]
            .as_str()
            .unwrap()
            .contains("[#5678|1101 01 005]")
    );
    find("9ABC:0016", "medical");
    // The dialler's own numbering starts at 0001.
    let restore = find("1234:0001", "pendant_press");
    assert_eq!(restore["data"]["phase"], "cleared");
    assert_eq!(restore["data"]["device"]["id"], "pendant-12");
    let cleared = find("9ABC:0001", "medical");
    assert_eq!(cleared["data"]["phase"], "cleared");
    let schema = schema();
    for e in &journal {
        assert_schema_valid(&schema, e);
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Registry keys are canonical (issue 13 item 6)
// ---------------------------------------------------------------------------------------------

/// What is wrong with where each of `frames` landed: its answer was not an ACK, or its event
/// is not `device` with `resident` in `room`. Empty when all are placed; one line per problem,
/// so a failure shows every zone form at once.
fn misplaced(
    rig: &Rig,
    frames: &[(Vec<u8>, Vec<u8>)],
    device: &str,
    resident: &str,
    room: &str,
) -> Vec<String> {
    let journal = journal_dc09(&rig.gw);
    let mut problems = Vec::new();
    for (f, answer) in frames {
        let data = parse(f).body;
        let Body::Clear(p) = data else {
            unreachable!("plaintext frames only")
        };
        let token = parse(answer).header.token;
        if token != Token::Ack {
            problems.push(format!("{:?}: answered {}", p.data, token.as_str()));
            continue;
        }
        let message = message_of(f);
        let Some(e) = journal
            .iter()
            .find(|e| e["data"]["raw"]["payload"].as_str() == Some(message.as_str()))
        else {
            problems.push(format!("{:?}: ACKed but not journaled", p.data));
            continue;
        };
        let got = (
            e["data"]["device"]["id"].as_str().unwrap_or("-"),
            e["data"]["resident"]["id"].as_str().unwrap_or("-"),
            e["data"]["location"]["room"].as_str().unwrap_or("-"),
        );
        if got != (device, resident, room) {
            problems.push(format!(
                "{:?}: device/resident/room {got:?}, message {}",
                p.data, e["data"]["message"]
            ));
        }
    }
    problems
}

/// Sends each DC-03 block and Contact ID event from `account` over TCP and returns
/// `(frame, answer)` pairs; numbered from `first_seq`.
async fn send_all(
    rig: &Rig,
    account: &str,
    first_seq: u16,
    payloads: Vec<SimPayload>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let now = Timestamp::now();
    let mut out = Vec::new();
    for (n, p) in (first_seq..).zip(payloads) {
        let f = frame(account, &format!("{n:04}"), p, None, now);
        let answer = rig.ask(Via::Tcp, &f).await;
        out.push((f, answer));
    }
    out
}

/// Transmitters write zone 7 as `7`, `07`, `007` or `0007` (SIA DC-03 with and without the
/// `/` after the area modifier; Contact ID padded to its 3 digits, or not): all are the
/// pendant registered as `zone = "007"`, with its resident and room, never the panel's entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_written_7_07_007_or_0007_in_dc03_and_contact_id_gets_the_devices_room_and_resident()
{
    let registry = r#"
[[device]]
id = "pendant-7"
adapter = "alarms"
match = { account = "1234", zone = "007" }
resident = "res-0007"
location = { area = "east", room = "7" }

[[device]]
id = "panel-1234"
adapter = "alarms"
match = { account = "1234" }
location = { area = "ground", room = "hall" }
"#;
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        registry,
    )
    .await;
    let sia = |b: &str| SimPayload::Sia(b.into());
    let payloads = vec![
        sia("Nri1MA7"),
        sia("Nri1/MA07"),
        sia("Nri1/MA007"),
        sia("Nri1MA0007"),
        cid("1101 01 7"),
        cid("1101 01 07"),
        cid("1101 01 007"),
        cid("1101 01 0007"),
        cid("110101007"),
    ];
    let sent = send_all(&rig, "1234", 801, payloads).await;
    let problems = misplaced(&rig, &sent, "pendant-7", "res-0007", "7");
    assert!(
        problems.is_empty(),
        "zone 7 not placed as pendant-7:\n{}\n{}",
        problems.join("\n"),
        rig.gw.log_text()
    );
}

/// The integrator writes `zone = "7"`; the panel sends `007` (and `0007`): the same zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_configured_as_zone_7_matches_frames_that_write_it_007() {
    let registry = r#"
[[device]]
id = "pullcord-7"
adapter = "alarms"
match = { account = "1234", zone = "7" }
resident = "res-0077"
location = { area = "west", room = "7a" }
"#;
    let rig = Rig::start(
        tempfile::tempdir().unwrap(),
        r#"accounts = [{ account = "1234" }]"#,
        registry,
    )
    .await;
    let payloads = vec![
        cid("1101 01 007"),
        SimPayload::Sia("Nri1/QA007".into()),
        SimPayload::Sia("Nri1/QA0007".into()),
    ];
    let sent = send_all(&rig, "1234", 901, payloads).await;
    let problems = misplaced(&rig, &sent, "pullcord-7", "res-0077", "7a");
    assert!(
        problems.is_empty(),
        "zone 007 not placed as pullcord-7:\n{}\n{}",
        problems.join("\n"),
        rig.gw.log_text()
    );
}
