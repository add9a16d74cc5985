//! Bundling against a real SMPP peer (the npm `smpp` package as the SMSC): medium alerts to the
//! same number within `bundle_window` arrive as one SMS, a high alert is texted at once, a
//! window of zero texts each, and a refused bundle is a retry for every row in it.

mod common;

use std::time::Duration;

use atgw_sdk::sink::{Delivery, Outcome};
use atgw_sdk::{Kind, Priority};
use common::*;

/// A medium `low_battery` alert raised in `room`, as outbox row `n`.
fn medium(n: i64, room: &str) -> Delivery {
    let mut d = alert_delivery(n, 0, "Low battery");
    let mut v: serde_json::Value = serde_json::from_str(&d.json).unwrap();
    v["data"]["kind"] = "low_battery".into();
    v["data"]["priority"] = "medium".into();
    v["data"]["location"]["room"] = room.into();
    v["correlationid"] = format!("alert-{n}").into();
    v["data"]["alert"]["id"] = format!("alert-{n}").into();
    d.json = v.to_string().into();
    d.kind = Kind::LowBattery;
    d.priority = Priority::Medium;
    d.alert_id = Some(format!("alert-{n}").into());
    d
}

async fn outcomes(sink: &mut Running, n: usize) -> Vec<Outcome> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(sink.next_outcome().await);
    }
    got.sort_by_key(|o| match o {
        Outcome::Delivered(id) => *id,
        Outcome::Retry { outbox_id, .. } | Outcome::Disabled { outbox_id, .. } => *outbox_id,
    });
    got
}

async fn bundling(window: Duration) -> (tempfile::TempDir, Smsc, Running) {
    let tmp = tempfile::tempdir().unwrap();
    let smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut cfg = config(smsc.port, pw, &NUMBERS[..1]);
    cfg.bundle_window = window;
    let sink = start(cfg).await;
    sink.bound().await;
    (tmp, smsc, sink)
}

#[tokio::test]
async fn two_medium_alerts_to_the_same_number_within_the_window_arrive_as_one_sms() {
    let (_tmp, smsc, mut sink) = bundling(Duration::from_secs(3)).await;
    sink.to_sink.send(medium(11, "4")).await.unwrap();
    sink.to_sink.send(medium(12, "7")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        smsc.events("submit").is_empty(),
        "texted before the window ended"
    );
    assert_eq!(
        outcomes(&mut sink, 2).await,
        [Outcome::Delivered(11), Outcome::Delivered(12)]
    );
    let submits = smsc.events("submit");
    assert_eq!(submits.len(), 1, "{submits:#?}");
    let text = submits[0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "2 alerts: MEDIUM Low battery - Room 4 14:02; MEDIUM Low battery - Room 7 14:02. Ack each on console."
    );
    assert!(submits[0]["septets"].as_u64().unwrap() <= 160);
    assert_eq!(submits[0]["data_coding"], 0);
    let h = sink.health.snapshot();
    assert_eq!((h.bundles, h.bundled, h.delivered), (1, 2, 2));
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_high_alert_in_the_window_is_texted_at_once_and_takes_the_pending_bundle() {
    let (_tmp, smsc, mut sink) = bundling(Duration::from_secs(600)).await;
    sink.to_sink.send(medium(21, "4")).await.unwrap();
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall detected"))
        .await
        .unwrap();
    // Both within next_outcome's wait, far inside the 10-minute window.
    assert_eq!(
        outcomes(&mut sink, 2).await,
        [Outcome::Delivered(1), Outcome::Delivered(21)]
    );
    let mut texts: Vec<String> = smsc
        .events("submit")
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("HIGH Fall - Room 9"), "{texts:?}");
    assert!(
        texts[1].starts_with("MEDIUM Low battery - Room 4"),
        "{texts:?}"
    );
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn with_the_window_off_each_notification_is_its_own_sms() {
    let (_tmp, smsc, mut sink) = bundling(Duration::ZERO).await;
    sink.to_sink.send(medium(31, "4")).await.unwrap();
    sink.to_sink.send(medium(32, "7")).await.unwrap();
    assert_eq!(
        outcomes(&mut sink, 2).await,
        [Outcome::Delivered(31), Outcome::Delivered(32)]
    );
    let submits = smsc.events("submit");
    assert_eq!(submits.len(), 2, "{submits:#?}");
    assert!(submits.iter().all(|s| {
        s["text"]
            .as_str()
            .unwrap()
            .starts_with("MEDIUM Low battery")
    }));
    assert_eq!(sink.health.snapshot().bundles, 0);
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_refused_bundle_is_a_retry_for_every_row() {
    let (_tmp, mut smsc, mut sink) = bundling(Duration::from_secs(1)).await;
    smsc.command("reject 1").await;
    sink.to_sink.send(medium(41, "4")).await.unwrap();
    sink.to_sink.send(medium(42, "7")).await.unwrap();
    let got = outcomes(&mut sink, 2).await;
    for (o, row) in got.iter().zip([41, 42]) {
        assert!(
            matches!(o, Outcome::Retry { outbox_id, .. } if *outbox_id == row),
            "row {row}: {o:?}"
        );
    }
    assert_eq!(smsc.events("submit").len(), 1);
    sink.stop().await;
    smsc.stop().await;
}
