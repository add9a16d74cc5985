//! The receiver's answers: ACK (`*ACK` for an encrypted frame), NAK with the receiver's time, and
//! DUH. Emitted strictly in the DC-09-2013 form (legacy.md §1.8).

use jiff::Timestamp;
use rand::Rng;

use crate::crypto::{self, AesKey};
use crate::frame::{Body, Frame, Header, Payload, Token};
use crate::timestamp::Dc09Time;

fn echo(request: &Header, token: Token, encrypted: bool) -> Header {
    Header {
        token,
        encrypted,
        seq: request.seq.clone(),
        receiver: request.receiver.clone(),
        prefix: request.prefix.clone(),
        account: request.account.clone(),
    }
}

/// ACK echoing seq, R (only if received), L and #acct. Plain ACKs carry no timestamp (the form
/// every transmitter we know accepts); with `key`, the `*ACK` carries pad, `]` and our time,
/// encrypted, as the standard requires.
pub fn ack(request: &Header, key: Option<&AesKey>, now: Timestamp, rng: &mut impl Rng) -> Vec<u8> {
    let body = match key {
        None => Body::Clear(Payload::default()),
        Some(key) => {
            let text = Payload {
                timestamp: Some(Dc09Time::from_timestamp(now)),
                ..Payload::default()
            }
            .encode();
            Body::Encrypted(crypto::seal(key, &text, rng))
        }
    };
    Frame {
        header: echo(request, Token::Ack, key.is_some()),
        body,
    }
    .encode()
}

/// `"NAK"0000R0L0A0[]_<now>`: never encrypted; the transmitter uses our time to correct its
/// clock offset and resends.
pub fn nak(now: Timestamp) -> Vec<u8> {
    Frame {
        header: Header {
            token: Token::Nak,
            encrypted: false,
            seq: "0000".into(),
            receiver: Some("0".into()),
            prefix: Some("0".into()),
            account: None,
        },
        body: Body::Clear(Payload {
            timestamp: Some(Dc09Time::from_timestamp(now)),
            ..Payload::default()
        }),
    }
    .encode()
}

/// DUH: well framed, but we cannot process it. Never encrypted.
pub fn duh(request: &Header) -> Vec<u8> {
    Frame {
        header: echo(request, Token::Duh, false),
        body: Body::Clear(Payload::default()),
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyFormat;
    use rand::SeedableRng;

    fn header(msg: &[u8]) -> Header {
        Frame::parse_message(msg).unwrap().header
    }

    #[test]
    fn responses_match_the_recorded_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let now: Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let p1 = header(b"\"SIA-DCS\"0001L0#1234[#1234|Nri1/MA001]_12:00:00,06-01-2024");
        assert_eq!(
            ack(&p1, None, now, &mut rng),
            b"\n1BC10012\"ACK\"0001L0#1234[]\r"
        );
        assert_eq!(duh(&p1), b"\n251F0012\"DUH\"0001L0#1234[]\r");
        let p6 = header(b"\"SIA-DCS\"0006R1L2A#00C0FFEE[#00C0FFEE|Nri1/QA002]");
        assert_eq!(
            ack(&p6, None, now, &mut rng),
            b"\nB4010019\"ACK\"0006R1L2A#00C0FFEE[]\r"
        );
        assert_eq!(
            nak(now),
            b"\nD2DF0025\"NAK\"0000R0L0A0[]_12:00:00,06-01-2024\r"
        );
    }

    #[test]
    fn encrypted_ack_decrypts_to_our_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let key = AesKey::parse("000102030405060708090A0B0C0D0E0F", KeyFormat::Hex).unwrap();
        let now: Timestamp = "2024-06-01T12:00:00.750Z".parse().unwrap();
        let e1 = header(b"\"*SIA-DCS\"0007L0#1234[00");
        let bytes = ack(&e1, Some(&key), now, &mut rng);
        let (f, _) = Frame::decode(&bytes).unwrap();
        assert_eq!(f.header.token, Token::Ack);
        assert!(f.header.encrypted);
        assert_eq!(f.header.seq, "0007");
        let Body::Encrypted(hex) = f.body else {
            panic!("not encrypted")
        };
        let text = crypto::open(&key, &hex).unwrap();
        assert_eq!(text, b"]_12:00:00,06-01-2024");
    }
}
