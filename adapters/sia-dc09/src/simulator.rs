//! A DC-09 transmitter for `atgw simulate dc09`: sends Contact ID, SIA or NULL frames, plain or
//! encrypted, over TCP or UDP, at a rate, and checks every answer (the ACK echoes our seq and
//! account; an encrypted ACK decrypts with the key and carries a timestamp). Like a real
//! transmitter it adopts the receiver's clock offset from a NAK.

use std::net::SocketAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::codec::FrameDecoder;
use crate::crypto::{self, AesKey};
use crate::frame::{Body, Frame, Header, Payload, Token, parse_payload};
use crate::timestamp::Dc09Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// What each frame carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimPayload {
    /// `QEEE GG ZZZ`, e.g. `"1101 01 003"`.
    ContactId(String),
    /// A DC-03 block, e.g. `"Nri1/MA001"`.
    Sia(String),
    /// Link test.
    Null,
}

#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// The receiver.
    pub target: SocketAddr,
    pub transport: Transport,
    /// `#acct` to send, as text.
    pub account: String,
    /// `R` field, if any.
    pub receiver: Option<String>,
    /// `L` field (`"0"` when unused).
    pub prefix: String,
    /// Encrypt with this key (`*` tokens).
    pub key: Option<AesKey>,
    pub payload: SimPayload,
    /// Frames to send.
    pub count: u64,
    /// Frames per second; `0` sends each frame as soon as the previous one is answered.
    pub rate_per_sec: f64,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// Put a timestamp on plaintext frames too (encrypted frames always carry one).
    pub timestamp: bool,
}

impl SimulatorConfig {
    /// One plaintext Contact ID 101 (personal emergency) over TCP.
    pub fn new(target: SocketAddr, account: impl Into<String>) -> SimulatorConfig {
        SimulatorConfig {
            target,
            transport: Transport::Tcp,
            account: account.into(),
            receiver: None,
            prefix: "0".into(),
            key: None,
            payload: SimPayload::ContactId("1101 01 003".into()),
            count: 1,
            rate_per_sec: 0.0,
            timeout: Duration::from_secs(5),
            timestamp: true,
        }
    }
}

/// What happened to the frames sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    pub sent: u64,
    /// Correct ACKs (seq and account echoed; encrypted ACK decrypted).
    pub acked: u64,
    pub nak: u64,
    pub duh: u64,
    /// No answer within `timeout`.
    pub timeouts: u64,
    /// An answer that was not a correct ACK, NAK or DUH for the frame.
    pub bad_answers: u64,
    /// Send → answer, over answered frames.
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot reach the DC-09 receiver at {target}: {source}")]
    Connect {
        target: SocketAddr,
        source: std::io::Error,
    },
    #[error("simulator config: {0}")]
    Config(String),
}

/// The sequence number DC-09 uses for the `i`-th frame: 0001…9999, then wraps to 0001.
pub fn seq_for(i: u64) -> String {
    format!("{:04}", i % 9999 + 1)
}

/// Builds one frame as the simulator sends it.
pub fn build_frame(
    cfg: &SimulatorConfig,
    seq: &str,
    now: Timestamp,
    rng: &mut impl Rng,
) -> Vec<u8> {
    let (token, data) = match &cfg.payload {
        SimPayload::ContactId(e) => (Token::AdmCid, format!("#{}|{e}", cfg.account)),
        SimPayload::Sia(b) => (Token::SiaDcs, format!("#{}|{b}", cfg.account)),
        SimPayload::Null => (Token::Null, String::new()),
    };
    let payload = Payload {
        data,
        xdata: Vec::new(),
        timestamp: (cfg.timestamp || cfg.key.is_some()).then(|| Dc09Time::from_timestamp(now)),
    };
    let body = match &cfg.key {
        Some(key) => Body::Encrypted(crypto::seal(key, &payload.encode(), rng)),
        None => Body::Clear(payload),
    };
    Frame {
        header: Header {
            token,
            encrypted: cfg.key.is_some(),
            seq: seq.to_owned(),
            receiver: cfg.receiver.clone(),
            prefix: Some(cfg.prefix.clone()),
            account: Some(cfg.account.clone()),
        },
        body,
    }
    .encode()
}

enum Verdict {
    Ack,
    Nak(Option<Timestamp>),
    Duh,
    Bad,
    /// An answer to an earlier frame (UDP after a timeout): keep waiting.
    Stale,
}

fn judge(cfg: &SimulatorConfig, seq: &str, answer: &[u8]) -> Verdict {
    let Ok((f, _)) = Frame::decode(answer) else {
        return Verdict::Bad;
    };
    let h = &f.header;
    if h.token == Token::Nak {
        let ts = match &f.body {
            Body::Clear(p) => p.timestamp.map(Dc09Time::timestamp),
            Body::Encrypted(_) => None,
        };
        return Verdict::Nak(ts);
    }
    if h.seq != seq {
        return Verdict::Stale;
    }
    if h.account.as_deref() != Some(cfg.account.as_str()) {
        return Verdict::Bad;
    }
    match h.token {
        Token::Duh => Verdict::Duh,
        Token::Ack => match (&cfg.key, &f.body) {
            (None, Body::Clear(_)) => Verdict::Ack,
            (Some(key), Body::Encrypted(hex)) => {
                let ok = crypto::open(key, hex)
                    .ok()
                    .and_then(|t| parse_payload(&t).ok())
                    .is_some_and(|p| p.timestamp.is_some());
                if ok { Verdict::Ack } else { Verdict::Bad }
            }
            _ => Verdict::Bad,
        },
        _ => Verdict::Bad,
    }
}

enum Link {
    Tcp(Option<TcpStream>, FrameDecoder),
    Udp(UdpSocket),
}

impl Link {
    async fn open(cfg: &SimulatorConfig) -> Result<Link, SimError> {
        let connect = |source| SimError::Connect {
            target: cfg.target,
            source,
        };
        Ok(match cfg.transport {
            Transport::Tcp => {
                let s = TcpStream::connect(cfg.target).await.map_err(connect)?;
                s.set_nodelay(true).map_err(connect)?;
                Link::Tcp(Some(s), FrameDecoder::new(8192))
            }
            Transport::Udp => {
                let any: SocketAddr = if cfg.target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(any).await.map_err(connect)?;
                s.connect(cfg.target).await.map_err(connect)?;
                Link::Udp(s)
            }
        })
    }

    /// Sends and waits for the answer to `seq`; `None` on timeout or a broken connection
    /// (TCP then reconnects on the next send).
    async fn exchange(
        &mut self,
        cfg: &SimulatorConfig,
        frame: &[u8],
        seq: &str,
        deadline: Instant,
    ) -> Option<Verdict> {
        match self {
            Link::Tcp(slot, decoder) => {
                if slot.is_none() {
                    let s = TcpStream::connect(cfg.target).await.ok()?;
                    let _ = s.set_nodelay(true);
                    *slot = Some(s);
                    *decoder = FrameDecoder::new(8192);
                }
                let sock = slot.as_mut()?;
                if sock.write_all(frame).await.is_err() {
                    *slot = None;
                    return None;
                }
                let mut buf = [0u8; 4096];
                loop {
                    while let Ok(Some(answer)) = decoder.next_frame() {
                        match judge(cfg, seq, &answer) {
                            Verdict::Stale => continue,
                            v => return Some(v),
                        }
                    }
                    match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => decoder.extend(&buf[..n]),
                        _ => {
                            // Timeout or closed: a late answer must not be taken for the next frame.
                            *slot = None;
                            return None;
                        }
                    }
                }
            }
            Link::Udp(sock) => {
                sock.send(frame).await.ok()?;
                let mut buf = [0u8; 4096];
                loop {
                    let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                        Ok(Ok(n)) => n,
                        Ok(Err(_)) => continue,
                        Err(_) => return None,
                    };
                    let mut d = FrameDecoder::new(8192);
                    d.extend(&buf[..n]);
                    if let Ok(Some(answer)) = d.next_frame() {
                        match judge(cfg, seq, &answer) {
                            Verdict::Stale => continue,
                            v => return Some(v),
                        }
                    }
                }
            }
        }
    }
}

/// Sends `count` frames and reports what came back.
pub async fn simulate(cfg: SimulatorConfig) -> Result<SimReport, SimError> {
    if !(3..=16).contains(&cfg.account.len())
        || !cfg.account.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(SimError::Config(format!(
            "account `{}` must be 3-16 letters or digits",
            cfg.account
        )));
    }
    if !cfg.rate_per_sec.is_finite() || cfg.rate_per_sec < 0.0 {
        return Err(SimError::Config(
            "rate must be 0 (as fast as answered) or more".into(),
        ));
    }
    let mut link = Link::open(&cfg).await?;
    let mut report = SimReport::default();
    let mut latencies = Vec::new();
    let mut offset = SignedDuration::ZERO;
    let start = Instant::now();
    for i in 0..cfg.count {
        if cfg.rate_per_sec > 0.0 {
            let at = start + Duration::from_secs_f64(i as f64 / cfg.rate_per_sec);
            tokio::time::sleep_until(at).await;
        }
        let seq = seq_for(i);
        let now = Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now());
        let frame = build_frame(&cfg, &seq, now, &mut rand::rng());
        let sent_at = Instant::now();
        report.sent += 1;
        match link
            .exchange(&cfg, &frame, &seq, sent_at + cfg.timeout)
            .await
        {
            None => report.timeouts += 1,
            Some(v) => {
                latencies.push(sent_at.elapsed());
                match v {
                    Verdict::Ack => report.acked += 1,
                    Verdict::Duh => report.duh += 1,
                    Verdict::Nak(ts) => {
                        report.nak += 1;
                        if let Some(theirs) = ts {
                            offset = theirs.duration_since(Timestamp::now());
                        }
                    }
                    Verdict::Bad | Verdict::Stale => report.bad_answers += 1,
                }
            }
        }
    }
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get((latencies.len().saturating_sub(1)) * p / 100)
            .copied()
    };
    report.latency_p50 = pct(50);
    report.latency_p99 = pct(99);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyFormat;
    use rand::SeedableRng;

    #[test]
    fn sequence_numbers_run_from_0001_to_9999_and_wrap() {
        assert_eq!(seq_for(0), "0001");
        assert_eq!(seq_for(9998), "9999");
        assert_eq!(seq_for(9999), "0001");
    }

    #[test]
    fn built_frames_decode_and_encrypted_ones_open_with_the_key() {
        let mut cfg = SimulatorConfig::new(([127, 0, 0, 1], 7777).into(), "1234");
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let plain = build_frame(&cfg, "0002", now, &mut rng);
        assert_eq!(
            plain,
            b"\nD315003B\"ADM-CID\"0002L0#1234[#1234|1101 01 003]_12:00:00,06-01-2024\r"
        );
        let key = AesKey::parse("000102030405060708090A0B0C0D0E0F", KeyFormat::Hex).unwrap();
        cfg.key = Some(key.clone());
        cfg.payload = SimPayload::Null;
        let (f, _) = Frame::decode(&build_frame(&cfg, "0003", now, &mut rng)).unwrap();
        let Body::Encrypted(hex) = f.body else {
            panic!()
        };
        assert_eq!(crypto::open(&key, &hex).unwrap(), b"]_12:00:00,06-01-2024");
    }
}
