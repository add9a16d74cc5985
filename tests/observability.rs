//! Health and metrics on the local API: `/readyz` follows the broker down and back up, and
//! `/metrics` is valid Prometheus text whose values match what happened (events in, dead
//! letters by reason, unresolved alerts, time to acknowledge, commit latency, outbox depth).
//! Real binary, real private Mosquitto.

mod common;

use std::time::Duration;

use common::*;
use prometheus_parse::{LineInfo, Scrape, Value as Sample};
use serde_json::{Value, json};

/// The API root (`api_block` hands out the `/api/v1` base).
fn root(api: &str) -> String {
    api.trim_end_matches("/api/v1").to_owned()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn readyz(root: &str) -> (u16, Value) {
    let resp = client().get(format!("{root}/readyz")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Scrapes `/metrics` with the token and parses it; every line must be a comment the parser
/// understands or a sample with a numeric value (the parser alone skips what it cannot read).
async fn scrape(root: &str, token: &str) -> Scrape {
    let resp = client()
        .get(format!("{root}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Empty => {}
            LineInfo::Sample { value, .. } => assert!(
                value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN",
                "non-numeric sample value: {line}"
            ),
            LineInfo::Ignored => panic!("not Prometheus text format: {line:?}\n{text}"),
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the one sample named `metric` carrying exactly `labels`.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<Sample> {
    let found: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| {
            x.metric == metric
                && x.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
        })
        .map(|x| &x.value)
        .collect();
    assert!(found.len() <= 1, "{metric}{labels:?} appears twice");
    found.first().map(|v| (*v).clone())
}

fn counter(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, metric, labels) {
        Some(Sample::Counter(v)) => v,
        other => panic!("{metric}{labels:?} is not a counter: {other:?}"),
    }
}

fn gauge(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, metric, labels) {
        Some(Sample::Gauge(v)) => v,
        other => panic!("{metric}{labels:?} is not a gauge: {other:?}"),
    }
}

/// `_count` or `_sum` of a histogram (the parser reports those as untyped).
fn histogram_part(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match value(s, metric, labels) {
        Some(Sample::Untyped(v)) => v,
        other => panic!("{metric}{labels:?}: {other:?}"),
    }
}

fn ready(v: &Value, component: &str) -> Option<bool> {
    v["components"][component]["ready"].as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_unready_when_the_broker_stops_and_ready_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (api_cfg, api, token) = api_block(dir.path());
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &api_cfg));
    gw.wait_subscribed().await;
    let root = root(&api);

    let mut last = (0, Value::Null);
    for _ in 0..200 {
        last = readyz(&root).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = last;
    assert_eq!(
        status, 200,
        "ready once connected, without a token: {body:#}"
    );
    assert_eq!(body["ready"], true);
    for c in ["adapter:zigbee", "sink:upstream", "sink:audit", "journal"] {
        assert_eq!(ready(&body, c), Some(true), "{c}: {body:#}");
    }
    assert_eq!(body["components"]["adapter:zigbee"]["connected"], true);
    assert_eq!(body["components"]["sink:upstream"]["backlog"], 0);

    // The broker goes away: the MQTT adapter and the upstream sink are not ready.
    broker.stop();
    let mut last = (0, Value::Null);
    for _ in 0..400 {
        last = readyz(&root).await;
        if last.0 == 503
            && ready(&last.1, "adapter:zigbee") == Some(false)
            && ready(&last.1, "sink:upstream") == Some(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = last;
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["ready"], false);
    assert_eq!(ready(&body, "adapter:zigbee"), Some(false), "{body:#}");
    assert_eq!(ready(&body, "sink:upstream"), Some(false), "{body:#}");
    assert_eq!(body["components"]["sink:upstream"]["connected"], false);
    assert_eq!(
        ready(&body, "sink:audit"),
        Some(true),
        "a file sink does not depend on the broker: {body:#}"
    );
    assert_eq!(ready(&body, "journal"), Some(true));

    // Back: ready again, and the lost connections are counted.
    broker.restart().unwrap();
    let mut last = (0, Value::Null);
    for _ in 0..600 {
        last = readyz(&root).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        last.0, 200,
        "ready again after the broker restart: {:#}",
        last.1
    );
    assert_eq!(ready(&last.1, "adapter:zigbee"), Some(true));
    assert_eq!(ready(&last.1, "sink:upstream"), Some(true));

    let m = scrape(&root, &token).await;
    for c in ["adapter:zigbee", "sink:upstream"] {
        assert!(
            counter(&m, "atgw_reconnects_total", &[("component", c)]) >= 1.0,
            "{c} reconnect counted"
        );
        assert_eq!(
            gauge(&m, "atgw_component_connected", &[("component", c)]),
            1.0
        );
    }
    drop(gw);
}

const POLICY: &str = r#"
[[route]]
name = "carers"
sinks = ["carers"]

[[policy]]
name = "alarms"
match = { priority = ["high"] }
notify = ["carers"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_events_dead_letters_alerts_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/#").await;
    let carers = Receiver::start().await;
    // A receiver that is down: every event routed to it stays in its outbox.
    let stuck = Receiver::start().await;
    stuck.set_status(503);
    let (api_cfg, api, token) = api_block(dir.path());
    let extra = format!(
        "{}{}{POLICY}{api_cfg}",
        webhook_sink(dir.path(), "carers", &carers.url()),
        webhook_sink(dir.path(), "stuck", &stuck.url()),
    );
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &extra));
    gw.wait_subscribed().await;
    let root = root(&api);

    // Without the token: refused (readiness stays open, metrics do not).
    let resp = client()
        .get(format!("{root}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let devices = Publisher::connect(broker.port, "metrics-devices").await;
    // Three pendant presses on three devices: three events, three high-priority alerts.
    for i in 1..=3 {
        devices
            .send(
                &format!("zigbee2mqtt/pull-cord-{i}"),
                format!(r#"{{"action":"emergency","seq":{i}}}"#),
            )
            .await;
    }
    // Two unparseable payloads and one no profile understands.
    devices.send("zigbee2mqtt/0xbad1", "{ not json").await;
    devices.send("zigbee2mqtt/0xbad2", "{ still not").await;
    devices
        .send("misc/unknown-device", r#"{"hello":"world"}"#)
        .await;
    wait_until_async(Duration::from_secs(20), || {
        let c = gw.journal();
        let alerts: i64 = c
            .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
            .unwrap_or(0);
        alerts == 3 && dead_letters(&gw).values().sum::<i64>() == 3
    })
    .await
    .unwrap_or_else(|_| panic!("inputs not journaled:\n{}", gw.log_text()));

    // Acknowledge one alert a second after it was raised, resolve another.
    let ids: Vec<String> = {
        let c = gw.journal();
        let mut s = c
            .prepare("SELECT id FROM alerts ORDER BY raised_ms")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let http = client();
    let post = |path: String, body: Value| {
        let req = http
            .post(format!("{api}{path}"))
            .bearer_auth(&token)
            .json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        post(format!("/alerts/{}/ack", ids[0]), json!({"by": "carer-3"})).await,
        200
    );
    assert_eq!(
        post(
            format!("/alerts/{}/resolve", ids[1]),
            json!({"by": "nurse-1", "outcome": "false_alarm"})
        )
        .await,
        200
    );
    // Acknowledging again is not a second time-to-acknowledge observation.
    assert_eq!(
        post(format!("/alerts/{}/ack", ids[0]), json!({"by": "carer-4"})).await,
        200
    );

    // Every event reaches upstream; none reaches the stuck receiver.
    let total_events = || gw.event_count();
    let mut m = scrape(&root, &token).await;
    for _ in 0..400 {
        let journal_events = total_events() as f64;
        if counter(&m, "atgw_events_out_total", &[("sink", "upstream")]) == journal_events
            && gauge(&m, "atgw_outbox_depth", &[("sink", "stuck")]) == journal_events
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape(&root, &token).await;
    }
    let journal_events = total_events() as f64;
    // 3 presses, 3 raised, 1 acknowledged, 1 resolved (the second ack changes nothing).
    assert!(journal_events >= 8.0, "{journal_events}");

    assert_eq!(
        counter(&m, "atgw_events_in_total", &[("adapter", "zigbee")]),
        3.0,
        "events in == presses published"
    );
    assert_eq!(
        counter(&m, "atgw_dead_letters_total", &[("reason", "invalid_json")]),
        2.0
    );
    assert_eq!(
        counter(&m, "atgw_dead_letters_total", &[("reason", "no_profile")]),
        1.0
    );
    assert_eq!(
        gauge(&m, "atgw_open_alerts", &[("priority", "high")]),
        2.0,
        "one of three resolved; acknowledged is still unresolved"
    );
    assert_eq!(gauge(&m, "atgw_open_alerts", &[("priority", "low")]), 0.0);
    let acks = [("priority", "high")];
    assert_eq!(
        histogram_part(&m, "atgw_time_to_acknowledge_seconds_count", &acks),
        1.0
    );
    let waited = histogram_part(&m, "atgw_time_to_acknowledge_seconds_sum", &acks);
    assert!(
        (1.0..60.0).contains(&waited),
        "acknowledged about a second after the raise: {waited}"
    );
    assert!(histogram_part(&m, "atgw_commit_latency_seconds_count", &[]) > 0.0);
    match value(&m, "atgw_commit_latency_seconds", &[]) {
        Some(Sample::Histogram(b)) => assert!(!b.is_empty()),
        other => panic!("commit latency buckets: {other:?}"),
    }

    assert_eq!(
        counter(&m, "atgw_events_out_total", &[("sink", "upstream")]),
        journal_events,
        "upstream confirmed every journaled event"
    );
    assert_eq!(gauge(&m, "atgw_outbox_depth", &[("sink", "upstream")]), 0.0);
    assert_eq!(
        counter(&m, "atgw_events_out_total", &[("sink", "stuck")]),
        0.0
    );
    assert_eq!(
        gauge(&m, "atgw_outbox_depth", &[("sink", "stuck")]),
        journal_events,
        "everything waits for the stuck receiver"
    );
    assert!(gauge(&m, "atgw_outbox_oldest_age_seconds", &[("sink", "stuck")]) >= 1.0);
    assert_eq!(
        gauge(
            &m,
            "atgw_outbox_oldest_age_seconds",
            &[("sink", "upstream")]
        ),
        0.0
    );
    assert!(
        counter(
            &m,
            "atgw_rejected_total",
            &[("component", "adapter:zigbee"), ("reason", "invalid_json")]
        ) == 2.0
    );
    assert!(upstream.count() >= 3);

    // The stuck receiver makes the gateway unready, and says which sink and how far behind.
    let (status, body) = readyz(&root).await;
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(ready(&body, "sink:stuck"), Some(false));
    assert_eq!(
        body["components"]["sink:stuck"]["backlog"].as_f64(),
        Some(journal_events)
    );
    assert!(body["components"]["sink:stuck"]["oldest_age_s"].as_f64() >= Some(1.0));
    assert_eq!(ready(&body, "sink:carers"), Some(true), "{body:#}");
    assert_eq!(ready(&body, "adapter:zigbee"), Some(true));
    drop(gw);
}

/// "Say why nothing happened", in the daemon: a message a rule takes that has none of the
/// fields the rule reads (a door sending `contacts` where the profile reads `contact`, here
/// the zigbee2mqtt `state` rule) is counted per profile and rule, and said once, naming the
/// keys the message did have; a message with a field it reads is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_fields_a_rule_cannot_find_is_counted_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker =
        atgw::tools::mosquitto::Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (api_cfg, api, token) = api_block(dir.path());
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &api_cfg));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "doors").await;
    for _ in 0..3 {
        devices
            .send(
                "zigbee2mqtt/0xd00r",
                r#"{"contacts": false, "door_state": "open"}"#,
            )
            .await;
    }
    devices
        .send("zigbee2mqtt/0xa4c13899607febd1", r#"{"water_leak": false}"#)
        .await;
    let root = root(&api);
    let labels = [
        ("component", "adapter:zigbee"),
        ("rule", "zigbee2mqtt/state"),
    ];
    let mut seen = 0.0;
    for _ in 0..100 {
        let s = scrape(&root, &token).await;
        seen = value(&s, "atgw_profile_path_absent_total", &labels)
            .map(|v| match v {
                Sample::Counter(v) => v,
                other => panic!("not a counter: {other:?}"),
            })
            .unwrap_or(0.0);
        if seen >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 3.0, "{}", gw.log_text());
    // The leak sensor's message had a field the rule reads: a first reading, not counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = scrape(&root, &token).await;
    assert_eq!(counter(&s, "atgw_profile_path_absent_total", &labels), 3.0);
    let log = gw.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("has none of the fields it reads"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("rule `state` of profile `zigbee2mqtt`")
            && lines[0].contains("contacts, door_state"),
        "{}",
        lines[0]
    );
    broker.stop();
}
