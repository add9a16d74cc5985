//! The SIP subset on arbitrary bytes: the datagram parser, the stream framer (input split in
//! two reads), URIs and digest `Authorization` values. No panic; a parsed request's response
//! parses; a framed message's bytes are bounded.
#![no_main]

use atgw_scaip::sip::digest::{Algorithm, DigestServer};
use atgw_scaip::sip::framing::{Frame, Framer};
use atgw_scaip::sip::message::{MAX_BODY, MAX_HEAD};
use atgw_scaip::sip::uri::Uri;
use atgw_scaip::sip::{Message, StartLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        if matches!(m.start, StartLine::Request { .. }) {
            let r = m.response(200, "OK", "t").encode();
            assert!(Message::parse(&r).is_ok());
        }
        for name in ["From", "To", "Contact"] {
            if let Some(v) = m.header(name) {
                let _ = Uri::parse(v).map(|u| u.socket_addr(5060));
            }
        }
        if let Some(a) = m.header("Authorization") {
            let s = DigestServer::new("fuzz", vec![Algorithm::Md5, Algorithm::Sha256], 300_000);
            let _ = s.verify(a, "MESSAGE", "sip:arc@fuzz", 0, |_| None);
        }
        let _ = (m.branch(), m.cseq());
    }
    let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut f = Framer::default();
    f.push(&data[..cut]);
    for part in [&data[cut..], &[][..]] {
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    assert!(m.len() <= MAX_HEAD + MAX_BODY);
                    let _ = Message::parse(&m);
                }
                Ok(Some(Frame::Ping)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        f.push(part);
    }
});
