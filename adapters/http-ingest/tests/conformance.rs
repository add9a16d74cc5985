//! The conformance kit against the HTTP ingest adapter, over real HTTP on loopback: a vendor
//! cloud whose POST is answered 2xx only after the kit's journal commits it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use atgw_http_ingest::config::{AuthConfig, Format, RouteConfig};
use atgw_http_ingest::{Config, HttpAdapter};
use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Answer, Device};
use tokio::task::JoinHandle;

const TOKEN: &str = "kit-token";

/// A cloud posting one request at a time; the answer arrives when the adapter gives it.
struct Cloud {
    url: String,
    client: reqwest::Client,
    pending: Option<JoinHandle<Option<u16>>>,
}

impl Cloud {
    fn post(&mut self, body: Vec<u8>) {
        let req = self
            .client
            .post(&self.url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body);
        self.pending = Some(tokio::spawn(async move {
            req.send().await.ok().map(|r| r.status().as_u16())
        }));
    }
}

impl Device for Cloud {
    async fn send(&mut self, n: u32) {
        self.post(format!(r#"{{"device":"kit-{n}","event":"pendant_press"}}"#).into_bytes());
    }
    async fn send_malformed(&mut self) {
        self.post(b"{\"device\": ".to_vec());
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        let Some(h) = self.pending.as_mut() else {
            return Answer::Nothing;
        };
        match tokio::time::timeout(within, h).await {
            Err(_) => Answer::Nothing,
            Ok(r) => {
                self.pending = None;
                match r.ok().flatten() {
                    Some(s) if (200..300).contains(&s) => Answer::Ack,
                    Some(_) => Answer::Nak,
                    None => Answer::Nothing,
                }
            }
        }
    }
}

#[tokio::test]
async fn the_http_ingest_adapter_keeps_the_contract() {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut config = Config::new("clouds", addr.to_string());
    config.routes.push(RouteConfig {
        path: "/hooks".into(),
        format: Format::Profiles,
        profiles: vec!["webhook-alarm".into()],
        topic: None,
        auth: AuthConfig::Bearer { secret_file: token },
        dedupe: None,
        dedupe_window: Duration::from_secs(60),
    });
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/profiles"
        )),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{addr}/hooks/alarm");
    let committed = testkit::run::<HttpAdapter, _, _, _>(config, site, || {
        let url = url.clone();
        async move {
            Cloud {
                url,
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap(),
                pending: None,
            }
        }
    })
    .await
    .unwrap_or_else(|f| panic!("conformance: {f}"));
    assert!(committed.iter().all(|s| s.events.len() == 1));
}
