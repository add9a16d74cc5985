//! Bundling against a real SMTP server (aiosmtpd): medium alerts to the same people within
//! `bundle_window` arrive as one email, a high alert is sent at once, a window of zero sends
//! one message each, and a refused bundle is a retry for every row in it.

mod common;

use std::time::Duration;

use atgw_email::TlsMode;
use atgw_sdk::sink::{Delivery, Outcome};
use atgw_sdk::{Kind, Phase, Priority};
use common::*;

/// A medium `low_battery` alert raised in `room` (its own alert id), as outbox row `n`.
fn medium(n: i64, room: &str) -> Delivery {
    let mut d = lifecycle(n, Phase::Raised, "raised", "open", 0, None, 0);
    let mut v: serde_json::Value = serde_json::from_str(&d.json).unwrap();
    let alert = format!("0190f1a2-7b3c-7d4e-8f50-0000000001{n:02}");
    v["data"]["kind"] = "low_battery".into();
    v["data"]["priority"] = "medium".into();
    v["data"]["location"]["room"] = room.into();
    v["data"]["device"]["id"] = format!("pendant-{room}").into();
    v["data"]["alert"]["id"] = alert.clone().into();
    v["correlationid"] = alert.clone().into();
    d.json = v.to_string().into();
    d.kind = Kind::LowBattery;
    d.priority = Priority::Medium;
    d.alert_id = Some(alert.into());
    d
}

fn bundling(port: u16, window: Duration) -> atgw_email::EmailConfig {
    let mut c = config(port, TlsMode::None);
    c.bundle_window = window;
    c
}

/// The next `n` outcomes, in outbox-row order.
async fn outcomes(sink: &mut Running, n: usize, within: Duration) -> Vec<Outcome> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, sink.outcomes.recv()).await {
            Ok(Some(o)) => got.push(o),
            _ => panic!("{} of {n} outcomes within {within:?}: {got:?}", got.len()),
        }
    }
    got.sort_by_key(|o| match o {
        Outcome::Delivered(id) => *id,
        Outcome::Retry { outbox_id, .. } | Outcome::Disabled { outbox_id, .. } => *outbox_id,
    });
    got
}

#[tokio::test]
async fn two_medium_alerts_to_the_same_people_within_the_window_arrive_as_one_email() {
    let server = SmtpServer::start(ServerOpts::default());
    let mut sink = Running::start(bundling(server.port, Duration::from_secs(3))).await;
    sink.to_sink.send(medium(11, "4")).await.unwrap();
    sink.to_sink.send(medium(12, "7")).await.unwrap();
    // Held: nothing is sent and nothing answered before the window ends.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.attempts().is_empty(), "sent before the window ended");
    assert!(sink.outcomes.try_recv().is_err(), "answered while held");
    let got = outcomes(&mut sink, 2, Duration::from_secs(15)).await;
    assert_eq!(got, [Outcome::Delivered(11), Outcome::Delivered(12)]);
    let health = sink.health.snapshot();
    sink.stop().await;

    let mail = server.accepted();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let m = &mail[0];
    assert_eq!(
        m.header("subject"),
        "2 alerts: Low battery – Room 4, West wing, Low battery – Room 7, West wing"
    );
    assert_eq!(m.header("x-atgw-bundle"), "2");
    assert!(m.header("message-id").starts_with("<bundle.2."), "{m:?}");
    assert!(!m.headers.contains_key("in-reply-to"), "{m:?}");
    assert!(
        m.body
            .contains("1. MEDIUM: Low battery – Room 4, West wing"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("2. MEDIUM: Low battery – Room 7, West wing"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("0190f1a2-0000-7000-8000-000000000011"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("0190f1a2-0000-7000-8000-000000000012"),
        "{}",
        m.body
    );
    assert!(m.body.contains("acknowledge each open alert"), "{}", m.body);
    assert_eq!(
        m.rcpt_tos,
        ["night@oakview.example", "duty@oakview.example"]
    );
    assert_eq!(
        (health.bundles, health.bundled, health.delivered),
        (1, 2, 2)
    );
}

#[tokio::test]
async fn a_high_alert_in_the_window_is_sent_at_once_and_takes_the_pending_bundle() {
    let server = SmtpServer::start(ServerOpts::default());
    // A window far longer than the test's wait: anything held for it would time out below.
    let mut sink = Running::start(bundling(server.port, Duration::from_secs(600))).await;
    sink.to_sink.send(medium(21, "4")).await.unwrap();
    sink.to_sink.send(raise(0)).await.unwrap();
    let got = outcomes(&mut sink, 2, Duration::from_secs(15)).await;
    assert_eq!(got, [Outcome::Delivered(1), Outcome::Delivered(21)]);
    sink.stop().await;

    let mut subjects: Vec<String> = server
        .accepted()
        .iter()
        .map(|m| m.header("subject"))
        .collect();
    subjects.sort();
    // Two messages: the fall alone, and the medium it flushed (a bundle of one is an
    // ordinary message).
    assert_eq!(
        subjects,
        [
            "HIGH: Fall – Room 9, West wing",
            "MEDIUM: Low battery – Room 4, West wing"
        ]
    );
}

#[tokio::test]
async fn with_the_window_off_each_notification_is_its_own_email() {
    let server = SmtpServer::start(ServerOpts::default());
    let mut sink = Running::start(bundling(server.port, Duration::ZERO)).await;
    sink.to_sink.send(medium(31, "4")).await.unwrap();
    sink.to_sink.send(medium(32, "7")).await.unwrap();
    let got = outcomes(&mut sink, 2, Duration::from_secs(15)).await;
    assert_eq!(got, [Outcome::Delivered(31), Outcome::Delivered(32)]);
    let health = sink.health.snapshot();
    sink.stop().await;
    let mail = server.accepted();
    assert_eq!(mail.len(), 2, "{mail:#?}");
    assert!(
        mail.iter()
            .all(|m| m.header("subject").starts_with("MEDIUM: "))
    );
    assert_eq!(health.bundles, 0);
}

#[tokio::test]
async fn a_refused_bundle_is_a_retry_for_every_row_and_its_retry_keeps_its_id() {
    let server = SmtpServer::start(ServerOpts::default());
    server.set_mode("permfail");
    let mut sink = Running::start(bundling(server.port, Duration::from_secs(1))).await;
    sink.to_sink.send(medium(41, "4")).await.unwrap();
    sink.to_sink.send(medium(42, "7")).await.unwrap();
    let got = outcomes(&mut sink, 2, Duration::from_secs(15)).await;
    for (o, row) in got.iter().zip([41, 42]) {
        match o {
            Outcome::Retry {
                outbox_id, after, ..
            } => {
                assert_eq!(*outbox_id, row);
                assert!(after.is_some(), "a 5xx waits longer: {o:?}");
            }
            other => panic!("row {row}: {other:?}"),
        }
    }
    // The outbox offers both again; the server now accepts.
    server.set_mode("accept");
    for n in [41, 42] {
        let mut d = medium(n, if n == 41 { "4" } else { "7" });
        d.attempt = 1;
        sink.to_sink.send(d).await.unwrap();
    }
    let got = outcomes(&mut sink, 2, Duration::from_secs(15)).await;
    assert_eq!(got, [Outcome::Delivered(41), Outcome::Delivered(42)]);
    sink.stop().await;
    let attempts = server.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_ne!(attempts[0].code, 250);
    assert_eq!(attempts[1].code, 250);
    assert_eq!(
        attempts[0].header("message-id"),
        attempts[1].header("message-id")
    );
}
