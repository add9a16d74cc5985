//! Shelving through the real binary, a real broker and the local API: a device's technical
//! alerts are held for a bounded time with a reason, announced at start and end, never its
//! resident's alarm; the end comes on time across a `kill -9`, and what was held then pages.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const BED: &str = "0xa4c1389960700012";

async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Distinct raise notifications a route's subscriber got for alerts of `kind`, as reasons.
fn raised(up: &Upstream, kind: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    up.events()
        .into_iter()
        .filter(|e| e["type"] == "atgw.alert.raised" && e["data"]["kind"] == kind)
        .filter(|e| seen.insert(e["id"].as_str().unwrap_or_default().to_owned()))
        .filter_map(|e| e["data"]["alert"]["reason"].as_str().map(str::to_owned))
        .collect()
}

/// The journal's `shelved` announcements, as (phase, message).
fn announcements(gw: &Gateway) -> Vec<(String, String)> {
    let phases: Vec<String> =
        gw.column("SELECT phase FROM events WHERE kind = 'shelved' ORDER BY seq");
    let texts: Vec<String> = gw.column(
        "SELECT json_extract(json, '$.data.message') FROM events WHERE kind = 'shelved' ORDER BY seq",
    );
    phases.into_iter().zip(texts).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shelved_sensor_holds_its_tamper_alert_never_the_pendant_and_the_shelf_ends_on_time_across_a_kill_9()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let senior = Upstream::start(broker.port, "atgw/senior/#").await;
    let (api_cfg, base, token) = api_block(dir.path());
    let config = format!(
        "{}
[[policy]]
name = \"technical\"
match = {{ kind = [\"tamper\", \"low_battery\", \"device_fault\"] }}
notify = [\"carers\"]
escalate = [{{ after = \"2s\", notify = [\"senior\"] }}]

[[device]]
id = \"bed-12\"
adapter = \"zigbee\"
match = {{ device = \"{BED}\" }}
location = {{ area = \"West wing\", room = \"12\" }}
{api_cfg}",
        alert_config(dir.path(), broker.port, "2s", "1h")
    );
    let mut gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;

    // Refused: no end, too long, no reason, an unknown device, nothing to unshelve.
    let post = reqwest::Method::POST;
    for (path, body, want) in [
        (
            "/devices/bed-12/shelve",
            json!({"by": "sam", "reason": "faulty"}),
            422,
        ),
        (
            "/devices/bed-12/shelve",
            json!({"by": "sam", "reason": "faulty", "for": "48h"}),
            422,
        ),
        (
            "/devices/bed-12/shelve",
            json!({"by": "sam", "for": "1h"}),
            422,
        ),
        (
            "/devices/nobody/shelve",
            json!({"by": "sam", "reason": "x", "for": "1h"}),
            404,
        ),
        ("/devices/bed-12/unshelve", json!({"by": "sam"}), 409),
    ] {
        let (status, v) = api(&base, &token, post.clone(), path, Some(body.clone())).await;
        assert_eq!(status, want, "{path} {body}: {v}");
    }

    let (status, v) = api(
        &base,
        &token,
        post.clone(),
        "/devices/bed-12/shelve",
        Some(json!({"by": "sam", "reason": "sensor faulty, technician booked", "for": "5s"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["device_id"], "bed-12");
    let (_, list) = api(&base, &token, reqwest::Method::GET, "/shelves", None).await;
    assert_eq!(list["shelves"].as_array().map(Vec::len), Some(1), "{list}");
    let started = announcements(&gw);
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0].0, "raised");
    assert!(
        started[0]
            .1
            .contains("shelved for 5 s by sam: sensor faulty, technician booked")
            && started[0].1.ends_with("Room 12, West wing"),
        "{started:?}"
    );
    // Announced to the routes (no default_route: every route).
    wait_until_async(Duration::from_secs(10), || {
        carers
            .events()
            .iter()
            .any(|e| e["data"]["kind"] == "shelved")
    })
    .await
    .unwrap_or_else(|_| panic!("the shelf was not announced to the carers"));

    // The sensor's cover is opened: journaled, held. The resident presses its button: paged.
    let devices = Publisher::connect(broker.port, "shelving-devices").await;
    devices
        .send(&format!("zigbee2mqtt/{BED}"), r#"{"tamper":true}"#)
        .await;
    devices
        .send(&format!("zigbee2mqtt/{BED}"), r#"{"action":"emergency"}"#)
        .await;
    wait_until_async(Duration::from_secs(10), || {
        !raised(&carers, "pendant_press").is_empty()
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the pendant press on a shelved device did not page:\n{}",
            gw.log_text()
        )
    });
    let held: Vec<i64> =
        gw.column("SELECT shelved FROM alerts WHERE kind = 'tamper' AND device_id = 'bed-12'");
    assert_eq!(held, [1], "the tamper alert is opened and held");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        raised(&carers, "tamper").is_empty(),
        "held: {:?}",
        raised(&carers, "tamper")
    );
    assert!(
        !senior
            .events()
            .iter()
            .any(|e| e["data"]["kind"] == "tamper"),
        "a held alert does not escalate"
    );

    // Killed; down past the shelf's end.
    gw.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarted_ms = jiff::Timestamp::now().as_millisecond();
    gw.restart();
    wait_until_async(Duration::from_secs(20), || {
        raised(&carers, "tamper") == ["unshelved"]
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the held tamper alert did not page after the shelf ended: {:?}\n{}",
            raised(&carers, "tamper"),
            gw.log_text()
        )
    });
    let ended = announcements(&gw);
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(ended[1].0, "cleared");
    assert!(ended[1].1.contains("its time is up"), "{ended:?}");
    let ended_ms: Vec<i64> =
        gw.column("SELECT time_ms FROM events WHERE kind = 'shelved' AND phase = 'cleared'");
    assert!(
        ended_ms[0] - restarted_ms < 3_000,
        "ended at start, {} ms after the restart",
        ended_ms[0] - restarted_ms
    );
    // And it escalates from then, like any alert.
    wait_until_async(Duration::from_secs(20), || {
        senior
            .events()
            .iter()
            .any(|e| e["data"]["kind"] == "tamper" && e["data"]["alert"]["reason"] == "ack_timeout")
    })
    .await
    .unwrap_or_else(|_| panic!("the unshelved alert never escalated:\n{}", gw.log_text()));
    let (_, list) = api(&base, &token, reqwest::Method::GET, "/shelves", None).await;
    assert_eq!(list["shelves"].as_array().map(Vec::len), Some(0), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_a_device_off_the_shelf_early_pages_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Upstream::start(broker.port, "atgw/carers/#").await;
    let (api_cfg, base, token) = api_block(dir.path());
    let config = format!(
        "{}
[[policy]]
name = \"technical\"
match = {{ kind = [\"tamper\"] }}
notify = [\"carers\"]

[[device]]
id = \"bed-12\"
adapter = \"zigbee\"
match = {{ device = \"{BED}\" }}
location = {{ area = \"West wing\", room = \"12\" }}
{api_cfg}",
        alert_config(dir.path(), broker.port, "2s", "1h")
    );
    let gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "shelving-early").await;
    // Open before the shelf: it stops paging once shelved.
    devices
        .send(&format!("zigbee2mqtt/{BED}"), r#"{"tamper":true}"#)
        .await;
    wait_until_async(Duration::from_secs(10), || {
        raised(&carers, "tamper") == ["raised"]
    })
    .await
    .unwrap_or_else(|_| panic!("no tamper alert:\n{}", gw.log_text()));
    let (status, v) = api(
        &base,
        &token,
        reqwest::Method::POST,
        "/devices/bed-12/shelve",
        Some(json!({"by": "sam", "reason": "cover broken", "for": "1h"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let timers: Vec<i64> = gw.column(
        "SELECT count(*) FROM alert_timers t JOIN alerts a ON a.id = t.alert_id WHERE a.kind = 'tamper'",
    );
    assert_eq!(timers, [0], "a shelved alert has no escalation timers");
    let (status, v) = api(
        &base,
        &token,
        reqwest::Method::POST,
        "/devices/bed-12/unshelve",
        Some(json!({"by": "tech-1"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ended_by"], "tech-1");
    wait_until_async(Duration::from_secs(10), || {
        raised(&carers, "tamper") == ["raised", "unshelved"]
    })
    .await
    .unwrap_or_else(|_| panic!("{:?}\n{}", raised(&carers, "tamper"), gw.log_text()));
    let ended = announcements(&gw);
    assert!(
        ended[1].1.contains("taken off the shelf by tech-1"),
        "{ended:?}"
    );
}
