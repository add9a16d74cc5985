//! The adapter under the component contract, and its I/O. The one rule that matters: a device
//! hears `ACK` only after `Ingest::submit` resolved `Ok`, so an acknowledged event is durable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::component::{Adapter, AdapterContext, ComponentError, Invalid, Site, Task};
use atgw_sdk::event::Raw;
use atgw_sdk::ratelimit::LogLimiter;
use atgw_sdk::{Committed, DeadLetter, EventDraft, Health, Ingest, Seen, Shutdown, Submission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::line::{self, Line};

/// `raw.protocol` of this adapter's events.
pub const PROTOCOL: &str = "example-line";
/// How long lines in hand get to finish after shutdown.
const GRACE: Duration = Duration::from_secs(3);

/// A LINE/1 listener that passed its preflight.
pub struct LineAdapter {
    config: Config,
}

/// The registry key a line's device is matched on.
const DEVICE_KEY: &str = "device";

impl Adapter for LineAdapter {
    const TYPE: &'static str = "example-line";
    type Config = Config;

    fn name(config: &Config) -> &str {
        &config.name
    }
    /// Every line names its device: `[[device]] match = { device = "…" }`.
    fn match_keys(_: &Config, _: &Site) -> Option<std::collections::BTreeSet<String>> {
        Some([DEVICE_KEY.to_owned()].into())
    }
    fn validate(config: &Config) -> Result<(), Invalid> {
        if config.listen.parse::<SocketAddr>().is_err() {
            return Err(Invalid::new(
                "listen",
                format!(
                    "`{}` is not an address and port, e.g. \"0.0.0.0:7300\"",
                    config.listen
                ),
            ));
        }
        if !(16..=65_536).contains(&config.max_line_bytes) {
            return Err(Invalid::new("max_line_bytes", "must be from 16 to 65536"));
        }
        if config.max_connections == 0 {
            return Err(Invalid::new("max_connections", "must be at least 1"));
        }
        Ok(())
    }
    fn check(config: &Config, _site: &Site) -> Result<Self, ComponentError> {
        Self::validate(config).map_err(ComponentError::new)?;
        Ok(LineAdapter {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: AdapterContext) -> Result<Task, ComponentError> {
        let listener = TcpListener::bind(&self.config.listen).await.map_err(|e| {
            ComponentError::new(format!(
                "cannot listen on {}: {e}; is another program using the port?",
                self.config.listen
            ))
        })?;
        ctx.health.set_connected(true);
        let conn = Arc::new(Connection {
            config: self.config,
            ingest: ctx.ingest,
            health: ctx.health,
            warn: LogLimiter::new(Duration::from_secs(10)),
        });
        Ok(Box::pin(serve(listener, conn, ctx.shutdown)))
    }
}

/// What every connection shares.
struct Connection {
    config: Config,
    ingest: Ingest,
    health: Arc<Health>,
    warn: LogLimiter,
}

async fn serve(listener: TcpListener, conn: Arc<Connection>, shutdown: Shutdown) {
    let slots = Arc::new(Semaphore::new(conn.config.max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        // At the cap the newcomer is closed at once: the devices already connected keep theirs.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(n) = conn.warn.allow("max_connections") {
                tracing::warn!(adapter = %conn.config.name, suppressed = n,
                    "max_connections ({}) reached; refusing {peer}", conn.config.max_connections);
            }
            continue;
        };
        let (conn, stop) = (conn.clone(), shutdown.clone());
        tasks.spawn(async move {
            conn.talk(stream, peer, stop).await;
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
}

impl Connection {
    /// Reads lines until the device closes, goes idle, overflows a line, or shutdown.
    async fn talk(&self, mut stream: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        let mut buf: Vec<u8> = Vec::with_capacity(self.config.max_line_bytes);
        let mut chunk = [0u8; 1024];
        loop {
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let bytes: Vec<u8> = buf.drain(..=end).take(end).collect();
                let answer = self.handle(&bytes, peer).await;
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            if buf.len() > self.config.max_line_bytes {
                let letter =
                    self.letter("oversize", "a line longer than max_line_bytes", peer, &buf);
                let _ = self.ingest.reject(letter).await;
                let _ = stream.write_all(b"NAK - oversize\n").await;
                return;
            }
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(self.config.idle_timeout, stream.read(&mut chunk)) => r,
            };
            match read {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
    }

    /// One line: commit (or dead-letter), then the answer to send.
    async fn handle(&self, bytes: &[u8], peer: SocketAddr) -> String {
        self.health.received(1);
        let line = match line::parse(bytes) {
            Ok(l) => l,
            Err(e) => {
                self.health.rejected(e.reason());
                if let Some(n) = self.warn.allow(e.reason()) {
                    // `e` quotes device text only through `printable`: one line, no control chars.
                    tracing::warn!(adapter = %self.config.name, suppressed = n, "bad line from {peer}: {e}");
                }
                let letter = self.letter(e.reason(), &e.to_string(), peer, bytes);
                if let Err(e) = self.ingest.reject(letter).await {
                    self.health.error(format!("dead letter not stored: {e}"));
                }
                return format!("NAK - {}\n", e.reason());
            }
        };
        let seq = line.seq;
        match self.ingest.submit(self.submission(line, bytes)).await {
            Ok(Committed::Stored { .. }) => self.health.committed(1),
            Ok(Committed::Duplicate) => self.health.duplicate(),
            Err(e) => {
                self.health.error(format!("commit failed: {e}"));
                if let Some(n) = self.warn.allow("commit_failed") {
                    tracing::error!(adapter = %self.config.name, suppressed = n,
                        "line {seq} from {peer} answered NAK: the journal did not commit it: {e}");
                }
                return format!("NAK {seq} journal\n");
            }
        }
        format!("ACK {seq}\n")
    }

    fn submission(&self, line: Line, bytes: &[u8]) -> Submission {
        let device_id = format!("line:{}", line.device);
        let keys: std::collections::BTreeMap<String, String> =
            [(DEVICE_KEY.to_owned(), line.device.clone())].into();
        let mut draft = EventDraft::new(line.kind, line.phase, &device_id, &self.config.name);
        draft.registry_keys = keys.clone();
        draft.data.raw = Some(Raw {
            protocol: PROTOCOL.into(),
            topic: None,
            path: None,
            payload: serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()),
            upstream_id: None,
        });
        Submission {
            events: vec![draft],
            // What makes a LINE/1 retransmission: the same sequence, device and event, within
            // the device's retry window.
            dedupe_key: Some(format!(
                "{}:{}:{}",
                line.seq,
                line.device,
                line.kind.as_str()
            )),
            dedupe_window: Some(self.config.retransmit_window),
            first_delivery: false,
            state: Vec::new(),
            seen: vec![Seen {
                device_id,
                registry_keys: keys,
            }],
        }
    }

    fn letter(&self, reason: &str, detail: &str, peer: SocketAddr, bytes: &[u8]) -> DeadLetter {
        DeadLetter {
            reason: reason.into(),
            detail: detail.into(),
            origin: peer.to_string(),
            raw: bytes.to_vec(),
        }
    }
}
