//! A FHIR server for the sink's tests, over real HTTPS on loopback: axum behind tokio-rustls,
//! its certificate from a private CA made here with rcgen. It implements what the sink relies
//! on: a transaction Bundle POSTed to the base, all-or-nothing, each entry a conditional
//! update `PUT <Type>?identifier=<system>|<value>` (the resource stored by identifier: created
//! the first time, replaced after), answered with a transaction-response. It can be told to
//! refuse (500 for the next n transactions, 503 until told otherwise, 410), and it keeps every
//! write in order so tests can check "once" and "in order".
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atgw_sdk::component::Site;
use atgw_sdk::fhir::FhirIds;
use atgw_sdk::sink::Delivery;
use atgw_sdk::testkit::{Peer, PeerMode};
use atgw_sdk::{Kind, Priority};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0123456789abcdefghijklmnop";

/// How the server answers transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 503 until told otherwise.
    Unavailable,
    /// 410 Gone.
    Gone,
}

/// Everything the server holds and saw.
#[derive(Debug)]
pub struct Store {
    pub mode: Mode,
    /// Answer this many more transactions with 500 (before looking at them).
    pub fail_next: u32,
    /// Current resources by `Type|system|value`.
    pub resources: BTreeMap<String, Value>,
    /// Creations per identifier (a second one would be a duplicate).
    pub created: BTreeMap<String, u32>,
    /// Every write applied, in order: (key, resource as stored).
    pub writes: Vec<(String, Value)>,
    /// Event ids of every Observation entry of every transaction that reached the server,
    /// refused or not, in order.
    pub seen_event_ids: Vec<String>,
    pub refused: u32,
    pub accepted: u32,
    pub unauthorized: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            mode: Mode::Accept,
            fail_next: 0,
            resources: BTreeMap::new(),
            created: BTreeMap::new(),
            writes: Vec::new(),
            seen_event_ids: Vec::new(),
            refused: 0,
            accepted: 0,
            unauthorized: 0,
        }
    }
}

pub type Shared = Arc<Mutex<Store>>;

/// A private CA and a `localhost` certificate signed by it.
pub struct Pki {
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

pub fn private_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// TLS on accept, for `axum::serve`. A client that fails the handshake is dropped and the
/// next one accepted.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Starts the server; its FHIR base is `https://localhost:<port>/fhir`.
pub async fn fhir_server(pki: &Pki) -> (String, Shared) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
    };
    let store: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/fhir", axum::routing::post(transaction))
        .with_state(store.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("https://localhost:{port}/fhir"), store)
}

fn fhir(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn outcome(status: StatusCode, code: &str, diagnostics: String) -> Response {
    fhir(
        status,
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}),
    )
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One checked conditional update: (key, resource).
fn conditional_update(e: &Value) -> Result<(String, Value), String> {
    let req = &e["request"];
    if req["method"] != "PUT" {
        return Err(format!("request.method {} is not PUT", req["method"]));
    }
    let url = req["url"].as_str().ok_or("no request.url")?;
    let (ty, query) = url
        .split_once("?identifier=")
        .ok_or("not a conditional update by identifier")?;
    let token = percent_decode(query).ok_or("bad percent-encoding")?;
    let r = &e["resource"];
    if r["resourceType"] != ty {
        return Err(format!("request for {ty} carries a {}", r["resourceType"]));
    }
    let own = format!(
        "{}|{}",
        r["identifier"][0]["system"].as_str().unwrap_or(""),
        r["identifier"][0]["value"].as_str().unwrap_or("")
    );
    if own != token {
        return Err(format!(
            "identifier {own} differs from the condition {token}"
        ));
    }
    Ok((format!("{ty}|{token}"), r.clone()))
}

async fn transaction(State(store): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = store.lock().unwrap();
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        s.unauthorized += 1;
        return outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "bad or missing bearer token".into(),
        );
    }
    let Ok(bundle) = serde_json::from_slice::<Value>(&body) else {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "not JSON".into());
    };
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "not a transaction Bundle".into(),
        );
    }
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    for e in &entries {
        if let Some(v) = e["resource"]["identifier"][0]["value"].as_str()
            && e["resource"]["resourceType"] == "Observation"
        {
            let event = v.split('#').next().unwrap_or(v).to_owned();
            s.seen_event_ids.push(event);
        }
    }
    if s.fail_next > 0 {
        s.fail_next -= 1;
        s.refused += 1;
        return outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "injected failure".into(),
        );
    }
    match s.mode {
        Mode::Accept => {}
        Mode::Unavailable => {
            s.refused += 1;
            return outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "down for now".into(),
            );
        }
        Mode::Gone => {
            s.refused += 1;
            return outcome(
                StatusCode::GONE,
                "not-found",
                "this endpoint is retired".into(),
            );
        }
    }
    // All or nothing: check every entry before writing any.
    let mut updates = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match conditional_update(e) {
            Ok(u) => updates.push(u),
            Err(problem) => {
                s.refused += 1;
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("entry {i}: {problem}"),
                );
            }
        }
    }
    let mut answers = Vec::new();
    for (key, r) in updates {
        let n = s.resources.len();
        let status = if s.resources.insert(key.clone(), r.clone()).is_some() {
            "200 OK"
        } else {
            *s.created.entry(key.clone()).or_default() += 1;
            "201 Created"
        };
        s.writes.push((key, r));
        answers.push(
            json!({"response": {"status": status, "location": format!("Resource/{n}/_history/1")}}),
        );
    }
    s.accepted += 1;
    fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers}),
    )
}

/// The server as the conformance kit's peer.
pub struct FhirPeer(pub Shared);

impl Peer for FhirPeer {
    async fn set_mode(&mut self, mode: PeerMode) -> bool {
        self.0.lock().unwrap().mode = match mode {
            PeerMode::Accept => Mode::Accept,
            PeerMode::RefuseForNow => Mode::Unavailable,
            PeerMode::Gone => Mode::Gone,
        };
        true
    }
    async fn received_ids(&mut self) -> Vec<String> {
        self.0.lock().unwrap().seen_event_ids.clone()
    }
}

/// Two residents with their Patients, two oximeters with their Devices.
pub fn site() -> Site {
    Site {
        gateway_id: "gw-test".into(),
        profiles_dir: PathBuf::from("/nonexistent"),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Arc::new(FhirIds {
            patients: [
                ("res-0042".to_owned(), "Patient/p-42".to_owned()),
                ("res-0043".to_owned(), "Patient/p-43".to_owned()),
            ]
            .into(),
            devices: [
                ("ble:ox-7".to_owned(), "Device/ox-7".to_owned()),
                ("ble:ox-8".to_owned(), "Device/ox-8".to_owned()),
            ]
            .into(),
        }),
    }
}

/// The resident of each test device.
pub fn resident(device: &str) -> &'static str {
    if device == "ble:ox-8" {
        "res-0043"
    } else {
        "res-0042"
    }
}

fn event_id(n: i64) -> String {
    format!("0196484f-0000-7000-8000-{n:012}")
}

fn time(n: i64) -> String {
    format!("2026-04-17T03:{:02}:{:02}.000Z", n / 60, n % 60)
}

/// A `vital_sign` event `n` of `device`: SpO2, heart rate and a perfusion index (not one of
/// ours: never sent); every third also a respiratory rate the sensor could not read, every
/// fourth a body temperature.
pub fn vital(n: i64, device: &str, attempt: u32) -> Delivery {
    let id = event_id(n);
    let mut observations = vec![
        json!({"name": "spo2", "code": {"system": "http://loinc.org", "code": "59408-5"}, "mdc": 150456,
               "value": 90 + (n % 9), "unit": "%", "method": "pulse-oximetry", "status": "final"}),
        json!({"name": "heart_rate", "value": 60 + n, "unit": "/min", "status": "final"}),
        json!({"name": "perfusion_index", "value": 2.5, "unit": "%"}),
    ];
    if n % 3 == 0 {
        observations.push(
            json!({"name": "respiratory_rate", "absent_reason": "not-a-number", "unit": "/min"}),
        );
    }
    if n % 4 == 0 {
        observations.push(json!({"name": "body_temperature", "value": 36.6, "unit": "Cel", "status": "preliminary"}));
    }
    let json = json!({
        "specversion": "1.0", "id": id, "source": "urn:atgw:gw-test:ble", "type": "atgw.vital_sign",
        "time": time(n), "recordedtime": time(n), "sequence": format!("{n:020}"),
        "datacontenttype": "application/json", "dataschema": "urn:atgw:schema:event:1",
        "data": {"kind": "vital_sign", "phase": "point", "priority": "info", "test": false,
          "device": {"id": device, "adapter": "ble", "registered": true},
          "location": {"site": "oakview", "area": "east", "room": "14"},
          "resident": {"id": resident(device)},
          "observations": observations}
    });
    delivery(
        n,
        &id,
        device,
        Kind::VitalSign,
        Priority::Info,
        json,
        attempt,
        None,
    )
}

/// Alert lifecycle event `n` of `device`'s fall alert `alert`, its status after it.
pub fn lifecycle(n: i64, device: &str, alert: &str, status: &str, attempt: u32) -> Delivery {
    let id = event_id(n);
    let phase = match status {
        "open" => "raised",
        "acknowledged" => "acknowledged",
        _ => "resolved",
    };
    let json = json!({
        "specversion": "1.0", "id": id, "source": "urn:atgw:gw-test:alerts",
        "type": format!("atgw.alert.{phase}"),
        "time": time(n), "recordedtime": time(n), "sequence": format!("{n:020}"),
        "correlationid": alert,
        "datacontenttype": "application/json", "dataschema": "urn:atgw:schema:event:1",
        "data": {"kind": "fall", "phase": phase, "priority": "high", "test": false,
          "device": {"id": device, "adapter": "ble", "registered": true},
          "location": {"site": "oakview", "area": "east", "room": "14"},
          "resident": {"id": resident(device)},
          "message": "Acknowledged by Jane Smith",
          "alert": {"id": alert, "status": status, "level": 0, "reason": phase, "policy": "falls",
                    "by": "Jane Smith"}}
    });
    delivery(
        n,
        &id,
        device,
        Kind::Fall,
        Priority::High,
        json,
        attempt,
        Some(alert),
    )
}

#[allow(clippy::too_many_arguments)]
fn delivery(
    n: i64,
    id: &str,
    device: &str,
    kind: Kind,
    priority: Priority,
    json: Value,
    attempt: u32,
    alert: Option<&str>,
) -> Delivery {
    Delivery {
        outbox_id: n,
        event_id: id.into(),
        kind,
        priority,
        device_id: device.into(),
        json: json.to_string().into(),
        attempt,
        alert_id: alert.map(Into::into),
        lifecycle: alert.is_some(),
        recipients: Default::default(),
    }
}

/// A private file holding `text`.
pub fn write_private(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A sink config for the server at `base`, trusting only the test CA.
pub fn config(dir: &tempfile::TempDir, pki: &Pki, base: &str) -> atgw_fhir::FhirConfig {
    let token = write_private(dir, "fhir.token", TOKEN);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let mut c = atgw_fhir::FhirConfig::new("ehr", base, token);
    c.ca_file = Some(ca);
    c.ca_only = true;
    c.max_batch = 4;
    c
}

/// Resources a delivery becomes: one per observation of ours, one per alert event.
pub fn resources_of(d: &Delivery) -> usize {
    if d.lifecycle {
        return 1;
    }
    let e: Value = serde_json::from_str(&d.json).unwrap();
    e["data"]["observations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["name"] != "perfusion_index")
        .count()
}
