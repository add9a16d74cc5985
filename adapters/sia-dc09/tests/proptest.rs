//! Properties over arbitrary input: nothing panics, what we emit we parse back, and stream
//! reassembly does not depend on how bytes are split.

use std::collections::{BTreeMap, HashMap};

use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::crypto::{self, AesKey};
use atgw_sia_dc09::frame::{Body, Frame, Header, Payload, Token, XData};
use atgw_sia_dc09::handler::{AccountEntry, Handler};
use atgw_sia_dc09::mapping::Mapper;
use atgw_sia_dc09::timestamp::{Dc09Time, Window};
use jiff::Timestamp;
use proptest::prelude::*;
use rand::SeedableRng;

fn handler() -> Handler {
    let mut accounts = HashMap::new();
    accounts.insert("1234".to_owned(), AccountEntry { key: None });
    accounts.insert(
        "5678".to_owned(),
        AccountEntry {
            key: Some(AesKey::from_bytes(&[7; 16]).unwrap()),
        },
    );
    Handler::new(
        Mapper::new("alarms", &BTreeMap::new()),
        accounts,
        true,
        Window::default(),
    )
}

fn header() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            Just("SIA-DCS".to_owned()),
            Just("ADM-CID".to_owned()),
            Just("NULL".to_owned()),
            Just("ACK".to_owned()),
            Just("DUH".to_owned()),
            "[A-Z][A-Z0-9-]{0,9}",
        ],
        any::<bool>(),
        "[0-9]{4}",
        proptest::option::of("[0-9A-F]{1,6}"),
        "[0-9A-Fa-f]{1,6}",
        "[0-9A-Za-z]{3,16}",
    )
        .prop_map(
            |(token, encrypted, seq, receiver, prefix, account)| Header {
                token: Token::parse(&token),
                encrypted,
                seq,
                receiver,
                prefix: Some(prefix),
                account: Some(account),
            },
        )
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        "[ -Z\\\\^-~]{0,120}",
        proptest::collection::vec(("[A-Z$]", "[ -Z\\\\^-~]{0,40}"), 0..4),
        proptest::option::of(0i64..4_000_000_000),
    )
        .prop_map(|(data, xdata, ts)| Payload {
            data,
            xdata: xdata
                .into_iter()
                .map(|(id, value)| XData {
                    id: id.chars().next().unwrap_or('X'),
                    value,
                })
                .collect(),
            timestamp: ts.map(|s| Dc09Time::from_timestamp(Timestamp::from_second(s).unwrap())),
        })
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Frame::decode(&bytes);
        let _ = Frame::parse_message(&bytes);
        let _ = atgw_sia_dc09::frame::parse_payload(&bytes);
        let _ = atgw_sia_dc09::contact_id::parse(&String::from_utf8_lossy(&bytes));
        let _ = atgw_sia_dc09::sia::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn stream_decoder_never_panics_and_stays_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10)
    ) {
        let mut d = FrameDecoder::new(256);
        for c in &chunks {
            d.extend(c);
            while let Ok(Some(_)) | Err(_) = d.next_frame() {}
            prop_assert!(d.buffered() <= 256 + 300);
        }
    }

    #[test]
    fn handler_never_panics_on_arbitrary_frames(
        h in header(),
        hex in "[0-9A-Fa-f]{0,200}",
        junk in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let handler = handler();
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut h = h;
        h.account = Some("5678".into());
        h.encrypted = true;
        let f = Frame { header: h, body: Body::Encrypted(hex) };
        let _ = handler.handle(&f.encode(), "test", now, &mut rng);
        let _ = handler.handle(&junk, "test", now, &mut rng);
    }

    #[test]
    fn emit_then_parse_round_trips(h in header(), p in payload()) {
        let mut h = h;
        h.encrypted = false;
        let f = Frame { header: h, body: Body::Clear(p) };
        let (back, _) = Frame::decode(&f.encode()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, f);
    }

    #[test]
    fn frames_survive_any_split_and_nul_padding(
        frames in proptest::collection::vec((header(), payload()), 1..5),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
    ) {
        let encoded: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|(mut h, p)| { h.encrypted = false; Frame { header: h, body: Body::Clear(p) }.encode() })
            .collect();
        let mut stream = b"noise".to_vec();
        for e in &encoded {
            stream.extend_from_slice(e);
            stream.extend_from_slice(&[0, 0]);
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut d = FrameDecoder::new(4200);
        let mut got = Vec::new();
        let mut last = 0;
        for c in cuts.into_iter().chain([stream.len()]) {
            d.extend(&stream[last..c]);
            last = c;
            while let Ok(Some(f)) = d.next_frame() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, encoded);
    }

    #[test]
    fn decryptor_never_panics(
        key_len in prop_oneof![Just(16usize), Just(24), Just(32)],
        key_byte in any::<u8>(),
        text in "[0-9A-Za-z]{0,200}",
        raw in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let key = AesKey::from_bytes(&vec![key_byte; key_len]).unwrap();
        let _ = crypto::open(&key, &text);
        let _ = crypto::open(&key, &hex::encode(&raw));
        let _ = crypto::decrypt_blocks(&key, &raw);
    }

    #[test]
    fn seal_then_open_round_trips(key in proptest::collection::vec(any::<u8>(), 32), text in "[ -Z\\\\^-~]{0,80}\\][ -~]{0,40}") {
        let key = AesKey::from_bytes(&key).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let sealed = crypto::seal(&key, text.as_bytes(), &mut rng);
        prop_assert_eq!(crypto::open(&key, &sealed).unwrap(), text.as_bytes());
    }
}
