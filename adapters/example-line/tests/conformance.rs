//! The conformance kit against the example adapter, over a real TCP socket.

use std::net::SocketAddr;
use std::time::Duration;

use atgw_example_line::{Config, LineAdapter};
use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Answer, Device};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A LINE/1 device on its own connection.
struct LineDevice(BufReader<TcpStream>);

impl Device for LineDevice {
    async fn send(&mut self, n: u32) {
        let _ = self
            .0
            .get_mut()
            .write_all(format!("{n} pendant-{n} pendant_press\n").as_bytes())
            .await;
    }
    async fn send_malformed(&mut self) {
        let _ = self.0.get_mut().write_all(b"seven pendant press\n").await;
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        let mut line = String::new();
        match tokio::time::timeout(within, self.0.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 && line.starts_with("ACK ") => Answer::Ack,
            Ok(Ok(n)) if n > 0 => Answer::Nak,
            _ => Answer::Nothing,
        }
    }
}

#[tokio::test]
async fn the_example_adapter_keeps_the_contract() {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: std::env::temp_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let committed = testkit::run::<LineAdapter, _, _, _>(
        Config::new("line", addr.to_string()),
        site,
        || async move { LineDevice(BufReader::new(TcpStream::connect(addr).await.unwrap())) },
    )
    .await
    .unwrap_or_else(|f| panic!("conformance: {f}"));
    let devices: Vec<_> = committed
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| e.data.device.id.as_str())
        .collect();
    assert_eq!(
        devices,
        ["line:pendant-1", "line:pendant-2", "line:pendant-3"]
    );
}
