//! One DC-09 frame: its typed form, how it is parsed from the bytes between LF and CR, and how it
//! is written back. No I/O, no keys: decryption happens in [`crate::crypto`] on the
//! [`Body::Encrypted`] text this module leaves untouched.
//!
//! Parsing is lenient and emitting strict (legacy.md §1.12): we accept lowercase hex, a 2-byte
//! binary CRC, a missing `L`, accounts outside the hex alphabet, the `R0L0A0` NAK form and
//! pysiaalarm's `None` quirk, but we always write uppercase hex, `L`, and the 2013 layout.

use crc::{CRC_16_ARC, Crc};

use crate::timestamp::{Dc09Time, TIMESTAMP_LEN};

pub const LF: u8 = b'\n';
pub const CR: u8 = b'\r';

/// CRC-16/ARC, the one DC-09 uses (several public snippets wrongly use CCITT).
pub const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_ARC);

/// The length field has three hex digits.
pub const MAX_MESSAGE_LEN: usize = 0xFFF;

/// The frame's ID token (`"SIA-DCS"` etc.), without the encryption `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// SIA DC-03 payload.
    SiaDcs,
    /// Ademco Contact ID (DC-05) payload.
    AdmCid,
    /// Link test / supervision.
    Null,
    Ack,
    Nak,
    Duh,
    Rsp,
    /// Well-framed but not one we process (answered with DUH). Printable ASCII only.
    Other(String),
}

impl Token {
    pub fn parse(text: &str) -> Token {
        match text {
            "SIA-DCS" => Token::SiaDcs,
            "ADM-CID" => Token::AdmCid,
            "NULL" => Token::Null,
            "ACK" => Token::Ack,
            "NAK" => Token::Nak,
            "DUH" => Token::Duh,
            "RSP" => Token::Rsp,
            other => Token::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Token::SiaDcs => "SIA-DCS",
            Token::AdmCid => "ADM-CID",
            Token::Null => "NULL",
            Token::Ack => "ACK",
            Token::Nak => "NAK",
            Token::Duh => "DUH",
            Token::Rsp => "RSP",
            Token::Other(s) => s,
        }
    }
}

/// How the transmitter wrote the CRC: 4 hex digits (standard) or 2 raw bytes (Lupusec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrcForm {
    Hex,
    Binary,
}

/// Everything before the `[` of the data field. Fields are kept as the strings received so
/// leading zeros survive and an ACK can echo them exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    pub token: Token,
    /// `*` before the token: the body is AES ciphertext.
    pub encrypted: bool,
    /// Four decimal digits, `0000`–`9999`.
    pub seq: String,
    /// `R` receiver number, when the transmitter sent one (echoed only then).
    pub receiver: Option<String>,
    /// `L` account prefix; mandatory in the standard but some transmitters omit it.
    pub prefix: Option<String>,
    /// `#` account. `None` only in the NAK's literal `A0` form.
    pub account: Option<String>,
}

/// One `[X…]` extended-data block: an identifier character and its value. Unknown identifiers
/// are kept, never rejected (legacy.md §1.6).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct XData {
    pub id: char,
    pub value: String,
}

/// The readable part of a frame (cleartext, or decrypted ciphertext without its pad).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Payload {
    /// Inside the data brackets, e.g. `#1234|Nri1/MA001`; empty for NULL and responses.
    pub data: String,
    pub xdata: Vec<XData>,
    pub timestamp: Option<Dc09Time>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    Clear(Payload),
    /// The hex text after `[` as transmitted (CRC and length cover this text, not the plaintext).
    Encrypted(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub header: Header,
    pub body: Body,
}

/// Why bytes are not a usable frame. `Incomplete` is not an error of the peer: more bytes are
/// needed; everything else names the dead-letter reason it becomes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("incomplete frame: more bytes needed")]
    Incomplete,
    #[error("{len} bytes arrived without completing a frame (limit {limit})")]
    Oversize { len: usize, limit: usize },
    #[error("not a DC-09 frame: {0}")]
    BadFrame(&'static str),
    #[error("CRC mismatch: the frame says {stated:04X}, its content gives {computed:04X}")]
    BadCrc { stated: u16, computed: u16 },
    #[error("length mismatch: the frame says {stated} bytes, the message has {actual}")]
    BadLength { stated: usize, actual: usize },
    #[error("timestamp is not HH:MM:SS,MM-DD-YYYY or not a real date")]
    BadTimestamp,
}

impl FrameError {
    /// The dead-letter reason (metrics count by it).
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Incomplete => "incomplete",
            FrameError::Oversize { .. } => "oversize",
            FrameError::BadFrame(_) => "bad_frame",
            FrameError::BadCrc { .. } => "bad_crc",
            FrameError::BadLength { .. } => "bad_length",
            FrameError::BadTimestamp => "bad_timestamp",
        }
    }
}

fn hex_value(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        _ => None,
    }
}

fn parse_hex_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u16, |acc, &b| Some((acc << 4) | hex_value(b)?))
}

/// Whether a frame starting at `LF` uses the binary CRC: `0` at offset 3 and `"` at offset 7
/// (hex form has a length digit at offset 7, never a quote).
pub fn is_binary_crc(frame: &[u8]) -> bool {
    frame.get(3) == Some(&b'0') && frame.get(7) == Some(&b'"')
}

impl Frame {
    /// Parses one frame: `LF crc 0LLL message CR`, with any trailing NULs already removed.
    /// Checks CRC and length before looking at the message.
    pub fn decode(raw: &[u8]) -> Result<(Frame, CrcForm), FrameError> {
        let inner = raw
            .strip_prefix(&[LF])
            .ok_or(FrameError::BadFrame("does not start with LF"))?
            .strip_suffix(&[CR])
            .ok_or(FrameError::BadFrame("does not end with CR"))?;
        let (form, stated_crc, len_field, message) = if is_binary_crc(raw) {
            let (crc, rest) = inner
                .split_at_checked(2)
                .ok_or(FrameError::BadFrame("too short"))?;
            let stated = u16::from_be_bytes([crc[0], crc[1]]);
            let (len, msg) = rest
                .split_at_checked(4)
                .ok_or(FrameError::BadFrame("too short"))?;
            (CrcForm::Binary, stated, len, msg)
        } else {
            let (crc, rest) = inner
                .split_at_checked(4)
                .ok_or(FrameError::BadFrame("too short"))?;
            let stated =
                parse_hex_u16(crc).ok_or(FrameError::BadFrame("CRC is not 4 hex digits"))?;
            let (len, msg) = rest
                .split_at_checked(4)
                .ok_or(FrameError::BadFrame("too short"))?;
            (CrcForm::Hex, stated, len, msg)
        };
        if len_field.first() != Some(&b'0') {
            return Err(FrameError::BadFrame("length field does not start with 0"));
        }
        let stated_len = len_field
            .get(1..)
            .and_then(parse_hex_u16)
            .ok_or(FrameError::BadFrame("length is not 0 + 3 hex digits"))?;
        let computed = CRC16.checksum(message);
        if computed != stated_crc {
            return Err(FrameError::BadCrc {
                stated: stated_crc,
                computed,
            });
        }
        if usize::from(stated_len) != message.len() {
            return Err(FrameError::BadLength {
                stated: usize::from(stated_len),
                actual: message.len(),
            });
        }
        Ok((Frame::parse_message(message)?, form))
    }

    /// Parses the message part (from the first `"` to the byte before CR); CRC and length are
    /// the caller's business.
    pub fn parse_message(msg: &[u8]) -> Result<Frame, FrameError> {
        let rest = msg
            .strip_prefix(b"\"")
            .ok_or(FrameError::BadFrame("no opening quote of the ID token"))?;
        let close = rest
            .iter()
            .position(|&b| b == b'"')
            .ok_or(FrameError::BadFrame("no closing quote of the ID token"))?;
        let (mut id, rest) = (&rest[..close], &rest[close + 1..]);
        let encrypted = match id.strip_prefix(b"*") {
            Some(stripped) => {
                id = stripped;
                true
            }
            None => false,
        };
        if id.is_empty() || id.len() > 16 || !id.iter().all(|b| b.is_ascii_graphic()) {
            return Err(FrameError::BadFrame("ID token is empty or not printable"));
        }
        let token = Token::parse(&String::from_utf8_lossy(id));
        let (seq, rest) = rest
            .split_at_checked(4)
            .ok_or(FrameError::BadFrame("no sequence number"))?;
        if !seq.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadFrame(
                "sequence number is not 4 decimal digits",
            ));
        }
        let open = rest
            .iter()
            .position(|&b| b == b'[')
            .ok_or(FrameError::BadFrame("no data field"))?;
        let (receiver, prefix, account) = parse_routing(&rest[..open], &token)?;
        let header = Header {
            token,
            encrypted,
            seq: ascii(seq),
            receiver,
            prefix,
            account,
        };
        let after_open = &rest[open + 1..];
        let body = if encrypted {
            let hex = trim_trailing(after_open);
            if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(FrameError::BadFrame("encrypted body is not hex"));
            }
            Body::Encrypted(ascii(hex))
        } else {
            Body::Clear(parse_payload(after_open)?)
        };
        Ok(Frame { header, body })
    }

    /// The message part, strictly formed (uppercase hex is the caller's choice for the
    /// ciphertext; the CRC and length are added by [`Frame::encode`]).
    pub fn message(&self) -> Vec<u8> {
        let h = &self.header;
        let mut m = Vec::with_capacity(64);
        m.push(b'"');
        if h.encrypted {
            m.push(b'*');
        }
        m.extend_from_slice(h.token.as_str().as_bytes());
        m.push(b'"');
        m.extend_from_slice(h.seq.as_bytes());
        if let Some(r) = &h.receiver {
            m.push(b'R');
            m.extend_from_slice(r.as_bytes());
        }
        m.push(b'L');
        m.extend_from_slice(h.prefix.as_deref().unwrap_or("0").as_bytes());
        match &h.account {
            Some(a) => {
                m.push(b'#');
                m.extend_from_slice(a.as_bytes());
            }
            None => m.extend_from_slice(b"A0"),
        }
        m.push(b'[');
        match &self.body {
            Body::Encrypted(hex) => m.extend_from_slice(hex.as_bytes()),
            Body::Clear(p) => m.extend_from_slice(&p.encode()),
        }
        m
    }

    /// The whole frame: `LF CRC(4 hex, uppercase) 0LLL message CR`.
    pub fn encode(&self) -> Vec<u8> {
        wrap_message(&self.message())
    }
}

/// Frames a message: LF, CRC-16/ARC as 4 uppercase hex digits, `0` + 3-digit length, the
/// message, CR. A message longer than the length field can say is truncated in the length only
/// by a broken caller; we emit what we were given and the peer will reject it.
pub fn wrap_message(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 10);
    out.push(LF);
    out.extend_from_slice(format!("{:04X}", CRC16.checksum(msg)).as_bytes());
    out.extend_from_slice(format!("0{:03X}", msg.len().min(MAX_MESSAGE_LEN)).as_bytes());
    out.extend_from_slice(msg);
    out.push(CR);
    out
}

impl Payload {
    /// `data ] {[xdata]} [_timestamp]` — what follows the `[` of the data field (and, encrypted,
    /// what follows the pad).
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.data.len() + 32);
        m.extend_from_slice(self.data.as_bytes());
        m.push(b']');
        for x in &self.xdata {
            m.push(b'[');
            let mut buf = [0u8; 4];
            m.extend_from_slice(x.id.encode_utf8(&mut buf).as_bytes());
            m.extend_from_slice(x.value.as_bytes());
            m.push(b']');
        }
        if let Some(ts) = self.timestamp {
            m.push(b'_');
            m.extend_from_slice(ts.format().as_bytes());
        }
        m
    }
}

/// Parses `data ] {[X…]} [_HH:MM:SS,MM-DD-YYYY]`, tolerating trailing whitespace and NULs.
pub fn parse_payload(bytes: &[u8]) -> Result<Payload, FrameError> {
    let close = bytes
        .iter()
        .position(|&b| b == b']')
        .ok_or(FrameError::BadFrame("data field has no closing bracket"))?;
    let data = String::from_utf8_lossy(&bytes[..close]).into_owned();
    let mut rest = &bytes[close + 1..];
    let mut xdata = Vec::new();
    while let Some(inner) = rest.strip_prefix(b"[") {
        let end = inner
            .iter()
            .position(|&b| b == b']')
            .ok_or(FrameError::BadFrame("extended data has no closing bracket"))?;
        let block = String::from_utf8_lossy(&inner[..end]);
        let mut chars = block.chars();
        let id = chars
            .next()
            .ok_or(FrameError::BadFrame("empty extended data block"))?;
        xdata.push(XData {
            id,
            value: chars.as_str().to_owned(),
        });
        rest = &inner[end + 1..];
    }
    let rest = trim_trailing(rest);
    let timestamp = match rest.strip_prefix(b"_") {
        Some(ts) if ts.len() == TIMESTAMP_LEN => {
            Some(Dc09Time::parse(ts).ok_or(FrameError::BadTimestamp)?)
        }
        Some(_) => return Err(FrameError::BadTimestamp),
        None if rest.is_empty() => None,
        None => {
            return Err(FrameError::BadFrame(
                "unexpected bytes after the data field",
            ));
        }
    };
    Ok(Payload {
        data,
        xdata,
        timestamp,
    })
}

type Routing = (Option<String>, Option<String>, Option<String>);

/// `[R…] [L…] #acct` between the sequence number and `[`; also the NAK's literal `R0L0A0` (and
/// pysiaalarm's swapped `L0R0A0`) and the literal `None` pysiaalarm writes for a missing `R`.
fn parse_routing(bytes: &[u8], token: &Token) -> Result<Routing, FrameError> {
    if *token == Token::Nak && (bytes == b"R0L0A0" || bytes == b"L0R0A0") {
        return Ok((Some("0".into()), Some("0".into()), None));
    }
    let (mut receiver, mut prefix, mut account) = (None, None, None);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"None") {
            i += 4;
            continue;
        }
        let tag = bytes[i];
        i += 1;
        let start = i;
        match tag {
            b'R' | b'L' => {
                while i < bytes.len() && i - start < 6 && bytes[i].is_ascii_hexdigit() {
                    i += 1;
                }
                if i == start {
                    return Err(FrameError::BadFrame("R or L field without hex digits"));
                }
                let slot = if tag == b'R' {
                    &mut receiver
                } else {
                    &mut prefix
                };
                if slot.replace(ascii(&bytes[start..i])).is_some() {
                    return Err(FrameError::BadFrame("R or L field repeated"));
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                if !(3..=16).contains(&(i - start)) || account.is_some() {
                    return Err(FrameError::BadFrame(
                        "account is not 3-16 letters or digits",
                    ));
                }
                account = Some(ascii(&bytes[start..i]));
            }
            _ => {
                return Err(FrameError::BadFrame(
                    "unexpected byte in the R/L/#account fields",
                ));
            }
        }
    }
    Ok((receiver, prefix, account))
}

fn trim_trailing(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| !(b == 0 || b.is_ascii_whitespace()))
        .map_or(0, |p| p + 1);
    &bytes[..end]
}

/// Bytes already checked to be ASCII.
fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_arc_catalogue_check_value() {
        assert_eq!(CRC16.checksum(b"123456789"), 0xBB3D);
    }

    #[test]
    fn spec_example_decodes_with_all_routing_fields() {
        let raw = b"\nCE110032\"SIA-DCS\"9876R579BDFL789ABC#12345A[#12345A|NFA129]\r";
        let (f, form) = Frame::decode(raw).unwrap();
        assert_eq!(form, CrcForm::Hex);
        assert_eq!(f.header.token, Token::SiaDcs);
        assert_eq!(f.header.seq, "9876");
        assert_eq!(f.header.receiver.as_deref(), Some("579BDF"));
        assert_eq!(f.header.prefix.as_deref(), Some("789ABC"));
        assert_eq!(f.header.account.as_deref(), Some("12345A"));
        assert_eq!(
            f.body,
            Body::Clear(Payload {
                data: "#12345A|NFA129".into(),
                xdata: vec![],
                timestamp: None
            })
        );
        assert_eq!(f.encode(), raw.to_vec());
    }

    #[test]
    fn binary_crc_variant_is_accepted_even_when_the_crc_bytes_are_cr_or_lf() {
        let msg = b"\"NULL\"0005L0#1234[]";
        let crc = CRC16.checksum(msg).to_be_bytes();
        let mut raw = vec![LF, crc[0], crc[1]];
        raw.extend_from_slice(format!("0{:03X}", msg.len()).as_bytes());
        raw.extend_from_slice(msg);
        raw.push(CR);
        let (f, form) = Frame::decode(&raw).unwrap();
        assert_eq!(form, CrcForm::Binary);
        assert_eq!(f.header.token, Token::Null);
    }

    #[test]
    fn missing_l_and_none_quirk_are_tolerated_but_l0_is_always_emitted() {
        let f = Frame::parse_message(b"\"ACK\"0001NoneL0#1234[]").unwrap();
        assert_eq!(f.header.prefix.as_deref(), Some("0"));
        assert_eq!(f.header.receiver, None);
        let f = Frame::parse_message(b"\"ADM-CID\"0001#1234[#1234|1101 01 003]").unwrap();
        assert_eq!(f.header.prefix, None);
        assert!(f.message().starts_with(b"\"ADM-CID\"0001L0#1234["));
    }

    #[test]
    fn wrong_crc_and_wrong_length_are_distinct_errors() {
        let bad_crc = b"\nCE120032\"SIA-DCS\"9876R579BDFL789ABC#12345A[#12345A|NFA129]\r";
        assert!(matches!(
            Frame::decode(bad_crc),
            Err(FrameError::BadCrc { .. })
        ));
        let bad_len = b"\n57150047\"ADM-CID\"0247R4F39L4F39#4F39[#4F39|3401 01 057]\r";
        assert_eq!(
            Frame::decode(bad_len),
            Err(FrameError::BadLength {
                stated: 0x47,
                actual: 0x2F
            })
        );
    }

    #[test]
    fn unknown_xdata_letters_and_repeats_are_kept() {
        let p = parse_payload(b"#1|NHB0003][X115000][X115000][$P1,2]_13:53:11,06-22-2015").unwrap();
        assert_eq!(p.xdata.len(), 3);
        assert_eq!(p.xdata[2].id, '$');
        assert!(p.timestamp.is_some());
    }

    #[test]
    fn garbage_after_the_data_field_is_a_bad_frame() {
        assert!(parse_payload(b"abc]junk").is_err());
        assert_eq!(
            parse_payload(b"]_12:00:00,13-01-2024"),
            Err(FrameError::BadTimestamp)
        );
    }
}
