//! The local API's bounds (issue 11 item 7): `[api] max_connections` and `idle_timeout` keep
//! idle connections from holding the gateway's memory, and `/api/v1/devices` is paginated.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Rig {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    gw: Gateway,
    /// `http://127.0.0.1:<port>/api/v1`
    api: String,
    token: String,
}

async fn rig(api_extra: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (api_cfg, api, token) = api_block(dir.path());
    let text = config(dir.path(), broker.port, &format!("{api_cfg}{api_extra}"));
    let gw = Gateway::start(dir.path(), &text);
    gw.wait_subscribed().await;
    Rig {
        _dir: dir,
        broker,
        gw,
        api,
        token,
    }
}

async fn get(rig: &Rig, path: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", rig.api))
        .bearer_auth(&rig.token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_in_pages_with_a_cursor() {
    let rig = rig("").await;
    let devices = Publisher::connect(rig.broker.port, "paged-devices").await;
    for n in 0..5 {
        devices
            .send(
                &format!("zigbee2mqtt/0x00000000000000{n:02}"),
                r#"{"battery":90,"linkquality":50}"#.to_owned(),
            )
            .await;
    }
    wait_until_async(Duration::from_secs(20), || {
        rig.gw
            .column::<i64>("SELECT count(*) FROM devices")
            .first()
            .is_some_and(|n| *n >= 5)
    })
    .await
    .expect("five devices heard");
    let all: Vec<String> = rig
        .gw
        .column("SELECT device_id FROM devices ORDER BY device_id");

    let (s, first) = get(&rig, "/devices?limit=2").await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(ids(&first), all[..2]);
    let next = first["next"]
        .as_str()
        .expect("a cursor while there is more");
    let (_, second) = get(&rig, &format!("/devices?limit=2&after={next}")).await;
    assert_eq!(ids(&second), all[2..4]);
    let next = second["next"].as_str().unwrap();
    let (_, last) = get(&rig, &format!("/devices?limit=2&after={next}")).await;
    assert_eq!(ids(&last), all[4..]);
    assert_eq!(last["next"], Value::Null, "no cursor on the last page");

    // The default page is 100, and no request gets more than 1000.
    let (_, default) = get(&rig, "/devices").await;
    assert_eq!(ids(&default), all);
    let (s, _) = get(&rig, "/devices?limit=100000").await;
    assert_eq!(s, 200, "an over-large limit is capped, not refused");
}

/// An idle connection: connected, nothing sent.
async fn idle(api: &str) -> TcpStream {
    let addr = api
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .to_owned();
    TcpStream::connect(addr).await.unwrap()
}

/// `GET /healthz` on a fresh connection; the status line, or `None` without an answer.
async fn healthz(api: &str, within: Duration) -> Option<String> {
    let mut s = idle(api).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(within, s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_closed_after_the_idle_timeout_and_the_cap_is_counted_and_alerted_once()
 {
    let rig = rig("max_connections = 8\nidle_timeout = \"2s\"\n").await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(idle(&rig.api).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every slot is held: a ninth client waits (it is not served beside them).
    assert_eq!(
        healthz(&rig.api, Duration::from_millis(500)).await,
        None,
        "served beyond max_connections"
    );
    // The idle ones are closed by the gateway after idle_timeout, and a waiting client gets
    // its answer then.
    let started = Instant::now();
    let answer = healthz(&rig.api, Duration::from_secs(10)).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served once the idle connections timed out, took {:?}",
        started.elapsed()
    );
    for mut c in held {
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b))
            .await
            .expect("closed by the gateway")
            .unwrap_or(0);
        assert_eq!(n, 0, "an idle connection is closed, not answered");
    }
    assert!(
        rig.gw.log_text().contains("max_connections"),
        "the cap is logged:\n{}",
        rig.gw.log_text()
    );
    // Reaching the cap is counted and raised once as a gateway alert, never silent.
    let alerts = || {
        rig.gw.column::<String>(
            "SELECT json_extract(json, '$.data.codes.vendor') FROM events
             WHERE device_id = 'gateway:gw-test:api_connections'",
        )
    };
    wait_until_async(Duration::from_secs(5), || !alerts().is_empty())
        .await
        .unwrap_or_else(|_| panic!("no gateway alert:\n{}", rig.gw.log_text()));
    assert_eq!(alerts(), ["api_connections_capped"], "one gateway alert");
    let root = rig.api.trim_end_matches("/api/v1");
    let metrics = reqwest::Client::new()
        .get(format!("{root}/metrics"))
        .bearer_auth(&rig.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let capped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("atgw_api_connections_capped_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cap counter:\n{metrics}"));
    assert!(capped >= 1, "the cap is counted: {capped}");
}
