//! Where the link's bytes come from: a TCP listener (one peer at a time; a newcomer replaces
//! the old connection), a TCP client to a serial server, or a local serial port. Both link
//! sides run the same state machines on any of them.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Transport;
use crate::serial::SerialPort;

/// A byte stream of either kind.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Stream = Box<dyn Io>;

/// A transport ready to hand out streams.
pub enum Opener {
    Listen(TcpListener),
    Connect(String),
    Serial(crate::config::Serial),
}

/// The longest wait between attempts to reopen a serial port or reconnect to a serial server.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);

impl Opener {
    /// Binds the listener (the only step that can fail at start: a port in use); a client or a
    /// serial port is opened by [`Opener::open`], and again whenever it is lost.
    pub async fn bind(t: &Transport) -> std::io::Result<Opener> {
        if let Some(l) = &t.listen {
            return Ok(Opener::Listen(TcpListener::bind(l).await?));
        }
        if let Some(c) = &t.connect {
            return Ok(Opener::Connect(c.clone()));
        }
        match &t.serial {
            Some(s) => Ok(Opener::Serial(s.clone())),
            None => Err(std::io::Error::other("no transport configured")),
        }
    }

    /// The listener's bound address (tests bind port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Opener::Listen(l) => l.local_addr().ok(),
            _ => None,
        }
    }

    /// The next stream and where it is from: accepts, connects or opens.
    pub async fn open(&self) -> std::io::Result<(Stream, String)> {
        match self {
            Opener::Listen(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), peer.to_string()))
            }
            Opener::Connect(addr) => {
                let s = TcpStream::connect(addr).await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), addr.clone()))
            }
            Opener::Serial(cfg) => {
                let port = SerialPort::open(cfg)?;
                Ok((Box::new(port), cfg.device.display().to_string()))
            }
        }
    }

    /// A listener hands out a new stream whenever a peer connects; the others never replace
    /// the stream they have.
    pub fn replaces(&self) -> bool {
        matches!(self, Opener::Listen(_))
    }
}
