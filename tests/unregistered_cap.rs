//! Unregistered devices are bounded (issue 11 item 7): anyone who can publish to the broker can
//! invent device ids, so the per-device bookkeeping kept for devices nobody registered
//! (`devices` rows) stops at `[journal] max_unregistered_devices`, the least recently heard
//! going first, counted, logged once and raised as one gateway alert. What the devices *said*
//! is never refused: every event is journaled, alarms included, and a registered device is
//! matched and kept whatever the unregistered ones do. Real binary, real private Mosquitto.

mod common;

use std::time::Duration;

use common::*;

const CAP: i64 = 50;
const UNREGISTERED: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_devices_beyond_the_cap_are_forgotten_oldest_first_counted_and_alerted_while_every_event_is_journaled()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (api, base, token) = api_block(dir.path());
    let extra = format!(
        r#"
[journal]
max_unregistered_devices = {CAP}

[[route]]
name = "carers"
sinks = ["upstream"]

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["carers"]

[[device]]
id = "pendant-12"
adapter = "zigbee"
match = {{ device = "0xregistered12" }}
location = {{ area = "east", room = "12" }}
{api}"#
    );
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &extra));
    gw.wait_subscribed().await;

    let devices = Publisher::connect(broker.port, "hostile-devices").await;
    // The registered pendant is heard first, so it is the oldest device of all: the cap must
    // not touch it.
    devices
        .send("zigbee2mqtt/0xregistered12", r#"{"action":"emergency"}"#)
        .await;
    for n in 0..UNREGISTERED {
        devices
            .send(
                &format!("zigbee2mqtt/0xunknown{n:04}"),
                r#"{"action":"emergency"}"#,
            )
            .await;
        // Spread over several batches so "oldest first" has an order to follow.
        if n % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    devices
        .send("zigbee2mqtt/0xregistered12", r#"{"action":"emergency"}"#)
        .await;
    let presses = || {
        gw.column::<i64>(
            "SELECT count(*) FROM events WHERE kind = 'pendant_press' AND phase = 'point'",
        )[0]
    };
    wait_until_async(Duration::from_secs(30), || presses() >= UNREGISTERED + 2)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {} presses journaled\n{}",
                presses(),
                UNREGISTERED + 2,
                gw.log_text()
            )
        });

    // Every press is journaled, once per device, and each opened its alert (they may be
    // alarms: the cap bounds bookkeeping, never what a device said).
    assert_eq!(
        gw.column::<String>(
            "SELECT count(*) || ' ' || count(DISTINCT device_id) FROM events
             WHERE kind = 'pendant_press' AND phase = 'point' AND device_id LIKE 'zigbee:0xunknown%'"
        ),
        [format!("{UNREGISTERED} {UNREGISTERED}")],
        "every unregistered device's press is journaled, once: {:?}\n{}",
        gw.column::<String>(
            "SELECT device_id || ' ' || kind || ' ' || phase || ' ' || count(*) FROM events
             GROUP BY device_id, kind, phase HAVING count(*) > 1 OR device_id NOT LIKE 'zigbee:0xunknown%'"
        ),
        gw.log_text()
    );
    assert_eq!(
        gw.column::<i64>(
            "SELECT count(*) FROM alerts WHERE kind = 'pendant_press'
             AND device_id LIKE 'zigbee:0xunknown%'"
        ),
        [UNREGISTERED],
        "every unregistered device's press opened an alert"
    );
    // The registered pendant is still matched (registry id, location) and keeps its row.
    assert_eq!(
        gw.column::<i64>(
            "SELECT count(*) FROM events WHERE kind = 'pendant_press' AND phase = 'point' AND device_id = 'pendant-12'
             AND json_extract(json, '$.data.device.registered') = 1
             AND json_extract(json, '$.data.location.room') = '12'"
        ),
        [2],
        "the registered device is matched"
    );
    assert_eq!(
        gw.column::<i64>(
            "SELECT count(*) FROM devices WHERE device_id = 'pendant-12' AND registered = 1"
        ),
        [1],
        "a registered device never counts against the cap"
    );

    // The bookkeeping is bounded, and what it forgot were the least recently heard.
    // (The gateway's own components, such as the gateway alert's `gateway:gw-test:…`, are
    // not outside input and never count.)
    let unregistered_rows = gw
        .column::<i64>("SELECT count(*) FROM devices WHERE registered = 0 AND adapter = 'zigbee'")
        [0];
    assert!(
        unregistered_rows <= CAP,
        "{unregistered_rows} unregistered device rows, cap {CAP}"
    );
    assert_eq!(
        gw.column::<i64>("SELECT count(*) FROM devices WHERE device_id = 'zigbee:0xunknown0199'"),
        [1],
        "the most recently heard device is kept"
    );
    assert_eq!(
        gw.column::<i64>("SELECT count(*) FROM devices WHERE device_id = 'zigbee:0xunknown0000'"),
        [0],
        "the least recently heard device is the first forgotten"
    );

    // Counted in the journal, in the metrics, logged once, and one gateway alert.
    let evicted = gw.column::<String>(
        "SELECT value FROM adapter_state
         WHERE adapter = 'gateway' AND key = 'unregistered_devices.evicted'",
    );
    assert_eq!(
        evicted,
        [(UNREGISTERED - unregistered_rows).to_string()],
        "what was forgotten is counted"
    );
    let gateway_alerts = gw.column::<String>(
        "SELECT json_extract(json, '$.data.message') FROM events
         WHERE device_id = 'gateway:gw-test:unregistered_devices'",
    );
    assert_eq!(
        gateway_alerts.len(),
        1,
        "one gateway alert when the cap is reached: {gateway_alerts:?}"
    );
    assert!(
        gateway_alerts[0].contains(&format!("({CAP})")),
        "{gateway_alerts:?}"
    );
    let log = gw.log_text();
    assert_eq!(
        log.matches("reached max_unregistered_devices").count(),
        1,
        "the cap is logged once:\n{log}"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = base.trim_end_matches("/api/v1");
    let metrics = reqwest::Client::new()
        .get(format!("{root}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("atgw_unregistered_devices_evicted_total "))
        .unwrap_or_else(|| panic!("no eviction counter:\n{metrics}"));
    assert_eq!(
        line,
        format!(
            "atgw_unregistered_devices_evicted_total {}",
            UNREGISTERED - unregistered_rows
        )
    );
}
