//! The listeners: a UDP socket, a TCP acceptor and a TLS one (`sips:`: the TCP handling on a
//! rustls stream, each handshake in the connection's own task, bounded by
//! [`crate::tls::HANDSHAKE_TIMEOUT`]) that read SIP, hand requests to the
//! [`Dispatcher`] and send what it decides (the final response, then the `<mrs>` MESSAGE), and
//! the client side of our own MESSAGEs (retransmitted over UDP per RFC 3261 §17.1.2 until the
//! unit answers or Timer F ends them).
//!
//! Bounds: [`MAX_UDP_IN_FLIGHT`] requests handled at once over UDP (a datagram beyond it gets
//! no answer, the unit retransmits), `max_transactions` remembered UDP transactions,
//! `max_connections` TCP connections and as many TLS ones (a newcomer beyond it is closed),
//! [`MAX_PENDING_OUT`]
//! of our MESSAGEs awaiting an answer (beyond it we send without tracking: the unit still
//! gets its `<mrs>`, only the retransmission is lost).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_sdk::{DeadLetter, Ingest, Shutdown};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::dispatch::{Dispatcher, Origin, Outcome, Transport};
use crate::sip::framing::{Frame, Framer};
use crate::sip::message::MAX_HEAD;
use crate::sip::transactions::{Key, Seen, Transactions};
use crate::sip::uri::Uri;
use crate::sip::{Message, StartLine};

/// UDP requests being handled at once.
pub const MAX_UDP_IN_FLIGHT: usize = 256;
/// Our MESSAGEs awaiting the unit's answer.
pub const MAX_PENDING_OUT: usize = 4096;
/// RFC 3261 T1 and T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Timer F: a non-INVITE client transaction gives up after 64·T1.
const TIMER_F: Duration = Duration::from_secs(32);
/// The largest datagram we read (larger ones are cut and fail to parse).
const MAX_DATAGRAM: usize = 65_535;

/// Listeners bound and ready to serve.
pub struct Bound {
    udp: Option<Arc<UdpSocket>>,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    max_connections: usize,
    max_transactions: usize,
    idle_timeout: Duration,
}

impl Bound {
    pub async fn bind(
        udp: Option<&str>,
        tcp: Option<&str>,
        tls: Option<(&str, Arc<rustls::ServerConfig>)>,
        max_connections: usize,
        max_transactions: usize,
        idle_timeout: Duration,
    ) -> std::io::Result<Bound> {
        let udp = match udp {
            Some(a) => Some(Arc::new(UdpSocket::bind(a).await?)),
            None => None,
        };
        let tcp = match tcp {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let tls = match tls {
            Some((a, config)) => Some((
                TcpListener::bind(a).await?,
                tokio_rustls::TlsAcceptor::from(config),
            )),
            None => None,
        };
        Ok(Bound {
            udp,
            tcp,
            tls,
            max_connections,
            max_transactions,
            idle_timeout,
        })
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(s, _)| s.local_addr().ok())
    }

    /// Serves until `shutdown`.
    pub async fn run(self, dispatcher: Arc<Dispatcher>, shutdown: Shutdown) {
        dispatcher.health.set_connected(true);
        let pending = Arc::new(Pending::default());
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(sock) = self.udp {
            let (d, p, s) = (dispatcher.clone(), pending.clone(), shutdown.clone());
            let cap = self.max_transactions;
            tasks.spawn(async move { udp_loop(sock, d, p, cap, s).await });
        }
        if let Some(listener) = self.tcp {
            let (d, p, s) = (dispatcher.clone(), pending.clone(), shutdown.clone());
            let (max, idle) = (self.max_connections, self.idle_timeout);
            tasks.spawn(async move { tcp_loop(listener, None, d, p, max, idle, s).await });
        }
        if let Some((listener, acceptor)) = self.tls {
            let (d, p, s) = (dispatcher.clone(), pending.clone(), shutdown.clone());
            let (max, idle) = (self.max_connections, self.idle_timeout);
            tasks
                .spawn(async move { tcp_loop(listener, Some(acceptor), d, p, max, idle, s).await });
        }
        while tasks.join_next().await.is_some() {}
        dispatcher.health.set_connected(false);
    }
}

/// Our MESSAGEs awaiting an answer, by branch.
#[derive(Default)]
struct Pending {
    map: Mutex<HashMap<String, oneshot::Sender<u16>>>,
}

impl Pending {
    fn track(&self, branch: &str) -> Option<oneshot::Receiver<u16>> {
        let mut m = self.map.lock().ok()?;
        if m.len() >= MAX_PENDING_OUT {
            m.retain(|_, tx| !tx.is_closed());
            if m.len() >= MAX_PENDING_OUT {
                return None;
            }
        }
        let (tx, rx) = oneshot::channel();
        m.insert(branch.to_owned(), tx);
        Some(rx)
    }

    /// A response to one of our requests; provisional ones are ignored.
    fn answered(&self, resp: &Message) {
        let StartLine::Response { code, .. } = resp.start else {
            return;
        };
        if code < 200 {
            return;
        }
        if let Some(branch) = resp.branch()
            && let Ok(mut m) = self.map.lock()
            && let Some(tx) = m.remove(branch)
        {
            let _ = tx.send(code);
        }
    }

    fn forget(&self, branch: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(branch);
        }
    }
}

/// The address the unit reached us at: the request-URI's host when it is an address literal
/// (a socket bound to 0.0.0.0 does not know which of its addresses was used), else the
/// socket's own.
fn local_for(req: &Message, bound: SocketAddr) -> SocketAddr {
    let from_uri = match &req.start {
        StartLine::Request { uri, .. } => Uri::parse(uri).and_then(|u| u.socket_addr(bound.port())),
        StartLine::Response { .. } => None,
    };
    match from_uri {
        Some(a) if bound.ip().is_unspecified() => SocketAddr::new(a.ip(), bound.port()),
        _ => bound,
    }
}

/// The transaction key of a request: the top Via's branch, or for an RFC 2543 peer without
/// one, Call-ID and CSeq.
fn key_of(req: &Message, peer: SocketAddr) -> Key {
    let branch = match req.branch() {
        Some(b) if b.starts_with("z9hG4bK") => b.to_owned(),
        _ => format!(
            "{}|{}",
            req.header("Call-ID").unwrap_or_default(),
            req.header("CSeq").unwrap_or_default()
        ),
    };
    Key {
        branch,
        method: req.method().unwrap_or_default().to_owned(),
        peer,
    }
}

/// Dead-letters bytes that are not SIP we take, with any credentials line blanked (see
/// [`crate::sip::message::redact`]).
async fn dead_letter(ingest: &Ingest, reason: &str, detail: String, origin: String, raw: &[u8]) {
    let _ = ingest
        .reject(DeadLetter {
            reason: reason.into(),
            detail,
            origin,
            raw: crate::sip::message::redact(raw),
        })
        .await;
}

async fn udp_loop(
    sock: Arc<UdpSocket>,
    d: Arc<Dispatcher>,
    pending: Arc<Pending>,
    max_transactions: usize,
    shutdown: Shutdown,
) {
    let Ok(bound) = sock.local_addr() else {
        return;
    };
    let transactions = Arc::new(Mutex::new(Transactions::new(max_transactions)));
    let in_flight = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable from an earlier send shows up here on Linux.
                    tracing::debug!("udp receive: {e}");
                    continue;
                }
            },
        };
        let bytes = &buf[..n];
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue; // keep-alive
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    d.health.rejected("overload");
                    continue;
                };
                let (ingest, raw) = (d.ingest().clone(), bytes.to_vec());
                d.health.rejected("bad_sip");
                tokio::spawn(async move {
                    dead_letter(
                        &ingest,
                        "bad_sip",
                        format!("not a SIP message: {e}"),
                        format!("udp:{peer}"),
                        &raw,
                    )
                    .await;
                    drop(permit);
                });
                continue;
            }
        };
        if matches!(msg.start, StartLine::Response { .. }) {
            pending.answered(&msg);
            continue;
        }
        if msg.method() == Some("ACK") || msg.header("Via").is_none() {
            continue;
        }
        let key = key_of(&msg, peer);
        let seen = match transactions.lock() {
            Ok(mut t) => t.seen(&key, Instant::now()),
            Err(_) => continue,
        };
        match seen {
            Seen::New => {}
            Seen::InProgress => continue,
            Seen::Answered(bytes) => {
                let _ = sock.send_to(&bytes, peer).await;
                continue;
            }
            Seen::Full => {
                let r = msg.response(503, "Service Unavailable", "full").encode();
                let _ = sock.send_to(&r, peer).await;
                continue;
            }
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            if let Ok(mut t) = transactions.lock() {
                t.abandon(&key);
            }
            d.health.rejected("overload");
            continue;
        };
        let origin = Origin {
            transport: Transport::Udp,
            peer,
            local: local_for(&msg, bound),
        };
        let (sock, d, pending, transactions) = (
            sock.clone(),
            d.clone(),
            pending.clone(),
            transactions.clone(),
        );
        tokio::spawn(async move {
            let outcome = d.request(&msg, origin).await;
            match outcome {
                Some(Outcome { response, mrs }) => {
                    let _ = sock.send_to(&response, peer).await;
                    if let Ok(mut t) = transactions.lock() {
                        t.complete(&key, response);
                    }
                    drop(permit);
                    if let Some((to, m)) = mrs {
                        send_udp(&sock, &pending, to, m).await;
                    }
                }
                None => {
                    if let Ok(mut t) = transactions.lock() {
                        t.abandon(&key);
                    }
                }
            }
        });
    }
}

/// Sends our MESSAGE over UDP, retransmitting (T1 doubling to T2) until a final answer or
/// Timer F.
async fn send_udp(sock: &UdpSocket, pending: &Pending, to: SocketAddr, m: Message) {
    let bytes = m.encode();
    let branch = m.branch().unwrap_or_default().to_owned();
    let Some(mut answer) = pending.track(&branch) else {
        let _ = sock.send_to(&bytes, to).await;
        return;
    };
    let start = Instant::now();
    let mut wait = T1;
    loop {
        let _ = sock.send_to(&bytes, to).await;
        match tokio::time::timeout(wait, &mut answer).await {
            Ok(Ok(code)) => {
                if code >= 300 {
                    tracing::warn!(unit = %to, code, "the unit refused our <mrs> MESSAGE");
                }
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => {}
        }
        if start.elapsed() + wait >= TIMER_F {
            tracing::warn!(unit = %to, "the unit never answered our <mrs> MESSAGE (Timer F); it will resend its request");
            pending.forget(&branch);
            return;
        }
        wait = (wait * 2).min(T2);
    }
}

/// Accepts TCP connections; with `tls`, each one is a TLS server connection first.
async fn tcp_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    d: Arc<Dispatcher>,
    pending: Arc<Pending>,
    max_connections: usize,
    idle: Duration,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!("tcp accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            d.health.rejected("too_many_connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(bound) = stream.local_addr() else {
            continue;
        };
        let (d, pending, shutdown) = (d.clone(), pending.clone(), shutdown.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let at = (peer, bound);
            match tls {
                None => connection(stream, at, Transport::Tcp, d, pending, idle, shutdown).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        crate::tls::HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(s)) => {
                            connection(s, at, Transport::Tls, d, pending, idle, shutdown).await
                        }
                        Ok(Err(e)) => {
                            // No SIP was read: nothing to dead-letter; counted and logged.
                            d.health.rejected("tls_handshake");
                            tracing::debug!(peer = %peer, "SCAIP TLS handshake failed: {e}");
                        }
                        Err(_) => d.health.rejected("tls_handshake"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// One unit's TCP or TLS connection (`at`: its peer and our address): requests handled in
/// order, answers and our MESSAGEs written by one writer task.
async fn connection<S>(
    stream: S,
    (peer, bound): (SocketAddr, SocketAddr),
    transport: Transport,
    d: Arc<Dispatcher>,
    pending: Arc<Pending>,
    idle: Duration,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let label = transport.as_str().to_ascii_lowercase();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut framer = Framer::default();
    let mut buf = vec![0u8; MAX_HEAD];
    'read: loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(idle, rd.read(&mut buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => n,
            },
        };
        framer.push(&buf[..n]);
        loop {
            let frame = match framer.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    d.health.rejected("bad_sip");
                    dead_letter(
                        d.ingest(),
                        "bad_sip",
                        format!("SIP stream refused: {e}"),
                        format!("{label}:{peer}"),
                        &buf[..n.min(512)],
                    )
                    .await;
                    break 'read;
                }
            };
            let raw = match frame {
                Frame::Ping => {
                    let _ = tx.send(b"\r\n".to_vec()).await;
                    continue;
                }
                Frame::Message(m) => m,
            };
            let msg = match Message::parse(&raw) {
                Ok(m) => m,
                Err(e) => {
                    d.health.rejected("bad_sip");
                    dead_letter(
                        d.ingest(),
                        "bad_sip",
                        format!("not a SIP message: {e}"),
                        format!("{label}:{peer}"),
                        &raw,
                    )
                    .await;
                    continue;
                }
            };
            if matches!(msg.start, StartLine::Response { .. }) {
                pending.answered(&msg);
                continue;
            }
            if msg.header("Via").is_none() {
                continue;
            }
            let origin = Origin {
                transport,
                peer,
                local: bound,
            };
            let Some(Outcome { response, mrs }) = d.request(&msg, origin).await else {
                continue;
            };
            if tx.send(response).await.is_err() {
                break 'read;
            }
            if let Some((_, m)) = mrs {
                let branch = m.branch().unwrap_or_default().to_owned();
                let answer = pending.track(&branch);
                if tx.send(m.encode()).await.is_err() {
                    break 'read;
                }
                if let Some(answer) = answer {
                    let pending = pending.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(TIMER_F, answer).await {
                            Ok(Ok(code)) if code < 300 => {}
                            Ok(Ok(code)) => {
                                tracing::warn!(unit = %peer, code, "the unit refused our <mrs> MESSAGE")
                            }
                            _ => {
                                pending.forget(&branch);
                                tracing::warn!(unit = %peer, "the unit never answered our <mrs> MESSAGE over TCP");
                            }
                        }
                    });
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
