//! The daemon under a stand-in for systemd: the real binary with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test binds and `WATCHDOG_USEC` set, as `Type=notify` + `WatchdogSec=`
//! would. READY=1 must come only once the API and the DC-09 receiver accept connections,
//! WATCHDOG=1 must keep coming while the journal commits, stop while the journal is locked
//! (a wedged writer), come back after, and SIGTERM must say STOPPING=1. The API token comes the
//! way `LoadCredential=` delivers it: a bare name in the config, the file in
//! `$CREDENTIALS_DIRECTORY`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Half a second between pings at most; the gateway probes every quarter second.
const WATCHDOG_USEC: u64 = 500_000;

fn receive_until(
    sock: &UnixDatagram,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !done(&got) {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

/// The status line of an API request with `token`.
fn api_status(port: u16, token: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

fn pings(got: &[String]) -> usize {
    got.iter().filter(|m| m.as_str() == "WATCHDOG=1\n").count()
}

#[test]
fn ready_comes_after_the_listeners_and_watchdog_pings_follow_journal_commits() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = atgw::tools::mosquitto::free_port().unwrap();
    let dc09_port = free_tcp_udp_port();
    // As systemd's LoadCredential=api-token:… would: the file only in the credentials directory.
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    write_private(&credentials.join("api-token"), "systemd-test-token");
    let config = dir.path().join("atgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "127.0.0.1:{dc09_port}"
listen_udp = "127.0.0.1:{dc09_port}"
accounts = [{{ account = "1234" }}]

[[sink]]
name = "audit"
type = "file"
path = "{audit}"

[api]
listen = "127.0.0.1:{api_port}"
token_file = "api-token"
"#,
            data = dir.path().join("state").display(),
            profiles = profiles_dir().display(),
            audit = dir.path().join("events.jsonl").display(),
        ),
    )
    .unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let log = std::fs::File::create(dir.path().join("atgw.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(dir.path().join("atgw.log")).unwrap_or_default();

    // The first message is READY=1, and by then both listeners accept.
    let first = receive_until(&sock, Duration::from_secs(30), |g| !g.is_empty());
    assert!(!first.is_empty(), "no READY=1:\n{}", log_text());
    assert!(
        first[0].starts_with("READY=1\nSTATUS=ready: adapters=1 sinks=1 devices=0"),
        "{first:?}"
    );
    assert!(api_status(api_port, "systemd-test-token").contains(" 200 "));
    assert!(api_status(api_port, "wrong").contains(" 401 "));
    TcpStream::connect(("127.0.0.1", dc09_port)).expect("DC-09 listening at READY=1");

    // Pings keep coming, each after a heartbeat committed to the journal.
    let got = receive_until(&sock, Duration::from_secs(10), |g| pings(g) >= 4);
    assert!(pings(&got) >= 4, "{got:?}\n{}", log_text());
    let journal = rusqlite::Connection::open(dir.path().join("state/atgw.db")).unwrap();
    let heartbeat = || -> i64 {
        journal
            .query_row(
                "SELECT value FROM adapter_state WHERE adapter = 'gateway' AND key = ?1",
                [atgw::journal::writer::HEARTBEAT_KEY],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = heartbeat();

    // Another process holds the journal's write lock: the writer cannot commit, so once a probe
    // already on its way is done, no ping for several intervals (systemd would restart it).
    journal.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(Duration::from_micros(WATCHDOG_USEC));
    let _in_flight = receive_until(&sock, Duration::from_millis(100), |_| false);
    let wedged = receive_until(&sock, Duration::from_micros(WATCHDOG_USEC * 3), |_| false);
    journal.execute_batch("COMMIT").unwrap();
    assert_eq!(pings(&wedged), 0, "pinged while wedged: {wedged:?}");
    assert!(
        log_text().contains("watchdog pings withheld"),
        "{}",
        log_text()
    );

    // Lock gone: the heartbeat commits again and the pings resume.
    let got = receive_until(&sock, Duration::from_secs(10), |g| pings(g) >= 2);
    assert!(pings(&got) >= 2, "{got:?}\n{}", log_text());
    assert!(heartbeat() > before);

    // SIGHUP with a changed file: RELOADING=1, then READY=1 again, never STOPPING=1.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[[device]]\nid = \"pendant-3\"\nadapter = \"alarms\"\nmatch = {{ account = \"1234\", zone = \"003\" }}\n"
        ),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let got = receive_until(&sock, Duration::from_secs(30), |g| {
        g.iter().any(|m| m.starts_with("READY=1"))
    });
    let reloading = got.iter().position(|m| m.starts_with("RELOADING=1"));
    let ready = got.iter().position(|m| m.starts_with("READY=1"));
    assert!(
        matches!((reloading, ready), (Some(a), Some(b)) if a < b),
        "{got:?}\n{}",
        log_text()
    );
    assert!(
        got[reloading.unwrap()].contains("MONOTONIC_USEC="),
        "{got:?}"
    );
    assert!(
        got.iter().all(|m| !m.starts_with("STOPPING=1")),
        "a reload is not a stop: {got:?}"
    );
    assert!(got[ready.unwrap()].contains("devices=1"), "{got:?}");

    // SIGTERM: STOPPING=1, then a clean exit.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let got = receive_until(&sock, Duration::from_secs(10), |g| {
        g.iter().any(|m| m.starts_with("STOPPING=1"))
    });
    assert!(
        got.iter()
            .any(|m| m.starts_with("STOPPING=1\nSTATUS=stopping")),
        "{got:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "atgw did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", log_text());
}
