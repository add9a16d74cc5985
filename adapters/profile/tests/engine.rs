//! The engine feature by feature, through the public API only.

use std::collections::HashMap;
use std::path::Path;

use atgw_profile::{Evaluation, Input, Profile, ProfileError, ProfileSet};
use atgw_sdk::event::Confidence;
use atgw_sdk::{EventDraft, Kind, Phase, Priority};
use serde_json::json;

const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/profiles");

fn shipped() -> ProfileSet {
    let names: Vec<String> = [
        "tuya-mir-he200-fall-radar",
        "heiman-hs2fd-fall",
        "ble-hub-oximeter",
        "zigbee2mqtt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ProfileSet::load(Path::new(PROFILES), &names).unwrap()
}

fn one(text: &str) -> ProfileSet {
    ProfileSet::from_profiles(vec![Profile::parse("test", text).unwrap()])
}

/// Feeds messages in order, applying state updates like the adapter does.
struct Harness {
    set: ProfileSet,
    state: HashMap<String, String>,
    tz: jiff::tz::TimeZone,
    /// Receipt time of the next message.
    now: jiff::Timestamp,
}

impl Harness {
    fn new(set: ProfileSet) -> Self {
        Harness {
            set,
            state: HashMap::new(),
            tz: jiff::tz::TimeZone::fixed(jiff::tz::offset(1)),
            now: "2026-04-17T15:33:23Z".parse().unwrap(),
        }
    }

    fn send_bytes(&mut self, topic: &str, payload: &[u8]) -> Evaluation {
        let input = Input {
            protocol: "mqtt",
            topic,
            payload,
            received: self.now,
            adapter: "z2m",
            timezone: &self.tz,
            request: None,
        };
        let outcome = self.set.evaluate(&input, &self.state);
        if let Evaluation::Mapped { state, .. } = &outcome {
            for u in state {
                match &u.value {
                    Some(v) => self.state.insert(u.key.clone(), v.clone()),
                    None => self.state.remove(&u.key),
                };
            }
        }
        outcome
    }

    fn send(&mut self, topic: &str, payload: serde_json::Value) -> Evaluation {
        self.send_bytes(topic, &serde_json::to_vec(&payload).unwrap())
    }

    fn events(&mut self, topic: &str, payload: serde_json::Value) -> Vec<EventDraft> {
        match self.send(topic, payload) {
            Evaluation::Mapped { events, .. } => events,
            other => panic!("expected Mapped, got {other:?}"),
        }
    }
}

fn rejected(outcome: Evaluation) -> (&'static str, String) {
    match outcome {
        Evaluation::Rejected { reason, detail } => (reason, detail),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

const RADAR: &str = "zigbee2mqtt/0xdc8e95fffe4dc3dd";

#[test]
fn fall_radar_raises_upgrades_downgrades_and_clears() {
    let mut h = Harness::new(shipped());
    assert!(
        h.events(RADAR, json!({"fall_down_status": "none"}))
            .is_empty()
    );
    let e = h.events(RADAR, json!({"fall_down_status": "maybe_fall"}));
    assert_eq!(
        (e[0].data.kind, e[0].data.phase),
        (Kind::Fall, Phase::Raised)
    );
    assert_eq!(e[0].data.confidence, Some(Confidence::Suspected));
    assert_eq!(e[0].data.priority, Priority::Medium);
    assert_eq!(e[0].data.device.vendor.as_deref(), Some("Tuya"));
    assert_eq!(e[0].data.device.model.as_deref(), Some("MIR-HE200-TY"));
    assert_eq!(e[0].data.codes.snomed.as_deref(), Some("1912002"));
    assert_eq!(e[0].data.codes.vendor.as_deref(), Some("maybe_fall"));
    let e = h.events(RADAR, json!({"fall_down_status": "fall"}));
    assert_eq!(e[0].data.confidence, Some(Confidence::Confirmed));
    assert_eq!(e[0].data.priority, Priority::High);
    assert!(
        h.events(RADAR, json!({"fall_down_status": "fall", "linkquality": 3}))
            .is_empty()
    );
    let e = h.events(RADAR, json!({"fall_down_status": "maybe_fall"}));
    assert_eq!(
        (e[0].data.phase, e[0].data.confidence),
        (Phase::Raised, Some(Confidence::Suspected))
    );
    let e = h.events(RADAR, json!({"fall_down_status": "none"}));
    assert_eq!(e[0].data.phase, Phase::Cleared);
}

#[test]
fn first_sight_of_an_alarm_raises_but_a_normal_first_reading_is_silent() {
    let mut h = Harness::new(shipped());
    let e = h.events("zigbee2mqtt/leak", json!({"water_leak": true}));
    assert_eq!(
        (e[0].data.kind, e[0].data.phase),
        (Kind::WaterLeak, Phase::Raised)
    );
    assert_eq!(e[0].data.codes.contact_id.as_deref(), Some("154"));
    assert!(
        h.events("zigbee2mqtt/dry", json!({"water_leak": false}))
            .is_empty()
    );
}

#[test]
fn edge_state_is_namespaced_and_survives_a_restart() {
    let mut h = Harness::new(shipped());
    h.events("zigbee2mqtt/0xabc", json!({"smoke": true}));
    assert_eq!(
        h.state
            .get("zigbee2mqtt|zigbee:0xabc|smoke")
            .map(String::as_str),
        Some("true\u{1f}smoke/raised/-/high"),
        "the value, and what it was mapped to"
    );
    // A restart: a new engine with the persisted state must not raise the same smoke again.
    let persisted = std::mem::take(&mut h.state);
    let mut after = Harness::new(shipped());
    after.state = persisted;
    assert!(
        after
            .events("zigbee2mqtt/0xabc", json!({"smoke": true}))
            .is_empty()
    );
    let e = after.events("zigbee2mqtt/0xabc", json!({"smoke": false}));
    assert_eq!(
        (e[0].data.kind, e[0].data.phase),
        (Kind::Smoke, Phase::Cleared)
    );
}

#[test]
fn a_repeat_writes_no_state() {
    let mut h = Harness::new(shipped());
    h.send("zigbee2mqtt/x", json!({"tamper": true}));
    match h.send("zigbee2mqtt/x", json!({"tamper": true})) {
        Evaluation::Mapped { events, state, .. } => assert!(events.is_empty() && state.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ias_booleans_map_to_their_kinds() {
    let mut h = Harness::new(shipped());
    let e = h.events(
        "zigbee2mqtt/multi",
        json!({"sos": true, "carbon_monoxide": true, "gas": true, "battery_low": true, "trouble": true, "ac_status": true}),
    );
    let kinds: Vec<Kind> = e.iter().map(|e| e.data.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::PendantPress,
            Kind::Co,
            Kind::Gas,
            Kind::DeviceFault,
            Kind::PowerFault,
            Kind::LowBattery, // the battery table's own alarm comes after the states
        ]
    );
    assert!(e.iter().all(|e| e.data.phase == Phase::Raised));
    let e = h.events("zigbee2mqtt/multi", json!({"sos": false}));
    assert_eq!(
        (e[0].data.kind, e[0].data.phase),
        (Kind::PendantPress, Phase::Cleared)
    );
}

#[test]
fn sos_actions_are_points_and_empty_or_other_actions_are_not() {
    let mut h = Harness::new(shipped());
    for action in ["emergency", "sos", "panic"] {
        let e = h.events("zigbee2mqtt/btn", json!({ "action": action }));
        assert_eq!(
            (e[0].data.kind, e[0].data.phase),
            (Kind::PendantPress, Phase::Point),
            "{action}"
        );
    }
    let e = h.events("zigbee2mqtt/btn", json!({"action": "panic"}));
    assert_eq!(e[0].data.codes.contact_id.as_deref(), Some("120"));
    assert_eq!(e[0].data.codes.vendor.as_deref(), Some("panic"));
    for quiet in [
        json!({"action": ""}),
        json!({"action": null}),
        json!({"action": "single"}),
    ] {
        assert!(h.events("zigbee2mqtt/btn", quiet).is_empty());
    }
    // Every press is an event: points are not edge-detected.
    assert_eq!(
        h.events("zigbee2mqtt/btn", json!({"action": "sos"})).len(),
        1
    );
}

#[test]
fn wrong_types_are_rejected_naming_the_path() {
    let mut h = Harness::new(shipped());
    let (reason, detail) = rejected(h.send("zigbee2mqtt/leak", json!({"water_leak": "maybe"})));
    assert_eq!(reason, "wrong_type");
    assert!(
        detail.contains("`water_leak`") && detail.contains("\"maybe\""),
        "{detail}"
    );
    let (reason, detail) = rejected(h.send(RADAR, json!({"fall_down_status": 5})));
    assert_eq!(reason, "wrong_type");
    assert!(
        detail.contains("fall_down_status") && detail.contains("tuya-mir-he200-fall-radar"),
        "{detail}"
    );
    let (reason, _) = rejected(h.send("zigbee2mqtt/btn", json!({"action": 7})));
    assert_eq!(reason, "wrong_type");
    assert!(h.state.is_empty(), "a rejected message changes no state");
}

#[test]
fn unknown_enum_values_are_unmapped() {
    let mut h = Harness::new(shipped());
    let (reason, detail) = rejected(h.send(RADAR, json!({"fall_down_status": "tumbling"})));
    assert_eq!(reason, "unmapped_value");
    assert!(
        detail.contains("tumbling") && detail.contains("maybe_fall"),
        "{detail}"
    );
}

#[test]
fn an_ignored_value_changes_nothing() {
    let mut h = Harness::new(shipped());
    h.events("zigbee2mqtt/hs2fd", json!({"fall_status": "fall_alarm"}));
    assert!(
        h.events("zigbee2mqtt/hs2fd", json!({"fall_status": "unknown"}))
            .is_empty()
    );
    assert_eq!(
        h.state
            .get("heiman-hs2fd-fall|zigbee:hs2fd|fall_status")
            .and_then(|v| v.split('\u{1f}').next()),
        Some("fall_alarm")
    );
}

#[test]
fn availability_accepts_json_and_bare_text_and_shares_one_edge() {
    let mut h = Harness::new(shipped());
    let e = h.events(
        "zigbee2mqtt/living/radar/availability",
        json!({"state": "offline"}),
    );
    assert_eq!(
        (e[0].data.kind, e[0].data.phase),
        (Kind::DeviceOffline, Phase::Raised)
    );
    assert_eq!(e[0].data.device.id, "zigbee:living/radar");
    assert_eq!(
        e[0].registry_keys.get("device").map(String::as_str),
        Some("living/radar")
    );
    match h.send_bytes("zigbee2mqtt/living/radar/availability", b"online") {
        Evaluation::Mapped { events, seen, .. } => {
            assert_eq!(events[0].data.phase, Phase::Cleared);
            assert_eq!(
                events[0].data.raw.as_ref().unwrap().payload,
                json!("online")
            );
            assert!(
                seen.is_empty(),
                "availability is the bridge talking, not a check-in"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bridge_state_is_the_bridge_device() {
    let mut h = Harness::new(shipped());
    let e = h.events("zigbee2mqtt/bridge/state", json!({"state": "offline"}));
    assert_eq!(e[0].data.device.id, "zigbee:bridge");
    assert_eq!(e[0].data.kind, Kind::DeviceOffline);
    match h.send_bytes("zigbee2mqtt/bridge/state", b"online") {
        Evaluation::Mapped { events, .. } => assert_eq!(events[0].data.phase, Phase::Cleared),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ignore_rules_cover_bridge_commands_and_the_action_duplicate() {
    let mut h = Harness::new(shipped());
    for (topic, rule) in [
        ("zigbee2mqtt/bridge/devices", "bridge"),
        ("zigbee2mqtt/bridge/event", "bridge"),
        ("zigbee2mqtt/0xabc/set", "commands"),
        ("zigbee2mqtt/a/b/set/state", "commands"),
        ("zigbee2mqtt/0xabc/get", "commands"),
        ("zigbee2mqtt/0x847127fffe0542eb/action", "action-duplicate"),
    ] {
        match h.send_bytes(topic, b"emergency") {
            Evaluation::Ignored { profile, rule: r } => {
                assert_eq!(
                    (profile.as_str(), r.as_str()),
                    ("zigbee2mqtt", rule),
                    "{topic}"
                );
            }
            other => panic!("{topic}: {other:?}"),
        }
    }
}

#[test]
fn unreadable_and_unknown_input_is_rejected_with_a_reason() {
    let mut h = Harness::new(shipped());
    assert_eq!(
        rejected(h.send_bytes("zigbee2mqtt/0xabc", b"{not json")).0,
        "invalid_json"
    );
    assert_eq!(
        rejected(h.send_bytes("zigbee2mqtt/0xabc", &[0xff, 0xfe])).0,
        "not_utf8"
    );
    let (reason, detail) = rejected(h.send_bytes("home/unknown", b"{}"));
    assert_eq!(reason, "no_profile");
    assert!(detail.contains("home/unknown"));
    assert_eq!(
        rejected(h.send("dusun_pub", json!({"type": "other"}))).0,
        "no_profile"
    );
}

#[test]
fn telemetry_reports_battery_signal_time_and_a_check_in() {
    let mut h = Harness::new(shipped());
    let out = h.send(
        "zigbee2mqtt/0xa4c1",
        json!({"action": "emergency", "battery": "80.00", "voltage": 3025, "linkquality": null, "last_seen": 1656118444933_i64}),
    );
    let Evaluation::Mapped { events, seen, .. } = out else {
        panic!("{out:?}")
    };
    let b = events[0].data.battery.as_ref().unwrap();
    assert_eq!((b.percent, b.voltage_mv), (Some(80.0), Some(3025.0)));
    assert_eq!(events[0].data.signal, None);
    assert_eq!(
        events[0].time.unwrap().to_string(),
        "2022-06-25T00:54:04.933Z"
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].device_id, "zigbee:0xa4c1");
    assert_eq!(
        seen[0].registry_keys.get("device").map(String::as_str),
        Some("0xa4c1")
    );
}

#[test]
fn ias_test_mode_marks_events_as_tests() {
    let mut h = Harness::new(shipped());
    let e = h.events("zigbee2mqtt/det", json!({"smoke": true, "test": true}));
    assert!(e[0].data.test);
}

#[test]
fn oximeter_elements_become_vital_signs_with_sentinels_absent() {
    let mut h = Harness::new(shipped());
    let msg = |spo2: i64, pulse: i64, pi: i64| {
        json!({"type": "reportAttribute", "mac": "DC:DA:0C:5A:80:44", "data": {"attribute": "Oximeter JUMPER",
          "value": {"device_list": [{"scan_time": 1836946958, "ble_addr": "ff23041920b4", "pulse": pulse, "spo2": spo2, "pi": pi}]}}})
    };
    let e = h.events("dusun_pub", msg(96, 72, 43));
    let d = &e[0].data;
    assert_eq!(
        (d.kind, d.phase, d.priority),
        (Kind::VitalSign, Phase::Point, Priority::Info)
    );
    assert_eq!(d.device.id, "ble:ff23041920b4");
    assert_eq!(d.device.model.as_deref(), Some("Oximeter JUMPER"));
    assert_eq!(
        e[0].registry_keys.get("hub").map(String::as_str),
        Some("DC:DA:0C:5A:80:44")
    );
    assert_eq!(e[0].time.unwrap().as_second(), 1836946958);
    let pi = d
        .observations
        .iter()
        .find(|o| o.name == "perfusion_index")
        .unwrap();
    assert_eq!(pi.value, Some(4.3));
    let e = h.events("dusun_pub", msg(127, 127, 0));
    for name in ["spo2", "heart_rate"] {
        let o = e[0]
            .data
            .observations
            .iter()
            .find(|o| o.name == name)
            .unwrap();
        assert_eq!(
            (o.value, o.absent_reason.as_deref()),
            (None, Some("error")),
            "{name}"
        );
    }
    let mut bad = msg(0, 0, 0);
    bad["data"]["value"]["device_list"][0]["spo2"] = json!("high");
    let (reason, detail) = rejected(h.send("dusun_pub", bad));
    assert_eq!(reason, "wrong_type");
    assert!(detail.contains("spo2"), "{detail}");
    assert!(matches!(
        h.send(
            "dusun_pub",
            json!({"type": "HB_Msg", "data": {"msg": "Online"}})
        ),
        Evaluation::Ignored { .. }
    ));
}

#[test]
fn for_each_sees_its_own_earlier_elements_state() {
    let set = one(r#"
        match.topic = "hub/{hub}"
        for_each = "readings"
        device.id = "x:{id}"
        [[state]]
        path = "alarm"
        kind = "medical"
        "#);
    let mut h = Harness::new(set);
    let out = h.send("hub/1", json!({"readings": [{"id": "a", "alarm": true}, {"id": "a", "alarm": true}, {"id": "b", "alarm": false}]}));
    let Evaluation::Mapped {
        events,
        state,
        seen,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(
        events.len(),
        1,
        "the second element is a repeat of the first"
    );
    assert_eq!(state.len(), 2, "one update per key");
    assert_eq!(seen.len(), 2);
}

#[test]
fn too_many_elements_are_rejected() {
    let set = one(
        "match.topic = \"t\"\nfor_each = \"l\"\nmax_items = 2\ndevice.id = \"x:{id}\"\n[[point]]\nkind = \"vital_sign\"\n",
    );
    let mut h = Harness::new(set);
    assert_eq!(
        rejected(h.send("t", json!({"l": [{"id": 1}, {"id": 2}, {"id": 3}]}))).0,
        "too_many_items"
    );
    assert_eq!(
        rejected(h.send("t", json!({"l": {"id": 1}}))).0,
        "wrong_type"
    );
    assert_eq!(
        rejected(h.send("t", json!({"l": [{"no_id": 1}]}))).0,
        "missing_field"
    );
}

#[test]
fn conditions_select_messages_by_key_and_value() {
    let set = one(r#"
        match.topic = "site/+/{dev}"
        match.has = ["data.v"]
        match.equals = { kind = ["a", "b"], data.level = 2 }
        device.id = "d:{dev}"
        [[point]]
        kind = "assistance_call"
        "#);
    let mut h = Harness::new(set);
    assert_eq!(
        h.events(
            "site/x/1",
            json!({"kind": "b", "data": {"v": 0, "level": 2.0}})
        )
        .len(),
        1
    );
    assert_eq!(
        rejected(h.send(
            "site/x/1",
            json!({"kind": "c", "data": {"v": 0, "level": 2}})
        ))
        .0,
        "no_profile"
    );
    assert_eq!(
        rejected(h.send("site/x/1", json!({"kind": "a", "data": {"level": 2}}))).0,
        "no_profile"
    );
}

#[test]
fn zoneless_times_use_the_site_zone_and_patterns_work() {
    let set = one(r#"
        match.topic = "t"
        device.id = "d:1"
        time = { path = "ts", format = "%d/%m/%Y %H:%M" }
        [[point]]
        kind = "heartbeat"
        "#);
    let mut h = Harness::new(set); // site zone is UTC+1
    let e = h.events("t", json!({"ts": "17/04/2026 10:30"}));
    assert_eq!(e[0].time.unwrap().to_string(), "2026-04-17T09:30:00Z");
    let e = h.events("t", json!({"ts": "garbage"}));
    assert_eq!(
        e[0].time, None,
        "an unreadable time falls back to receipt time, the event still flows"
    );
}

#[test]
fn messages_are_templated_and_capped_at_160_characters() {
    let long = "x".repeat(300);
    let set = one(&format!(
        r#"
        match.topic = "room/{{room}}"
        device.id = "d:{{room}}"
        message = "Call in room {{room}}"
        [[point]]
        path = "button"
        kind = "assistance_call"
        values = {{ call = {{}}, long = {{ message = "{long}" }} }}
        "#
    ));
    let mut h = Harness::new(set);
    let e = h.events("room/12", json!({"button": "call"}));
    assert_eq!(e[0].data.message.as_deref(), Some("Call in room 12"));
    let e = h.events("room/12", json!({"button": "long"}));
    assert_eq!(e[0].data.message.as_ref().unwrap().chars().count(), 160);
}

#[test]
fn integer_states_and_explicit_test_values() {
    let set = one(r#"
        match.topic = "t/{d}"
        device.id = "d:{d}"
        test = { path = "mode", equals = "demo" }
        [[state]]
        path = "dp116"
        type = "integer"
        kind = "fall"
        values = { 0 = { phase = "cleared" }, 2 = { phase = "raised" } }
        "#);
    let mut h = Harness::new(set);
    let e = h.events("t/1", json!({"dp116": 2, "mode": "demo"}));
    assert!(e[0].data.test);
    assert_eq!(
        rejected(h.send("t/1", json!({"dp116": "2"}))).0,
        "wrong_type"
    );
    assert_eq!(
        rejected(h.send("t/1", json!({"dp116": 1}))).0,
        "unmapped_value"
    );
}

// ---- profile errors name the file, the key and what was expected ----

fn parse_err(text: &str) -> String {
    Profile::parse("my-device", text).unwrap_err().to_string()
}

#[test]
fn a_typo_names_the_line_and_key() {
    let err = parse_err(
        "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"a\"\nkind = \"fall\"\npriorty = \"high\"\n",
    );
    assert!(
        err.contains("my-device") && err.contains("line 6") && err.contains("priorty"),
        "{err}"
    );
}

#[test]
fn an_unknown_kind_lists_the_vocabulary() {
    let err = parse_err(
        "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"a\"\nkind = \"falls\"\n",
    );
    assert!(
        err.contains("line 5") && err.contains("`kind`") && err.contains("pendant_press"),
        "{err}"
    );
}

#[test]
fn a_device_cannot_report_the_gateways_shelf_announcement() {
    for text in [
        "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"a\"\nkind = \"shelved\"\n",
        "match.topic = \"t\"\ndevice.id = \"d\"\n[[point]]\npath = \"a\"\nkind = \"shelved\"\n",
        "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"a\"\nkind = \"tamper\"\nvalues = { x = { kind = \"shelved\", phase = \"raised\" } }\n",
    ] {
        let err = parse_err(text);
        assert!(err.contains("gateway's own announcement"), "{err}");
    }
}

#[test]
fn meaning_errors_name_the_key_path() {
    let cases = [
        (
            "match.topic = \"a/#/b/#\"\ndevice.id = \"d\"",
            "match.topic",
        ),
        (
            "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"a..b\"\nkind = \"fall\"",
            "state[0].path",
        ),
        (
            "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"s\"\nkind = \"fall\"\nvalues = { x = { priority = \"high\" } }",
            "state[0].values.x.phase",
        ),
        (
            "match.topic = \"t\"\ndevice.id = \"d\"\n[[state]]\npath = \"s\"\nkind = \"fall\"\nvalues = { x = { phase = \"acknowledged\" } }",
            "state[0].values.x.phase",
        ),
        (
            "[[rule]]\nmatch.topic = \"t\"\ndevice.id = \"d\"\ntime = { path = \"t\", format = \"iso\" }",
            "rule[0].time.format",
        ),
        (
            "match.topic = \"t\"\ndevice.id = \"{unclosed\"",
            "device.id",
        ),
        ("match.topic = \"t\"", "device.id"),
        ("device.id = \"d\"", "device"),
        (
            "match.topic = \"t\"\ndevice.id = \"d\"\n[[observation]]\npath = \"x\"\nname = \"x\"\nabsent_reason = \"gone\"",
            "observation[0].absent_reason",
        ),
        (
            "name = \"a|b\"\nmatch.topic = \"t\"\ndevice.id = \"d\"",
            "name",
        ),
    ];
    for (text, key) in cases {
        let err = Profile::parse("my-device", text).unwrap_err();
        match &err {
            ProfileError::Invalid { file, key: k, .. } => {
                assert_eq!(file, "my-device");
                assert_eq!(k, key, "{err}");
            }
            other => panic!("{text}: expected Invalid at {key}, got {other}"),
        }
    }
}

#[test]
fn loading_names_the_missing_file_and_duplicate_names() {
    let dir = Path::new(PROFILES);
    let err = ProfileSet::load(dir, &["no-such-profile".into()]).unwrap_err();
    assert!(err.to_string().contains("no-such-profile.toml"), "{err}");
    let err = ProfileSet::load(dir, &["zigbee2mqtt".into(), "zigbee2mqtt".into()]).unwrap_err();
    assert!(matches!(err, ProfileError::DuplicateName { .. }), "{err}");
    let err = ProfileSet::load(dir, &["../etc/passwd".into()]).unwrap_err();
    assert!(err.to_string().contains("file stem"), "{err}");
}

#[test]
fn every_shipped_profile_parses_and_is_named_after_its_file() {
    for entry in std::fs::read_dir(PROFILES).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let profile = Profile::parse(&stem, &text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(profile.name, stem);
        }
    }
}

#[test]
fn the_walk_through_profile_in_profiles_md_works() {
    let doc = include_str!("../PROFILES.md");
    let start = doc
        .find("   name = \"owon-fds315-fall\"")
        .expect("walk-through profile");
    let end = start + doc[start..].find("   ```").unwrap();
    let text: String = doc[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("   ").unwrap_or(l)))
        .collect();
    let owon = Profile::parse("owon-fds315-fall", &text).unwrap_or_else(|e| panic!("{e}"));
    let mut set_profiles = vec![owon];
    set_profiles.push(
        Profile::parse(
            "zigbee2mqtt",
            &std::fs::read_to_string(Path::new(PROFILES).join("zigbee2mqtt.toml")).unwrap(),
        )
        .unwrap(),
    );
    let mut h = Harness::new(ProfileSet::from_profiles(set_profiles));
    let t = "zigbee2mqtt/bedroom/fds315";
    assert!(
        h.events(t, json!({"status": "occupied", "breathing_rate": 14}))
            .is_empty()
    );
    let e = h.events(
        t,
        json!({"status": "falling", "breathing_rate": 15, "linkquality": 120}),
    );
    assert_eq!(
        (e[0].data.kind, e[0].data.phase),
        (Kind::Fall, Phase::Raised)
    );
    assert_eq!(e[0].data.observations[0].value, Some(15.0));
    assert_eq!(e[0].data.device.id, "zigbee:bedroom/fds315");
    let e = h.events(t, json!({"status": "sitting"}));
    assert_eq!(e[0].data.phase, Phase::Cleared);
    assert!(matches!(
        h.send_bytes("zigbee2mqtt/bedroom/fds315/set", b"{\"status\":\"x\"}"),
        Evaluation::Ignored { .. }
    ));
}

// ---- test mode keeps its own edge state ----

#[test]
fn a_test_raise_neither_suppresses_nor_clears_the_real_alarm_after_it() {
    let mut h = Harness::new(shipped());
    let leak = "zigbee2mqtt/0x00158d0004a1b2c3";
    assert!(
        h.events(leak, json!({"water_leak": false, "test": false}))
            .is_empty()
    );
    let e = h.events(leak, json!({"water_leak": true, "test": true}));
    assert_eq!(
        (e[0].data.kind, e[0].data.phase, e[0].data.test),
        (Kind::WaterLeak, Phase::Raised, true)
    );
    let e = h.events(leak, json!({"water_leak": true, "test": false}));
    assert_eq!(e.len(), 1, "the real leak after a test leak was suppressed");
    assert_eq!(
        (e[0].data.kind, e[0].data.phase, e[0].data.test),
        (Kind::WaterLeak, Phase::Raised, false)
    );
    // A test report of the normal value does not clear the real leak …
    assert!(
        h.events(leak, json!({"water_leak": false, "test": true}))
            .iter()
            .all(|e| e.data.test)
    );
    assert!(
        h.events(leak, json!({"water_leak": true, "test": false}))
            .is_empty(),
        "the real leak is still the one raised"
    );
    // … the real one does.
    let e = h.events(leak, json!({"water_leak": false, "test": false}));
    assert_eq!((e[0].data.phase, e[0].data.test), (Phase::Cleared, false));
}

#[test]
fn a_real_alarm_does_not_suppress_the_next_test_of_every_edge_detected_kind() {
    let mut h = Harness::new(shipped());
    let det = "zigbee2mqtt/det-1";
    for field in ["smoke", "gas", "sos", "water_leak", "carbon_monoxide"] {
        assert!(h.events(det, json!({field: false})).is_empty());
        assert_eq!(h.events(det, json!({field: true})).len(), 1, "{field}");
        // While the real alarm stands, a test of it is still reported (as a test) …
        let e = h.events(det, json!({field: true, "test": true}));
        assert_eq!(e.len(), 1, "{field}: the test was hidden by the real alarm");
        assert!(e[0].data.test);
        // … and the real state is untouched by it.
        assert!(h.events(det, json!({field: true})).is_empty(), "{field}");
        let e = h.events(det, json!({field: false}));
        assert_eq!((e[0].data.phase, e[0].data.test), (Phase::Cleared, false));
    }
}

// ---- low battery: the device's flag or a percent threshold, raised again on a new low ----

fn kinds(events: &[EventDraft]) -> Vec<(Kind, Phase)> {
    events.iter().map(|e| (e.data.kind, e.data.phase)).collect()
}

#[test]
fn low_battery_raises_on_the_flag_or_the_percent_and_again_on_each_new_low() {
    let mut h = Harness::new(shipped());
    let p = "zigbee2mqtt/pendant-1";
    assert!(
        h.events(p, json!({"battery": 80, "battery_low": false}))
            .is_empty()
    );
    // 14 % is below the default 15 % even though the device's own flag is not set yet.
    let e = h.events(p, json!({"battery": 14, "battery_low": false}));
    assert_eq!(kinds(&e), [(Kind::LowBattery, Phase::Raised)]);
    assert_eq!(e[0].data.priority, Priority::Low);
    let b = e[0].data.battery.as_ref().unwrap();
    assert_eq!((b.percent, b.low), (Some(14.0), Some(true)));
    assert_eq!(e[0].data.message.as_deref(), Some("Low battery 14%"));
    assert!(
        h.events(p, json!({"battery": 14, "battery_low": true}))
            .is_empty(),
        "the same low is not news"
    );
    // Each new low is raised again (and so journaled): after a person resolved the alert,
    // the next lower reading opens a new one.
    for pct in [5, 2] {
        let e = h.events(p, json!({"battery": pct, "battery_low": true}));
        assert_eq!(kinds(&e), [(Kind::LowBattery, Phase::Raised)], "{pct} %");
        assert_eq!(e[0].data.message, Some(format!("Low battery {pct}%")));
    }
    assert!(
        h.events(p, json!({"battery": 3, "battery_low": true}))
            .is_empty()
    );
    // Within 5 points of the threshold it stays low (no flapping at 15/16 %) …
    assert!(
        h.events(p, json!({"battery": 18, "battery_low": false}))
            .is_empty()
    );
    // … a new battery clears it.
    let e = h.events(p, json!({"battery": 100, "battery_low": false}));
    assert_eq!(kinds(&e), [(Kind::LowBattery, Phase::Cleared)]);
    assert!(
        h.events(p, json!({"battery": 99, "battery_low": false}))
            .is_empty()
    );
    // A device that reports only the flag.
    let e = h.events("zigbee2mqtt/leak-2", json!({"battery_low": true}));
    assert_eq!(kinds(&e), [(Kind::LowBattery, Phase::Raised)]);
    assert_eq!(e[0].data.message.as_deref(), Some("Low battery"));
    let e = h.events("zigbee2mqtt/leak-2", json!({"battery_low": false}));
    assert_eq!(kinds(&e), [(Kind::LowBattery, Phase::Cleared)]);
}

#[test]
fn a_battery_that_stays_low_is_raised_again_after_the_reminder_interval() {
    let mut h = Harness::new(shipped());
    let p = "zigbee2mqtt/pendant-1";
    let start = h.now;
    assert_eq!(h.events(p, json!({"battery": 10})).len(), 1);
    h.now = start + jiff::SignedDuration::from_hours(23);
    assert!(h.events(p, json!({"battery": 10})).is_empty());
    h.now = start + jiff::SignedDuration::from_hours(24);
    let e = h.events(p, json!({"battery": 10}));
    assert_eq!(
        kinds(&e),
        [(Kind::LowBattery, Phase::Raised)],
        "daily by default"
    );
    h.now = start + jiff::SignedDuration::from_hours(30);
    assert!(h.events(p, json!({"battery": 10})).is_empty());
}

#[test]
fn a_profile_sets_its_own_low_battery_threshold_and_reminder() {
    let set = one(r#"
        match.topic = "t/{d}"
        device.id = "d:{d}"
        battery = { percent = "b", low_percent = 25, remind = "1h" }
        "#);
    let mut h = Harness::new(set);
    assert!(h.events("t/1", json!({"b": 40})).is_empty());
    assert_eq!(h.events("t/1", json!({"b": 25})).len(), 1);
    h.now += jiff::SignedDuration::from_hours(1);
    assert_eq!(h.events("t/1", json!({"b": 25})).len(), 1);
    assert!(
        parse_err("match.topic = \"t\"\ndevice.id = \"d\"\nbattery = { percent = \"b\", low_percent = 120 }")
            .contains("low_percent"),
    );
    assert!(
        parse_err("match.topic = \"t\"\ndevice.id = \"d\"\nbattery = { percent = \"b\", remind = \"often\" }")
            .contains("remind"),
    );
}

#[test]
fn a_low_battery_state_in_the_profile_replaces_the_built_in_one() {
    let set = one(r#"
        match.topic = "t/{d}"
        device.id = "d:{d}"
        battery = { percent = "b", low = "low" }
        [[state]]
        path = "low"
        kind = "low_battery"
        "#);
    let mut h = Harness::new(set);
    let e = h.events("t/1", json!({"b": 3, "low": true}));
    assert_eq!(
        kinds(&e),
        [(Kind::LowBattery, Phase::Raised)],
        "one event, not two"
    );
}

#[test]
fn a_test_mode_low_battery_does_not_hide_the_real_one() {
    let mut h = Harness::new(shipped());
    let p = "zigbee2mqtt/pendant-1";
    let e = h.events(p, json!({"battery": 5, "test": true}));
    assert!(e[0].data.test);
    let e = h.events(p, json!({"battery": 5, "test": false}));
    assert_eq!(kinds(&e), [(Kind::LowBattery, Phase::Raised)]);
    assert!(!e[0].data.test);
}

#[test]
fn a_json_root_that_is_not_an_object_is_rejected_unless_the_rule_walks_the_root_list() {
    let set = one(r#"
        match.topic = "hub/{hub}"
        device.id = "x:{hub}"
        [[state]]
        path = "alarm"
        kind = "medical"
        "#);
    let mut h = Harness::new(set);
    for payload in [
        json!([{"alarm": true}]),
        json!(42),
        json!("alarm"),
        json!(null),
    ] {
        let (reason, detail) = rejected(h.send("hub/1", payload.clone()));
        assert_eq!(reason, "not_an_object", "{payload}: {detail}");
    }
    // A rule that walks a top-level list reads it.
    let set = one(r#"
        match.topic = "hub/{hub}"
        for_each = "$"
        device.id = "x:{id}"
        [[state]]
        path = "alarm"
        kind = "medical"
        "#);
    let mut h = Harness::new(set);
    let out = h.send("hub/1", json!([{"id": "a", "alarm": true}]));
    assert!(
        matches!(&out, Evaluation::Mapped { events, .. } if events.len() == 1),
        "{out:?}"
    );
}

/// Two rules share a field's memory (same profile, device and state key). A fall while the
/// watch is not worn is only suspected; the same "detected" once it is worn is confirmed:
/// edge detection compares what the value maps to, not only the value, so the confirmed fall
/// is raised (and the alert is upgraded), not taken for a repeat.
#[test]
fn a_value_mapped_differently_by_a_second_rule_is_an_edge_not_a_repeat() {
    let mut h = Harness::new(one(r#"
[[rule]]
name = "not-worn"
match.topic = "watch/{imei}"
match.equals = { worn = false }
device.id = "watch:{imei}"

[[rule.state]]
path = "fall"
kind = "fall"
values = { detected = { phase = "raised", confidence = "suspected", priority = "low" }, none = { phase = "cleared" } }

[[rule]]
name = "worn"
match.topic = "watch/{imei}"
device.id = "watch:{imei}"

[[rule.state]]
path = "fall"
kind = "fall"
values = { detected = { phase = "raised", confidence = "confirmed", priority = "high" }, none = { phase = "cleared" } }
"#));
    let e = h.events("watch/1", json!({"fall": "detected", "worn": false}));
    assert_eq!(
        (e.len(), e[0].data.confidence, e[0].data.priority),
        (1, Some(Confidence::Suspected), Priority::Low)
    );
    let e = h.events("watch/1", json!({"fall": "detected", "worn": true}));
    assert_eq!(e.len(), 1, "the confirmed fall is an edge");
    assert_eq!(
        (e[0].data.phase, e[0].data.confidence, e[0].data.priority),
        (Phase::Raised, Some(Confidence::Confirmed), Priority::High)
    );
    assert!(
        h.events("watch/1", json!({"fall": "detected", "worn": true}))
            .is_empty(),
        "the same confirmed fall again is a repeat"
    );
    let e = h.events("watch/1", json!({"fall": "none", "worn": true}));
    assert_eq!((e.len(), e[0].data.phase), (1, Phase::Cleared));
}

/// Numeric comparisons in `match.when`: a watch's fall rule that only counts while it is worn
/// (`heart_rate > 0`); a message where the comparison fails (or the value is no number) is
/// not this rule's; a comparison that cannot be read is refused at load, naming it.
#[test]
fn match_when_compares_numbers() {
    let mut h = Harness::new(one(r#"
[[rule]]
name = "worn"
match.topic = "watch/{imei}"
match.when = ["heart_rate > 0", "heart_rate <= 250"]
device.id = "watch:{imei}"

[[rule.point]]
path = "sos"
kind = "pendant_press"
"#));
    assert_eq!(
        h.events("watch/1", json!({"sos": true, "heart_rate": 72}))
            .len(),
        1
    );
    for not_worn in [
        json!({"sos": true, "heart_rate": 0}),
        json!({"sos": true, "heart_rate": "x"}),
        json!({"sos": true}),
    ] {
        assert!(
            matches!(
                h.send("watch/1", not_worn.clone()),
                Evaluation::Rejected {
                    reason: "no_profile",
                    ..
                }
            ),
            "{not_worn}"
        );
    }
    let err = Profile::parse(
        "watch",
        "[[rule]]\nname = \"r\"\nmatch.topic = \"t\"\nmatch.when = [\"heart_rate about 0\"]\ndevice.id = \"d\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("rule[0].match.when[0]") && err.contains("is not a comparison"),
        "{err}"
    );
}
