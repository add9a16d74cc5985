//! From a decoded frame to the event drafts the core journals: kind, phase, priority, device,
//! registry keys, the original codes and a short message.
//!
//! Vendor extensions come from config (`vendor_codes`) and win over the standard tables, so a
//! panel that sends Contact ID 1102 for "fall" can be configured as such; nothing is
//! reinterpreted silently, and the original code always stays in `codes`.

use std::collections::BTreeMap;

use atgw_sdk::event::{Battery, Raw};
use atgw_sdk::{EventDraft, Kind, Phase};
use jiff::Timestamp;

use crate::contact_id::{self, ContactIdError, Shape};
use crate::frame::{Body, Frame, Header, Payload, Token};
use crate::keys;
use crate::sia::{self, SiaError};
use crate::timestamp::Dc09Time;

/// `raw.protocol` of every DC-09 event.
pub const PROTOCOL: &str = "sia-dc09";

/// The schema's limit for `message`.
const MESSAGE_MAX: usize = 160;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error(transparent)]
    ContactId(#[from] ContactIdError),
    #[error(transparent)]
    Sia(#[from] SiaError),
}

/// Turns payloads into drafts for one adapter instance.
#[derive(Clone, Debug)]
pub struct Mapper {
    adapter: String,
    vendor: BTreeMap<String, Kind>,
}

impl Mapper {
    /// Entries whose kind does not parse are skipped (`Config::validate` reports them).
    pub fn new(adapter: impl Into<String>, vendor_codes: &BTreeMap<String, String>) -> Mapper {
        Mapper {
            adapter: adapter.into(),
            vendor: vendor_codes
                .iter()
                .filter_map(|(code, kind)| Some((code.clone(), kind.parse().ok()?)))
                .collect(),
        }
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The events one frame carries: none for NULL, one for Contact ID, one or more for SIA.
    pub fn drafts(&self, header: &Header, payload: &Payload) -> Result<Vec<EventDraft>, MapError> {
        let header_account = header.account.as_deref().unwrap_or_default();
        let time = occurrence_time(payload);
        let raw = Raw {
            protocol: PROTOCOL.into(),
            topic: None,
            path: None,
            payload: serde_json::Value::String(
                String::from_utf8_lossy(
                    &Frame {
                        header: header.clone(),
                        body: Body::Clear(payload.clone()),
                    }
                    .message(),
                )
                .into_owned(),
            ),
            upstream_id: Some(format!("{header_account}:{}", header.seq)),
        };
        let mut out = Vec::new();
        match header.token {
            Token::AdmCid => {
                let cid = contact_id::parse(&payload.data)?;
                let account = cid
                    .account
                    .clone()
                    .unwrap_or_else(|| header_account.to_owned());
                let qualified = format!("{}{}", cid.qualifier, cid.code);
                let vendor = self
                    .vendor
                    .get_key_value(&qualified)
                    .or_else(|| self.vendor.get_key_value(&cid.code));
                let (kind, shape) = match vendor {
                    Some((_, k)) => (*k, shape_of(*k)),
                    None => {
                        contact_id::kind_of(&cid.code).unwrap_or((Kind::Unknown, Shape::Condition))
                    }
                };
                let phase = match (shape, cid.qualifier) {
                    (Shape::Point, _) => Phase::Point,
                    (Shape::Condition, 3) => Phase::Cleared,
                    (Shape::Condition, _) => Phase::Raised,
                };
                let name = match vendor {
                    Some(_) => format!("Vendor code {qualified} ({kind})"),
                    None if kind == Kind::Unknown => {
                        contact_id::unmapped_name(cid.qualifier, &cid.code)
                    }
                    None => contact_id::name_of(&cid.code).to_owned(),
                };
                let mut d = self.draft(kind, phase, &account, &cid.zone, &name, time, &raw);
                d.data.codes.contact_id = Some(cid.code.clone());
                d.data.codes.vendor = vendor.map(|(k, _)| k.clone());
                out.push(d);
            }
            Token::SiaDcs => {
                let block = sia::parse(&payload.data)?;
                let account = block
                    .account
                    .clone()
                    .unwrap_or_else(|| header_account.to_owned());
                for ev in &block.events {
                    let vendor = self.vendor.get_key_value(&ev.code);
                    let (kind, phase) = match vendor {
                        Some((_, k)) => (*k, point_or(*k, Phase::Raised)),
                        None => sia::kind_of(&ev.code).unwrap_or((Kind::Unknown, Phase::Point)),
                    };
                    let name = match vendor {
                        Some(_) => format!("Vendor code {} ({kind})", ev.code),
                        None => sia::name_of(&ev.code).to_owned(),
                    };
                    let mut d = self.draft(kind, phase, &account, &ev.address, &name, time, &raw);
                    d.data.codes.sia = Some(ev.code.clone());
                    d.data.codes.vendor = vendor.map(|(k, _)| k.clone());
                    out.push(d);
                }
            }
            _ => {}
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn draft(
        &self,
        kind: Kind,
        phase: Phase,
        account: &str,
        zone: &str,
        name: &str,
        time: Option<Timestamp>,
        raw: &Raw,
    ) -> EventDraft {
        let mut d = EventDraft::new(kind, phase, device_id(account), self.adapter.clone());
        d.time = time;
        let zone = meaningful_zone(zone);
        // One spelling per zone (`7`, `007`, `0007` → `007`): the registry and the alert
        // engine's per-component correlation both compare it exactly.
        d.registry_keys = keys::reported(account, zone);
        d.data.device.component = zone.map(keys::zone);
        d.data.test = kind == Kind::Test;
        if kind == Kind::LowBattery {
            d.data.battery = Some(Battery {
                low: Some(phase != Phase::Cleared),
                ..Battery::default()
            });
        }
        let state = match phase {
            Phase::Cleared => " restored",
            _ => "",
        };
        // What happened only: the core appends where (the registry's room, or the device id).
        d.data.message = Some(truncate(format!("{name}{state}")));
        d.data.raw = Some(raw.clone());
        d
    }
}

/// `dc09:<account>`, the device id convention for DC-09 (zone goes in `component`).
pub fn device_id(account: &str) -> String {
    format!("dc09:{account}")
}

/// Zone `000` (or an empty address) means "the panel itself", not a zone.
fn meaningful_zone(zone: &str) -> Option<&str> {
    (!zone.is_empty() && !zone.chars().all(|c| c == '0')).then_some(zone)
}

/// The `[H…]` time of occurrence when present, else the message timestamp.
fn occurrence_time(payload: &Payload) -> Option<Timestamp> {
    payload
        .xdata
        .iter()
        .find(|x| x.id == 'H')
        .and_then(|x| Dc09Time::parse(x.value.as_bytes()))
        .or(payload.timestamp)
        .map(Dc09Time::timestamp)
}

fn shape_of(kind: Kind) -> Shape {
    match kind {
        Kind::Test | Kind::Cancel | Kind::Heartbeat => Shape::Point,
        _ => Shape::Condition,
    }
}

fn point_or(kind: Kind, otherwise: Phase) -> Phase {
    match shape_of(kind) {
        Shape::Point => Phase::Point,
        Shape::Condition => otherwise,
    }
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > MESSAGE_MAX {
        s = s.chars().take(MESSAGE_MAX - 1).collect();
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::Priority;

    fn frame(msg: &[u8]) -> (Header, Payload) {
        let f = Frame::parse_message(msg).unwrap();
        match f.body {
            Body::Clear(p) => (f.header, p),
            Body::Encrypted(_) => panic!("encrypted"),
        }
    }

    fn mapper(vendor: &[(&str, &str)]) -> Mapper {
        let v = vendor
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Mapper::new("alarms", &v)
    }

    #[test]
    fn contact_id_personal_emergency_becomes_a_raised_pendant_press_for_the_zone() {
        let (h, p) = frame(b"\"ADM-CID\"0002L0#1234[#1234|1101 01 003]_12:00:00,06-01-2024");
        let d = mapper(&[]).drafts(&h, &p).unwrap();
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.data.kind, Kind::PendantPress);
        assert_eq!(d.data.phase, Phase::Raised);
        assert_eq!(d.data.priority, Priority::High);
        assert_eq!(d.data.device.id, "dc09:1234");
        assert_eq!(d.data.device.component.as_deref(), Some("003"));
        assert_eq!(d.data.device.adapter, "alarms");
        assert_eq!(d.data.codes.contact_id.as_deref(), Some("101"));
        assert_eq!(d.registry_keys.get("zone").map(String::as_str), Some("003"));
        assert_eq!(d.time, Some("2024-06-01T12:00:00Z".parse().unwrap()));
        assert_eq!(d.data.message.as_deref(), Some("Personal emergency"));
    }

    #[test]
    fn a_zone_is_reported_in_one_form_however_the_frame_writes_it() {
        for (msg, raw_zone) in [
            (&b"\"SIA-DCS\"0001L0#c0ffee[#c0ffee|Nri1MA7]"[..], "7"),
            (b"\"SIA-DCS\"0001L0#c0ffee[#c0ffee|Nri1/MA0007]", "0007"),
            (b"\"ADM-CID\"0001L0#c0ffee[#c0ffee|1101 01 07]", "07"),
            (b"\"ADM-CID\"0001L0#c0ffee[#c0ffee|1101 01 007]", "007"),
        ] {
            let (h, p) = frame(msg);
            let d = &mapper(&[]).drafts(&h, &p).unwrap()[0];
            let key = |k: &str| d.registry_keys.get(k).map(String::as_str);
            assert_eq!(key("zone"), Some("007"), "{raw_zone}");
            assert_eq!(key("account"), Some("C0FFEE"), "{raw_zone}");
            assert_eq!(d.data.device.component.as_deref(), Some("007"));
            // The device id and the raw frame keep what the panel sent.
            assert_eq!(d.data.device.id, "dc09:c0ffee");
            let raw = d.data.raw.as_ref().unwrap().payload.as_str().unwrap();
            assert!(raw.contains(raw_zone), "{raw}");
        }
    }

    #[test]
    fn contact_id_restore_clears_and_test_codes_are_test_events() {
        let (h, p) = frame(b"\"ADM-CID\"0003L0#1234[#1234|3101 01 003]");
        assert_eq!(
            mapper(&[]).drafts(&h, &p).unwrap()[0].data.phase,
            Phase::Cleared
        );
        let (h, p) = frame(b"\"ADM-CID\"0003L0#1234[#1234|1602 00 000]");
        let d = &mapper(&[]).drafts(&h, &p).unwrap()[0];
        assert_eq!(
            (d.data.kind, d.data.phase, d.data.test),
            (Kind::Test, Phase::Point, true)
        );
        assert_eq!(d.data.device.component, None);
    }

    #[test]
    fn vendor_codes_are_applied_only_when_configured_and_keep_the_original_code() {
        let (h, p) = frame(b"\"ADM-CID\"0003L0#1234[#1234|1102 01 004]");
        let plain = &mapper(&[]).drafts(&h, &p).unwrap()[0];
        assert_eq!(plain.data.kind, Kind::Inactivity);
        let vendor = &mapper(&[("1102", "fall")]).drafts(&h, &p).unwrap()[0];
        assert_eq!(vendor.data.kind, Kind::Fall);
        assert_eq!(vendor.data.codes.contact_id.as_deref(), Some("102"));
        assert_eq!(vendor.data.codes.vendor.as_deref(), Some("1102"));
    }

    #[test]
    fn unmapped_codes_are_unknown_with_the_code_kept() {
        let (h, p) = frame(b"\"ADM-CID\"0001L0#7099[#7099|1131 01 003]");
        let d = &mapper(&[]).drafts(&h, &p).unwrap()[0];
        assert_eq!(d.data.kind, Kind::Unknown);
        assert_eq!(d.data.codes.contact_id.as_deref(), Some("131"));
        let (h, p) = frame(b"\"SIA-DCS\"0000L1#080027E62A64[#080027E62A64|NHB0003]");
        let d = &mapper(&[]).drafts(&h, &p).unwrap()[0];
        assert_eq!(
            (d.data.kind, d.data.codes.sia.as_deref()),
            (Kind::Unknown, Some("HB"))
        );
        let d = &mapper(&[("HB", "heartbeat")]).drafts(&h, &p).unwrap()[0];
        assert_eq!((d.data.kind, d.data.phase), (Kind::Heartbeat, Phase::Point));
    }

    #[test]
    fn sia_uses_time_of_occurrence_and_keeps_leading_zeros_in_the_account() {
        let (h, p) = frame(
            b"\"SIA-DCS\"0006R1L2A#00C0FFEE[#00C0FFEE|Nri1/QA002][X002E26.9000][Y51N30.1000][H11:59:58,06-01-2024]_12:00:00,06-01-2024",
        );
        let d = &mapper(&[]).drafts(&h, &p).unwrap()[0];
        assert_eq!(d.data.device.id, "dc09:00C0FFEE");
        assert_eq!(d.data.kind, Kind::PendantPress);
        assert_eq!(d.time, Some("2024-06-01T11:59:58Z".parse().unwrap()));
        assert_eq!(
            d.data.raw.as_ref().unwrap().upstream_id.as_deref(),
            Some("00C0FFEE:0006")
        );
    }

    #[test]
    fn null_frames_carry_no_event() {
        let (h, p) = frame(b"\"NULL\"0005L0#1234[]");
        assert!(mapper(&[]).drafts(&h, &p).unwrap().is_empty());
    }
}
