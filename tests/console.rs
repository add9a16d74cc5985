//! The care-team console in a real browser (Debian's chromium driven by playwright-core,
//! `tests/console/driver.js`) against the real binary and a private Mosquitto: a carer logs in,
//! a pendant press appears without a reload, acknowledging records the carer and stops the
//! escalation, resolving records the outcome, a killed gateway shows the stale-data banner and
//! the restarted one resumes the live stream without a missed transition; a wrong password is
//! refused and counted, a state change without the CSRF token is refused; axe-core finds no
//! serious or critical accessibility violation. Screenshots go to `target/tmp/console/`, or to
//! `docs/` (the ones the docs show) with `UPDATE_DOCS_SCREENSHOTS=1`: a test run does not
//! rewrite tracked files.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PASSWORD: &str = "kettle on at six";
const PRESS_12: &str = "zigbee2mqtt/0xa4c13899607febd1";
const PRESS_14: &str = "zigbee2mqtt/0x00158d0001a2b3c4";

fn driver_dir() -> PathBuf {
    repo().join("tests/console")
}

/// Installs the driver's npm packages (as package-lock.json pins them) when missing, so
/// `cargo test` alone runs this; `.ci/run` installs them (and chromium) first.
fn ensure_driver() {
    let dir = driver_dir();
    if !dir.join("node_modules/playwright-core").is_dir() {
        let out = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir)
            // playwright-core downloads nothing itself; this says so to any hook that might.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .output();
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "the console's browser driver could not be installed: install Node.js and npm, then `npm ci --prefix tests/console` ({out:?})"
        );
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the console tests need Debian's chromium: `apt-get install chromium` (.ci/run does)"
    );
}

/// The browser, one command at a time.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Browser {
    fn start(base: &str) -> Browser {
        ensure_driver();
        let mut child = Command::new("node")
            .arg(driver_dir().join("driver.js"))
            .arg(base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the browser driver");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            lines,
        };
        b.ok(&["open"]);
        b
    }

    fn cmd(&mut self, args: &[&str]) -> Value {
        let line = serde_json::to_string(args).unwrap();
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let got = tokio::task::block_in_place(|| self.lines.recv_timeout(Duration::from_secs(90)))
            .unwrap_or_else(|e| panic!("the browser driver did not answer `{line}`: {e}"));
        serde_json::from_str(&got).unwrap_or_else(|e| panic!("driver said {got:?}: {e}"))
    }

    /// A command that must succeed.
    fn ok(&mut self, args: &[&str]) -> Value {
        let v = self.cmd(args);
        let line = args.join(" ");
        assert_eq!(
            v["ok"], true,
            "`{line}` failed in the browser: {}",
            v["error"]
        );
        v
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, r#"["quit"]"#);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn console_config(dir: &Path, port: u16, escalate_after: &str) -> (String, String, String) {
    let (api, api_base, token) = api_block(dir);
    let base = api_base.trim_end_matches("/api/v1").to_owned();
    let text = format!(
        r#"{}
[[device]]
id = "pendant-12"
adapter = "zigbee"
match = {{ device = "0xa4c13899607febd1" }}
resident = "res-0042"
location = {{ area = "East wing", room = "12" }}

[[device]]
id = "pendant-14"
adapter = "zigbee"
match = {{ device = "0x00158d0001a2b3c4" }}
resident = "res-0077"
location = {{ area = "East wing", room = "14" }}
{api}
[api.console]
enabled = true
lockout_after = 5
"#,
        alert_config(dir, port, escalate_after, "60s")
    );
    (text, base, token)
}

fn add_user(config: &Path, name: &str, role: &str, password: &str) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["users", "--config"])
        .arg(config)
        .args(["add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
    c.wait_with_output().unwrap()
}

async fn metric(base: &str, token: &str, series: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn audit(gw: &Gateway) -> Vec<String> {
    gw.column("SELECT user || ' ' || action FROM user_audit ORDER BY id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carer_sees_a_press_live_acknowledges_and_resolves_it_across_a_gateway_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    // Escalation after 5 s: the carer acknowledges well before, and it must never come.
    let (config, base, token) = console_config(dir.path(), broker.port, "5s");
    let mut gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;

    // An account, with the daemon running; the password on stdin, never in argv.
    let out = add_user(&gw.config, "amy.k", "carer", PASSWORD);
    assert!(out.status.success(), "users add: {out:?}");
    let listed = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["users", "--config"])
        .arg(&gw.config)
        .arg("list")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("amy.k") && listed.contains("carer"),
        "{listed}"
    );
    assert!(
        !listed.contains("argon2"),
        "no hash in the listing: {listed}"
    );

    let mut b = Browser::start(&base);

    // A wrong password: refused with the page's plain message, counted and journaled.
    let bad = b.ok(&["bad_login", "amy.k", "not-the-password"]);
    assert_eq!(bad["error"], "Wrong name or password.", "{bad}");
    let wrong = metric(
        &base,
        &token,
        "atgw_console_logins_total{outcome=\"wrong_password\"}",
    )
    .await;
    assert_eq!(wrong, 1.0);
    wait_until(Duration::from_secs(5), || {
        audit(&gw).contains(&"amy.k login_failed".to_owned())
    })
    .unwrap_or_else(|_| panic!("failure not journaled: {:?}", audit(&gw)));

    let who = b.ok(&["login", "amy.k", PASSWORD]);
    assert!(who["who"].as_str().unwrap().contains("amy.k"), "{who}");
    assert_eq!(
        metric(&base, &token, "atgw_console_logins_total{outcome=\"ok\"}").await,
        1.0
    );

    // A pendant press appears within a second, without a reload.
    let devices = Publisher::connect(broker.port, "console-devices").await;
    let pressed = Instant::now();
    devices
        .send(PRESS_12, r#"{"action":"emergency","battery":88}"#)
        .await;
    let seen = b.ok(&["wait_alert", "Room 12", "5000"]);
    let took = pressed.elapsed();
    let card = seen["text"].as_str().unwrap().to_owned();
    assert!(
        took < Duration::from_secs(1),
        "the press took {took:?} to appear on the page"
    );
    for shown in [
        "Emergency button pressed",
        "East wing",
        "res-0042",
        "pendant-12",
        "Raised",
        "Told: carers",
    ] {
        assert!(card.contains(shown), "`{shown}` not on the card:\n{card}");
    }
    let id = gw.column::<String>("SELECT id FROM alerts WHERE device_id = 'pendant-12'")[0].clone();

    // Screenshots of a live alert, phone-sized and desktop-sized.
    let docs = screenshots_dir();
    let phone = docs.join("console-phone.png");
    let desktop = docs.join("console-desktop.png");
    b.ok(&["screenshot", phone.to_str().unwrap(), "390", "844"]);
    b.ok(&["screenshot", desktop.to_str().unwrap(), "1280", "800"]);

    // Accessibility: axe-core in the same browser.
    let axe = b.ok(&["axe"]);
    assert_eq!(
        axe["serious"],
        Value::Array(vec![]),
        "serious or critical accessibility violations: {axe}"
    );

    // A state change without the CSRF token is refused, and nothing changes.
    let forged = b.ok(&[
        "post_without_csrf",
        &format!("/console/api/alerts/{id}/ack"),
    ]);
    assert_eq!(forged["status"], 403, "{forged}");
    assert_eq!(
        metric(&base, &token, "atgw_console_csrf_refused_total").await,
        1.0
    );
    let status: Vec<String> = gw.column(&format!("SELECT status FROM alerts WHERE id = '{id}'"));
    assert_eq!(status, ["open"]);

    // Acknowledge: the logged-in carer is recorded, and the escalation never comes.
    let acked = b.ok(&["ack", "Room 12"]);
    assert!(
        acked["text"]
            .as_str()
            .unwrap()
            .contains("Acknowledged by amy.k"),
        "{acked}"
    );
    let by: Vec<String> = gw.column(&format!("SELECT acked_by FROM alerts WHERE id = '{id}'"));
    assert_eq!(by, ["amy.k"]);
    let acked_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(pressed.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let escalations: Vec<i64> = gw.column(&format!(
        "SELECT seq FROM events WHERE correlation_id = '{id}' AND json LIKE '%atgw.alert.escalated%'"
    ));
    assert!(
        escalations.is_empty(),
        "escalated after the acknowledgement ({:?} later)",
        acked_at.elapsed()
    );

    // The page loses its network while the gateway stays up: a second resident presses and
    // the first alert is resolved elsewhere (a transition no later one repeats), both
    // committed while the page cannot hear. Back online, the page catches up from the last
    // transition it saw, without a reload.
    b.ok(&["offline"]);
    b.ok(&["wait_banner", "stale", "30000"]);
    devices.send(PRESS_14, r#"{"action":"emergency"}"#).await;
    let resolved = http()
        .post(format!("{base}/api/v1/alerts/{id}/resolve"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"by": "night-senior", "outcome": "assisted"}))
        .send()
        .await
        .unwrap();
    assert!(resolved.status().is_success(), "{resolved:?}");
    wait_until(Duration::from_secs(10), || {
        !gw.column::<String>("SELECT id FROM alerts WHERE device_id = 'pendant-14'")
            .is_empty()
    })
    .unwrap_or_else(|_| panic!("the second press was not journaled:\n{}", gw.log_text()));
    let shown = b.ok(&["alerts"]);
    assert!(
        shown["text"].as_str().unwrap().contains("Room 12")
            && !shown["text"].as_str().unwrap().contains("Room 14"),
        "offline, the page still shows what it had: {shown}"
    );
    b.ok(&["online"]);
    b.ok(&["wait_no_lost", "20000"]);
    b.ok(&["wait_alert", "Room 14", "20000"]);
    b.ok(&["wait_gone", "Room 12", "10000"]);

    // The gateway dies: the page says its data may be stale, and since when.
    gw.kill9();
    let banner = b.ok(&["wait_banner", "stale", "15000"]);
    assert!(
        banner["text"]
            .as_str()
            .unwrap()
            .contains("data may be stale since"),
        "{banner}"
    );
    gw.restart();
    let id14 =
        gw.column::<String>("SELECT id FROM alerts WHERE device_id = 'pendant-14'")[0].clone();
    // Acknowledged through the token API right after the restart, likely before the page is
    // back; the same page, not reloaded and still logged in (sessions survive a restart),
    // shows it either way.
    let acked = http()
        .post(format!("{base}/api/v1/alerts/{id14}/ack"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"by": "night-senior"}))
        .send()
        .await
        .unwrap();
    assert!(acked.status().is_success(), "{acked:?}");
    b.ok(&["wait_no_lost", "20000"]);
    b.ok(&["wait_text", "Acknowledged by night-senior", "10000"]);
    let now = b.ok(&["alerts"]);
    assert_eq!(now["count"], 1, "only the second press is open: {now}");

    // Resolve with an outcome and a note, in the dialog.
    b.ok(&[
        "resolve",
        "Room 14",
        "false_alarm",
        "knocked off the bedside table",
    ]);
    let row: Vec<String> = gw.column(
        "SELECT resolved_by || '|' || outcome || '|' || coalesce(note, '') FROM alerts WHERE device_id = 'pendant-14'",
    );
    assert_eq!(row, ["amy.k|false_alarm|knocked off the bedside table"]);
    wait_until(Duration::from_secs(5), || {
        let a = audit(&gw);
        a.contains(&"amy.k acknowledged".to_owned()) && a.contains(&"amy.k resolved".to_owned())
    })
    .unwrap_or_else(|_| panic!("actions not journaled with the user: {:?}", audit(&gw)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_account_and_roles_limit_what_each_person_sees() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (config, base, token) = console_config(dir.path(), broker.port, "60s");
    let gw = Gateway::start(dir.path(), &config);
    assert!(
        add_user(&gw.config, "bo", "carer", PASSWORD)
            .status
            .success()
    );
    let out = add_user(&gw.config, "bo2", "carer", "short");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a short password is refused: {out:?}"
    );
    let client = http();
    let login = |password: &str| {
        client
            .post(format!("{base}/console/login"))
            .json(&serde_json::json!({"name": "bo", "password": password}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(login("guess").await.unwrap().status(), 401);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let locked = login(PASSWORD).await.unwrap();
    assert_eq!(locked.status(), 429);
    assert!(locked.text().await.unwrap().contains("locked"));
    assert_eq!(
        metric(
            &base,
            &token,
            "atgw_console_logins_total{outcome=\"locked_out\"}"
        )
        .await,
        1.0
    );
    // No cookie was ever set for a refused login.
    let unknown = login("guess").await.unwrap();
    assert!(unknown.headers().get("set-cookie").is_none());

    // Roles: a carer sees alerts, not devices; an integrator devices, not residents' alerts.
    assert!(
        add_user(&gw.config, "cara", "carer", PASSWORD)
            .status
            .success()
    );
    assert!(
        add_user(&gw.config, "ian", "integrator", PASSWORD)
            .status
            .success()
    );
    let session = |name: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .post(format!("{base}/console/login"))
                .json(&serde_json::json!({"name": name, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{name} logs in");
            let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
            set.split(';').next().unwrap().to_owned()
        }
    };
    let status = |cookie: String, path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (carer, integrator) = (session("cara").await, session("ian").await);
    assert_eq!(status(carer.clone(), "/console/api/alerts").await, 200);
    assert_eq!(status(carer.clone(), "/console/api/devices").await, 403);
    assert_eq!(status(integrator.clone(), "/console/api/alerts").await, 403);
    assert_eq!(status(integrator.clone(), "/console/api/stream").await, 403);
    assert_eq!(
        status(integrator.clone(), "/console/api/devices").await,
        200
    );
    assert_eq!(status(integrator, "/console/api/health").await, 200);
    assert_eq!(status(String::new(), "/console/api/alerts").await, 401);

    // Disabled while logged in: the next state change ends the session.
    let out = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["users", "--config"])
        .arg(&gw.config)
        .args(["disable", "cara"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let me = client
        .get(format!("{base}/console/api/me"))
        .header("cookie", carer.clone())
        .send()
        .await
        .unwrap();
    let csrf = me.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let logout = client
        .post(format!("{base}/console/logout"))
        .header("cookie", carer.clone())
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 401, "a disabled account's session ends");
    assert_eq!(status(carer, "/console/api/alerts").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_on_the_lan_needs_tls_and_gets_a_self_signed_certificate_with_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (config, base, _token) = console_config(dir.path(), broker.port, "60s");
    let port = base.rsplit(':').next().unwrap().to_owned();
    let lan = config.replace(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("listen = \"0.0.0.0:{port}\""),
    );
    assert_ne!(lan, config);

    // Without TLS the configuration is refused, saying why.
    let file = dir.path().join("lan.toml");
    std::fs::write(&file, &lan).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("in clear") && err.contains("[api.tls]"),
        "{err}"
    );

    // With a self-signed certificate made at first start, its fingerprint logged.
    let gw = Gateway::start(
        dir.path(),
        &format!("{lan}\n[api.tls]\nself_signed = true\n"),
    );
    let pem = std::fs::read(dir.path().join("state/tls/cert.pem")).unwrap();
    let der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap()
    };
    let fp = atgw::api_tls::fingerprint(der.as_ref());
    assert!(
        gw.log_text().contains(&fp),
        "fingerprint {fp} not logged:\n{}",
        gw.log_text()
    );
    assert!(
        gw.log_text()
            .contains(&format!("https://0.0.0.0:{port}/console"))
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let page = client
        .get(format!("https://localhost:{port}/console"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    // Plain HTTP on the TLS port gets no page.
    let plain = http()
        .get(format!("http://127.0.0.1:{port}/console"))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| r.status() != 200),
        "plain HTTP served"
    );
    assert!(
        add_user(&gw.config, "amy.k", "carer", PASSWORD)
            .status
            .success()
    );
    let login = client
        .post(format!("https://localhost:{port}/console/login"))
        .json(&serde_json::json!({"name": "amy.k", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
}

/// Logs in over HTTP: the session cookie and its CSRF token.
async fn http_session(client: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let r = client
        .post(format!("{base}/console/login"))
        .json(&serde_json::json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name} logs in");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = r.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senior_shelves_a_device_from_the_devices_view_with_its_offline_history_a_carer_may_not_and_a_manager_opens_the_report()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (config, base, _token) = console_config(dir.path(), broker.port, "60s");
    // A supervised door sensor in another area: it goes silent and comes back.
    let config = config.replace(
        "[api.console]",
        "[[device]]\nid = \"door-20\"\nadapter = \"zigbee\"\nmatch = { device = \"0x00158d0000000020\" }\nlocation = { area = \"West wing\", room = \"20\" }\ncheck_in = \"2s\"\n\n[api.console]",
    );
    let gw = Gateway::start(dir.path(), &config);
    gw.wait_subscribed().await;
    for (name, role) in [("sam", "senior"), ("cara", "carer"), ("meg", "manager")] {
        let out = add_user(&gw.config, name, role, PASSWORD);
        assert!(out.status.success(), "users add {name}: {out:?}");
    }
    let devices = Publisher::connect(broker.port, "console-shelf-devices").await;
    devices
        .send(PRESS_12, r#"{"battery":88,"linkquality":120}"#)
        .await;
    let door = "zigbee2mqtt/0x00158d0000000020";
    devices.send(door, r#"{"contact":true,"battery":90}"#).await;
    // Silent past its check-in, then heard again: one offline episode, closed.
    let offline = |phase: &'static str| {
        format!(
            "SELECT seq FROM events WHERE device_id = 'door-20' AND kind = 'device_offline' \
             AND phase = '{phase}' AND correlation_id IS NULL"
        )
    };
    wait_until_async(Duration::from_secs(30), || {
        !gw.column::<i64>(&offline("raised")).is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("door-20 never missed its check-in:\n{}", gw.log_text()));
    devices.send(door, r#"{"contact":true}"#).await;
    wait_until_async(Duration::from_secs(30), || {
        !gw.column::<i64>(&offline("cleared")).is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("door-20 never came back:\n{}", gw.log_text()));

    // A carer may neither shelve nor see the report, whatever the page shows.
    let client = http();
    let (carer, carer_csrf) = http_session(&client, &base, "cara").await;
    let shelve_as_carer = client
        .post(format!("{base}/console/api/devices/door-20/shelve"))
        .header("cookie", &carer)
        .header("x-csrf-token", &carer_csrf)
        .json(&serde_json::json!({"reason": "waiting for a technician", "for": "4h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(shelve_as_carer.status(), 403);
    let report_as_carer = client
        .get(format!("{base}/console/report"))
        .header("cookie", &carer)
        .send()
        .await
        .unwrap();
    assert_eq!(report_as_carer.status(), 403);
    // A senior's shelf without the CSRF token is refused too.
    let (senior, _) = http_session(&client, &base, "sam").await;
    let forged = client
        .post(format!("{base}/console/api/devices/door-20/shelve"))
        .header("cookie", &senior)
        .json(&serde_json::json!({"reason": "forged", "for": "4h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(
        gw.column::<String>("SELECT id FROM shelves").is_empty(),
        "a refused request shelved a device"
    );

    // The senior's devices view: the offline episode, and the area filter.
    let mut b = Browser::start(&base);
    b.ok(&["login", "sam", PASSWORD]);
    let listed = b.ok(&["devices", "door-20"]);
    assert_eq!(listed["rows"], 2, "{listed}");
    // A closed episode ("from – to"); it may be silent again by now (its check-in is 2 s),
    // which shows as "Offline since" above it.
    b.ok(&["wait_offline", "door-20", "–", "20000"]);
    let never = b.ok(&["wait_offline", "pendant-12", "Never", "5000"]);
    assert_eq!(never["text"], "Never");
    let west = b.ok(&["area", "West wing"]);
    assert_eq!(west["rows"], 1, "{west}");
    assert!(west["text"].as_str().unwrap().contains("door-20"), "{west}");
    let east = b.ok(&["area", "East wing"]);
    assert!(
        !east["text"].as_str().unwrap().contains("door-20"),
        "{east}"
    );
    b.ok(&["area", "All areas"]);

    // Shelve from the page: recorded as the logged-in senior, with the reason and an end.
    let shelf = b.ok(&[
        "shelve",
        "door-20",
        "4h",
        "contact loose, technician Tuesday",
    ]);
    assert!(
        shelf["text"]
            .as_str()
            .unwrap()
            .contains("contact loose, technician Tuesday – by sam"),
        "{shelf}"
    );
    let row: Vec<String> = gw.column(
        "SELECT by || '|' || reason || '|' || ((until_ms - started_ms) / 60000) FROM shelves WHERE ended_ms IS NULL",
    );
    assert_eq!(row, ["sam|contact loose, technician Tuesday|240"]);
    let announced: Vec<String> = gw.column(
        "SELECT json_extract(json, '$.data.message') FROM events WHERE kind = 'shelved' AND phase = 'raised'",
    );
    assert!(
        announced.len() == 1 && announced[0].contains("by sam"),
        "{announced:?}"
    );
    let shot = screenshots_dir().join("console-devices.png");
    b.ok(&["screenshot", shot.to_str().unwrap(), "1280", "800"]);
    // Off the shelf early, by the same senior.
    b.ok(&["unshelve", "door-20"]);
    let ended: Vec<String> =
        gw.column("SELECT coalesce(ended_by, '') FROM shelves WHERE ended_ms IS NOT NULL");
    assert_eq!(ended, ["sam"]);
    wait_until(Duration::from_secs(5), || {
        let a = audit(&gw);
        a.contains(&"sam shelved".to_owned()) && a.contains(&"sam unshelved".to_owned())
    })
    .unwrap_or_else(|_| panic!("shelving not journaled with the user: {:?}", audit(&gw)));
    // A senior has no report tab.
    assert_eq!(b.ok(&["visible", "#tab-report"])["visible"], false);
    let axe = b.ok(&["axe"]);
    assert_eq!(
        axe["serious"],
        Value::Array(vec![]),
        "serious or critical accessibility violations in the devices view: {axe}"
    );

    // The manager's report for a chosen period: the same page `atgw report` writes.
    b.ok(&["logout"]);
    b.ok(&["login", "meg", PASSWORD]);
    assert_eq!(b.ok(&["visible", "#tab-report"])["visible"], true);
    // The config's zone is UTC: today is the timestamp's date.
    let today = jiff::Timestamp::now().to_string()[..10].to_owned();
    let report = b.ok(&["report", &today, &today]);
    assert!(
        report["title"]
            .as_str()
            .unwrap()
            .starts_with("atgw pilot report"),
        "{report}"
    );
    assert_eq!(
        report["period"],
        format!("{today} to {today}"),
        "{}",
        report["text"]
    );
    assert!(
        !report["text"].as_str().unwrap().contains("res-0042"),
        "resident ids stay out of the report"
    );
}

/// Where screenshots go: `docs/` only when asked (`UPDATE_DOCS_SCREENSHOTS=1`).
fn screenshots_dir() -> std::path::PathBuf {
    if std::env::var_os("UPDATE_DOCS_SCREENSHOTS").is_some() {
        return repo().join("docs");
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).expect("the target's tmp dir is writable");
    dir
}
