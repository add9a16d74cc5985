//! Stream reassembly: bytes as the serial port or socket hands them over → link [`Token`]s
//! (`<addr> ENQ`, `ACK`, `NAK`, `EOT`, a whole block). Bounded and pure.
//!
//! Line noise must not desynchronise the link: bytes that belong to nothing are dropped
//! (counted), a block is collected from SOH through ETX and the byte after it (the BCC, which
//! may have any value), and a link control byte that turns up inside a block's text (ENQ, EOT,
//! ACK, NAK, SOH: never data) ends that block as broken and is then read as itself, so a
//! select that follows a half block is not swallowed.

use crate::block::{ACK, ENQ, EOT, ETX, MAX_BLOCK, NAK, SOH};

/// What the link hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// `<addr> ENQ`: a poll or a select of station `addr` (`'0'`–`'9'`).
    Enq(u8),
    Ack,
    Nak,
    Eot,
    /// SOH through BCC, not yet checked.
    Block(Vec<u8>),
    /// A block cut short (a control byte inside it, or longer than [`MAX_BLOCK`]): the bytes
    /// so far, for the dead letter.
    Broken(Vec<u8>),
}

/// The reassembler's memory between reads.
#[derive(Debug, Default)]
pub struct Reader {
    /// The block being collected (starts with SOH), if any.
    block: Option<Vec<u8>>,
    /// The block's ETX arrived: the next byte is its BCC.
    want_bcc: bool,
    /// Outside a block: the previous byte, a station address when ENQ follows.
    last: Option<u8>,
    /// Bytes that belonged to nothing, since the start.
    pub noise: u64,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Feeds bytes; returns the tokens they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Token> {
        let mut out = Vec::new();
        for &b in bytes {
            self.byte(b, &mut out);
        }
        out
    }

    /// A block is half read (a timer may want to give up on it).
    pub fn in_block(&self) -> bool {
        self.block.is_some()
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Token>) {
        if let Some(block) = self.block.as_mut() {
            if self.want_bcc {
                block.push(b);
                self.want_bcc = false;
                if let Some(done) = self.block.take() {
                    out.push(Token::Block(done));
                }
                return;
            }
            if matches!(b, SOH | ENQ | EOT | ACK | NAK) {
                let mut broken = self.block.take().unwrap_or_default();
                // `2 ENQ` after a half block: the `2` went into the block, but is the select's.
                let addr = if b == ENQ {
                    broken.pop_if(|a| a.is_ascii_digit())
                } else {
                    None
                };
                out.push(Token::Broken(broken));
                self.last = addr;
                self.byte(b, out);
                return;
            }
            block.push(b);
            if b == ETX {
                self.want_bcc = true;
            } else if block.len() >= MAX_BLOCK
                && let Some(done) = self.block.take()
            {
                out.push(Token::Broken(done));
            }
            return;
        }
        let last = self.last.replace(b);
        match b {
            SOH => {
                self.block = Some(vec![SOH]);
                self.last = None;
            }
            ENQ => match last {
                Some(a) if a.is_ascii_digit() => {
                    out.push(Token::Enq(a));
                    // The address was counted as noise when it came; it was not.
                    self.noise = self.noise.saturating_sub(1);
                    self.last = None;
                }
                _ => self.noise += 1,
            },
            ACK | NAK | EOT => {
                out.push(match b {
                    ACK => Token::Ack,
                    NAK => Token::Nak,
                    _ => Token::Eot,
                });
                self.last = None;
            }
            _ => self.noise += 1,
        }
    }

    /// Gives up on a half-read block (its sender went quiet): its bytes, for the dead letter.
    pub fn abandon(&mut self) -> Option<Vec<u8>> {
        self.want_bcc = false;
        self.block.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, Field, Header};

    fn block() -> Vec<u8> {
        Block::new(Header::CallToPager, [(Field::CallAddress, "12".to_owned())]).encode()
    }

    #[test]
    fn a_select_then_a_block_then_eot() {
        let mut bytes = b"1\x052\x05".to_vec();
        bytes.extend(block());
        bytes.push(EOT);
        let mut r = Reader::new();
        assert_eq!(
            r.feed(&bytes),
            vec![
                Token::Enq(b'1'),
                Token::Enq(b'2'),
                Token::Block(block()),
                Token::Eot
            ]
        );
        assert_eq!(r.noise, 0);
    }

    #[test]
    fn tokens_split_across_reads_are_the_same() {
        let mut bytes = b"2\x05".to_vec();
        bytes.extend(block());
        let mut r = Reader::new();
        let got: Vec<Token> = bytes.iter().flat_map(|b| r.feed(&[*b])).collect();
        assert_eq!(got, vec![Token::Enq(b'2'), Token::Block(block())]);
    }

    #[test]
    fn noise_between_tokens_is_dropped() {
        let mut bytes = b"\xff\x00zz".to_vec();
        bytes.extend(b"2\x05");
        bytes.extend(b"\x1f\x1e");
        bytes.extend(block());
        let mut r = Reader::new();
        assert_eq!(
            r.feed(&bytes),
            vec![Token::Enq(b'2'), Token::Block(block())]
        );
        assert_eq!(r.noise, 6);
    }

    #[test]
    fn a_half_block_does_not_swallow_the_select_after_it() {
        let mut bytes = vec![SOH, b'1', 0x02, b'1'];
        bytes.extend(b"2\x05");
        let mut r = Reader::new();
        assert_eq!(
            r.feed(&bytes),
            vec![Token::Broken(vec![SOH, b'1', 0x02, b'1']), Token::Enq(b'2')]
        );
    }

    #[test]
    fn a_bcc_that_is_a_control_value_is_data() {
        // Whatever byte follows ETX is the BCC, even SOH's or EOT's value.
        for bcc in [SOH, EOT, ENQ, ETX] {
            let bytes = vec![SOH, b'1', 0x02, b'1', 0x1F, b'A', ETX, bcc];
            let mut r = Reader::new();
            assert_eq!(r.feed(&bytes), vec![Token::Block(bytes.clone())]);
            assert!(!r.in_block());
        }
    }

    #[test]
    fn an_endless_block_is_cut() {
        let mut r = Reader::new();
        let mut bytes = vec![SOH];
        bytes.extend(std::iter::repeat_n(b'x', MAX_BLOCK + 10));
        let t = r.feed(&bytes);
        assert!(matches!(&t[..], [Token::Broken(b)] if b.len() == MAX_BLOCK));
        assert!(!r.in_block());
    }
}
