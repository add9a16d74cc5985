//! HTTP listeners for axum servers (the local API, the HTTP ingest adapter): at most
//! `max` connections are served at once, a connection on which nothing was read or written for
//! `idle` is closed, and with TLS only finished handshakes reach the server.
//!
//! Connections are unauthenticated until their first request, so without a cap anyone who can
//! reach the port could hold thousands open (20,000 idle ones held 247 MB). At the cap the
//! listener stops accepting: further clients wait in the kernel's backlog (bounded by
//! `somaxconn`) and are served as soon as a slot frees, which the idle timeout guarantees
//! happens. Reaching the cap is logged at most once a minute and told to the owner's
//! [`OnCap`] (metrics, a gateway alert), which learns whether it is the first time this run.
//!
//! TLS handshakes run in their own tasks, each bounded by [`HANDSHAKE_TIMEOUT`]: a client that
//! connects and says nothing holds its connection slot but never stalls the accept loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

/// How often "max_connections reached" may be logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A client has this long to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Told each time a client has to wait for a slot; `true` the first time this run.
pub type OnCap = Arc<dyn Fn(bool) + Send + Sync>;

/// A TCP listener that serves at most `max` connections at once.
pub struct Capped {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    idle: Duration,
    /// Who is listening, for the log line (`local API`, `adapter clouds`).
    label: String,
    warned: Option<Instant>,
    on_cap: Option<OnCap>,
    /// The cap was reached before (this run).
    reached_before: bool,
}

impl std::fmt::Debug for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capped")
            .field("label", &self.label)
            .field("max", &self.max)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl Capped {
    pub fn new(inner: TcpListener, max: usize, idle: Duration) -> Capped {
        let max = max.max(1);
        Capped {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            max,
            idle,
            label: "listener".to_owned(),
            warned: None,
            on_cap: None,
            reached_before: false,
        }
    }

    /// Names the listener in its log lines.
    pub fn labelled(mut self, label: impl Into<String>) -> Capped {
        self.label = label.into();
        self
    }

    /// Tells `on_cap` each time the cap is reached.
    pub fn on_cap(mut self, on_cap: OnCap) -> Capped {
        self.on_cap = Some(on_cap);
        self
    }

    /// A client has to wait for a slot.
    fn reached(&mut self) {
        let first = !self.reached_before;
        self.reached_before = true;
        if let Some(f) = &self.on_cap {
            f(first);
        }
        if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.warned = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max,
                "{}: max_connections ({}) connections open; new clients wait until one closes (idle ones close after {:?})",
                self.label,
                self.max,
                self.idle,
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
                "connection idle for too long",
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

/// The capped listener with TLS: yields connections whose handshake finished.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<Conn>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    pub fn new(
        mut inner: Capped,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> io::Result<TlsListener> {
        use axum::serve::Listener;
        let addr = inner.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (io, peer) = tokio::select! {
                    c = inner.accept() => c,
                    _ = tx.closed() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (the runtime is stopping): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Why a TLS server configuration could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {problem}")]
    File {
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("TLS: {0}")]
    Rustls(String),
}

/// A server configuration from PEM files: the certificate chain, its private key (a secret
/// file: private, never logged) and, when given, the CAs whose client certificates are
/// required. HTTP/1.1 only, as the servers here speak it.
pub fn server_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
    client_ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::rustls::ServerConfig, TlsSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let file_err = |path: &std::path::Path, e: &dyn std::fmt::Display| TlsSetupError::File {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    let certs = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
        let chain = CertificateDer::pem_file_iter(path)
            .map_err(|e| file_err(path, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(path, &e))?;
        if chain.is_empty() {
            return Err(file_err(path, &"no certificate in the file"));
        }
        Ok(chain)
    };
    let chain = certs(cert_file)?;
    let pem = crate::secret::read_secret_file(key_file).map_err(|e| file_err(key_file, &e))?;
    let key = PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
        .map_err(|e| file_err(key_file, &e))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(path)? {
                roots.add(c).map_err(|e| file_err(path, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
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
    async fn reaching_the_cap_is_told_each_time_and_first_once() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = told.clone();
        let mut capped = Capped::new(l, 1, Duration::from_secs(60))
            .on_cap(Arc::new(move |first| t.lock().unwrap().push(first)));
        let _a = TcpStream::connect(addr).await.unwrap();
        let (first, _) = capped.accept().await;
        for _ in 0..3 {
            let _b = TcpStream::connect(addr).await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(50), capped.accept()).await;
            assert!(waited.is_err(), "the cap holds");
        }
        assert_eq!(*told.lock().unwrap(), [true, false, false]);
        drop(first);
    }
}
