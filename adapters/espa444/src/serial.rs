//! A local serial port as a tokio byte stream: opened non-blocking, set raw with the configured
//! baud, data bits, parity and stop bits (termios through rustix), and polled through tokio's
//! `AsyncFd`. Works the same on a real UART, a USB adapter and a pseudo-terminal (the tests use
//! socat's pty pairs).

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, ControlModes, InputModes, OptionalActions};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::{Parity, Serial};

/// An open, configured serial port.
pub struct SerialPort {
    fd: AsyncFd<std::fs::File>,
}

impl SerialPort {
    /// Opens and configures `cfg.device`. Must run inside a tokio runtime.
    pub fn open(cfg: &Serial) -> std::io::Result<SerialPort> {
        let fd = rustix::fs::open(
            &cfg.device,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut t = termios::tcgetattr(&fd)?;
        t.make_raw();
        let mut c = t.control_modes;
        c.remove(
            ControlModes::CSIZE
                | ControlModes::PARENB
                | ControlModes::PARODD
                | ControlModes::CSTOPB,
        );
        c.insert(ControlModes::CREAD | ControlModes::CLOCAL);
        c.insert(if cfg.data_bits == 7 {
            ControlModes::CS7
        } else {
            ControlModes::CS8
        });
        match cfg.parity {
            Parity::None => {}
            Parity::Even => c.insert(ControlModes::PARENB),
            Parity::Odd => c.insert(ControlModes::PARENB | ControlModes::PARODD),
        }
        if cfg.stop_bits == 2 {
            c.insert(ControlModes::CSTOPB);
        }
        t.control_modes = c;
        if cfg.parity != Parity::None {
            // Check parity and strip it, so 7E1 text arrives as 7-bit bytes.
            t.input_modes.insert(InputModes::INPCK | InputModes::ISTRIP);
        }
        t.set_speed(cfg.baud)?;
        termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
        // `AsyncFd::new` is deprecated because a type's `as_raw_fd` could change or close
        // under it; a `File` owns its descriptor until it is dropped with the `AsyncFd`, which
        // is the whole of the condition the unsafe `register` asks its caller to uphold.
        #[allow(deprecated)]
        let fd = AsyncFd::new(std::fs::File::from(fd))?;
        Ok(SerialPort { fd })
    }
}

impl AsyncRead for SerialPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|f| f.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for SerialPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|f| f.get_ref().write(buf)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
