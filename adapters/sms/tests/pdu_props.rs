//! Property tests of the SMPP codec: decoding arbitrary bytes never panics, and every PDU the
//! codec can write reads back as itself.

use atgw_sms::pdu::{self, Bind, BindResp, Body, DecodeError, Pdu, ShortMessage, Tlv};
use proptest::prelude::*;

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0x01u8..0x80, 0..max)
        .prop_map(|b| b.into_iter().map(char::from).collect())
}

fn tlvs() -> impl Strategy<Value = Vec<Tlv>> {
    proptest::collection::vec(
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(tag, value)| Tlv { tag, value }),
        0..4,
    )
}

fn short_message() -> impl Strategy<Value = ShortMessage> {
    (
        (
            ascii(6),
            any::<[u8; 2]>(),
            ascii(21),
            any::<[u8; 2]>(),
            ascii(21),
        ),
        (any::<[u8; 3]>(), ascii(17), ascii(17), any::<[u8; 4]>()),
        proptest::collection::vec(any::<u8>(), 0..=254),
        tlvs(),
    )
        .prop_map(
            |((st, s, sa, d, da), (e, sch, val, f), sm, tlvs)| ShortMessage {
                service_type: st,
                source_addr_ton: s[0],
                source_addr_npi: s[1],
                source_addr: sa,
                dest_addr_ton: d[0],
                dest_addr_npi: d[1],
                destination_addr: da,
                esm_class: e[0],
                protocol_id: e[1],
                priority_flag: e[2],
                schedule_delivery_time: sch,
                validity_period: val,
                registered_delivery: f[0],
                replace_if_present_flag: f[1],
                data_coding: f[2],
                sm_default_msg_id: f[3],
                short_message: sm,
                tlvs,
            },
        )
}

fn bind() -> impl Strategy<Value = Bind> {
    (ascii(16), ascii(9), ascii(13), any::<[u8; 3]>(), ascii(41)).prop_map(
        |(system_id, password, system_type, v, address_range)| Bind {
            system_id,
            password,
            system_type,
            interface_version: v[0],
            addr_ton: v[1],
            addr_npi: v[2],
            address_range,
        },
    )
}

fn bind_resp() -> impl Strategy<Value = BindResp> {
    (ascii(16), tlvs()).prop_map(|(system_id, tlvs)| BindResp { system_id, tlvs })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        bind().prop_map(Body::BindTransmitter),
        bind().prop_map(Body::BindTransceiver),
        bind_resp().prop_map(Body::BindTransmitterResp),
        bind_resp().prop_map(Body::BindTransceiverResp),
        short_message().prop_map(Body::SubmitSm),
        short_message().prop_map(Body::DeliverSm),
        ascii(65).prop_map(|message_id| Body::SubmitSmResp { message_id }),
        ascii(65).prop_map(|message_id| Body::DeliverSmResp { message_id }),
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::GenericNack),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = pdu::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_a_plausible_header_and_random_body(
        id in prop_oneof![Just(0x8000_0000u32), 2u32..=9, 0x8000_0002u32..=0x8000_0009, Just(0x15), Just(0x8000_0015)],
        status in any::<u32>(), seq in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&status.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&body);
        match pdu::decode(&b) {
            Ok((_, n)) => prop_assert_eq!(n, b.len()),
            Err(DecodeError::Malformed { length, .. } | DecodeError::UnknownCommand { length, .. }) => {
                prop_assert_eq!(length, b.len())
            }
            Err(e) => prop_assert!(false, "a framed PDU gave {e:?}"),
        }
    }

    #[test]
    fn encode_then_decode_round_trips(status in any::<u32>(), sequence in any::<u32>(), body in body()) {
        let p = Pdu { status, sequence, body };
        let bytes = pdu::encode(&p).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (back, n) = pdu::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(back, p);
    }

    #[test]
    fn two_pdus_in_one_buffer_are_read_one_at_a_time(a in body(), b in body()) {
        let pa = Pdu { status: 0, sequence: 1, body: a };
        let pb = Pdu { status: 0, sequence: 2, body: b };
        let mut bytes = pdu::encode(&pa).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let first = bytes.len();
        bytes.extend(pdu::encode(&pb).map_err(|e| TestCaseError::fail(e.to_string()))?);
        let (x, n) = pdu::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((x, n), (pa, first));
        let (y, _) = pdu::decode(&bytes[n..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(y, pb);
    }
}
