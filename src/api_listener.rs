//! The local API's listener: at most `[api] max_connections` connections are served at once,
//! and a connection on which nothing was read or written for `idle_timeout` is closed.
//!
//! Connections are unauthenticated until their first request, so without a cap anyone who can
//! reach the port could hold thousands open (20,000 idle ones held 247 MB). At the cap the
//! listener stops accepting: further clients wait in the kernel's backlog (bounded by
//! `somaxconn`) and are served as soon as a slot frees, which the idle timeout guarantees
//! happens. Reaching the cap is counted (`atgw_api_connections_capped_total`, once each time
//! the listener finds every slot taken and has to wait), logged at most once a minute, and raised once per run as a
//! gateway alert (`gateway:<id>:api_connections`): a full API is either an attack from the LAN
//! or a client leaking connections, and either way someone should look.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How often "max_connections reached" may be logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Who hears that the cap was reached: the metrics every time, and once per run the journal,
/// as a gateway alert.
#[derive(Clone, Debug)]
pub struct CapAlarm {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub writer: crate::journal::WriterHandle,
    pub gateway_id: String,
}

impl CapAlarm {
    fn raise(&self, max: usize) {
        let d = crate::gateway_alerts::cap_reached(
            &self.gateway_id,
            "api_connections",
            format!(
                "Local API reached max_connections ({max}); new clients wait (something holds connections open)"
            ),
            "api_connections_capped",
        );
        self.writer.send(crate::journal::WriterCmd::Gateway {
            draft: Box::new(d),
            reply: None,
        });
    }
}

/// A TCP listener that serves at most `max` connections at once.
#[derive(Debug)]
pub struct Capped {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    idle: Duration,
    warned: Option<Instant>,
    alarm: Option<CapAlarm>,
    /// The gateway alert was sent (once per run).
    alarmed: bool,
}

impl Capped {
    pub fn new(inner: TcpListener, max: usize, idle: Duration) -> Capped {
        let max = max.max(1);
        Capped {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            max,
            idle,
            warned: None,
            alarm: None,
            alarmed: false,
        }
    }

    /// Counts and alerts through `alarm` when the cap is reached.
    pub fn with_alarm(mut self, alarm: CapAlarm) -> Capped {
        self.alarm = Some(alarm);
        self
    }

    /// A client has to wait for a slot.
    fn reached(&mut self) {
        let first = !self.alarmed;
        if let Some(a) = &self.alarm {
            a.metrics.api_connections_capped();
            if first {
                a.raise(self.max);
            }
        }
        self.alarmed = true;
        if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.warned = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max,
                "local API: max_connections ({}) connections open; new clients wait until one closes (idle ones close after {:?}){}",
                self.max,
                self.idle,
                if first && self.alarm.is_some() {
                    "; raising a gateway alert"
                } else {
                    ""
                }
            );
        }
    }
}

impl axum::serve::Listener for Capped {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.reached();
                match self.slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (Conn::new(tcp, permit, self.idle), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One served connection: holds its slot until dropped, and fails its reads and writes once
/// it has been idle for the timeout (hyper then closes it).
#[derive(Debug)]
pub struct Conn {
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(tcp: TcpStream, slot: OwnedSemaphorePermit, idle: Duration) -> Conn {
        Conn {
            tcp,
            _slot: slot,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn touch(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Pending until the idle deadline, then the error that closes the connection.
    fn poll_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "local API connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_idle_connection_errors_after_the_timeout_and_an_active_one_does_not() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut capped = Capped::new(l, 4, Duration::from_millis(300));
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = capped.accept().await;
        let mut buf = [0u8; 8];
        // Active: a byte every 100 ms keeps it open past the timeout.
        for _ in 0..5 {
            client.write_all(b"x").await.unwrap();
            assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = std::time::Instant::now();
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_slot_is_taken_per_connection_and_freed_when_it_closes() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut capped = Capped::new(l, 1, Duration::from_secs(60));
        let _a = TcpStream::connect(addr).await.unwrap();
        let (first, _) = capped.accept().await;
        let _b = TcpStream::connect(addr).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(200), capped.accept()).await;
        assert!(
            waited.is_err(),
            "a second connection waits while the first holds the slot"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(2), capped.accept()).await;
        assert!(second.is_ok(), "served once the slot is free");
    }

    #[tokio::test]
    async fn reaching_the_cap_is_counted_each_time_and_alerted_once() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new(&[], &[]));
        let (writer, mut cmds) = crate::journal::writer::test_handle();
        let mut capped = Capped::new(l, 1, Duration::from_secs(60)).with_alarm(CapAlarm {
            metrics: metrics.clone(),
            writer,
            gateway_id: "gw-test".into(),
        });
        let _a = TcpStream::connect(addr).await.unwrap();
        let (first, _) = capped.accept().await;
        for _ in 0..3 {
            let _b = TcpStream::connect(addr).await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(50), capped.accept()).await;
            assert!(waited.is_err(), "the cap holds");
        }
        let counted = metrics.encode().unwrap().lines().find_map(|l| {
            l.strip_prefix("atgw_api_connections_capped_total ")
                .map(str::to_owned)
        });
        assert_eq!(counted.as_deref(), Some("3"), "each wait is counted");
        let mut alerts = Vec::new();
        while let Ok(cmd) = cmds.try_recv() {
            if let crate::journal::WriterCmd::Gateway { draft, .. } = cmd {
                alerts.push(draft.data.device.id.clone());
            }
        }
        assert_eq!(
            alerts,
            ["gateway:gw-test:api_connections"],
            "one gateway alert"
        );
        drop(first);
    }
}
