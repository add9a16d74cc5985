//! The sms sink's SMPP 3.4 codec on arbitrary bytes (a stranger's SMSC, or whatever answers on
//! its port): no panic; a PDU that decodes re-encodes and reads back as itself; a receipt reads
//! without panic; a short message read as GSM-7 text and encoded again fits one SMS.
#![no_main]

use atgw_sms::{gsm7, pdu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // A stream of PDUs, as the reader task cuts it: skip what can be skipped.
    for _ in 0..8 {
        match pdu::decode(rest) {
            Ok((p, n)) => {
                assert!(n >= pdu::HEADER_LEN && n <= rest.len() && n <= pdu::MAX_PDU_LEN as usize);
                let bytes = pdu::encode(&p).expect("a decoded PDU encodes");
                let again = pdu::decode(&bytes).expect("an encoded PDU decodes");
                assert_eq!(again, (p.clone(), bytes.len()));
                if let pdu::Body::DeliverSm(m) | pdu::Body::SubmitSm(m) = &p.body {
                    let _ = pdu::Receipt::parse(m);
                    if let Some(text) = gsm7::decode(&m.short_message) {
                        let g = gsm7::encode(&text, gsm7::MAX_SEPTETS);
                        assert!(g.septets.len() <= gsm7::MAX_SEPTETS);
                    }
                }
                rest = &rest[n..];
            }
            Err(
                pdu::DecodeError::UnknownCommand { length, .. }
                | pdu::DecodeError::Malformed { length, .. },
            ) => {
                assert!(length >= pdu::HEADER_LEN && length <= rest.len());
                rest = &rest[length..];
            }
            Err(e) => {
                assert!(!e.to_string().chars().any(char::is_control), "{e}");
                break;
            }
        }
    }
});
