//! What the email sink's tests share: a real SMTP server (aiosmtpd, `smtp_server.py`), a
//! private CA for its certificate, the sink started through the component contract, and alert
//! events shaped as the core journals them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atgw_email::{EmailConfig, EmailSink};
use atgw_sdk::component::{Sink, SinkContext, Site};
use atgw_sdk::event::{AlertInfo, Event, EventDraft, Location};
use atgw_sdk::sink::{Delivery, Outcome, SinkIo};
use atgw_sdk::{Health, Kind, Phase, Priority, Shutdown};
use tokio::sync::mpsc;

pub const FROM: &str = "Oakview alerts <atgw@oakview.example>";
pub const TO: [&str; 2] = [
    "night@oakview.example",
    "Duty manager <duty@oakview.example>",
];

/// How the test server is to behave.
#[derive(Default)]
pub struct ServerOpts {
    /// `none`, `starttls` or `implicit`.
    pub tls: &'static str,
    /// PEM certificate chain and key (for TLS).
    pub cert: Option<(String, String)>,
    /// Require AUTH as this user with this password.
    pub auth: Option<(&'static str, &'static str)>,
    /// Answer 451 to the first N messages.
    pub tempfail: u32,
}

/// One DATA the server answered, as Python's `email` parser read the message.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub code: u64,
    pub tls: bool,
    pub authenticated: bool,
    pub rcpt_tos: Vec<String>,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: String,
}

impl Attempt {
    /// The one value of header `name` (lower case), or "".
    pub fn header(&self, name: &str) -> String {
        self.headers[name]
            .as_array()
            .and_then(|v| v.first())
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

/// The aiosmtpd server, stopped when dropped (its stdin closes and it is killed).
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    pub fn start(opts: ServerOpts) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let mut cmd = Command::new("python3");
        cmd.env("PYTHONPATH", python_path())
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--tls")
            .arg(if opts.tls.is_empty() {
                "none"
            } else {
                opts.tls
            })
            .arg("--tempfail")
            .arg(opts.tempfail.to_string());
        if let Some((cert, key)) = &opts.cert {
            let (c, k) = (dir.path().join("server.pem"), dir.path().join("server.key"));
            std::fs::write(&c, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            cmd.arg("--cert").arg(c).arg("--key").arg(k);
        }
        if let Some((user, password)) = opts.auth {
            let p = dir.path().join("server-password");
            std::fs::write(&p, password).unwrap();
            cmd.arg("--user").arg(user).arg("--password-file").arg(p);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP test server did not start (is aiosmtpd installed? `python3 -m pip install aiosmtpd`): {line:?}")
            });
        SmtpServer { port, dir, child }
    }

    /// `accept`, `tempfail` or `permfail` from the next DATA on.
    pub fn set_mode(&self, mode: &str) {
        let tmp = self.dir.path().join(".mode.tmp");
        std::fs::write(&tmp, mode).unwrap();
        std::fs::rename(tmp, self.dir.path().join("mode")).unwrap();
    }

    /// Every DATA answered so far, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("attempt-") && n.ends_with(".json"))
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                Attempt {
                    code: v["code"].as_u64().unwrap(),
                    tls: v["tls"].as_bool().unwrap(),
                    authenticated: v["authenticated"].as_bool().unwrap(),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_owned())
                        .collect(),
                    headers: v["headers"].as_object().unwrap().clone(),
                    body: v["body"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// The messages the server accepted (answered 250).
    pub fn accepted(&self) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.code == 250)
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `PYTHONPATH` under which aiosmtpd imports: the system's when it is installed there (as
/// `.ci/run` does), else a private `pip install --target` in Cargo's test scratch directory
/// (one per test binary, so two binaries never install into one directory at once), so that
/// `cargo test` alone runs these tests.
fn python_path() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let importable = |path: &Path| {
            Command::new("python3")
                .args(["-c", "import aiosmtpd"])
                .env("PYTHONPATH", path)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if importable(Path::new("")) {
            return PathBuf::new();
        }
        let private = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("python-aiosmtpd")
            .join(env!("CARGO_CRATE_NAME"));
        if !importable(&private) {
            let out = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--target"])
                .arg(&private)
                .arg("aiosmtpd==1.4.6")
                .output();
            assert!(
                importable(&private),
                "these tests run a real SMTP server, aiosmtpd: install Python 3 and \
                 `python3 -m pip install aiosmtpd` (pip said: {out:?})"
            );
        }
        private
    })
    .clone()
}

/// A private CA (PEM) and a certificate for `127.0.0.1` and `localhost` signed by it (PEM
/// chain, PEM key).
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn private_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A private file (mode 600), as secrets must be.
pub fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A config for the test server on loopback, `tls` as given.
pub fn config(port: u16, tls: atgw_email::TlsMode) -> EmailConfig {
    let mut c = EmailConfig::new(
        "night-team",
        "127.0.0.1",
        FROM,
        TO.iter().map(|t| t.to_string()).collect(),
    );
    c.port = Some(port);
    c.tls = tls;
    c.timeout = Duration::from_secs(10);
    c
}

pub fn site() -> Site {
    Site {
        gateway_id: "gw-oakview".into(),
        profiles_dir: PathBuf::from("/nonexistent"),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    }
}

/// The sink started as the core starts it, and the core's ends of its channels.
pub struct Running {
    pub to_sink: mpsc::Sender<Delivery>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
    pub health: Arc<Health>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(config: EmailConfig) -> Running {
        let prepared = EmailSink::check(&config, &site()).unwrap_or_else(|e| panic!("check: {e}"));
        let (to_sink, deliveries) = mpsc::channel(EmailSink::window(&config));
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let (alert_requests, _) = mpsc::channel(1);
        let health = Arc::new(Health::default());
        let shutdown = Shutdown::new();
        let ctx = SinkContext {
            site: site(),
            io: SinkIo {
                deliveries,
                outcomes: outcomes_tx,
            },
            health: health.clone(),
            clock: Arc::new(atgw_sdk::clock::SystemClock),
            shutdown: shutdown.clone(),
            intake_shutdown: Shutdown::new(),
            alert_requests,
            extra_health: Default::default(),
        };
        let tasks = prepared
            .start(ctx)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        Running {
            to_sink,
            outcomes,
            health,
            shutdown,
            task: tokio::spawn(tasks.output),
        }
    }

    /// Offers one delivery and waits for its outcome.
    pub async fn deliver(&mut self, d: Delivery) -> Outcome {
        self.to_sink.send(d).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.outcomes.recv())
            .await
            .expect("no outcome within 20 s")
            .expect("the sink closed its outcomes")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the sink did not stop within 5 s")
            .unwrap();
    }
}

pub const ALERT_ID: &str = "0190f1a2-7b3c-7d4e-8f50-000000000009";

/// An alert lifecycle event for the fall in Room 9 as the core journals it (`reason`,
/// `phase`, `status`, escalation `level`, who acted), delivered as attempt `attempt`.
pub fn lifecycle(
    n: i64,
    phase: Phase,
    reason: &str,
    status: &str,
    level: u32,
    by: Option<&str>,
    attempt: u32,
) -> Delivery {
    let mut data = EventDraft::new(Kind::Fall, phase, "radar-9", "zigbee").data;
    data.priority = Priority::High;
    data.device.registered = true;
    data.location = Location {
        site: "oakview".into(),
        area: Some("West wing".into()),
        room: Some("9".into()),
        zone: None,
    };
    data.message = Some(format!("{reason}: Fall - Room 9, West wing"));
    data.alert = Some(AlertInfo {
        id: ALERT_ID.into(),
        status: status.into(),
        level,
        reason: reason.into(),
        policy: "default".into(),
        by: by.map(str::to_owned),
        outcome: None,
        note: None,
    });
    let id = format!("0190f1a2-0000-7000-8000-{n:012}");
    let t: jiff::Timestamp = "2026-04-17T15:33:22.184Z".parse().unwrap();
    let event = Event {
        specversion: "1.0".into(),
        id: id.clone(),
        source: "urn:atgw:gw-oakview:alerts".into(),
        event_type: Event::alert_type(phase),
        time: t,
        recordedtime: t,
        sequence: atgw_sdk::event::format_sequence(n as u64),
        correlationid: Some(ALERT_ID.into()),
        causationid: None,
        subject: Some(data.location.subject()),
        datacontenttype: "application/json".into(),
        dataschema: atgw_sdk::event::DATA_SCHEMA_V1.into(),
        data,
    };
    Delivery {
        outbox_id: n,
        event_id: id.into(),
        kind: Kind::Fall,
        priority: Priority::High,
        device_id: "radar-9".into(),
        json: serde_json::to_string(&event).unwrap().into(),
        attempt,
        alert_id: Some(ALERT_ID.into()),
        lifecycle: true,
        recipients: Default::default(),
    }
}

/// The raise of the fall alert.
pub fn raise(attempt: u32) -> Delivery {
    lifecycle(1, Phase::Raised, "raised", "open", 0, None, attempt)
}
