//! `atgw simulate mqtt` against the real daemon: every simulated message is acknowledged by
//! the broker, journaled, and followed through to the upstream sink.

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_mqtt_devices_are_followed_end_to_end_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let port = broker.port.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_atgw"))
            .args(["simulate", "mqtt", "--port", &port, "--kind", "mixed"])
            .args(["--devices", "20", "--count", "500", "--rate", "500"])
            .args(["--upstream-prefix", "atgw/oakview", "--settle", "30s"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n{}",
        gw.log_text()
    );
    assert!(
        stdout.contains("published 500 acked by the broker 500"),
        "{stdout}"
    );
    assert!(stdout.contains("upstream: 500 of 500 arrived"), "{stdout}");
    // 495 oximeter readings and 5 button presses, each journaled once: 500 distinct messages
    // and 500 rows (a duplicate would make the rows outnumber the messages).
    let (distinct, rows) = gw
        .journal()
        .query_row(
            "SELECT count(DISTINCT json_extract(json, '$.data.raw.payload.sim_seq')), count(*)
             FROM events WHERE json_extract(json, '$.data.raw.payload.sim_seq') IS NOT NULL",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap();
    assert_eq!((distinct, rows), (500, 500), "every message once");
}
