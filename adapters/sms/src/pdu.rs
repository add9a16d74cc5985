//! SMPP 3.4 PDUs: the bytes on the wire as typed values and back. Pure: no I/O, no clock.
//!
//! Only what an ESME transmitter needs: `bind_transmitter`/`bind_transceiver` and their
//! responses, `submit_sm`(+`_resp`), `deliver_sm`(+`_resp`) for delivery receipts,
//! `enquire_link`(+`_resp`), `unbind`(+`_resp`) and `generic_nack`. Any other command id is
//! [`DecodeError::UnknownCommand`] with the frame's length, so the session can skip it and answer
//! `generic_nack` (SMPP 3.4 §4.3).
//!
//! Every PDU starts with the 16-octet header (§3.2): `command_length` (the whole PDU, header
//! included), `command_id`, `command_status`, `sequence_number`, all big-endian `u32`. A
//! stranger controls `command_length`, so it is capped at [`MAX_PDU_LEN`] before anything is
//! buffered. Decoding never panics (a property test and a fuzz target hold it to that); every
//! problem is a [`DecodeError`] naming the field.

/// Octets in the PDU header.
pub const HEADER_LEN: usize = 16;
/// Largest PDU accepted. A `submit_sm` is at most about 470 octets without optional
/// parameters; receipts carry a few small TLVs. 4 KiB leaves room for an SMSC's extras and
/// bounds what a peer can make us buffer.
pub const MAX_PDU_LEN: u32 = 4096;
/// SMPP 3.4 in `bind_*.interface_version`.
pub const INTERFACE_VERSION_34: u8 = 0x34;

/// Command ids (SMPP 3.4 §5.1.2.1).
pub mod command {
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    pub const BIND_TRANSMITTER_RESP: u32 = 0x8000_0002;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
}

/// `command_status` values the sink acts on (SMPP 3.4 §5.1.3).
pub mod status {
    pub const ESME_ROK: u32 = 0x0000_0000;
    pub const ESME_RINVMSGLEN: u32 = 0x0000_0001;
    pub const ESME_RINVCMDLEN: u32 = 0x0000_0002;
    pub const ESME_RINVCMDID: u32 = 0x0000_0003;
    pub const ESME_RINVBNDSTS: u32 = 0x0000_0004;
    pub const ESME_RALYBND: u32 = 0x0000_0005;
    pub const ESME_RSYSERR: u32 = 0x0000_0008;
    pub const ESME_RINVSRCADR: u32 = 0x0000_000A;
    pub const ESME_RINVDSTADR: u32 = 0x0000_000B;
    pub const ESME_RBINDFAIL: u32 = 0x0000_000D;
    pub const ESME_RINVPASWD: u32 = 0x0000_000E;
    pub const ESME_RINVSYSID: u32 = 0x0000_000F;
    pub const ESME_RMSGQFUL: u32 = 0x0000_0014;
    pub const ESME_RSUBMITFAIL: u32 = 0x0000_0045;
    pub const ESME_RTHROTTLED: u32 = 0x0000_0058;
    pub const ESME_RX_T_APPN: u32 = 0x0000_0064;

    /// The status's name for logs and retry reasons (`ESME_RTHROTTLED`), or its number.
    pub fn name(s: u32) -> String {
        let n = match s {
            ESME_ROK => "ESME_ROK",
            ESME_RINVMSGLEN => "ESME_RINVMSGLEN",
            ESME_RINVCMDLEN => "ESME_RINVCMDLEN",
            ESME_RINVCMDID => "ESME_RINVCMDID",
            ESME_RINVBNDSTS => "ESME_RINVBNDSTS",
            ESME_RALYBND => "ESME_RALYBND",
            ESME_RSYSERR => "ESME_RSYSERR",
            ESME_RINVSRCADR => "ESME_RINVSRCADR",
            ESME_RINVDSTADR => "ESME_RINVDSTADR",
            ESME_RBINDFAIL => "ESME_RBINDFAIL",
            ESME_RINVPASWD => "ESME_RINVPASWD",
            ESME_RINVSYSID => "ESME_RINVSYSID",
            ESME_RMSGQFUL => "ESME_RMSGQFUL",
            ESME_RSUBMITFAIL => "ESME_RSUBMITFAIL",
            ESME_RTHROTTLED => "ESME_RTHROTTLED",
            ESME_RX_T_APPN => "ESME_RX_T_APPN",
            other => return format!("status 0x{other:08X}"),
        };
        format!("{n} (0x{s:08X})")
    }
}

/// Optional parameter tags used here (SMPP 3.4 §5.3.2).
pub mod tag {
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MESSAGE_STATE: u16 = 0x0427;
    /// Vendor-specific tags are 0x1400–0x3FFF (§5.3.2, table 5-5).
    pub const VENDOR_FIRST: u16 = 0x1400;
    pub const VENDOR_LAST: u16 = 0x3FFF;
}

/// `esm_class` bits 5–2 with value 0001: "SMSC Delivery Receipt" in a `deliver_sm`.
pub const ESM_CLASS_RECEIPT: u8 = 0x04;
const ESM_CLASS_TYPE_MASK: u8 = 0x3C;

/// One PDU: the header's status and sequence number, and the typed body (which fixes
/// `command_id`). `command_length` is computed on encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    pub status: u32,
    pub sequence: u32,
    pub body: Body,
}

/// The PDUs this codec knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    BindTransmitter(Bind),
    BindTransmitterResp(BindResp),
    BindTransceiver(Bind),
    BindTransceiverResp(BindResp),
    SubmitSm(ShortMessage),
    /// `message_id`: the SMSC's id for the message, which its receipts quote.
    SubmitSmResp {
        message_id: String,
    },
    DeliverSm(ShortMessage),
    DeliverSmResp {
        message_id: String,
    },
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    GenericNack,
}

/// `bind_transmitter` / `bind_transceiver` (§4.1.1, §4.1.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
}

/// `bind_*_resp`: the SMSC's `system_id` and any optional parameters
/// (`sc_interface_version`). A refused bind may carry no body at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindResp {
    pub system_id: String,
    pub tlvs: Vec<Tlv>,
}

/// The body `submit_sm` and `deliver_sm` share (§4.4.1, §4.6.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShortMessage {
    pub service_type: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub source_addr: String,
    pub dest_addr_ton: u8,
    pub dest_addr_npi: u8,
    pub destination_addr: String,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// At most 254 octets (`sm_length` is one octet; 255 is reserved in practice).
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

impl ShortMessage {
    /// A `deliver_sm` that is an SMSC delivery receipt (not a message from a handset).
    pub fn is_receipt(&self) -> bool {
        self.esm_class & ESM_CLASS_TYPE_MASK == ESM_CLASS_RECEIPT
    }

    /// The first optional parameter with `tag`.
    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.value.as_slice())
    }
}

/// An optional parameter (§3.2.1.1 / §5.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

/// Longest `short_message`.
pub const MAX_SHORT_MESSAGE: usize = 254;

/// The C-Octet String limits, terminating NUL included (§4).
mod limit {
    pub const SYSTEM_ID: usize = 16;
    pub const PASSWORD: usize = 9;
    pub const SYSTEM_TYPE: usize = 13;
    pub const ADDRESS_RANGE: usize = 41;
    pub const SERVICE_TYPE: usize = 6;
    pub const ADDR: usize = 21;
    pub const TIME: usize = 17;
    pub const MESSAGE_ID: usize = 65;
}

/// Why bytes are not (yet) a PDU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not enough bytes yet: read more and try again.
    #[error("incomplete PDU: {needed} more octets needed")]
    Incomplete { needed: usize },
    /// `command_length` below the header's 16 octets: the stream cannot be resynchronised.
    #[error("command_length {0} is shorter than the 16-octet header")]
    TooShort(u32),
    /// `command_length` above [`MAX_PDU_LEN`]: refused before buffering it.
    #[error("command_length {0} exceeds the {MAX_PDU_LEN}-octet limit")]
    TooLong(u32),
    /// A command this codec does not implement; `length` octets can be skipped.
    #[error("unknown command_id 0x{command_id:08X} (sequence {sequence})")]
    UnknownCommand {
        command_id: u32,
        sequence: u32,
        length: usize,
    },
    /// A well-framed PDU whose body is wrong; `length` octets can be skipped.
    #[error("malformed {command} (sequence {sequence}): {field}: {problem}")]
    Malformed {
        command: &'static str,
        sequence: u32,
        length: usize,
        field: &'static str,
        problem: BodyError,
    },
}

/// What is wrong with one field of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body ends inside it")]
    Truncated,
    #[error("no NUL terminator within {max} octets")]
    Unterminated { max: usize },
    #[error("not ASCII text")]
    NotAscii,
    #[error("{0} octets left over after the last field")]
    Trailing(usize),
    #[error("{len} octets; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
}

/// Why a PDU cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{field} is {len} octets; at most {max} fit")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} contains a NUL or non-ASCII octet")]
    NotAscii { field: &'static str },
}

impl Body {
    /// The header's `command_id` for this body.
    pub fn command_id(&self) -> u32 {
        use command::*;
        match self {
            Body::BindTransmitter(_) => BIND_TRANSMITTER,
            Body::BindTransmitterResp(_) => BIND_TRANSMITTER_RESP,
            Body::BindTransceiver(_) => BIND_TRANSCEIVER,
            Body::BindTransceiverResp(_) => BIND_TRANSCEIVER_RESP,
            Body::SubmitSm(_) => SUBMIT_SM,
            Body::SubmitSmResp { .. } => SUBMIT_SM_RESP,
            Body::DeliverSm(_) => DELIVER_SM,
            Body::DeliverSmResp { .. } => DELIVER_SM_RESP,
            Body::EnquireLink => ENQUIRE_LINK,
            Body::EnquireLinkResp => ENQUIRE_LINK_RESP,
            Body::Unbind => UNBIND,
            Body::UnbindResp => UNBIND_RESP,
            Body::GenericNack => GENERIC_NACK,
        }
    }

    /// The command's SMPP name, for logs.
    pub fn name(&self) -> &'static str {
        command_name(self.command_id())
    }
}

/// The SMPP name of a command id this codec knows, else `"unknown"`.
pub fn command_name(id: u32) -> &'static str {
    use command::*;
    match id {
        GENERIC_NACK => "generic_nack",
        BIND_TRANSMITTER => "bind_transmitter",
        BIND_TRANSMITTER_RESP => "bind_transmitter_resp",
        BIND_TRANSCEIVER => "bind_transceiver",
        BIND_TRANSCEIVER_RESP => "bind_transceiver_resp",
        SUBMIT_SM => "submit_sm",
        SUBMIT_SM_RESP => "submit_sm_resp",
        DELIVER_SM => "deliver_sm",
        DELIVER_SM_RESP => "deliver_sm_resp",
        UNBIND => "unbind",
        UNBIND_RESP => "unbind_resp",
        ENQUIRE_LINK => "enquire_link",
        ENQUIRE_LINK_RESP => "enquire_link_resp",
        _ => "unknown",
    }
}

/// Reads one PDU from the front of `buf`: the PDU and how many octets it took.
pub fn decode(buf: &[u8]) -> Result<(Pdu, usize), DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Err(DecodeError::Incomplete {
            needed: HEADER_LEN - buf.len(),
        });
    };
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&header[i..i + 4]);
        u32::from_be_bytes(w)
    };
    let (length, command_id, status, sequence) = (word(0), word(4), word(8), word(12));
    if length < HEADER_LEN as u32 {
        return Err(DecodeError::TooShort(length));
    }
    if length > MAX_PDU_LEN {
        return Err(DecodeError::TooLong(length));
    }
    let len = length as usize;
    let Some(frame) = buf.get(..len) else {
        return Err(DecodeError::Incomplete {
            needed: len - buf.len(),
        });
    };
    let mut r = Reader {
        rest: &frame[HEADER_LEN..],
    };
    let name = command_name(command_id);
    let malformed = |(field, problem): (&'static str, BodyError)| DecodeError::Malformed {
        command: name,
        sequence,
        length: len,
        field,
        problem,
    };
    let body = body(command_id, &mut r)
        .map_err(malformed)?
        .ok_or(DecodeError::UnknownCommand {
            command_id,
            sequence,
            length: len,
        })?;
    if !r.rest.is_empty() {
        return Err(malformed(("body", BodyError::Trailing(r.rest.len()))));
    }
    Ok((
        Pdu {
            status,
            sequence,
            body,
        },
        len,
    ))
}

type Field<T> = Result<T, (&'static str, BodyError)>;

/// The body of `command_id`, or `None` for a command this codec does not know.
fn body(command_id: u32, r: &mut Reader<'_>) -> Field<Option<Body>> {
    use command::*;
    Ok(Some(match command_id {
        BIND_TRANSMITTER => Body::BindTransmitter(bind(r)?),
        BIND_TRANSCEIVER => Body::BindTransceiver(bind(r)?),
        BIND_TRANSMITTER_RESP => Body::BindTransmitterResp(bind_resp(r)?),
        BIND_TRANSCEIVER_RESP => Body::BindTransceiverResp(bind_resp(r)?),
        SUBMIT_SM => Body::SubmitSm(short_message(r)?),
        DELIVER_SM => Body::DeliverSm(short_message(r)?),
        // A failed submit_sm_resp has no body in SMPP 3.4 (§4.4.2); some SMSCs send the NUL.
        SUBMIT_SM_RESP => Body::SubmitSmResp {
            message_id: optional_id(r)?,
        },
        DELIVER_SM_RESP => Body::DeliverSmResp {
            message_id: optional_id(r)?,
        },
        ENQUIRE_LINK => Body::EnquireLink,
        ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
        UNBIND => Body::Unbind,
        UNBIND_RESP => Body::UnbindResp,
        GENERIC_NACK => Body::GenericNack,
        _ => return Ok(None),
    }))
}

fn bind(r: &mut Reader<'_>) -> Field<Bind> {
    Ok(Bind {
        system_id: r.c_string("system_id", limit::SYSTEM_ID)?,
        password: r.c_string("password", limit::PASSWORD)?,
        system_type: r.c_string("system_type", limit::SYSTEM_TYPE)?,
        interface_version: r.u8("interface_version")?,
        addr_ton: r.u8("addr_ton")?,
        addr_npi: r.u8("addr_npi")?,
        address_range: r.c_string("address_range", limit::ADDRESS_RANGE)?,
    })
}

fn bind_resp(r: &mut Reader<'_>) -> Field<BindResp> {
    // A refused bind often has no body; some SMSCs send none on success either.
    if r.rest.is_empty() {
        return Ok(BindResp::default());
    }
    Ok(BindResp {
        system_id: r.c_string("system_id", limit::SYSTEM_ID)?,
        tlvs: r.tlvs()?,
    })
}

fn optional_id(r: &mut Reader<'_>) -> Field<String> {
    if r.rest.is_empty() {
        return Ok(String::new());
    }
    r.c_string("message_id", limit::MESSAGE_ID)
}

fn short_message(r: &mut Reader<'_>) -> Field<ShortMessage> {
    let mut m = ShortMessage {
        service_type: r.c_string("service_type", limit::SERVICE_TYPE)?,
        source_addr_ton: r.u8("source_addr_ton")?,
        source_addr_npi: r.u8("source_addr_npi")?,
        source_addr: r.c_string("source_addr", limit::ADDR)?,
        dest_addr_ton: r.u8("dest_addr_ton")?,
        dest_addr_npi: r.u8("dest_addr_npi")?,
        destination_addr: r.c_string("destination_addr", limit::ADDR)?,
        esm_class: r.u8("esm_class")?,
        protocol_id: r.u8("protocol_id")?,
        priority_flag: r.u8("priority_flag")?,
        schedule_delivery_time: r.c_string("schedule_delivery_time", limit::TIME)?,
        validity_period: r.c_string("validity_period", limit::TIME)?,
        registered_delivery: r.u8("registered_delivery")?,
        replace_if_present_flag: r.u8("replace_if_present_flag")?,
        data_coding: r.u8("data_coding")?,
        sm_default_msg_id: r.u8("sm_default_msg_id")?,
        ..ShortMessage::default()
    };
    let n = usize::from(r.u8("sm_length")?);
    if n > MAX_SHORT_MESSAGE {
        return Err((
            "sm_length",
            BodyError::TooLong {
                len: n,
                max: MAX_SHORT_MESSAGE,
            },
        ));
    }
    m.short_message = r.take("short_message", n)?.to_vec();
    m.tlvs = r.tlvs()?;
    Ok(m)
}

/// A cursor over a body; every read checks what is left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Field<&'a [u8]> {
        if self.rest.len() < n {
            return Err((field, BodyError::Truncated));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Field<u8> {
        Ok(self.take(field, 1)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Field<u16> {
        let b = self.take(field, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A C-Octet String of at most `max` octets, the NUL included.
    fn c_string(&mut self, field: &'static str, max: usize) -> Field<String> {
        let window = &self.rest[..self.rest.len().min(max)];
        let Some(end) = window.iter().position(|&b| b == 0) else {
            return Err(if self.rest.len() < max {
                (field, BodyError::Truncated)
            } else {
                (field, BodyError::Unterminated { max })
            });
        };
        let text = &window[..end];
        if !text.is_ascii() {
            return Err((field, BodyError::NotAscii));
        }
        self.rest = &self.rest[end + 1..];
        Ok(text.iter().map(|&b| char::from(b)).collect())
    }

    fn tlvs(&mut self) -> Field<Vec<Tlv>> {
        let mut out = Vec::new();
        while !self.rest.is_empty() {
            let tag = self.u16("tlv tag")?;
            let len = usize::from(self.u16("tlv length")?);
            let value = self.take("tlv value", len)?.to_vec();
            out.push(Tlv { tag, value });
        }
        Ok(out)
    }
}

/// Writes a PDU, `command_length` included.
pub fn encode(pdu: &Pdu) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&pdu.body.command_id().to_be_bytes());
    out.extend_from_slice(&pdu.status.to_be_bytes());
    out.extend_from_slice(&pdu.sequence.to_be_bytes());
    let w = &mut out;
    match &pdu.body {
        Body::BindTransmitter(b) | Body::BindTransceiver(b) => {
            c_string(w, "system_id", &b.system_id, limit::SYSTEM_ID)?;
            c_string(w, "password", &b.password, limit::PASSWORD)?;
            c_string(w, "system_type", &b.system_type, limit::SYSTEM_TYPE)?;
            w.extend_from_slice(&[b.interface_version, b.addr_ton, b.addr_npi]);
            c_string(w, "address_range", &b.address_range, limit::ADDRESS_RANGE)?;
        }
        Body::BindTransmitterResp(b) | Body::BindTransceiverResp(b) => {
            // A refused bind is answered with an empty body, as decode reads it.
            if !(pdu.status != status::ESME_ROK && b.system_id.is_empty() && b.tlvs.is_empty()) {
                c_string(w, "system_id", &b.system_id, limit::SYSTEM_ID)?;
                tlvs(w, &b.tlvs)?;
            }
        }
        Body::SubmitSm(m) | Body::DeliverSm(m) => {
            c_string(w, "service_type", &m.service_type, limit::SERVICE_TYPE)?;
            w.extend_from_slice(&[m.source_addr_ton, m.source_addr_npi]);
            c_string(w, "source_addr", &m.source_addr, limit::ADDR)?;
            w.extend_from_slice(&[m.dest_addr_ton, m.dest_addr_npi]);
            c_string(w, "destination_addr", &m.destination_addr, limit::ADDR)?;
            w.extend_from_slice(&[m.esm_class, m.protocol_id, m.priority_flag]);
            c_string(
                w,
                "schedule_delivery_time",
                &m.schedule_delivery_time,
                limit::TIME,
            )?;
            c_string(w, "validity_period", &m.validity_period, limit::TIME)?;
            w.extend_from_slice(&[
                m.registered_delivery,
                m.replace_if_present_flag,
                m.data_coding,
                m.sm_default_msg_id,
            ]);
            let n = m.short_message.len();
            if n > MAX_SHORT_MESSAGE {
                return Err(EncodeError::TooLong {
                    field: "short_message",
                    len: n,
                    max: MAX_SHORT_MESSAGE,
                });
            }
            w.push(n as u8);
            w.extend_from_slice(&m.short_message);
            tlvs(w, &m.tlvs)?;
        }
        Body::SubmitSmResp { message_id } | Body::DeliverSmResp { message_id } => {
            // Empty with an error status: no body (§4.4.2); else the C string, maybe just NUL.
            if !(pdu.status != status::ESME_ROK && message_id.is_empty()) {
                c_string(w, "message_id", message_id, limit::MESSAGE_ID)?;
            }
        }
        Body::EnquireLink
        | Body::EnquireLinkResp
        | Body::Unbind
        | Body::UnbindResp
        | Body::GenericNack => {}
    }
    let len = out.len();
    if len > MAX_PDU_LEN as usize {
        return Err(EncodeError::TooLong {
            field: "PDU",
            len,
            max: MAX_PDU_LEN as usize,
        });
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

fn c_string(w: &mut Vec<u8>, field: &'static str, s: &str, max: usize) -> Result<(), EncodeError> {
    if !s.is_ascii() || s.as_bytes().contains(&0) {
        return Err(EncodeError::NotAscii { field });
    }
    if s.len() + 1 > max {
        return Err(EncodeError::TooLong {
            field,
            len: s.len(),
            max: max - 1,
        });
    }
    w.extend_from_slice(s.as_bytes());
    w.push(0);
    Ok(())
}

fn tlvs(w: &mut Vec<u8>, tlvs: &[Tlv]) -> Result<(), EncodeError> {
    for t in tlvs {
        let len = u16::try_from(t.value.len()).map_err(|_| EncodeError::TooLong {
            field: "tlv value",
            len: t.value.len(),
            max: usize::from(u16::MAX),
        })?;
        w.extend_from_slice(&t.tag.to_be_bytes());
        w.extend_from_slice(&len.to_be_bytes());
        w.extend_from_slice(&t.value);
    }
    Ok(())
}

/// What a delivery receipt says: the SMSC's message id and the final state (`DELIVRD`,
/// `UNDELIV`, …). From the TLVs when present (SMPP 3.4 §5.3.2.12, §5.3.2.35), else from the
/// conventional text `id:… sub:… dlvrd:… … stat:DELIVRD err:…` (Appendix B).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub state: String,
}

impl Receipt {
    /// Reads a receipt; `None` when the `deliver_sm` is not one or names no message id.
    pub fn parse(m: &ShortMessage) -> Option<Receipt> {
        if !m.is_receipt() {
            return None;
        }
        let text: String = m
            .short_message
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
            .collect();
        let field = |name: &str| {
            text.split_ascii_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
        };
        let message_id = m
            .tlv(tag::RECEIPTED_MESSAGE_ID)
            .map(|v| {
                v.iter()
                    .take_while(|&&b| b != 0)
                    .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty())
            .or_else(|| field("id:"))?;
        let state = m
            .tlv(tag::MESSAGE_STATE)
            .and_then(|v| v.first().copied())
            .map(|s| message_state(s).to_owned())
            .or_else(|| field("stat:"))
            .unwrap_or_else(|| "UNKNOWN".to_owned());
        Some(Receipt { message_id, state })
    }

    /// True when the handset has the message.
    pub fn delivered(&self) -> bool {
        self.state == "DELIVRD"
    }
}

/// `message_state` values (§5.2.28) in the receipt text's spelling.
fn message_state(s: u8) -> &'static str {
    match s {
        1 => "ENROUTE",
        2 => "DELIVRD",
        3 => "EXPIRED",
        4 => "DELETED",
        5 => "UNDELIV",
        6 => "ACCEPTD",
        8 => "REJECTD",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(p: Pdu) {
        let bytes = encode(&p).unwrap();
        assert_eq!(decode(&bytes), Ok((p, bytes.len())));
    }

    #[test]
    fn an_enquire_link_is_the_bare_header() {
        let p = Pdu {
            status: 0,
            sequence: 7,
            body: Body::EnquireLink,
        };
        assert_eq!(
            encode(&p).unwrap(),
            [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        round_trip(p);
    }

    #[test]
    fn a_bind_transceiver_matches_the_spec_layout() {
        let p = Pdu {
            status: 0,
            sequence: 1,
            body: Body::BindTransceiver(Bind {
                system_id: "atgw".into(),
                password: "pw".into(),
                system_type: String::new(),
                interface_version: INTERFACE_VERSION_34,
                addr_ton: 0,
                addr_npi: 0,
                address_range: String::new(),
            }),
        };
        let b = encode(&p).unwrap();
        assert_eq!(&b[16..], b"atgw\0pw\0\0\x34\0\0\0");
        assert_eq!(b.len(), 16 + 13);
        round_trip(p);
    }

    #[test]
    fn a_refused_submit_has_no_body_and_reads_back() {
        let bytes = [0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 0, 3];
        let (p, n) = decode(&bytes).unwrap();
        assert_eq!(n, 16);
        assert_eq!(p.status, status::ESME_RTHROTTLED);
        assert_eq!(
            p.body,
            Body::SubmitSmResp {
                message_id: String::new()
            }
        );
        assert_eq!(encode(&p).unwrap(), bytes);
    }

    #[test]
    fn a_partial_pdu_is_incomplete_not_an_error() {
        let p = Pdu {
            status: 0,
            sequence: 9,
            body: Body::SubmitSmResp {
                message_id: "abc".into(),
            },
        };
        let b = encode(&p).unwrap();
        for cut in 0..b.len() {
            assert!(
                matches!(decode(&b[..cut]), Err(DecodeError::Incomplete { .. })),
                "{cut}"
            );
        }
    }

    #[test]
    fn command_length_is_capped_before_buffering() {
        let mut b = vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x15];
        b.extend_from_slice(&[0; 8]);
        assert_eq!(decode(&b), Err(DecodeError::TooLong(u32::MAX)));
        b[..4].copy_from_slice(&15u32.to_be_bytes());
        assert_eq!(decode(&b), Err(DecodeError::TooShort(15)));
    }

    #[test]
    fn an_unknown_command_can_be_skipped() {
        let b = [
            0, 0, 0, 20, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4,
        ];
        assert_eq!(
            decode(&b),
            Err(DecodeError::UnknownCommand {
                command_id: 3,
                sequence: 5,
                length: 20
            })
        );
    }

    #[test]
    fn an_unterminated_string_names_its_field() {
        let mut b = vec![0, 0, 0, 0, 0x80, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[b'x'; 70]);
        let n = b.len() as u32;
        b[..4].copy_from_slice(&n.to_be_bytes());
        match decode(&b) {
            Err(DecodeError::Malformed { field, problem, .. }) => {
                assert_eq!(field, "message_id");
                assert_eq!(problem, BodyError::Unterminated { max: 65 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_sm_length_of_255_is_refused_as_the_spec_says() {
        let m = ShortMessage {
            short_message: vec![b'x'; 254],
            ..ShortMessage::default()
        };
        let mut b = encode(&Pdu {
            status: 0,
            sequence: 1,
            body: Body::DeliverSm(m),
        })
        .unwrap();
        let at = b.len() - 255;
        assert_eq!(b[at], 254);
        b[at] = 255;
        b.push(b'x');
        let n = b.len() as u32;
        b[..4].copy_from_slice(&n.to_be_bytes());
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Malformed {
                field: "sm_length",
                problem: BodyError::TooLong { len: 255, max: 254 },
                ..
            })
        ));
    }

    #[test]
    fn trailing_octets_after_a_fixed_body_are_refused() {
        let b = [0, 0, 0, 17, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Malformed {
                problem: BodyError::Trailing(1),
                ..
            })
        ));
    }

    #[test]
    fn encode_refuses_what_the_wire_cannot_carry() {
        let mut m = ShortMessage {
            short_message: vec![0; 255],
            ..ShortMessage::default()
        };
        let p = |m: &ShortMessage| Pdu {
            status: 0,
            sequence: 1,
            body: Body::SubmitSm(m.clone()),
        };
        assert!(matches!(
            encode(&p(&m)),
            Err(EncodeError::TooLong {
                field: "short_message",
                ..
            })
        ));
        m.short_message.clear();
        m.destination_addr = "4".repeat(21);
        assert!(matches!(
            encode(&p(&m)),
            Err(EncodeError::TooLong {
                field: "destination_addr",
                ..
            })
        ));
        m.destination_addr = "é".into();
        assert!(matches!(encode(&p(&m)), Err(EncodeError::NotAscii { .. })));
    }

    #[test]
    fn a_receipt_is_read_from_its_text_or_its_tlvs() {
        let mut m = ShortMessage {
            esm_class: ESM_CLASS_RECEIPT,
            short_message: b"id:0A1B sub:001 dlvrd:001 submit date:2601011402 done date:2601011402 stat:DELIVRD err:000 text:HIGH Fall".to_vec(),
            ..ShortMessage::default()
        };
        let r = Receipt::parse(&m).unwrap();
        assert_eq!(
            r,
            Receipt {
                message_id: "0A1B".into(),
                state: "DELIVRD".into()
            }
        );
        assert!(r.delivered());
        m.tlvs = vec![
            Tlv {
                tag: tag::RECEIPTED_MESSAGE_ID,
                value: b"77\0".to_vec(),
            },
            Tlv {
                tag: tag::MESSAGE_STATE,
                value: vec![5],
            },
        ];
        let r = Receipt::parse(&m).unwrap();
        assert_eq!((r.message_id.as_str(), r.state.as_str()), ("77", "UNDELIV"));
        m.esm_class = 0;
        assert_eq!(
            Receipt::parse(&m),
            None,
            "a handset's message is no receipt"
        );
    }
}
