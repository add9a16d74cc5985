//! A second client with the gateway's MQTT client id (a copied config, a second gateway with
//! the same `[gateway] id`): MQTT lets each connect take over the other's session, so the broker
//! keeps closing atgw's connection right after accepting it. atgw must say what is probably
//! happening once, and back off instead of logging a "connection lost" line per takeover.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::{AsyncClient, MqttOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_taken_over_again_and_again_is_named_once_and_backed_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;

    // The impostor: the adapter's client id (`<gateway id>-<adapter name>`), reconnecting at
    // once whenever it is kicked off, as a second gateway with a tight retry loop would.
    let port = broker.port;
    let impostor = tokio::spawn(async move {
        let mut o = MqttOptions::new("gw-test-zigbee", "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        let (_client, mut el) = AsyncClient::new(o, 10);
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(12)).await;
    impostor.abort();

    let log = gw.log_text();
    let hints = log
        .matches("most likely another client uses the client id `gw-test-zigbee`")
        .count();
    let lost = log
        .lines()
        .filter(|l| l.contains("adapter=zigbee") && l.contains("broker connection lost"))
        .count();
    let connects = log
        .lines()
        .filter(|l| l.contains("adapter=zigbee") && l.contains("connected to broker"))
        .count();
    assert_eq!(hints, 1, "the cause is named once:\n{log}");
    assert!(
        lost <= 3,
        "{lost} 'connection lost' lines: the takeover loop is not backed off or not quiet:\n{log}"
    );
    assert!(
        connects >= 3,
        "the takeover happened ({connects} connects):\n{log}"
    );
}
