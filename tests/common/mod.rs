//! Shared harness for the end-to-end tests: the real `atgw` binary as a child process, a private
//! Mosquitto per test, real MQTT clients, and the journal read straight from its SQLite file.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use atgw::tools::mosquitto::Mosquitto;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn profiles_dir() -> PathBuf {
    repo().join("config/profiles")
}

/// The profile order an integrator would configure for the shipped fixtures.
pub const PROFILES: &str =
    r#"["tuya-mir-he200-fall-radar", "heiman-hs2fd-fall", "ble-hub-oximeter", "zigbee2mqtt"]"#;

/// The `[gateway]` table the tests use: `gw-test` at site `oakview`, its data under `dir/state`.
pub fn gateway_section(dir: &Path) -> String {
    format!(
        "\n[gateway]\nid = \"gw-test\"\nsite = \"oakview\"\ndata_dir = \"{}\"\nprofiles_dir = \"{}\"\ntimezone = \"Europe/London\"\n",
        dir.join("state").display(),
        profiles_dir().display(),
    )
}

/// A gateway config with one MQTT adapter and an upstream MQTT sink plus a file sink.
pub fn config(dir: &Path, port: u16, extra: &str) -> String {
    format!(
        r#"{gateway}
[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topics = ["zigbee2mqtt/#", "dusun_pub", "misc/#"]
profiles = {PROFILES}
reconnect_min = "100ms"
reconnect_max = "1s"

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topic_prefix = "atgw/oakview"
reconnect_min = "100ms"
reconnect_max = "1s"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"
{extra}
"#,
        gateway = gateway_section(dir),
        audit = dir.join("events.jsonl").display(),
    )
}

/// The real binary, running `atgw run`.
pub struct Gateway {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// More arguments after `run --config <file>`; `None` for `RUST_LOG` means the binary's
    /// own default filter.
    args: Vec<String>,
    rust_log: Option<&'static str>,
}

impl Gateway {
    pub fn start(dir: &Path, config_text: &str) -> Gateway {
        Self::start_as(dir, config_text, &[], Some("info,rumqttc=warn"))
    }

    /// As [`Gateway::start`] with more arguments (`--log-format json`) and without `RUST_LOG`,
    /// so the log is what an installation gets by default.
    pub fn start_with_args(dir: &Path, config_text: &str, args: &[&str]) -> Gateway {
        Self::start_as(dir, config_text, args, None)
    }

    fn start_as(
        dir: &Path,
        config_text: &str,
        args: &[&str],
        rust_log: Option<&'static str>,
    ) -> Gateway {
        let config = dir.join("atgw.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut g = Gateway {
            dir: dir.to_path_buf(),
            config,
            log: dir.join("atgw.log"),
            child: None,
            starts: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            rust_log,
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atgw"));
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .args(&self.args);
        // The daemon reads `ATGW_*` as config overrides: the test's own environment (the fault
        // suite's `ATGW_FAULT_SEED`, a developer's `ATGW_CONFIG`) must not reach it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ATGW_") {
                cmd.env_remove(&k);
            }
        }
        match self.rust_log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        let child = cmd
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn atgw");
        self.child = Some(child);
        let want = self.starts;
        wait_until(Duration::from_secs(20), || {
            self.log_text().matches("atgw ready").count() >= want as usize
        })
        .unwrap_or_else(|_| panic!("atgw did not become ready:\n{}", self.log_text()));
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        Command::new("kill")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "atgw did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGHUP: reload the configuration file.
    pub fn hangup(&self) {
        let c = self.child.as_ref().expect("running");
        let ok = Command::new("kill")
            .args(["-HUP", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the MQTT adapter has subscribed: on a first start the broker keeps nothing
    /// for atgw's session before that, so a device publishing earlier is (rightly) not seen.
    pub async fn wait_subscribed(&self) {
        wait_until_async(Duration::from_secs(20), || {
            self.log_text().contains("subscribed to")
        })
        .await
        .unwrap_or_else(|_| panic!("never subscribed:\n{}", self.log_text()));
    }

    pub fn journal(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open_with_flags(
            self.dir.join("state/atgw.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    /// The first column of every row a query over the journal returns.
    pub fn column<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<T> {
        let c = self.journal();
        let mut s = c.prepare(sql).unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    pub fn event_count(&self) -> i64 {
        self.journal()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap_or(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `cond` until true or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    if cond() { Ok(()) } else { Err(()) }
}

pub async fn wait_until_async(within: Duration, mut cond: impl FnMut() -> bool) -> Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if cond() { Ok(()) } else { Err(()) }
}

/// A persistent-session QoS 1 subscriber on `filters`, reconnecting on its own across broker
/// restarts, keeping what `keep` makes of each payload.
pub struct Subscriber<T> {
    pub received: Arc<Mutex<Vec<T>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The care platform's view: a [`Subscriber`] on the upstream topics keeping each JSON event.
pub type Upstream = Subscriber<serde_json::Value>;

impl Subscriber<serde_json::Value> {
    pub async fn start(port: u16, filter: &str) -> Upstream {
        Subscriber::start_keeping(port, &[filter], |p| serde_json::from_slice(p).ok()).await
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }
}

impl<T: Send + 'static> Subscriber<T> {
    pub async fn start_keeping(
        port: u16,
        filters: &[&str],
        keep: impl Fn(&[u8]) -> Option<T> + Send + 'static,
    ) -> Subscriber<T> {
        // Unique per subscriber: a shared client id makes the broker kick one off for the other.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut o = MqttOptions::new(
            format!(
                "upstream-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            "127.0.0.1",
            port,
        );
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut el) = AsyncClient::new(o, 1000);
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let filters: Vec<rumqttc::SubscribeFilter> = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce))
            .collect();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = client.try_subscribe_many(filters.clone());
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let Some(v) = keep(&p.payload) {
                            r.lock().unwrap().push(v);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("subscriber subscribed")
            .unwrap();
        Subscriber { received, task }
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl<T> Drop for Subscriber<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A device-side publisher: QoS 1, counts the broker's PUBACKs.
pub struct Publisher {
    pub client: AsyncClient,
    pub acked: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(port: u16, id: &str) -> Publisher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(16 << 20, 16 << 20);
        o.set_inflight(50);
        let (client, mut el) = AsyncClient::new(o, 100);
        let acked = Arc::new(Mutex::new(0u64));
        let a = acked.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::PubAck(_))) => *a.lock().unwrap() += 1,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("publisher connected")
            .unwrap();
        Publisher {
            client,
            acked,
            task,
        }
    }

    pub async fn send(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
    }

    pub fn acked(&self) -> u64 {
        *self.acked.lock().unwrap()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Validator for schema v1, as shipped in the SDK.
pub fn schema() -> jsonschema::Validator {
    let s: serde_json::Value = serde_json::from_str(atgw_sdk::schema::EVENT_SCHEMA_V1).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

/// Asserts an event is valid against schema v1, with the reasons when not.
pub fn assert_schema_valid(v: &jsonschema::Validator, event: &serde_json::Value) {
    let errors: Vec<String> = v
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "event violates schema v1: {errors:?}\n{event:#}"
    );
}

/// Dead letters per reason, straight from the journal.
pub fn dead_letters(g: &Gateway) -> HashMap<String, i64> {
    let c = g.journal();
    let mut s = c
        .prepare("SELECT reason, count(*) FROM dead_letters GROUP BY reason")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// A port free for both TCP and UDP on 127.0.0.1, so a DC-09 receiver can listen on the same
/// number with both (as `listen_tcp = listen_udp = "…:7777"` deployments do).
pub fn free_tcp_udp_port() -> u16 {
    for _ in 0..100 {
        let port = atgw::tools::mosquitto::free_port().unwrap();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on 127.0.0.1");
}

/// Writes a secret (an AES key, a password) the way the daemon insists on: mode 0600.
pub fn write_secret(path: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_path_buf()
}

/// A gateway config with one SIA DC-09 receiver (`alarms`, TCP on `tcp_port` and UDP on
/// `udp_port`, both on 127.0.0.1) and the same upstream MQTT and file sinks as [`config`].
/// `adapter_keys` are more keys of the `[[adapter]]` table (accounts, limits, window);
/// `extra` is appended after it (`[[device]]` registry entries, `[journal]`).
pub fn dc09_config(
    dir: &Path,
    mqtt_port: u16,
    tcp_port: u16,
    udp_port: u16,
    adapter_keys: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"
timezone = "Europe/London"

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = {mqtt_port}
topic_prefix = "atgw/oakview"
reconnect_min = "100ms"
reconnect_max = "1s"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:{tcp_port}"
listen_udp = "127.0.0.1:{udp_port}"
{adapter_keys}

{extra}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        audit = dir.join("events.jsonl").display(),
    )
}

/// Sinks and a policy for alert tests: `carers` and `senior` are routed MQTT sinks (their own
/// topic prefixes), `upstream` stays the stream sink that takes acknowledgements.
pub fn alert_config(dir: &Path, port: u16, escalate_after: &str, repeat: &str) -> String {
    config(
        dir,
        port,
        &format!(
            r#"
[[sink]]
name = "carers"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topic_prefix = "atgw/carers"
accept_acks = false

[[sink]]
name = "senior"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topic_prefix = "atgw/senior"
accept_acks = false

[[sink]]
name = "maintenance"
type = "mqtt"
host = "127.0.0.1"
port = {port}
topic_prefix = "atgw/maintenance"
accept_acks = false

[[route]]
name = "carers"
sinks = ["carers"]

[[route]]
name = "senior"
sinks = ["senior"]

[[route]]
name = "test-calls"
sinks = ["maintenance"]

[alerts]
test_route = "test-calls"

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["carers"]
escalate = [{{ after = "{escalate_after}", notify = ["senior"] }}]
repeat = "{repeat}"
"#
        ),
    )
}

/// Lifecycle events received on a subscriber, as (type, reason, level).
pub fn lifecycle(up: &Upstream) -> Vec<(String, String, u64)> {
    up.events()
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("atgw.alert."))
        })
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["data"]["alert"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["data"]["alert"]["level"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A care-team endpoint standing in for a webhook receiver: records every request and answers
/// with whatever status the test sets (optionally slowly).
#[derive(Clone, Default)]
pub struct Receiver {
    pub requests: Arc<Mutex<Vec<Received>>>,
    pub status: Arc<std::sync::atomic::AtomicU16>,
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    pub addr: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
    pub answered: u16,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        let r = Receiver::default();
        r.status.store(200, std::sync::atomic::Ordering::SeqCst);
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let delay = state.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let answered = state.status.load(std::sync::atomic::Ordering::SeqCst);
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    state.requests.lock().unwrap().push(Received {
                        webhook_id: h("webhook-id"),
                        timestamp: h("webhook-timestamp"),
                        signature: h("webhook-signature"),
                        json: serde_json::from_slice(&body).unwrap_or_default(),
                        body: body.to_vec(),
                        answered,
                    });
                    axum::http::StatusCode::from_u16(answered).unwrap_or(axum::http::StatusCode::OK)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *r.addr.lock().unwrap() = Some(listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.lock().unwrap().unwrap())
    }

    pub fn set_status(&self, s: u16) {
        self.status.store(s, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests answered 2xx, as parsed JSON.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|r| r.answered < 300)
            .map(|r| r.json)
            .collect()
    }
}

/// The Standard Webhooks secret the tests use, written to a private file.
pub const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A `[[sink]] type = "webhook"` block pointing at a test receiver.
pub fn webhook_sink(dir: &Path, name: &str, url: &str) -> String {
    let secret = dir.join("webhook-secret");
    write_private(&secret, WEBHOOK_SECRET);
    format!(
        "\n[[sink]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{url}\"\nallow_http = true\nsecret_file = \"{}\"\ntimeout = \"2s\"\n",
        secret.display()
    )
}

/// The local API on a free port with a token file; returns (config block, base URL, token).
pub fn api_block(dir: &Path) -> (String, String, String) {
    let port = atgw::tools::mosquitto::free_port().unwrap();
    let token = format!("test-token-{port}");
    let file = dir.join("api-token");
    write_private(&file, &token);
    (
        format!(
            "\n[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\n",
            file.display()
        ),
        format!("http://127.0.0.1:{port}/api/v1"),
        token,
    )
}

/// A `PYTHONPATH` under which `python3 -c "import {module}"` works: the system's when the
/// package is installed there (as `.ci/run` does), otherwise a private `pip install --target`
/// into Cargo's test scratch directory, so that `cargo test` alone runs the interop tests.
pub fn python_path_with(module: &str, requirement: &str) -> PathBuf {
    let importable = |path: &Path| {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .env("PYTHONPATH", path)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let private = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("python")
        .join(module);
    if importable(Path::new("")) {
        return PathBuf::new();
    }
    if !importable(&private) {
        let out = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&private)
            .arg(requirement)
            .output();
        assert!(
            importable(&private),
            "this interop test runs the Python package `{requirement}`: install Python 3 and \
             `python3 -m pip install {requirement}` (pip said: {out:?})"
        );
    }
    private
}

/// One BLE-hub oximeter reading (`config/profiles/ble-hub-oximeter.toml`), taken at `scan_time`.
pub fn oximeter(scan_time: i64, spo2: i64, pulse: i64) -> String {
    serde_json::json!({
        "type": "reportAttribute", "mac": "DC:DA:0C:5A:80:44",
        "data": {"attribute": "Oximeter JUMPER", "mac": "DC:DA:0C:5A:80:44",
                 "value": {"device_list": [{"scan_time": scan_time, "ble_addr": "ff23041920b4",
                                            "pulse": pulse, "spo2": spo2, "pi": 40}]}}
    })
    .to_string()
}

pub fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(
        path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode),
    )
    .unwrap();
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
pub fn make_pki(dir: &Path, prefix: &str) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{prefix} test CA"));
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    write_mode(&dir.join(format!("{prefix}-ca.pem")), &ca.pem(), 0o644);

    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca).unwrap();
    write_mode(
        &dir.join(format!("{prefix}-server.pem")),
        &server_cert.pem(),
        0o644,
    );
    write_mode(
        &dir.join(format!("{prefix}-server.key")),
        &server_key.serialize_pem(),
        0o600,
    );

    let client = rcgen::CertificateParams::new(vec!["atgw-gateway".to_string()]).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &ca).unwrap();
    write_mode(
        &dir.join(format!("{prefix}-client.pem")),
        &client_cert.pem(),
        0o644,
    );
    write_mode(
        &dir.join(format!("{prefix}-client.key")),
        &client_key.serialize_pem(),
        0o600,
    );
}
