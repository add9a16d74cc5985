//! SIP over a byte stream (RFC 3261 §18.3): bytes as they arrive → whole messages. The header
//! section ends at the blank line and `Content-Length` (mandatory on streams) says where the
//! body ends. Blank lines between messages are keep-alives (RFC 5626 §4.4.1 `CRLF CRLF`) and
//! are skipped. Bounded: a header section over [`MAX_HEAD`] or a body over [`MAX_BODY`] is an
//! error after which the stream cannot be resynchronised and is closed.

use super::message::{MAX_BODY, MAX_HEAD, Message, SipError, head_end};

/// Reassembles messages from one stream.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

/// One item off the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message's bytes.
    Message(Vec<u8>),
    /// A `CRLF CRLF` keep-alive ping: answer `CRLF`.
    Ping,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SipError> {
        let lead = self
            .buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(self.buf.len());
        if lead > 0 {
            let ping = self.buf[..lead].windows(4).any(|w| w == b"\r\n\r\n");
            if !ping && lead == self.buf.len() && lead < 4 {
                // The start of a ping split across reads: wait for the rest.
                return Ok(None);
            }
            self.buf.drain(..lead);
            if ping {
                return Ok(Some(Frame::Ping));
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(end) = head_end(&self.buf) else {
            if self.buf.len() > MAX_HEAD {
                return Err(SipError::HeadTooLarge);
            }
            return Ok(None);
        };
        if end > MAX_HEAD {
            return Err(SipError::HeadTooLarge);
        }
        let length = content_length(&self.buf[..end])?;
        if length > MAX_BODY {
            return Err(SipError::BodyTooLarge);
        }
        if self.buf.len() < end + length {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..end + length).collect();
        Ok(Some(Frame::Message(msg)))
    }
}

/// `Content-Length` of a header section; 0 when absent (then the message has no body).
fn content_length(head: &[u8]) -> Result<usize, SipError> {
    let text = std::str::from_utf8(head).map_err(|_| SipError::Encoding)?;
    for line in text.lines() {
        if let Some((name, value)) = line.split_once(':') {
            let n = name.trim();
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l") {
                return value
                    .trim()
                    .parse()
                    .map_err(|_| SipError::Header(format!("Content-Length: {}", value.trim())));
            }
        }
    }
    Ok(0)
}

/// Parses a framed message (the framer already checked its length).
pub fn parse(frame: &[u8]) -> Result<Message, SipError> {
    Message::parse(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_reads_and_pings_between_them_are_framed() {
        let one = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        let mut f = Framer::default();
        f.push(&one[..10]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&one[10..]);
        f.push(b"\r\n\r\n");
        f.push(one);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(one.to_vec()))));
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(one.to_vec()))));
        assert_eq!(f.next_frame(), Ok(None));
    }

    #[test]
    fn oversize_heads_and_bodies_are_errors() {
        let mut f = Framer::default();
        f.push(&vec![b'a'; MAX_HEAD + 1]);
        assert_eq!(f.next_frame(), Err(SipError::HeadTooLarge));
        let mut f = Framer::default();
        f.push(format!("MESSAGE sip:a SIP/2.0\r\nl: {}\r\n\r\n", MAX_BODY + 1).as_bytes());
        assert_eq!(f.next_frame(), Err(SipError::BodyTooLarge));
    }
}
