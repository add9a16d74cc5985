//! The report on journals written by the real writer: device events through the ingest
//! channel, alerts opened, escalated and repeated by the alert engine, acknowledgements and
//! resolutions as the API sends them, supervision raising `device_offline`, all under a manual
//! clock so every wait is known to the millisecond.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::clock::ManualClock;
use atgw_sdk::event::{Battery, EventDraft, Kind, Phase};
use atgw_sdk::ingest::{Ingest, IngestSender, Seen, Submission};
use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};

use super::{Options, Report, compare, html, read, standard, stats};
use crate::alerts::{AlertCommand, AlertSettings, Policies, PolicyConfig};
use crate::config::DeviceConfig;
use crate::journal::WriterHandle;
use crate::journal::writer::spawn;
use crate::pipeline::Setup;
use crate::registry::Registry;

const DEVICES: &str = r#"
[[device]]
id = "pendant-12"
adapter = "zigbee"
match = { device = "0xa4c1" }
resident = "res-0042"
location = { area = "east", room = "12" }

[[device]]
id = "radar-14"
adapter = "zigbee"
match = { device = "0xdc8e" }
resident = "res-0057"
location = { area = "west", room = "14" }

[[device]]
id = "leak-kitchen"
adapter = "zigbee"
match = { device = "0x0050" }
location = { area = "ground", room = "kitchen" }
check_in = "10m"
"#;

const POLICIES: &[&str] = &[
    r#"
name = "alarms"
match = { priority = ["high"] }
notify = ["carers"]
escalate = [{ after = "60s", notify = ["senior"] }]
repeat = "30s"
"#,
    r#"
name = "leaks"
match = { kind = ["water_leak"] }
notify = ["carers"]
"#,
];

/// A gateway's journal being written: the real writer on a manual clock.
struct Site {
    dir: tempfile::TempDir,
    clock: ManualClock,
    sender: IngestSender,
    zigbee: Ingest,
    writer: WriterHandle,
    thread: std::thread::JoinHandle<()>,
}

#[derive(serde::Deserialize)]
struct Devices {
    device: Vec<DeviceConfig>,
}

impl Site {
    fn start(at: Timestamp) -> Site {
        Site::start_with(at, &[], Default::default())
    }

    /// A site whose every event is queued for the stream sinks `sinks` (nothing delivers
    /// them but [`Site::deliver`]), under these retention windows.
    fn start_with(
        at: Timestamp,
        sinks: &[&str],
        retention: crate::journal::retention::Retention,
    ) -> Site {
        Site::open_in(tempfile::tempdir().unwrap(), at, sinks, retention)
    }

    /// The writer started again on the journal in `dir` (queued for `upstream` and `archive`).
    fn reopen(
        dir: tempfile::TempDir,
        at: Timestamp,
        retention: crate::journal::retention::Retention,
    ) -> Site {
        Site::open_in(dir, at, &["upstream", "archive"], retention)
    }

    fn open_in(
        dir: tempfile::TempDir,
        at: Timestamp,
        sinks: &[&str],
        retention: crate::journal::retention::Retention,
    ) -> Site {
        let sinks: Vec<String> = sinks.iter().map(|s| s.to_string()).collect();
        let opened = crate::journal::open(&dir.path().join(crate::journal::FILE_NAME)).unwrap();
        let devices: Devices = toml::from_str(DEVICES).unwrap();
        let policies: Vec<PolicyConfig> = POLICIES
            .iter()
            .map(|p| toml::from_str(p).unwrap())
            .collect();
        let clock = ManualClock::new(at);
        let (sender, rx) = atgw_sdk::ingest::channel(64);
        let (writer, thread) = spawn(
            opened.conn,
            Setup {
                gateway_id: "gw-test".into(),
                sinks: Vec::new(),
                registry: Arc::new(Registry::new("oakview", &devices.device)),
                rota: std::sync::Arc::new(crate::rota::Rota::new(
                    &[],
                    &[],
                    jiff::tz::TimeZone::UTC,
                )),
                policies: Arc::new(Policies::new(
                    &policies,
                    &[],
                    &AlertSettings::default(),
                    &sinks,
                )),
                vitals: Arc::new(crate::rules::VitalRules::default()),
                dedupe_window: Duration::from_secs(3600),
                dead_letter_bytes: 1024,
                max_clock_skew: Duration::from_secs(120),
                max_dead_letters: 10_000,
                max_unregistered_devices: 1000,
                link_down_alert_after: std::time::Duration::from_secs(60),
                retention,
                max_bytes: None,
                clock: Arc::new(clock.clone()),
                metrics: Arc::new(crate::metrics::Metrics::new(&[], &[])),
                commits: Default::default(),
            },
            rx,
        )
        .unwrap();
        let zigbee = sender.for_adapter("zigbee");
        Site {
            dir,
            clock,
            sender,
            zigbee,
            writer,
            thread,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(crate::journal::FILE_NAME)
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    /// A device message that became one event.
    async fn send(
        &self,
        native: &str,
        kind: Kind,
        phase: Phase,
        edit: impl FnOnce(&mut EventDraft),
    ) {
        let mut d = EventDraft::new(kind, phase, format!("zigbee:{native}"), "zigbee");
        d.registry_keys = BTreeMap::from([("device".to_owned(), native.to_owned())]);
        edit(&mut d);
        let seen = Seen {
            device_id: d.data.device.id.clone(),
            registry_keys: d.registry_keys.clone(),
        };
        self.zigbee
            .submit(Submission {
                events: vec![d],
                first_delivery: true,
                seen: vec![seen],
                ..Submission::default()
            })
            .await
            .unwrap();
    }

    /// `sink` delivered everything queued for it so far (as its dispatcher reports it).
    async fn deliver(&self, sink: &str) {
        self.flush().await;
        let ids: Vec<i64> = {
            let c = read::open(&self.path()).unwrap();
            let mut stmt = c.prepare("SELECT id FROM outbox WHERE sink = ?1").unwrap();
            stmt.query_map([sink], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        for chunk in ids.chunks(2000) {
            self.writer.send(crate::journal::WriterCmd::Delivered {
                ids: chunk.to_vec(),
            });
        }
        self.flush().await;
    }

    /// Lets due timers (escalation, repeats, supervision) fire at the clock's time.
    async fn flush(&self) {
        self.writer.flush().await;
    }

    /// The newest alert of a device.
    fn alert_of(&self, device: &str) -> String {
        let c = read::open(&self.path()).unwrap();
        c.query_row(
            "SELECT id FROM alerts WHERE device_id = ?1 ORDER BY raised_ms DESC LIMIT 1",
            [device],
            |r| r.get(0),
        )
        .unwrap()
    }

    async fn ack(&self, id: &str, by: &str) {
        self.writer
            .alert(AlertCommand::Ack {
                id: id.into(),
                by: by.into(),
                note: Some("resident Jane said hello".into()),
            })
            .await
            .unwrap();
    }

    async fn resolve(&self, id: &str, outcome: &str) {
        self.writer
            .alert(AlertCommand::Resolve {
                id: id.into(),
                by: "nurse-1".into(),
                outcome: outcome.into(),
                note: None,
            })
            .await
            .unwrap();
    }

    /// Stops the writer (it checkpoints) and hands over the directory holding the journal.
    fn finish(self) -> (tempfile::TempDir, PathBuf) {
        let path = self.path();
        drop((self.zigbee, self.sender, self.writer));
        self.thread.join().unwrap();
        (self.dir, path)
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn report(path: &std::path::Path, zone: &str, edit: impl FnOnce(&mut Options)) -> Report {
    let mut opts = Options::new(zone).unwrap();
    edit(&mut opts);
    let mut c = read::open(path).unwrap();
    read::build(&mut c, path, &opts).unwrap()
}

/// Late evening in London (BST, UTC+1): three pendant and fall alerts around midnight, a leak
/// nobody acknowledges, a test call, a low battery and a missed check-in.
async fn evening() -> (tempfile::TempDir, PathBuf) {
    let site = Site::start(ts("2026-04-17T22:00:00Z"));
    // A: 23:00 local, acknowledged after 20 s, assisted.
    site.send("0xa4c1", Kind::PendantPress, Phase::Point, |_| {})
        .await;
    let a = site.alert_of("pendant-12");
    site.advance(20);
    site.ack(&a, "carer-1").await;
    site.advance(10);
    site.resolve(&a, "assisted").await;

    // B: 23:30 local, escalates (60 s) and repeats (30 s) before an ack at 90 s; false alarm.
    site.clock.set(ts("2026-04-17T22:30:00Z"));
    site.send("0xdc8e", Kind::Fall, Phase::Raised, |d| {
        d.data.priority = atgw_sdk::Priority::High;
    })
    .await;
    let b = site.alert_of("radar-14");
    site.advance(61);
    site.flush().await;
    site.advance(29);
    site.ack(&b, "carer-2").await;
    site.resolve(&b, "false_alarm").await;

    // D: a leak at 23:40 local that nobody acknowledges, reported with a flat battery.
    site.clock.set(ts("2026-04-17T22:40:00Z"));
    site.send("0x0050", Kind::WaterLeak, Phase::Raised, |_| {})
        .await;
    site.send("0x0050", Kind::LowBattery, Phase::Raised, |d| {
        d.data.battery = Some(Battery {
            percent: Some(4.0),
            low: Some(true),
            voltage_mv: None,
        });
    })
    .await;
    // A test call at 23:45 local, which opens no alert.
    site.clock.set(ts("2026-04-17T22:45:00Z"));
    site.send("0xa4c1", Kind::PendantPress, Phase::Point, |d| {
        d.data.test = true
    })
    .await;
    // The leak's 10-minute check-in is missed; it is heard again at 00:10 local (23:10Z).
    site.clock.set(ts("2026-04-17T23:00:00Z"));
    site.flush().await;
    site.clock.set(ts("2026-04-17T23:10:00Z"));
    site.send("0x0050", Kind::Heartbeat, Phase::Point, |_| {})
        .await;

    // C: 00:30 local on the 18th (still the 17th in UTC), acknowledged after 45 s.
    site.clock.set(ts("2026-04-17T23:30:00Z"));
    site.send("0xa4c1", Kind::PendantPress, Phase::Point, |_| {})
        .await;
    let c = site.alert_of("pendant-12");
    site.advance(45);
    site.ack(&c, "carer-1").await;
    site.resolve(&c, "emergency_services").await;
    site.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_from_a_journal_written_by_the_real_writer_add_up() {
    let (_dir, path) = evening().await;
    let r = report(&path, "Europe/London", |_| {});
    assert_eq!((r.from, r.to), (date(2026, 4, 17), date(2026, 4, 18)));
    assert_eq!(r.alerts.len(), 4);

    // Days are the site's: C was raised after midnight in London.
    let days = stats::by_day_kind(&r.alerts);
    let n = |d, k: &str| days.get(&(d, k.to_owned())).copied().unwrap_or(0);
    assert_eq!(n(date(2026, 4, 17), "pendant_press"), 1);
    assert_eq!(n(date(2026, 4, 18), "pendant_press"), 1);
    assert_eq!(n(date(2026, 4, 17), "fall"), 1);
    assert_eq!(n(date(2026, 4, 17), "water_leak"), 1);

    // Waits of 20, 90 and 45 s for the high alerts: nearest rank gives 45 and 90.
    let high = &stats::ack_by_priority(&r.alerts)[0];
    assert_eq!(
        (high.group.as_str(), high.alerts, high.acknowledged),
        ("high", 3, 3)
    );
    assert_eq!(
        (high.p50_ms, high.p90_ms, high.max_ms),
        (Some(45_000), Some(90_000), Some(90_000))
    );
    let ground = stats::ack_by_area(&r.alerts)
        .into_iter()
        .find(|s| s.group == "ground")
        .unwrap();
    assert_eq!(
        (ground.alerts, ground.acknowledged, ground.max_ms),
        (1, 0, None)
    );

    let fall = r.alerts.iter().find(|a| a.kind == "fall").unwrap();
    assert_eq!((fall.escalations, fall.repeats), (1, 1));
    assert_eq!(fall.acked_by.as_deref(), Some("carer-2"));
    assert_eq!(stats::escalations(&r.alerts).alerts_escalated, 1);

    let o = stats::outcomes(&r.alerts);
    for (k, want) in [
        ("assisted", 1),
        ("false_alarm", 1),
        ("emergency_services", 1),
        (stats::UNRESOLVED, 1),
    ] {
        assert_eq!(
            o.iter().find(|(n, _)| n == k).map(|(_, n)| *n),
            Some(want),
            "{k}"
        );
    }

    assert_eq!(r.test_calls.len(), 1);
    assert_eq!(r.test_calls[0].device, "pendant-12");

    // Supervision watches the leak from the gateway's start: silent 22:00Z–22:30Z (raised at the
    // 22:30Z batch, cleared by its first message at 22:40Z), silent again 22:50Z (raised at the
    // 23:00Z flush, cleared at 23:10Z), and again from 23:20Z (raised at 23:30Z, still open).
    let leak = r.devices.iter().find(|d| d.id == "leak-kitchen").unwrap();
    assert_eq!(leak.offline_episodes, 3);
    assert_eq!(leak.offline_ms, 10 * 60_000 + 10 * 60_000 + 45_000);
    assert_eq!(
        leak.monitored_ms,
        ts("2026-04-17T23:30:45Z").as_millisecond() - ts("2026-04-17T22:30:00Z").as_millisecond(),
        "from its first outage to the journal's last event"
    );
    let up = leak.uptime_percent().unwrap();
    assert!(
        (up - 100.0 * (1.0 - 1_245.0 / 3_645.0)).abs() < 1e-9,
        "{up}"
    );
    assert!(leak.battery_warning());
    assert_eq!(
        (
            leak.low_battery_raised,
            leak.low_battery_readings,
            leak.min_battery_percent
        ),
        (1, 1, Some(4.0))
    );
    let pendant = r.devices.iter().find(|d| d.id == "pendant-12").unwrap();
    assert_eq!((pendant.offline_episodes, pendant.test_calls), (0, 1));
    assert_eq!(pendant.uptime_percent(), Some(100.0));

    // In UTC the same journal is one day, with both presses on it.
    let utc = report(&path, "UTC", |_| {});
    assert_eq!((utc.from, utc.to), (date(2026, 4, 17), date(2026, 4, 17)));
    let days = stats::by_day_kind(&utc.alerts);
    assert_eq!(
        days.get(&(date(2026, 4, 17), "pendant_press".to_owned())),
        Some(&2)
    );

    // A period selects by the site's days.
    let only_18th = report(&path, "Europe/London", |o| {
        o.from = Some(date(2026, 4, 18));
        o.to = Some(date(2026, 4, 18));
    });
    assert_eq!(only_18th.alerts.len(), 1);
    assert_eq!(only_18th.alerts[0].kind, "pendant_press");
    assert_eq!(only_18th.alerts[0].time_to_ack_ms(), Some(45_000));
    assert!(
        only_18th.test_calls.is_empty(),
        "the test call was on the 17th"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_escapes_journal_text_and_leaves_residents_and_notes_out_unless_asked() {
    let site = Site::start(ts("2026-04-17T10:00:00Z"));
    site.send("0xa4c1", Kind::PendantPress, Phase::Point, |_| {})
        .await;
    let a = site.alert_of("pendant-12");
    site.advance(5);
    site.ack(&a, "carer-1").await;
    // An unregistered device keeps the adapter's id, whatever the wire put in it.
    site.send(
        "<script>alert(1)</script>",
        Kind::PendantPress,
        Phase::Point,
        |_| {},
    )
    .await;
    let (_dir, path) = site.finish();

    let r = report(&path, "Europe/London", |_| {});
    assert_eq!(r.alerts.len(), 2);
    let page = html::render(&r);
    assert!(!page.contains("<script"), "no markup from the journal");
    assert!(page.contains("zigbee:&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("res-0042"), "no resident ids by default");
    assert!(
        !page.contains("Jane"),
        "acknowledgement notes are never copied"
    );
    assert!(page.contains(r#"<strong id="fig-residents">1</strong>"#));
    let csv = super::csv::alerts(&r);
    assert!(!csv[0].contains(&"resident".to_owned()));
    assert!(csv.iter().flatten().all(|c| !c.contains("res-0042")));

    // The comparison and the standard escape the areas, kinds and priorities they name.
    let mut hostile = r.clone();
    for a in &mut hostile.alerts {
        a.area = Some("<b>wing</b>".into());
        a.kind = "<img src=x>".into();
        a.priority = "\"><script>".into();
    }
    hostile.baseline = Some(Box::new(hostile.clone()));
    let page = html::render(&hostile);
    assert!(page.contains(r#"id="comparison""#) && page.contains(r#"id="ack-standard""#));
    assert!(!page.contains("<script") && !page.contains("<b>wing") && !page.contains("<img"));
    assert!(page.contains("&lt;b&gt;wing&lt;/b&gt;") && page.contains("&lt;img src=x&gt;"));

    let with = report(&path, "Europe/London", |o| o.include_residents = true);
    assert!(html::render(&with).contains("res-0042"));
    let csv = super::csv::alerts(&with);
    assert_eq!(csv[0].last().map(String::as_str), Some("resident"));
    assert!(
        csv.iter()
            .any(|row| row.last().map(String::as_str) == Some("res-0042"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_journal_changes_nothing_and_a_missing_one_is_not_created() {
    let (dir, path) = evening().await;
    let before = std::fs::read(&path).unwrap();
    let out = dir.path().join("out");
    let (r, written) =
        super::generate(&path, &Options::new("Europe/London").unwrap(), &out).unwrap();
    assert_eq!(r.alerts.len(), 4);
    assert_eq!(written.len(), 7, "{written:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the journal is byte for byte the same"
    );

    let missing = dir.path().join("nope.db");
    assert!(matches!(
        read::open(&missing),
        Err(super::ReportError::NoJournal { .. })
    ));
    assert!(!missing.exists());
}

#[test]
fn a_local_time_the_clocks_going_back_repeat_says_which_one_it_is() {
    let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let at = |s: &str| super::for_people(ts(s), &london);
    assert_eq!(at("2026-10-25T00:30:00Z"), "2026-10-25 01:30 BST");
    assert_eq!(at("2026-10-25T01:30:00Z"), "2026-10-25 01:30 GMT");
    assert_eq!(
        at("2026-10-25T02:30:00Z"),
        "2026-10-25 02:30",
        "after the fold"
    );
    assert_eq!(at("2026-04-17T15:33:22Z"), "2026-04-17 16:33");
    let utc = jiff::tz::TimeZone::UTC;
    assert_eq!(
        super::for_people(ts("2026-10-25T01:30:00Z"), &utc),
        "2026-10-25 01:30"
    );
}

/// Thirty days of a small home: three devices reporting every 30 minutes (readings, battery
/// with some low ones, heartbeats), a pendant press every third day (acknowledged and
/// resolved), a test call a week, and a leak left open; every event queued for `upstream`
/// and `archive`, neither delivered yet.
async fn thirty_days(retention: crate::journal::retention::Retention) -> Site {
    let start = ts("2026-03-01T00:00:00Z");
    let site = Site::start_with(start, &["upstream", "archive"], retention);
    let step = 1800;
    for tick in 0..(30 * 48) {
        let at = start + SignedDuration::from_secs(tick * step);
        site.clock.set(at);
        let mut drafts = Vec::new();
        for (native, kind) in [
            ("0xa4c1", Kind::Heartbeat),
            ("0xdc8e", Kind::VitalSign),
            ("0x0050", Kind::Heartbeat),
        ] {
            let mut d = EventDraft::new(kind, Phase::Point, format!("zigbee:{native}"), "zigbee");
            d.registry_keys = BTreeMap::from([("device".to_owned(), native.to_owned())]);
            d.data.battery = Some(Battery {
                percent: Some(100.0 - (tick % 97) as f64),
                low: Some(tick % 97 > 90),
                voltage_mv: None,
            });
            drafts.push(d);
        }
        let seen = drafts
            .iter()
            .map(|d| Seen {
                device_id: d.data.device.id.clone(),
                registry_keys: d.registry_keys.clone(),
            })
            .collect();
        site.zigbee
            .submit(Submission {
                events: drafts,
                first_delivery: true,
                seen,
                ..Submission::default()
            })
            .await
            .unwrap();
        if tick % (3 * 48) == 20 {
            site.send("0xa4c1", Kind::PendantPress, Phase::Point, |_| {})
                .await;
            let a = site.alert_of("pendant-12");
            site.advance(30);
            site.ack(&a, "carer-1").await;
            site.resolve(&a, "assisted").await;
        }
        if tick % (7 * 48) == 30 {
            site.send("0xa4c1", Kind::PendantPress, Phase::Point, |d| {
                d.data.test = true
            })
            .await;
        }
        if tick == 100 {
            site.send("0x0050", Kind::WaterLeak, Phase::Raised, |_| {})
                .await;
        }
    }
    site.flush().await;
    site
}

/// Runs retention cycles on the closed journal at `now` until one finishes.
fn prune(
    path: &std::path::Path,
    r: &crate::journal::retention::Retention,
    now: Timestamp,
) -> crate::journal::retention::Pruned {
    use crate::journal::retention::{Cycle, step};
    let mut opened = crate::journal::open(path).unwrap();
    let mut cycle = Cycle::start(r, now, Default::default());
    loop {
        let tx = opened.conn.transaction().unwrap();
        let more = step(&tx, r, &mut cycle).unwrap();
        tx.commit().unwrap();
        if !more {
            break;
        }
    }
    opened
        .conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    cycle.pruned
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    read::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// What a report says, without when it was generated.
fn totals(r: &Report) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        r.alerts,
        r.test_calls,
        r.devices,
        (r.from, r.to)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_what_a_sink_owes_prunes_delivered_telemetry_and_the_report_adds_up() {
    use crate::journal::retention::Retention;
    // The writer's own cycles kept out of the way: this test runs them by hand.
    let mut r = Retention {
        every: Duration::from_secs(400 * 24 * 3600),
        ..Retention::default()
    };
    let site = thirty_days(r.clone()).await;
    let end = atgw_sdk::clock::Clock::now(&site.clock);
    site.deliver("upstream").await;
    let (dir, path) = site.finish();
    let telemetry = "SELECT count(*) FROM events WHERE priority = 'info' AND test = 0
                     AND correlation_id IS NULL AND source NOT LIKE '%:alerts'";
    let all_events = count(&path, "SELECT count(*) FROM events");
    let all_telemetry = count(&path, telemetry);
    assert_eq!(all_telemetry, 30 * 48 * 3);
    let week = |o: &mut Options| {
        o.from = Some(date(2026, 3, 8));
        o.to = Some(date(2026, 3, 14));
    };
    let before = report(&path, "Europe/London", |_| {});
    let before_week = report(&path, "Europe/London", week);
    let size_before = std::fs::metadata(&path).unwrap().len();
    let used_before = crate::journal::budget::used_bytes(&read::open(&path).unwrap()).unwrap();

    // `archive` was down the whole month: every row it is owed stays.
    r.every = Duration::from_secs(600);
    let p = prune(&path, &r, end);
    assert_eq!(p.telemetry, 0, "{p:?}");
    assert_eq!(count(&path, "SELECT count(*) FROM events"), all_events);

    // It comes back and delivers; the next cycle prunes everything past the 7-day window.
    let site = Site::reopen(dir, end, r.clone());
    site.deliver("archive").await;
    let (_dir, path) = site.finish();
    let p = prune(&path, &r, end);
    let window_ms = 7 * 24 * 3600 * 1000;
    let old_telemetry = count(
        &path,
        &format!(
            "{telemetry} AND recorded_ms < {}",
            end.as_millisecond() - window_ms
        ),
    );
    assert_eq!(old_telemetry, 0, "telemetry past the window is gone");
    let kept = count(&path, telemetry);
    assert!(
        (7 * 48 * 3..=7 * 48 * 3 + 3).contains(&kept),
        "the last 7 days' telemetry stays: {kept}"
    );
    assert_eq!(p.telemetry as i64, all_telemetry - kept);
    // Alarms, their alert history and the test calls are all still there.
    assert_eq!(
        count(&path, "SELECT count(*) FROM events") + p.telemetry as i64,
        all_events
    );
    assert_eq!(count(&path, "SELECT count(*) FROM alerts"), 11);
    // The pages in use shrank with the rows; the file keeps at most the slack of free pages
    // for reuse and gave the rest back.
    let used = |path: &std::path::Path| {
        crate::journal::budget::used_bytes(&read::open(path).unwrap()).unwrap()
    };
    let used_after = used(&path);
    let size_after = std::fs::metadata(&path).unwrap().len();
    assert!(
        used_after * 2 < used_before,
        "in use: {used_before} → {used_after} bytes"
    );
    assert!(
        size_after <= used_after + crate::journal::retention::SLACK_BYTES as u64 + 8192,
        "file {size_before} → {size_after} bytes, {used_after} in use"
    );

    let after = report(&path, "Europe/London", |_| {});
    assert_eq!(totals(&before), totals(&after));
    // And a period that lies wholly in the pruned days.
    let after_week = report(&path, "Europe/London", week);
    assert!(before_week.devices.iter().all(|d| d.events > 300));
    assert_eq!(totals(&before_week), totals(&after_week));
}

/// One pendant press at `at`, acknowledged after `wait_s` (timers let fire first, so a wait
/// past the 60 s tier escalates) and resolved.
async fn press(site: &Site, at: &str, wait_s: i64) {
    site.clock.set(ts(at));
    site.send("0xa4c1", Kind::PendantPress, Phase::Point, |_| {})
        .await;
    let a = site.alert_of("pendant-12");
    site.advance(wait_s);
    site.flush().await;
    site.ack(&a, "carer-1").await;
    site.resolve(&a, "assisted").await;
}

/// A baseline week (2–8 March) of slow acknowledgements, 50, 90 and 200 s, and a fall in the
/// west wing nobody acknowledges; then a pilot week (9–15 March) of fast ones, 10, 20, 30 and
/// 70 s, all in the east wing. Days in UTC.
async fn two_weeks() -> (tempfile::TempDir, PathBuf) {
    let site = Site::start(ts("2026-03-02T08:00:00Z"));
    press(&site, "2026-03-02T09:00:00Z", 50).await;
    press(&site, "2026-03-03T09:00:00Z", 90).await;
    press(&site, "2026-03-04T09:00:00Z", 200).await;
    site.clock.set(ts("2026-03-05T09:00:00Z"));
    site.send("0xdc8e", Kind::Fall, Phase::Raised, |d| {
        d.data.priority = atgw_sdk::Priority::High;
    })
    .await;
    site.advance(61);
    site.flush().await;
    // The radar is heard in the pilot week too (it raises nothing), so the west wing has
    // monitored device-days there.
    site.clock.set(ts("2026-03-09T08:00:00Z"));
    site.send("0xdc8e", Kind::Heartbeat, Phase::Point, |_| {})
        .await;
    press(&site, "2026-03-09T09:00:00Z", 10).await;
    press(&site, "2026-03-10T09:00:00Z", 20).await;
    press(&site, "2026-03-11T09:00:00Z", 30).await;
    press(&site, "2026-03-12T09:00:00Z", 70).await;
    site.finish()
}

fn with_baseline(path: &std::path::Path, baseline: &str, from: Date, to: Date) -> Report {
    let mut opts = Options::new("UTC").unwrap();
    opts.from = Some(from);
    opts.to = Some(to);
    opts.baseline = Some(super::parse_baseline(baseline).unwrap());
    let mut c = read::open(path).unwrap();
    super::build_with_baseline(&mut c, path, &opts).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_baseline_beside_a_fast_pilot_gives_exact_shares_within_the_standard_and_changes() {
    let (_dir, path) = two_weeks().await;
    let r = with_baseline(
        &path,
        "2026-03-02..2026-03-08",
        date(2026, 3, 9),
        date(2026, 3, 15),
    );
    let b = r.baseline.as_deref().unwrap();
    assert_eq!((b.from, b.to), (date(2026, 3, 2), date(2026, 3, 8)));
    assert_eq!((r.alerts.len(), b.alerts.len()), (4, 4));

    // Pilot: 10, 20, 30 s within 60 s, 70 s only within 180 s: 3 of 4 = 75.0 %, 4 of 4.
    let pilot = standard::by_priority(&r.alerts);
    assert_eq!(pilot.len(), 1);
    assert_eq!(
        (pilot[0].group.as_str(), pilot[0].alerts, pilot[0].within),
        ("high", 4, [3, 4])
    );
    assert_eq!(pilot[0].percent(0), Some(75.0));
    assert_eq!(pilot[0].percent(1), Some(100.0));
    assert_eq!(
        (pilot[0].meets(0), pilot[0].meets(1)),
        (Some(false), Some(true))
    );
    // Baseline: 50 s within both, 90 s within 180 s, 200 s within neither, and the fall nobody
    // acknowledged within neither: 1 of 4 = 25.0 %, 2 of 4 = 50.0 %.
    let base = standard::by_priority(&b.alerts);
    assert_eq!((base[0].alerts, base[0].within), (4, [1, 2]));
    assert_eq!(
        (base[0].percent(0), base[0].percent(1)),
        (Some(25.0), Some(50.0))
    );

    let c = compare::compare(&r, b);
    assert!(c.comparable());
    let row = |scope, g: &str| {
        c.rows
            .iter()
            .find(|x| x.scope == scope && x.group == g)
            .unwrap_or_else(|| panic!("{g}"))
    };
    let site = row(compare::Scope::Site, "all");
    assert_eq!(
        (
            site.baseline.alerts,
            site.baseline.acknowledged,
            site.baseline.escalated
        ),
        (4, 3, 3)
    );
    assert_eq!(
        (
            site.pilot.alerts,
            site.pilot.acknowledged,
            site.pilot.escalated
        ),
        (4, 4, 1)
    );
    // Nearest rank: baseline waits 50, 90, 200 s → p50 90 s, p90 200 s; pilot 10, 20, 30, 70 s
    // → p50 20 s, p90 70 s.
    assert_eq!(
        (site.baseline.p50_ms, site.baseline.p90_ms),
        (Some(90_000), Some(200_000))
    );
    assert_eq!(
        (site.pilot.p50_ms, site.pilot.p90_ms),
        (Some(20_000), Some(70_000))
    );
    assert_eq!(site.acknowledged_change_pp(), Some(25.0));
    assert_eq!(site.p90_change(), Some(-65.0));
    assert_eq!(site.escalated_change_pp(), Some(25.0 - 75.0));
    // Rates are per 1,000 of the period's own monitored device-days.
    let dd =
        |r: &Report| r.devices.iter().map(|d| d.monitored_ms).sum::<i64>() as f64 / 86_400_000.0;
    assert!(dd(b) > 0.0 && dd(&r) > 0.0);
    assert_eq!(site.baseline.per_1000_device_days(), Some(4000.0 / dd(b)));
    assert_eq!(site.pilot.per_1000_device_days(), Some(4000.0 / dd(&r)));

    // Per area: the west wing had the fall in the baseline and nothing in the pilot.
    let west = row(compare::Scope::Area, "west");
    assert_eq!((west.baseline.alerts, west.pilot.alerts), (1, 0));
    assert_eq!(west.rate_change(), Some(-100.0));
    assert_eq!(west.pilot.p50_ms, None);
    assert_eq!(west.p50_change(), None, "no wait in the pilot: no change");
    let east = row(compare::Scope::Area, "east");
    assert_eq!((east.baseline.alerts, east.pilot.alerts), (3, 4));
    // Per kind: falls only in the baseline, presses in both.
    assert_eq!(row(compare::Scope::Kind, "fall").baseline.alerts, 1);
    assert_eq!(row(compare::Scope::Kind, "pendant_press").pilot.alerts, 4);

    // The same figures in every output.
    let text = super::text::summary(&r);
    assert!(
        text.contains(
            "period   high        4 alerts: 3 within 60 s (75.0 %), 4 within 180 s (100.0 %)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "baseline high        4 alerts: 1 within 60 s (25.0 %), 2 within 180 s (50.0 %)"
        ),
        "{text}"
    );
    assert!(text.contains("baseline 2026-03-02 to 2026-03-08 beside this period"));
    assert!(
        text.contains("acknowledged +25.0 pp, p50 −77.8 %, p90 −65.0 %"),
        "{text}"
    );
    let page = html::render(&r);
    assert!(
        page.contains(
            r#"id="std-60s" data-within="3" data-alerts="4" data-percent="75.0" data-meets="false""#
        ),
        "{page}"
    );
    assert!(
        page.contains(
            r#"id="baseline-std-180s" data-within="2" data-alerts="4" data-percent="50.0""#
        )
    );
    assert!(page.contains(r#"<strong id="baseline" data-from="2026-03-02" data-to="2026-03-08">"#));
    assert!(page.contains(r#"data-change-p90="-65.0""#));
    assert!(page.contains("97.5 %") && page.contains("benchmark an evaluation compares against"));
    let std_csv = super::csv::ack_standard(&r);
    let head = &std_csv[0];
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let high = std_csv
        .iter()
        .find(|row| row[col("period")] == "period" && row[col("priority")] == "high")
        .unwrap();
    assert_eq!(
        (
            &*high[col("within_60s")],
            &*high[col("within_60s_percent")],
            &*high[col("target_60s_percent")],
            &*high[col("meets_60s")]
        ),
        ("3", "75.0", "97.5", "false")
    );
    let cmp = super::csv::comparison(&r);
    let col = |name: &str| cmp[0].iter().position(|h| h == name).unwrap();
    let all = cmp.iter().find(|row| row[col("scope")] == "site").unwrap();
    assert_eq!(
        (
            &*all[col("baseline_ack_p50_s")],
            &*all[col("period_ack_p50_s")],
            &*all[col("change_p90_percent")],
            &*all[col("note")]
        ),
        ("90.000", "20.000", "-65.0", "")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_with_no_data_says_so_instead_of_showing_changes() {
    let (_dir, path) = two_weeks().await;
    let r = with_baseline(
        &path,
        "2026-02-01..2026-02-07",
        date(2026, 3, 9),
        date(2026, 3, 15),
    );
    let b = r.baseline.as_deref().unwrap();
    assert!(b.alerts.is_empty() && b.devices.is_empty());
    let c = compare::compare(&r, b);
    assert!(!c.baseline_has_data && c.pilot_has_data && !c.comparable());
    let site = &c.rows[0];
    assert_eq!(site.baseline.per_1000_device_days(), None, "not 0");
    assert_eq!(site.rate_change(), None);
    assert!(standard::by_priority(&b.alerts).is_empty());
    assert_eq!(standard::share("all", &b.alerts).percent(0), None);

    let text = super::text::summary(&r);
    assert!(
        text.contains("the baseline (2026-02-01 to 2026-02-07) has no data in the journal"),
        "{text}"
    );
    assert!(
        text.contains("baseline 2026-02-01 to 2026-02-07: no alerts"),
        "{text}"
    );
    assert!(!text.contains("change:"), "no changes from nothing: {text}");
    assert!(!text.contains("0.0 %,"), "{text}");
    let page = html::render(&r);
    assert!(page.contains(r#"id="no-data-baseline""#));
    assert!(!page.contains("data-change-"), "no change figures");
    let cmp = super::csv::comparison(&r);
    let col = |name: &str| cmp[0].iter().position(|h| h == name).unwrap();
    for row in &cmp[1..] {
        assert_eq!(row[col("change_rate_percent")], "");
        assert_eq!(row[col("note")], "no data in the baseline period");
    }
}

#[test]
fn a_baseline_must_be_two_days_in_order() {
    assert_eq!(
        super::parse_baseline("2026-03-02..2026-03-08"),
        Ok(super::Baseline {
            from: date(2026, 3, 2),
            to: date(2026, 3, 8)
        })
    );
    assert!(
        super::parse_baseline("2026-03-08..2026-03-08").is_ok(),
        "one day"
    );
    let e = super::parse_baseline("2026-03-09..2026-03-08").unwrap_err();
    assert!(
        e.contains("starts (2026-03-09) after it ends (2026-03-08)"),
        "{e}"
    );
    assert!(
        super::parse_baseline("2026-03-02")
            .unwrap_err()
            .contains("FROM..TO")
    );
    assert!(
        super::parse_baseline("2026-03-02..March")
            .unwrap_err()
            .contains("`March` is not a day")
    );
}
