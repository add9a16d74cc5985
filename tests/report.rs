//! `atgw report` on the journal of a real gateway run: pendant presses and a fall through a
//! private Mosquitto, an escalation, acknowledgements and resolutions over MQTT and the local
//! API, a test call, a low battery and a device dropping off the network; then the daemon stops
//! and the report is made from its journal. The HTML must hold the charts and the figures those
//! actions imply, the CSV must parse and match the alerts, the terminal must show the summary,
//! and the journal must be left exactly as it was.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const DEVICES: &str = r#"
[[device]]
id = "pendant-12"
adapter = "zigbee"
match = { device = "0xa4c13899607febd1" }
resident = "res-0042"
location = { area = "east", room = "12" }

[[device]]
id = "radar-14"
adapter = "zigbee"
match = { device = "0xdc8e95fffe4dc3dd" }
resident = "res-0057"
location = { area = "west", room = "14" }

[[device]]
id = "pendant-9"
adapter = "zigbee"
match = { device = "0x847127fffe0542eb" }
resident = "res-0063"
location = { area = "east", room = "9" }

[[device]]
id = "leak-kitchen"
adapter = "zigbee"
match = { device = "0x005043c95f277c80" }
location = { area = "ground", room = "kitchen" }
"#;

/// Tier 2 is told this long after an unacknowledged raise.
const ESCALATE_AFTER_S: f64 = 3.0;

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atgw"))
        .arg("report")
        .args(args)
        .output()
        .expect("run atgw report")
}

/// The newest alert of a device, once the journal has one that is not in `known`.
async fn new_alert(gw: &Gateway, device: &str, known: &[String]) -> String {
    let mut found = None;
    wait_until_async(Duration::from_secs(20), || {
        found = gw
            .journal()
            .query_row(
                "SELECT id FROM alerts WHERE device_id = ?1 ORDER BY raised_ms DESC LIMIT 1",
                [device],
                |r| r.get::<_, String>(0),
            )
            .ok()
            .filter(|id| !known.contains(id));
        found.is_some()
    })
    .await
    .unwrap_or_else(|_| panic!("no new alert for {device}:\n{}", gw.log_text()));
    found.unwrap_or_default()
}

fn status(gw: &Gateway, id: &str) -> String {
    gw.journal()
        .query_row("SELECT status FROM alerts WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap_or_default()
}

async fn wait_status(gw: &Gateway, id: &str, want: &str) {
    wait_until_async(Duration::from_secs(20), || status(gw, id) == want)
        .await
        .unwrap_or_else(|_| panic!("alert {id} never became {want}:\n{}", gw.log_text()));
}

async fn post(api: &str, token: &str, path: &str, body: serde_json::Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{path}: {:?}",
        resp.text().await
    );
}

/// The text of the element with this id, and its `data-seconds`, if any.
fn element(html: &str, id: &str) -> (String, Option<String>) {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the report"));
    let rest = &html[at..];
    let open_end = rest.find('>').unwrap();
    let text_end = rest.find('<').unwrap();
    let attrs = &rest[..open_end];
    let seconds = attrs.find("data-seconds=\"").map(|i| {
        let v = &attrs[i + "data-seconds=\"".len()..];
        v[..v.find('"').unwrap()].to_owned()
    });
    (rest[open_end + 1..text_end].to_owned(), seconds)
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let head = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            head.iter()
                .zip(rec.iter())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_real_run_shows_its_alerts_waits_escalations_and_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (api_cfg, api, token) = api_block(dir.path());
    let text = format!(
        "{}{DEVICES}{api_cfg}",
        alert_config(
            dir.path(),
            broker.port,
            &format!("{ESCALATE_AFTER_S}s"),
            "1h"
        )
    );
    let mut gw = Gateway::start(dir.path(), &text);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "report-devices").await;
    let pendant = "zigbee2mqtt/0xa4c13899607febd1";

    // A: a pendant press, acknowledged and resolved over MQTT.
    devices.send(pendant, r#"{"action":"emergency"}"#).await;
    let a = new_alert(&gw, "pendant-12", &[]).await;
    devices
        .send(
            &format!("atgw/oakview/alerts/{a}/ack"),
            r#"{"by":"carer-7","note":"Mrs Example is fine"}"#,
        )
        .await;
    wait_status(&gw, &a, "acknowledged").await;
    devices
        .send(
            &format!("atgw/oakview/alerts/{a}/resolve"),
            r#"{"by":"carer-7","outcome":"assisted"}"#,
        )
        .await;
    wait_status(&gw, &a, "resolved").await;

    // B: a fall nobody answers until it has escalated; then the API acknowledges it.
    let b_sent = Instant::now();
    devices
        .send(
            "zigbee2mqtt/0xdc8e95fffe4dc3dd",
            r#"{"fall_down_status":"fall","presence":true}"#,
        )
        .await;
    let b = new_alert(&gw, "radar-14", &[]).await;
    wait_until_async(Duration::from_secs(20), || {
        gw.journal()
            .query_row(
                "SELECT count(*) FROM events WHERE correlation_id = ?1 AND phase = 'escalated'
                 AND json_extract(json, '$.data.alert.reason') = 'ack_timeout'",
                [&b],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
            >= 1
    })
    .await
    .unwrap_or_else(|_| panic!("the fall never escalated:\n{}", gw.log_text()));
    post(
        &api,
        &token,
        &format!("/alerts/{b}/ack"),
        json!({"by": "carer-3"}),
    )
    .await;
    let b_wait_bound = b_sent.elapsed();
    post(
        &api,
        &token,
        &format!("/alerts/{b}/resolve"),
        json!({"by": "nurse-1", "outcome": "false_alarm"}),
    )
    .await;

    // C: another press, acknowledged and resolved through the API.
    devices.send(pendant, r#"{"action":"sos"}"#).await;
    let c = new_alert(&gw, "pendant-12", std::slice::from_ref(&a)).await;
    post(
        &api,
        &token,
        &format!("/alerts/{c}/ack"),
        json!({"by": "carer-7"}),
    )
    .await;
    post(
        &api,
        &token,
        &format!("/alerts/{c}/resolve"),
        json!({"by": "nurse-1", "outcome": "emergency_services"}),
    )
    .await;

    // A test call, a flat battery, and the pendant dropping off the network for a moment.
    devices
        .send(
            "zigbee2mqtt/0x847127fffe0542eb",
            r#"{"action":"emergency","test":true}"#,
        )
        .await;
    devices
        .send(
            "zigbee2mqtt/0x005043c95f277c80",
            r#"{"water_leak":false,"battery_low":true,"battery":5}"#,
        )
        .await;
    devices
        .send(&format!("{pendant}/availability"), r#"{"state":"offline"}"#)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    devices
        .send(&format!("{pendant}/availability"), r#"{"state":"online"}"#)
        .await;
    let offline_events = |g: &Gateway| -> i64 {
        g.journal()
            .query_row(
                "SELECT count(*) FROM events WHERE kind = 'device_offline' AND device_id = 'pendant-12'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    wait_until_async(Duration::from_secs(20), || offline_events(&gw) >= 2)
        .await
        .unwrap_or_else(|_| panic!("availability not journaled:\n{}", gw.log_text()));
    let test_calls: i64 = gw
        .journal()
        .query_row("SELECT count(*) FROM events WHERE test = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(test_calls, 1);

    assert!(gw.terminate().success());
    broker.stop();

    // The journal's own account of every wait, to hold the report to.
    let journal = dir.path().join("state/atgw.db");
    let before = std::fs::read(&journal).unwrap();
    let waits: HashMap<String, i64> = {
        let c = rusqlite::Connection::open_with_flags(
            &journal,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut s = c
            .prepare("SELECT id, acked_ms - raised_ms FROM alerts")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(waits.len(), 3, "{waits:?}");
    let b_wait = waits[&b];
    assert!(
        b_wait as f64 >= ESCALATE_AFTER_S * 1000.0,
        "B was acknowledged only after it escalated ({b_wait} ms)"
    );
    assert!(
        b_wait as u128 <= b_wait_bound.as_millis(),
        "B's wait ({b_wait} ms) fits in the time the test took ({b_wait_bound:?})"
    );
    let longest = waits.values().copied().max().unwrap();
    // A and C were acknowledged at once, but a slow machine may still have escalated them.
    let escalated: i64 =
        rusqlite::Connection::open_with_flags(&journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .query_row(
                "SELECT count(DISTINCT correlation_id) FROM events WHERE phase = 'escalated'
         AND json_extract(json, '$.data.alert.reason') = 'ack_timeout'",
                [],
                |r| r.get(0),
            )
            .unwrap();
    assert!(escalated >= 1);

    let out_dir = dir.path().join("report");
    let out = report(&[
        "--config",
        gw.config.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Terminal summary.
    assert!(stdout.contains("atgw report: oakview, "), "{stdout}");
    assert!(
        stdout.contains("alerts:              3 (pendant_press 2, fall 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("acknowledged:        3 of 3"), "{stdout}");
    assert!(
        stdout.contains("assisted 1, false_alarm 1, emergency_services 1"),
        "{stdout}"
    );
    assert!(stdout.contains("test calls:          1 "), "{stdout}");
    assert!(stdout.contains("report.html"), "{stdout}");

    // HTML: charts and figures.
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.matches("<svg").count() >= 3, "three charts");
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
    assert_eq!(element(&html, "fig-alerts").0, "3");
    assert_eq!(element(&html, "fig-acknowledged").0, "3");
    assert!(html.contains(r#"data-total-kind="pendant_press">2<"#));
    assert!(html.contains(r#"data-total-kind="fall">1<"#));
    let (shown, seconds) = element(&html, "fig-ack-max");
    assert_eq!(
        seconds.as_deref(),
        Some(format!("{}.{:03}", longest / 1000, longest % 1000).as_str()),
        "the longest wait is the journal's (shown as {shown})"
    );
    assert!(longest >= b_wait);
    assert_eq!(element(&html, "fig-escalated").0, escalated.to_string());
    assert_eq!(element(&html, "fig-assisted").0, "1");
    assert_eq!(element(&html, "fig-false-alarms").0, "1");
    assert_eq!(element(&html, "fig-emergency-services").0, "1");
    assert_eq!(element(&html, "fig-unresolved").0, "0");
    assert_eq!(element(&html, "fig-test-calls").0, "1");
    assert_eq!(element(&html, "fig-battery-warnings").0, "1");
    assert_eq!(element(&html, "fig-offline-episodes").0, "1");
    assert_eq!(element(&html, "fig-residents").0, "2");
    for private in ["res-0042", "res-0057", "Mrs Example", "carer-7"] {
        assert!(!html.contains(private), "{private} is in the HTML");
    }

    // CSV: one row per alert, matching the journal.
    let rows = read_csv(&out_dir.join("alerts.csv"));
    assert_eq!(rows.len(), 3);
    let by_id: HashMap<&str, &HashMap<String, String>> =
        rows.iter().map(|r| (r["id"].as_str(), r)).collect();
    for (id, kind, outcome, area, room, device, by) in [
        (
            &a,
            "pendant_press",
            "assisted",
            "east",
            "12",
            "pendant-12",
            "carer-7",
        ),
        (
            &b,
            "fall",
            "false_alarm",
            "west",
            "14",
            "radar-14",
            "carer-3",
        ),
        (
            &c,
            "pendant_press",
            "emergency_services",
            "east",
            "12",
            "pendant-12",
            "carer-7",
        ),
    ] {
        let row = by_id[id.as_str()];
        assert_eq!(
            (
                row["kind"].as_str(),
                row["outcome"].as_str(),
                row["area"].as_str(),
                row["room"].as_str(),
                row["device"].as_str(),
                row["ack_by"].as_str(),
                row["priority"].as_str(),
                row["test"].as_str()
            ),
            (kind, outcome, area, room, device, by, "high", "false"),
            "{row:?}"
        );
        let secs: f64 = row["time_to_ack_s"].parse().unwrap();
        assert_eq!((secs * 1000.0).round() as i64, waits[id], "{row:?}");
        for t in ["raised_at", "acknowledged_at", "resolved_at"] {
            assert!(
                row[t].parse::<jiff::Timestamp>().is_ok(),
                "{t} is RFC 3339: {row:?}"
            );
        }
    }
    assert!(by_id[b.as_str()]["escalations"].parse::<u32>().unwrap() >= 1);
    assert!(!rows[0].contains_key("resident"));
    let summary: HashMap<String, String> = read_csv(&out_dir.join("summary.csv"))
        .into_iter()
        .map(|r| (r["metric"].clone(), r["value"].clone()))
        .collect();
    assert_eq!(summary["alerts"], "3");
    assert_eq!(summary["outcome_false_alarm"], "1");
    assert_eq!(summary["test_calls"], "1");
    let devices_csv = read_csv(&out_dir.join("devices.csv"));
    let pendant_row = devices_csv
        .iter()
        .find(|r| r["device"] == "pendant-12")
        .unwrap();
    assert_eq!(pendant_row["offline_episodes"], "1");
    let uptime: f64 = pendant_row["uptime_percent"].parse().unwrap();
    assert!(uptime > 0.0 && uptime < 100.0, "{pendant_row:?}");

    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "the report left the journal byte for byte as it was"
    );

    // A copy, a period with nothing in it, and a period that makes no sense.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&journal, &copy).unwrap();
    let tomorrow = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap()
        .to_string();
    let empty_dir = dir.path().join("empty");
    let out = report(&[
        "--journal",
        copy.to_str().unwrap(),
        "--from",
        &tomorrow,
        "--out",
        empty_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(empty_dir.join("report.html")).unwrap();
    assert_eq!(element(&html, "fig-alerts").0, "0");
    assert_eq!(read_csv(&empty_dir.join("alerts.csv")).len(), 0);
    let out = report(&[
        "--journal",
        copy.to_str().unwrap(),
        "--from",
        "2026-05-02",
        "--to",
        "2026-05-01",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // --baseline: the run's own days as the baseline beside an empty period (tomorrow).
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let baseline = format!("{}..{}", today.yesterday().unwrap(), today);
    let cmp_dir = dir.path().join("compare");
    let out = report(&[
        "--journal",
        copy.to_str().unwrap(),
        "--from",
        &tomorrow,
        "--baseline",
        &baseline,
        "--out",
        cmp_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let within_60 = waits.values().filter(|w| **w <= 60_000).count();
    let within_180 = waits.values().filter(|w| **w <= 180_000).count();
    let pct = |n: usize| format!("{:.1}", 100.0 * n as f64 / 3.0);
    assert!(
        stdout.contains(&format!(
            "baseline high        3 alerts: {within_60} within 60 s ({} %), {within_180} within 180 s",
            pct(within_60)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("97.5 % of calls within 60 s, 99 % within 180 s"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "the period ({tomorrow} to {tomorrow}) has no data"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("comparison.csv") && stdout.contains("ack_standard.csv"));
    let html = std::fs::read_to_string(cmp_dir.join("report.html")).unwrap();
    assert!(html.contains(&format!(
        r#"id="baseline-std-60s" data-within="{within_60}" data-alerts="3" data-percent="{}""#,
        pct(within_60)
    )));
    assert!(html.contains(r#"id="no-data-period""#));
    assert!(html.contains(r#"id="comparison""#));
    for private in ["res-0042", "res-0057", "Mrs Example", "carer-7"] {
        assert!(!html.contains(private), "{private} is in the HTML");
    }
    let rows = read_csv(&cmp_dir.join("comparison.csv"));
    let site = rows.iter().find(|r| r["scope"] == "site").unwrap();
    assert_eq!(
        (
            site["baseline_alerts"].as_str(),
            site["baseline_acknowledged"].as_str(),
            site["period_alerts"].as_str(),
            site["change_rate_percent"].as_str(),
            site["note"].as_str()
        ),
        ("3", "3", "0", "", "no data in the report period"),
        "{site:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r["scope"] == "area" && r["group"] == "west")
    );
    assert!(
        rows.iter()
            .any(|r| r["scope"] == "kind" && r["group"] == "fall")
    );
    let standard = read_csv(&cmp_dir.join("ack_standard.csv"));
    let base_high = standard
        .iter()
        .find(|r| r["period"] == "baseline" && r["priority"] == "high")
        .unwrap();
    assert_eq!(base_high["within_60s"], within_60.to_string());
    assert_eq!(base_high["target_60s_percent"], "97.5");
    assert_eq!(base_high["target_180s_percent"], "99.0");
    // A baseline that ends before it starts is a usage error.
    let out = report(&[
        "--journal",
        copy.to_str().unwrap(),
        "--baseline",
        "2026-05-02..2026-05-01",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the baseline starts (2026-05-02) after it ends (2026-05-01)"),
        "{out:?}"
    );
}
