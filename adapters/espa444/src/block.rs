//! The ESPA 4.4.4 data block (legacy.md §4.4): `SOH <header> STX <rec> RS … <rec> ETX BCC`,
//! each record `<id> US <data>`. Pure: bytes → a typed [`Block`] or a typed [`BlockError`],
//! [`Block`] → bytes, never a panic, so it is property-tested and fuzzed on its own.
//!
//! Text is Latin-1 (ISO-8859-1): one byte is one character, so any byte string decodes and
//! every character up to U+00FF encodes back to the byte it came from.

/// Start of header: a block begins.
pub const SOH: u8 = 0x01;
/// Start of text: the header ends.
pub const STX: u8 = 0x02;
/// End of text: the BCC follows.
pub const ETX: u8 = 0x03;
/// End of transmission: control returns to the control station.
pub const EOT: u8 = 0x04;
/// Enquiry: after a station address, a poll or a select.
pub const ENQ: u8 = 0x05;
/// Positive acknowledgement.
pub const ACK: u8 = 0x06;
/// Negative acknowledgement.
pub const NAK: u8 = 0x15;
/// Record separator.
pub const RS: u8 = 0x1E;
/// Unit separator: between a record's id and its data.
pub const US: u8 = 0x1F;

/// The longest block (SOH through BCC) taken: implementations cap display text at 128–160
/// characters, and eight records around it fit well inside this.
pub const MAX_BLOCK: usize = 1024;

/// The transaction type a block's header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Header {
    /// `1`: a call to a pager.
    CallToPager,
    /// `2`: status information (call progress), from the paging system.
    StatusInformation,
    /// `3`: status request.
    StatusRequest,
    /// `4`: a call to a subscriber line.
    CallToSubscriber,
    /// `5`: other, manufacturer-specific.
    Other,
}

impl Header {
    pub fn byte(self) -> u8 {
        match self {
            Header::CallToPager => b'1',
            Header::StatusInformation => b'2',
            Header::StatusRequest => b'3',
            Header::CallToSubscriber => b'4',
            Header::Other => b'5',
        }
    }

    fn from_byte(b: u8) -> Option<Header> {
        Some(match b {
            b'1' => Header::CallToPager,
            b'2' => Header::StatusInformation,
            b'3' => Header::StatusRequest,
            b'4' => Header::CallToSubscriber,
            b'5' => Header::Other,
            _ => return None,
        })
    }
}

/// A record's data identifier (legacy.md §4.4's table, `1`–`8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `1`: call address (pager, extension, DECT group).
    CallAddress,
    /// `2`: display message.
    Message,
    /// `3`: beep coding `1`–`9`.
    BeepCoding,
    /// `4`: call type: `1` reset, `2` speech call, `3` standard call.
    CallType,
    /// `5`: number of transmissions.
    Transmissions,
    /// `6`: priority: `1` alarm, `2` high, `3` normal.
    Priority,
    /// `7`: call status (header 2 blocks).
    CallStatus,
    /// `8`: system status.
    SystemStatus,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::CallAddress,
        Field::Message,
        Field::BeepCoding,
        Field::CallType,
        Field::Transmissions,
        Field::Priority,
        Field::CallStatus,
        Field::SystemStatus,
    ];

    pub fn byte(self) -> u8 {
        match self {
            Field::CallAddress => b'1',
            Field::Message => b'2',
            Field::BeepCoding => b'3',
            Field::CallType => b'4',
            Field::Transmissions => b'5',
            Field::Priority => b'6',
            Field::CallStatus => b'7',
            Field::SystemStatus => b'8',
        }
    }

    fn from_byte(b: u8) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.byte() == b)
    }
}

/// One record: a data identifier and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub field: Field,
    pub data: String,
}

/// One data block, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: Header,
    pub records: Vec<Record>,
}

/// Why bytes are not a block; [`BlockError::reason`] is the dead letter's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("a block starts with SOH (0x01)")]
    NoSoh,
    #[error("the block ends before its ETX and BCC")]
    Incomplete,
    #[error("the block is longer than {MAX_BLOCK} bytes")]
    Oversize,
    #[error("BCC is 0x{got:02X}, the block's bytes make 0x{expected:02X}")]
    BadBcc { expected: u8, got: u8 },
    #[error("{0} byte(s) after the BCC")]
    Trailing(usize),
    #[error("no STX between the header and the text")]
    NoStx,
    #[error("header must be one of `1`–`5`, got byte(s) {0}")]
    BadHeader(String),
    #[error("the block carries no record")]
    NoRecords,
    #[error("record {index} has no US between its data identifier and its data")]
    NoUnitSeparator { index: usize },
    #[error("record {index}'s data identifier must be one of `1`–`8`, got byte(s) {id}")]
    BadField { index: usize, id: String },
    #[error("record {index} repeats data identifier `{}`", char::from(field.byte()))]
    Repeated { index: usize, field: Field },
    #[error("record {index} holds control byte 0x{byte:02X}")]
    ControlInData { index: usize, byte: u8 },
}

impl BlockError {
    pub fn reason(&self) -> &'static str {
        match self {
            BlockError::NoSoh => "no_soh",
            BlockError::Incomplete => "incomplete",
            BlockError::Oversize => "oversize",
            BlockError::BadBcc { .. } => "bad_bcc",
            BlockError::Trailing(_) => "trailing_bytes",
            BlockError::NoStx => "no_stx",
            BlockError::BadHeader(_) => "bad_header",
            BlockError::NoRecords => "no_records",
            BlockError::NoUnitSeparator { .. } => "no_unit_separator",
            BlockError::BadField { .. } => "bad_field",
            BlockError::Repeated { .. } => "repeated_field",
            BlockError::ControlInData { .. } => "control_in_data",
        }
    }
}

/// The block check character: XOR of every byte after SOH up to and including ETX.
pub fn bcc(after_soh_through_etx: &[u8]) -> u8 {
    after_soh_through_etx.iter().fold(0, |a, b| a ^ b)
}

impl Block {
    /// A block of `header` with `records` in the order given.
    pub fn new(header: Header, records: impl IntoIterator<Item = (Field, String)>) -> Block {
        Block {
            header,
            records: records
                .into_iter()
                .map(|(field, data)| Record { field, data })
                .collect(),
        }
    }

    /// The text of `field`, if the block carries it.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.records
            .iter()
            .find(|r| r.field == field)
            .map(|r| r.data.as_str())
    }

    /// Decodes one whole block, SOH through BCC. A stray `RS` before `ETX` (some senders
    /// write one) is tolerated; anything else not in the spec is an error.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        if bytes.len() > MAX_BLOCK {
            return Err(BlockError::Oversize);
        }
        let Some((&first, rest)) = bytes.split_first() else {
            return Err(BlockError::Incomplete);
        };
        if first != SOH {
            return Err(BlockError::NoSoh);
        }
        let etx = rest
            .iter()
            .position(|&b| b == ETX)
            .ok_or(BlockError::Incomplete)?;
        let (body, after) = rest.split_at(etx + 1);
        let Some((&got, trailing)) = after.split_first() else {
            return Err(BlockError::Incomplete);
        };
        let expected = bcc(body);
        if got != expected {
            return Err(BlockError::BadBcc { expected, got });
        }
        if !trailing.is_empty() {
            return Err(BlockError::Trailing(trailing.len()));
        }
        // `body` ends with ETX.
        let body = &body[..body.len() - 1];
        let stx = body
            .iter()
            .position(|&b| b == STX)
            .ok_or(BlockError::NoStx)?;
        let (head, text) = (&body[..stx], &body[stx + 1..]);
        let header = match head {
            [b] => Header::from_byte(*b),
            _ => None,
        }
        .ok_or_else(|| BlockError::BadHeader(hex(head)))?;
        let text = text.strip_suffix(&[RS]).unwrap_or(text);
        if text.is_empty() {
            return Err(BlockError::NoRecords);
        }
        let mut records: Vec<Record> = Vec::new();
        for (index, rec) in text.split(|&b| b == RS).enumerate() {
            let us = rec
                .iter()
                .position(|&b| b == US)
                .ok_or(BlockError::NoUnitSeparator { index })?;
            let (id, data) = (&rec[..us], &rec[us + 1..]);
            let field = match id {
                [b] => Field::from_byte(*b),
                _ => None,
            }
            .ok_or_else(|| BlockError::BadField { index, id: hex(id) })?;
            if records.iter().any(|r| r.field == field) {
                return Err(BlockError::Repeated { index, field });
            }
            if let Some(&byte) = data.iter().find(|&&b| is_control(b)) {
                return Err(BlockError::ControlInData { index, byte });
            }
            records.push(Record {
                field,
                data: data.iter().map(|&b| char::from(b)).collect(),
            });
        }
        Ok(Block { header, records })
    }

    /// Encodes the block, SOH through BCC. Characters beyond Latin-1 become `?` and control
    /// characters a space, so no text can break the framing.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(16 + self.records.iter().map(|r| r.data.len() + 3).sum::<usize>());
        out.push(SOH);
        out.push(self.header.byte());
        out.push(STX);
        for (i, r) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(RS);
            }
            out.push(r.field.byte());
            out.push(US);
            out.extend(r.data.chars().map(latin1));
        }
        out.push(ETX);
        out.push(bcc(&out[1..]));
        out
    }
}

/// A character as the one Latin-1 byte that stands for it.
pub fn latin1(c: char) -> u8 {
    match u8::try_from(u32::from(c)) {
        Ok(b) if is_control(b) => b' ',
        Ok(b) => b,
        Err(_) => b'?',
    }
}

/// C0 controls and DEL: never data in a record (they would frame or confuse the link).
fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

/// Bytes for an error message: hex, at most 8 of them.
fn hex(bytes: &[u8]) -> String {
    let mut s: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02X}")).collect();
    if bytes.len() > 8 {
        s.push("…".into());
    }
    if s.is_empty() {
        "(none)".into()
    } else {
        s.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(records: &[(Field, &str)]) -> Block {
        Block::new(
            Header::CallToPager,
            records.iter().map(|(f, d)| (*f, (*d).to_owned())),
        )
    }

    #[test]
    fn a_stray_rs_before_etx_is_tolerated() {
        let mut bytes = vec![SOH, b'1', STX, b'1', US, b'A', RS, ETX];
        let b = bcc(&bytes[1..]);
        bytes.push(b);
        assert_eq!(
            Block::decode(&bytes).unwrap(),
            call(&[(Field::CallAddress, "A")])
        );
    }

    #[test]
    fn latin1_text_round_trips_and_the_rest_is_replaced() {
        let b = call(&[(Field::Message, "Zimmer 12 Müller")]);
        let bytes = b.encode();
        assert!(bytes.contains(&0xFC));
        assert_eq!(Block::decode(&bytes).unwrap(), b);
        let odd = call(&[(Field::Message, "a\u{20AC}b\u{0003}c")]).encode();
        assert_eq!(
            Block::decode(&odd).unwrap().get(Field::Message),
            Some("a?b c")
        );
    }

    #[test]
    fn broken_blocks_say_why() {
        let good = call(&[(Field::CallAddress, "12")]).encode();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(matches!(
            Block::decode(&bad),
            Err(BlockError::BadBcc { .. })
        ));
        assert_eq!(Block::decode(&good[1..]).unwrap_err(), BlockError::NoSoh);
        assert_eq!(
            Block::decode(&good[..last]).unwrap_err(),
            BlockError::Incomplete
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Block::decode(&long).unwrap_err(), BlockError::Trailing(1));
        let with = |inner: &[u8]| {
            let mut v = vec![SOH];
            v.extend_from_slice(inner);
            v.push(ETX);
            let b = bcc(&v[1..]);
            v.push(b);
            v
        };
        assert_eq!(
            Block::decode(&with(b"1\x021A")).unwrap_err().reason(),
            "no_unit_separator"
        );
        assert_eq!(Block::decode(&with(b"1")).unwrap_err(), BlockError::NoStx);
        assert_eq!(
            Block::decode(&with(b"9\x021\x1fA")).unwrap_err().reason(),
            "bad_header"
        );
        assert_eq!(
            Block::decode(&with(b"1\x02")).unwrap_err(),
            BlockError::NoRecords
        );
        assert_eq!(
            Block::decode(&with(b"1\x029\x1fA")).unwrap_err().reason(),
            "bad_field"
        );
        assert_eq!(
            Block::decode(&with(b"1\x021\x1fA\x1e1\x1fB"))
                .unwrap_err()
                .reason(),
            "repeated_field"
        );
        assert_eq!(
            Block::decode(&with(b"1\x022\x1fA\x07B")).unwrap_err(),
            BlockError::ControlInData {
                index: 0,
                byte: 0x07
            }
        );
    }
}
