//! TLS towards the broker with a private CA and a client certificate, plus a password from a
//! file: atgw's device link and upstream link both work over it, and refuse a broker whose
//! certificate the CA did not sign.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn tls_config(dir: &Path, plain_port: u16, tls_port: u16, ca_prefix: &str) -> String {
    let d = dir.display();
    let tls = format!(
        r#"host = "127.0.0.1"
port = {tls_port}
username = "atgw"
password_file = "{d}/mqtt-password"
tls = {{ ca_file = "{d}/{ca_prefix}-ca.pem", cert_file = "{d}/good-client.pem", key_file = "{d}/good-client.key" }}"#
    );
    // The common config talks plain MQTT to `plain_port`; point both links at the TLS listener.
    config(dir, plain_port, "").replace(&format!("host = \"127.0.0.1\"\nport = {plain_port}"), &tls)
}

fn broker_with_tls(dir: &Path) -> Mosquitto {
    make_pki(dir, "good");
    let passwd = dir.join("broker-passwd");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["atgw", "s3cret-for-test"])
        .status()
        .expect("mosquitto_passwd (part of the mosquitto package)");
    assert!(status.success());
    write_mode(&dir.join("mqtt-password"), "s3cret-for-test\n", 0o600);
    let tls_port = atgw::tools::mosquitto::free_port().unwrap();
    let d = dir.display();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
         cafile {d}/good-ca.pem\ncertfile {d}/good-server.pem\nkeyfile {d}/good-server.key\n\
         require_certificate true\n# tls-port={tls_port}\n",
        passwd.display()
    );
    Mosquitto::start_with(&dir.join("broker"), "per_listener_settings true", &extra).unwrap()
}

fn tls_port_of(dir: &Path) -> u16 {
    let conf = std::fs::read_to_string(dir.join("broker/mosquitto.conf")).unwrap();
    conf.lines()
        .find_map(|l| l.strip_prefix("# tls-port="))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_links_work_over_tls_with_a_client_certificate_and_a_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = broker_with_tls(dir.path());
    let tls_port = tls_port_of(dir.path());
    // Test clients use the plain listener of the same broker; atgw uses only the TLS one.
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let gw = Gateway::start(
        dir.path(),
        &tls_config(dir.path(), broker.port, tls_port, "good"),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "tls-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency"}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(20), || upstream.count() >= 1)
        .await
        .unwrap_or_else(|_| panic!("nothing arrived over TLS:\n{}", gw.log_text()));
    let e = &upstream.events()[0];
    assert_eq!(e["data"]["kind"], "pendant_press");
    assert!(
        !gw.log_text().contains("s3cret-for-test"),
        "the password never reaches the log"
    );
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = broker_with_tls(dir.path());
    make_pki(dir.path(), "other");
    let tls_port = tls_port_of(dir.path());
    let gw = Gateway::start(
        dir.path(),
        &tls_config(dir.path(), broker.port, tls_port, "other"),
    );
    wait_until_async(Duration::from_secs(20), || {
        gw.log_text().contains("unreachable")
    })
    .await
    .unwrap_or_else(|_| panic!("the refusal is logged:\n{}", gw.log_text()));
    let log = gw.log_text();
    assert!(
        !log.contains("connected to broker"),
        "must not connect:\n{log}"
    );
    assert!(
        log.to_lowercase().contains("certificate"),
        "says why:\n{log}"
    );
    broker.stop();
}

#[test]
fn a_world_readable_password_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    write_mode(&dir.path().join("mqtt-password"), "pw\n", 0o644);
    make_pki(dir.path(), "good");
    let text = tls_config(dir.path(), 1883, 8883, "good");
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("readable by other users"), "{err}");
}
