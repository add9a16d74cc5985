//! The paths atgw owns, through the real binary (DESIGN §8): a `data_dir` or a file sink path
//! that is a symlink is refused by `check-config`, `audit` and `run` alike, and nothing is
//! created or chmodded behind it; an existing state directory keeps its mode; a new one is
//! created with mode 750.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A gateway with no adapters and one file sink, so `run` needs no broker.
fn config_text(data_dir: &Path, sink_path: &Path) -> String {
    format!(
        r#"
[gateway]
id = "gw-paths"
site = "oakview"
data_dir = "{}"
profiles_dir = "{}"
timezone = "Europe/London"

[[sink]]
name = "audit"
type = "file"
path = "{}"
"#,
        data_dir.display(),
        profiles_dir().display(),
        sink_path.display()
    )
}

fn atgw(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("ATGW_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run atgw")
}

/// `atgw run` that is expected to stop by itself; its exit code and log.
fn run_until_exit(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["run", "--config"])
        .arg(config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atgw");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "atgw run did not exit:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), log)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn audit_status(config: &Path, check: &str) -> Vec<(String, String)> {
    let out = atgw(&["audit", "--json"], config);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["status"].as_str().unwrap().to_owned(),
                f["found"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_symlinked_data_dir_is_refused_everywhere_and_its_target_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::os::unix::fs::symlink(&target, &state).unwrap();
    let config = dir.path().join("atgw.toml");
    std::fs::write(
        &config,
        config_text(&state, &dir.path().join("events.jsonl")),
    )
    .unwrap();

    let out = atgw(&["check-config"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "check-config: {stderr}");
    assert!(
        stderr.contains("data_dir") && stderr.contains("symlink"),
        "the message names data_dir and says why: {stderr}"
    );

    let findings = audit_status(&config, "data-dir");
    assert!(
        findings
            .iter()
            .any(|(s, found)| s == "fail" && found.contains("symlink")),
        "audit fails data-dir for the symlink: {findings:?}"
    );

    let (code, log) = run_until_exit(&config);
    assert_eq!(
        code,
        Some(2),
        "run refuses with the config exit code:\n{log}"
    );
    assert!(
        log.contains("data_dir") && log.contains("symlink"),
        "run says why:\n{log}"
    );
    assert_eq!(mode(&target), 0o755, "the symlink's target was chmodded");
    assert!(
        !target.join("atgw.db").exists(),
        "a journal was created behind the symlink"
    );
}

#[test]
fn a_symlinked_file_sink_path_or_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    let link = dir.path().join("events.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let config = dir.path().join("atgw.toml");
    std::fs::write(&config, config_text(&dir.path().join("state"), &link)).unwrap();

    let out = atgw(&["check-config"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "check-config: {stderr}");
    assert!(
        stderr.contains("audit") && stderr.contains("symlink"),
        "{stderr}"
    );
    let findings = audit_status(&config, "file-sink");
    assert!(
        findings.iter().any(|(s, _)| s == "fail"),
        "audit fails the symlinked file sink: {findings:?}"
    );
    let (code, log) = run_until_exit(&config);
    assert_eq!(code, Some(2), "{log}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");

    // The sink's directory a symlink: refused the same way.
    let real = dir.path().join("real-logs");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    let logs = dir.path().join("logs");
    std::os::unix::fs::symlink(&real, &logs).unwrap();
    std::fs::write(
        &config,
        config_text(&dir.path().join("state"), &logs.join("events.jsonl")),
    )
    .unwrap();
    let out = atgw(&["check-config"], &config);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, log) = run_until_exit(&config);
    assert_eq!(code, Some(2), "{log}");
    assert!(!real.join("events.jsonl").exists());
    assert_eq!(mode(&real), 0o755);
}

#[test]
fn an_existing_state_directory_keeps_its_mode_and_a_new_one_is_created_750() {
    let dir = tempfile::tempdir().unwrap();
    // Existing and open (as a careless install leaves it): used, never chmodded.
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut g = Gateway::start(
        dir.path(),
        &config_text(&existing, &existing.join("events.jsonl")),
    );
    g.terminate();
    assert_eq!(mode(&existing), 0o755, "an existing data_dir was chmodded");
    assert!(existing.join("atgw.db").exists());
    assert_eq!(mode(&existing.join("atgw.db")) & 0o077, 0);

    // Missing, two levels deep: both created, mode 750, and the journal inside.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new/state");
    let mut g = Gateway::start(
        dir.path(),
        &config_text(&fresh, &dir.path().join("new/sink/events.jsonl")),
    );
    g.terminate();
    assert_eq!(mode(&fresh), 0o750);
    assert_eq!(mode(&dir.path().join("new")), 0o750);
    assert!(fresh.join("atgw.db").exists());
}
