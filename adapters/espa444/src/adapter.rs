//! The nurse-call adapter (atgw as the paging system) under the component contract, and its
//! I/O: one link at a time, bytes → [`Reader`] → [`Receiver`], each delivered block committed
//! through `Ingest` and only then answered.
//!
//! The one rule that matters: the control station hears `ACK` for a call only after
//! `Ingest::submit` resolved `Ok`; when the journal fails it hears `NAK` and sends the block
//! again. Link supervision: nothing heard for `link_timeout` → the adapter's health says it
//! cannot hear its devices, which the core turns into the gateway's link-down alert.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::component::{Adapter, AdapterContext, ComponentError, Invalid, Site, Task};
use atgw_sdk::ratelimit::LogLimiter;
use atgw_sdk::{Committed, DeadLetter, Health, Ingest, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::block::Block;
use crate::config::AdapterConfig;
use crate::mapping::{ADDRESS_KEY, Call, Memory};
use crate::receive::{Action, Receiver, State};
use crate::transport::{MAX_BACKOFF, MIN_BACKOFF, Opener, Stream};
use crate::wire::Reader;

/// How long connecting to a serial server may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The nurse-call adapter, past its preflight.
pub struct EspaAdapter {
    config: AdapterConfig,
}

impl Adapter for EspaAdapter {
    const TYPE: &'static str = "espa444";
    type Config = AdapterConfig;

    fn name(config: &AdapterConfig) -> &str {
        &config.name
    }
    fn validate(config: &AdapterConfig) -> Result<(), Invalid> {
        config.validate()
    }
    /// Every call names its call address: `[[device]] match = { address = "1234" }`.
    fn match_keys(_: &AdapterConfig, _: &Site) -> Option<BTreeSet<String>> {
        Some([ADDRESS_KEY.to_owned()].into())
    }
    fn canonical_match(key: &str, value: &str) -> Result<String, String> {
        if key != ADDRESS_KEY {
            return Err(format!("an ESPA 4.4.4 call carries only `{ADDRESS_KEY}`"));
        }
        let v = value.trim();
        if v.is_empty() || v.len() > 16 || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "`{value}` is not a call address (1–16 letters or digits)"
            ));
        }
        Ok(v.to_owned())
    }
    fn audit(config: &AdapterConfig, subject: &str, _site: &Site) -> Vec<atgw_sdk::audit::Finding> {
        crate::audit::link(subject, &config.transport(), "raise or reset a nurse call")
    }
    fn check(config: &AdapterConfig, _site: &Site) -> Result<Self, ComponentError> {
        config.validate().map_err(ComponentError::new)?;
        Ok(EspaAdapter {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: AdapterContext) -> Result<Task, ComponentError> {
        let transport = self.config.transport();
        let opener = Opener::bind(&transport).await.map_err(|e| {
            ComponentError::new(format!(
                "cannot open the ESPA link ({}): {e}; is another program using it?",
                transport.describe()
            ))
        })?;
        tracing::info!(adapter = %self.config.name, link = %transport.describe(), address = %self.config.address, "espa444 adapter starting");
        ctx.health.set_connected(true);
        let link = Link {
            warn: LogLimiter::new(Duration::from_secs(10)),
            config: self.config,
            ingest: ctx.ingest,
            health: ctx.health,
        };
        Ok(Box::pin(link.run(opener, ctx.shutdown)))
    }
}

/// What the link loop works with.
struct Link {
    config: AdapterConfig,
    ingest: Ingest,
    health: Arc<Health>,
    warn: LogLimiter,
}

/// The stream in hand and the machines reading it.
struct Conn {
    stream: Stream,
    origin: String,
    rx: Receiver,
    reader: Reader,
}

async fn read_from(conn: &mut Option<Conn>, buf: &mut [u8]) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.stream.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(opener: &Opener) -> std::io::Result<(Stream, String)> {
    if opener.replaces() {
        opener.open().await
    } else {
        std::future::pending().await
    }
}

impl Link {
    fn conn(&self, stream: Stream, origin: String) -> Conn {
        tracing::info!(adapter = %self.config.name, %origin, "espa444 link open");
        Conn {
            stream,
            origin,
            rx: Receiver::new(self.config.station(), self.config.block_timeout),
            reader: Reader::new(),
        }
    }

    async fn run(self, opener: Opener, shutdown: Shutdown) {
        let base = Instant::now();
        // Loaded at the first call, not here: the journal may not be serving yet.
        let mut memory: Option<Memory> = None;
        let supervise = !self.config.link_timeout.is_zero();
        let mut heard = Instant::now();
        let mut conn: Option<Conn> = None;
        let mut backoff = MIN_BACKOFF;
        let mut reopen_at = (!opener.replaces()).then(Instant::now);
        let mut buf = [0u8; 512];
        loop {
            let up = !supervise || heard.elapsed() < self.config.link_timeout;
            if up != self.health.is_connected() {
                self.health.set_connected(up);
                if up {
                    tracing::info!(adapter = %self.config.name, "espa444: the control station is heard again");
                } else {
                    tracing::warn!(adapter = %self.config.name, link = %self.config.transport().describe(),
                        "espa444: nothing heard from the nurse-call control station for {:?} (link_timeout); check the cable or serial server", self.config.link_timeout);
                }
            }
            let wake = [
                conn.as_ref()
                    .and_then(|c| c.rx.deadline())
                    .map(|d| base + d),
                reopen_at,
                (supervise && up).then(|| heard + self.config.link_timeout),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {
                    if let Some(c) = conn.as_mut() {
                        c.rx.tick(base.elapsed());
                        if *c.rx.state() == State::Idle
                            && let Some(raw) = c.reader.abandon()
                        {
                            let origin = c.origin.clone();
                            self.dead_letter("incomplete_block", "the control station went quiet in the middle of a block", &origin, raw).await;
                        }
                    }
                    if reopen_at.is_some_and(|t| t <= Instant::now()) {
                        match tokio::time::timeout(CONNECT_TIMEOUT, opener.open()).await {
                            Ok(Ok((s, origin))) => {
                                conn = Some(self.conn(s, origin));
                                reopen_at = None;
                                backoff = MIN_BACKOFF;
                            }
                            failed => {
                                let why = match failed {
                                    Ok(Err(e)) => e.to_string(),
                                    _ => "timed out".into(),
                                };
                                if let Some(n) = self.warn.allow("open") {
                                    tracing::warn!(adapter = %self.config.name, suppressed = n, link = %self.config.transport().describe(),
                                        "espa444: cannot open the link: {why}; retrying in {backoff:?}");
                                }
                                reopen_at = Some(Instant::now() + backoff);
                                backoff = (backoff * 2).min(MAX_BACKOFF);
                            }
                        }
                    }
                }
                r = read_from(&mut conn, &mut buf) => match r {
                    Ok(n) if n > 0 => {
                        let Some(c) = conn.as_mut() else { continue };
                        let tokens = c.reader.feed(&buf[..n]);
                        if !tokens.is_empty() {
                            heard = Instant::now();
                        }
                        let mut lost = false;
                        for t in tokens {
                            let actions = c.rx.on(t, base.elapsed());
                            if self.act(c, actions, &mut memory, base).await.is_err() {
                                lost = true;
                                break;
                            }
                        }
                        if lost {
                            conn = self.lost(conn.take(), &opener, &mut reopen_at, &mut backoff);
                        }
                    }
                    _ => conn = self.lost(conn.take(), &opener, &mut reopen_at, &mut backoff),
                },
                a = accept(&opener) => match a {
                    Ok((s, origin)) => {
                        if let Some(old) = &conn {
                            tracing::info!(adapter = %self.config.name, old = %old.origin, new = %origin, "espa444: a new connection replaces the old one");
                        }
                        conn = Some(self.conn(s, origin));
                    }
                    Err(e) => {
                        tracing::warn!(adapter = %self.config.name, "espa444: accept failed: {e}");
                        tokio::time::sleep(MIN_BACKOFF).await;
                    }
                },
            }
        }
        self.health.set_connected(false);
    }

    /// The stream ended or failed: a listener waits for the next peer, the others reopen.
    fn lost(
        &self,
        conn: Option<Conn>,
        opener: &Opener,
        reopen_at: &mut Option<Instant>,
        backoff: &mut Duration,
    ) -> Option<Conn> {
        if let Some(c) = conn {
            tracing::info!(adapter = %self.config.name, origin = %c.origin, "espa444 link closed");
        }
        if !opener.replaces() {
            *reopen_at = Some(Instant::now() + *backoff);
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
        }
        None
    }

    /// Carries out the receiver's actions in order; a delivered block is committed (or
    /// dead-lettered) before the answer the receiver then gives.
    async fn act(
        &self,
        c: &mut Conn,
        actions: Vec<Action>,
        memory: &mut Option<Memory>,
        base: Instant,
    ) -> std::io::Result<()> {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Send(bytes) => {
                    c.stream.write_all(&bytes).await?;
                    c.stream.flush().await?;
                }
                Action::Reject { raw, error } => {
                    self.health.received(1);
                    self.health.rejected(error.reason());
                    if let Some(n) = self.warn.allow(error.reason()) {
                        tracing::warn!(adapter = %self.config.name, suppressed = n, origin = %c.origin, "espa444: block answered NAK: {error}");
                    }
                    self.dead_letter(error.reason(), &error.to_string(), &c.origin, raw)
                        .await;
                }
                Action::Deliver { raw } => {
                    self.health.received(1);
                    let ack = self.deliver(&raw, &c.origin, memory).await;
                    for next in c.rx.answered(ack, base.elapsed()).into_iter().rev() {
                        queue.push_front(next);
                    }
                }
            }
        }
        Ok(())
    }

    /// One good block: `true` when it may be ACKed (committed, a retransmission, or a
    /// well-formed block that is not a call and was dead-lettered).
    async fn deliver(&self, raw: &[u8], origin: &str, memory: &mut Option<Memory>) -> bool {
        let Ok(block) = Block::decode(raw) else {
            return false;
        };
        let call = match Call::read(&block) {
            Ok(c) => c,
            Err(e) => {
                self.health.rejected(e.reason());
                if let Some(n) = self.warn.allow(e.reason()) {
                    tracing::warn!(adapter = %self.config.name, suppressed = n, %origin, "espa444: block not taken as a call: {e}");
                }
                let stored = self
                    .dead_letter(e.reason(), &e.to_string(), origin, raw.to_vec())
                    .await;
                return e.ack() && stored;
            }
        };
        let memory = match memory {
            Some(m) => m,
            None => memory.insert(match self.ingest.load_state().await {
                Ok(pairs) => Memory::from_state(&pairs),
                Err(e) => {
                    tracing::warn!(adapter = %self.config.name, "espa444 state not loaded ({e}); starting with none");
                    Memory::default()
                }
            }),
        };
        let plan = memory.plan(&self.config, &block, &call, raw);
        match self.ingest.submit(plan.submission.clone()).await {
            Ok(Committed::Stored { .. }) => {
                self.health.committed(1);
                memory.commit(plan);
                true
            }
            Ok(Committed::Duplicate) => {
                self.health.duplicate();
                memory.commit(plan);
                true
            }
            Err(e) => {
                self.health.error(format!("commit failed: {e}"));
                if let Some(n) = self.warn.allow("commit_failed") {
                    tracing::error!(adapter = %self.config.name, suppressed = n, address = %call.address,
                        "espa444: call answered NAK: the journal did not commit it: {e}; the control station will send it again");
                }
                false
            }
        }
    }

    /// Dead-letters `raw`; `true` once it is durable.
    async fn dead_letter(&self, reason: &str, detail: &str, origin: &str, raw: Vec<u8>) -> bool {
        let letter = DeadLetter {
            reason: reason.into(),
            detail: detail.into(),
            origin: origin.into(),
            raw,
        };
        match self.ingest.reject(letter).await {
            Ok(()) => true,
            Err(e) => {
                self.health.error(format!("dead letter not stored: {e}"));
                false
            }
        }
    }
}
