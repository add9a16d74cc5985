//! `atgw demo`, the README's first command, run as a user runs it: the real binary, judged by
//! what it prints. With mosquitto installed (CI installs it) every protocol path (MQTT, DC-09,
//! and the ESPA nurse-call path on loopback, which pages the senior's DECT handset) tells the whole
//! story: an alert escalated to the senior and acknowledged, others acknowledged by the carers,
//! every webhook signature good. `--no-mqtt` takes the path of a machine without mosquitto.
//! Ctrl-C stops it cleanly, broker included, with the summary printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One `verdict <path>: …` line of the summary.
#[derive(Debug)]
struct Verdict {
    alerts: u32,
    escalated: u32,
    acknowledged: u32,
    resolved: u32,
    told: bool,
}

fn verdicts(stdout: &str) -> HashMap<String, Verdict> {
    let mut out = HashMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("verdict ") else {
            continue;
        };
        let Some((path, counts)) = rest.split_once(": ") else {
            continue;
        };
        if counts.starts_with("not run") {
            continue;
        }
        let n = |word: &str| {
            counts
                .split(", ")
                .find_map(|part| {
                    let (num, w) = part.split_once(' ')?;
                    w.starts_with(word).then(|| num.parse::<u32>().ok())?
                })
                .unwrap_or_else(|| panic!("no `{word}` count in {line:?}"))
        };
        out.insert(
            path.to_owned(),
            Verdict {
                alerts: n("alerts"),
                escalated: n("escalated"),
                acknowledged: n("acknowledged"),
                resolved: n("resolved"),
                told: counts.trim_end().ends_with('✓'),
            },
        );
    }
    out
}

/// The demo as a child process, its output going to files so it can never block on a pipe.
struct Demo {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_atgw"))
            .arg("demo")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn atgw demo");
        Demo {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("atgw demo did not exit in time\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_signatures_all_good(out: &str, all: &str) {
    let line = out
        .lines()
        .find(|l| l.contains("webhook signatures:"))
        .unwrap_or_else(|| panic!("no signature count\n{all}"));
    assert!(line.trim_end().ends_with(", 0 failed"), "{line}\n{all}");
    assert!(
        !line.contains(" 0 verified"),
        "the phones got no webhook\n{all}"
    );
    assert!(!out.contains("PROBLEM"), "a step went wrong:\n{all}");
}

#[test]
fn the_demo_escalates_and_acknowledges_alerts_on_every_protocol_path_and_exits_0() {
    let with_mqtt = atgw::tools::mosquitto::find().is_some();
    let mut demo = Demo::start(&["--duration", "25s"]);
    let status = demo.wait(Duration::from_secs(90));
    let (out, all) = (demo.stdout(), demo.output());
    assert!(status.success(), "exit {status:?}\n{all}");

    let v = verdicts(&out);
    // The nurse-call path (ESPA 4.4.4) and the digital home unit (SCAIP) run on loopback on
    // every machine.
    let paths: &[&str] = if with_mqtt {
        &["mqtt", "dc09", "espa", "scaip"]
    } else {
        &["dc09", "espa", "scaip"]
    };
    for path in paths {
        let p = v
            .get(*path)
            .unwrap_or_else(|| panic!("no verdict for {path}\n{all}"));
        assert!(
            p.told && p.escalated >= 1 && p.acknowledged >= 1,
            "{path}: {p:?}\n{all}"
        );
        assert!(p.resolved >= 1 && p.alerts >= 2, "{path}: {p:?}\n{all}");
    }
    if !with_mqtt {
        assert!(out.contains("`mosquitto` is not installed"), "{all}");
    }
    // The pull cord's escalation paged the senior's DECT handset, room first.
    assert!(
        out.lines().any(|l| l.contains(" espa ")
            && l.contains("DECT 4711")
            && l.contains("paged")
            && l.contains("\"Room 14 Assistance call")),
        "{all}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("  nurse call: DECT handset 4711 paged ")),
        "{all}"
    );
    assert_signatures_all_good(&out, &all);
    // The console's address and a login made for this run (no fixed demo password).
    let console = out
        .lines()
        .find(|l| l.trim_start().starts_with("console ") && l.contains("/console"))
        .unwrap_or_else(|| panic!("no console line\n{all}"));
    let password = console
        .split("password ")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .unwrap_or_else(|| panic!("no password in {console:?}"));
    assert!(
        password.len() >= 16 && password.chars().all(|c| c.is_ascii_hexdigit()),
        "{console}"
    );
    for step in [
        "ALERT raised",
        "notified",
        "ESCALATED",
        "acknowledged    by senior-dee",
        "acknowledged    by carer-",
        "cleared",
        "restore recorded",
        "resolved",
    ] {
        assert!(out.contains(step), "no `{step}` on the timeline\n{all}");
    }
    assert!(
        !out.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn without_mqtt_the_dc09_path_still_tells_the_story_and_data_dir_keeps_the_journal() {
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("demo");
    let mut demo = Demo::start(&[
        "--no-mqtt",
        "--duration",
        "20s",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let status = demo.wait(Duration::from_secs(90));
    let (out, all) = (demo.stdout(), demo.output());
    assert!(status.success(), "exit {status:?}\n{all}");

    let v = verdicts(&out);
    let dc09 = v
        .get("dc09")
        .unwrap_or_else(|| panic!("no dc09 verdict\n{all}"));
    assert!(
        dc09.told && dc09.escalated >= 1 && dc09.acknowledged >= 1,
        "{dc09:?}\n{all}"
    );
    assert!(!v.contains_key("mqtt"), "{all}");
    assert!(out.contains("verdict mqtt: not run (--no-mqtt)"), "{all}");
    assert_signatures_all_good(&out, &all);

    // The directory is kept: the config is valid and the journal holds the alerts.
    let config = data.join("atgw.toml");
    let journal = data.join("state/atgw.db");
    assert!(out.contains(&config.display().to_string()), "{all}");
    let check = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let alerts: i64 = rusqlite::Connection::open(&journal)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM alerts WHERE acked_by IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(alerts >= 1, "acknowledged alerts in the kept journal");

    // The pilot report of the demo's journal: HTML with charts and the figures, and CSV.
    let report_dir = keep.path().join("report");
    let report = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["report", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&report_dir)
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let html = std::fs::read_to_string(report_dir.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 3, "charts in the report");
    let total: i64 = rusqlite::Connection::open(&journal)
        .unwrap()
        .query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
        .unwrap();
    assert!(
        html.contains(&format!("id=\"fig-alerts\">{total}<")),
        "the alert count ({total}) is in the report"
    );
    assert!(html.contains("id=\"fig-escalated\""), "escalations figure");
    let csv = std::fs::read_to_string(report_dir.join("alerts.csv")).unwrap();
    assert_eq!(
        csv.lines().count() as i64,
        total + 1,
        "one CSV row per alert plus the header:\n{csv}"
    );
    assert!(
        csv.contains("senior-dee"),
        "the escalated alert's acknowledger is in the CSV"
    );

    // A second run refuses to write among existing files.
    let mut again = Demo::start(&["--no-mqtt", "--data-dir", data.to_str().unwrap()]);
    let status = again.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{}", again.output());
}

#[test]
fn ctrl_c_stops_the_demo_cleanly_with_its_summary_and_the_broker_gone() {
    let mut demo = Demo::start(&["--duration", "120s"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !demo.stdout().contains("ALERT raised") {
        assert!(
            Instant::now() < deadline,
            "no alert within a minute\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let broker_port = broker_port(&demo.stdout());
    let sent = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopping = Instant::now();
    let status = demo.wait(Duration::from_secs(30));
    let (out, all) = (demo.stdout(), demo.output());
    assert!(status.success(), "exit {status:?}\n{all}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "took {:?} to stop\n{all}",
        stopping.elapsed()
    );
    assert!(out.contains("interrupted"), "{all}");
    assert!(out.contains("Summary:"), "{all}");
    assert!(out.contains("verdict dc09:"), "{all}");
    if let Some(port) = broker_port {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the private broker on {port} outlived the demo"
        );
    }
    assert!(temp_dir_removed(&out), "{all}");
}

/// The private broker's port, from `mqtt    private mosquitto on 127.0.0.1:PORT: …`.
fn broker_port(out: &str) -> Option<u16> {
    let line = out.lines().find(|l| l.contains("private mosquitto on"))?;
    let at = line.split("127.0.0.1:").nth(1)?;
    at.split(':').next()?.parse().ok()
}

/// The temporary data directory named at the start no longer exists.
fn temp_dir_removed(out: &str) -> bool {
    let Some(dir) = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("data    "))
        .and_then(|l| l.split(" (").next())
    else {
        return false;
    };
    !Path::new(dir).exists()
}
