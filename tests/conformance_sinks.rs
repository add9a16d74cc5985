//! The SDK's sink conformance kit against every sink, each with a real peer: an HTTP receiver
//! for the webhook sink (which can refuse for now, 503, and for good, 410), a private Mosquitto
//! with a subscriber for the MQTT sink, and the file on disk for the file sink.

mod common;

use std::path::PathBuf;

use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Peer, PeerMode, SinkReport};
use common::*;

fn site() -> Site {
    Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: profiles_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    }
}

struct Http(Receiver);

impl Peer for Http {
    async fn set_mode(&mut self, mode: PeerMode) -> bool {
        self.0.set_status(match mode {
            PeerMode::Accept => 200,
            PeerMode::RefuseForNow => 503,
            PeerMode::Gone => 410,
        });
        true
    }
    async fn received_ids(&mut self) -> Vec<String> {
        self.0
            .received()
            .into_iter()
            .filter_map(|r| r.json["id"].as_str().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn the_webhook_sink_keeps_the_sink_contract() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let block = webhook_sink(tmp.path(), "hook", &receiver.url());
    let table: toml::Table = block.parse().unwrap();
    let mut sink = table["sink"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    sink.remove("type");
    let config: atgw_http::WebhookConfig = sink.try_into().unwrap();
    let report =
        testkit::run_sink::<atgw_http::WebhookSink, _>(config, site(), &mut Http(receiver))
            .await
            .unwrap_or_else(|f| panic!("conformance: {f}"));
    assert_eq!(
        report,
        SinkReport {
            delivered: 3,
            retry_checked: true,
            disabled_checked: true
        }
    );
}

struct Subscriber(Upstream);

impl Peer for Subscriber {
    async fn set_mode(&mut self, mode: PeerMode) -> bool {
        mode == PeerMode::Accept
    }
    async fn received_ids(&mut self) -> Vec<String> {
        self.0
            .events()
            .into_iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn the_mqtt_sink_keeps_the_sink_contract() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let broker = atgw::tools::mosquitto::Mosquitto::start(&tmp.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/kit/#").await;
    let config: atgw_mqtt::config::SinkConfig = toml::from_str(&format!(
        "name = \"upstream\"\nhost = \"127.0.0.1\"\nport = {}\ntopic_prefix = \"atgw/kit\"\n",
        broker.port
    ))
    .unwrap();
    let mut peer = Subscriber(upstream);
    let report = testkit::run_sink::<atgw_mqtt::component::MqttSink, _>(config, site(), &mut peer)
        .await
        .unwrap_or_else(|f| panic!("conformance: {f}"));
    assert_eq!(report.delivered, 3);
}

struct File(PathBuf);

impl Peer for File {
    async fn set_mode(&mut self, mode: PeerMode) -> bool {
        mode == PeerMode::Accept
    }
    async fn received_ids(&mut self) -> Vec<String> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn the_file_sink_keeps_the_sink_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("events.jsonl");
    let config: atgw::config::FileSinkConfig = toml::from_str(&format!(
        "name = \"audit\"\npath = \"{}\"\n",
        path.display()
    ))
    .unwrap();
    let report =
        testkit::run_sink::<atgw::sinks::file::FileSink, _>(config, site(), &mut File(path))
            .await
            .unwrap_or_else(|f| panic!("conformance: {f}"));
    assert_eq!(report.delivered, 3);
}
