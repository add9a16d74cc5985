//! The daemon under a service manager: SIGHUP applies a valid configuration (and edited
//! profiles, even when the file itself is unchanged) and refuses an
//! invalid one while the old one keeps running; SIGTERM under load exits 0 and loses nothing.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const BUTTON: &str = "zigbee2mqtt/0xa4c13899607febd1";

fn events_of(g: &Gateway, device_key: &str) -> Vec<Value> {
    let c = g.journal();
    let mut s = c.prepare("SELECT json FROM events ORDER BY seq").unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| serde_json::from_str::<Value>(&r.unwrap()).unwrap())
        .filter(|e| {
            e["data"]["raw"]["topic"]
                .as_str()
                .is_some_and(|t| t.ends_with(device_key))
        })
        .collect()
}

fn reload_faults(g: &Gateway) -> Vec<String> {
    g.column(
        "SELECT phase FROM events WHERE kind = 'device_fault'
         AND json_extract(json, '$.data.device.id') = 'gateway:gw-test:config' ORDER BY seq",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_config_and_refuses_an_invalid_one_while_the_old_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let base = config(dir.path(), broker.port, "");
    let mut gw = Gateway::start(dir.path(), &base);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "reload-devices").await;

    devices.send(BUTTON, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || {
        events_of(&gw, "0xa4c13899607febd1").len() == 1
    })
    .await
    .unwrap_or_else(|_| panic!("first event missing:\n{}", gw.log_text()));
    assert_eq!(
        events_of(&gw, "0xa4c13899607febd1")[0]["data"]["device"]["registered"],
        false
    );

    // A valid change: the button is registered to room 12.
    let registered = format!(
        "{base}\n[[device]]\nid = \"pendant-12\"\nadapter = \"zigbee\"\nmatch = {{ device = \"0xa4c13899607febd1\" }}\nlocation = {{ area = \"east\", room = \"12\" }}\n"
    );
    std::fs::write(&gw.config, &registered).unwrap();
    gw.hangup();
    wait_until_async(Duration::from_secs(30), || {
        gw.log_text().contains("configuration reloaded")
    })
    .await
    .unwrap_or_else(|_| panic!("not reloaded:\n{}", gw.log_text()));
    gw.wait_subscribed().await;
    devices.send(BUTTON, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || {
        events_of(&gw, "0xa4c13899607febd1").len() == 2
    })
    .await
    .unwrap_or_else(|_| panic!("no event after the reload:\n{}", gw.log_text()));
    let after = &events_of(&gw, "0xa4c13899607febd1")[1];
    assert_eq!(after["data"]["device"]["id"], "pendant-12");
    assert_eq!(after["data"]["location"]["room"], "12");
    assert!(gw.is_running());

    // An invalid file: refused in one logged line, a gateway alert, the old config still runs.
    std::fs::write(
        &gw.config,
        registered.replace("[gateway]\n", "[gateway]\nbogus_key = 1\n"),
    )
    .unwrap();
    gw.hangup();
    wait_until_async(Duration::from_secs(20), || reload_faults(&gw) == ["raised"])
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no gateway alert for the refused reload:\n{}",
                gw.log_text()
            )
        });
    let log = gw.log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("configuration reload refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(
        refused[0].contains("bogus_key") && refused[0].contains("ERROR"),
        "the line names the key: {}",
        refused[0]
    );
    assert!(gw.is_running(), "still running");
    assert_eq!(log.matches("atgw ready").count(), 2, "not restarted");
    devices.send(BUTTON, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || {
        events_of(&gw, "0xa4c13899607febd1").len() == 3
    })
    .await
    .unwrap_or_else(|_| panic!("intake stopped after a refused reload:\n{}", gw.log_text()));
    assert_eq!(
        events_of(&gw, "0xa4c13899607febd1")[2]["data"]["device"]["id"],
        "pendant-12",
        "the previous configuration is the one running"
    );

    // Putting the file right clears the gateway alert.
    std::fs::write(&gw.config, &registered).unwrap();
    gw.hangup();
    wait_until_async(Duration::from_secs(20), || {
        reload_faults(&gw) == ["raised", "cleared"]
    })
    .await
    .unwrap_or_else(|_| panic!("not cleared: {:?}\n{}", reload_faults(&gw), gw.log_text()));
    assert!(gw.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_zero_and_every_accepted_event_is_delivered_after_restart() {
    const N: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let mut gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, ""));
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "term-devices").await;
    let t0 = 1_836_000_000u64;
    let load = tokio::spawn(async move {
        for i in 0..N {
            let body = format!(
                r#"{{"type":"reportAttribute","mac":"DC:DA:0C:5A:80:44","data":{{"attribute":"Oximeter JUMPER","value":{{"device_list":[{{"scan_time":{},"ble_addr":"ff23041920b4","pulse":70,"spo2":97,"pi":40}}]}}}}}}"#,
                t0 + i
            );
            devices.send("dusun_pub", body).await;
        }
        devices
    });
    wait_until_async(Duration::from_secs(60), || gw.event_count() >= 300)
        .await
        .unwrap_or_else(|_| panic!("no load:\n{}", gw.log_text()));
    let status = gw.terminate();
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{}",
        gw.log_text()
    );
    let at_stop = gw.event_count();
    let devices = load.await.unwrap();
    wait_until_async(Duration::from_secs(60), || devices.acked() >= N)
        .await
        .expect("the broker accepted every reading");
    assert!(at_stop < N as i64, "stopped mid-load ({at_stop} of {N})");

    gw.restart();
    let readings = |g: &Gateway| -> Vec<i64> {
        g.column(
            "SELECT json_extract(json, '$.data.raw.payload.data.value.device_list[0].scan_time')
             FROM events WHERE kind = 'vital_sign'",
        )
    };
    wait_until_async(Duration::from_secs(120), || readings(&gw).len() as u64 >= N)
        .await
        .unwrap_or_else(|_| panic!("only {} of {N} journaled", readings(&gw).len()));
    let mut got = readings(&gw);
    got.sort_unstable();
    let journaled = got.len();
    got.dedup();
    assert_eq!(got.len() as u64, N, "every reading journaled");
    assert_eq!(journaled, got.len(), "and none of them twice");

    // Delivered: the audit file sink holds every event id.
    let delivered = |g: &Gateway| -> std::collections::HashSet<String> {
        std::fs::read_to_string(g.dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["data"]["kind"] == "vital_sign")
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect()
    };
    wait_until_async(Duration::from_secs(60), || delivered(&gw).len() as u64 >= N)
        .await
        .unwrap_or_else(|_| panic!("only {} of {N} delivered", delivered(&gw).len()));
    assert_eq!(delivered(&gw).len() as u64, N);
    assert!(gw.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_re_reads_profiles_even_when_the_config_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    for entry in std::fs::read_dir(profiles_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), profiles.join(entry.file_name())).unwrap();
    }
    let base = config(dir.path(), broker.port, "").replace(
        &profiles_dir().display().to_string(),
        &profiles.display().to_string(),
    );
    let mut gw = Gateway::start(dir.path(), &base);
    gw.wait_subscribed().await;
    let devices = Publisher::connect(broker.port, "profile-reload-devices").await;
    let contact_id = |g: &Gateway, n: usize| -> Value {
        events_of(g, "0xa4c13899607febd1")[n]["data"]["codes"]["contact_id"].clone()
    };

    devices.send(BUTTON, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || {
        events_of(&gw, "0xa4c13899607febd1").len() == 1
    })
    .await
    .unwrap_or_else(|_| panic!("first event missing:\n{}", gw.log_text()));
    assert_eq!(contact_id(&gw, 0), "101");

    // Only the profile changes: the integrator maps the button's press to Contact ID 100.
    let profile = profiles.join("zigbee2mqtt.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    let old = r#"codes = { contact_id = "101", vendor = "{action}" }"#;
    assert!(
        text.contains(old),
        "the shipped profile changed; update this test"
    );
    std::fs::write(
        &profile,
        text.replacen(
            old,
            r#"codes = { contact_id = "100", vendor = "{action}" }"#,
            1,
        ),
    )
    .unwrap();
    gw.hangup();
    wait_until_async(Duration::from_secs(30), || {
        gw.log_text().contains("configuration reloaded")
    })
    .await
    .unwrap_or_else(|_| panic!("not reloaded:\n{}", gw.log_text()));
    devices.send(BUTTON, r#"{"action":"emergency"}"#).await;
    wait_until_async(Duration::from_secs(20), || {
        events_of(&gw, "0xa4c13899607febd1").len() == 2
    })
    .await
    .unwrap_or_else(|_| panic!("no event after the reload:\n{}", gw.log_text()));
    assert_eq!(contact_id(&gw, 1), "100", "the edited profile maps it");
    assert!(gw.terminate().success());
}
