//! A decoded `<mrq>` → atgw's vocabulary: device types (SS 91100 Annex A) give the kind of an
//! alarm, status codes (Annex C) its phase or a technical kind, location codes (Annex D) the
//! `location.zone`, and the original codes stay in `codes.scaip` (`dty=0005;stc=0009;lco=011`,
//! zero-padded to the standard's widths whatever the unit wrote).
//!
//! What `mty` does: `ME` as the codes say; `IN` (new information about the same `ref`) raises
//! the same condition again, so the open alert takes the update (a repeat, or an upgrade when
//! the priority rose); `RE` (reset) clears the condition the `ref` raised; `PI` is a heartbeat
//! and becomes no event, only a supervision check-in.

use std::collections::BTreeMap;

use atgw_sdk::event::{Confidence, Raw};
use atgw_sdk::{EventDraft, Kind, Phase, Priority};

use crate::codec::{MessageType, Request};

/// `raw.protocol` of every SCAIP event.
pub const PROTOCOL: &str = "scaip";
/// Registry keys an event carries: the controller id, and the device id and component when
/// the unit sends them.
pub const KEY_CID: &str = "cid";
pub const KEY_DID: &str = "did";
pub const KEY_DCO: &str = "dco";
/// `message` is at most this long (schema v1).
const MESSAGE_MAX: usize = 160;

/// The kind an alarm from a device type is (Annex A). Types not listed are `unknown`, which
/// still reaches a person when raised (see DESIGN §6, "an alarm always reaches a person").
pub fn device_kind(dty: u16) -> Kind {
    match dty {
        2 | 45 | 48 => Kind::AssistanceCall, // local unit / controller: its own button
        3 | 6 | 7 | 51 => Kind::PendantPress, // pendant, attack pendant, panic button, tracker
        4 => Kind::AssistanceCall,           // fixed trigger (pull cord)
        5 | 30 => Kind::Fall,                // fall detector, man-down
        10 => Kind::Inactivity,
        11 => Kind::Medical, // pill dispenser
        12 | 13 => Kind::BedExit,
        14 | 15 => Kind::DoorExit, // door, wandering
        16 => Kind::Enuresis,
        17 => Kind::Seizure,
        19 => Kind::HeartRateAbnormal,
        20 => Kind::TemperatureExtreme,
        21 => Kind::Gas,
        23 | 25 => Kind::Smoke, // smoke, heat: "smoke" is any fire alarm
        26 => Kind::Co,
        27 => Kind::AssistanceCall, // bogus-caller switch
        31 | 32 => Kind::DeviceFault,
        33 | 34 => Kind::WaterLeak, // flood, bath
        41 => Kind::PowerFault,
        44 => Kind::ChairExit,
        _ => Kind::Unknown,
    }
}

/// What a status code means: the device type's own alarm raised or restored, a technical
/// condition, or a point event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The device's alarm (its type's kind) raised; `manual` when a person pressed it.
    Alarm {
        manual: bool,
    },
    /// The device's condition is back to normal (restoral, normal state, reset, check-out).
    Restored,
    /// Another kind, raised or cleared.
    Condition(Kind, Phase),
    /// The resident (or unit) cancelled the call.
    Cancel,
    Test,
    /// Information only (presence, movement, privacy switch): journaled, pages nobody.
    Info,
}

/// Annex C. A code not listed (vendor-private 0900–0999 among them) is taken as the device's
/// alarm, suspected: a code we cannot read from an alarm device must not be dropped.
pub fn status(stc: Option<u16>) -> (Status, bool) {
    use Kind::*;
    let known = |s| (s, true);
    match stc {
        None | Some(9) => known(Status::Alarm { manual: false }),
        Some(10) => known(Status::Alarm { manual: true }),
        Some(110) => known(Status::Condition(AssistanceCall, Phase::Raised)),
        Some(2 | 19) => known(Status::Cancel),
        Some(70 | 92 | 93 | 94 | 111) => known(Status::Restored),
        Some(14 | 16) => known(Status::Condition(LowBattery, Phase::Raised)),
        Some(15) => known(Status::Condition(LowBattery, Phase::Cleared)),
        Some(23..=27 | 42 | 63 | 65 | 66 | 67 | 105 | 122) => {
            known(Status::Condition(DeviceFault, Phase::Raised))
        }
        Some(112..=116) => known(Status::Condition(DeviceFault, Phase::Cleared)),
        Some(85) => known(Status::Condition(PowerFault, Phase::Raised)),
        Some(86) => known(Status::Condition(PowerFault, Phase::Cleared)),
        Some(100 | 101) => known(Status::Condition(TemperatureExtreme, Phase::Raised)),
        Some(81) => known(Status::Condition(Medical, Phase::Raised)),
        Some(83) => known(Status::Condition(Medical, Phase::Cleared)),
        Some(123) => known(Status::Condition(DeviceOffline, Phase::Raised)),
        Some(124) => known(Status::Condition(DeviceOffline, Phase::Cleared)),
        Some(125) => known(Status::Condition(Tamper, Phase::Raised)),
        Some(102 | 103) => known(Status::Test),
        Some(3 | 82 | 87 | 88 | 89 | 104 | 117 | 119 | 121) => known(Status::Info),
        Some(_) => (Status::Alarm { manual: false }, false),
    }
}

/// Annex D location codes we name; others are written `location <code>`.
pub fn location_name(lco: u16) -> String {
    match lco {
        11 => "bathroom".into(),
        12 => "bedroom".into(),
        21 => "kitchen".into(),
        34 | 35 => "position attached".into(),
        42 => "hallway".into(),
        43 => "living room".into(),
        47 => "communal area".into(),
        49 => "room".into(),
        51 => "ward".into(),
        52 => "wing".into(),
        other => format!("location {other:03}"),
    }
}

/// `codes.scaip`: the codes as the standard writes them.
pub fn codes(req: &Request) -> String {
    let mut out = format!("dty={:04}", req.dty);
    if let Some(s) = req.stc {
        out.push_str(&format!(";stc={s:04}"));
    }
    if let Some(l) = req.lco {
        out.push_str(&format!(";lco={l:03}"));
    }
    if let Some(d) = req.dco {
        out.push_str(&format!(";dco={d:03}"));
    }
    out
}

/// The device id an unregistered unit's events carry: `scaip:<cid>`.
pub fn device_id(cid: &str) -> String {
    format!("scaip:{cid}")
}

/// The registry keys of a request: `cid`, and `did`/`dco` when sent (`dco` as three digits).
pub fn registry_keys(req: &Request) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::from([(KEY_CID.to_owned(), req.cid.clone())]);
    if let Some(d) = &req.did {
        keys.insert(KEY_DID.into(), d.clone());
    }
    if let Some(c) = req.dco {
        keys.insert(KEY_DCO.into(), format!("{c:03}"));
    }
    keys
}

/// The event one request becomes; `None` for a heartbeat.
pub fn draft(req: &Request, adapter: &str) -> Option<EventDraft> {
    if req.mty == MessageType::Heartbeat {
        return None;
    }
    let device_kind = device_kind(req.dty);
    let (status, known) = status(req.stc);
    let (kind, mut phase) = match status {
        Status::Alarm { .. } => (device_kind, Phase::Raised),
        Status::Restored => (device_kind, Phase::Cleared),
        Status::Condition(k, p) => (k, p),
        Status::Cancel => (Kind::Cancel, Phase::Point),
        Status::Test => (Kind::Test, Phase::Point),
        Status::Info => (Kind::Unknown, Phase::Point),
    };
    // A reset ends what the ref raised; a point event has nothing to clear.
    if req.mty == MessageType::Reset && phase == Phase::Raised {
        phase = Phase::Cleared;
    }
    let mut d = EventDraft::new(kind, phase, device_id(&req.cid), adapter);
    d.data.test = status == Status::Test;
    if status == Status::Info {
        d.data.priority = Priority::Info;
    }
    // `pri` 7–9 makes it high; a low `pri` never demotes a kind (a fall stays high).
    if req.pri.is_some_and(|p| p >= 7) && phase == Phase::Raised {
        d.data.priority = Priority::High;
    }
    d.data.confidence = match status {
        Status::Alarm { manual: true } => Some(Confidence::Confirmed),
        Status::Alarm { .. } if !known => Some(Confidence::Suspected),
        _ => None,
    };
    d.data.device.component = req.did.clone();
    d.data.location.zone = req.lco.map(location_name);
    d.data.codes.scaip = Some(codes(req));
    d.data.message = Some(message(req, kind, phase, known));
    d.data.raw = Some(Raw {
        protocol: PROTOCOL.into(),
        topic: None,
        path: None,
        payload: serde_json::Value::String(req.encode()),
        upstream_id: Some(req.reference.clone()),
    });
    d.registry_keys = registry_keys(req);
    Some(d)
}

fn message(req: &Request, kind: Kind, phase: Phase, known: bool) -> String {
    let mut s = kind.label().to_owned();
    match (req.mty, phase) {
        (MessageType::Reset, _) => s.push_str(" reset by the unit"),
        (MessageType::Information, _) => s.push_str(" (update)"),
        (_, Phase::Cleared) => s.push_str(" restored"),
        _ => {}
    }
    if !known && let Some(stc) = req.stc {
        s.push_str(&format!(" (status {stc:04} unknown)"));
    }
    if let Some(t) = req.stt.as_deref().or(req.dte.as_deref()) {
        s.push_str(": ");
        s.push_str(t);
    }
    if s.chars().count() > MESSAGE_MAX {
        s = s.chars().take(MESSAGE_MAX - 1).collect();
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Request {
        Request::decode(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_fall_detector_alarm_in_the_bathroom_is_a_high_fall_with_its_codes() {
        let d = draft(
            &req("<mrq><ref>1242</ref><cid>678</cid><dty>5</dty><stc>9</stc><lco>11</lco></mrq>"),
            "units",
        )
        .unwrap();
        assert_eq!((d.data.kind, d.data.phase), (Kind::Fall, Phase::Raised));
        assert_eq!(d.data.priority, Priority::High);
        assert_eq!(d.data.location.zone.as_deref(), Some("bathroom"));
        assert_eq!(
            d.data.codes.scaip.as_deref(),
            Some("dty=0005;stc=0009;lco=011")
        );
        assert_eq!(d.registry_keys[KEY_CID], "678");
        assert_eq!(d.data.device.id, "scaip:678");
    }

    #[test]
    fn status_codes_choose_the_kind_and_phase() {
        let k = |b: &str| {
            let d = draft(&req(b), "u").unwrap();
            (d.data.kind, d.data.phase)
        };
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>27</dty><stc>16</stc></mrq>"),
            (Kind::LowBattery, Phase::Raised)
        );
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>2</dty><stc>102</stc></mrq>"),
            (Kind::Test, Phase::Point)
        );
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>3</dty></mrq>"),
            (Kind::PendantPress, Phase::Raised)
        );
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>3</dty><mty>RE</mty></mrq>"),
            (Kind::PendantPress, Phase::Cleared)
        );
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>23</dty><stc>94</stc></mrq>"),
            (Kind::Smoke, Phase::Cleared)
        );
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>2</dty><stc>85</stc></mrq>"),
            (Kind::PowerFault, Phase::Raised)
        );
        assert_eq!(
            k("<mrq><ref>1</ref><cid>1</cid><dty>3</dty><stc>19</stc></mrq>"),
            (Kind::Cancel, Phase::Point)
        );
        let vendor = draft(
            &req("<mrq><ref>1</ref><cid>1</cid><dty>5</dty><stc>950</stc></mrq>"),
            "u",
        )
        .unwrap();
        assert_eq!(
            (vendor.data.kind, vendor.data.confidence),
            (Kind::Fall, Some(Confidence::Suspected))
        );
        assert!(vendor.data.message.unwrap().contains("0950 unknown"));
    }

    #[test]
    fn a_heartbeat_is_no_event() {
        assert!(
            draft(
                &req("<mrq><ref>1</ref><mty>PI</mty><cid>1</cid><dty>2</dty></mrq>"),
                "u"
            )
            .is_none()
        );
    }

    #[test]
    fn a_high_pri_raises_priority_and_a_low_one_never_lowers_it() {
        let d = draft(
            &req("<mrq><ref>1</ref><cid>1</cid><dty>14</dty><pri>9</pri></mrq>"),
            "u",
        )
        .unwrap();
        assert_eq!(d.data.priority, Priority::High);
        let d = draft(
            &req("<mrq><ref>1</ref><cid>1</cid><dty>5</dty><pri>0</pri></mrq>"),
            "u",
        )
        .unwrap();
        assert_eq!(d.data.priority, Priority::High);
    }
}
