//! The SDK's conformance kit against the real receiver: a real TCP transmitter sends Contact ID
//! frames (no timestamp, so the wall clock the kit runs on never makes them stale) and reads
//! the receiver's answers off the socket.

use std::net::SocketAddr;
use std::time::Duration;

use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Answer, Device};
use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::config::Account;
use atgw_sia_dc09::frame::{Frame, Token, wrap_message};
use atgw_sia_dc09::{Config, Dc09Component};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A transmitter on its own TCP connection.
struct Transmitter {
    stream: TcpStream,
    decoder: FrameDecoder,
}

impl Device for Transmitter {
    async fn send(&mut self, n: u32) {
        let msg = format!("\"ADM-CID\"{n:04}L0#1234[#1234|1130 01 {n:03}]");
        let _ = self.stream.write_all(&wrap_message(msg.as_bytes())).await;
    }
    async fn send_malformed(&mut self) {
        // A frame whose CRC does not match its message.
        let mut frame = wrap_message(b"\"ADM-CID\"0099L0#1234[#1234|1130 01 099]");
        frame[1] = if frame[1] == b'0' { b'1' } else { b'0' };
        let _ = self.stream.write_all(&frame).await;
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 512];
        loop {
            if let Ok(Some(raw)) = self.decoder.next_frame() {
                return match Frame::decode(&raw).map(|(f, _)| f.header.token) {
                    Ok(Token::Ack) => Answer::Ack,
                    _ => Answer::Nak,
                };
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.decoder.extend(&buf[..n]),
                _ => return Answer::Nothing,
            }
        }
    }
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn the_receiver_keeps_the_adapter_contract() {
    let addr = free_port();
    let mut config = Config::new("kit");
    config.listen_tcp = Some(addr.to_string());
    config.accounts.push(Account {
        account: "1234".into(),
        key_file: None,
        key_format: Default::default(),
    });
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: std::env::temp_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let committed = testkit::run::<Dc09Component, _, _, _>(config, site, || async move {
        // The receiver is bound before the kit asks for a device.
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the receiver: {e}"));
        Transmitter {
            stream,
            decoder: FrameDecoder::new(4096),
        }
    })
    .await
    .unwrap_or_else(|f| panic!("conformance: {f}"));
    // Messages 1, 2 (its resend) and 3: one Contact ID 130 event each.
    let codes: Vec<_> = committed
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| e.data.codes.contact_id.clone())
        .collect();
    assert_eq!(codes, vec![Some("130".to_owned()); 3], "{committed:?}");
}
