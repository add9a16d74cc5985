//! The nurse-call adapter over a real serial line (a socat pty pair), driven by a control
//! station written from the spec: commit first, then ACK; NAK and a dead letter for a bad BCC;
//! noise between blocks does not desynchronise the link; silence marks the link down.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_espa444::EspaAdapter;
use atgw_espa444::config::{AdapterConfig, Parity, Serial, Transport};
use atgw_sdk::component::{Adapter, AdapterContext, Site};
use atgw_sdk::ingest::{self, IngestRequest};
use atgw_sdk::{Committed, DeadLetter, Health, IngestError, Shutdown, Submission};
use common::*;

/// A stand-in journal behind the real `Ingest` channel: commits (or fails, while `failing`)
/// and remembers what it was given.
#[derive(Clone, Default)]
struct Journal {
    failing: Arc<Mutex<bool>>,
    committed: Arc<Mutex<Vec<Submission>>>,
    failed: Arc<Mutex<usize>>,
    letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl Journal {
    fn serve(&self, mut rx: ingest::IngestReceiver) {
        let j = self.clone();
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                match req {
                    IngestRequest::Submit {
                        submissions, reply, ..
                    } => {
                        if *j.failing.lock().unwrap() {
                            *j.failed.lock().unwrap() += 1;
                            let _ =
                                reply.send(Err(IngestError::Storage("disk full (test)".into())));
                        } else {
                            let out = submissions
                                .iter()
                                .map(|_| Committed::Stored {
                                    ids: vec!["e".into()],
                                })
                                .collect();
                            j.committed.lock().unwrap().extend(submissions);
                            let _ = reply.send(Ok(out));
                        }
                    }
                    IngestRequest::Reject { letter, reply, .. } => {
                        j.letters.lock().unwrap().push(letter);
                        let _ = reply.send(Ok(()));
                    }
                    IngestRequest::LoadState { reply, .. } => {
                        let _ = reply.send(Ok(Vec::new()));
                    }
                }
            }
        });
    }
}

struct Running {
    journal: Journal,
    health: Arc<Health>,
    shutdown: Shutdown,
    _pty: PtyPair,
    station: ControlStation<atgw_espa444::serial::SerialPort>,
}

async fn start(link_timeout: Duration) -> Running {
    let pty = PtyPair::start();
    let mut config = AdapterConfig::new(
        "nurse-call",
        Transport {
            serial: Some(Serial {
                device: pty.a.clone(),
                baud: 9600,
                data_bits: 8,
                parity: Parity::None,
                stop_bits: 1,
            }),
            ..Transport::default()
        },
    );
    config.link_timeout = link_timeout;
    let site = Site {
        gateway_id: "gw".into(),
        profiles_dir: std::env::temp_dir(),
        timezone: jiff::tz::TimeZone::UTC,
        fhir: Default::default(),
    };
    let (tx, rx) = ingest::channel(16);
    let journal = Journal::default();
    journal.serve(rx);
    let health = Arc::new(Health::default());
    let shutdown = Shutdown::new();
    let ctx = AdapterContext {
        site: site.clone(),
        ingest: tx.for_adapter("nurse-call"),
        health: health.clone(),
        clock: Arc::new(atgw_sdk::clock::SystemClock),
        shutdown: shutdown.clone(),
    };
    let task = EspaAdapter::check(&config, &site)
        .unwrap()
        .start(ctx)
        .await
        .unwrap();
    tokio::spawn(task);
    let station = ControlStation {
        io: open_tty(&pty.b),
    };
    Running {
        journal,
        health,
        shutdown,
        _pty: pty,
        station,
    }
}

const WAIT: Duration = Duration::from_secs(3);

fn room(n: u32) -> Vec<u8> {
    call_block(&[
        (b'1', format!("{}", 1200 + n).as_bytes()),
        (b'2', format!("Room {n}").as_bytes()),
        (b'6', b"1"),
    ])
}

#[tokio::test]
async fn a_call_is_acked_only_after_commit_and_a_failed_commit_is_naked_then_retried() {
    let mut r = start(Duration::from_secs(60)).await;
    *r.journal.failing.lock().unwrap() = true;
    assert_eq!(
        r.station.send(&room(1), WAIT).await,
        Some(NAK),
        "a call whose commit failed must hear NAK"
    );
    assert_eq!(*r.journal.failed.lock().unwrap(), 1);
    assert!(r.journal.committed.lock().unwrap().is_empty());
    *r.journal.failing.lock().unwrap() = false;
    // The control station retransmits the same block, still selected.
    r.station.write(&room(1)).await;
    assert_eq!(r.station.answer(WAIT).await, Some(ACK));
    r.station.eot().await;
    let committed = r.journal.committed.lock().unwrap().clone();
    assert_eq!(committed.len(), 1);
    let e = &committed[0].events[0];
    assert_eq!(e.registry_keys["address"], "1201");
    assert_eq!(e.data.message.as_deref(), Some("Room 1"));
    assert_eq!(e.data.priority, atgw_sdk::Priority::High);
    r.shutdown.cancel();
}

#[tokio::test]
async fn a_bad_bcc_gets_nak_and_a_dead_letter_with_the_raw_bytes() {
    let mut r = start(Duration::from_secs(60)).await;
    let mut bad = room(2);
    let last = bad.len() - 1;
    bad[last] ^= 0x21;
    assert_eq!(r.station.send(&bad, WAIT).await, Some(NAK));
    // The retransmission with the right BCC is taken on the same selection.
    r.station.write(&room(2)).await;
    assert_eq!(r.station.answer(WAIT).await, Some(ACK));
    let letters = r.journal.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "bad_bcc");
    assert_eq!(letters[0].raw, bad);
    assert_eq!(r.journal.committed.lock().unwrap().len(), 1);
    r.shutdown.cancel();
}

#[tokio::test]
async fn line_noise_between_blocks_does_not_desynchronise_the_link() {
    let mut r = start(Duration::from_secs(60)).await;
    assert_eq!(r.station.send(&room(3), WAIT).await, Some(ACK));
    r.station.eot().await;
    // Garbage, a stray RS/US, a half block cut short by EOT, and a lone ENQ.
    r.station.write(b"\xff\x00zz\x1e\x1f").await;
    r.station.write(&[SOH, b'1', STX, b'1', US, b'9']).await;
    r.station.write(&[EOT, ENQ, b'x']).await;
    assert_eq!(r.station.send(&room(4), WAIT).await, Some(ACK));
    r.station.eot().await;
    let addresses: Vec<String> = r
        .journal
        .committed
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.events[0].registry_keys["address"].clone())
        .collect();
    assert_eq!(addresses, ["1203", "1204"]);
    // The half block was not ours (the link was idle after EOT): nothing dead-lettered for it.
    assert!(r.journal.letters.lock().unwrap().is_empty());
    r.shutdown.cancel();
}

#[tokio::test]
async fn silence_marks_the_link_down_and_a_poll_brings_it_back() {
    let mut r = start(Duration::from_millis(600)).await;
    assert!(r.health.is_connected());
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while r.health.is_connected() {
        assert!(
            std::time::Instant::now() < until,
            "the link never went down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A poll of another station is traffic too.
    r.station.write(b"3\x05").await;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !r.health.is_connected() {
        assert!(
            std::time::Instant::now() < until,
            "the link never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.shutdown.cancel();
}
