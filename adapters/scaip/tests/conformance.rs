//! The SDK's conformance kit against the real receiver, over UDP and over TCP: a real unit
//! sends SCAIP alarms in SIP MESSAGEs and hears `Ack` only for a `200 OK` followed by an
//! `<mrs>` with `snu 0` that echoes its `ref`.

use std::net::SocketAddr;
use std::time::Duration;

use atgw_scaip::codec::Response;
use atgw_scaip::sip::framing::{Frame, Framer};
use atgw_scaip::sip::{Message, StartLine};
use atgw_scaip::{Config, ScaipComponent};
use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Answer, Device};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

enum Wire {
    Udp(UdpSocket),
    Tcp(TcpStream, Framer),
}

/// A unit on its own socket.
struct Unit {
    wire: Wire,
    local: SocketAddr,
    target: SocketAddr,
    /// The `ref` of the last request.
    last: String,
}

impl Unit {
    async fn connect(target: SocketAddr, tcp: bool) -> Unit {
        let (wire, local) = if tcp {
            let s = TcpStream::connect(target).await.unwrap();
            let local = s.local_addr().unwrap();
            (Wire::Tcp(s, Framer::default()), local)
        } else {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.connect(target).await.unwrap();
            let local = s.local_addr().unwrap();
            (Wire::Udp(s), local)
        };
        Unit {
            wire,
            local,
            target,
            last: String::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        match &mut self.wire {
            Wire::Udp(s) => {
                let _ = s.send(bytes).await;
            }
            Wire::Tcp(s, _) => {
                let _ = s.write_all(bytes).await;
            }
        }
    }

    /// A MESSAGE whose every byte depends only on `n` (so a resend is byte-identical).
    async fn message(&mut self, n: u32, body: &str) {
        let t = if matches!(self.wire, Wire::Tcp(..)) {
            "TCP"
        } else {
            "UDP"
        };
        let mut m = Message::request("MESSAGE", &format!("sip:arc@{}", self.target));
        m.push(
            "Via",
            format!("SIP/2.0/{t} {};branch=z9hG4bK-kit-{n}", self.local),
        );
        m.push("From", format!("<sip:678@{}>;tag=kit", self.local));
        m.push("To", format!("<sip:arc@{}>", self.target));
        m.push("Call-ID", format!("kit-{n}"));
        m.push("CSeq", "1 MESSAGE");
        m.push("Content-Type", "application/scaip+xml");
        m.body = body.as_bytes().to_vec();
        let bytes = m.encode();
        self.write(&bytes).await;
    }

    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<Message> {
        loop {
            match &mut self.wire {
                Wire::Udp(s) => {
                    let mut buf = vec![0u8; 65535];
                    match tokio::time::timeout_at(deadline, s.recv(&mut buf)).await {
                        Ok(Ok(n)) => {
                            if let Ok(m) = Message::parse(&buf[..n]) {
                                return Some(m);
                            }
                        }
                        _ => return None,
                    }
                }
                Wire::Tcp(s, f) => {
                    match f.next_frame() {
                        Ok(Some(Frame::Message(raw))) => return Message::parse(&raw).ok(),
                        Ok(Some(Frame::Ping)) => continue,
                        Ok(None) => {}
                        Err(_) => return None,
                    }
                    let mut buf = [0u8; 4096];
                    match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => f.push(&buf[..n]),
                        _ => return None,
                    }
                }
            }
        }
    }
}

impl Device for Unit {
    async fn send(&mut self, n: u32) {
        self.last = format!("{n}");
        let body = format!("<mrq><ref>{n}</ref><cid>678</cid><dty>3</dty><did>{n}</did></mrq>");
        self.message(n, &body).await;
    }
    async fn send_malformed(&mut self) {
        self.last = "99".into();
        self.message(99, "<mrq><ref>99</ref><cid>678</cid>").await;
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        let deadline = tokio::time::Instant::now() + within;
        let mut ok = false;
        while let Some(m) = self.next(deadline).await {
            match m.start {
                StartLine::Response { code: 200, .. } => ok = true,
                StartLine::Response { code, .. } if code >= 300 => return Answer::Nak,
                StartLine::Response { .. } => {}
                StartLine::Request { .. } => {
                    let reply = m.response(200, "OK", "kit").encode();
                    self.write(&reply).await;
                    let good = Response::decode(&m.body).is_ok_and(|r| {
                        r.snu == 0 && r.reference.as_deref() == Some(self.last.as_str())
                    });
                    return if ok && good { Answer::Ack } else { Answer::Nak };
                }
            }
        }
        Answer::Nothing
    }
}

fn free_port() -> SocketAddr {
    for _ in 0..50 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        if std::net::UdpSocket::bind(a).is_ok() {
            return a;
        }
    }
    panic!("no free port");
}

async fn kit(tcp: bool) {
    let addr = free_port();
    let config: Config = toml::from_str(&format!(
        "name = \"kit\"\nlisten_udp = \"{addr}\"\nlisten_tcp = \"{addr}\"\nallow_unauthenticated = true\n"
    ))
    .unwrap();
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: std::env::temp_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let committed = testkit::run::<ScaipComponent, _, _, _>(config, site, || async move {
        Unit::connect(addr, tcp).await
    })
    .await
    .unwrap_or_else(|f| panic!("conformance (tcp: {tcp}): {f}"));
    let refs: Vec<_> = committed
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| e.data.raw.as_ref().and_then(|r| r.upstream_id.clone()))
        .collect();
    // Messages 1, 2 (its resend, after the failed commit) and 3.
    assert_eq!(
        refs,
        ["1", "2", "3"].map(|r| Some(r.to_owned())),
        "{committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_keeps_the_adapter_contract_over_udp() {
    kit(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_keeps_the_adapter_contract_over_tcp() {
    kit(true).await;
}
