//! Stream reassembly: bytes as they arrive from TCP (or one UDP datagram) → complete `LF…CR`
//! frames. Pure and synchronous, so the fuzzer and property tests drive it directly.
//!
//! Why not "one read = one frame": transmitters put several frames in one segment and split
//! frames across segments, some prefix garbage or append NULs, and the Lupusec binary CRC may
//! itself contain LF or CR bytes. The buffer is bounded: a peer that never sends CR costs us at
//! most `max_frame_bytes`.

use crate::frame::{CR, FrameError, LF, is_binary_crc};

/// Smallest prefix that tells the hex-CRC and binary-CRC layouts apart.
const CLASSIFY_LEN: usize = 8;

/// Accumulates bytes and yields complete frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_frame_bytes: usize,
    /// Bytes dropped while looking for LF that were not NULs or whitespace (worth a log line).
    garbage: usize,
    /// The start of the last frame dropped for size, for its dead letter.
    discarded: Vec<u8>,
}

impl FrameDecoder {
    /// `max_frame_bytes` bounds one frame including LF and CR (DC-09's own maximum is 4105).
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max_frame_bytes: max_frame_bytes.max(CLASSIFY_LEN + 2),
            garbage: 0,
            discarded: Vec::new(),
        }
    }

    /// Appends received bytes. Bytes before the first LF are dropped at once, so the buffer never
    /// holds more than one partial frame.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.buf.is_empty() {
            match bytes.iter().position(|&b| b == LF) {
                Some(p) => {
                    self.count_garbage(&bytes[..p]);
                    self.buf.extend_from_slice(&bytes[p..]);
                }
                None => self.count_garbage(bytes),
            }
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Garbage bytes seen since the last call (NULs and whitespace between frames don't count).
    pub fn take_garbage(&mut self) -> usize {
        std::mem::take(&mut self.garbage)
    }

    /// The first `max_frame_bytes` of the frame the last `Oversize` error dropped.
    pub fn take_discarded(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.discarded)
    }

    /// Bytes waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame (LF … CR inclusive), `Ok(None)` when more bytes are needed, or
    /// `Err(Oversize)` after discarding a frame that outgrew the limit (the decoder stays usable).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            self.skip_to_lf();
            match find_end(&self.buf) {
                Ok(End::Frame(end)) => {
                    let frame: Vec<u8> = self.buf.drain(..=end).collect();
                    return Ok(Some(frame));
                }
                Ok(End::Restart(at)) => {
                    // An LF before any CR: what came before was an unterminated fragment.
                    let dropped: Vec<u8> = self.buf.drain(..at).collect();
                    self.count_garbage(&dropped);
                }
                Err(FrameError::Incomplete) => {
                    if self.buf.len() > self.max_frame_bytes {
                        let len = self.buf.len();
                        // Keep only its head for the dead letter: the rest of this oversize
                        // frame is garbage until the next LF.
                        self.buf.truncate(self.max_frame_bytes);
                        self.discarded = std::mem::take(&mut self.buf);
                        return Err(FrameError::Oversize {
                            len,
                            limit: self.max_frame_bytes,
                        });
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn skip_to_lf(&mut self) {
        match self.buf.iter().position(|&b| b == LF) {
            Some(0) => {}
            Some(p) => {
                let dropped: Vec<u8> = self.buf.drain(..p).collect();
                self.count_garbage(&dropped);
            }
            None => {
                let dropped = std::mem::take(&mut self.buf);
                self.count_garbage(&dropped);
            }
        }
    }

    fn count_garbage(&mut self, bytes: &[u8]) {
        self.garbage += bytes
            .iter()
            .filter(|&&b| !(b == 0 || b.is_ascii_whitespace()))
            .count();
    }
}

enum End {
    /// Index of the CR that ends the frame starting at 0.
    Frame(usize),
    /// A new LF at this index starts over.
    Restart(usize),
}

/// `buf` starts with LF (or is empty).
fn find_end(buf: &[u8]) -> Result<End, FrameError> {
    if buf.len() < CLASSIFY_LEN {
        return Err(FrameError::Incomplete);
    }
    if is_binary_crc(buf) {
        // The two CRC bytes may be CR or LF; everything after the quote is text.
        return match buf[CLASSIFY_LEN..].iter().position(|&b| b == CR) {
            Some(p) => Ok(End::Frame(CLASSIFY_LEN + p)),
            None => Err(FrameError::Incomplete),
        };
    }
    match buf[1..].iter().position(|&b| b == CR || b == LF) {
        Some(p) if buf[1 + p] == CR => Ok(End::Frame(1 + p)),
        Some(p) => Ok(End::Restart(1 + p)),
        None => Err(FrameError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P5: &[u8] = b"\nDC460027\"NULL\"0005L0#1234[]_12:00:00,06-01-2024\r";
    const P7: &[u8] = b"\nCE110032\"SIA-DCS\"9876R579BDFL789ABC#12345A[#12345A|NFA129]\r";

    fn drain(d: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = d.next_frame() {
            out.push(f);
        }
        out
    }

    #[test]
    fn several_frames_in_one_read_come_out_in_order() {
        let mut d = FrameDecoder::new(4200);
        let mut bytes = P5.to_vec();
        bytes.extend_from_slice(P7);
        d.extend(&bytes);
        assert_eq!(drain(&mut d), vec![P5.to_vec(), P7.to_vec()]);
    }

    #[test]
    fn a_frame_split_byte_by_byte_is_reassembled() {
        let mut d = FrameDecoder::new(4200);
        let mut got = Vec::new();
        for b in P7 {
            d.extend(std::slice::from_ref(b));
            got.extend(drain(&mut d));
        }
        assert_eq!(got, vec![P7.to_vec()]);
    }

    #[test]
    fn garbage_before_lf_is_skipped_and_trailing_nuls_are_tolerated() {
        let mut d = FrameDecoder::new(4200);
        let mut bytes = b"junk".to_vec();
        bytes.extend_from_slice(P5);
        bytes.extend_from_slice(&[0, 0, 0]);
        bytes.extend_from_slice(P7);
        bytes.push(0);
        d.extend(&bytes);
        assert_eq!(drain(&mut d), vec![P5.to_vec(), P7.to_vec()]);
        assert_eq!(d.take_garbage(), 4);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn an_unterminated_fragment_is_dropped_when_a_new_frame_starts() {
        let mut d = FrameDecoder::new(4200);
        let mut bytes = b"\n1234567890abc".to_vec();
        bytes.extend_from_slice(P5);
        d.extend(&bytes);
        assert_eq!(drain(&mut d), vec![P5.to_vec()]);
    }

    #[test]
    fn a_frame_without_cr_cannot_grow_the_buffer_past_the_limit() {
        let mut d = FrameDecoder::new(64);
        d.extend(b"\n");
        d.extend(&[b'A'; 100]);
        assert!(matches!(d.next_frame(), Err(FrameError::Oversize { .. })));
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.take_discarded().len(), 64);
        d.extend(P5);
        assert_eq!(d.next_frame(), Ok(Some(P5.to_vec())));
    }
}
