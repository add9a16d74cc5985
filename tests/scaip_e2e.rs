//! The SCAIP receiver in the real binary, over real UDP and TCP sockets on loopback:
//! - interop with SIPp (Debian `sip-tester`), an independent SIP implementation, running the
//!   shared SCAIP scenarios (`tests/fixtures/scaip/`, adapted: a digest-authenticating one);
//! - no `200 OK` and no `<mrs>` before the commit: while the journal cannot commit, the unit
//!   hears nothing; its retry is answered once the journal takes it, and journaled once;
//! - digest authentication: no credentials → `401`, no event; wrong → `403`, counted; right →
//!   answered;
//! - bad requests: malformed XML, a missing mandatory tag, an over-long element → their `snu`,
//!   a dead letter, and the next good alarm is answered;
//! - supervision: a unit whose heartbeats stop raises `device_offline`; the next clears it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use atgw_scaip::codec::Response;
use atgw_scaip::simulator::{SimTransport, SimulatorConfig, Step, simulate};
use atgw_scaip::sip::framing::{Frame, Framer};
use atgw_scaip::sip::{Message, StartLine};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "s3cret-unit-678";

/// A gateway with one SCAIP adapter `units` on UDP and TCP `port`, the unit 678 registered in
/// room 12. `auth`: the unit must authenticate (account 678); otherwise any sender is taken.
fn scaip_config(dir: &Path, port: u16, auth: bool, extra: &str) -> String {
    let pw = write_secret(&dir.join("unit-678.pass"), &format!("{PASSWORD}\n"));
    let access = if auth {
        format!(
            "accounts = [{{ user = \"678\", password_file = \"{}\" }}]",
            pw.display()
        )
    } else {
        "allow_unauthenticated = true".to_owned()
    };
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"

[[adapter]]
name = "units"
type = "scaip"
listen_udp = "127.0.0.1:{port}"
listen_tcp = "127.0.0.1:{port}"
{access}
heartbeat_interval = "30m"

[[device]]
id = "unit-678"
adapter = "units"
match = {{ cid = "678" }}
resident = "res-0678"
location = {{ area = "east", room = "12" }}
{extra}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        audit = dir.join("events.jsonl").display(),
    )
}

struct Rig {
    gw: Gateway,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(auth: bool, extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_udp_port();
        let gw = Gateway::start(dir.path(), &scaip_config(dir.path(), port, auth, extra));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until_async(Duration::from_secs(20), || {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .await
        .unwrap_or_else(|_| panic!("the SCAIP adapter never listened:\n{}", gw.log_text()));
        Rig {
            gw,
            addr,
            _dir: dir,
        }
    }

    fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.gw
            .column::<String>(&format!(
                "SELECT json FROM events WHERE kind = '{kind}' ORDER BY seq"
            ))
            .iter()
            .map(|j| serde_json::from_str(j).unwrap())
            .collect()
    }

    fn unit(&self, transport: SimTransport, steps: Vec<Step>) -> SimulatorConfig {
        let mut c = SimulatorConfig::new(self.addr, "678");
        c.transport = transport;
        c.password = Some(PASSWORD.into());
        c.dty = 5;
        c.stc = Some(9);
        c.lco = Some(11);
        c.steps = steps;
        c
    }
}

// ---------------------------------------------------------------------------------------------
// Interop with SIPp

/// The `sipp` binary, or `None` (outside CI) when it is not installed. In CI (`CI=true`) a
/// missing SIPp fails the test loudly: `.ci/run` installs it.
fn sipp() -> Option<PathBuf> {
    let found = ["/usr/bin/sipp", "/usr/local/bin/sipp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        let msg = "SIPp (`sipp`, Debian package sip-tester) is not installed: the SCAIP interop test cannot run (apt-get install sip-tester)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED LOUDLY: {msg}");
    }
    found
}

fn scenario(name: &str) -> PathBuf {
    repo().join("tests/fixtures/scaip").join(name)
}

/// Runs one SIPp call of `scenario` against the gateway; returns (passed, its output).
fn run_sipp(
    sipp: &Path,
    target: SocketAddr,
    scenario: &Path,
    tcp: bool,
    args: &[&str],
) -> (bool, String) {
    let local = atgw::tools::mosquitto::free_port().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(sipp)
        .current_dir(dir.path())
        .arg(target.to_string())
        .args(["-sf"])
        .arg(scenario)
        .args(["-t", if tcp { "t1" } else { "u1" }])
        .args(["-i", "127.0.0.1", "-p", &local, "-m", "1", "-nostdin"])
        .args(["-timeout", "15s", "-timeout_error", "-trace_err"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sipp runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
        text.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
    }
    let passed = out.status.success() && text.contains("Successful call") && {
        // The statistics' cumulative "Successful call" column must read 1.
        text.lines()
            .filter(|l| l.trim_start().starts_with("Successful call"))
            .any(|l| l.split('|').nth(2).is_some_and(|c| c.trim() == "1"))
    };
    (passed, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_units_over_udp_and_tcp_authenticate_get_200_then_mrs_and_are_journaled_with_the_registry_room()
 {
    let Some(sipp) = sipp() else { return };
    let rig = Rig::start(true, "").await;
    let auth = scenario("scaip-luc-uac-auth.sipp.xml");
    for (tcp, reference) in [(false, "1243"), (true, "1244")] {
        let (ok, out) = run_sipp(
            &sipp,
            rig.addr,
            &auth,
            tcp,
            &["-key", "ref", reference, "-au", "678", "-ap", PASSWORD],
        );
        assert!(
            ok,
            "SIPp (tcp: {tcp}) failed:\n{out}\n{}",
            rig.gw.log_text()
        );
    }
    let falls = rig.events("fall");
    assert_eq!(falls.len(), 2, "{falls:#?}");
    let v = schema();
    for (e, reference) in falls.iter().zip(["1243", "1244"]) {
        assert_eq!(e["data"]["device"]["id"], "unit-678");
        assert_eq!(e["data"]["location"]["room"], "12");
        assert_eq!(e["data"]["location"]["zone"], "bathroom");
        assert_eq!(e["data"]["resident"]["id"], "res-0678");
        assert_eq!(e["data"]["codes"]["scaip"], "dty=0005;stc=0009;lco=011");
        assert_eq!(e["data"]["raw"]["upstream_id"], reference);
        assert_schema_valid(&v, e);
    }
    // The shared scenario does not authenticate: SIPp sees our 401 where it wants a 200.
    let (ok, out) = run_sipp(
        &sipp,
        rig.addr,
        &scenario("scaip-luc-uac.sipp.xml"),
        false,
        &[],
    );
    assert!(!ok, "an unauthenticated unit was answered 200:\n{out}");
    assert!(out.contains("401"), "{out}");
    assert_eq!(
        rig.events("fall").len(),
        2,
        "the unauthenticated alarm made no event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_sipp_scenario_passes_unchanged_on_a_lan_receiver_over_udp_and_tcp() {
    let Some(sipp) = sipp() else { return };
    let rig = Rig::start(false, "").await;
    let shared = scenario("scaip-luc-uac.sipp.xml");
    let (ok, out) = run_sipp(&sipp, rig.addr, &shared, false, &[]);
    assert!(ok, "SIPp over UDP failed:\n{out}\n{}", rig.gw.log_text());
    // The same request again over TCP is a retransmission (same cid, ref and content):
    // answered again, journaled once.
    let (ok, out) = run_sipp(&sipp, rig.addr, &shared, true, &[]);
    assert!(ok, "SIPp over TCP failed:\n{out}\n{}", rig.gw.log_text());
    let falls = rig.events("fall");
    assert_eq!(falls.len(), 1, "{falls:#?}");
    assert_eq!(falls[0]["data"]["location"]["room"], "12");
    assert_eq!(falls[0]["data"]["raw"]["upstream_id"], "1242");
}

// ---------------------------------------------------------------------------------------------
// A raw unit: one MESSAGE with any body, its answers collected

enum Wire {
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream, Framer),
}

struct RawUnit {
    wire: Wire,
    local: SocketAddr,
    target: SocketAddr,
}

/// What came back for one request.
#[derive(Debug, Default)]
struct Heard {
    statuses: Vec<u16>,
    mrs: Vec<Response>,
}

impl RawUnit {
    async fn udp(target: SocketAddr) -> RawUnit {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(target).await.unwrap();
        let local = s.local_addr().unwrap();
        RawUnit {
            wire: Wire::Udp(s),
            local,
            target,
        }
    }

    async fn tcp(target: SocketAddr) -> RawUnit {
        let s = tokio::net::TcpStream::connect(target).await.unwrap();
        let local = s.local_addr().unwrap();
        RawUnit {
            wire: Wire::Tcp(s, Framer::default()),
            local,
            target,
        }
    }

    fn message(&self, body: &str, branch: &str, call_id: &str) -> Vec<u8> {
        let t = match self.wire {
            Wire::Udp(_) => "UDP",
            Wire::Tcp(..) => "TCP",
        };
        let mut m = Message::request("MESSAGE", &format!("sip:arc@{}", self.target));
        m.push("Via", format!("SIP/2.0/{t} {};branch={branch}", self.local));
        m.push("From", format!("<sip:678@{}>;tag=raw", self.local));
        m.push("To", format!("<sip:arc@{}>", self.target));
        m.push("Call-ID", call_id);
        m.push("CSeq", "1 MESSAGE");
        m.push("Contact", format!("<sip:678@{}>", self.local));
        m.push("Content-Type", "application/scaip+xml");
        m.body = body.as_bytes().to_vec();
        m.encode()
    }

    async fn send(&mut self, bytes: &[u8]) {
        match &mut self.wire {
            Wire::Udp(s) => {
                s.send(bytes).await.unwrap();
            }
            Wire::Tcp(s, _) => s.write_all(bytes).await.unwrap(),
        }
    }

    /// Everything heard for `within`, answering every request 200.
    async fn listen(&mut self, within: Duration, heard: &mut Heard) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let msg = match &mut self.wire {
                Wire::Udp(s) => {
                    let mut buf = vec![0u8; 65535];
                    match tokio::time::timeout(left, s.recv(&mut buf)).await {
                        Ok(Ok(n)) => Message::parse(&buf[..n]).ok(),
                        _ => return,
                    }
                }
                Wire::Tcp(s, f) => match f.next_frame().unwrap() {
                    Some(Frame::Message(raw)) => Message::parse(&raw).ok(),
                    Some(Frame::Ping) => None,
                    None => {
                        let mut buf = [0u8; 4096];
                        match tokio::time::timeout(left, s.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => {
                                f.push(&buf[..n]);
                                None
                            }
                            _ => return,
                        }
                    }
                },
            };
            let Some(msg) = msg else { continue };
            match msg.start {
                StartLine::Response { code, .. } => heard.statuses.push(code),
                StartLine::Request { .. } => {
                    if let Ok(r) = Response::decode(&msg.body) {
                        heard.mrs.push(r);
                    }
                    let ok = msg.response(200, "OK", "raw").encode();
                    self.send(&ok).await;
                }
            }
        }
    }

    /// Sends `body` as a unit does (UDP: retransmitted every 500 ms) until a final response
    /// and an `<mrs>` arrived, or `within`.
    async fn ask(&mut self, body: &str, within: Duration) -> Heard {
        let branch = format!("z9hG4bK{:x}", rand::random::<u64>());
        let call = format!("{:x}@raw", rand::random::<u64>());
        let bytes = self.message(body, &branch, &call);
        let mut heard = Heard::default();
        let deadline = Instant::now() + within;
        self.send(&bytes).await;
        while Instant::now() < deadline && (heard.statuses.is_empty() || heard.mrs.is_empty()) {
            self.listen(Duration::from_millis(500), &mut heard).await;
            if heard.statuses.is_empty() && matches!(self.wire, Wire::Udp(_)) {
                self.send(&bytes).await;
            }
        }
        heard
    }
}

const FALL: &str = "<mrq><ref>7001</ref><cid>678</cid><dty>5</dty><stc>9</stc><lco>11</lco></mrq>";

// ---------------------------------------------------------------------------------------------
// Ack after commit

/// Holds SQLite's write lock on the journal until released.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(gw: &Gateway) -> WriteLock {
        let c = rusqlite::Connection::open(gw.dir.join("state/atgw.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        WriteLock(c)
    }

    fn release(self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_200_or_mrs_before_the_commit_and_the_units_retry_is_answered_once_the_journal_takes_it()
{
    let rig = Rig::start(false, "").await;
    for (tcp, reference) in [(false, "7101"), (true, "7102")] {
        let body = FALL.replace("7001", reference);
        let mut unit = if tcp {
            RawUnit::tcp(rig.addr).await
        } else {
            RawUnit::udp(rig.addr).await
        };
        let lock = WriteLock::take(&rig.gw);
        // The unit sends, and over UDP retransmits, for 3 s while nothing can commit.
        let held = unit.ask(&body, Duration::from_secs(3)).await;
        assert!(
            !held.statuses.iter().any(|c| (200..300).contains(c)) && held.mrs.is_empty(),
            "answered while the journal could not commit (tcp: {tcp}): {held:?}\n{}",
            rig.gw.log_text()
        );
        lock.release();
        // The unit's retry (UDP: its retransmission; TCP: its SCAIP-level resend, the same
        // request in a new transaction) is answered now.
        let mut after = Heard::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && (after.mrs.is_empty() || !after.statuses.contains(&200))
        {
            let h = unit.ask(&body, Duration::from_secs(3)).await;
            after.statuses.extend(h.statuses);
            after.mrs.extend(h.mrs);
        }
        assert!(
            after.statuses.contains(&200),
            "no 200 after the commit (tcp: {tcp}): {after:?}\n{}",
            rig.gw.log_text()
        );
        let mrs = after.mrs.first().unwrap();
        assert_eq!((mrs.reference.as_deref(), mrs.snu), (Some(reference), 0));
        assert_eq!(mrs.mre, Some(0), "no voice bridging");
        let journaled: Vec<_> = rig
            .events("fall")
            .into_iter()
            .filter(|e| e["data"]["raw"]["upstream_id"] == reference)
            .collect();
        assert_eq!(journaled.len(), 1, "journaled once (tcp: {tcp})");
    }
}

// ---------------------------------------------------------------------------------------------
// Digest authentication

async fn metric(api: &str, token: &str, name_and_labels: &str) -> f64 {
    let root = api.trim_end_matches("/api/v1");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = reqwest::Client::new()
        .get(format!("{root}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_unit_gets_401_and_no_event_wrong_credentials_are_refused_and_counted_right_ones_pass()
 {
    let tmp = tempfile::tempdir().unwrap();
    let (api, base, token) = api_block(tmp.path());
    let rig = Rig::start(true, &api).await;
    let auth_failed = "atgw_rejected_total{component=\"adapter:units\",reason=\"auth_failed\"}";
    for transport in [SimTransport::Udp, SimTransport::Tcp] {
        let mut none = rig.unit(transport, vec![Step::Alarm]);
        none.password = None;
        let r = simulate(none).await.unwrap();
        let x = &r.exchanges[0];
        assert_eq!(x.status, Some(401), "{x:?}");
        assert!(x.mrs.is_none(), "no <mrs> for an unauthenticated unit");

        let before = metric(&base, &token, auth_failed).await;
        let mut wrong = rig.unit(transport, vec![Step::Alarm]);
        wrong.password = Some("not-the-password".into());
        let r = simulate(wrong).await.unwrap();
        assert_eq!(r.exchanges[0].status, Some(403), "{:?}", r.exchanges[0]);
        assert!(r.exchanges[0].mrs.is_none());
        assert_eq!(
            metric(&base, &token, auth_failed).await,
            before + 1.0,
            "refusals are counted"
        );
    }
    assert!(
        rig.events("fall").is_empty(),
        "no event without the right credentials"
    );
    for transport in [SimTransport::Udp, SimTransport::Tcp] {
        let r = simulate(rig.unit(transport, vec![Step::Alarm]))
            .await
            .unwrap();
        assert!(r.all_good(), "{:?}\n{}", r.exchanges, rig.gw.log_text());
        assert_eq!(r.exchanges[0].challenges, 1, "challenged, then answered");
    }
    assert_eq!(rig.events("fall").len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Bad requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_a_missing_tag_and_an_overlong_element_get_their_snu_and_a_dead_letter_and_service_goes_on()
 {
    let rig = Rig::start(false, "").await;
    let cases = [
        (
            "<mrq><ref>8001</ref><cid>678</cid><dty>5</dty>",
            2,
            Some("8001"),
            "invalid_format",
        ),
        (
            "<mrq><ref>8002</ref><dty>5</dty></mrq>",
            7,
            Some("8002"),
            "missing_tag",
        ),
        (
            "<mrq><ref>8003</ref><cid>678</cid><dty>5</dty><stt>this status text is far longer than thirty-two</stt></mrq>",
            1,
            Some("8003"),
            "too_long",
        ),
        (
            "<mrq><cid>678</cid><dty>5</dty></mrq>",
            10,
            None,
            "missing_ref",
        ),
        (
            "<mrq><ref>8005</ref><cid>six</cid><dty>5</dty></mrq>",
            3,
            Some("8005"),
            "wrong_content",
        ),
    ];
    for tcp in [false, true] {
        let mut unit = if tcp {
            RawUnit::tcp(rig.addr).await
        } else {
            RawUnit::udp(rig.addr).await
        };
        for (body, snu, reference, _) in cases {
            let h = unit.ask(body, Duration::from_secs(10)).await;
            assert_eq!(h.statuses, [200], "{body}: {h:?}");
            let mrs = h
                .mrs
                .first()
                .unwrap_or_else(|| panic!("{body}: no <mrs>: {h:?}"));
            assert_eq!(
                (mrs.snu, mrs.reference.as_deref()),
                (snu, reference),
                "{body}"
            );
        }
        // The service goes on: a good alarm is answered snu 0.
        let good = FALL.replace("7001", if tcp { "8102" } else { "8101" });
        let h = unit.ask(&good, Duration::from_secs(10)).await;
        assert_eq!(h.mrs.first().map(|m| m.snu), Some(0), "{h:?}");
    }
    let letters = dead_letters(&rig.gw);
    for (_, _, _, reason) in cases {
        assert_eq!(letters.get(reason), Some(&2), "{reason}: {letters:?}");
    }
    assert_eq!(rig.events("fall").len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Supervision

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_whose_heartbeats_stop_raises_device_offline_and_its_next_heartbeat_clears_it() {
    let rig = Rig::start(true, "check_in = \"2s\"").await;
    let mut beat = rig.unit(SimTransport::Udp, vec![Step::Heartbeat]);
    beat.hbo = true;
    let r = simulate(beat.clone()).await.unwrap();
    assert!(r.all_good(), "{:?}", r.exchanges);
    assert_eq!(
        r.exchanges[0].mrs.as_ref().and_then(|m| m.hbi),
        Some(30),
        "hbi answered for hbo"
    );
    assert!(
        rig.events("heartbeat").is_empty(),
        "a heartbeat is a check-in, not an event"
    );
    let offline = |phase: &str| {
        rig.events("device_offline")
            .into_iter()
            .filter(|e| e["data"]["phase"] == phase)
            .count()
    };
    wait_until_async(Duration::from_secs(20), || offline("raised") == 1)
        .await
        .unwrap_or_else(|_| panic!("no device_offline:\n{}", rig.gw.log_text()));
    assert_eq!(offline("cleared"), 0);
    let r = simulate(beat).await.unwrap();
    assert!(r.all_good(), "{:?}", r.exchanges);
    wait_until_async(Duration::from_secs(20), || offline("cleared") == 1)
        .await
        .unwrap_or_else(|_| panic!("device_offline never cleared:\n{}", rig.gw.log_text()));
    let raised = rig.events("device_offline");
    assert_eq!(raised[0]["data"]["device"]["id"], "unit-678");
}

// ---------------------------------------------------------------------------------------------
// mty: update and reset

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_and_a_reset_of_one_ref_reach_the_journal_as_raised_again_then_cleared() {
    let rig = Rig::start(true, "").await;
    let r = simulate(rig.unit(
        SimTransport::Tcp,
        vec![Step::Alarm, Step::Update, Step::Reset],
    ))
    .await
    .unwrap();
    assert!(r.all_good(), "{:?}", r.exchanges);
    let phases: Vec<String> = rig
        .events("fall")
        .iter()
        .map(|e| e["data"]["phase"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(phases, ["raised", "raised", "cleared"]);
}

// ---------------------------------------------------------------------------------------------
// Digest replay and request binding

/// One authenticated-or-not MESSAGE over UDP from `sock` (retransmitted every 500 ms until a
/// final response): the final status, its challenges, and the `<mrs>` when one came.
async fn udp_message(
    sock: &tokio::net::UdpSocket,
    request_uri: &str,
    body: &str,
    authorization: Option<&str>,
) -> (Option<u16>, Vec<String>, Option<Response>) {
    let local = sock.local_addr().unwrap();
    let branch = format!("z9hG4bK{:x}", rand::random::<u64>());
    let call = format!("{:x}@replay", rand::random::<u64>());
    let mut m = Message::request("MESSAGE", request_uri);
    m.push("Via", format!("SIP/2.0/UDP {local};branch={branch}"));
    m.push("From", format!("<sip:678@{local}>;tag=rp"));
    m.push("To", format!("<{request_uri}>"));
    m.push("Call-ID", call.clone());
    m.push("CSeq", "1 MESSAGE");
    m.push("Contact", format!("<sip:678@{local}>"));
    if let Some(a) = authorization {
        m.push("Authorization", a);
    }
    m.push("Content-Type", "application/scaip+xml");
    m.body = body.as_bytes().to_vec();
    let bytes = m.encode();
    let (mut status, mut challenges, mut mrs) = (None, Vec::new(), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    sock.send(&bytes).await.unwrap();
    while Instant::now() < deadline && !(status.is_some_and(|c| c != 200) || mrs.is_some()) {
        let mut buf = vec![0u8; 65535];
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await
        else {
            if status.is_none() {
                sock.send(&bytes).await.unwrap();
            }
            continue;
        };
        let Ok(msg) = Message::parse(&buf[..n]) else {
            continue;
        };
        match msg.start {
            StartLine::Response { code, .. } if msg.branch() == Some(branch.as_str()) => {
                status = Some(code);
                challenges = msg
                    .headers_named("WWW-Authenticate")
                    .map(str::to_owned)
                    .collect();
            }
            StartLine::Response { .. } => {}
            StartLine::Request { .. } => {
                sock.send(&msg.response(200, "OK", "rp").encode())
                    .await
                    .unwrap();
                if msg.header("Call-ID") == Some(call.as_str()) {
                    mrs = Response::decode(&msg.body).ok();
                }
            }
        }
    }
    (status, challenges, mrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_authorization_and_one_for_another_request_uri_are_refused_over_a_real_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let (api, base, token) = api_block(tmp.path());
    let rig = Rig::start(true, &api).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(rig.addr).await.unwrap();
    let uri = format!("sip:arc@{}", rig.addr);
    let alarm = |r: &str| FALL.replace("7001", r);

    let (status, challenges, _) = udp_message(&sock, &uri, &alarm("9001"), None).await;
    assert_eq!(status, Some(401));
    let auth = challenges
        .iter()
        .find_map(|c| atgw_scaip::sip::digest::answer(c, "678", PASSWORD, "MESSAGE", &uri))
        .expect("a challenge we can answer");
    let (status, _, mrs) = udp_message(&sock, &uri, &alarm("9001"), Some(&auth)).await;
    assert_eq!(status, Some(200), "{}", rig.gw.log_text());
    assert_eq!(mrs.and_then(|m| m.reference).as_deref(), Some("9001"));

    // The captured Authorization again, in a new transaction carrying another alarm (the
    // digest does not cover the body): refused with a fresh challenge, no event.
    let replays = "atgw_rejected_total{component=\"adapter:units\",reason=\"auth_replay\"}";
    let before = metric(&base, &token, replays).await;
    let (status, challenges, mrs) = udp_message(&sock, &uri, &alarm("9002"), Some(&auth)).await;
    assert_eq!(status, Some(401), "a replay is challenged again");
    assert!(mrs.is_none());
    assert!(
        challenges
            .iter()
            .all(|c| atgw_scaip::sip::digest::is_stale(c)),
        "{challenges:?}"
    );
    assert_eq!(metric(&base, &token, replays).await, before + 1.0);

    // A genuine response computed for another Request-URI: refused.
    let other = format!("sip:arc@127.0.0.9:{}", rig.addr.port());
    let (_, challenges, _) = udp_message(&sock, &uri, &alarm("9003"), None).await;
    let foreign = challenges
        .iter()
        .find_map(|c| atgw_scaip::sip::digest::answer(c, "678", PASSWORD, "MESSAGE", &other))
        .unwrap();
    let (status, _, mrs) = udp_message(&sock, &uri, &alarm("9003"), Some(&foreign)).await;
    assert_eq!(status, Some(403), "{}", rig.gw.log_text());
    assert!(mrs.is_none());

    let refs: Vec<_> = rig
        .events("fall")
        .iter()
        .map(|e| e["data"]["raw"]["upstream_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refs, ["9001"], "only the genuine request made an event");
}
