//! The paging side of ESPA 4.4.4 through the real binary: a fall radar publishes over MQTT to a
//! private Mosquitto, the policy escalates to the senior tier, and atgw pages the senior's DECT
//! handset on a paging system written here from legacy.md §4 (not from atgw's code); the
//! acknowledgement over the API sends the reset. The paging system answers atgw's polls with
//! header 2 status blocks (paged, absent, acknowledged by called party), which land in the
//! alert's history, and, when the site says so, acknowledge the alert.

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

const SOH: u8 = 0x01;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const EOT: u8 = 0x04;
const ENQ: u8 = 0x05;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const US: u8 = 0x1F;
const RS: u8 = 0x1E;

const RADAR: &str = "0xdc8e95fffe4dc3dd";

/// `SOH <header> STX <records> ETX BCC`, BCC the XOR after SOH through ETX.
fn block(header: u8, records: &[(u8, &str)]) -> Vec<u8> {
    let mut b = vec![SOH, header, STX];
    for (i, (id, data)) in records.iter().enumerate() {
        if i > 0 {
            b.push(RS);
        }
        b.push(*id);
        b.push(US);
        b.extend_from_slice(data.as_bytes());
    }
    b.push(ETX);
    let bcc = b[1..].iter().fold(0u8, |a, x| a ^ x);
    b.push(bcc);
    b
}

/// One page's records, (id, data), in order.
type Page = Vec<(char, String)>;

/// A status report: (call address, record 7).
type Report = (String, String);

/// The paging system (station 2). Selected by `1 ENQ 2 ENQ`, it ACKs good blocks and keeps
/// their records. Polled (`2 ENQ` without the control station's announcement), it selects the
/// control station (`1 ENQ`) when it has a status report queued, sends it as a header 2 block
/// once ACKed, and ends with EOT; with nothing to report it answers EOT.
#[derive(Clone, Default)]
struct Pager {
    pages: Arc<Mutex<Vec<Page>>>,
    queued: Arc<Mutex<VecDeque<Report>>>,
    /// Reports the control station ACKed.
    reported: Arc<Mutex<Vec<Report>>>,
}

enum Link {
    Idle,
    /// We selected the control station with this report to send.
    Selecting(Report),
    /// The report's block is out; its ACK is awaited.
    Sent(Report, Vec<u8>, u32),
}

impl Pager {
    fn start() -> (Pager, u16) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Pager::default();
        let me = p.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let me = me.clone();
                std::thread::spawn(move || me.serve(s));
            }
        });
        (p, port)
    }

    fn serve(&self, mut s: std::net::TcpStream) {
        let (mut prev, mut announced) = (0u8, false);
        let (mut inblock, mut bcc_next) = (None::<Vec<u8>>, false);
        let mut link = Link::Idle;
        let mut buf = [0u8; 256];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                return;
            }
            for &x in &buf[..n] {
                if let Some(b) = inblock.as_mut() {
                    b.push(x);
                    if bcc_next {
                        let b = inblock.take().unwrap_or_default();
                        bcc_next = false;
                        let good =
                            b[1..b.len() - 1].iter().fold(0u8, |a, y| a ^ y) == b[b.len() - 1];
                        if good {
                            let stx = b.iter().position(|&c| c == STX).unwrap_or(0);
                            let recs = b[stx + 1..b.len() - 2]
                                .split(|&c| c == RS)
                                .filter_map(|r| {
                                    let us = r.iter().position(|&c| c == US)?;
                                    Some((
                                        char::from(r[0]),
                                        String::from_utf8_lossy(&r[us + 1..]).into_owned(),
                                    ))
                                })
                                .collect();
                            self.pages.lock().unwrap().push(recs);
                        }
                        let _ = s.write_all(&[if good { ACK } else { NAK }]);
                    } else if x == ETX {
                        bcc_next = true;
                    }
                    continue;
                }
                match x {
                    SOH => inblock = Some(vec![SOH]),
                    ENQ if prev == b'1' => announced = true,
                    ENQ if prev == b'2' && announced => {
                        announced = false;
                        let _ = s.write_all(&[ACK]);
                    }
                    ENQ if prev == b'2' => {
                        // A poll: report, or nothing to send.
                        match self.queued.lock().unwrap().pop_front() {
                            Some(r) => {
                                let _ = s.write_all(&[b'1', ENQ]);
                                link = Link::Selecting(r);
                            }
                            None => {
                                let _ = s.write_all(&[EOT]);
                            }
                        }
                    }
                    ACK => {
                        link = match std::mem::replace(&mut link, Link::Idle) {
                            Link::Selecting(r) => {
                                let b = block(b'2', &[(b'1', &r.0), (b'7', &r.1)]);
                                let _ = s.write_all(&b);
                                Link::Sent(r, b, 1)
                            }
                            Link::Sent(r, _, _) => {
                                self.reported.lock().unwrap().push(r);
                                let _ = s.write_all(&[EOT]);
                                Link::Idle
                            }
                            Link::Idle => Link::Idle,
                        }
                    }
                    NAK => {
                        link = match std::mem::replace(&mut link, Link::Idle) {
                            Link::Sent(r, b, n) if n < 4 => {
                                let _ = s.write_all(&b);
                                Link::Sent(r, b, n + 1)
                            }
                            _ => {
                                let _ = s.write_all(&[EOT]);
                                Link::Idle
                            }
                        }
                    }
                    EOT => announced = false,
                    _ => {}
                }
                prev = x;
            }
        }
    }

    fn pages(&self) -> Vec<Page> {
        self.pages.lock().unwrap().clone()
    }

    fn report(&self, address: &str, status: &str) {
        self.queued
            .lock()
            .unwrap()
            .push_back((address.into(), status.into()));
    }

    fn reported(&self) -> usize {
        self.reported.lock().unwrap().len()
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    _broker: Mosquitto,
    gw: Gateway,
    pager: Pager,
    api: String,
    token: String,
    radar: Publisher,
}

async fn rig(ack_on_called_party: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let (pager, pager_port) = Pager::start();
    let (api_cfg, api, token) = api_block(dir.path());
    let extra = format!(
        r#"{api_cfg}
[[sink]]
name = "dect"
type = "espa444"
connect = "127.0.0.1:{pager_port}"
reset_on_close = true
poll_interval = "200ms"
ack_on_called_party = {ack_on_called_party}

[[device]]
id = "radar-12"
adapter = "zigbee"
match = {{ device = "{RADAR}" }}
resident = "res-0012"
location = {{ area = "West wing", room = "12" }}

[[person]]
name = "Sam"
role = "senior"
contact = {{ espa444 = "4711" }}

[[team]]
name = "seniors"
manager = "Sam"

[[route]]
name = "carers"
sinks = ["audit"]

[[route]]
name = "senior"
sinks = ["dect"]
team = "seniors"

[[policy]]
name = "falls"
match = {{ kind = ["fall"] }}
notify = ["carers"]
escalate = [{{ after = "2s", notify = ["senior"] }}]
"#
    );
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &extra));
    gw.wait_subscribed().await;
    let radar = Publisher::connect(broker.port, "radar-12-sim").await;
    Rig {
        _dir: dir,
        _broker: broker,
        gw,
        pager,
        api,
        token,
        radar,
    }
}

impl Rig {
    /// The radar reports a fall; returns the alert's id once it is open.
    async fn fall(&self) -> String {
        let payload = json!({"presence": true, "occupancy": true, "fall_down_status": "fall",
            "motion_direction": "standing_still", "motion_speed": 0, "linkquality": 120});
        self.radar
            .send(&format!("zigbee2mqtt/{RADAR}"), payload.to_string())
            .await;
        let mut id = Vec::new();
        wait_until_async(Duration::from_secs(15), || {
            id = self.gw.column("SELECT id FROM alerts WHERE kind = 'fall'");
            !id.is_empty()
        })
        .await
        .unwrap_or_else(|_| panic!("no fall alert:\n{}", self.gw.log_text()));
        id.remove(0)
    }

    /// The first page, once the escalation sent it.
    async fn first_page(&self) -> Page {
        wait_until_async(Duration::from_secs(20), || !self.pager.pages().is_empty())
            .await
            .unwrap_or_else(|_| panic!("the senior was not paged:\n{}", self.gw.log_text()));
        self.pager.pages()[0].clone()
    }

    async fn ack(&self, id: &str) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::Client::new()
            .post(format!("{}/alerts/{id}/ack", self.api))
            .bearer_auth(&self.token)
            .json(&json!({"by": "carer-3"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "ack refused: {}", r.status());
    }

    /// The alert's status notes, (by, note), in order.
    fn notes(&self, id: &str) -> Vec<(String, String)> {
        let c = self.gw.journal();
        let mut s = c
            .prepare(
                "SELECT json_extract(json, '$.data.alert.by'), json_extract(json, '$.data.alert.note')
                   FROM events WHERE correlation_id = ?1 AND json_extract(json, '$.data.alert.reason') = 'status'
                   ORDER BY seq",
            )
            .unwrap();
        s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn status(&self, id: &str) -> (String, Option<String>) {
        let c = self.gw.journal();
        c.query_row(
            "SELECT status, acked_by FROM alerts WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }
}

fn record(page: &Page, id: char) -> Option<String> {
    page.iter().find(|(i, _)| *i == id).map(|(_, d)| d.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escalated_fall_radar_alert_pages_the_seniors_handset_with_the_room_and_the_ack_sends_the_reset()
 {
    let rig = rig(false).await;
    let id = rig.fall().await;

    // Not acknowledged within 2 s: the senior tier, Sam's DECT handset 4711.
    let page = rig.first_page().await;
    assert_eq!(record(&page, '1').as_deref(), Some("4711"), "{page:?}");
    let text = record(&page, '2').unwrap_or_default();
    assert!(text.starts_with("Room 12 Fall"), "{text:?}");
    assert!(text.contains("ESCALATED"), "{text:?}");
    assert_eq!(
        record(&page, '6').as_deref(),
        Some("1"),
        "high: alarm priority"
    );
    assert_eq!(record(&page, '4').as_deref(), Some("3"), "a standard call");

    rig.ack(&id).await;
    wait_until_async(Duration::from_secs(15), || rig.pager.pages().len() >= 2)
        .await
        .unwrap_or_else(|_| panic!("no reset: {:?}\n{}", rig.pager.pages(), rig.gw.log_text()));
    assert_eq!(
        rig.pager.pages()[1],
        [('1', "4711".to_owned()), ('4', "1".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_replies_are_journaled_against_the_alert_and_do_not_acknowledge_it_by_default() {
    let rig = rig(false).await;
    let id = rig.fall().await;
    rig.first_page().await;

    rig.pager.report("4711", "3");
    rig.pager.report("4711", "4");
    rig.pager.report("4711", "6");
    // A report about a call address atgw never paged is ACKed and recorded nowhere.
    rig.pager.report("9999", "3");
    wait_until_async(Duration::from_secs(15), || rig.pager.reported() == 4)
        .await
        .unwrap_or_else(|_| panic!("reports not ACKed:\n{}", rig.gw.log_text()));
    let by = "handset 4711".to_owned();
    assert_eq!(
        rig.notes(&id),
        [
            (by.clone(), "Paged, handset 4711".to_owned()),
            (
                by.clone(),
                "Handset ABSENT (not reached), handset 4711".to_owned()
            ),
            (
                by.clone(),
                "Acknowledged on the handset, handset 4711".to_owned()
            ),
        ]
    );
    assert_eq!(rig.status(&id), ("open".to_owned(), None));
    // A note pages nobody: only the escalation's page reached the handset.
    assert_eq!(rig.pager.pages().len(), 1, "{:?}", rig.pager.pages());
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_by_called_party_acknowledges_the_alert_when_the_site_enables_it() {
    let rig = rig(true).await;
    let id = rig.fall().await;
    rig.first_page().await;

    rig.pager.report("4711", "6");
    wait_until_async(Duration::from_secs(15), || {
        rig.status(&id).0 == "acknowledged"
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not acknowledged: {:?}\n{}",
            rig.status(&id),
            rig.gw.log_text()
        )
    });
    assert_eq!(rig.status(&id).1.as_deref(), Some("handset 4711"));
    assert_eq!(rig.pager.reported(), 1);
    // The acknowledgement takes the page off the handset (`reset_on_close`).
    wait_until_async(Duration::from_secs(15), || rig.pager.pages().len() >= 2)
        .await
        .unwrap_or_else(|_| panic!("no reset: {:?}\n{}", rig.pager.pages(), rig.gw.log_text()));
    assert_eq!(
        rig.pager.pages()[1],
        [('1', "4711".to_owned()), ('4', "1".to_owned())]
    );
}
