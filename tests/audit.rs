//! `atgw audit` through the real binary: the insecure example's planted problems are each
//! reported with their provision and status, the shipped example passes, `--json` parses, a
//! password written inline is named without being shown, host problems (open state directory,
//! writable config) fail, and secrets are found in systemd's credentials directory.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

fn audit(config: &Path, json: bool, env: &[(&str, &Path)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"));
    cmd.args(["audit", "--config"]).arg(config);
    if json {
        cmd.arg("--json");
    }
    cmd.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ATGW_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run atgw audit")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// (provision, check, status) → how many findings say so.
fn tally(report: &Value) -> BTreeMap<(String, String, String), usize> {
    let mut t = BTreeMap::new();
    for f in report["findings"].as_array().expect("findings") {
        let key = (
            f["provision"].as_str().unwrap().to_owned(),
            f["check"].as_str().unwrap().to_owned(),
            f["status"].as_str().unwrap().to_owned(),
        );
        *t.entry(key).or_insert(0) += 1;
    }
    t
}

fn findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

fn insecure_example() -> std::path::PathBuf {
    let dir = repo().join("config/examples");
    // The plants include world-readable secret files; git keeps no modes, so set them here in
    // case the checkout's umask was stricter.
    for f in ["api-token", "webhook-secret"] {
        std::fs::set_permissions(
            dir.join("insecure").join(f),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    dir.join("insecure.toml")
}

/// `# PLANTED: <provision> <check> (<status>): …` lines, tallied like the findings.
fn plants(text: &str) -> BTreeMap<(String, String, String), usize> {
    let mut t = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("# PLANTED: ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let provision = words.next().unwrap().to_owned();
        let check = words.next().unwrap().to_owned();
        let status = words
            .next()
            .unwrap()
            .trim_matches(|c| c == '(' || c == ')' || c == ':')
            .to_owned();
        *t.entry((provision, check, status)).or_insert(0) += 1;
    }
    t
}

#[test]
fn the_insecure_example_reports_every_planted_problem_with_its_provision() {
    let path = insecure_example();
    let planted = plants(&std::fs::read_to_string(&path).unwrap());
    assert!(planted.values().sum::<usize>() >= 15, "{planted:?}");

    let out = audit(&path, true, &[]);
    assert_eq!(out.status.code(), Some(1), "any fail exits non-zero");
    let r = report(&out);
    let found = tally(&r);
    for (key, n) in &planted {
        let got = found.get(key).copied().unwrap_or(0);
        assert!(
            got >= *n,
            "planted {n} × {key:?}, reported {got}:\n{}",
            serde_json::to_string_pretty(&r).unwrap()
        );
    }
    // Every fail is a planted one: the example fails for exactly its plants.
    let fails: usize = found
        .iter()
        .filter(|((_, _, s), _)| s == "fail")
        .map(|(_, n)| n)
        .sum();
    let planted_fails: usize = planted
        .iter()
        .filter(|((_, _, s), _)| s == "fail")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(fails, planted_fails, "{found:?}");
    assert_eq!(r["summary"]["fail"], fails);

    // Each warn and fail carries its fix; every provision has a status line.
    for f in r["findings"].as_array().unwrap() {
        if f["status"] != "pass" {
            assert!(
                f["fix"].as_str().is_some_and(|s| !s.is_empty()),
                "no fix: {f}"
            );
        }
    }
    let provisions: Vec<&str> = r["provisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for p in ["5.1", "5.4", "5.5", "5.6", "5.9", "5.13", "6"] {
        assert!(provisions.contains(&p), "{p} missing from {provisions:?}");
    }
}

#[test]
fn the_text_report_has_a_line_per_provision_and_a_fix_under_each_failure_and_never_shows_a_secret()
{
    let out = audit(&insecure_example(), false, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL 5.5  secure communication"), "{text}");
    assert!(
        text.contains("FAIL 5.6  minimised attack surface"),
        "{text}"
    );
    assert!(text.contains("FAIL 6    personal data"), "{text}");
    let problems = text
        .lines()
        .filter(|l| l.starts_with("     fail ") || l.starts_with("     warn "))
        .count();
    let fixes = text
        .lines()
        .filter(|l| l.trim_start().starts_with("fix: "))
        .count();
    assert!(problems > 0 && problems == fixes, "{text}");
    // The planted token, header value, webhook secret and resident ids stay out of the report.
    for secret in [
        "changeme",
        "k-3f9a2c",
        "c2hvcnQ",
        "943 476 5919",
        "Mary Smith",
    ] {
        assert!(!text.contains(secret), "`{secret}` printed:\n{text}");
    }
}

#[test]
fn the_shipped_example_passes_with_no_fail() {
    let out = audit(&repo().join("config/atgw.toml"), true, &[]);
    let r = report(&out);
    assert_eq!(
        r["summary"]["fail"],
        0,
        "{}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(r["summary"]["pass"].as_u64().unwrap() >= 10);
}

#[test]
fn a_password_written_inline_is_named_by_its_key_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), 1883, "").replace(
        "name = \"zigbee\"",
        "name = \"zigbee\"\nusername = \"atgw\"\npassword = \"hunter2-inline\"",
    );
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, text).unwrap();
    let out = audit(&path, true, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("hunter2-inline"), "{stdout}");
    let r = report(&out);
    let inline = findings(&r, "inline-secret");
    assert_eq!(inline.len(), 1, "{r:#}");
    assert_eq!(inline[0]["status"], "fail");
    assert_eq!(inline[0]["provision"], "5.4");
    assert_eq!(inline[0]["subject"], "adapter[0].password");
    // The loader refuses it too, as an unknown key.
    let valid = findings(&r, "config-valid");
    assert_eq!(valid[0]["status"], "fail");
    assert!(
        valid[0]["found"].as_str().unwrap().contains("password"),
        "{r:#}"
    );
}

#[test]
fn an_open_state_directory_and_a_config_others_can_write_fail() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(state.join("atgw.db"), b"").unwrap();
    std::fs::set_permissions(
        state.join("atgw.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, config(dir.path(), 1883, "")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();

    let out = audit(&path, true, &[]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let status = |check: &str| {
        findings(&r, check)[0]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("data-dir"), "fail", "{r:#}");
    assert_eq!(findings(&r, "data-dir")[0]["provision"], "6");
    assert_eq!(status("journal-file"), "warn", "{r:#}");
    assert_eq!(status("config-writable"), "fail", "{r:#}");
    assert_eq!(findings(&r, "config-writable")[0]["provision"], "5.7");

    // Closed again, both pass.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = report(&audit(&path, true, &[]));
    assert_eq!(findings(&r, "data-dir")[0]["status"], "pass", "{r:#}");
    assert_eq!(
        findings(&r, "config-writable")[0]["status"],
        "pass",
        "{r:#}"
    );
}

/// A site set up the way the audit asks: API on loopback with a strong token from systemd's
/// credentials directory, DC-09 on a LAN address with an AES key, TLS with a client
/// certificate to a remote broker, HTTPS webhook. No fail.
#[test]
fn a_well_set_up_site_with_systemd_credentials_passes() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    write_private(&creds.join("api-token"), "q3N8v0ZxK2m7Lw9Rt4Yb6Hc1Fd5Gs8Pj");
    write_private(&creds.join("hook"), WEBHOOK_SECRET);
    write_private(&creds.join("dc09.key"), "000102030405060708090A0B0C0D0E0F");
    write_private(&creds.join("mqtt.pw"), "a-long-random-broker-password");
    // Certificates need not be private; the key is a credential.
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
    std::fs::write(dir.path().join("client.pem"), pem).unwrap();
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    write_private(&creds.join("client.key"), &key);

    let text = format!(
        r#"
[gateway]
id = "gw-good"
site = "oakview"
data_dir = "state"
profiles_dir = "{profiles}"

[api]
listen = "127.0.0.1:8780"
token_file = "api-token"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "192.168.10.2:7777"
accounts = [{{ account = "1234", key_file = "dc09.key" }}]

[[device]]
id = "pendant-12"
adapter = "alarms"
match = {{ account = "1234", zone = "003" }}
resident = "res-0042"
check_in = "25h"

[[sink]]
name = "upstream"
type = "mqtt"
host = "mqtt.care-platform.example"
port = 8883
topic_prefix = "atgw/oakview"
username = "atgw"
password_file = "mqtt.pw"
tls = {{ ca_file = "ca.pem", cert_file = "client.pem", key_file = "client.key" }}

[[sink]]
name = "carers"
type = "webhook"
url = "https://care.example/hooks/atgw"
secret_file = "hook"
"#,
        profiles = profiles_dir().display()
    );
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, text).unwrap();
    let out = audit(&path, true, &[("CREDENTIALS_DIRECTORY", &creds)]);
    let r = report(&out);
    let not_passed: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "pass" && f["check"] != "run-as-root")
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert_eq!(out.status.code(), Some(0));
    // The secrets were read from the credentials directory.
    let files = findings(&r, "secret-file");
    assert_eq!(files.len(), 5, "{files:#?}");
    assert!(files.iter().all(|f| {
        f["found"]
            .as_str()
            .unwrap()
            .contains(creds.to_str().unwrap())
    }));
    assert_eq!(findings(&r, "api-token")[0]["status"], "pass");
    assert_eq!(findings(&r, "key-file")[0]["found"], "a valid AES-128 key");

    // Without the credentials directory the same names are looked up beside the config: gone.
    let r = report(&audit(&path, true, &[]));
    assert!(
        findings(&r, "secret-file")
            .iter()
            .all(|f| f["status"] == "fail"),
        "{r:#}"
    );
}

/// What the daemon writes holds residents' events: after a run the journal (with its WAL) and
/// the event file are mode 600 whatever the umask, and the audit finds nothing to say about them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_run_the_journal_and_the_event_file_are_private_and_the_audit_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_udp_port();
    // No broker: the upstream sink retries in the background; the file sink still writes.
    let broker_port = atgw::tools::mosquitto::free_port().unwrap();
    let text = dc09_config(
        dir.path(),
        broker_port,
        port,
        port,
        "accept_unknown = true",
        "",
    );
    let mut gw = Gateway::start(dir.path(), &text);
    let mut sim = atgw_sia_dc09::SimulatorConfig::new(([127, 0, 0, 1], port).into(), "1234");
    sim.timeout = std::time::Duration::from_secs(10);
    let sent = atgw_sia_dc09::simulate(sim).await.unwrap();
    assert_eq!(sent.acked, 1, "{sent:?}\n{}", gw.log_text());
    let events = dir.path().join("events.jsonl");
    wait_until(std::time::Duration::from_secs(20), || events.exists())
        .unwrap_or_else(|_| panic!("no event file:\n{}", gw.log_text()));
    assert!(gw.terminate().success());

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let journal = dir.path().join("state/atgw.db");
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&events), 0o600);
    assert_eq!(mode(&dir.path().join("state")), 0o750);
    for suffix in ["-wal", "-shm"] {
        let p = dir.path().join(format!("state/atgw.db{suffix}"));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    let r = report(&audit(&gw.config, true, &[]));
    assert!(findings(&r, "journal-file").is_empty(), "{r:#}");
    assert_eq!(findings(&r, "data-dir")[0]["status"], "pass", "{r:#}");
    assert_eq!(findings(&r, "file-sink")[0]["status"], "pass", "{r:#}");
}

/// `--html`, the document for the deployment record: on the insecure example it names each
/// planted problem (its check and status, under its provision), and says where it ran and on
/// which configuration (its SHA-256).
#[test]
fn the_html_document_names_every_planted_problem_and_where_it_was_run() {
    let path = insecure_example();
    let text = std::fs::read_to_string(&path).unwrap();
    let planted = plants(&text);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["audit", "--html", "--config"])
        .arg(&path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ATGW_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "any fail exits non-zero");
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    // Self-contained: nothing to fetch (findings may quote an http:// URL as evidence).
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains(" src="));
    for ((provision, check, status), n) in &planted {
        let rows = html
            .split("<h2 id=\"p-")
            .filter(|section| section.starts_with(&format!("{provision}\"")))
            .map(|section| {
                section
                    .matches(&format!(
                        "class=\"finding\" data-check=\"{check}\" data-status=\"{status}\""
                    ))
                    .count()
            })
            .sum::<usize>();
        assert!(
            rows >= *n,
            "planted {n} × {provision} {check} ({status}), {rows} in the document"
        );
    }
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(html.contains(&digest), "the configuration's SHA-256");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(html.contains(host.trim()), "the host it ran on");
    assert!(html.contains("id=\"verdict\" class=\"fail\""));
}
