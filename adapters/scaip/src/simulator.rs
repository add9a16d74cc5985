//! A SCAIP unit (`atgw simulate scaip`): sends alarms, information updates, resets and
//! heartbeats as SIP `MESSAGE`s over UDP, TCP or TLS (`sips:`), answers digest challenges, answers the
//! receiver's `<mrs>` MESSAGE with `200 OK`, and checks every reply: a final `200`, then an
//! `<mrs>` whose `ref` echoes ours and whose `snu` is the one expected.
//!
//! One request at a time, as a unit does; over UDP the request is retransmitted (T1 doubling
//! to T2) until a final response arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::codec::{MessageType, Request, Response};
use crate::sip::framing::{Frame, Framer};
use crate::sip::{Message, StartLine, digest};

/// Which transport the unit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimTransport {
    Udp,
    Tcp,
    /// SIP over TLS: needs [`SimulatorConfig::tls`].
    Tls,
}

/// One request the unit sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A new alarm (`ME`) with a new `ref`.
    Alarm,
    /// `IN` for the last alarm's `ref`.
    Update,
    /// `RE` for the last alarm's `ref`.
    Reset,
    /// `PI`, offering `hbo` when configured.
    Heartbeat,
}

/// What the unit is and does.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    pub target: SocketAddr,
    pub transport: SimTransport,
    /// The unit's controller id (also its SIP user unless `user` is set).
    pub cid: String,
    pub dty: u16,
    pub stc: Option<u16>,
    pub lco: Option<u16>,
    pub did: Option<String>,
    /// Digest credentials, answered when challenged.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Offer `hbo` 1 on heartbeats.
    pub hbo: bool,
    pub steps: Vec<Step>,
    /// Pause between requests.
    pub interval: Duration,
    /// How long one request may take to be answered (final response and `<mrs>`).
    pub timeout: Duration,
    /// The `snu` every `<mrs>` must carry.
    pub expect_snu: u8,
    /// First `ref` number (refs count up from it).
    pub first_ref: u64,
    /// TLS client config for [`SimTransport::Tls`] (see [`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the receiver's certificate must carry (default: the target's IP address).
    pub server_name: Option<String>,
}

impl SimulatorConfig {
    pub fn new(target: SocketAddr, cid: &str) -> SimulatorConfig {
        SimulatorConfig {
            target,
            transport: SimTransport::Udp,
            cid: cid.to_owned(),
            dty: 3,
            stc: None,
            lco: None,
            did: None,
            user: None,
            password: None,
            hbo: false,
            steps: vec![Step::Alarm],
            interval: Duration::ZERO,
            timeout: Duration::from_secs(10),
            expect_snu: 0,
            first_ref: u64::from(rand::random::<u32>()),
            tls: None,
            server_name: None,
        }
    }
}

/// What one request got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub step: Step,
    pub reference: String,
    /// The final SIP status (after answering any challenge), `None` on timeout.
    pub status: Option<u16>,
    /// The `<mrs>` received.
    pub mrs: Option<Response>,
    /// Digest challenges answered.
    pub challenges: u32,
    /// What was wrong, when something was.
    pub problem: Option<String>,
    pub latency: Duration,
}

/// The run's tally.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub exchanges: Vec<Exchange>,
}

impl SimReport {
    pub fn good(&self) -> usize {
        self.exchanges
            .iter()
            .filter(|e| e.problem.is_none())
            .count()
    }

    pub fn all_good(&self) -> bool {
        !self.exchanges.is_empty() && self.good() == self.exchanges.len()
    }

    /// Latency percentile (0–100) over good exchanges.
    pub fn latency(&self, pct: f64) -> Option<Duration> {
        let mut l: Vec<Duration> = self
            .exchanges
            .iter()
            .filter(|e| e.problem.is_none())
            .map(|e| e.latency)
            .collect();
        if l.is_empty() {
            return None;
        }
        l.sort();
        let i = ((pct / 100.0) * (l.len() - 1) as f64).round() as usize;
        l.get(i.min(l.len() - 1)).copied()
    }
}

/// A unit's connection to the receiver.
enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream, Framer),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>, Framer),
}

impl Link {
    async fn open(cfg: &SimulatorConfig) -> std::io::Result<Link> {
        let any = if cfg.target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        match cfg.transport {
            SimTransport::Udp => {
                let s = UdpSocket::bind(any).await?;
                s.connect(cfg.target).await?;
                Ok(Link::Udp(s))
            }
            SimTransport::Tcp => {
                let s = TcpStream::connect(cfg.target).await?;
                s.set_nodelay(true)?;
                Ok(Link::Tcp(s, Framer::default()))
            }
            SimTransport::Tls => {
                let config = cfg.tls.clone().ok_or_else(|| {
                    std::io::Error::other("TLS needs a client config (the CA to trust)")
                })?;
                let name = cfg
                    .server_name
                    .clone()
                    .unwrap_or_else(|| cfg.target.ip().to_string());
                let name = rustls::pki_types::ServerName::try_from(name)
                    .map_err(|e| std::io::Error::other(format!("server name: {e}")))?;
                let s = TcpStream::connect(cfg.target).await?;
                s.set_nodelay(true)?;
                let s = tokio_rustls::TlsConnector::from(config)
                    .connect(name, s)
                    .await?;
                Ok(Link::Tls(Box::new(s), Framer::default()))
            }
        }
    }

    fn local(&self) -> std::io::Result<SocketAddr> {
        match self {
            Link::Udp(s) => s.local_addr(),
            Link::Tcp(s, _) => s.local_addr(),
            Link::Tls(s, _) => s.get_ref().0.local_addr(),
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Link::Udp(..) => "UDP",
            Link::Tcp(..) => "TCP",
            Link::Tls(..) => "TLS",
        }
    }

    fn scheme(&self) -> &'static str {
        match self {
            Link::Tls(..) => "sips",
            _ => "sip",
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Link::Udp(s) => s.send(bytes).await.map(|_| ()),
            Link::Tcp(s, _) => s.write_all(bytes).await,
            Link::Tls(s, _) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// The next message, or `None` at `deadline`.
    async fn recv(&mut self, deadline: Instant) -> std::io::Result<Option<Message>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self {
                Link::Udp(s) => {
                    let mut buf = vec![0u8; 65_535];
                    match tokio::time::timeout(left, s.recv(&mut buf)).await {
                        Err(_) => return Ok(None),
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                            tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                        }
                        Ok(Err(e)) => return Err(e),
                        Ok(Ok(n)) => {
                            if let Ok(m) = Message::parse(&buf[..n]) {
                                return Ok(Some(m));
                            }
                        }
                    }
                }
                Link::Tcp(_, framer) | Link::Tls(_, framer) => {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(raw))) => {
                            if let Ok(m) = Message::parse(&raw) {
                                return Ok(Some(m));
                            }
                            continue;
                        }
                        Ok(Some(Frame::Ping)) => continue,
                        Ok(None) => {}
                        Err(e) => return Err(std::io::Error::other(e.to_string())),
                    }
                    let mut buf = [0u8; 4096];
                    let read = match self {
                        Link::Tcp(s, _) => tokio::time::timeout(left, s.read(&mut buf)).await,
                        Link::Tls(s, _) => tokio::time::timeout(left, s.read(&mut buf)).await,
                        Link::Udp(_) => return Ok(None),
                    };
                    match read {
                        Err(_) => return Ok(None),
                        Ok(Ok(0)) => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the receiver closed the connection",
                            ));
                        }
                        Ok(Ok(n)) => match self {
                            Link::Tcp(_, f) | Link::Tls(_, f) => f.push(&buf[..n]),
                            Link::Udp(_) => {}
                        },
                        Ok(Err(e)) => return Err(e),
                    }
                }
            }
        }
    }
}

/// Runs the unit's steps against the receiver.
pub async fn simulate(cfg: SimulatorConfig) -> std::io::Result<SimReport> {
    let mut link = Link::open(&cfg).await?;
    let mut report = SimReport::default();
    let mut next_ref = cfg.first_ref;
    let mut alarm_ref: Option<String> = None;
    let mut cseq = 0u32;
    for (i, step) in cfg.steps.iter().copied().enumerate() {
        if i > 0 && !cfg.interval.is_zero() {
            tokio::time::sleep(cfg.interval).await;
        }
        let reference = match step {
            Step::Update | Step::Reset => match &alarm_ref {
                Some(r) => r.clone(),
                None => next(&mut next_ref),
            },
            Step::Alarm | Step::Heartbeat => next(&mut next_ref),
        };
        if step == Step::Alarm {
            alarm_ref = Some(reference.clone());
        }
        let req = request(&cfg, step, &reference);
        let x = exchange(&mut link, &cfg, step, &req, &mut cseq).await?;
        report.exchanges.push(x);
    }
    Ok(report)
}

/// Refs as a unit writes them: 8 digits, counting up.
fn next(n: &mut u64) -> String {
    let r = format!("{:08}", *n % 100_000_000);
    *n += 1;
    r
}

fn request(cfg: &SimulatorConfig, step: Step, reference: &str) -> Request {
    let mut r = Request {
        reference: reference.to_owned(),
        cid: cfg.cid.clone(),
        dty: cfg.dty,
        did: cfg.did.clone(),
        crd: vec!["no-voice:".into()],
        ..Request::default()
    };
    match step {
        Step::Alarm => {
            r.stc = cfg.stc;
            r.lco = cfg.lco;
        }
        Step::Update => {
            r.mty = MessageType::Information;
            r.stc = cfg.stc;
            r.lco = cfg.lco;
            r.stt = Some("update from the unit".into());
        }
        Step::Reset => {
            r.mty = MessageType::Reset;
            r.stc = Some(93);
        }
        Step::Heartbeat => {
            r.mty = MessageType::Heartbeat;
            r.dty = 2;
            r.did = None;
            r.crd.clear();
            r.hbo = cfg.hbo.then_some(1);
        }
    }
    r
}

/// One request until its final response and `<mrs>`, answering a challenge once.
async fn exchange(
    link: &mut Link,
    cfg: &SimulatorConfig,
    step: Step,
    req: &Request,
    cseq: &mut u32,
) -> std::io::Result<Exchange> {
    let local = link.local()?;
    let call_id = format!("{:016x}@atgw-sim", rand::random::<u64>());
    let from_tag = format!("{:08x}", rand::random::<u32>());
    let user = cfg.user.clone().unwrap_or_else(|| cfg.cid.clone());
    let scheme = link.scheme();
    let uri = format!("{scheme}:arc@{}", cfg.target);
    let start = Instant::now();
    let deadline = start + cfg.timeout;
    let mut out = Exchange {
        step,
        reference: req.reference.clone(),
        status: None,
        mrs: None,
        challenges: 0,
        problem: None,
        latency: Duration::ZERO,
    };
    let mut authorization: Option<String> = None;
    let body = req.encode();
    'attempt: loop {
        *cseq += 1;
        let branch = format!("z9hG4bK{:016x}", rand::random::<u64>());
        let mut m = Message::request("MESSAGE", &uri);
        m.push(
            "Via",
            format!("SIP/2.0/{} {local};branch={branch};rport", link.transport()),
        );
        m.push("Max-Forwards", "70");
        m.push(
            "From",
            format!("<{scheme}:{}@{local}>;tag={from_tag}", cfg.cid),
        );
        m.push("To", format!("<{uri}>"));
        m.push("Call-ID", call_id.clone());
        m.push("CSeq", format!("{cseq} MESSAGE"));
        m.push("Contact", format!("<{scheme}:{}@{local}>", cfg.cid));
        if let Some(a) = &authorization {
            m.push("Authorization", a.clone());
        }
        m.push("Content-Type", "application/scaip+xml");
        m.body = body.as_bytes().to_vec();
        let bytes = m.encode();
        link.send(&bytes).await?;
        let mut resend = Instant::now() + Duration::from_millis(500);
        let mut wait = Duration::from_millis(500);
        let mut final_status: Option<u16> = None;
        let mut challenge: Vec<String> = Vec::new();
        loop {
            let done = match final_status {
                Some(200..=299) => out.mrs.is_some(),
                Some(_) => true,
                None => false,
            };
            if done {
                break;
            }
            let udp = matches!(link, Link::Udp(..));
            let until = if udp && final_status.is_none() {
                resend.min(deadline)
            } else {
                deadline
            };
            let Some(msg) = link.recv(until).await? else {
                if Instant::now() >= deadline {
                    out.problem = Some(match final_status {
                        None => "no final response".into(),
                        Some(c) => format!("SIP {c} but no <mrs> MESSAGE"),
                    });
                    out.status = final_status;
                    return Ok(out);
                }
                link.send(&bytes).await?;
                wait = (wait * 2).min(Duration::from_secs(4));
                resend = Instant::now() + wait;
                continue;
            };
            match &msg.start {
                StartLine::Response { code, .. } => {
                    if msg.branch() != Some(branch.as_str()) || *code < 200 {
                        continue;
                    }
                    final_status = Some(*code);
                    challenge = msg
                        .headers_named("WWW-Authenticate")
                        .map(str::to_owned)
                        .collect();
                }
                StartLine::Request { method, .. } => {
                    let ok = msg.response(200, "OK", &from_tag).encode();
                    link.send(&ok).await?;
                    if method == "MESSAGE"
                        && msg.header("Call-ID") == Some(call_id.as_str())
                        && out.mrs.is_none()
                    {
                        match Response::decode(&msg.body) {
                            Ok(r) => out.mrs = Some(r),
                            Err(e) => {
                                out.problem = Some(format!("unreadable <mrs>: {e}"));
                                out.status = final_status;
                                return Ok(out);
                            }
                        }
                    }
                }
            }
        }
        out.status = final_status;
        if final_status == Some(401) && out.challenges < 2 {
            let (Some(user), Some(pw)) = (Some(&user), cfg.password.as_deref()) else {
                out.problem = Some("challenged (401) but no credentials".into());
                return Ok(out);
            };
            let answer = challenge
                .iter()
                .find_map(|c| digest::answer(c, user, pw, "MESSAGE", &uri));
            let Some(a) = answer else {
                out.problem = Some("401 offers no digest algorithm we can answer".into());
                return Ok(out);
            };
            authorization = Some(a);
            out.challenges += 1;
            continue 'attempt;
        }
        break;
    }
    out.latency = start.elapsed();
    out.problem = match (out.status, &out.mrs) {
        (Some(200..=299), Some(r)) if r.reference.as_deref() != Some(req.reference.as_str()) => {
            Some(format!(
                "<mrs> ref {:?} does not echo ours ({})",
                r.reference, req.reference
            ))
        }
        (Some(200..=299), Some(r)) if r.snu != cfg.expect_snu => {
            Some(format!("<mrs> snu {} (expected {})", r.snu, cfg.expect_snu))
        }
        (Some(200..=299), Some(r)) if step == Step::Heartbeat && cfg.hbo && r.hbi.is_none() => {
            Some("offered hbo but the <mrs> has no hbi".into())
        }
        (Some(200..=299), Some(_)) => None,
        (Some(c), _) => Some(format!("SIP {c}")),
        (None, _) => Some("no final response".into()),
    };
    Ok(out)
}
