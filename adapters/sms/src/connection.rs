//! PDUs on a socket: TCP (optionally TLS), a reader task that cuts the byte stream into PDUs,
//! and a writer. Knows nothing of sessions or deliveries.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::SessionError;
use crate::pdu::{self, DecodeError, Pdu};

/// A byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What the reader task hands over.
#[derive(Debug)]
pub enum Inbound {
    Pdu(Pdu),
    /// A PDU that was framed but not understood: answer `generic_nack` under its sequence.
    Unreadable {
        sequence: u32,
        status: u32,
        error: DecodeError,
    },
}

/// One open connection to the SMSC.
pub struct Connection {
    writer: WriteHalf<Box<dyn Stream>>,
    /// PDUs read; closed when the peer closes or the stream breaks (the reason is in
    /// [`Connection::closed_because`]).
    pub inbound: mpsc::Receiver<Inbound>,
    ended: Arc<std::sync::Mutex<Option<String>>>,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Opens TCP (and TLS when `tls` is given) to `host:port` within `timeout`.
pub async fn open(
    host: &str,
    port: u16,
    tls: Option<&tokio_rustls::TlsConnector>,
    timeout: Duration,
) -> Result<Connection, SessionError> {
    // `[::1]` is how a person writes an IPv6 literal; the resolver wants it bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let connect = async {
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| SessionError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = ServerName::try_from(bare.to_owned()).map_err(|_| {
                    SessionError::Tls(format!("`{host}` is not a valid TLS server name"))
                })?;
                let s = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SessionError::Tls(e.to_string()))?;
                Box::new(s)
            }
        };
        Ok::<_, SessionError>(stream)
    };
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| SessionError::Timeout("connect"))??;
    let (read, writer) = tokio::io::split(stream);
    let (tx, inbound) = mpsc::channel(64);
    let ended = Arc::new(std::sync::Mutex::new(None));
    let reader = tokio::spawn(read_pdus(read, tx, ended.clone()));
    Ok(Connection {
        writer,
        inbound,
        ended,
        reader,
    })
}

impl Connection {
    /// Writes one PDU.
    pub async fn send(&mut self, p: &Pdu) -> Result<(), SessionError> {
        let bytes = pdu::encode(p).map_err(SessionError::Encode)?;
        self.send_encoded(&bytes).await
    }

    /// Writes a PDU already encoded.
    pub async fn send_encoded(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| SessionError::Io(e.to_string()))?;
        self.writer
            .flush()
            .await
            .map_err(|e| SessionError::Io(e.to_string()))
    }

    /// Why the inbound channel closed.
    pub fn closed_because(&self) -> String {
        self.ended
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "the connection closed".to_owned())
    }

    /// Closes the write side (TLS close_notify, TCP FIN), bounded.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.shutdown()).await;
    }
}

/// Cuts the stream into PDUs until it ends or breaks. A PDU that is framed but unreadable is
/// reported and skipped; a bad `command_length` ends the stream (it cannot be resynchronised).
async fn read_pdus(
    mut read: ReadHalf<Box<dyn Stream>>,
    tx: mpsc::Sender<Inbound>,
    ended: Arc<std::sync::Mutex<Option<String>>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let why = 'outer: loop {
        loop {
            match pdu::decode(&buf) {
                Ok((p, n)) => {
                    buf.drain(..n);
                    if tx.send(Inbound::Pdu(p)).await.is_err() {
                        break 'outer "the session stopped reading".to_owned();
                    }
                }
                Err(DecodeError::Incomplete { .. }) => break,
                Err(
                    e @ (DecodeError::UnknownCommand {
                        sequence, length, ..
                    }
                    | DecodeError::Malformed {
                        sequence, length, ..
                    }),
                ) => {
                    buf.drain(..length.min(buf.len()));
                    let status = match e {
                        DecodeError::UnknownCommand { .. } => pdu::status::ESME_RINVCMDID,
                        _ => pdu::status::ESME_RINVMSGLEN,
                    };
                    let bad = Inbound::Unreadable {
                        sequence,
                        status,
                        error: e,
                    };
                    if tx.send(bad).await.is_err() {
                        break 'outer "the session stopped reading".to_owned();
                    }
                }
                Err(e) => break 'outer format!("the SMSC sent an unreadable PDU header: {e}"),
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => break "the SMSC closed the connection".to_owned(),
            Ok(0) => break "the SMSC closed the connection inside a PDU".to_owned(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    if let Ok(mut slot) = ended.lock() {
        *slot = Some(why);
    }
}
