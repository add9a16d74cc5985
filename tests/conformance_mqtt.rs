//! The SDK's conformance kit against the real MQTT adapter: a private Mosquitto, a real device
//! client publishing QoS 1, and the broker's own log (`log_type all`) to see when the adapter
//! sends its PUBACK (the device's own PUBACK comes from the broker, so it proves nothing).

use std::path::{Path, PathBuf};
use std::time::Duration;

use atgw::tools::mosquitto::Mosquitto;
use atgw_mqtt::component::MqttAdapter;
use atgw_sdk::component::Site;
use atgw_sdk::testkit::{self, Answer, Device};
use rumqttc::{AsyncClient, MqttOptions, QoS};

/// The adapter's client id: `<gateway id>-<adapter name>`.
const ADAPTER_CLIENT: &str = "gw-kit-zigbee";

/// A private Mosquitto logging every packet (`log_type all`), and its directory.
fn logging_broker(tmp: &Path) -> (PathBuf, Mosquitto) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tmp.join("broker");
    let broker = Mosquitto::start(&dir, "log_type all").unwrap();
    (dir, broker)
}

fn broker_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
}

/// PUBACKs the broker received from `client` so far.
fn pubacks_from(dir: &Path, client: &str) -> usize {
    let needle = format!("Received PUBACK from {client} ");
    broker_log(dir)
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

/// `Ack` once `client` has sent more than `before` PUBACKs, waiting at most `within`.
async fn puback_after(dir: &Path, client: &str, before: usize, within: Duration) -> Answer {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if pubacks_from(dir, client) > before {
            return Answer::Ack;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Answer::Nothing
}

/// A zigbee2mqtt pendant on its own connection.
struct Pendant {
    client: AsyncClient,
    broker_dir: PathBuf,
    /// Adapter PUBACKs counted when the last message was sent.
    before: usize,
}

impl Pendant {
    async fn publish(&mut self, topic: String, payload: Vec<u8>) {
        self.before = pubacks_from(&self.broker_dir, ADAPTER_CLIENT);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("the device client queues the publish");
    }
}

impl Device for Pendant {
    async fn send(&mut self, n: u32) {
        let payload = format!("{{\"action\":\"emergency\",\"linkquality\":{n}}}");
        self.publish(format!("zigbee2mqtt/pendant-{n}"), payload.into_bytes())
            .await;
    }
    async fn send_malformed(&mut self) {
        self.publish("zigbee2mqtt/pendant-99".into(), b"{\"action\": ".to_vec())
            .await;
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        puback_after(&self.broker_dir, ADAPTER_CLIENT, self.before, within).await
    }
}

#[tokio::test]
async fn the_mqtt_adapter_keeps_the_adapter_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker_dir, broker) = logging_broker(tmp.path());
    let config: atgw_mqtt::config::AdapterConfig = toml::from_str(&format!(
        "name = \"zigbee\"\nhost = \"127.0.0.1\"\nport = {}\n\
         topics = [\"zigbee2mqtt/#\"]\nprofiles = [\"zigbee2mqtt\"]\n",
        broker.port
    ))
    .unwrap();
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/profiles"),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let mut n = 0;
    let (port, dir) = (broker.port, broker_dir.clone());
    let committed = testkit::run::<MqttAdapter, _, _, _>(config, site, || {
        n += 1;
        let dir = dir.clone();
        async move {
            // Publish only once the adapter is subscribed, or the broker drops the message.
            let subscribed = format!("Received SUBSCRIBE from {ADAPTER_CLIENT}");
            for _ in 0..500 {
                if broker_log(&dir).contains(&subscribed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut opts = MqttOptions::new(format!("kit-pendant-{n}"), "127.0.0.1", port);
            opts.set_clean_session(true);
            let (client, mut eventloop) = AsyncClient::new(opts, 16);
            tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
            Pendant {
                client,
                broker_dir: dir,
                before: 0,
            }
        }
    })
    .await
    .unwrap_or_else(|f| panic!("conformance: {f}\n{}", broker_log(&broker_dir)));
    let presses = committed
        .iter()
        .flat_map(|s| &s.events)
        .filter(|e| e.data.kind == atgw_sdk::Kind::PendantPress)
        .count();
    assert!(presses >= 3, "{committed:?}");
    drop(broker);
}

/// The MQTT sink's control connection's client id: `<gateway id>-<sink name>-control`.
const CONTROL_CLIENT: &str = "gw-kit-upstream-control";

/// A carer's handset on its own MQTT connection, acknowledging alerts on
/// `<topic_prefix>/alerts/<id>/ack`; what it hears is the control connection's PUBACK in the
/// broker's log (the handset's own PUBACK comes from the broker).
struct Handset {
    client: AsyncClient,
    broker_dir: PathBuf,
    before: usize,
    subscribed: bool,
}

impl Handset {
    async fn publish(&mut self, topic: &str, body: &str) {
        // Only once the control connection has subscribed, or the broker drops the command.
        let needle = format!("Received SUBSCRIBE from {CONTROL_CLIENT}");
        for _ in 0..500 {
            if self.subscribed {
                break;
            }
            self.subscribed = broker_log(&self.broker_dir).contains(&needle);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(self.subscribed, "the control connection never subscribed");
        self.before = pubacks_from(&self.broker_dir, CONTROL_CLIENT);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.as_bytes().to_vec())
            .await
            .expect("the handset client queues the publish");
    }
}

impl testkit::Commander for Handset {
    async fn acknowledge(&mut self, alert_id: &str) {
        self.publish(
            &format!("atgw/kit/alerts/{alert_id}/ack"),
            r#"{"by": "carer-kit"}"#,
        )
        .await;
    }
    async fn send_malformed(&mut self) {
        self.publish("atgw/kit/alerts/kit-alert-9/ack", "on my way")
            .await;
    }
    async fn answer(&mut self, within: Duration) -> Answer {
        puback_after(&self.broker_dir, CONTROL_CLIENT, self.before, within).await
    }
}

#[tokio::test]
async fn the_mqtt_sinks_control_connection_keeps_the_command_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let (broker_dir, broker) = logging_broker(tmp.path());
    let config: atgw_mqtt::config::SinkConfig = toml::from_str(&format!(
        "name = \"upstream\"\nhost = \"127.0.0.1\"\nport = {}\ntopic_prefix = \"atgw/kit\"\n",
        broker.port
    ))
    .unwrap();
    let site = Site {
        gateway_id: "gw-kit".into(),
        profiles_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/profiles"),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let mut opts = MqttOptions::new("kit-handset", "127.0.0.1", broker.port);
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let mut handset = Handset {
        client,
        broker_dir: broker_dir.clone(),
        before: 0,
        subscribed: false,
    };
    testkit::run_commands::<atgw_mqtt::component::MqttSink, _>(config, site, &mut handset)
        .await
        .unwrap_or_else(|f| panic!("conformance: {f}\n{}", broker_log(&broker_dir)));
    drop(broker);
}
