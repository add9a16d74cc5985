//! The webhook sink against a real HTTP receiver (axum on 127.0.0.1:0), driven through a real
//! `SinkIo` the way the core's dispatcher drives it: a bounded delivery channel in, one
//! `Outcome` per delivery out, and a retried row offered again with the same event id.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use atgw_http::config::Invalid;
use atgw_http::signing::{self, TOLERANCE, WebhookKey};
use atgw_http::{WebhookConfig, WebhookError};
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Kind, Priority, Shutdown};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// 24 random bytes in the Standard Webhooks form.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the test receiver answers one request.
#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    StatusWithRetryAfter(u16, String),
    /// Answer 200, but only after this long.
    SlowOk(Duration),
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("request has no `{name}` header"))
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// Answers to give, in order; 200 once it is empty.
    script: Mutex<VecDeque<Reply>>,
    now_in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A webhook receiver that records what it gets and answers as scripted.
struct Receiver {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    async fn start(script: Vec<Reply>) -> Receiver {
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().extend(script);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, shared }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.seen.lock().unwrap().push(Seen { headers, body });
    let now = s.now_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = s.script.lock().unwrap().pop_front();
    let response = match reply {
        None => StatusCode::OK.into_response(),
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::StatusWithRetryAfter(code, after)) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", after)],
        )
            .into_response(),
        Some(Reply::SlowOk(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    };
    s.now_in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

/// The sink task with the dispatcher's side of its channels.
struct Harness {
    to_sink: mpsc::Sender<Delivery>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    health: Arc<Health>,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), WebhookError>>,
    _dir: tempfile::TempDir,
}

fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A private secret file holding `secret`.
fn secret_file(dir: &tempfile::TempDir, secret: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join("webhook.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn config(url: &str, secret_file: PathBuf) -> WebhookConfig {
    let mut cfg = WebhookConfig::new("care-platform", url, secret_file);
    cfg.allow_http = true;
    cfg
}

impl Harness {
    async fn start(url: &str, tweak: impl FnOnce(&mut WebhookConfig)) -> Harness {
        install_ring();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(url, secret_file(&dir, SECRET, 0o600));
        tweak(&mut cfg);
        let (to_sink, deliveries) = mpsc::channel(64);
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let health = Arc::new(Health::default());
        let shutdown = Shutdown::new();
        let io = SinkIo {
            deliveries,
            outcomes: outcomes_tx,
        };
        let task = tokio::spawn(atgw_http::run(cfg, io, health.clone(), shutdown.clone()));
        Harness {
            to_sink,
            outcomes,
            health,
            shutdown,
            task,
            _dir: dir,
        }
    }

    async fn offer(&self, d: &Delivery) {
        self.to_sink.send(d.clone()).await.unwrap();
    }

    async fn outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(10), self.outcomes.recv())
            .await
            .expect("an outcome within 10 s")
            .expect("the sink is running")
    }

    /// Closes the delivery channel, as the dispatcher does when it stops; the sink must end.
    async fn finish(self) {
        drop(self.to_sink);
        let r = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("sink ends when its channel closes")
            .unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
}

fn delivery(outbox_id: i64) -> Delivery {
    let event_id = format!("0196f0c2-7b1e-7c3a-9f00-{outbox_id:012}");
    let json = format!(
        r#"{{"specversion":"1.0","id":"{event_id}","source":"urn:atgw:gw-oakview-01:zigbee","type":"atgw.fall","data":{{"kind":"fall","message":"Fall in room 12 — résident","n":{outbox_id}}}}}"#
    );
    Delivery {
        outbox_id,
        event_id: event_id.into(),
        kind: Kind::Fall,
        priority: Priority::High,
        device_id: "zigbee:0xa4c13899607febd1".into(),
        json: json.into(),
        attempt: 0,
        alert_id: None,
        lifecycle: false,
        recipients: Default::default(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Checks a recorded request's Standard Webhooks headers with our own verifier.
fn assert_signed(seen: &Seen, d: &Delivery) {
    let key = WebhookKey::parse(SECRET).unwrap();
    assert_eq!(seen.header("webhook-id"), &*d.event_id);
    assert_eq!(seen.body, d.json.as_bytes(), "body sent byte for byte");
    let r = signing::verify(
        &key,
        seen.header("webhook-id"),
        seen.header("webhook-timestamp"),
        seen.header("webhook-signature"),
        &seen.body,
        unix_now(),
        TOLERANCE,
    );
    assert_eq!(r, Ok(()), "signature of {}", d.event_id);
}

#[tokio::test]
async fn each_delivery_is_posted_once_with_valid_signature_headers() {
    let rx = Receiver::start(vec![]).await;
    let mut h = Harness::start(&rx.url(), |_| {}).await;
    let ds: Vec<Delivery> = (1..=3).map(delivery).collect();
    for d in &ds {
        h.offer(d).await;
    }
    let mut delivered: Vec<Outcome> = Vec::new();
    for _ in &ds {
        delivered.push(h.outcome().await);
    }
    delivered.sort_by_key(|o| match o {
        Outcome::Delivered(id) => *id,
        other => panic!("expected Delivered, got {other:?}"),
    });
    assert_eq!(
        delivered,
        (1..=3).map(Outcome::Delivered).collect::<Vec<_>>()
    );
    let seen = rx.seen();
    assert_eq!(seen.len(), 3);
    for d in &ds {
        let s = seen
            .iter()
            .find(|s| s.header("webhook-id") == &*d.event_id)
            .expect("each event was posted");
        assert_signed(s, d);
        assert_eq!(s.header("content-type"), "application/cloudevents+json");
        let ts: i64 = s.header("webhook-timestamp").parse().unwrap();
        assert!((unix_now() - ts).abs() <= 5, "timestamp is now");
    }
    let snap = h.health.snapshot();
    assert!(snap.connected);
    assert_eq!((snap.delivered, snap.errors), (3, 0));
    h.finish().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_webhook_id_until_the_receiver_recovers() {
    let rx = Receiver::start(vec![Reply::Status(500), Reply::Status(502)]).await;
    let mut h = Harness::start(&rx.url(), |_| {}).await;
    let mut d = delivery(7);

    h.offer(&d).await;
    match h.outcome().await {
        Outcome::Retry {
            outbox_id: 7,
            after: None,
            reason,
        } => assert!(reason.contains("HTTP 500"), "{reason}"),
        other => panic!("expected Retry after a 500, got {other:?}"),
    }
    let snap = h.health.snapshot();
    assert!(!snap.connected);
    assert_eq!(snap.errors, 1);
    assert!(
        snap.last_error
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 500")
    );

    // The dispatcher offers the same row again, one attempt later.
    d.attempt += 1;
    h.offer(&d).await;
    assert!(matches!(
        h.outcome().await,
        Outcome::Retry { outbox_id: 7, after: None, reason } if reason.contains("HTTP 502")
    ));
    d.attempt += 1;
    h.offer(&d).await;
    assert_eq!(h.outcome().await, Outcome::Delivered(7));

    let seen = rx.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_signed(s, &d);
    }
    assert!(
        seen.iter()
            .all(|s| s.header("webhook-id") == seen[0].header("webhook-id")),
        "webhook-id is stable across retries"
    );
    let snap = h.health.snapshot();
    assert!(
        snap.connected,
        "connected again after the receiver recovered"
    );
    assert_eq!((snap.delivered, snap.errors), (1, 2));
    h.finish().await;
}

#[tokio::test]
async fn too_many_requests_with_retry_after_asks_for_that_delay() {
    let in_two_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let rx = Receiver::start(vec![
        Reply::StatusWithRetryAfter(429, "7".into()),
        Reply::StatusWithRetryAfter(503, in_two_minutes),
        Reply::Status(429),
    ])
    .await;
    let mut h = Harness::start(&rx.url(), |_| {}).await;
    let d = delivery(1);

    h.offer(&d).await;
    assert_eq!(
        h.outcome().await,
        Outcome::Retry {
            outbox_id: 1,
            after: Some(Duration::from_secs(7)),
            reason: "HTTP 429 Too Many Requests, Retry-After 7s".into()
        }
    );
    h.offer(&d).await;
    match h.outcome().await {
        Outcome::Retry {
            after: Some(after), ..
        } => assert!(
            (Duration::from_secs(118)..=Duration::from_secs(120)).contains(&after),
            "HTTP-date Retry-After gave {after:?}"
        ),
        other => panic!("expected Retry with a delay, got {other:?}"),
    }
    h.offer(&d).await;
    assert!(
        matches!(h.outcome().await, Outcome::Retry { after: None, .. }),
        "429 without Retry-After leaves the delay to the dispatcher's backoff"
    );
    h.finish().await;
}

#[tokio::test]
async fn gone_disables_the_sink() {
    let rx = Receiver::start(vec![Reply::Status(410)]).await;
    let mut h = Harness::start(&rx.url(), |_| {}).await;
    h.offer(&delivery(3)).await;
    match h.outcome().await {
        Outcome::Disabled {
            outbox_id: 3,
            reason,
        } => assert!(reason.contains("HTTP 410 Gone"), "{reason}"),
        other => panic!("expected Disabled, got {other:?}"),
    }
    let snap = h.health.snapshot();
    assert!(!snap.connected);
    assert!(snap.last_error.unwrap_or_default().contains("410"));
    h.finish().await;
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_a_retry() {
    let rx = Receiver::start(vec![Reply::SlowOk(Duration::from_secs(3))]).await;
    let mut h = Harness::start(&rx.url(), |c| c.timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    h.offer(&delivery(4)).await;
    match h.outcome().await {
        Outcome::Retry {
            outbox_id: 4,
            after: None,
            reason,
        } => assert!(
            reason.contains("no answer within timeout 300ms"),
            "{reason}"
        ),
        other => panic!("expected Retry on timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout cut the attempt short"
    );
    assert!(!h.health.is_connected());
    h.finish().await;
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_retry_naming_the_connection_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut h = Harness::start(&format!("http://127.0.0.1:{port}/hook"), |_| {}).await;
    h.offer(&delivery(5)).await;
    match h.outcome().await {
        Outcome::Retry {
            outbox_id: 5,
            after: None,
            reason,
        } => assert!(reason.starts_with("cannot connect"), "{reason}"),
        other => panic!("expected Retry, got {other:?}"),
    }
    h.finish().await;
}

#[tokio::test]
async fn no_more_than_window_requests_are_in_flight() {
    let slow = Reply::SlowOk(Duration::from_millis(300));
    let rx = Receiver::start(vec![slow; 6]).await;
    let mut h = Harness::start(&rx.url(), |c| c.window = 2).await;
    for id in 1..=6 {
        h.offer(&delivery(id)).await;
    }
    for _ in 1..=6 {
        assert!(matches!(h.outcome().await, Outcome::Delivered(_)));
    }
    assert_eq!(
        rx.shared.max_in_flight.load(Ordering::SeqCst),
        2,
        "requests overlap, up to the window and no further"
    );
    h.finish().await;
}

#[tokio::test]
async fn shutdown_answers_the_rows_in_flight() {
    let rx = Receiver::start(vec![Reply::SlowOk(Duration::from_secs(30))]).await;
    let mut h = Harness::start(&rx.url(), |c| c.timeout = Duration::from_secs(2)).await;
    h.offer(&delivery(9)).await;
    while rx.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    h.shutdown.cancel();
    assert!(matches!(
        h.outcome().await,
        Outcome::Retry { outbox_id: 9, .. }
    ));
    let r = tokio::time::timeout(Duration::from_secs(10), h.task)
        .await
        .expect("sink stops after shutdown")
        .unwrap();
    assert!(r.is_ok());
    assert!(started.elapsed() < Duration::from_secs(4), "bounded drain");
}

#[tokio::test]
async fn allow_http_is_refused_for_a_non_loopback_host() {
    install_ring();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("http://care.example/hook", secret_file(&dir, SECRET, 0o600));
    assert_eq!(
        cfg.validate().map_err(|e| e.key),
        Err::<(), String>("allow_http".into())
    );
    let (_tx, deliveries) = mpsc::channel(1);
    let (outcomes, _rx) = mpsc::unbounded_channel();
    let r = atgw_http::run(
        cfg,
        SinkIo {
            deliveries,
            outcomes,
        },
        Arc::new(Health::default()),
        Shutdown::new(),
    )
    .await;
    match r {
        Err(WebhookError::Invalid {
            source: Invalid { key, .. },
            ..
        }) => assert_eq!(key, "allow_http"),
        other => panic!("expected the config to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_world_readable_or_malformed_secret_stops_the_sink_at_start() {
    install_ring();
    let run_with = |secret: &'static str, mode: u32| async move {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("http://127.0.0.1:9/hook", secret_file(&dir, secret, mode));
        let (_tx, deliveries) = mpsc::channel(1);
        let (outcomes, _rx) = mpsc::unbounded_channel();
        let io = SinkIo {
            deliveries,
            outcomes,
        };
        atgw_http::run(cfg, io, Arc::new(Health::default()), Shutdown::new()).await
    };
    let e = run_with(SECRET, 0o644).await.unwrap_err();
    assert!(matches!(e, WebhookError::Secret { .. }), "{e}");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    let e = run_with("whsec_***not base64***", 0o600).await.unwrap_err();
    assert!(matches!(e, WebhookError::SecretFormat { .. }), "{e}");
    assert!(
        !e.to_string().contains("not base64***"),
        "never echoes the secret: {e}"
    );
}

/// Cross-checks our signatures with the reference Python library (`pip install
/// standardwebhooks`), on a request the sink really sent, and that it rejects a tampered body.
#[tokio::test]
async fn python_standardwebhooks_verifies_what_the_sink_sent() {
    let rx = Receiver::start(vec![]).await;
    let mut h = Harness::start(&rx.url(), |_| {}).await;
    let d = delivery(11);
    h.offer(&d).await;
    assert_eq!(h.outcome().await, Outcome::Delivered(11));
    let seen = rx.seen().pop().unwrap();
    h.finish().await;

    let headers = serde_json::json!({
        "webhook-id": seen.header("webhook-id"),
        "webhook-timestamp": seen.header("webhook-timestamp"),
        "webhook-signature": seen.header("webhook-signature"),
    });
    let body = std::str::from_utf8(&seen.body).unwrap();
    assert_eq!(python_verify(body, &headers), "verified");
    let tampered = body.replace("room 12", "room 13");
    assert_eq!(python_verify(&tampered, &headers), "rejected");
}

const PY_VERIFY: &str = r#"
import json, sys
try:
    import standardwebhooks
except ImportError:
    sys.stderr.write("the Python package `standardwebhooks` is not installed\n")
    sys.exit(3)
case = json.load(sys.stdin)
try:
    standardwebhooks.Webhook(case["secret"]).verify(case["body"], case["headers"])
    print("verified")
except standardwebhooks.WebhookVerificationError:
    print("rejected")
"#;

/// Where `standardwebhooks` imports from: the system's when installed (`.ci/run` does),
/// otherwise a private `pip install --target` in Cargo's test scratch directory, so that
/// `cargo test` alone runs this cross-check.
fn standardwebhooks_path() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    let importable = |path: &Path| {
        Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .env("PYTHONPATH", path)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if importable(Path::new("")) {
        return PathBuf::new();
    }
    let private = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python/standardwebhooks");
    if !importable(&private) {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&private)
            .arg("standardwebhooks==1.1.0")
            .output();
    }
    private
}

fn python_verify(body: &str, headers: &serde_json::Value) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let case = serde_json::json!({ "secret": SECRET, "body": body, "headers": headers });
    let child = Command::new("python3")
        .env("PYTHONPATH", standardwebhooks_path())
        .args(["-c", PY_VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!(
            "cannot run python3 ({e}); this test cross-checks signatures with the reference \
             implementation: install Python 3 and run `python3 -m pip install standardwebhooks`"
        )
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(case.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(3),
        "{stderr}this test cross-checks signatures with the reference implementation: run \
         `python3 -m pip install standardwebhooks`"
    );
    assert!(out.status.success(), "python3 failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
