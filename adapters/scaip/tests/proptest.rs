//! Properties over arbitrary input: the XML codec, the SIP parser and the stream framer never
//! panic, what we emit we parse back, and framing does not depend on how bytes are split.

use atgw_scaip::codec::{Geo, MessageType, Request, Response};
use atgw_scaip::handler::Handler;
use atgw_scaip::sip::Message;
use atgw_scaip::sip::framing::{Frame, Framer};
use proptest::prelude::*;

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 äöå&<>'\"!?.,-]{{1,{max}}}"))
        .unwrap()
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty after trim", |s| !s.is_empty())
}

fn request() -> impl Strategy<Value = Request> {
    let head = (
        "[0-9A-Za-z]{1,16}",
        proptest::option::of("[0-9]{2}\\.[0-9]{2}"),
        proptest::option::of(0u8..=3),
        proptest::option::of(0u8..=1),
        prop_oneof![
            Just(MessageType::Message),
            Just(MessageType::Reset),
            Just(MessageType::Information),
            Just(MessageType::Heartbeat)
        ],
        proptest::option::of(0u16..=1),
        "[0-9]{1,32}",
        0u16..=9999,
    );
    let device = (
        proptest::option::of("[ -~]{1,16}".prop_filter("trimmed", |s| s.trim() == s)),
        proptest::option::of(0u16..=999),
        proptest::option::of(text(32)),
        proptest::collection::vec("(no-voice:|gsm:\\+46[0-9]{6}|sip:[a-z]{1,8}@h)", 0..3),
        proptest::option::of(0u16..=9999),
        proptest::option::of(text(32)),
        proptest::option::of(0u8..=9),
    );
    let place = (
        proptest::option::of(0u16..=33),
        proptest::option::of("[A-Za-z0-9]{1,2}"),
        proptest::option::of("[0-9]{2}\\.[0-9]{4},[0-9]{2}\\.[0-9]{4}"),
        proptest::option::of(text(32)),
        proptest::option::of(text(128)),
        proptest::option::of(0u16..=9),
    );
    (head, device, place).prop_map(
        |(
            (reference, version, sco, cha, mty, hbo, cid, dty),
            (did, dco, dte, crd, stc, stt, pri),
            (lco, lva, geo, lte, ite, ame),
        )| Request {
            reference,
            version,
            sco,
            cha,
            mty,
            hbo,
            cid,
            dty,
            did,
            dco,
            dte,
            crd,
            stc,
            stt,
            pri,
            lco,
            lva,
            lge: geo.map(|g| Geo {
                geo: Some(g),
                tim: None,
                gga: None,
            }),
            lte,
            ico: None,
            ite,
            ame,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_codec_the_parser_or_the_handler(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
        let _ = Message::parse(&bytes);
        let d = Handler::new("u", std::time::Duration::from_secs(60), Some(60)).handle(&bytes, "o");
        // A refusal is always a dead letter with an snu other than 0.
        prop_assert_eq!(d.dead_letter.is_some(), d.reply.snu != 0);
    }

    #[test]
    fn xml_shaped_input_never_panics(body in "<mrq>(<(ref|cid|dty|stc|lge|geo|x:y|mrq)>[0-9A-Za-z&;<> ]{0,20}(</(ref|cid|dty|stc|lge|geo|x:y|mrq)>)?){0,8}(</mrq>)?") {
        if let Err(e) = Request::decode(body.as_bytes()) {
            prop_assert!(matches!(e.kind.snu(), 1 | 2 | 3 | 7 | 10));
        }
    }

    #[test]
    fn an_encoded_request_decodes_to_itself(req in request()) {
        let back = Request::decode(req.encode().as_bytes());
        prop_assert_eq!(back, Ok(req));
    }

    #[test]
    fn an_encoded_response_decodes_to_itself(
        reference in proptest::option::of("[0-9A-Za-z]{1,16}"),
        snu in prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(7), Just(10)],
        hbi in proptest::option::of(1u16..=1440),
        ste in proptest::option::of(text(128)),
    ) {
        let r = Response { reference, snu, ste, cve: Some("01.00".into()), mre: Some(0), hbi };
        prop_assert_eq!(Response::decode(r.encode().as_bytes()), Ok(r));
    }

    #[test]
    fn framing_does_not_depend_on_how_the_stream_is_split(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..5),
        cuts in proptest::collection::vec(1usize..64, 1..20),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for b in &bodies {
            let mut m = Message::request("MESSAGE", "sip:arc@127.0.0.1");
            m.push("Via", "SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bK1");
            m.body = b.clone();
            let bytes = m.encode();
            stream.extend_from_slice(&bytes);
            stream.extend_from_slice(b"\r\n\r\n");
            want.push(Frame::Message(bytes));
            want.push(Frame::Ping);
        }
        let mut f = Framer::default();
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - at);
            f.push(&stream[at..at + n]);
            at += n;
            i += 1;
            while let Some(frame) = f.next_frame().unwrap() {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, want);
    }
}
