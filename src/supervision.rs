//! Supervision: a registered device with `check_in` must be heard from at least that often. A
//! missed interval raises `device_offline` (medium priority: the devices people register for
//! supervision are the life-safety ones), and the device's next message clears it. The clock
//! starts at the device's last check-in, or at the gateway's start for a device never heard.
//! The raised flag lives in the journal (`devices.offline_raised`), so a restart neither
//! re-raises nor forgets an outage. The clocks in memory change with the writer's transaction:
//! a batch that fails to commit (disk full) puts back the watches it touched, so a missed
//! check-in is raised again by the next batch instead of being remembered as raised.
//!
//! **Inhibition.** A device is silent for its own reasons only while the gateway can hear it.
//! When an adapter loses its link (an MQTT adapter's broker connection: its health says not
//! connected), its devices' missed check-ins are not raised one by one: after
//! `[alerts] link_down_alert_after` the one gateway alert (`device_fault` of
//! `gateway:<id>:link:<adapter>`, high) says the link is down and how many supervised
//! devices it hides. When the link returns the alert clears, and each device gets a full
//! check-in interval from then: one that is still silent after that raises its own
//! `device_offline`. A device already raised before the link went down stays raised.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

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
    /// When its adapter's link last came back: the device has a full interval from then.
    grace_from_ms: i64,
    raised: bool,
}

impl Watch {
    fn due_ms(&self) -> i64 {
        self.last_seen_ms
            .max(self.grace_from_ms)
            .saturating_add(self.every_ms)
    }
}

/// An adapter whose link to its devices is down.
#[derive(Clone, Debug, PartialEq)]
struct Down {
    since_ms: i64,
    /// The gateway alert about it was raised.
    alerted: bool,
}

/// Every supervised device's clock, and the adapters that cannot hear theirs.
#[derive(Debug, Default)]
pub struct Supervisor {
    watches: HashMap<String, Watch>,
    /// Watches as they were before the open batch first touched them.
    undo: HashMap<String, Watch>,
    /// Adapters whose link is down, by name.
    down: HashMap<String, Down>,
    /// `down` before the open batch first changed it.
    down_undo: Option<HashMap<String, Down>>,
    /// `[alerts] link_down_alert_after`, in ms.
    link_alert_after_ms: i64,
}

impl Supervisor {
    /// Loads last check-ins and raised flags from the journal.
    pub fn load(
        conn: &Connection,
        registry: &Registry,
        now_ms: i64,
        link_alert_after: std::time::Duration,
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
                    grace_from_ms: 0,
                    raised,
                },
            );
        }
        Ok(Supervisor {
            watches,
            link_alert_after_ms: i64::try_from(link_alert_after.as_millis()).unwrap_or(i64::MAX),
            ..Supervisor::default()
        })
    }

    /// The batch committed: its changes stand.
    pub(crate) fn committed(&mut self) {
        self.undo.clear();
        self.down_undo = None;
    }

    /// The batch rolled back: forget what it changed.
    pub(crate) fn rolled_back(&mut self) {
        for (id, w) in self.undo.drain() {
            self.watches.insert(id, w);
        }
        if let Some(down) = self.down_undo.take() {
            self.down = down;
        }
    }

    /// `down`, remembered for [`Supervisor::rolled_back`] before it changes.
    fn touch_down(&mut self) -> &mut HashMap<String, Down> {
        if self.down_undo.is_none() {
            self.down_undo = Some(self.down.clone());
        }
        &mut self.down
    }

    /// An adapter's link went down or came back (`at_ms`), as the runtime saw its health.
    pub(crate) fn link(
        &mut self,
        b: &mut Batch<'_>,
        adapter: &str,
        up: bool,
        at_ms: i64,
    ) -> rusqlite::Result<()> {
        if !up {
            if !self.down.contains_key(adapter) {
                tracing::info!(
                    adapter,
                    "adapter link down: its devices' missed check-ins are held"
                );
                self.touch_down().insert(
                    adapter.to_owned(),
                    Down {
                        since_ms: at_ms,
                        alerted: false,
                    },
                );
            }
            return Ok(());
        }
        let Some(down) = self.touch_down().remove(adapter) else {
            return Ok(());
        };
        let ids: Vec<String> = self
            .watches
            .iter()
            .filter(|(_, w)| w.adapter == adapter)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            if let Some(w) = self.touch(id) {
                w.grace_from_ms = w.grace_from_ms.max(at_ms);
            }
        }
        let lasted = crate::alerts::span(at_ms - down.since_ms);
        tracing::info!(adapter, %lasted, "adapter link back");
        if down.alerted || link_alert_open(b, adapter)? {
            let message =
                format!("Gateway hears the devices on `{adapter}` again (link was down {lasted})");
            let d =
                crate::gateway_alerts::link(&b.setup.gateway_id, adapter, Phase::Cleared, message);
            b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
        }
        Ok(())
    }

    /// The watch of `id`, remembered for [`Supervisor::rolled_back`] before it changes.
    fn touch(&mut self, id: &str) -> Option<&mut Watch> {
        let w = self.watches.get_mut(id)?;
        if !self.undo.contains_key(id) {
            self.undo.insert(id.to_owned(), w.clone());
        }
        Some(w)
    }

    /// When the next device becomes overdue, or a link has been down long enough for its
    /// alert (ms since the epoch).
    pub fn next_due(&self) -> Option<i64> {
        let devices = self
            .watches
            .values()
            .filter(|w| !w.raised && !self.down.contains_key(&w.adapter))
            .map(Watch::due_ms);
        let links = self
            .down
            .values()
            .filter(|d| !d.alerted)
            .map(|d| d.since_ms.saturating_add(self.link_alert_after_ms));
        devices.chain(links).min()
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

    /// Raises `device_offline` for every device whose interval has passed while its adapter
    /// could hear it, and the gateway alert for every link down long enough.
    pub(crate) fn fire_due(&mut self, b: &mut Batch<'_>) -> rusqlite::Result<()> {
        let now = b.now.as_millisecond();
        let links: Vec<(String, i64)> = self
            .down
            .iter()
            .filter(|(_, d)| {
                !d.alerted && d.since_ms.saturating_add(self.link_alert_after_ms) <= now
            })
            .map(|(a, d)| (a.clone(), d.since_ms))
            .collect();
        for (adapter, since_ms) in links {
            if let Some(d) = self.touch_down().get_mut(&adapter) {
                d.alerted = true;
            }
            if link_alert_open(b, &adapter)? {
                continue;
            }
            let hidden = self
                .watches
                .values()
                .filter(|w| w.adapter == adapter)
                .count();
            let lasted = crate::alerts::span(now - since_ms);
            tracing::warn!(
                adapter,
                supervised = hidden,
                "adapter link down for {lasted}; raising a gateway alert"
            );
            let message = format!(
                "Gateway cannot hear the devices on `{adapter}` (link down for {lasted}); \
                 offline alerts of its {hidden} supervised devices are held until it returns"
            );
            let d =
                crate::gateway_alerts::link(&b.setup.gateway_id, &adapter, Phase::Raised, message);
            b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
        }
        let overdue: Vec<String> = self
            .watches
            .iter()
            .filter(|(_, w)| !w.raised && !self.down.contains_key(&w.adapter) && w.due_ms() <= now)
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

/// How often the runtime looks at adapters' links. A drop shorter than this may go unseen;
/// then nothing was held, which is the state without inhibition.
const LINK_POLL: Duration = Duration::from_millis(500);

/// Tells the writer whenever an adapter's link goes down or comes back (its health's
/// `connected`: an MQTT adapter's broker session, a listener's bound socket). Supervision
/// starts with every link up, so the first look reports only those that are down.
pub async fn watch_links(
    adapters: Vec<(String, Arc<atgw_sdk::Health>)>,
    writer: crate::journal::WriterHandle,
    clock: atgw_sdk::clock::SharedClock,
    stop: atgw_sdk::Shutdown,
) {
    let mut up: Vec<bool> = vec![true; adapters.len()];
    let mut tick = tokio::time::interval(LINK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for ((name, health), was) in adapters.iter().zip(up.iter_mut()) {
            let now = health.is_connected();
            if now != *was {
                *was = now;
                writer.send(crate::journal::WriterCmd::Link {
                    adapter: name.clone(),
                    up: now,
                    at_ms: clock.now().as_millisecond(),
                });
            }
        }
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

/// Whether the gateway alert about `adapter`'s link is open (raised before a restart, say).
fn link_alert_open(b: &Batch<'_>, adapter: &str) -> rusqlite::Result<bool> {
    let device = crate::gateway_alerts::link_device(&b.setup.gateway_id, adapter);
    b.tx.prepare_cached(
        "SELECT count(*) FROM alerts WHERE device_id = ?1 AND status IN ('open', 'acknowledged')",
    )?
    .query_row([device], |r| r.get::<_, i64>(0))
    .map(|n| n > 0)
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
