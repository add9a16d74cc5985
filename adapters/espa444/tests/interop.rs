//! Interop with an independent implementation: digimat-espa (PyPI) as the paging system on a
//! real serial line (a socat pty pair) receives atgw's pages with the right call address, text
//! and priority. Its quirks (legacy.md §6): it reads the message from record 1 and the call
//! address from record 2, so the raw record dict is what is checked.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use atgw_espa444::config::{Parity, Serial, SinkConfig, Transport};
use atgw_sdk::sink::Outcome;
use common::*;

#[tokio::test]
async fn digimat_espa_receives_atgws_pages_over_a_pty() {
    let py = python_with_digimat();
    let pty = PtyPair::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/digimat_pager.py");
    let mut child = Command::new(py)
        .arg(&script)
        .arg(&pty.b)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let ready = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready["ready"], true);

    let mut config = SinkConfig::new(
        "pagers",
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
    config.to = vec!["200".into()];
    let mut run = start_sink(config).await;
    run.deliveries
        .send(escalated_fall(1, &["4711"]))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), run.outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Delivered(1),
        "digimat-espa did not ACK both pages"
    );
    let mut pages = Vec::new();
    while pages.len() < 2 {
        let v = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        pages.push(v);
    }
    let _ = child.kill();
    let _ = child.wait();
    for (page, address) in pages.iter().zip(["200", "4711"]) {
        assert_eq!(page["name"], "calltopager");
        assert_eq!(page["records"]["1"], address, "{page}");
        assert_eq!(
            page["records"]["2"], "Room 12 Fall ESCALATED Fall",
            "{page}"
        );
        assert_eq!(page["records"]["6"], "1", "{page}");
        // Its own reading, swapped against the spec (legacy.md §6).
        assert_eq!(page["callAddress"], "Room 12 Fall ESCALATED Fall");
    }
    run.shutdown.cancel();
}
