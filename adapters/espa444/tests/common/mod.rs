//! A nurse-call control station written from the spec (legacy.md §4.3–4.4), not from the
//! crate: its own BCC and block builder, so a misreading shared with atgw cannot hide.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const SOH: u8 = 0x01;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const EOT: u8 = 0x04;
pub const ENQ: u8 = 0x05;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const US: u8 = 0x1F;
pub const RS: u8 = 0x1E;

/// `SOH 1 STX <id US data> RS … ETX BCC`, BCC the XOR of every byte after SOH through ETX.
pub fn call_block(records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![SOH, b'1', STX];
    for (i, (id, data)) in records.iter().enumerate() {
        if i > 0 {
            b.push(RS);
        }
        b.push(*id);
        b.push(US);
        b.extend_from_slice(data);
    }
    b.push(ETX);
    let bcc = b[1..].iter().fold(0u8, |a, x| a ^ x);
    b.push(bcc);
    b
}

/// A control station (address `1`) selecting paging system `2` and sending blocks.
pub struct ControlStation<S> {
    pub io: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ControlStation<S> {
    /// One byte from the paging system, or `None` after `within`.
    pub async fn answer(&mut self, within: Duration) -> Option<u8> {
        let mut b = [0u8; 1];
        match tokio::time::timeout(within, self.io.read(&mut b)).await {
            Ok(Ok(1)) => Some(b[0]),
            _ => None,
        }
    }

    /// `1 ENQ 2 ENQ`: what the paging system answers.
    pub async fn select(&mut self) -> Option<u8> {
        self.io.write_all(&[b'1', ENQ, b'2', ENQ]).await.ok()?;
        self.answer(Duration::from_secs(3)).await
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.io.write_all(bytes).await;
    }

    /// Select, send one block and return its answer (`None`: no answer within `within`).
    pub async fn send(&mut self, block: &[u8], within: Duration) -> Option<u8> {
        assert_eq!(self.select().await, Some(ACK), "the select was not ACKed");
        self.write(block).await;
        self.answer(within).await
    }

    pub async fn eot(&mut self) {
        self.write(&[EOT]).await;
    }
}

/// A socat pseudo-terminal pair (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`): two real tty
/// devices wired back to back, like a null-modem cable. Killed on drop.
pub struct PtyPair {
    child: std::process::Child,
    pub a: std::path::PathBuf,
    pub b: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    pub fn start() -> PtyPair {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
        let child = std::process::Command::new("socat")
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (apt-get install socat; .ci/run installs it)");
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !(a.exists() && b.exists()) {
            assert!(std::time::Instant::now() < until, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(20));
        }
        PtyPair {
            child,
            a,
            b,
            _dir: dir,
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a pty end for the test's own station: raw, non-blocking, through tokio.
pub fn open_tty(path: &std::path::Path) -> atgw_espa444::serial::SerialPort {
    atgw_espa444::serial::SerialPort::open(&atgw_espa444::config::Serial {
        device: path.to_owned(),
        baud: 9600,
        data_bits: 8,
        parity: atgw_espa444::config::Parity::None,
        stop_bits: 1,
    })
    .unwrap()
}
