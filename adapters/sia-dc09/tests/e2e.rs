//! End to end over real sockets on 127.0.0.1: the real listeners, and a journal stand-in built
//! on `atgw_sdk::ingest::channel` that the test drains itself (so it can hold a commit and
//! watch that no ACK leaves before it).

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_sdk::clock::{ManualClock, SharedClock};
use atgw_sdk::ingest::{IngestReceiver, IngestRequest, channel};
use atgw_sdk::{Committed, DeadLetter, Health, IngestError, Kind, Shutdown, Submission};
use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::config::Account;
use atgw_sia_dc09::crypto::{self, AesKey, KeyFormat};
use atgw_sia_dc09::frame::{Body, Frame, Token, wrap_message};
use atgw_sia_dc09::{Config, Dc09Adapter, response};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

const NOON: &str = "2024-06-01T12:00:00Z";
const P1: &[u8] = b"\nCA26003A\"SIA-DCS\"0001L0#1234[#1234|Nri1/MA001]_12:00:00,06-01-2024\r";
const P2: &[u8] = b"\nD315003B\"ADM-CID\"0002L0#1234[#1234|1101 01 003]_12:00:00,06-01-2024\r";
const P5: &[u8] = b"\nDC460027\"NULL\"0005L0#1234[]_12:00:00,06-01-2024\r";
const P6: &[u8] = b"\n3B7F0076\"SIA-DCS\"0006R1L2A#00C0FFEE[#00C0FFEE|Nri1/QA002][X002E26.9000][Y51N30.1000][H11:59:58,06-01-2024]_12:00:00,06-01-2024\r";
const P7: &[u8] = b"\nCE110032\"SIA-DCS\"9876R579BDFL789ABC#12345A[#12345A|NFA129]\r";
const P8: &[u8] = b"\n87CD0037\"ADM-CID\"9876R579BDFL789ABC#12345A[#12345A|1110 00 129]\r";
const E1: &[u8] = b"\n8FA20096\"*SIA-DCS\"0007L0#1234[C6A13B37878F5B826F4F8162A1C8D8795EDBF02A40FA96D587219B63BF76686B4BC1AFFDC86C18DD725B8C459CD8CCF19D07E3866394D60730389BF532D371C9\r";
const E5: &[u8] = b"\n1AC90096\"*SIA-DCS\"0010L0#5678[85D8127613D6DC35BA90AB0865674ACF1BCFB26AB5F69646D321910A82FC3513FFB91E5F11845A4283C9DC13B87EBA17107A18A359CE4CDA771BE22AA82DE3C0\r";
const K128: &str = "000102030405060708090A0B0C0D0E0F";
const WAIT: Duration = Duration::from_secs(3);

/// What the stand-in journal saw.
#[derive(Default, Debug)]
struct Journal {
    stored: Vec<Submission>,
    duplicates: usize,
    letters: Vec<DeadLetter>,
    keys: HashSet<String>,
}

/// Commits everything at once, deduplicating on `dedupe_key` like the real journal.
fn auto_journal(mut rx: IngestReceiver) -> Arc<Mutex<Journal>> {
    let j = Arc::new(Mutex::new(Journal::default()));
    let journal = j.clone();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            match req {
                IngestRequest::Submit {
                    submissions, reply, ..
                } => {
                    let mut j = journal.lock().unwrap();
                    let out = submissions
                        .into_iter()
                        .map(|s| {
                            if let Some(k) = &s.dedupe_key
                                && !j.keys.insert(k.clone())
                            {
                                j.duplicates += 1;
                                return Committed::Duplicate;
                            }
                            let ids = (0..s.events.len()).map(|i| format!("id-{i}")).collect();
                            j.stored.push(s);
                            Committed::Stored { ids }
                        })
                        .collect();
                    let _ = reply.send(Ok(out));
                }
                IngestRequest::Reject { letter, reply, .. } => {
                    journal.lock().unwrap().letters.push(letter);
                    let _ = reply.send(Ok(()));
                }
                IngestRequest::LoadState { reply, .. } => {
                    let _ = reply.send(Ok(Vec::new()));
                }
            }
        }
    });
    j
}

struct Running {
    tcp: SocketAddr,
    udp: SocketAddr,
    health: Arc<Health>,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), atgw_sia_dc09::Dc09Error>>,
    _keys: Vec<tempfile::NamedTempFile>,
}

fn config(
    accounts: &[(&str, Option<(&str, KeyFormat)>)],
) -> (Config, Vec<tempfile::NamedTempFile>) {
    let mut c = Config::new("alarms");
    c.listen_tcp = Some("127.0.0.1:0".into());
    c.listen_udp = Some("127.0.0.1:0".into());
    let mut files = Vec::new();
    for (account, key) in accounts {
        let key_file = key.map(|(text, _)| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            writeln!(f, "{text}").unwrap();
            let p = f.path().to_path_buf();
            files.push(f);
            p
        });
        c.accounts.push(Account {
            account: (*account).into(),
            key_file,
            key_format: key.map_or(KeyFormat::Hex, |(_, f)| f),
        });
    }
    (c, files)
}

async fn start(
    config: Config,
    files: Vec<tempfile::NamedTempFile>,
    clock: SharedClock,
) -> (Running, IngestReceiver) {
    let (tx, rx) = channel(16);
    let adapter = Dc09Adapter::bind(config).await.unwrap();
    let (tcp, udp) = (adapter.tcp_addr().unwrap(), adapter.udp_addr().unwrap());
    let health = Arc::new(Health::default());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(adapter.run(
        tx.for_adapter("alarms"),
        health.clone(),
        clock,
        shutdown.clone(),
    ));
    let running = Running {
        tcp,
        udp,
        health,
        shutdown,
        task,
        _keys: files,
    };
    (running, rx)
}

fn clock_at(t: &str) -> (ManualClock, SharedClock) {
    let c = ManualClock::new(t.parse().unwrap());
    (c.clone(), Arc::new(c))
}

fn plain_accounts() -> (Config, Vec<tempfile::NamedTempFile>) {
    config(&[("1234", None), ("00C0FFEE", None), ("12345A", None)])
}

/// Reads one complete frame, or `None` if nothing arrives within `wait`.
async fn read_frame(sock: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    read_frames(sock, 1, wait).await.pop()
}

/// Reads up to `n` frames (several may arrive in one read).
async fn read_frames(sock: &mut TcpStream, n: usize, wait: Duration) -> Vec<Vec<u8>> {
    let mut dec = FrameDecoder::new(4200);
    let mut buf = [0u8; 1024];
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Ok(Some(f)) = dec.next_frame() {
            out.push(f);
        }
        if out.len() >= n {
            return out;
        }
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(k)) if k > 0 => dec.extend(&buf[..k]),
            _ => return out,
        }
    }
}

async fn exchange(addr: SocketAddr, frame: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(frame).await.unwrap();
    read_frame(&mut s, WAIT).await
}

#[tokio::test]
async fn plaintext_vectors_get_the_recorded_ack_over_tcp() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    assert_eq!(
        exchange(r.tcp, P1).await.unwrap(),
        b"\n1BC10012\"ACK\"0001L0#1234[]\r"
    );
    assert_eq!(
        exchange(r.tcp, P6).await.unwrap(),
        b"\nB4010019\"ACK\"0006R1L2A#00C0FFEE[]\r"
    );
    // Several frames on one connection, answered in order.
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    let mut burst = P2.to_vec();
    for frame in [P5, P7, P8] {
        burst.extend_from_slice(frame);
    }
    s.write_all(&burst).await.unwrap();
    let expect = [
        &b"\"ACK\"0002L0#1234[]"[..],
        b"\"ACK\"0005L0#1234[]",
        b"\"ACK\"9876R579BDFL789ABC#12345A[]",
        b"\"ACK\"9876R579BDFL789ABC#12345A[]",
    ];
    let got = read_frames(&mut s, 4, WAIT).await;
    assert_eq!(got, expect.map(wrap_message).to_vec());
    let j = journal.lock().unwrap();
    // P7 and P8 share seq 9876 but differ in content: both journaled.
    assert_eq!(j.stored.len(), 6);
    assert_eq!(j.duplicates, 0);
    let null = j.stored.iter().find(|s| s.events.is_empty()).unwrap();
    assert_eq!(null.seen[0].device_id, "dc09:1234");
    let cid = &j.stored[2].events[0];
    assert_eq!(cid.data.kind, Kind::PendantPress);
    assert_eq!(cid.data.device.component.as_deref(), Some("003"));
    assert!(j.letters.is_empty(), "{:?}", j.letters);
    assert_eq!(r.health.snapshot().committed, 5);
}

#[tokio::test]
async fn encrypted_frames_get_an_encrypted_ack_that_decrypts_with_the_key() {
    let (c, f) = config(&[
        ("1234", Some((K128, KeyFormat::Hex))),
        ("5678", Some(("0123456789ABCDEF", KeyFormat::Ascii))),
    ]);
    let (_, clock) = clock_at("2024-06-01T12:00:03Z");
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    for (frame, key, seq, account) in [
        (
            E1,
            AesKey::parse(K128, KeyFormat::Hex).unwrap(),
            "0007",
            "1234",
        ),
        (
            E5,
            AesKey::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap(),
            "0010",
            "5678",
        ),
    ] {
        let answer = exchange(r.tcp, frame).await.unwrap();
        let (ack, _) = Frame::decode(&answer).unwrap();
        assert_eq!(ack.header.token, Token::Ack);
        assert!(ack.header.encrypted);
        assert_eq!(ack.header.seq, seq);
        assert_eq!(ack.header.account.as_deref(), Some(account));
        let Body::Encrypted(hex) = ack.body else {
            panic!("plain ACK to an encrypted frame")
        };
        assert_eq!(crypto::open(&key, &hex).unwrap(), b"]_12:00:03,06-01-2024");
    }
    let j = journal.lock().unwrap();
    assert_eq!(j.stored.len(), 2);
    assert_eq!(j.stored[0].events[0].data.kind, Kind::Medical);
}

#[tokio::test]
async fn stale_timestamp_gets_nak_with_receiver_time() {
    let (c, f) = plain_accounts();
    let (clock, shared) = clock_at(NOON);
    let (r, rx) = start(c, f, shared).await;
    let journal = auto_journal(rx);
    clock.advance(jiff::SignedDuration::from_secs(41));
    let now: Timestamp = "2024-06-01T12:00:41Z".parse().unwrap();
    assert_eq!(exchange(r.tcp, P1).await.unwrap(), response::nak(now));
    assert!(response::nak(now).ends_with(b"\"NAK\"0000R0L0A0[]_12:00:41,06-01-2024\r"));
    let j = journal.lock().unwrap();
    assert!(j.stored.is_empty());
    assert_eq!(j.letters[0].reason, "stale_timestamp");
}

#[tokio::test]
async fn encrypted_frame_with_a_stale_timestamp_gets_nak() {
    let (c, f) = config(&[("1234", Some((K128, KeyFormat::Hex)))]);
    let (_, clock) = clock_at("2024-06-01T11:59:39Z");
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let answer = exchange(r.tcp, E1).await.unwrap();
    assert_eq!(Frame::decode(&answer).unwrap().0.header.token, Token::Nak);
    assert_eq!(journal.lock().unwrap().letters[0].reason, "stale_timestamp");
}

#[tokio::test]
async fn unknown_token_gets_duh() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let frame = wrap_message(b"\"XNM\"0003L0#1234[]");
    assert_eq!(
        exchange(r.tcp, &frame).await.unwrap(),
        wrap_message(b"\"DUH\"0003L0#1234[]")
    );
    assert_eq!(journal.lock().unwrap().letters[0].reason, "unknown_token");
}

#[tokio::test]
async fn unknown_account_gets_duh_a_dead_letter_and_a_gateway_alert() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let frame = wrap_message(b"\"ADM-CID\"0001L0#9999[#9999|1101 01 003]");
    assert_eq!(
        exchange(r.tcp, &frame).await.unwrap(),
        wrap_message(b"\"DUH\"0001L0#9999[]")
    );
    assert_eq!(
        exchange(r.tcp, &frame).await.unwrap(),
        wrap_message(b"\"DUH\"0001L0#9999[]")
    );
    let j = journal.lock().unwrap();
    assert_eq!(j.letters.len(), 2);
    assert_eq!(j.letters[0].reason, "unknown_account");
    assert_eq!(j.stored.len(), 1, "one alert per account per hour");
    let alert = &j.stored[0].events[0];
    assert_eq!(alert.data.device.id, "dc09:9999");
    assert!(alert.data.message.as_deref().unwrap().contains("9999"));
}

#[tokio::test]
async fn bad_crc_gets_no_answer_and_a_dead_letter() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let mut frame = P1.to_vec();
    frame[1] = b'0';
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    s.write_all(&frame).await.unwrap();
    assert_eq!(read_frame(&mut s, Duration::from_millis(300)).await, None);
    assert_eq!(journal.lock().unwrap().letters[0].reason, "bad_crc");
}

#[tokio::test]
async fn ack_is_sent_only_after_commit() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, mut rx) = start(c, f, clock).await;
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    s.write_all(P2).await.unwrap();
    let Some(IngestRequest::Submit {
        submissions, reply, ..
    }) = rx.recv().await
    else {
        panic!("expected a submit");
    };
    assert_eq!(
        submissions[0].events[0].data.codes.contact_id.as_deref(),
        Some("101")
    );
    // The journal has not answered: nothing may reach the transmitter.
    assert_eq!(read_frame(&mut s, Duration::from_millis(300)).await, None);
    reply
        .send(Ok(vec![Committed::Stored {
            ids: vec!["e1".into()],
        }]))
        .unwrap();
    assert_eq!(
        read_frame(&mut s, WAIT).await.unwrap(),
        wrap_message(b"\"ACK\"0002L0#1234[]")
    );
}

#[tokio::test]
async fn failed_commit_gets_a_nak_with_receiver_time_never_an_ack() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, mut rx) = start(c, f, clock).await;
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    s.write_all(P2).await.unwrap();
    let Some(IngestRequest::Submit { reply, .. }) = rx.recv().await else {
        panic!("expected a submit");
    };
    reply
        .send(Err(IngestError::Storage("disk full".into())))
        .unwrap();
    // A NAK, so the transmitter resends at once instead of waiting out its answer timeout.
    assert_eq!(
        read_frame(&mut s, WAIT).await.unwrap(),
        response::nak(NOON.parse().unwrap())
    );
    assert_eq!(r.health.snapshot().errors, 1);
}

#[tokio::test]
async fn retransmission_is_journaled_once_and_acked_twice() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let ack = wrap_message(b"\"ACK\"0002L0#1234[]");
    assert_eq!(exchange(r.tcp, P2).await.unwrap(), ack);
    assert_eq!(exchange(r.tcp, P2).await.unwrap(), ack);
    let j = journal.lock().unwrap();
    assert_eq!((j.stored.len(), j.duplicates), (1, 1));
    assert_eq!(r.health.snapshot().duplicates, 1);
}

#[tokio::test]
async fn udp_frames_are_answered_to_their_source() {
    let (c, f) = config(&[
        ("1234", None),
        ("5678", Some(("0123456789ABCDEF", KeyFormat::Ascii))),
    ]);
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 2048];
    for (frame, token) in [(P2, Token::Ack), (E5, Token::Ack), (&P1[..5], Token::Duh)] {
        sock.send_to(frame, r.udp).await.unwrap();
        if token == Token::Duh {
            // A truncated datagram is not a frame: no answer.
            assert!(
                tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf))
                    .await
                    .is_err()
            );
            continue;
        }
        let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Frame::decode(&buf[..n]).unwrap().0.header.token, token);
    }
    let j = journal.lock().unwrap();
    assert_eq!(j.stored.len(), 2);
    assert_eq!(j.letters.len(), 1);
}

#[tokio::test]
async fn a_mebibyte_of_random_bytes_does_not_break_service_to_another_connection() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let journal = auto_journal(rx);
    let noise: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
    let addr = r.tcp;
    let flood = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The receiver may close on us mid-way; that is the point.
        let _ = s.write_all(&noise).await;
        let mut sink = [0u8; 1024];
        while let Ok(Ok(n)) = tokio::time::timeout(WAIT, s.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        exchange(r.tcp, P2).await.unwrap(),
        wrap_message(b"\"ACK\"0002L0#1234[]")
    );
    flood.await.unwrap();
    assert_eq!(
        exchange(r.tcp, P1).await.unwrap(),
        wrap_message(b"\"ACK\"0001L0#1234[]")
    );
    assert_eq!(journal.lock().unwrap().stored.len(), 2);
}

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

#[tokio::test]
async fn many_idle_connections_do_not_starve_others() {
    let (mut c, f) = plain_accounts();
    c.per_peer_connections = 8;
    c.max_connections = 64;
    c.idle_timeout = Duration::from_millis(400);
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let _journal = auto_journal(rx);
    // One address opens far more connections than its share and sends nothing.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect_from("127.0.0.1", r.tcp).await);
    }
    // Another address is still served at once.
    let mut s = connect_from("127.0.0.2", r.tcp).await;
    s.write_all(P2).await.unwrap();
    assert_eq!(
        read_frame(&mut s, WAIT).await.unwrap(),
        wrap_message(b"\"ACK\"0002L0#1234[]")
    );
    // The excess connections were refused, and the idle ones are closed after idle_timeout.
    let mut closed = 0;
    for mut sock in idle {
        let mut b = [0u8; 8];
        if let Ok(Ok(0)) = tokio::time::timeout(WAIT, sock.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 40);
    assert!(
        r.health
            .snapshot()
            .rejected
            .get("peer_connection_limit")
            .copied()
            .unwrap_or(0)
            >= 32
    );
}

#[tokio::test]
async fn a_slow_trickle_does_not_keep_a_connection_alive() {
    let (mut c, f) = plain_accounts();
    c.idle_timeout = Duration::from_millis(300);
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let _journal = auto_journal(rx);
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    let started = tokio::time::Instant::now();
    // One byte of a frame every 100 ms never completes a frame.
    for b in P2.iter().take(20) {
        if s.write_all(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn shutdown_completes_within_the_deadline() {
    let (c, f) = plain_accounts();
    let (_, clock) = clock_at(NOON);
    let (r, rx) = start(c, f, clock).await;
    let _journal = auto_journal(rx);
    let _open = TcpStream::connect(r.tcp).await.unwrap();
    assert_eq!(
        exchange(r.tcp, P1).await.unwrap(),
        wrap_message(b"\"ACK\"0001L0#1234[]")
    );
    assert!(r.health.is_connected());
    r.shutdown.cancel();
    let done = tokio::time::timeout(Duration::from_secs(2), r.task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))));
    assert!(!r.health.is_connected());
}

#[tokio::test]
async fn bind_refuses_an_invalid_config_naming_the_key() {
    let mut c = Config::new("alarms");
    c.vendor_codes.insert("1102".into(), "falls".into());
    let e = Dc09Adapter::bind(c).await.unwrap_err().to_string();
    assert!(e.contains("listen_tcp"), "{e}");
    assert!(e.contains("vendor_codes.1102"), "{e}");
    let (c, f) = config(&[("1234", Some(("not a key", KeyFormat::Hex)))]);
    let e = Dc09Adapter::bind(c).await.unwrap_err().to_string();
    assert!(e.contains("account 1234"), "{e}");
    assert!(
        !e.contains("not a key"),
        "key material must not be echoed: {e}"
    );
    drop(f);
}

#[tokio::test]
async fn simulator_gets_every_frame_acked_over_tcp_and_udp_plain_and_encrypted() {
    use atgw_sia_dc09::simulator::{SimPayload, Transport};
    let (c, f) = config(&[("1234", None), ("5678", Some((K128, KeyFormat::Hex)))]);
    let (r, rx) = start(c, f, Arc::new(atgw_sdk::clock::SystemClock)).await;
    let journal = auto_journal(rx);
    let mut cfg = atgw_sia_dc09::SimulatorConfig::new(r.tcp, "1234");
    cfg.count = 20;
    let rep = atgw_sia_dc09::simulate(cfg.clone()).await.unwrap();
    assert_eq!(
        (rep.sent, rep.acked, rep.timeouts, rep.bad_answers),
        (20, 20, 0, 0),
        "{rep:?}"
    );
    assert!(rep.latency_p99.is_some());
    let mut enc = cfg.clone();
    enc.target = r.udp;
    enc.transport = Transport::Udp;
    enc.account = "5678".into();
    enc.key = Some(AesKey::parse(K128, KeyFormat::Hex).unwrap());
    enc.payload = SimPayload::Sia("Nri1/MA001".into());
    enc.count = 10;
    let rep = atgw_sia_dc09::simulate(enc).await.unwrap();
    assert_eq!((rep.sent, rep.acked), (10, 10), "{rep:?}");
    let mut unknown = cfg.clone();
    unknown.account = "9999".into();
    unknown.payload = SimPayload::Null;
    unknown.count = 2;
    let rep = atgw_sia_dc09::simulate(unknown).await.unwrap();
    assert_eq!((rep.duh, rep.acked), (2, 0), "{rep:?}");
    assert_eq!(
        journal.lock().unwrap().stored.len(),
        31,
        "30 frames and one unknown-account alert"
    );
}
