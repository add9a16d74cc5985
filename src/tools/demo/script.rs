//! The simulated devices: what each one sends and when, on every protocol atgw speaks, and the
//! registry that says who and where they are. One story fits in [`CYCLE`] seconds and repeats
//! for longer runs; the times are chosen so that alerts of both paths overlap (the carers are
//! busy) without two people acting on one alert at the same instant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atgw_sia_dc09::crypto::AesKey;
use rumqttc::{AsyncClient, MqttOptions, QoS};

use super::timeline::Timeline;

/// Profiles shipped in `config/profiles/`, embedded so the demo needs only the binary.
pub const SHIPPED_PROFILES: &[(&str, &str)] = &[
    (
        "zigbee2mqtt",
        include_str!("../../../config/profiles/zigbee2mqtt.toml"),
    ),
    (
        "tuya-mir-he200-fall-radar",
        include_str!("../../../config/profiles/tuya-mir-he200-fall-radar.toml"),
    ),
    (
        "heiman-hs2fd-fall",
        include_str!("../../../config/profiles/heiman-hs2fd-fall.toml"),
    ),
    (
        "ble-hub-oximeter",
        include_str!("../../../config/profiles/ble-hub-oximeter.toml"),
    ),
];

/// Seconds one pass of the story takes before it starts again (the default 25 s run shows one
/// pass: the last person acts at about 13 s).
pub const CYCLE: f64 = 30.0;

/// One scripted MQTT message: seconds into the cycle, topic, payload (`TIME` becomes now).
struct Step(f64, &'static str, &'static str);

const OXIMETER: &str = "dusun_pub";

/// A care-home morning over MQTT: a pendant press (room 12), a suspected then confirmed fall
/// (room 14), a kitchen leak, SpO2 readings from a BLE hub (one low, one "finger out"
/// sentinel), the pendant dropping off the network and back, and one garbage payload that is
/// dead-lettered.
const MQTT_SCRIPT: &[Step] = &[
    Step(
        0.5,
        "zigbee2mqtt/0xa4c13899607febd1",
        r#"{"action":null,"battery":100,"linkquality":14}"#,
    ),
    Step(
        1.0,
        "zigbee2mqtt/0xa4c13899607febd1",
        r#"{"action":"emergency","battery":100,"linkquality":18}"#,
    ),
    Step(
        1.2,
        "zigbee2mqtt/0xa4c13899607febd1",
        r#"{"action":"","battery":100,"linkquality":18}"#,
    ),
    Step(2.0, OXIMETER, OXIMETER_NORMAL),
    Step(
        3.0,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"none","linkquality":120}"#,
    ),
    Step(
        4.0,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"maybe_fall","linkquality":120}"#,
    ),
    Step(
        5.5,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"fall","linkquality":120}"#,
    ),
    Step(
        6.0,
        "zigbee2mqtt/0x005043c95f277c80",
        r#"{"water_leak":true,"linkquality":94,"tamper":false,"battery_low":false}"#,
    ),
    Step(
        7.0,
        OXIMETER,
        r#"{"from":"BLE","to":"CLOUD","time":TIME,"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{"device_list":[{"scan_time":TIME,"ble_addr":"ff23041920b4","pulse":104,"spo2":88,"pi":12}]}}}"#,
    ),
    Step(
        8.0,
        "zigbee2mqtt/0xa4c13899607febd1/availability",
        r#"{"state":"offline"}"#,
    ),
    Step(
        9.0,
        "zigbee2mqtt/0x005043c95f277c80",
        r#"{"water_leak":false,"linkquality":97,"tamper":false,"battery_low":false}"#,
    ),
    Step(
        11.0,
        "zigbee2mqtt/0xa4c13899607febd1/availability",
        r#"{"state":"online"}"#,
    ),
    // After the senior has acknowledged (about 10 s), so the restore and the person do not race.
    Step(
        12.0,
        "zigbee2mqtt/0xdc8e95fffe4dc3dd",
        r#"{"presence":true,"occupancy":true,"fall_down_status":"none","linkquality":120}"#,
    ),
    Step(
        13.5,
        OXIMETER,
        r#"{"from":"BLE","to":"CLOUD","time":TIME,"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{"device_list":[{"scan_time":TIME,"ble_addr":"ff23041920b4","pulse":127,"spo2":127,"pi":0}]}}}"#,
    ),
    Step(14.0, "zigbee2mqtt/0xa4c13899607febd1", "this is not json {"),
    Step(17.0, OXIMETER, OXIMETER_NORMAL),
    Step(21.0, OXIMETER, OXIMETER_NORMAL),
    Step(25.0, OXIMETER, OXIMETER_NORMAL),
];

const OXIMETER_NORMAL: &str = r#"{"from":"BLE","to":"CLOUD","time":TIME,"deviceCode":"DC:DA:0C:5A:80:44","mac":"DC:DA:0C:5A:80:44","type":"reportAttribute","device":"Oximeter Jumper","data":{"attribute":"Oximeter JUMPER","mac":"DC:DA:0C:5A:80:44","value":{"device_list":[{"scan_time":TIME,"ble_addr":"ff23041920b4","pulse":72,"spo2":96,"pi":43}]}}}"#;

/// Legacy telecare on the same timeline: an alarm panel (account 1234, plain) with a pendant
/// (zone 003) and a fall detector (zone 005) in flat 3, and a home unit in flat 9 (account
/// 5678) that encrypts with AES-128. The flat 3 fall detector restores on its own two seconds
/// later, before anyone answered: the restore is recorded on the fall, which keeps escalating
/// until the senior acknowledges it (a resident's alarm is never closed by its device).
const DC09_SCRIPT: &[(f64, &str, &str)] = &[
    (1.5, "1234", "1101 01 003"),
    (3.5, "5678", "1103 01 002"),
    (6.5, "1234", "1103 01 005"),
    (8.5, "1234", "3103 01 005"),
    (9.8, "5678", "1602 00 000"),
    (11.5, "1234", "NULL"),
    (20.0, "1234", "1602 00 000"),
    (26.0, "5678", "NULL"),
];

/// The registry entries of the MQTT devices (adapter `zigbee`).
pub const MQTT_DEVICES: &str = r#"
[[device]]
id = "pendant-room12"
adapter = "zigbee"
match = { device = "0xa4c13899607febd1" }
resident = "res-0042"
location = { area = "east", room = "12" }

[[device]]
id = "fall-radar-room14"
adapter = "zigbee"
match = { device = "0xdc8e95fffe4dc3dd" }
resident = "res-0057"
location = { area = "east", room = "14" }

[[device]]
id = "leak-kitchen"
adapter = "zigbee"
match = { device = "0x005043c95f277c80" }
location = { area = "ground", room = "kitchen" }

[[device]]
id = "oximeter-room14"
adapter = "zigbee"
match = { device = "ff23041920b4" }
resident = "res-0057"
location = { area = "east", room = "14" }
"#;

/// The registry entries of the DC-09 devices (adapter `alarms`).
pub const DC09_DEVICES: &str = r#"
[[device]]
id = "alarm-panel-flat3"
adapter = "alarms"
match = { account = "1234" }
location = { area = "west", room = "3" }

[[device]]
id = "pendant-flat3"
adapter = "alarms"
match = { account = "1234", zone = "003" }
resident = "res-0071"
location = { area = "west", room = "3" }

[[device]]
id = "falls-detector-flat3"
adapter = "alarms"
match = { account = "1234", zone = "005" }
resident = "res-0071"
location = { area = "west", room = "3" }

[[device]]
id = "home-unit-flat9"
adapter = "alarms"
match = { account = "5678" }
resident = "res-0090"
location = { area = "west", room = "9" }
"#;

fn due(started: Instant, cycle: u32, at: f64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(started + Duration::from_secs_f64(f64::from(cycle) * CYCLE + at))
}

/// zigbee2mqtt devices and the BLE hub, publishing to the private broker at QoS 1.
pub async fn mqtt_devices(port: u16, started: Instant) {
    let mut o = MqttOptions::new("demo-devices", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let poll = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    // Aborting this task drops `_guard`, which stops the connection's event loop with it.
    let _guard = AbortOnDrop(poll);
    let mut cycle = 0u32;
    loop {
        for Step(at, topic, payload) in MQTT_SCRIPT {
            tokio::time::sleep_until(due(started, cycle, *at)).await;
            let now = jiff::Timestamp::now().as_second().to_string();
            let body = payload.replace("TIME", &now);
            let _ = client.publish(*topic, QoS::AtLeastOnce, false, body).await;
        }
        cycle += 1;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// DC-09 transmitters: each scripted Contact ID event is one frame that must be ACKed; a frame
/// that is not is said on the timeline (it would be a lost alarm).
pub async fn alarm_panels(port: u16, key: AesKey, started: Instant, timeline: Arc<Timeline>) {
    use atgw_sia_dc09::simulator::SimPayload;
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut cycle = 0u32;
    loop {
        for (at, account, cid) in DC09_SCRIPT {
            tokio::time::sleep_until(due(started, cycle, *at)).await;
            let mut cfg = atgw_sia_dc09::SimulatorConfig::new(target, *account);
            cfg.payload = if *cid == "NULL" {
                SimPayload::Null
            } else {
                SimPayload::ContactId((*cid).into())
            };
            if *account == "5678" {
                cfg.key = Some(key.clone());
            }
            match atgw_sia_dc09::simulate(cfg).await {
                Ok(r) if r.acked == 1 => {}
                Ok(r) => timeline.problem(format!(
                    "alarm panel {account}: frame not acknowledged ({r:?})"
                )),
                Err(e) => timeline.problem(format!("alarm panel {account}: {e}")),
            }
        }
        cycle += 1;
    }
}
