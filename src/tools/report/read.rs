//! Reads a journal into a [`Report`]: one read-only connection, one snapshot transaction, so
//! figures add up even while the daemon keeps writing.
//!
//! Alert lifecycle events (source `urn:atgw:<gateway>:alerts`) carry the alert's kind and the
//! phases `raised`/`cleared` too, so every query about what *devices* did leaves that source
//! out.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{AlertRecord, DeviceRecord, Options, Report, ReportError, TestCall, stats};
use crate::envelope::ALERTS_SOURCE;

/// Opens the journal read-only; a missing file is an error, never a new empty journal.
pub fn open(path: &Path) -> Result<Connection, ReportError> {
    if !path.is_file() {
        return Err(ReportError::NoJournal {
            path: path.to_path_buf(),
        });
    }
    let sql = |source| ReportError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    // Belt and braces: even a statement that tried to write would be refused.
    conn.pragma_update(None, "query_only", true).map_err(sql)?;
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if version < 2 {
        return Err(ReportError::TooOld {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(conn)
}

/// The calendar day of an instant in `tz`.
pub fn local_day(ms: i64, tz: &TimeZone) -> Date {
    Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
        .date()
}

/// The instant a local day begins (its first instant, even on a day that starts at 01:00).
pub fn day_start_ms(day: Date, tz: &TimeZone) -> i64 {
    day.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(i64::MAX)
}

/// Reads everything the report shows from one snapshot of the journal.
pub fn build(conn: &mut Connection, path: &Path, opts: &Options) -> Result<Report, ReportError> {
    let sql = |source| ReportError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn.transaction().map_err(sql)?;
    let tz = &opts.timezone;
    let alerts_source = format!("urn:atgw:%:{ALERTS_SOURCE}");

    let (first_ms, as_of_ms): (Option<i64>, Option<i64>) = tx
        .query_row(
            "SELECT min(recorded_ms), max(recorded_ms) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql)?;
    // Pruned telemetry may have been the first thing heard.
    let pruned_first: Option<i64> = if has_device_days(&tx).map_err(sql)? {
        tx.query_row("SELECT min(first_ms) FROM device_days", [], |r| r.get(0))
            .map_err(sql)?
    } else {
        None
    };
    let first_ms = first_ms.into_iter().chain(pruned_first).min();
    let generated_ms = Timestamp::now().as_millisecond();
    let today = local_day(generated_ms, tz);
    let first_day = first_ms.map(|ms| local_day(ms, tz)).unwrap_or(today);
    let last_day = as_of_ms.map(|ms| local_day(ms, tz)).unwrap_or(today);
    let (from, to) = match (opts.from, opts.to) {
        (Some(f), Some(t)) if f > t => {
            return Err(ReportError::Usage {
                what: format!("the period starts ({f}) after it ends ({t})"),
            });
        }
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, last_day.max(f)),
        (None, Some(t)) => (first_day.min(t), t),
        (None, None) => (first_day, last_day.max(first_day)),
    };
    let start_ms = day_start_ms(from, tz);
    let end_ms = to
        .tomorrow()
        .map(|d| day_start_ms(d, tz))
        .unwrap_or(i64::MAX);

    let alerts = read_alerts(&tx, &alerts_source, tz, start_ms, end_ms).map_err(sql)?;
    let test_calls = read_test_calls(&tx, &alerts_source, tz, start_ms, end_ms).map_err(sql)?;
    let devices = read_devices(
        &tx,
        &alerts_source,
        start_ms,
        end_ms.min(as_of_ms.unwrap_or(start_ms)),
        end_ms,
        (&from.to_string(), &to.to_string()),
    )
    .map_err(sql)?;
    let site = match &opts.site {
        Some(s) => s.clone(),
        None => tx
            .query_row(
                "SELECT json_extract(json, '$.data.location.site') FROM events ORDER BY seq LIMIT 1",
                [],
                |r| r.get::<_, Option<String>>(0),
            )
            .ok()
            .flatten()
            .unwrap_or_default(),
    };
    Ok(Report {
        site,
        timezone: opts.timezone_name.clone(),
        from,
        to,
        start_ms,
        end_ms,
        as_of_ms,
        generated_ms,
        include_residents: opts.include_residents,
        alerts,
        test_calls,
        devices,
        tz: tz.clone(),
        baseline: None,
    })
}

/// What the lifecycle events say of one alert.
#[derive(Default)]
struct Lifecycle {
    first_raised_ms: Option<i64>,
    escalations: u32,
    repeats: u32,
    reminders: u32,
    not_attended: u32,
}

fn read_alerts(
    tx: &Connection,
    alerts_source: &str,
    tz: &TimeZone,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Vec<AlertRecord>> {
    let mut life: HashMap<String, Lifecycle> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT correlation_id, phase, recorded_ms, json_extract(json, '$.data.alert.reason')
             FROM events
             WHERE source LIKE ?1 AND correlation_id IS NOT NULL
               AND phase IN ('raised', 'escalated')",
        )?;
        let rows = stmt.query_map([alerts_source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, phase, ms, reason) = row?;
            let l = life.entry(id).or_default();
            match (phase.as_str(), reason.as_deref()) {
                ("raised", _) => {
                    l.first_raised_ms = Some(l.first_raised_ms.map_or(ms, |f| f.min(ms)));
                    l.not_attended += u32::from(reason.as_deref() == Some("not_attended"));
                }
                (_, Some("ack_timeout")) => l.escalations += 1,
                (_, Some("repeat")) => l.repeats += 1,
                (_, Some("not_resolved")) => l.reminders += 1,
                _ => {}
            }
        }
    }
    let mut stmt = tx.prepare(
        "SELECT id, device_id, kind, status, priority, raised_ms, acked_ms, acked_by, resolved_ms,
                outcome, area, snapshot
         FROM alerts",
    )?;
    let rows = stmt.query_map([], |r| {
        let snapshot: String = r.get(11)?;
        let snap: serde_json::Value = serde_json::from_str(&snapshot).unwrap_or_default();
        let text = |p: &str| snap.pointer(p).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(AlertRecord {
            id: r.get(0)?,
            device: r.get(1)?,
            kind: r.get(2)?,
            status: r.get(3)?,
            priority: r.get(4)?,
            raised_ms: r.get(5)?,
            day: Date::default(),
            acked_ms: r.get(6)?,
            acked_by: r.get(7)?,
            resolved_ms: r.get(8)?,
            outcome: r.get(9)?,
            area: r
                .get::<_, Option<String>>(10)?
                .or_else(|| text("/location/area")),
            room: text("/location/room"),
            resident: text("/resident/id"),
            escalations: 0,
            repeats: 0,
            reminders: 0,
            not_attended: 0,
            test: snap.pointer("/test").and_then(|v| v.as_bool()) == Some(true),
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let mut a = row?;
        if let Some(l) = life.get(&a.id) {
            if let Some(first) = l.first_raised_ms {
                a.raised_ms = a.raised_ms.min(first);
            }
            a.escalations = l.escalations;
            a.repeats = l.repeats;
            a.reminders = l.reminders;
            a.not_attended = l.not_attended;
        }
        if a.raised_ms >= start_ms && a.raised_ms < end_ms {
            a.day = local_day(a.raised_ms, tz);
            out.push(a);
        }
    }
    out.sort_by(|a, b| a.raised_ms.cmp(&b.raised_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

fn read_test_calls(
    tx: &Connection,
    alerts_source: &str,
    tz: &TimeZone,
    start_ms: i64,
    end_ms: i64,
) -> rusqlite::Result<Vec<TestCall>> {
    let mut stmt = tx.prepare(
        "SELECT device_id, kind, recorded_ms FROM events
         WHERE recorded_ms >= ?1 AND recorded_ms < ?2 AND test = 1
           AND phase IN ('raised', 'point') AND source NOT LIKE ?3
         ORDER BY recorded_ms, seq",
    )?;
    let rows = stmt.query_map(params![start_ms, end_ms, alerts_source], |r| {
        let at_ms: i64 = r.get(2)?;
        Ok(TestCall {
            device: r.get(0)?,
            kind: r.get(1)?,
            at_ms,
            day: local_day(at_ms, tz),
        })
    })?;
    rows.collect()
}

/// Whether the journal has daily figures (migration 10; a report may read an older file).
fn has_device_days(tx: &Connection) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'device_days'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Devices over `[start_ms, end_ms)` (the local days `days`, inclusive); uptime is measured up
/// to `watch_end_ms` (the journal's last event when that is earlier than the period's end: the
/// gateway cannot vouch for later). Telemetry that retention pruned is counted from its daily
/// figures (`device_days`), which hold exactly what the pruned rows would have given.
fn read_devices(
    tx: &Connection,
    alerts_source: &str,
    start_ms: i64,
    watch_end_ms: i64,
    end_ms: i64,
    days: (&str, &str),
) -> rusqlite::Result<Vec<DeviceRecord>> {
    let mut devices: BTreeMap<String, DeviceRecord> = BTreeMap::new();
    // What the gateway knows of each device it has heard.
    {
        let mut stmt = tx.prepare("SELECT device_id, adapter, registered FROM devices")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        for row in rows {
            let (id, adapter, registered) = row?;
            devices.insert(
                id.clone(),
                DeviceRecord {
                    id,
                    adapter,
                    registered,
                    ..DeviceRecord::default()
                },
            );
        }
    }
    // Activity within the period. A gateway-raised `device_offline` is not the device talking.
    let mut first_ever: HashMap<String, i64> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT device_id, min(recorded_ms) FROM events
             WHERE recorded_ms < ?1 AND source NOT LIKE ?2
               AND NOT (kind = 'device_offline' AND phase = 'raised')
             GROUP BY device_id",
        )?;
        let rows = stmt.query_map(params![end_ms, alerts_source], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (id, ms) = row?;
            first_ever.insert(id, ms);
        }
        if has_device_days(tx)? {
            let mut stmt = tx.prepare(
                "SELECT device_id, min(first_ms) FROM device_days
                 WHERE day <= ?1 AND first_ms IS NOT NULL GROUP BY device_id",
            )?;
            let rows = stmt.query_map([days.1], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (id, ms) = row?;
                let e = first_ever.entry(id).or_insert(ms);
                *e = (*e).min(ms);
            }
        }
    }
    {
        let mut stmt = tx.prepare(
            "SELECT device_id,
                    min(CASE WHEN NOT (kind = 'device_offline' AND phase = 'raised') THEN recorded_ms END),
                    max(CASE WHEN NOT (kind = 'device_offline' AND phase = 'raised') THEN recorded_ms END),
                    count(*),
                    coalesce(sum(test = 1 AND phase IN ('raised', 'point')), 0),
                    coalesce(sum(kind = 'low_battery' AND phase = 'raised'), 0),
                    coalesce(sum(CASE WHEN instr(json, '\"low\":true') > 0
                                      THEN json_extract(json, '$.data.battery.low') = 1 END), 0),
                    min(CASE WHEN instr(json, '\"percent\"') > 0
                             THEN json_extract(json, '$.data.battery.percent') END),
                    max(json_extract(json, '$.data.device.adapter')),
                    max(json_extract(json, '$.data.device.registered')),
                    max(json_extract(json, '$.data.location.area'))
             FROM events
             WHERE recorded_ms >= ?1 AND recorded_ms < ?2 AND source NOT LIKE ?3
             GROUP BY device_id",
        )?;
        let rows = stmt.query_map(params![start_ms, end_ms, alerts_source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<f64>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<bool>>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })?;
        for row in rows {
            let (
                id,
                first,
                last,
                events,
                tests,
                low_raised,
                low_readings,
                min_pct,
                adapter,
                reg,
                area,
            ) = row?;
            let d = devices.entry(id.clone()).or_insert_with(|| DeviceRecord {
                id,
                adapter: adapter.unwrap_or_default(),
                registered: reg.unwrap_or(false),
                ..DeviceRecord::default()
            });
            d.area = area;
            d.first_seen_ms = first;
            d.last_seen_ms = last;
            d.events = events.max(0) as u64;
            d.test_calls = tests.clamp(0, u32::MAX as i64) as u32;
            d.low_battery_raised = low_raised.clamp(0, u32::MAX as i64) as u32;
            d.low_battery_readings = low_readings.clamp(0, u32::MAX as i64) as u32;
            d.min_battery_percent = min_pct;
        }
    }
    // What pruned telemetry said, day by day.
    if has_device_days(tx)? {
        let mut stmt = tx.prepare(
            "SELECT device_id, min(first_ms), max(last_ms), sum(events), sum(low_readings),
                    min(min_percent), max(adapter), max(registered)
             FROM device_days WHERE day >= ?1 AND day <= ?2 GROUP BY device_id",
        )?;
        let rows = stmt.query_map([days.0, days.1], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<bool>>(7)?,
            ))
        })?;
        for row in rows {
            let (id, first, last, events, low_readings, min_pct, adapter, reg) = row?;
            let d = devices.entry(id.clone()).or_insert_with(|| DeviceRecord {
                id,
                adapter: adapter.unwrap_or_default(),
                registered: reg.unwrap_or(false),
                ..DeviceRecord::default()
            });
            let earlier = |a: Option<i64>, b: Option<i64>| a.into_iter().chain(b).min();
            let later = |a: Option<i64>, b: Option<i64>| a.into_iter().chain(b).max();
            d.first_seen_ms = earlier(d.first_seen_ms, first);
            d.last_seen_ms = later(d.last_seen_ms, last);
            d.events += events.max(0) as u64;
            d.low_battery_readings = d
                .low_battery_readings
                .saturating_add(low_readings.clamp(0, u32::MAX as i64) as u32);
            d.min_battery_percent = match (d.min_battery_percent, min_pct) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    // Areas the period's messages did not give (pruned telemetry keeps none, so a period in
    // pruned days would otherwise lose them): the device's newest message that names one, else
    // its newest alert's. Both walk an index (`events_device`, `alerts_live`) from one device's
    // newest row, so this costs little even on a large journal.
    {
        let mut from_events = tx.prepare(
            "SELECT json_extract(json, '$.data.location.area') AS area FROM events
             WHERE device_id = ?1 AND source NOT LIKE ?2 AND area IS NOT NULL
             ORDER BY seq DESC LIMIT 1",
        )?;
        let mut from_alerts = tx.prepare(
            "SELECT area FROM alerts WHERE device_id = ?1 AND area IS NOT NULL
             ORDER BY raised_ms DESC LIMIT 1",
        )?;
        for d in devices.values_mut().filter(|d| d.area.is_none()) {
            let newest = |stmt: &mut rusqlite::Statement, p: &[&dyn rusqlite::ToSql]| {
                stmt.query_row(p, |r| r.get::<_, Option<String>>(0))
                    .optional()
                    .map(Option::flatten)
            };
            d.area = match newest(&mut from_events, &[&d.id, &alerts_source])? {
                Some(a) => Some(a),
                None => newest(&mut from_alerts, &[&d.id])?,
            };
        }
    }
    // Offline episodes, from every transition up to the period's end (one raised before the
    // period and cleared inside it counts from the period's start).
    let mut transitions: HashMap<String, Vec<(i64, bool)>> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT device_id, phase, recorded_ms FROM events
             WHERE kind = 'device_offline' AND phase IN ('raised', 'cleared')
               AND recorded_ms < ?1 AND source NOT LIKE ?2
             ORDER BY recorded_ms, seq",
        )?;
        let rows = stmt.query_map(params![end_ms, alerts_source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, phase, ms) = row?;
            transitions
                .entry(id)
                .or_default()
                .push((ms, phase == "raised"));
        }
    }
    let mut out = Vec::new();
    for (id, mut d) in devices {
        let t = transitions.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        // Watched from its first message (or first outage) ever, but not before the period.
        let known_from = first_ever
            .get(&id)
            .copied()
            .into_iter()
            .chain(t.first().map(|(ms, _)| *ms))
            .min();
        let Some(known_from) = known_from else {
            continue; // heard only after the period
        };
        let from = known_from.max(start_ms);
        let (offline_ms, episodes) = stats::offline_time(t, from, watch_end_ms);
        d.monitored_ms = (watch_end_ms - from).max(0);
        d.offline_ms = offline_ms;
        d.offline_episodes = episodes;
        if d.events > 0 || episodes > 0 {
            out.push(d);
        }
    }
    Ok(out)
}
