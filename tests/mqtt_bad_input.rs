//! Bad input never takes the daemon down: garbage is dead-lettered with its reason and raw
//! bytes, counted, acknowledged to the broker (so it is not redelivered forever), and the next
//! good message still flows.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_dead_lettered_and_the_daemon_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let mut gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "bad-devices").await;

    devices.send("zigbee2mqtt/0xbad1", "{ not json").await;
    devices
        .send(
            "zigbee2mqtt/0xbad2",
            vec![0xff, 0xfe, 0x00, 0x9c, 0x80, 0x01],
        )
        .await;
    let huge = format!(
        r#"{{"action":"emergency","padding":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    devices.send("zigbee2mqtt/0xbad3", huge.clone()).await;
    devices
        .send(
            "zigbee2mqtt/0xdc8e95fffe4dc3dd",
            r#"{"fall_down_status":5,"presence":true}"#,
        )
        .await;
    devices
        .send("zigbee2mqtt/0xbad5", r#"{"water_leak":"maybe"}"#)
        .await;
    devices
        .send("misc/unknown-device", r#"{"hello":"world"}"#)
        .await;
    // And then a real alarm, which must still get through.
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"{"action":"emergency","battery":90}"#,
        )
        .await;

    wait_until_async(Duration::from_secs(30), || {
        upstream
            .events()
            .iter()
            .any(|e| e["data"]["device"]["id"] == "zigbee:0xa4c13899607febd1")
    })
    .await
    .unwrap_or_else(|_| panic!("the good message did not flow:\n{}", gw.log_text()));
    assert!(gw.is_running(), "daemon still running");

    let dl = dead_letters(&gw);
    assert_eq!(dl.get("invalid_json"), Some(&1), "{dl:?}");
    assert_eq!(dl.get("not_utf8"), Some(&1), "{dl:?}");
    assert_eq!(dl.get("oversize"), Some(&1), "{dl:?}");
    assert_eq!(dl.get("wrong_type"), Some(&2), "{dl:?}");
    assert_eq!(dl.get("no_profile"), Some(&1), "{dl:?}");

    // Raw bytes are kept (truncated to the configured limit, with the real length recorded).
    let c = gw.journal();
    let (raw, raw_len): (Vec<u8>, i64) = c
        .query_row(
            "SELECT raw, raw_len FROM dead_letters WHERE reason = 'oversize'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(raw_len as usize, huge.len());
    assert_eq!(raw.len(), 64 * 1024);
    let binary: Vec<u8> = c
        .query_row(
            "SELECT raw FROM dead_letters WHERE reason = 'not_utf8'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(binary, vec![0xff, 0xfe, 0x00, 0x9c, 0x80, 0x01]);

    // One warning line per reason, not one per message, and it names what was wrong.
    let log = gw.log_text();
    assert!(log.contains("dead-lettered a message"), "{log}");
    assert_eq!(
        log.matches("reason=\"wrong_type\"").count(),
        1,
        "rate-limited: {log}"
    );

    // Counts are exposed to the integrator.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["dead-letters", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("oversize") && l.trim_end().ends_with(" 1")),
        "{text}"
    );

    // And readable: listed newest first with reason, detail and the payload's start, paged,
    // filtered; one shown whole (binary as a hex dump, a cut payload says so).
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
            .args(["dead-letters", "--config"])
            .arg(&gw.config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["--list"]);
    let rows: Vec<&str> = listed.lines().collect();
    assert_eq!(rows.len(), 6, "{listed}");
    assert!(
        rows[0].contains("no_profile") && rows[0].contains("{\"hello\":\"world\"}"),
        "{listed}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("invalid_json") && r.contains("{ not json")),
        "{listed}"
    );
    let page = cli(&["--list", "--limit", "2"]);
    let first_two: Vec<&str> = page.lines().take(2).collect();
    assert_eq!(first_two, rows[..2], "{page}");
    let next = page
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("… more: add --before "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no next page named: {page}"))
        .to_owned();
    let page2 = cli(&["--list", "--limit", "2", "--before", &next]);
    assert_eq!(
        page2.lines().take(2).collect::<Vec<_>>(),
        rows[2..4],
        "{page2}"
    );
    let wrong = cli(&["--list", "--reason", "wrong_type"]);
    assert_eq!(wrong.lines().count(), 2, "{wrong}");
    assert!(wrong.lines().all(|l| l.contains("wrong_type")), "{wrong}");
    let id_of = |reason: &str| -> String {
        c.query_row(
            "SELECT id FROM dead_letters WHERE reason = ?1",
            [reason],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        .to_string()
    };
    let binary_shown = cli(&["--show", &id_of("not_utf8")]);
    assert!(
        binary_shown.contains("reason    not_utf8"),
        "{binary_shown}"
    );
    assert!(binary_shown.contains("ff fe 00 9c 80 01"), "{binary_shown}");
    // A rejection names the profile's file, not only its name.
    let wrong = cli(&["--show", &id_of("wrong_type")]);
    assert!(
        wrong.contains("config/profiles/") && wrong.contains(".toml), rule "),
        "{wrong}"
    );
    let cut_shown = cli(&["--show", &id_of("oversize")]);
    assert!(
        cut_shown.contains(&format!(
            "payload   {} bytes, the first 65536 kept",
            huge.len()
        )),
        "{}",
        &cut_shown[..400.min(cut_shown.len())]
    );

    // Nothing was left unacknowledged: after a restart no dead letter comes back.
    gw.kill9();
    gw.restart();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        dead_letters(&gw).values().sum::<i64>(),
        6,
        "{:?}",
        dead_letters(&gw)
    );
    broker.stop();
}

/// "Nothing is dropped silently": a payload that is JSON but not an object (a top-level array,
/// a bare number) is something no `json` rule can read. It is dead-lettered as `not_an_object`
/// and counted, not mapped to nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_payload_that_is_not_an_object_is_dead_lettered_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let upstream = Upstream::start(broker.port, "atgw/oakview/events/#").await;
    let mut gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "array-devices").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd1",
            r#"[{"action":"emergency","battery":90}]"#,
        )
        .await;
    devices.send("zigbee2mqtt/0xa4c13899607febd2", "42").await;
    devices
        .send(
            "zigbee2mqtt/0xa4c13899607febd3",
            r#"{"action":"emergency","battery":90}"#,
        )
        .await;
    wait_until_async(Duration::from_secs(30), || {
        upstream
            .events()
            .iter()
            .any(|e| e["data"]["device"]["id"] == "zigbee:0xa4c13899607febd3")
    })
    .await
    .unwrap_or_else(|_| panic!("the good message did not flow:\n{}", gw.log_text()));
    wait_until_async(Duration::from_secs(5), || {
        dead_letters(&gw).get("not_an_object") == Some(&2)
    })
    .await
    .unwrap_or_else(|_| panic!("not dead-lettered: {:?}", dead_letters(&gw)));
    let seen: Vec<String> = gw.column("SELECT device_id FROM devices");
    assert!(
        !seen
            .iter()
            .any(|d| d.ends_with("febd1") || d.ends_with("febd2")),
        "an unreadable message counted as a check-in: {seen:?}"
    );
    gw.terminate();
    broker.stop();
}
