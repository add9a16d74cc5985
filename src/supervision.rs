//! Supervision: a registered device with `check_in` must be heard from at least that often. A
//! missed interval raises `device_offline` (medium priority: the devices people register for
//! supervision are the life-safety ones), and the device's next message clears it. The clock
//! starts at the device's last check-in, or at the gateway's start for a device never heard.
//! The raised flag lives in the journal (`devices.offline_raised`), so a restart neither
//! re-raises nor forgets an outage. The clocks in memory change with the writer's transaction:
//! a batch that fails to commit (disk full) puts back the watches it touched, so a missed
//! check-in is raised again by the next batch instead of being remembered as raised.

use std::collections::{BTreeMap, HashMap};

use atgw_sdk::event::{EventDraft, Kind, Phase, Priority};
use rusqlite::{Connection, params};

use crate::pipeline::Batch;
use crate::registry::Registry;

/// One supervised device.
#[derive(Clone, Debug)]
struct Watch {
    adapter: String,
    keys: BTreeMap<String, String>,
    every_ms: i64,
    last_seen_ms: i64,
    raised: bool,
}

/// Every supervised device's clock.
#[derive(Debug, Default)]
pub struct Supervisor {
    watches: HashMap<String, Watch>,
    /// Watches as they were before the open batch first touched them.
    undo: HashMap<String, Watch>,
}

impl Supervisor {
    /// Loads last check-ins and raised flags from the journal.
    pub fn load(
        conn: &Connection,
        registry: &Registry,
        now_ms: i64,
    ) -> rusqlite::Result<Supervisor> {
        let mut watches = HashMap::new();
        for (id, adapter, keys, every) in registry.supervised() {
            let (seen, raised): (Option<i64>, bool) = conn
                .query_row(
                    "SELECT last_seen_ms, offline_raised FROM devices WHERE device_id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap_or((None, false));
            watches.insert(
                id,
                Watch {
                    adapter,
                    keys,
                    every_ms: i64::try_from(every.as_millis()).unwrap_or(i64::MAX),
                    last_seen_ms: seen.unwrap_or(now_ms),
                    raised,
                },
            );
        }
        Ok(Supervisor {
            watches,
            undo: HashMap::new(),
        })
    }

    /// The batch committed: its changes stand.
    pub(crate) fn committed(&mut self) {
        self.undo.clear();
    }

    /// The batch rolled back: forget what it changed.
    pub(crate) fn rolled_back(&mut self) {
        for (id, w) in self.undo.drain() {
            self.watches.insert(id, w);
        }
    }

    /// The watch of `id`, remembered for [`Supervisor::rolled_back`] before it changes.
    fn touch(&mut self, id: &str) -> Option<&mut Watch> {
        let w = self.watches.get_mut(id)?;
        if !self.undo.contains_key(id) {
            self.undo.insert(id.to_owned(), w.clone());
        }
        Some(w)
    }

    /// When the next device becomes overdue (ms since the epoch).
    pub fn next_due(&self) -> Option<i64> {
        self.watches
            .values()
            .filter(|w| !w.raised)
            .map(|w| w.last_seen_ms.saturating_add(w.every_ms))
            .min()
    }

    /// A supervised device was heard: restart its clock, and clear an outage it had.
    pub(crate) fn heard(&mut self, b: &mut Batch<'_>, id: &str, ms: i64) -> rusqlite::Result<()> {
        let Some(w) = self.touch(id) else {
            return Ok(());
        };
        w.last_seen_ms = w.last_seen_ms.max(ms);
        if w.raised {
            w.raised = false;
            let w = w.clone();
            set_flag(b, id, &w, false)?;
            let what = format!("{} back online", device_label(b, id)?);
            emit(b, &w, Phase::Cleared, &what)?;
        }
        Ok(())
    }

    /// Raises `device_offline` for every device whose interval has passed.
    pub(crate) fn fire_due(&mut self, b: &mut Batch<'_>) -> rusqlite::Result<()> {
        let now = b.now.as_millisecond();
        let overdue: Vec<String> = self
            .watches
            .iter()
            .filter(|(_, w)| !w.raised && w.last_seen_ms.saturating_add(w.every_ms) <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in overdue {
            if let Some(w) = self.touch(&id) {
                w.raised = true;
                let w = w.clone();
                set_flag(b, &id, &w, true)?;
                let what = format!(
                    "{} silent for {} (check-in missed)",
                    device_label(b, &id)?,
                    crate::alerts::span(now - w.last_seen_ms)
                );
                emit(b, &w, Phase::Raised, &what)?;
            }
        }
        Ok(())
    }
}

/// What the device is, for the carer who must go and look: what it reports (its latest
/// alarm kind that names a device: "Pendant", "Fall detector", "Oximeter"), with its vendor and
/// model when its profile says them, and its registry id. The core appends room and area.
fn device_label(b: &Batch<'_>, id: &str) -> rusqlite::Result<String> {
    let recent: Vec<(String, Option<String>, Option<String>, bool)> =
        b.tx.prepare_cached(
            "SELECT kind, json_extract(json, '$.data.device.vendor'),
                    json_extract(json, '$.data.device.model'),
                    json_extract(json, '$.data.observations[0].name') = 'spo2'
             FROM events WHERE device_id = ?1 AND kind != 'device_offline'
             ORDER BY seq DESC LIMIT 50",
        )?
        .query_map([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, Option<bool>>(3)?.unwrap_or(false),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let noun = recent
        .iter()
        .find_map(|(kind, _, _, spo2)| noun(kind.parse().ok()?, *spo2))
        .unwrap_or("Device");
    let model = recent.iter().find_map(|(_, vendor, model, _)| {
        let v = [vendor.as_deref(), model.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!v.is_empty()).then_some(v)
    });
    Ok(match model {
        Some(m) => format!("{noun} {id} ({m})"),
        None => format!("{noun} {id}"),
    })
}

/// The device a kind of report comes from; `None` for kinds any device sends.
fn noun(kind: Kind, spo2: bool) -> Option<&'static str> {
    Some(match kind {
        Kind::PendantPress => "Pendant",
        Kind::Fall => "Fall detector",
        Kind::AssistanceCall => "Call point",
        Kind::NurseCall => "Nurse call point",
        Kind::Medical => "Medical alarm",
        Kind::Smoke => "Smoke detector",
        Kind::Co => "CO detector",
        Kind::Gas => "Gas detector",
        Kind::WaterLeak => "Leak sensor",
        Kind::DoorExit => "Door sensor",
        Kind::BedExit => "Bed sensor",
        Kind::ChairExit => "Chair sensor",
        Kind::Inactivity => "Activity sensor",
        Kind::Seizure => "Seizure monitor",
        Kind::Enuresis => "Enuresis sensor",
        Kind::TemperatureExtreme => "Temperature sensor",
        Kind::VitalSign | Kind::Spo2Low if spo2 => "Oximeter",
        Kind::VitalSign
        | Kind::Spo2Low
        | Kind::HeartRateAbnormal
        | Kind::RespiratoryRateAbnormal => "Vital-signs monitor",
        _ => return None,
    })
}

fn set_flag(b: &Batch<'_>, id: &str, w: &Watch, raised: bool) -> rusqlite::Result<()> {
    b.tx.prepare_cached(
        "INSERT INTO devices (device_id, adapter, registered, last_seen_ms, offline_raised)
         VALUES (?1, ?2, 1, ?3, ?4)
         ON CONFLICT(device_id) DO UPDATE SET offline_raised = excluded.offline_raised",
    )?
    .execute(params![id, w.adapter, w.last_seen_ms, raised])?;
    Ok(())
}

fn emit(b: &mut Batch<'_>, w: &Watch, phase: Phase, what: &str) -> rusqlite::Result<()> {
    let mut d = EventDraft::new(Kind::DeviceOffline, phase, "", w.adapter.clone());
    d.data.priority = Priority::Medium;
    d.data.message = Some(what.to_owned());
    d.data.codes.contact_id = Some("381".into());
    d.registry_keys = w.keys.clone();
    b.gateway_observation(&w.adapter, d)
}
