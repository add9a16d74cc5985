//! The conformance kit against the nurse-call adapter, over a real TCP socket, with a control
//! station written from the spec.

mod common;

use std::time::Duration;

use atgw_espa444::EspaAdapter;
use atgw_espa444::config::{AdapterConfig, Transport};
use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Answer, Device};
use common::{ACK, ControlStation, NAK, call_block};
use tokio::net::TcpStream;

struct Station(ControlStation<TcpStream>);

impl Device for Station {
    async fn send(&mut self, n: u32) {
        let addr = format!("{}", 100 + n);
        let text = format!("Call Room {n}");
        let block = call_block(&[
            (b'1', addr.as_bytes()),
            (b'2', text.as_bytes()),
            (b'6', b"2"),
        ]);
        assert_eq!(self.0.select().await, Some(ACK));
        self.0.write(&block).await;
    }
    async fn send_malformed(&mut self) {
        let mut block = call_block(&[(b'1', b"999")]);
        let last = block.len() - 1;
        block[last] ^= 0x55;
        assert_eq!(self.0.select().await, Some(ACK));
        self.0.write(&block).await;
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        match self.0.answer(within).await {
            Some(ACK) => Answer::Ack,
            Some(NAK) => Answer::Nak,
            _ => Answer::Nothing,
        }
    }
}

#[tokio::test]
async fn the_nurse_call_adapter_keeps_the_contract() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: std::env::temp_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let config = AdapterConfig::new(
        "nurse-call",
        Transport {
            listen: Some(addr.to_string()),
            ..Transport::default()
        },
    );
    let committed = testkit::run::<EspaAdapter, _, _, _>(config, site, || async move {
        Station(ControlStation {
            io: TcpStream::connect(addr).await.unwrap(),
        })
    })
    .await
    .unwrap_or_else(|f| panic!("conformance: {f}"));
    let devices: Vec<_> = committed
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| e.data.device.id.as_str())
        .collect();
    assert_eq!(devices, ["espa:101", "espa:102", "espa:103"]);
}
