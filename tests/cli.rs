//! The command line as an integrator meets it: bad configs exit 2 naming file and key, the
//! schema prints, a profile can be tried on a sample.

mod common;

use std::process::Command;

use common::*;

fn atgw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(args)
        .output()
        .unwrap()
}

/// `atgw profile test PROFILE SAMPLES`, which must succeed; its output.
fn profile_test(profile: &std::path::Path, samples: &std::path::Path) -> String {
    let out = atgw(&[
        "profile",
        "test",
        profile.to_str().unwrap(),
        samples.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Sample `n` (from 1) of `profile test` output.
fn sample(text: &str, n: usize) -> &str {
    text.split("# sample ")
        .nth(n)
        .unwrap_or_else(|| panic!("no sample {n}: {text}"))
}

#[test]
fn a_bad_config_exits_2_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), 1883, "");
    let cases = [
        (
            good.replace("site = \"oakview\"", "site = \"oakview\"\nsitee = \"typo\""),
            "sitee",
        ),
        (
            good.replace("port = 1883\ntopics", "port = \"not-a-port\"\ntopics"),
            "port",
        ),
        (
            good.replace(
                "timezone = \"Europe/London\"",
                "timezone = \"Nowhere/Special\"",
            ),
            "gateway.timezone",
        ),
        (
            format!(
                "{good}\n[[device]]\nid = \"x\"\nadapter = \"missing\"\nmatch = {{ device = \"1\" }}\n"
            ),
            "device[0].adapter",
        ),
        ("[gateway\nid=".to_string(), "syntax"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &text).unwrap();
        for cmd in ["check-config", "run"] {
            let out = atgw(&[cmd, "--config", path.to_str().unwrap()]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} with bad `{key}`: {err}");
            assert!(err.contains("bad.toml"), "names the file: {err}");
            assert!(err.contains(key), "names `{key}`: {err}");
        }
    }
}

#[test]
fn a_missing_profile_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), 1883, "").replace("\"zigbee2mqtt\"]", "\"no-such-profile\"]");
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, text).unwrap();
    let out = atgw(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-profile"));
}

#[test]
fn the_shipped_example_config_is_valid() {
    let out = atgw(&[
        "check-config",
        "--config",
        repo().join("config/atgw.toml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schema_prints_the_json_schema() {
    let out = atgw(&["schema"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["$id"], "urn:atgw:schema:event:1");
    jsonschema::validator_for(&v).unwrap();
}

#[test]
fn profile_test_shows_what_a_fixture_becomes() {
    let out = atgw(&[
        "profile",
        "test",
        "tuya-mir-he200-fall-radar",
        repo()
            .join("tests/fixtures/devices/z2m-tuya-mir-he200-fall.jsonl")
            .to_str()
            .unwrap(),
        "--profiles-dir",
        profiles_dir().to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("\"kind\": \"fall\"").count(), 3, "{text}");
    assert!(text.contains("\"confidence\": \"suspected\""), "{text}");
    assert!(text.contains("no event"), "{text}");
}

/// "Say why nothing happened": a wrong path names the keys the message has, a repeat says it
/// is one, and a rule with nothing but readings says so.
#[test]
fn profile_test_says_why_a_message_made_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("acme-door.toml");
    std::fs::write(
        &profile,
        r#"name = "acme-door"

[[rule]]
name = "door"
match.topic = "acme/{device}"
device.id = "acme:{device}"

[[rule.state]]
path = "contacts"
kind = "door_exit"
values = { false = { phase = "raised" }, true = { phase = "cleared" } }

[[rule.state]]
path = "tamper"
kind = "tamper"

[[rule]]
name = "climate"
match.topic = "acme-climate/{device}"
device.id = "acme:{device}"

[[rule.observation]]
path = "temperature"
name = "body_temperature"
unit = "Cel"
"#,
    )
    .unwrap();
    let samples = dir.path().join("door.jsonl");
    std::fs::write(
        &samples,
        concat!(
            r#"{"topic": "acme/front", "payload": {"contact": false, "tamper": false, "battery": 90}}"#,
            "\n",
            r#"{"topic": "acme/front", "payload": {"contacts": true, "tamper": false}}"#,
            "\n",
            r#"{"topic": "acme/front", "payload": {"contacts": true, "tamper": false}}"#,
            "\n",
            r#"{"topic": "acme-climate/hall", "payload": {"temperature": 21.5}}"#,
            "\n",
        ),
    )
    .unwrap();
    let text = profile_test(&profile, &samples);
    // 1: the profile reads `contacts`, the door sends `contact`.
    assert!(sample(&text, 1).contains("rule `door`: no event"), "{text}");
    assert!(
        sample(&text, 1)
            .contains("`contacts`: path `contacts` is absent (it has: battery, contact, tamper)"),
        "{text}"
    );
    assert!(
        sample(&text, 1).contains("`tamper`: `false` is the first reading and raises nothing"),
        "{text}"
    );
    // 2: the first `contacts` reading (closed) raises nothing; 3 repeats it.
    assert!(
        sample(&text, 2).contains("`contacts`: `true` is the first reading and raises nothing"),
        "{text}"
    );
    assert!(
        sample(&text, 2).contains("`tamper`: `false` again"),
        "{text}"
    );
    assert!(
        sample(&text, 3).contains("`contacts`: `true` again (a state repeat: no change, no event)"),
        "{text}"
    );
    // 4: readings only.
    assert!(sample(&text, 4).contains("telemetry only"), "{text}");
}

#[test]
fn version_is_printed() {
    let out = atgw(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// `check-config` and `run` judge secret files by the same rule (atgw-sdk `secret.rs`): a token
/// other users can read fails both, and `run` exits 2 (a configuration error, which the unit
/// does not restart), not 1.
#[test]
fn a_secret_file_others_can_read_fails_check_config_and_run_alike_with_exit_2() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (api, _, _) = api_block(dir.path());
    let token = dir.path().join("api-token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("atgw.toml");
    std::fs::write(&path, config(dir.path(), 1883, &api)).unwrap();
    for cmd in ["check-config", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_atgw"))
            .args([cmd, "--config", path.to_str().unwrap()])
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("token_file") && err.contains("chmod 600"),
            "{cmd} names the file and the fix: {err}"
        );
    }
}

/// `profile test --config --adapter` runs what the daemon would: the adapter's profile list
/// (a message the watch profile does not take falls to the generic one) and the registry (which
/// `[[device]]` matched, or which keys were there to match on); a `[[device]] match` key no
/// profile of the adapter gives is warned about there and in `check-config`.
#[test]
fn profile_test_with_an_adapter_runs_its_profile_list_and_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::copy(
        profiles_dir().join("zigbee2mqtt.toml"),
        profiles.join("zigbee2mqtt.toml"),
    )
    .unwrap();
    std::fs::write(
        profiles.join("acme-watch.toml"),
        r#"name = "acme-watch"

[[rule]]
name = "telemetry"
match.topic = "watch-hub/{imei}/telemetry"
device.id = "watch:{imei}"
device.keys = { imei = "{imei}" }

[[rule.point]]
path = "sos"
kind = "pendant_press"
"#,
    )
    .unwrap();
    let config = dir.path().join("atgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[[adapter]]
name = "hub"
type = "mqtt"
host = "127.0.0.1"
port = 1883
topics = ["watch-hub/#", "zigbee2mqtt/#"]
profiles = ["acme-watch", "zigbee2mqtt"]

[[sink]]
name = "audit"
type = "file"
path = "{audit}"

[[device]]
id = "watch-room-4"
adapter = "hub"
match = {{ imei = "356938035643809" }}
resident = "r-0004"
location = {{ area = "West wing", room = "4" }}

[[device]]
id = "watch-room-5"
adapter = "hub"
match = {{ serial = "356938035643810" }}
"#,
            data = dir.path().join("state").display(),
            profiles = profiles.display(),
            audit = dir.path().join("events.jsonl").display(),
        ),
    )
    .unwrap();
    let samples = dir.path().join("hub.jsonl");
    std::fs::write(
        &samples,
        concat!(
            r#"{"topic": "watch-hub/356938035643809/telemetry", "payload": {"sos": true}}"#,
            "\n",
            r#"{"topic": "watch-hub/356938035643810/telemetry", "payload": {"sos": true}}"#,
            "\n",
            r#"{"topic": "zigbee2mqtt/0xa4c13899607febd1", "payload": {"action": "emergency"}}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = atgw(&[
        "profile",
        "test",
        "--config",
        config.to_str().unwrap(),
        "--adapter",
        "hub",
        samples.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "warning: device[1] (`watch-room-5`): match key `serial` is not a key adapter `hub` reports (it reports: device, imei)"
        ),
        "{text}"
    );
    assert!(
        sample(&text, 1).contains("taken by profile `acme-watch`, rule `telemetry`"),
        "{text}"
    );
    assert!(
        sample(&text, 1).contains(
            "device `watch:356938035643809`: matched [[device]] `watch-room-4` (West wing, 4, resident r-0004) by imei=356938035643809"
        ),
        "{text}"
    );
    assert!(
        sample(&text, 2).contains(
            "device `watch:356938035643810`: no [[device]] matched; it carries imei=356938035643810; the [[device]] entries of `hub` match on imei, serial"
        ),
        "{text}"
    );
    assert!(
        sample(&text, 3).contains("taken by profile `zigbee2mqtt`, rule `state`"),
        "{text}"
    );
    let check = atgw(&["check-config", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{err}");
    assert!(
        err.contains(
            "device[1] (`watch-room-5`): match key `serial` is not a key adapter `hub` reports"
        ),
        "{err}"
    );
}

/// "Errors that finish the sentence": a near-miss key gets "did you mean", a configuration
/// error names its line, and a state whose `values` were written for another JSON type says
/// how to write them.
#[test]
fn errors_name_the_line_and_suggest_the_key_meant() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("atgw.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-test\"\nsite = \"oakview\"\ndata_dir = \"{}\"\n\n\
             [[adapter]]\nname = \"zigbee\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nprot = 1883\n\
             topics = [\"zigbee2mqtt/#\"]\nprofiles = [\"zigbee2mqtt\"]\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = atgw(&["check-config", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(", line 10: adapter[0]: unknown field `prot`")
            && err.contains("did you mean `port`?"),
        "{err}"
    );

    let profile = dir.path().join("acme-door.toml");
    std::fs::write(
        &profile,
        "name = \"acme-door\"\n\n[[rule]]\nname = \"door\"\nmatch.topic = \"acme/{device}\"\n\
         device.id = \"acme:{device}\"\n\n[[rule.state]]\npath = \"contact\"\nkind = \"door_exit\"\n\
         values = { open = { phase = \"raised\" }, closed = { phase = \"cleared\" } }\n",
    )
    .unwrap();
    let sample = dir.path().join("door.json");
    std::fs::write(
        &sample,
        r#"{"topic": "acme/front", "payload": {"contact": false}}"#,
    )
    .unwrap();
    let out = atgw(&[
        "profile",
        "test",
        profile.to_str().unwrap(),
        sample.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rejected (wrong_type)")
            && text.contains("the device sends true/false: write the values as `values = { true = …, false = … }`"),
        "{text}"
    );
    std::fs::write(
        &profile,
        "name = \"acme-door\"\n\n[[rule]]\nname = \"door\"\nmatch.topic = \"acme/{device}\"\n\
         device.id = \"acme:{device}\"\n\n[[rule.state]]\npath = \"contact\"\nkind = \"door_exit\"\n\
         valeus = { open = { phase = \"raised\" } }\n",
    )
    .unwrap();
    let out = atgw(&[
        "profile",
        "test",
        profile.to_str().unwrap(),
        sample.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 11, `valeus`: unknown field `valeus`")
            && err.contains("did you mean `values`?"),
        "{err}"
    );
}

/// The guide's worked examples (PROFILES.md, "Worked examples"): a bed pad, a door contact and
/// a watch hub, each profile with its sample file, give what the guide shows.
#[test]
fn the_guides_worked_examples_give_what_the_guide_shows() {
    let examples = repo().join("config/examples/devices");
    let run = |name: &str| {
        profile_test(
            &examples.join(format!("{name}.toml")),
            &examples.join(format!("{name}.jsonl")),
        )
    };
    // What each sample became: (kind, phase) of its events, in order, or "none".
    let outcomes = |text: &str| -> Vec<Vec<(String, String)>> {
        text.split("# sample ")
            .skip(1)
            .map(|s| {
                let kinds: Vec<&str> = s
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("\"kind\": \""))
                    .map(|k| k.trim_end_matches("\","))
                    .collect();
                let phases: Vec<&str> = s
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("\"phase\": \""))
                    .map(|k| k.trim_end_matches("\","))
                    .collect();
                kinds
                    .into_iter()
                    .zip(phases)
                    .map(|(k, p)| (k.to_owned(), p.to_owned()))
                    .collect()
            })
            .collect()
    };
    let ev = |k: &str, p: &str| (k.to_owned(), p.to_owned());
    let bed = run("acme-bed-pad");
    assert_eq!(
        outcomes(&bed),
        vec![
            vec![],
            vec![ev("bed_exit", "raised")],
            vec![],
            vec![ev("bed_exit", "cleared")]
        ],
        "{bed}"
    );
    assert!(
        bed.contains("`occupancy`: `false` again (a state repeat"),
        "{bed}"
    );
    let door = run("acme-door");
    assert_eq!(
        outcomes(&door),
        vec![
            vec![],
            vec![ev("door_exit", "raised")],
            vec![ev("door_exit", "cleared")]
        ],
        "{door}"
    );
    let watch = run("acme-watch-hub");
    assert_eq!(
        outcomes(&watch),
        vec![
            vec![ev("vital_sign", "point")],
            vec![ev("vital_sign", "point")],
            vec![ev("fall", "raised"), ev("vital_sign", "point")]
        ],
        "{watch}"
    );
    let not_worn = sample(&watch, 2);
    assert_eq!(
        not_worn
            .matches("\"absent_reason\": \"not-performed\"")
            .count(),
        2,
        "heart rate 0 blanks SpO2 85 too: {not_worn}"
    );
    assert!(!not_worn.contains("\"value\": 85"), "{not_worn}");
    assert!(
        watch.contains("\"time\": \"2026-12-02T08:02:00.000Z\""),
        "epoch ms read: {watch}"
    );
}

/// Numeric `match.when` and rules that share a field's memory, through `profile test`: a fall
/// while the watch is not worn (`heart_rate == 0`) is suspected; the same fall reported once it
/// is worn (`heart_rate > 0`) is confirmed and raised again (an upgrade), not a repeat.
#[test]
fn profile_test_shows_a_suspected_fall_upgraded_when_the_watch_is_worn() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("acme-watch.toml");
    std::fs::write(
        &profile,
        r#"name = "acme-watch"

[[rule]]
name = "not-worn"
match.topic = "watch/{imei}"
match.when = ["heart_rate == 0"]
device.id = "watch:{imei}"

[[rule.state]]
path = "fall"
kind = "fall"
values = { detected = { phase = "raised", confidence = "suspected", priority = "low" }, none = { phase = "cleared" } }

[[rule]]
name = "worn"
match.topic = "watch/{imei}"
match.when = ["heart_rate > 0"]
device.id = "watch:{imei}"

[[rule.state]]
path = "fall"
kind = "fall"
values = { detected = { phase = "raised", confidence = "confirmed", priority = "high" }, none = { phase = "cleared" } }
"#,
    )
    .unwrap();
    let samples = dir.path().join("watch.jsonl");
    std::fs::write(
        &samples,
        concat!(
            r#"{"topic": "watch/1", "payload": {"fall": "detected", "heart_rate": 0}}"#,
            "\n",
            r#"{"topic": "watch/1", "payload": {"fall": "detected", "heart_rate": 88}}"#,
            "\n",
            r#"{"topic": "watch/1", "payload": {"fall": "detected", "heart_rate": 90}}"#,
            "\n",
        ),
    )
    .unwrap();
    let text = profile_test(&profile, &samples);
    assert!(
        sample(&text, 1).contains("\"confidence\": \"suspected\"")
            && sample(&text, 1).contains("\"priority\": \"low\""),
        "{text}"
    );
    assert!(
        sample(&text, 2).contains("\"phase\": \"raised\"")
            && sample(&text, 2).contains("\"confidence\": \"confirmed\"")
            && sample(&text, 2).contains("\"priority\": \"high\""),
        "{text}"
    );
    assert!(
        sample(&text, 3).contains("rule `worn`: no event")
            && sample(&text, 3).contains("again (a state repeat"),
        "{text}"
    );
}
