//! The sms sink, added by its crate and one registry line, in the real daemon: a pendant press
//! becomes an alert, and the alert's raise reaches an SMPP peer (`adapters/sms/tests/peer`, the
//! npm `smpp` package as the SMSC) as one GSM-7 text with the room in it; the delivery receipt
//! is answered and logged by message id, never with the number.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The SMPP peer, read line by line on a thread.
struct Smsc {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smsc(system_id: &str, password: &str) -> Smsc {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/sms/tests/peer");
    ensure_peer(&dir);
    let mut child = Command::new("node")
        .arg(dir.join("smsc.js"))
        .args([system_id, password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (Node.js) must be installed to run the SMPP peer");
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    let mut port = 0;
    wait_until(Duration::from_secs(20), || {
        port = lines
            .lock()
            .unwrap()
            .iter()
            .find(|v| v["event"] == "listening")
            .and_then(|v| v["port"].as_u64())
            .unwrap_or(0) as u16;
        port != 0
    })
    .expect("smsc.js did not start listening");
    Smsc { child, port, lines }
}

impl Smsc {
    fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        let l = self.lines.lock().unwrap();
        l.iter().filter(|v| v["event"] == kind).cloned().collect()
    }
}

#[test]
fn a_pendant_alert_reaches_carers_phones_as_one_gsm7_text_with_the_room() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let peer = smsc("oakview-gw", "pw-8chr!");
    let password = dir.join("smsc.password");
    std::fs::write(&password, "pw-8chr!\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = free_tcp_udp_port();
    let text = format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[[sink]]
name = "night-carers"
type = "sms"
host = "127.0.0.1"
port = {smsc}
tls = false
system_id = "oakview-gw"
password_file = "{password}"
source_addr = "Oakview"
to = ["+447700900123", "+447700900456"]

[[route]]
name = "carers"
sinks = ["night-carers"]

[[policy]]
name = "calls"
match = {{ kind = ["pendant_press"] }}
notify = ["carers"]

[[adapter]]
name = "line"
type = "example-line"
listen = "127.0.0.1:{port}"

[[device]]
id = "pendant-room-7"
adapter = "line"
match = {{ device = "pendant-7" }}
location = {{ area = "East wing", room = "7" }}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        smsc = peer.port,
        password = password.display(),
    );
    let gw = Gateway::start(dir, &text);
    let mut stream = None;
    wait_until(Duration::from_secs(20), || {
        stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        stream.is_some()
    })
    .unwrap_or_else(|_| panic!("the adapter never listened:\n{}", gw.log_text()));
    let mut stream = stream.unwrap();
    stream.write_all(b"1 pendant-7 pendant_press\n").unwrap();

    wait_until(Duration::from_secs(20), || peer.events("submit").len() >= 2)
        .unwrap_or_else(|_| panic!("no SMS reached the peer:\n{}", gw.log_text()));
    let submits = peer.events("submit");
    assert_eq!(submits.len(), 2, "one text per number: {submits:#?}");
    let mut to: Vec<&str> = submits
        .iter()
        .map(|s| s["destination"].as_str().unwrap())
        .collect();
    to.sort_unstable();
    assert_eq!(to, ["447700900123", "447700900456"]);
    for s in &submits {
        assert_eq!(s["data_coding"], 0, "{s}");
        assert!(s["septets"].as_u64().unwrap() <= 160, "{s}");
        let t = s["text"].as_str().unwrap();
        // The raise's own words ("Emergency button pressed - Room 7, East wing") follow,
        // without the place said a second time.
        assert!(
            t.starts_with("HIGH Pendant press - Room 7, East wing. Raised ")
                && t.ends_with(" UTC. Ack on console. Emergency button pressed"),
            "{t}"
        );
    }
    assert_eq!(peer.events("bind")[0]["ok"], true);
    wait_until(Duration::from_secs(10), || {
        peer.events("receipt_acked").len() >= 2 && gw.log_text().contains("SMS delivery receipt")
    })
    .unwrap_or_else(|_| panic!("receipts not answered and logged:\n{}", gw.log_text()));
    let log = gw.log_text();
    assert!(
        log.contains(submits[0]["message_id"].as_str().unwrap()),
        "{log}"
    );
    assert!(
        !log.contains("447700900"),
        "a phone number in the log:\n{log}"
    );
    assert!(!log.contains("pw-8chr!"), "the password in the log");
}

/// A gateway config texting one number through `smsc` with `bundle_window`, water leaks
/// (medium) routed to it, from two leak detectors on the line adapter at `line`.
fn bundle_config(dir: &Path, smsc: u16, line: u16, window: &str) -> String {
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[[sink]]
name = "night-carers"
type = "sms"
host = "127.0.0.1"
port = {smsc}
tls = false
system_id = "oakview-gw"
password_file = "{password}"
source_addr = "Oakview"
to = ["+447700900123"]
bundle_window = "{window}"

[[route]]
name = "carers"
sinks = ["night-carers"]

[[policy]]
name = "leaks"
match = {{ kind = ["water_leak"] }}
notify = ["carers"]

[[adapter]]
name = "line"
type = "example-line"
listen = "127.0.0.1:{line}"

[[device]]
id = "leak-4"
adapter = "line"
match = {{ device = "leak-4" }}
location = {{ area = "East wing", room = "4" }}

[[device]]
id = "leak-7"
adapter = "line"
match = {{ device = "leak-7" }}
location = {{ area = "East wing", room = "7" }}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        password = dir.join("smsc.password").display(),
    )
}

#[test]
fn two_leaks_held_for_a_bundle_across_a_kill_9_arrive_as_one_text_after_the_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let peer = smsc("oakview-gw", "pw-8chr!");
    let password = dir.join("smsc.password");
    std::fs::write(&password, "pw-8chr!\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = free_tcp_udp_port();
    // A window far longer than the test, so the kill comes while both are held.
    let mut gw = Gateway::start(dir, &bundle_config(dir, peer.port, port, "10m"));
    let mut stream = None;
    wait_until(Duration::from_secs(20), || {
        stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        stream.is_some()
    })
    .unwrap_or_else(|_| panic!("the adapter never listened:\n{}", gw.log_text()));
    let mut stream = stream.unwrap();
    stream
        .write_all(b"1 leak-4 water_leak\n2 leak-7 water_leak\n")
        .unwrap();
    let owed = "SELECT COUNT(*) FROM outbox WHERE sink = 'night-carers'";
    wait_until(Duration::from_secs(20), || gw.column::<i64>(owed) == [2])
        .unwrap_or_else(|_| panic!("two leak notifications not owed:\n{}", gw.log_text()));
    std::thread::sleep(Duration::from_millis(500));
    assert!(peer.events("submit").is_empty(), "not held");
    gw.kill9();
    drop(stream);

    // Restarted with a short window: the rows, still owed, are held again and sent together.
    std::fs::write(&gw.config, bundle_config(dir, peer.port, port, "2s")).unwrap();
    gw.restart();
    wait_until(Duration::from_secs(30), || {
        !peer.events("submit").is_empty()
    })
    .unwrap_or_else(|_| {
        panic!(
            "the held leaks were lost across kill -9:\n{}",
            gw.log_text()
        )
    });
    wait_until(Duration::from_secs(20), || gw.column::<i64>(owed) == [0])
        .unwrap_or_else(|_| panic!("rows still owed:\n{}", gw.log_text()));
    let submits = peer.events("submit");
    assert_eq!(submits.len(), 1, "{submits:#?}");
    let t = submits[0]["text"].as_str().unwrap();
    assert!(
        t.starts_with("2 alerts: MEDIUM Water leak - Room 4 ")
            && t.contains("; MEDIUM Water leak - Room 7 ")
            && t.ends_with(". Ack each on console."),
        "{t}"
    );
    assert!(submits[0]["septets"].as_u64().unwrap() <= 160);
    assert!(
        gw.log_text()
            .contains("bundled notifications delivered in one SMS")
    );
}

/// Installs the peer's npm packages (as `package-lock.json` pins them) when they are missing,
/// so that `cargo test` alone runs it; `.ci/run` installs them first.
fn ensure_peer(dir: &Path) {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = ONCE.lock();
    if dir.join("node_modules/smpp").is_dir() {
        return;
    }
    let out = std::process::Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(dir)
        .output();
    assert!(
        dir.join("node_modules/smpp").is_dir(),
        "the SMPP test peer could not be installed: install Node.js and npm, then `npm ci --prefix adapters/sms/tests/peer` ({out:?})"
    );
}
