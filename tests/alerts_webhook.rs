//! Alerts reach care teams' webhooks, signed; escalate until a person acknowledges through the
//! local API; survive a receiver outage with a stable `webhook-id`; a 410 disables the target
//! and raises a gateway alert; alarms overtake a telemetry backlog; vital signs and
//! supervision raise and clear alerts.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

struct Rig {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    gw: Gateway,
    carers: Receiver,
    senior: Receiver,
    api: String,
    token: String,
}

async fn rig(policy: &str, extra: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let carers = Receiver::start().await;
    let senior = Receiver::start().await;
    let (api_cfg, api, token) = api_block(dir.path());
    let text = config(
        dir.path(),
        broker.port,
        &format!(
            "{}{}\n[[route]]\nname = \"carers\"\nsinks = [\"carers\"]\n\n[[route]]\nname = \"senior\"\nsinks = [\"senior\"]\n{policy}{api_cfg}{extra}",
            webhook_sink(dir.path(), "carers", &carers.url()),
            webhook_sink(dir.path(), "senior", &senior.url()),
        ),
    );
    let gw = Gateway::start(dir.path(), &text);
    gw.wait_subscribed().await;
    Rig {
        _dir: dir,
        broker,
        gw,
        carers,
        senior,
        api,
        token,
    }
}

const ESCALATING: &str = r#"
[[policy]]
name = "alarms"
match = { priority = ["high"] }
notify = ["carers"]
escalate = [{ after = "2s", notify = ["senior"] }]
repeat = "3s"
"#;

fn reasons(r: &Receiver) -> Vec<String> {
    r.delivered()
        .iter()
        .filter_map(|e| e["data"]["alert"]["reason"].as_str().map(str::to_owned))
        .collect()
}

impl Rig {
    /// Waits until `who` has received a notification with this `data.alert.reason`.
    async fn told(&self, who: &Receiver, reason: &str, within_secs: u64, what: &str) {
        wait_until_async(Duration::from_secs(within_secs), || {
            reasons(who).iter().any(|r| r == reason)
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: {:?}\n{}", reasons(who), self.gw.log_text()));
    }
}

/// The SOS button of room 12 pressed (or any other payload from it).
async fn from_pendant(devices: &Publisher, payload: &str) {
    devices
        .send("zigbee2mqtt/0xa4c13899607febd1", payload.to_owned())
        .await;
}

async fn api(rig: &Rig, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("{}{path}", rig.api))
        .bearer_auth(&rig.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pendant_press_reaches_the_carers_webhook_escalates_and_is_acknowledged_and_resolved_via_the_api()
 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut rig = rig(ESCALATING, "").await;
    let devices = Publisher::connect(rig.broker.port, "webhook-devices").await;
    from_pendant(&devices, r#"{"action":"emergency"}"#).await;

    rig.told(&rig.carers, "raised", 20, "carers' webhook got nothing")
        .await;
    let first = rig.carers.received()[0].clone();
    assert!(first.signature.starts_with("v1,"), "signed: {first:?}");
    assert_eq!(
        first.webhook_id,
        first.json["id"].as_str().unwrap(),
        "webhook-id is the event id"
    );
    let alert_id = first.json["correlationid"].as_str().unwrap().to_owned();
    assert!(rig.senior.received().is_empty(), "senior not told yet");

    rig.told(&rig.senior, "ack_timeout", 20, "no escalation to tier 2")
        .await;
    rig.told(&rig.carers, "repeat", 20, "no repeat").await;

    // Without the token: refused.
    let resp = reqwest::Client::new()
        .get(format!("{}/alerts", rig.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (s, v) = api(&rig, reqwest::Method::GET, "/alerts", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["alerts"][0]["id"], alert_id.as_str());
    assert_eq!(v["alerts"][0]["level"], 1);

    let (s, v) = api(
        &rig,
        reqwest::Method::POST,
        &format!("/alerts/{alert_id}/ack"),
        Some(json!({"by": "carer-3"})),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (200, Some("acknowledged")),
        "{v}"
    );
    rig.told(
        &rig.senior,
        "acknowledged",
        20,
        "everyone notified hears of the ack",
    )
    .await;
    let paged = |r: &Receiver| {
        reasons(r)
            .iter()
            .filter(|x| matches!(x.as_str(), "repeat" | "ack_timeout"))
            .count()
    };
    let before = (paged(&rig.carers), paged(&rig.senior));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        (paged(&rig.carers), paged(&rig.senior)),
        before,
        "no repeats or escalations after the ack: {:?}",
        reasons(&rig.carers)
    );

    let (s, v) = api(
        &rig,
        reqwest::Method::POST,
        &format!("/alerts/{alert_id}/resolve"),
        Some(json!({"by": "nurse-1", "outcome": "assisted", "note": "helped back to bed"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["outcome"].as_str(),
            v["acknowledged_by"].as_str(),
            v["resolved_by"].as_str()
        ),
        (
            Some("resolved"),
            Some("assisted"),
            Some("carer-3"),
            Some("nurse-1")
        )
    );
    let (s, v) = api(
        &rig,
        reqwest::Method::POST,
        &format!("/alerts/{alert_id}/resolve"),
        Some(json!({"by": "nurse-1", "outcome": "assisted"})),
    )
    .await;
    assert_eq!(s, 409, "resolving twice is refused: {v}");
    let (s, _) = api(
        &rig,
        reqwest::Method::POST,
        "/alerts/nope/ack",
        Some(json!({"by": "x"})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = api(
        &rig,
        reqwest::Method::POST,
        &format!("/alerts/{alert_id}/resolve"),
        Some(json!({"by": "x", "outcome": "dunno"})),
    )
    .await;
    assert!(s == 422 || s == 409);

    // The CLI sees the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["alerts", "--config"])
        .arg(&rig.gw.config)
        .args(["list", "--all", "--json"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(listed["alerts"][0]["status"], "resolved");

    let schema = schema();
    for e in rig
        .carers
        .delivered()
        .iter()
        .chain(rig.senior.delivered().iter())
    {
        assert_schema_valid(&schema, e);
    }
    rig.broker.stop();
    let _ = &mut rig.gw;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_delays_but_never_loses_and_keeps_the_webhook_id() {
    let rig = rig(
        ESCALATING
            .replace("repeat = \"3s\"", "repeat = \"1h\"")
            .replace("\"2s\"", "\"1h\"")
            .as_str(),
        "",
    )
    .await;
    rig.carers.set_status(500);
    let devices = Publisher::connect(rig.broker.port, "outage-devices").await;
    from_pendant(&devices, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || rig.carers.received().len() >= 2)
        .await
        .expect("retried");
    rig.carers.set_status(200);
    wait_until_async(Duration::from_secs(30), || {
        !rig.carers.delivered().is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("never delivered after recovery:\n{}", rig.gw.log_text()));
    let all = rig.carers.received();
    let ids: std::collections::HashSet<&str> = all.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every attempt carried the same webhook-id: {ids:?}"
    );
    assert!(all.iter().any(|r| r.answered == 500) && all.last().unwrap().answered == 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_target_and_raises_a_gateway_alert() {
    let rig = rig(ESCALATING, "").await;
    rig.carers.set_status(410);
    let upstream = Upstream::start(rig.broker.port, "atgw/oakview/events/#").await;
    let devices = Publisher::connect(rig.broker.port, "gone-devices").await;
    from_pendant(&devices, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || {
        upstream.events().iter().any(|e| {
            e["source"] == "urn:atgw:gw-test:gateway" && e["data"]["kind"] == "device_fault"
        })
    })
    .await
    .unwrap_or_else(|_| panic!("no gateway alert:\n{}", rig.gw.log_text()));
    let tries = rig.carers.received().len();
    devices
        .send("zigbee2mqtt/0xa4c13899607febd1", r#"{"action":"sos"}"#)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rig.carers.received().len(),
        tries,
        "nothing more is sent to a disabled target"
    );
    let pending: i64 = rig
        .gw
        .journal()
        .query_row(
            "SELECT count(*) FROM outbox WHERE sink = 'carers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(pending >= 1, "its undelivered events are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fall_overtakes_fifty_thousand_queued_telemetry_events() {
    const N: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let slow = Receiver::start().await;
    slow.delay_ms.store(20, std::sync::atomic::Ordering::SeqCst);
    let gw = Gateway::start(
        dir.path(),
        &config(
            dir.path(),
            broker.port,
            &webhook_sink(dir.path(), "console", &slow.url()),
        ),
    );
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "telemetry-devices").await;
    for i in 0..N {
        let body = format!(
            r#"{{"type":"reportAttribute","mac":"DC:DA:0C:5A:80:44","data":{{"attribute":"Oximeter JUMPER","value":{{"device_list":[{{"scan_time":{},"ble_addr":"aa{:010}","pulse":70,"spo2":97,"pi":40}}]}}}}}}"#,
            1_800_000_000 + i,
            i % 500
        );
        devices.send("dusun_pub", body).await;
    }
    wait_until_async(Duration::from_secs(120), || gw.event_count() >= N as i64)
        .await
        .unwrap_or_else(|_| panic!("only {} journaled\n{}", gw.event_count(), gw.log_text()));
    let before = slow.received().len();
    devices
        .send(
            "zigbee2mqtt/0xdc8e95fffe4dc3dd",
            r#"{"fall_down_status":"fall","presence":true}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(30), || {
        slow.delivered().iter().any(|e| e["data"]["kind"] == "fall")
    })
    .await
    .unwrap_or_else(|_| panic!("the fall never arrived"));
    let got = slow.delivered();
    let at = got
        .iter()
        .position(|e| e["data"]["kind"] == "fall")
        .unwrap();
    // Deliveries already in flight when the fall arrived (the sink's window) may land first;
    // nothing queued behind them may.
    assert!(
        at - before < 64,
        "the fall waited behind {} queued telemetry events",
        at - before
    );
    // What the fall overtook: the telemetry still queued when it was sent (the slow sink
    // drains while the 50,000 are journaled, faster or slower with the machine's load).
    assert!(
        N - before > 25_000,
        "only {} telemetry events were still queued when the fall was sent",
        N - before
    );
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oximeter_raises_spo2_low_only_after_persistence_and_records_a_persistent_recovery_on_the_open_alert()
 {
    let rig = rig(
        "\n[[policy]]\nmatch = { kind = [\"spo2_low\"] }\nnotify = [\"carers\"]\n",
        "\n[[device]]\nid = \"oximeter-14\"\nadapter = \"zigbee\"\nmatch = { device = \"ff23041920b4\" }\nresident = \"res-0057\"\nlocation = { area = \"east\", room = \"14\" }\n",
    )
    .await;
    let devices = Publisher::connect(rig.broker.port, "oximeter-devices").await;
    let reading = |t: u64, spo2: u32, pulse: u32| {
        format!(
            r#"{{"time":{t},"type":"reportAttribute","mac":"DC:DA:0C:5A:80:44","data":{{"attribute":"Oximeter JUMPER","value":{{"device_list":[{{"scan_time":{t},"ble_addr":"ff23041920b4","pulse":{pulse},"spo2":{spo2},"pi":40}}]}}}}}}"#
        )
    };
    let spo2_low = |g: &Gateway| -> Vec<(String, String)> {
        let c = g.journal();
        let mut s = c
            .prepare("SELECT phase, json FROM events WHERE json_extract(json, '$.type') = 'atgw.spo2_low' ORDER BY seq")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let t0 = 1_836_946_958u64;
    devices.send("dusun_pub", reading(t0, 96, 72)).await;
    devices.send("dusun_pub", reading(t0 + 10, 88, 104)).await;
    devices.send("dusun_pub", reading(t0 + 20, 88, 104)).await;
    wait_until_async(Duration::from_secs(20), || rig.gw.event_count() >= 3)
        .await
        .unwrap();
    assert!(
        spo2_low(&rig.gw).is_empty(),
        "two low readings are not yet persistent"
    );
    devices.send("dusun_pub", reading(t0 + 30, 88, 104)).await;
    wait_until_async(Duration::from_secs(20), || !spo2_low(&rig.gw).is_empty())
        .await
        .expect("raised after the third");
    let (phase, json) = spo2_low(&rig.gw)[0].clone();
    assert_eq!(phase, "raised");
    let e: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(e["data"]["threshold"]["rule"], "news2-spo2-scale1-score3");
    assert_eq!(e["data"]["location"]["room"], "14");
    // The "finger out" sentinel never breaches and changes nothing; one normal reading is no
    // recovery either: it takes the same persistence as the raise (three readings).
    devices.send("dusun_pub", reading(t0 + 40, 127, 127)).await;
    devices.send("dusun_pub", reading(t0 + 50, 96, 72)).await;
    wait_until_async(Duration::from_secs(20), || rig.gw.event_count() >= 6)
        .await
        .unwrap();
    assert_eq!(
        spo2_low(&rig.gw).len(),
        1,
        "one normal reading clears nothing"
    );
    devices.send("dusun_pub", reading(t0 + 60, 96, 72)).await;
    devices.send("dusun_pub", reading(t0 + 70, 97, 72)).await;
    wait_until_async(Duration::from_secs(20), || spo2_low(&rig.gw).len() >= 2)
        .await
        .expect("a persistent recovery clears");
    let all = spo2_low(&rig.gw);
    let phases: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(phases, vec!["raised", "cleared"], "{all:#?}");
    let cleared: Value = serde_json::from_str(&all[1].1).unwrap();
    assert_eq!(
        cleared["data"]["observations"][0]["value"], 97.0,
        "cleared by the third recovered reading, not by the sentinel"
    );
    // A vital-sign alert is about a resident: the recovery is recorded and the alert stays
    // open until a person acknowledges it.
    rig.told(
        &rig.carers,
        "device_restored",
        20,
        "the recovery was not recorded on the alert",
    )
    .await;
    let (_, v) = api(&rig, reqwest::Method::GET, "/alerts", None).await;
    assert_eq!(v["alerts"][0]["status"], "open", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_supervised_device_raises_device_offline_and_its_next_message_clears_it() {
    let rig = rig(
        "\n[[policy]]\nmatch = { kind = [\"device_offline\"] }\nnotify = [\"carers\"]\n",
        "\n[[device]]\nid = \"pendant-12\"\nadapter = \"zigbee\"\nmatch = { device = \"0xa4c13899607febd1\" }\nlocation = { area = \"east\", room = \"12\" }\ncheck_in = \"2s\"\n",
    )
    .await;
    let devices = Publisher::connect(rig.broker.port, "supervised-devices").await;
    from_pendant(&devices, r#"{"battery":90,"linkquality":50}"#).await;
    rig.told(
        &rig.carers,
        "raised",
        20,
        "no device_offline after a missed check-in",
    )
    .await;
    let raised = rig.carers.delivered()[0].clone();
    assert_eq!(raised["data"]["kind"], "device_offline");
    assert_eq!(raised["data"]["device"]["id"], "pendant-12");
    assert_eq!(raised["data"]["priority"], "medium");
    from_pendant(&devices, r#"{"battery":90,"linkquality":51}"#).await;
    rig.told(
        &rig.carers,
        "device_cleared",
        20,
        "not cleared by the next message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_tells_the_next_tier_at_once_and_raises_a_gateway_alert_until_it_recovers()
 {
    // Tier 2 is an hour away: only the failing deliveries can bring it forward.
    let rig = rig(
        &ESCALATING
            .replace("repeat = \"3s\"", "repeat = \"1h\"")
            .replace("\"2s\"", "\"1h\""),
        "\n[alerts]\nescalate_after_failed_attempts = 3\nsink_failing_alert_after = \"3s\"\n",
    )
    .await;
    rig.carers.set_status(500);
    let devices = Publisher::connect(rig.broker.port, "failing-devices").await;
    from_pendant(&devices, r#"{"action":"emergency"}"#).await;
    rig.told(
        &rig.senior,
        "delivery_failed",
        30,
        "tier 2 was not told while the carers' webhook failed",
    )
    .await;
    assert!(
        rig.carers.received().len() >= 3,
        "escalated after the configured failed attempts, not before"
    );
    let sink_faults = |g: &Gateway| -> Vec<String> {
        g.column(
            "SELECT phase FROM events WHERE kind = 'device_fault'
             AND json_extract(json, '$.data.device.id') = 'sink:carers'
             AND json_extract(json, '$.source') = 'urn:atgw:gw-test:gateway' ORDER BY seq",
        )
    };
    wait_until_async(Duration::from_secs(20), || {
        sink_faults(&rig.gw) == ["raised"]
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no gateway alert for the failing sink: {:?}",
            sink_faults(&rig.gw)
        )
    });

    rig.carers.set_status(200);
    wait_until_async(Duration::from_secs(30), || {
        sink_faults(&rig.gw) == ["raised", "cleared"]
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the gateway alert was not cleared: {:?}",
            sink_faults(&rig.gw)
        )
    });
    // The raise itself arrives at its next retry (backoff), not necessarily first.
    rig.told(
        &rig.carers,
        "raised",
        30,
        "the carers still get the alert once their webhook is back",
    )
    .await;
    let escalations = reasons(&rig.senior)
        .iter()
        .filter(|r| *r == "delivery_failed")
        .count();
    assert_eq!(escalations, 1, "one tier, told once");
}

/// The gateway's own reports about its sinks (not the alert lifecycle events they open).
fn sink_fault_phases(g: &Gateway) -> Vec<(String, String)> {
    let c = g.journal();
    let mut s = c
        .prepare(
            "SELECT json_extract(json, '$.data.device.id'), phase FROM events
             WHERE kind = 'device_fault' AND json_extract(json, '$.data.device.id') LIKE 'sink:%'
             AND json_extract(json, '$.source') = 'urn:atgw:gw-test:gateway' ORDER BY seq",
        )
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_period_raises_no_sink_alert_and_a_really_failing_sink_raises_exactly_one() {
    let rig = rig(
        &ESCALATING
            .replace("repeat = \"3s\"", "repeat = \"1h\"")
            .replace("\"2s\"", "\"1h\""),
        "\n[alerts]\nsink_failing_alert_after = \"2s\"\n",
    )
    .await;
    let devices = Publisher::connect(rig.broker.port, "quiet-devices").await;
    // Longer than the threshold with nothing to deliver: a quiet night.
    tokio::time::sleep(Duration::from_secs(4)).await;
    from_pendant(&devices, r#"{"action":"emergency"}"#).await;
    rig.told(&rig.carers, "raised", 20, "carers' webhook got nothing")
        .await;
    // Every sink (webhooks, upstream MQTT, file) has had its chance to misjudge the silence.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sink_fault_phases(&rig.gw),
        [],
        "a quiet period is not a sink fault:\n{}",
        rig.gw.log_text()
    );
    let log = rig.gw.log_text();
    assert!(
        !log.contains("ERROR") && !log.contains("raising a gateway alert"),
        "no error after a quiet period:\n{log}"
    );

    // Now the carers' receiver really fails with an event waiting for it.
    rig.carers.set_status(500);
    // Another resident's pendant: a new alert, so a new notification for the carers.
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607f0014",
            r#"{"action":"emergency"}"#.to_owned(),
        )
        .await;
    wait_until_async(Duration::from_secs(20), || {
        !sink_fault_phases(&rig.gw).is_empty()
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no gateway alert for a failing sink:\n{}",
            rig.gw.log_text()
        )
    });
    // Well past the threshold again: still the one alert.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let carers = ("sink:carers".to_owned(), "raised".to_owned());
    assert_eq!(sink_fault_phases(&rig.gw), std::slice::from_ref(&carers));
    assert_eq!(
        rig.gw.log_text().matches("raising a gateway alert").count(),
        1,
        "one error line for one failing sink"
    );

    rig.carers.set_status(200);
    wait_until_async(Duration::from_secs(60), || {
        sink_fault_phases(&rig.gw).len() >= 2
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not cleared after recovery: {:?}",
            sink_fault_phases(&rig.gw)
        )
    });
    assert_eq!(
        sink_fault_phases(&rig.gw),
        [carers, ("sink:carers".to_owned(), "cleared".to_owned())],
        "cleared once, after delivery resumed"
    );
}
