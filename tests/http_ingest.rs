//! The HTTP ingest adapter end to end: the real binary, real HTTPS over loopback (a private CA,
//! rustls both sides), requests signed the way each vendor cloud signs them, and the journal
//! read from its SQLite file.

mod common;

use std::path::Path;
use std::time::Duration;

use atgw_http::signing::WebhookKey;
use atgw_http_ingest::sign;
use common::*;
use serde_json::{Value, json};

const NETLIA_KEY: &str = "netlia-api-key-for-test";
const PURELIFE_KEY: &str = "purelife-hmac-key";
const NOVEE_KEY: &str = "novee-hmac-key";
const HOOKS_KEY: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const BEARER: &str = "bearer-token-for-test";

/// A gateway with the HTTP adapter on TLS (and an optional client-certificate route
/// listener), every vendor route, and a file sink.
fn config(dir: &Path, port: u16, extra_adapter: &str, extra: &str) -> String {
    make_pki(dir, "http");
    let secret = |name: &str, text: &str| write_secret(&dir.join(name), text).display().to_string();
    let (netlia, purelife, novee, hooks, bearer) = (
        secret("netlia.key", NETLIA_KEY),
        secret("purelife.key", PURELIFE_KEY),
        secret("novee.key", NOVEE_KEY),
        secret("hooks.secret", HOOKS_KEY),
        secret("bearer.token", BEARER),
    );
    format!(
        r#"{gateway}
[[adapter]]
name = "clouds"
type = "http"
listen = "127.0.0.1:{port}"
tls = {{ cert_file = "{d}/http-server.pem", key_file = "{d}/http-server.key" }}
max_body_bytes = 4096
{extra_adapter}

[[adapter.route]]
path = "/netlia"
profiles = ["netlia"]
auth = {{ scheme = "api_key", secret_file = "{netlia}" }}
dedupe = "EventId"

[[adapter.route]]
path = "/purelife"
profiles = ["purelife-vayyar"]
auth = {{ scheme = "hmac_sha256", header = "x-purelife-cloud-signature", secret_file = "{purelife}" }}
dedupe = "eventId"

[[adapter.route]]
path = "/novee"
profiles = ["novee"]
auth = {{ scheme = "timestamped_hmac", secret_file = "{novee}" }}
dedupe = "id"

[[adapter.route]]
path = "/hooks"
profiles = ["webhook-alarm"]
auth = {{ scheme = "standard_webhooks", secret_file = "{hooks}" }}

[[adapter.route]]
path = "/bearer"
topic = "hooks"
profiles = ["webhook-alarm"]
auth = {{ scheme = "bearer", secret_file = "{bearer}" }}

[[sink]]
name = "audit"
type = "file"
path = "{audit}"
{extra}
"#,
        gateway = gateway_section(dir),
        d = dir.display(),
        audit = dir.join("events.jsonl").display(),
    )
}

fn client(dir: &Path, with_client_cert: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(dir.join("http-ca.pem")).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .timeout(Duration::from_secs(30));
    if with_client_cert {
        let mut pem = std::fs::read(dir.join("http-client.pem")).unwrap();
        pem.extend(std::fs::read(dir.join("http-client.key")).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn start(dir: &Path, port: u16, client: reqwest::Client) -> Http {
        let h = Http {
            base: format!("https://127.0.0.1:{port}"),
            client,
        };
        wait_until_async(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "never listened:\n{}",
                std::fs::read_to_string(dir.join("atgw.log")).unwrap_or_default()
            )
        });
        h
    }

    async fn post(&self, path: &str, body: &[u8], headers: &[(String, String)]) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("an answer");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The headers the route for `path` expects, signed over `body`.
fn signed(path: &str, body: &[u8], webhook_id: &str) -> Vec<(String, String)> {
    match path.split('/').nth(1) {
        Some("netlia") => sign::api_key("x-api-key", NETLIA_KEY),
        Some("purelife") => {
            sign::hmac_sha256(PURELIFE_KEY, "x-purelife-cloud-signature", "sha256=", body)
        }
        Some("novee") => sign::timestamped_hmac(
            NOVEE_KEY,
            "x-signature",
            "x-timestamp",
            &now_ms().to_string(),
            body,
        ),
        Some("hooks") => sign::standard_webhooks(
            &WebhookKey::parse(HOOKS_KEY).unwrap(),
            webhook_id,
            now_ms() / 1000,
            body,
        ),
        Some("bearer") => sign::bearer(BEARER),
        other => panic!("no route {other:?}"),
    }
}

/// Every event the HTTP adapter journaled, in order.
fn http_events(g: &Gateway) -> Vec<Value> {
    g.column::<String>(
        "SELECT json FROM events WHERE json_extract(json, '$.data.device.adapter') = 'clouds' ORDER BY seq",
    )
    .into_iter()
    .map(|j| serde_json::from_str(&j).unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_fixture_over_https_becomes_its_expected_events() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let g = Gateway::start(dir.path(), &config(dir.path(), port, "", ""));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    let mut expected = Vec::new();
    for file in [
        "netlia.jsonl",
        "purelife-vayyar.jsonl",
        "novee.jsonl",
        "standard-webhooks.jsonl",
    ] {
        let text = std::fs::read_to_string(repo().join("tests/fixtures/http").join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let case: Value = serde_json::from_str(line).unwrap();
            if case.get("_about").is_some() {
                continue;
            }
            let body = serde_json::to_vec(&case["payload"]).unwrap();
            let path = case["path"].as_str().unwrap();
            let webhook_id = format!("msg_{file}_{n}");
            let (status, answer) = http
                .post(path, &body, &signed(path, &body, &webhook_id))
                .await;
            assert_eq!(status, 200, "{file}:{}: {answer}", n + 1);
            if let Value::Object(mut e) = case["expect"].clone() {
                if e.get("upstream_id") == Some(&json!("@webhook-id")) {
                    e.insert("upstream_id".into(), json!(webhook_id));
                }
                expected.push((format!("{file}:{}", n + 1), e));
            }
        }
    }
    let events = http_events(&g);
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    let schema = schema();
    for ((at, want), got) in expected.iter().zip(&events) {
        assert_schema_valid(&schema, got);
        let d = &got["data"];
        assert_eq!(d["kind"], want["kind"], "{at}");
        assert_eq!(d["device"]["id"], want["device"], "{at}");
        assert_eq!(d["raw"]["protocol"], "http", "{at}");
        assert!(
            d["raw"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with('/')),
            "{at}"
        );
        for key in ["phase", "priority", "confidence"] {
            if let Some(w) = want.get(key) {
                assert_eq!(&d[key], w, "{at}: {key}");
            }
        }
        if let Some(w) = want.get("upstream_id") {
            assert_eq!(&d["raw"]["upstream_id"], w, "{at}: upstream_id");
        }
        if let Some(w) = want.get("time") {
            assert_eq!(&got["time"], w, "{at}: time");
        }
        assert_eq!(
            d["test"],
            want.get("test").cloned().unwrap_or(json!(false)),
            "{at}: test"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_delivery_is_journaled_once_and_answered_2xx_both_times() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let g = Gateway::start(dir.path(), &config(dir.path(), port, "", ""));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    // Netlia: the same EventId twice.
    let body = br#"{"ProtocolVersion":1,"DeviceId":"sos-1","DeviceType":"sos-button","EventId":"e-1","EventTime":"2026-12-07T09:00:00Z","EventType":"event-start"}"#;
    let path = "/netlia/1/sos-1/event-start";
    let first = http.post(path, body, &signed(path, body, "")).await;
    let again = http.post(path, body, &signed(path, body, "")).await;
    assert_eq!((first.0, again.0), (200, 200), "{first:?} {again:?}");
    assert_eq!(again.1["duplicate"], true, "{again:?}");
    // Standard Webhooks: a retry keeps webhook-id and signs a new timestamp.
    let body = br#"{"device":"hub-1:p","event":"pendant_press"}"#;
    let first = http
        .post("/hooks/alarm", body, &signed("/hooks/alarm", body, "msg_1"))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = http
        .post("/hooks/alarm", body, &signed("/hooks/alarm", body, "msg_1"))
        .await;
    assert_eq!((first.0, again.0), (200, 200), "{first:?} {again:?}");
    assert_eq!(again.1["duplicate"], true);
    // A different id with the same body is a new alarm.
    let third = http
        .post("/hooks/alarm", body, &signed("/hooks/alarm", body, "msg_2"))
        .await;
    assert_eq!(third.0, 200);
    let events = http_events(&g);
    let by = |dev: &str| {
        events
            .iter()
            .filter(|e| e["data"]["device"]["id"] == dev)
            .count()
    };
    assert_eq!(by("netlia:sos-1"), 1, "{events:#?}");
    assert_eq!(by("hub:hub-1:p"), 2, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signatures_stale_timestamps_and_missing_headers_get_401_and_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let g = Gateway::start(dir.path(), &config(dir.path(), port, "", ""));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    let alarm = br#"{"device":"hub-1:p","event":"pendant_press"}"#;
    let key = WebhookKey::parse(HOOKS_KEY).unwrap();
    let other = WebhookKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let now_s = now_ms() / 1000;
    let drop_header = |mut h: Vec<(String, String)>, name: &str| {
        h.retain(|(k, _)| k != name);
        h
    };
    let novee = br#"{"id":"n1","type":"FALL_DETECTION","data":{"userUUID":"u1","reasons":["fall"],"happenedAt":"2026-12-07T09:00:00Z"}}"#;
    let purelife = br#"{"eventId":"p1","type":"fall","deviceId":"d1","status":"fall_confirmed","timestamp":1796634000000}"#;
    type Case<'a> = (&'a str, &'a str, &'a [u8], sign::Headers);
    let cases: Vec<Case> = vec![
        (
            "standard: wrong key",
            "/hooks/alarm",
            alarm,
            sign::standard_webhooks(&other, "m1", now_s, alarm),
        ),
        (
            "standard: stale timestamp",
            "/hooks/alarm",
            alarm,
            sign::standard_webhooks(&key, "m2", now_s - 600, alarm),
        ),
        (
            "standard: missing signature",
            "/hooks/alarm",
            alarm,
            drop_header(
                sign::standard_webhooks(&key, "m3", now_s, alarm),
                "webhook-signature",
            ),
        ),
        (
            "standard: signed another body",
            "/hooks/alarm",
            alarm,
            sign::standard_webhooks(&key, "m4", now_s, b"{}"),
        ),
        (
            "purelife: wrong key",
            "/purelife",
            purelife,
            sign::hmac_sha256("nope", "x-purelife-cloud-signature", "sha256=", purelife),
        ),
        (
            "purelife: missing header",
            "/purelife",
            purelife,
            Vec::new(),
        ),
        (
            "novee: stale timestamp",
            "/novee",
            novee,
            sign::timestamped_hmac(
                NOVEE_KEY,
                "x-signature",
                "x-timestamp",
                &(now_ms() - 600_000).to_string(),
                novee,
            ),
        ),
        (
            "novee: missing timestamp",
            "/novee",
            novee,
            drop_header(
                sign::timestamped_hmac(
                    NOVEE_KEY,
                    "x-signature",
                    "x-timestamp",
                    &now_ms().to_string(),
                    novee,
                ),
                "x-timestamp",
            ),
        ),
        (
            "netlia: wrong key",
            "/netlia/1/x/event-start",
            alarm,
            sign::api_key("x-api-key", "guess"),
        ),
        (
            "bearer: wrong token",
            "/bearer/alarm",
            alarm,
            sign::bearer("guess"),
        ),
        ("bearer: none", "/bearer/alarm", alarm, Vec::new()),
    ];
    for (what, path, body, headers) in &cases {
        let (status, answer) = http.post(path, body, headers).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"], "unauthorized", "{what}");
    }
    assert_eq!(
        g.event_count(),
        0,
        "no event from an unauthenticated request"
    );
    assert!(dead_letters(&g).is_empty(), "strangers' bytes are not kept");
    // The same requests, correctly signed, are taken.
    let (status, _) = http
        .post(
            "/hooks/alarm",
            alarm,
            &sign::standard_webhooks(&key, "m9", now_s, alarm),
        )
        .await;
    assert_eq!(status, 200);
    let log = g.log_text();
    assert!(
        log.contains("not authenticated"),
        "a failure is logged:\n{log}"
    );
    assert!(
        !log.contains(NOVEE_KEY) && !log.contains(BEARER) && !log.contains("guess"),
        "no secret or presented credential is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_400_and_a_dead_letter_unknown_paths_404_and_oversize_413() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let mut g = Gateway::start(dir.path(), &config(dir.path(), port, "", ""));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    let not_json = b"{\"device\": \"x\", ";
    let (status, answer) = http
        .post("/bearer/alarm", not_json, &sign::bearer(BEARER))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_json");
    let unmapped = br#"{"device":"hub-1:p","event":"dancing"}"#;
    let (status, answer) = http
        .post("/bearer/alarm", unmapped, &sign::bearer(BEARER))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unmapped_value")),
        "{answer}"
    );
    assert_eq!(dead_letters(&g).get("invalid_json"), Some(&1));
    assert_eq!(dead_letters(&g).get("unmapped_value"), Some(&1));
    let (status, _) = http.post("/nowhere", b"{}", &sign::bearer(BEARER)).await;
    assert_eq!(status, 404);
    let big = vec![b' '; 8192];
    let (status, answer) = http
        .post("/bearer/alarm", &big, &sign::bearer(BEARER))
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(g.event_count(), 0);
    assert!(g.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_2xx_before_commit_a_failing_commit_gives_503_and_the_retry_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let g = Gateway::start(dir.path(), &config(dir.path(), port, "", ""));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    // Commits work: the journal exists, with its schema.
    let warm = br#"{"device":"hub-0:p","event":"pendant_press"}"#;
    assert_eq!(
        http.post("/bearer/alarm", warm, &sign::bearer(BEARER))
            .await
            .0,
        200
    );
    // Hold SQLite's write lock so no commit can happen.
    let lock = rusqlite::Connection::open(g.dir.join("state/atgw.db")).unwrap();
    lock.busy_timeout(Duration::from_secs(10)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = br#"{"ProtocolVersion":1,"DeviceId":"sos-9","DeviceType":"sos-button","EventId":"e-9","EventTime":"2026-12-07T09:00:00Z","EventType":"event-start"}"#;
    let path = "/netlia/1/sos-9/event-start";
    let started = std::time::Instant::now();
    let (status, answer) = http.post(path, body, &signed(path, body, "")).await;
    assert_eq!(
        status, 503,
        "a request whose commit fails is not acknowledged: {answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The cloud retries (same EventId): it lands, once, however the first attempt ended.
    let mut landed = 0;
    for _ in 0..3 {
        let (status, _) = http.post(path, body, &signed(path, body, "")).await;
        if status == 200 {
            landed += 1;
        }
    }
    assert_eq!(landed, 3, "every retry after the fault is answered 2xx");
    let events = http_events(&g);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["data"]["device"]["id"] == "netlia:sos-9")
            .count(),
        1,
        "journaled once: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_when_required_and_the_simulator_speaks_each_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let text = config(dir.path(), port, "", "");
    let text = text.replace(
        &format!(
            "key_file = \"{d}/http-server.key\" }}",
            d = dir.path().display()
        ),
        &format!(
            "key_file = \"{d}/http-server.key\", client_ca_file = \"{d}/http-ca.pem\" }}",
            d = dir.path().display()
        ),
    );
    let g = Gateway::start(dir.path(), &text);
    let anonymous = Http::start(dir.path(), port, client(dir.path(), false)).await;
    let refused = anonymous
        .client
        .post(format!("{}/bearer/alarm", anonymous.base))
        .body("{}")
        .send()
        .await;
    assert!(refused.is_err(), "no client certificate, no TLS session");
    let http = Http {
        base: anonymous.base.clone(),
        client: client(dir.path(), true),
    };
    let body = br#"{"device":"hub-1:p","event":"pendant_press"}"#;
    assert_eq!(
        http.post("/bearer/alarm", body, &sign::bearer(BEARER))
            .await
            .0,
        200
    );
    assert_eq!(g.event_count(), 1);
    drop(g);

    // The simulator, on a gateway without client certificates: each vendor's route takes it.
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let g = Gateway::start(dir.path(), &config(dir.path(), port, "", ""));
    Http::start(dir.path(), port, client(dir.path(), false)).await;
    for (vendor, secret) in [
        ("netlia", "netlia.key"),
        ("purelife", "purelife.key"),
        ("novee", "novee.key"),
        ("standard-webhooks", "hooks.secret"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
            .args([
                "simulate",
                "http",
                "--vendor",
                vendor,
                "--count",
                "4",
                "--concurrency",
                "2",
            ])
            .arg("--url")
            .arg(format!("https://127.0.0.1:{port}"))
            .arg("--secret-file")
            .arg(dir.path().join(secret))
            .arg("--ca-file")
            .arg(dir.path().join("http-ca.pem"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{vendor}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("answered 2xx 4"), "{vendor}: {stdout}");
    }
    // netlia 4 presses, novee 4 falls, hooks 4 presses, purelife 4 falls.
    let events = http_events(&g);
    assert_eq!(events.len(), 16, "{events:#?}");
}

fn spo2(id: &str, value: f64, at: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "identifier": [{"system": "urn:oximeter:ox-7", "value": id}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2708-6"}, {"system": "http://loinc.org", "code": "59408-5"}]},
        "subject": {"reference": "Patient/p-42", "display": "A Name We Must Not Keep"},
        "device": {"reference": "Device/ox-7"},
        "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
    })
}

fn bundle(kind: &str, resources: &[Value]) -> Vec<u8> {
    let entry: Vec<Value> = resources
        .iter()
        .map(|r| json!({"resource": r, "request": {"method": "POST", "url": "Observation"}}))
        .collect();
    serde_json::to_vec(&json!({"resourceType": "Bundle", "type": kind, "entry": entry})).unwrap()
}

const FHIR_ROUTE: &str = r#"
[[adapter.route]]
path = "/fhir"
format = "fhir"
auth = { scheme = "bearer", secret_file = "BEARER" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_bundle_of_oximeter_readings_raises_spo2_low_after_the_persistence_rule() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let route = FHIR_ROUTE.replace(
        "BEARER",
        &dir.path().join("bearer.token").display().to_string(),
    );
    let registry = r#"
[[device]]
id = "oximeter-room14"
adapter = "clouds"
match = { patient = "Patient/p-42" }
resident = "res-0057"
location = { area = "east", room = "14" }
"#;
    let g = Gateway::start(dir.path(), &config(dir.path(), port, &route, registry));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    let auth = sign::bearer(BEARER);
    let now = jiff::Timestamp::now();
    let at = |s: i64| (now - jiff::SignedDuration::from_secs(s)).to_string();
    // Two readings below NEWS2 scale 1's band: not yet an alert (persistence_readings = 3).
    let two = bundle(
        "transaction",
        &[spo2("r1", 88.0, &at(20)), spo2("r2", 87.0, &at(15))],
    );
    let (status, answer) = http.post("/fhir", &two, &auth).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "transaction-response");
    let statuses: Vec<&str> = answer["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "201 Created"]);
    let spo2_low = || g.column::<String>("SELECT phase FROM events WHERE kind = 'spo2_low'");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        spo2_low().is_empty(),
        "two low readings are not yet persistent"
    );
    // The client retries the same Bundle: answered again, journaled once.
    let (status, answer) = http.post("/fhir", &two, &auth).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["entry"][0]["response"]["status"], "200 OK",
        "{answer}"
    );
    // The third low reading, as a lone Observation: 201 with a Location, then the alert.
    let third = serde_json::to_vec(&spo2("r3", 86.0, &at(10))).unwrap();
    let resp = http
        .client
        .post(format!("{}/fhir", http.base))
        .header("content-type", "application/fhir+json")
        .header("authorization", format!("Bearer {BEARER}"))
        .body(third)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(location.starts_with("Observation/"), "{location}");
    wait_until_async(Duration::from_secs(10), || spo2_low() == ["raised"])
        .await
        .unwrap_or_else(|_| panic!("no spo2_low: {:?}", spo2_low()));
    let alert: Value = serde_json::from_str(
        &g.column::<String>("SELECT json FROM events WHERE kind = 'spo2_low'")[0],
    )
    .unwrap();
    assert_eq!(
        alert["data"]["resident"]["id"], "res-0057",
        "placed by the registry: {alert}"
    );
    assert_eq!(alert["data"]["location"]["room"], "14");
    let readings = g.column::<String>("SELECT json FROM events WHERE kind = 'vital_sign'");
    assert_eq!(readings.len(), 3, "each reading once");
    for r in &readings {
        assert!(
            !r.contains("A Name We Must Not Keep"),
            "no names in the journal: {r}"
        );
        let v: Value = serde_json::from_str(r).unwrap();
        assert_eq!(v["data"]["observations"][0]["name"], "spo2");
        assert_eq!(
            v["data"]["device"]["id"], "oximeter-room14",
            "the registry's id"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_errors_are_operation_outcomes_a_transaction_is_all_or_nothing_a_batch_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let route = FHIR_ROUTE.replace(
        "BEARER",
        &dir.path().join("bearer.token").display().to_string(),
    );
    let g = Gateway::start(dir.path(), &config(dir.path(), port, &route, ""));
    let http = Http::start(dir.path(), port, client(dir.path(), false)).await;
    let auth = sign::bearer(BEARER);
    let now = jiff::Timestamp::now().to_string();
    let mut wrong_unit = spo2("bad", 97.0, &now);
    wrong_unit["valueQuantity"]["code"] = json!("/min");
    let (status, answer) = http
        .post("/fhir", &serde_json::to_vec(&wrong_unit).unwrap(), &auth)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["resourceType"], "OperationOutcome");
    assert_eq!(
        answer["issue"][0]["expression"][0], "Observation.valueQuantity.code",
        "{answer}"
    );
    let tx = bundle("transaction", &[spo2("t1", 97.0, &now), wrong_unit.clone()]);
    let (status, answer) = http.post("/fhir", &tx, &auth).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        g.event_count(),
        0,
        "a transaction with a bad entry journals nothing"
    );
    let batch = bundle("batch", &[spo2("b1", 97.0, &now), wrong_unit]);
    let (status, answer) = http.post("/fhir", &batch, &auth).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "batch-response");
    assert_eq!(answer["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(answer["entry"][1]["response"]["status"], "400 Bad Request");
    assert_eq!(
        answer["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(g.event_count(), 1, "the good entry of a batch is journaled");
    let (status, answer) = http
        .post("/fhir", b"{\"resourceType\": \"Patient\"}", &auth)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        dead_letters(&g).get("fhir_invalid"),
        Some(&4),
        "each refused body kept for a person"
    );
}

#[test]
fn profile_test_runs_http_samples_through_the_route_that_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), 1, "", "");
    std::fs::write(dir.path().join("atgw.toml"), &text).unwrap();
    let samples = dir.path().join("samples.jsonl");
    std::fs::write(
        &samples,
        concat!(
            r#"{"path": "/bearer/alarm", "headers": {"X-Hub": "h1"}, "payload": {"device": "hub-1:p", "event": "pendant_press"}}"#,
            "\n",
            r#"{"path": "/nowhere", "payload": {}}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["profile", "test", "--config"])
        .arg(dir.path().join("atgw.toml"))
        .args(["--adapter", "clouds"])
        .arg(&samples)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("to `/bearer/alarm` (topic `hooks/alarm`)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("taken by profile `webhook-alarm`"),
        "{stdout}"
    );
    assert!(stdout.contains(r#""protocol": "http""#), "{stdout}");
    assert!(stdout.contains("no route takes this path"), "{stdout}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unroutable sample fails the run"
    );
}

#[test]
fn audit_judges_the_listener_and_every_routes_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("atgw.toml"), config(dir.path(), 1, "", "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["audit", "--config"])
        .arg(dir.path().join("atgw.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("adapter `clouds`"))
        .collect();
    assert!(
        ours.iter()
            .any(|l| l.contains("pass") && l.contains("TLS on 127.0.0.1")),
        "{text}"
    );
    for route in ["/netlia", "/purelife", "/novee", "/hooks", "/bearer"] {
        assert!(
            ours.iter().any(|l| l.contains(&format!("route {route}:"))),
            "{route}: {text}"
        );
    }
    let failing: Vec<&&str> = ours
        .iter()
        .filter(|l| l.trim_start().starts_with("fail"))
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
}
