//! The running receiver: bind the TCP and UDP listeners, then for every frame execute the
//! [`Handler`]'s decision against `Ingest` — dead letter, commit, and only after the commit
//! resolved `Ok`, the answer.
//!
//! Fairness: a global connection table (when full, the oldest connection that has not completed
//! a frame makes room for a newcomer: see [`crate::connections`]), a short deadline for a
//! connection's first frame and a longer idle timeout afterwards, both counted per *frame* (a
//! byte trickle does not keep a socket), a per-address connection cap and frame budget, and a
//! connection that sends nothing but bad frames is closed. UDP datagrams in flight have their
//! own budget, so idle TCP sockets cannot starve UDP transmitters. Each TCP connection and each
//! UDP datagram is its own task, so one slow commit never blocks other transmitters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::clock::SharedClock;
use atgw_sdk::{Committed, Health, Ingest, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::budget::WarnLimiter;
use crate::codec::FrameDecoder;
use crate::config::Config;
use crate::connections::{Admission, ConnectionTable, Registration};
use crate::crypto::AesKey;
use crate::error::Dc09Error;
use crate::handler::{AccountEntry, Decision, Handler};
use crate::mapping::Mapper;
use crate::timestamp::Window;
use atgw_sdk::peer_budget::{ConnectionSlot, PeerBudget};

/// How long in-flight frames get to finish after shutdown before their tasks are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Consecutive unusable frames after which a TCP connection is closed (random bytes, a port
/// scanner, a peer speaking another protocol).
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 8;
/// One warning per kind of problem per interval.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Largest UDP datagram we read.
const UDP_MAX: usize = 65_535;

/// A bound, not yet running receiver. Binding first lets the caller (and tests binding port 0)
/// learn the addresses before traffic flows.
#[derive(Debug)]
pub struct Dc09Adapter {
    config: Config,
    handler: Arc<Handler>,
    tcp: Option<TcpListener>,
    udp: Option<UdpSocket>,
}

/// Validates the config, reads the account keys, binds, and runs until `shutdown`.
pub async fn run(
    config: Config,
    ingest: Ingest,
    health: Arc<Health>,
    clock: SharedClock,
    shutdown: Shutdown,
) -> Result<(), Dc09Error> {
    Dc09Adapter::bind(config)
        .await?
        .run(ingest, health, clock, shutdown)
        .await
}

/// The config's accounts with their keys, once the config is valid and every key file reads.
fn load_accounts(config: &Config) -> Result<HashMap<String, AccountEntry>, Dc09Error> {
    let name = config.name.clone();
    config.validate().map_err(|errors| Dc09Error::Config {
        adapter: name.clone(),
        errors,
    })?;
    let mut accounts = HashMap::new();
    for a in &config.accounts {
        let key = match &a.key_file {
            None => None,
            Some(path) => {
                let key_err = |reason: String| Dc09Error::Key {
                    adapter: name.clone(),
                    account: a.account.clone(),
                    reason,
                };
                let secret =
                    atgw_sdk::secret::read_secret_file(path).map_err(|e| key_err(e.to_string()))?;
                let key = AesKey::parse(secret.expose(), a.key_format)
                    .map_err(|e| key_err(format!("{} (in {})", e, path.display())))?;
                Some(key)
            }
        };
        accounts.insert(a.account.clone(), AccountEntry { key });
    }
    Ok(accounts)
}

impl Dc09Adapter {
    /// Validates the config and loads every account's key file, without binding anything:
    /// what a configuration reload checks before it replaces a running adapter.
    pub fn check(config: &Config) -> Result<(), Dc09Error> {
        load_accounts(config).map(|_| ())
    }

    /// Validates the config, loads each account's key file, and binds the listeners.
    pub async fn bind(config: Config) -> Result<Dc09Adapter, Dc09Error> {
        let name = config.name.clone();
        let accounts = load_accounts(&config)?;
        let window = Window {
            past: jiff::SignedDuration::try_from(config.max_timestamp_age)
                .unwrap_or(jiff::SignedDuration::MAX),
            future: jiff::SignedDuration::try_from(config.max_timestamp_ahead)
                .unwrap_or(jiff::SignedDuration::MAX),
        };
        let handler = Arc::new(
            Handler::new(
                Mapper::new(name.clone(), &config.vendor_codes),
                accounts,
                config.accept_unknown,
                window,
            )
            .with_retransmit_window(config.retransmit_window),
        );
        let bind_err = |proto: &'static str, addr: &str, source| Dc09Error::Bind {
            adapter: name.clone(),
            proto,
            addr: addr.to_owned(),
            source,
        };
        let tcp = match &config.listen_tcp {
            Some(addr) => Some(
                TcpListener::bind(addr.as_str())
                    .await
                    .map_err(|e| bind_err("TCP", addr, e))?,
            ),
            None => None,
        };
        let udp = match &config.listen_udp {
            Some(addr) => Some(
                UdpSocket::bind(addr.as_str())
                    .await
                    .map_err(|e| bind_err("UDP", addr, e))?,
            ),
            None => None,
        };
        let adapter = Dc09Adapter {
            config,
            handler,
            tcp,
            udp,
        };
        info!(
            adapter = %name,
            tcp = ?adapter.tcp_addr(),
            udp = ?adapter.udp_addr(),
            accounts = adapter.config.accounts.len(),
            "DC-09 receiver listening"
        );
        Ok(adapter)
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Serves until `shutdown` is cancelled, then gives in-flight frames [`SHUTDOWN_GRACE`].
    pub async fn run(
        self,
        ingest: Ingest,
        health: Arc<Health>,
        clock: SharedClock,
        shutdown: Shutdown,
    ) -> Result<(), Dc09Error> {
        let ctx = Arc::new(Ctx {
            handler: self.handler,
            ingest,
            health: health.clone(),
            clock,
            budget: PeerBudget::new(
                self.config.per_peer_connections,
                self.config.per_peer_frames_per_sec,
            ),
            connections: ConnectionTable::new(self.config.max_connections),
            udp_slots: Arc::new(Semaphore::new(self.config.max_udp_in_flight)),
            warn: WarnLimiter::new(WARN_EVERY),
            idle_timeout: self.config.idle_timeout,
            first_frame_timeout: self
                .config
                .first_frame_timeout
                .min(self.config.idle_timeout),
            max_frame_bytes: self.config.max_frame_bytes,
        });
        health.set_connected(true);
        let mut tasks = JoinSet::new();
        let mut loops = JoinSet::new();
        if let Some(l) = self.tcp {
            loops.spawn(tcp_loop(ctx.clone(), l, shutdown.clone()));
        }
        if let Some(s) = self.udp {
            loops.spawn(udp_loop(ctx.clone(), Arc::new(s), shutdown.clone()));
        }
        while let Some(r) = loops.join_next().await {
            // Each loop hands back its connection tasks so shutdown can wait for them (and abort
            // them by dropping the set if the grace runs out).
            if let Ok(mut set) = r {
                tasks.spawn(async move { while set.join_next().await.is_some() {} });
            }
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(adapter = %ctx.handler.adapter(), "DC-09 connections still busy after {SHUTDOWN_GRACE:?}; aborting them (unacknowledged frames will be retransmitted)");
            tasks.abort_all();
        }
        health.set_connected(false);
        info!(adapter = %ctx.handler.adapter(), "DC-09 receiver stopped");
        Ok(())
    }
}

/// What every connection task shares.
#[derive(Debug)]
struct Ctx {
    handler: Arc<Handler>,
    ingest: Ingest,
    health: Arc<Health>,
    clock: SharedClock,
    budget: Arc<PeerBudget>,
    /// Open TCP connections (`max_connections`).
    connections: Arc<ConnectionTable>,
    /// UDP datagrams in flight (`max_udp_in_flight`).
    udp_slots: Arc<Semaphore>,
    warn: WarnLimiter,
    idle_timeout: Duration,
    /// `first_frame_timeout`, at most `idle_timeout`.
    first_frame_timeout: Duration,
    max_frame_bytes: usize,
}

impl Ctx {
    fn warn(&self, key: &'static str, line: impl FnOnce() -> String) {
        if let Some(suppressed) = self.warn.check(key, Instant::now()) {
            let adapter = self.handler.adapter();
            if suppressed > 0 {
                warn!(adapter, reason = key, suppressed, "{}", line());
            } else {
                warn!(adapter, reason = key, "{}", line());
            }
        }
    }

    /// Decides and executes one frame; returns the answer to send, if any.
    async fn frame(&self, raw: &[u8], origin: &str) -> Option<Vec<u8>> {
        self.health.received(1);
        let now = self.clock.now();
        let outcome = self.handler.handle(raw, origin, now, &mut rand::rng());
        self.execute(outcome).await
    }

    /// Dead letter, alert, commit — and the answer only if the commit resolved `Ok` (a NAK
    /// if it failed).
    async fn execute(&self, outcome: Decision) -> Option<Vec<u8>> {
        let Decision {
            dead_letter,
            alert,
            commit,
            reply,
            ..
        } = outcome;
        if let Some(letter) = dead_letter {
            self.health.rejected(&letter.reason);
            let reason = reason_key(&letter.reason);
            self.warn(reason, || {
                format!(
                    "DC-09 input from {} rejected ({}): {}",
                    letter.origin, letter.reason, letter.detail
                )
            });
            if let Err(e) = self.ingest.reject(letter).await {
                self.health.error(format!("dead letter not stored: {e}"));
            }
        }
        if let Some(alert) = alert
            && let Err(e) = self.ingest.submit(alert).await
        {
            self.health.error(format!("gateway alert not stored: {e}"));
        }
        if let Some(submission) = commit {
            let n = submission.events.len() as u64;
            match self.ingest.submit(submission).await {
                Ok(Committed::Stored { .. }) => self.health.committed(n),
                Ok(Committed::Duplicate) => self.health.duplicate(),
                Err(e) => {
                    self.health.error(format!("commit failed: {e}"));
                    self.warn("commit_failed", || {
                        format!("DC-09 frame answered with NAK because the journal did not commit it: {e}; the transmitter will retry")
                    });
                    // Never the ACK; a NAK (with our time) makes the transmitter resend now.
                    return Some(crate::response::nak(self.clock.now()));
                }
            }
        }
        reply
    }
}

/// Reasons the handler produces, as `'static` keys for the warning limiter.
fn reason_key(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "bad_crc",
        "bad_length",
        "bad_frame",
        "bad_timestamp",
        "bad_data",
        "oversize",
        "decrypt_failed",
        "stale_timestamp",
        "unknown_account",
        "unknown_token",
        "unencrypted",
        "unexpected_response",
    ];
    KNOWN
        .iter()
        .find(|k| **k == reason)
        .copied()
        .unwrap_or("other")
}

async fn tcp_loop(ctx: Arc<Ctx>, listener: TcpListener, shutdown: Shutdown) -> JoinSet<()> {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        while conns.try_join_next().is_some() {}
        let (sock, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                ctx.warn("accept_failed", || format!("DC-09 TCP accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The address's own budget first, so an address over it cannot evict anybody.
        let Some(slot) = ctx.budget.connect(peer.ip()) else {
            ctx.health.rejected("peer_connection_limit");
            ctx.warn("peer_connection_limit", || {
                format!("DC-09 connection from {peer} refused: per_peer_connections reached for that address")
            });
            continue;
        };
        let registration = match ctx.connections.admit(peer, Instant::now()) {
            Admission::Admitted {
                registration,
                evicted,
            } => {
                if let Some(ev) = evicted {
                    ctx.health.rejected("evicted_no_frame");
                    ctx.warn("evicted_no_frame", || {
                        format!(
                            "DC-09 connection limit reached: evicting idle connection from {} that sent no frame in {}s, to accept {peer}",
                            ev.peer,
                            ev.frameless_for.as_secs()
                        )
                    });
                }
                registration
            }
            Admission::Full => {
                ctx.health.rejected("connection_limit");
                ctx.warn("connection_limit", || {
                    format!("DC-09 connection from {peer} refused: max_connections reached and every connection has completed a frame")
                });
                continue;
            }
        };
        if let Err(e) = sock.set_nodelay(true) {
            debug!(%peer, "TCP_NODELAY not set: {e}");
        }
        conns.spawn(connection(
            ctx.clone(),
            sock,
            peer,
            shutdown.clone(),
            registration,
            slot,
        ));
    }
    conns
}

/// One transmitter's TCP connection: frames in order, each answered before the next is read
/// from the decoder (DC-09 transmitters wait for the answer anyway).
async fn connection(
    ctx: Arc<Ctx>,
    mut sock: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
    registration: Registration,
    _slot: ConnectionSlot,
) {
    let origin = format!("tcp:{peer}");
    let mut decoder = FrameDecoder::new(ctx.max_frame_bytes);
    let mut buf = vec![0u8; 4096];
    // Until its first usable frame a connection gets the short deadline (and may be evicted).
    let mut established = false;
    let mut timeout = ctx.first_frame_timeout;
    let mut deadline = Instant::now() + timeout;
    let mut bad_in_a_row = 0u32;
    loop {
        loop {
            let outcome = match decoder.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    deadline = Instant::now() + timeout;
                    if !ctx.budget.allow(peer.ip(), Instant::now()) {
                        ctx.health.rejected("rate_limited");
                        ctx.warn("rate_limited", || {
                            format!("DC-09 frames from {peer} over per_peer_frames_per_sec; not answered")
                        });
                        bad_in_a_row += 1;
                        None
                    } else {
                        ctx.health.received(1);
                        let now = ctx.clock.now();
                        Some(ctx.handler.handle(&frame, &origin, now, &mut rand::rng()))
                    }
                }
                Err(e) => Some(ctx.handler.oversize(&e, &origin, &decoder.take_discarded())),
            };
            let Some(outcome) = outcome else {
                if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                    return;
                }
                continue;
            };
            let usable = outcome.commit.is_some();
            if usable && !established {
                // Before the commit: a slow journal must not make a transmitter evictable.
                registration.establish();
                established = true;
                timeout = ctx.idle_timeout;
                deadline = Instant::now() + timeout;
            }
            if let Some(reply) = ctx.execute(outcome).await
                && sock.write_all(&reply).await.is_err()
            {
                return;
            }
            bad_in_a_row = if usable { 0 } else { bad_in_a_row + 1 };
            if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                ctx.warn("closed_bad_input", || {
                    format!("DC-09 connection from {peer} closed after {MAX_BAD_FRAMES_IN_A_ROW} unusable frames in a row")
                });
                return;
            }
        }
        let garbage = decoder.take_garbage();
        if garbage > 0 {
            ctx.warn("garbage", || {
                format!("DC-09 skipped {garbage} bytes of non-frame data from {peer}")
            });
            if garbage > ctx.max_frame_bytes {
                ctx.health.rejected("garbage");
                return;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = registration.evicted() => return,
            _ = tokio::time::sleep_until(deadline) => {
                if established {
                    debug!(%peer, "DC-09 connection idle for {timeout:?}; closing");
                } else {
                    ctx.health.rejected("first_frame_timeout");
                    debug!(%peer, "DC-09 connection completed no frame within {timeout:?}; closing");
                }
                return;
            }
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => decoder.extend(&buf[..n]),
            },
        }
    }
}

async fn udp_loop(ctx: Arc<Ctx>, sock: Arc<UdpSocket>, shutdown: Shutdown) -> JoinSet<()> {
    let mut inflight = JoinSet::new();
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        while inflight.try_join_next().is_some() {}
        let (n, peer) = match received {
            Ok(x) => x,
            Err(e) => {
                // ICMP port-unreachable from an earlier reply shows up here on some systems.
                debug!("DC-09 UDP receive error: {e}");
                continue;
            }
        };
        if !ctx.budget.allow(peer.ip(), Instant::now()) {
            ctx.health.rejected("rate_limited");
            ctx.warn("rate_limited", || {
                format!("DC-09 datagrams from {peer} over per_peer_frames_per_sec; not answered")
            });
            continue;
        }
        let Ok(permit) = ctx.udp_slots.clone().try_acquire_owned() else {
            ctx.health.rejected("overloaded");
            ctx.warn("overloaded", || {
                format!(
                    "DC-09 datagram from {peer} dropped: max_udp_in_flight datagrams already in flight"
                )
            });
            continue;
        };
        let datagram = buf[..n].to_vec();
        let (ctx, sock) = (ctx.clone(), sock.clone());
        inflight.spawn(async move {
            let _permit = permit;
            datagram_task(&ctx, &sock, &datagram, peer).await;
        });
    }
    inflight
}

/// One datagram is one frame (a few senders pad it with NULs; a second frame is processed too).
async fn datagram_task(ctx: &Ctx, sock: &UdpSocket, datagram: &[u8], peer: SocketAddr) {
    let origin = format!("udp:{peer}");
    let mut decoder = FrameDecoder::new(ctx.max_frame_bytes);
    decoder.extend(datagram);
    let mut frames = 0;
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => {
                frames += 1;
                if let Some(reply) = ctx.frame(&frame, &origin).await
                    && let Err(e) = sock.send_to(&reply, peer).await
                {
                    debug!(%peer, "DC-09 UDP answer not sent: {e}");
                }
            }
            Ok(None) => break,
            Err(e) => {
                let outcome = ctx.handler.oversize(&e, &origin, &decoder.take_discarded());
                ctx.execute(outcome).await;
                return;
            }
        }
    }
    if frames == 0 {
        ctx.health.received(1);
        let outcome = ctx
            .handler
            .handle(datagram, &origin, ctx.clock.now(), &mut rand::rng());
        ctx.execute(outcome).await;
    }
}
