//! ESPA 4.4.4 through the real binary, over real TCP: a nurse-call control station (written
//! here from legacy.md §4, not from atgw's code) sends a call; it becomes an alert with the
//! registry's room; the alert escalates and atgw pages the senior's handset (its `espa444`
//! contact) on a paging system written here too; the reset clears the alert; a call whose
//! commit cannot happen is not ACKed, and is once it can; and a silent control station raises
//! the gateway's link-down alert, cleared when it speaks again.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const SOH: u8 = 0x01;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const EOT: u8 = 0x04;
const ENQ: u8 = 0x05;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const US: u8 = 0x1F;
const RS: u8 = 0x1E;

/// `SOH 1 STX <records> ETX BCC`, BCC the XOR after SOH through ETX.
fn call_block(records: &[(u8, &str)]) -> Vec<u8> {
    let mut b = vec![SOH, b'1', STX];
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

/// The nurse-call control station (address 1) on a TCP connection to atgw (address 2).
struct Station(TcpStream);

impl Station {
    fn connect(port: u16, gw: &Gateway) -> Station {
        let mut s = None;
        wait_until(Duration::from_secs(20), || {
            s = TcpStream::connect(("127.0.0.1", port)).ok();
            s.is_some()
        })
        .unwrap_or_else(|_| panic!("the espa444 adapter never listened:\n{}", gw.log_text()));
        Station(s.unwrap())
    }

    fn answer(&mut self, within: Duration) -> Option<u8> {
        self.0.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 1];
        match self.0.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    fn select(&mut self) {
        self.0.write_all(&[b'1', ENQ, b'2', ENQ]).unwrap();
        assert_eq!(
            self.answer(Duration::from_secs(5)),
            Some(ACK),
            "select not ACKed"
        );
    }

    fn send(&mut self, block: &[u8]) {
        self.0.write_all(block).unwrap();
    }

    fn eot(&mut self) {
        self.0.write_all(&[EOT]).unwrap();
    }
}

/// One page's records, (id, data), in order.
type Page = Vec<(char, String)>;

/// A paging system (address 2) atgw's sink connects to: ACKs selects and good blocks, keeps
/// the blocks' records.
#[derive(Clone, Default)]
struct Pager {
    pages: Arc<Mutex<Vec<Page>>>,
}

impl Pager {
    fn start() -> (Pager, u16) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Pager::default();
        let pages = p.pages.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let pages = pages.clone();
                std::thread::spawn(move || {
                    let (mut prev, mut block, mut bcc_next) = (0u8, None::<Vec<u8>>, false);
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        for &x in &buf[..n] {
                            if let Some(b) = block.as_mut() {
                                b.push(x);
                                if bcc_next {
                                    let b = block.take().unwrap_or_default();
                                    bcc_next = false;
                                    let good = b[1..b.len() - 1].iter().fold(0u8, |a, y| a ^ y)
                                        == b[b.len() - 1];
                                    if good {
                                        let stx = b.iter().position(|&c| c == STX).unwrap_or(0);
                                        let recs = b[stx + 1..b.len() - 2]
                                            .split(|&c| c == RS)
                                            .filter_map(|r| {
                                                let us = r.iter().position(|&c| c == US)?;
                                                Some((
                                                    char::from(r[0]),
                                                    String::from_utf8_lossy(&r[us + 1..])
                                                        .into_owned(),
                                                ))
                                            })
                                            .collect();
                                        pages.lock().unwrap().push(recs);
                                    }
                                    let _ = s.write_all(&[if good { ACK } else { NAK }]);
                                } else if x == ETX {
                                    bcc_next = true;
                                }
                                continue;
                            }
                            if x == SOH {
                                block = Some(vec![SOH]);
                            } else if x == ENQ && prev == b'2' {
                                let _ = s.write_all(&[ACK]);
                            }
                            prev = x;
                        }
                    }
                });
            }
        });
        (p, port)
    }

    fn pages(&self) -> Vec<Page> {
        self.pages.lock().unwrap().clone()
    }
}

fn gateway_config(dir: &std::path::Path, port: u16, pager_port: u16) -> String {
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[alerts]
link_down_alert_after = "1s"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"

[[sink]]
name = "pagers"
type = "espa444"
connect = "127.0.0.1:{pager_port}"
reset_on_close = true

[[adapter]]
name = "nurse-call"
type = "espa444"
listen = "127.0.0.1:{port}"
link_timeout = "3s"
[[adapter.kinds]]
text = "fall"
kind = "fall"

[[device]]
id = "call-point-12"
adapter = "nurse-call"
match = {{ address = "1234" }}
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
name = "audit-trail"
sinks = ["audit"]

[[route]]
name = "senior"
sinks = ["pagers"]
team = "seniors"

[[policy]]
name = "nurse-calls"
match = {{ kind = ["fall", "assistance_call"] }}
# The reset at the call point is the carer in the room: it closes the call.
clear_on_restore = ["fall", "assistance_call"]
notify = ["audit-trail"]
escalate = [{{ after = "2s", notify = ["senior"] }}]
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        audit = dir.join("events.jsonl").display(),
    )
}

/// Status of the call point's alerts (the gateway's own link alert is another device).
fn alerts(gw: &Gateway) -> Vec<String> {
    gw.column("SELECT status FROM alerts WHERE device_id = 'call-point-12' ORDER BY rowid")
}

fn link_alerts(gw: &Gateway) -> Vec<String> {
    gw.column(
        "SELECT phase FROM events WHERE device_id = 'gateway:gw-test:link:nurse-call'
           AND kind = 'device_fault' AND json_extract(json, '$.type') NOT LIKE 'atgw.alert.%'
           ORDER BY seq",
    )
}

#[test]
fn a_call_becomes_an_alert_pages_the_senior_on_escalation_and_its_reset_clears_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (pager, pager_port) = Pager::start();
    let port = free_tcp_udp_port();
    let gw = Gateway::start(tmp.path(), &gateway_config(tmp.path(), port, pager_port));
    let mut st = Station::connect(port, &gw);

    st.select();
    st.send(&call_block(&[
        (b'1', "1234"),
        (b'2', "Fall Bed 1"),
        (b'4', "3"),
        (b'6', "1"),
    ]));
    assert_eq!(
        st.answer(Duration::from_secs(10)),
        Some(ACK),
        "{}",
        gw.log_text()
    );
    st.eot();
    let rows: Vec<String> = gw.column(
        "SELECT kind || ' ' || phase || ' ' || priority || ' ' || json_extract(json, '$.data.location.room')
           FROM events WHERE device_id = 'call-point-12' AND json_extract(json, '$.type') NOT LIKE 'atgw.alert.%' ORDER BY seq",
    );
    assert_eq!(rows, ["fall raised high 12"]);
    wait_until(Duration::from_secs(5), || alerts(&gw) == ["open"])
        .unwrap_or_else(|_| panic!("no open alert: {:?}\n{}", alerts(&gw), gw.log_text()));

    // Not acknowledged within 2 s: the senior's handset (her espa444 contact) is paged.
    wait_until(Duration::from_secs(15), || !pager.pages().is_empty())
        .unwrap_or_else(|_| panic!("the senior was not paged:\n{}", gw.log_text()));
    let page = &pager.pages()[0];
    let get = |id: char| page.iter().find(|(i, _)| *i == id).map(|(_, d)| d.clone());
    assert_eq!(get('1').as_deref(), Some("4711"), "{page:?}");
    // Room first, what happened, then the nurse-call's own words, within 32 characters.
    assert_eq!(get('2').as_deref(), Some("Room 12 Fall ESCALATED Fall Bed"));
    assert_eq!(get('6').as_deref(), Some("1"));

    // The nurse-call system resets the call: the alert clears.
    st.select();
    st.send(&call_block(&[(b'1', "1234"), (b'4', "1")]));
    assert_eq!(st.answer(Duration::from_secs(10)), Some(ACK));
    st.eot();
    let rows: Vec<String> =
        gw.column("SELECT kind || ' ' || phase FROM events WHERE device_id = 'call-point-12' AND json_extract(json, '$.type') NOT LIKE 'atgw.alert.%' ORDER BY seq");
    assert_eq!(rows, ["fall raised", "fall cleared"]);
    wait_until(Duration::from_secs(5), || alerts(&gw) == ["cleared"]).unwrap_or_else(|_| {
        panic!(
            "the reset did not clear the alert: {:?}\n{}",
            alerts(&gw),
            gw.log_text()
        )
    });
    // The cleared alert takes the page off the senior's handset (`reset_on_close`).
    wait_until(Duration::from_secs(10), || pager.pages().len() == 2)
        .unwrap_or_else(|_| panic!("no reset page: {:?}\n{}", pager.pages(), gw.log_text()));
    assert_eq!(
        pager.pages()[1],
        [('1', "4711".to_owned()), ('4', "1".to_owned())]
    );

    // A bad BCC: NAK, and a dead letter with the raw bytes.
    st.select();
    let mut bad = call_block(&[(b'1', "1234"), (b'2', "Call")]);
    let last = bad.len() - 1;
    bad[last] ^= 0x08;
    st.send(&bad);
    assert_eq!(st.answer(Duration::from_secs(10)), Some(NAK));
    st.eot();
    let raw: Vec<Vec<u8>> = gw.column("SELECT raw FROM dead_letters WHERE reason = 'bad_bcc'");
    assert_eq!(raw, [bad]);
}

#[test]
fn a_call_is_not_acked_while_the_journal_cannot_commit_and_is_once_it_can() {
    let tmp = tempfile::tempdir().unwrap();
    let (_pager, pager_port) = Pager::start();
    let port = free_tcp_udp_port();
    let gw = Gateway::start(tmp.path(), &gateway_config(tmp.path(), port, pager_port));
    let mut st = Station::connect(port, &gw);
    st.select();
    // Nothing else can write while the test holds SQLite's write lock.
    let lock = rusqlite::Connection::open(gw.dir.join("state/atgw.db")).unwrap();
    lock.busy_timeout(Duration::from_secs(10)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let call = call_block(&[(b'1', "1234"), (b'2', "Assistance Room 12")]);
    st.send(&call);
    let held = st.answer(Duration::from_secs(4));
    assert_ne!(held, Some(ACK), "ACKed while the journal could not commit");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // A NAK (the commit failed) makes the control station send the block again; an answer
    // still pending arrives once the commit went through.
    let mut answer = held;
    for _ in 0..5 {
        match answer {
            Some(ACK) => break,
            Some(NAK) => {
                st.send(&call);
                answer = st.answer(Duration::from_secs(10));
            }
            _ => answer = st.answer(Duration::from_secs(10)),
        }
    }
    assert_eq!(answer, Some(ACK), "{}", gw.log_text());
    let n: Vec<i64> = gw.column("SELECT COUNT(*) FROM events WHERE device_id = 'call-point-12' AND json_extract(json, '$.type') NOT LIKE 'atgw.alert.%'");
    assert_eq!(n, [1], "journaled exactly once");
}

#[test]
fn a_silent_control_station_raises_the_link_down_alert_and_clears_it_when_it_speaks() {
    let tmp = tempfile::tempdir().unwrap();
    let (_pager, pager_port) = Pager::start();
    let port = free_tcp_udp_port();
    let gw = Gateway::start(tmp.path(), &gateway_config(tmp.path(), port, pager_port));
    let mut st = Station::connect(port, &gw);
    st.select();
    st.eot();
    // link_timeout 3 s, then link_down_alert_after 1 s.
    wait_until(Duration::from_secs(15), || link_alerts(&gw) == ["raised"]).unwrap_or_else(|_| {
        panic!(
            "no link-down alert: {:?}\n{}",
            link_alerts(&gw),
            gw.log_text()
        )
    });
    st.select();
    st.eot();
    wait_until(Duration::from_secs(10), || {
        link_alerts(&gw) == ["raised", "cleared"]
    })
    .unwrap_or_else(|_| {
        panic!(
            "the link-down alert did not clear: {:?}\n{}",
            link_alerts(&gw),
            gw.log_text()
        )
    });
}

#[test]
fn the_simulators_send_calls_to_the_gateway_and_print_its_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let pager_port = free_tcp_udp_port();
    let mut pager = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args([
            "simulate", "espa", "--role", "pager", "--count", "1", "--listen",
        ])
        .arg(format!("127.0.0.1:{pager_port}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let port = free_tcp_udp_port();
    let gw = Gateway::start(tmp.path(), &gateway_config(tmp.path(), port, pager_port));
    wait_until(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .unwrap_or_else(|_| panic!("the adapter never listened:\n{}", gw.log_text()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["simulate", "espa", "--connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "--address",
            "1234",
            "--text",
            "Fall Bed 1",
            "--priority",
            "1",
            "--count",
            "3",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", gw.log_text());
    assert!(
        said.starts_with("sent 3 acked 3 nak 0 timeouts 0"),
        "{said}"
    );
    // Escalation after 2 s pages the senior; the pager prints it and exits.
    let mut printed = String::new();
    std::io::BufReader::new(pager.stdout.take().unwrap())
        .read_to_string(&mut printed)
        .unwrap();
    assert!(pager.wait().unwrap().success());
    assert_eq!(
        printed.trim(),
        "page 4711 priority 1: Room 12 Fall ESCALATED Fall Bed"
    );
}
