//! The sms sink against a real SMPP peer (`tests/peer/smsc.js`, the npm `smpp` package as the
//! SMSC): what arrives, receipts, a refused bind, throttling, refusals for good, a lost session.

mod common;

use std::time::Duration;

use atgw_sdk::sink::Outcome;
use common::*;

#[tokio::test]
async fn a_high_alert_arrives_as_one_gsm7_sms_with_the_room() {
    let tmp = tempfile::tempdir().unwrap();
    let smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut sink = start(config(smsc.port, pw, &NUMBERS[..1])).await;
    // Long and with characters outside GSM-7: it must be cut and transliterated, not UCS-2.
    let words = "ALERT: Fall detected by the “radar” beside the bed – resident not moving, possibly on the floor near the window, last seen by the night carer during the round";
    sink.to_sink
        .send(alert_delivery(1, 0, words))
        .await
        .unwrap();
    assert_eq!(sink.next_outcome().await, Outcome::Delivered(1));

    let submits = smsc.wait_for("submit", 1).await;
    let s = &submits[0];
    assert_eq!(s["data_coding"], 0, "GSM 03.38 default alphabet");
    assert_eq!(s["destination"], "447700900123");
    assert_eq!(s["dest_addr_ton"], 1, "international number");
    assert_eq!(
        s["registered_delivery"], 1,
        "a delivery receipt is requested"
    );
    assert_eq!(s["source_addr"], "Oakview");
    let text = s["text"].as_str().unwrap();
    assert!(
        text.starts_with("HIGH Fall - Room 9, West wing. Raised 14:02 UTC. Ack on console."),
        "{text}"
    );
    assert!(s["septets"].as_u64().unwrap() <= 160, "{s}");
    assert!(text.chars().count() <= 160);
    assert!(
        text.contains("\"radar\""),
        "curly quotes transliterated: {text}"
    );
    assert!(
        text.contains("bed - resident"),
        "dash transliterated: {text}"
    );
    assert!(!text.ends_with(' '));
    assert!(!text.contains("round"), "cut at the end: {text}");
    assert_eq!(s["event_id"], "0190sms0-0000-7000-8000-000000000001");

    // The receipt comes back as deliver_sm, is answered, and is in the sink's health.
    let acked = smsc.wait_for("receipt_acked", 1).await;
    assert_eq!(acked[0]["status"], 0);
    assert_eq!(acked[0]["message_id"], s["message_id"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sink.health.snapshot().received < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "receipt not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = sink.health.snapshot();
    assert!(h.connected && h.delivered == 1 && h.errors == 0, "{h:?}");
    assert!(h.last_message.is_some());
    sink.stop().await;
    assert_eq!(smsc.events("unbind").len(), 1, "unbinds at shutdown");
    smsc.stop().await;
}

#[tokio::test]
async fn every_recipient_gets_one_submit_and_delivered_waits_for_all() {
    let tmp = tempfile::tempdir().unwrap();
    let smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut sink = start(config(smsc.port, pw, &NUMBERS)).await;
    for n in 1..=3 {
        sink.to_sink
            .send(alert_delivery(n, 0, "Fall"))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        match sink.next_outcome().await {
            Outcome::Delivered(id) => got.push(id),
            other => panic!("{other:?}"),
        }
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3]);
    let submits = smsc.wait_for("submit", 6).await;
    assert_eq!(submits.len(), 6);
    for n in NUMBERS {
        let to = n.trim_start_matches('+');
        assert_eq!(submits.iter().filter(|s| s["destination"] == to).count(), 3);
    }
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_nothing_is_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), "wrong");
    let mut sink = start(config(smsc.port, pw, &NUMBERS[..1])).await;
    let binds = smsc.wait_for("bind", 1).await;
    assert_eq!(binds[0]["ok"], false);
    assert_eq!(binds[0]["system_id"], SYSTEM_ID);
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    match sink.next_outcome().await {
        Outcome::Retry {
            outbox_id: 1,
            reason,
            ..
        } => {
            assert!(reason.contains("ESME_RINVPASWD"), "{reason}");
        }
        other => panic!("a refused bind gave {other:?}"),
    }
    let h = sink.health.snapshot();
    assert!(!h.connected, "not ready while the bind is refused");
    assert!(h.errors >= 1 && h.delivered == 0, "{h:?}");
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("refused the bind") && !e.contains("wrong")),
        "{h:?}"
    );
    assert!(smsc.events("submit").is_empty());
    // It tries again, with back-off.
    smsc.wait_for("bind", 2).await;
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_throttled_submit_is_retried_then_delivered_without_texting_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut smsc = Smsc::start().await;
    smsc.command("throttle 1").await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut sink = start(config(smsc.port, pw, &NUMBERS)).await;
    sink.to_sink
        .send(alert_delivery(7, 0, "Fall"))
        .await
        .unwrap();
    match sink.next_outcome().await {
        Outcome::Retry {
            outbox_id: 7,
            after,
            reason,
        } => {
            assert_eq!(after, None, "throttling follows the outbox's own schedule");
            assert!(
                reason.contains("ESME_RTHROTTLED") && reason.contains("1 of 2"),
                "{reason}"
            );
        }
        other => panic!("a throttled submit gave {other:?}"),
    }
    let first = smsc.wait_for("submit", 2).await;
    let throttled: Vec<_> = first.iter().filter(|s| s["status"] == 0x58).collect();
    assert_eq!(throttled.len(), 1);
    // The outbox offers it again: only the throttled recipient is texted again.
    sink.to_sink
        .send(alert_delivery(7, 1, "Fall"))
        .await
        .unwrap();
    assert_eq!(sink.next_outcome().await, Outcome::Delivered(7));
    let all = smsc.wait_for("submit", 3).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all[2]["destination"], throttled[0]["destination"]);
    assert_eq!(all[2]["event_id"], all[0]["event_id"]);
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_refusal_for_good_is_a_retry_with_the_long_back_off_and_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut smsc = Smsc::start().await;
    smsc.command("reject 1").await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut cfg = config(smsc.port, pw, &NUMBERS[..1]);
    cfg.permanent_retry_after = Duration::from_secs(123);
    let mut sink = start(cfg).await;
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    match sink.next_outcome().await {
        Outcome::Retry { after, reason, .. } => {
            assert_eq!(after, Some(Duration::from_secs(123)));
            assert!(reason.contains("ESME_RINVDSTADR"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let h = sink.health.snapshot();
    assert!(h.errors >= 1 && h.connected, "{h:?}");
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn a_lost_session_is_a_retry_and_the_sink_binds_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut sink = start(config(smsc.port, pw, &NUMBERS[..1])).await;
    sink.bound().await;
    smsc.command("silent 1").await;
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    smsc.wait_for("submit", 1).await;
    smsc.command("kick").await;
    match sink.next_outcome().await {
        Outcome::Retry {
            outbox_id: 1,
            reason,
            ..
        } => {
            assert!(reason.contains("session lost"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    smsc.wait_for("bind", 2).await;
    sink.bound().await;
    sink.to_sink
        .send(alert_delivery(1, 1, "Fall"))
        .await
        .unwrap();
    assert_eq!(sink.next_outcome().await, Outcome::Delivered(1));
    assert!(sink.health.snapshot().reconnects >= 1);
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn an_unanswered_submit_drops_the_session_after_response_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut cfg = config(smsc.port, pw, &NUMBERS[..1]);
    cfg.response_timeout = Duration::from_millis(400);
    let mut sink = start(cfg).await;
    sink.bound().await;
    smsc.command("silent 1").await;
    let sent = tokio::time::Instant::now();
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    match sink.next_outcome().await {
        Outcome::Retry {
            outbox_id: 1,
            reason,
            ..
        } => {
            assert!(
                reason.contains("no submit_sm_resp within response_timeout"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(sent.elapsed() >= Duration::from_millis(400));
    // A new session, and the retry goes through it.
    smsc.wait_for("bind", 2).await;
    sink.bound().await;
    sink.to_sink
        .send(alert_delivery(1, 1, "Fall"))
        .await
        .unwrap();
    assert_eq!(sink.next_outcome().await, Outcome::Delivered(1));
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn an_unbind_from_the_smsc_is_answered_and_the_sink_binds_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut sink = start(config(smsc.port, pw, &NUMBERS[..1])).await;
    sink.bound().await;
    smsc.command("unbind").await;
    let resp = smsc.wait_for("unbind_resp", 1).await;
    assert_eq!(resp[0]["status"], 0);
    smsc.wait_for("bind", 2).await;
    sink.bound().await;
    sink.to_sink
        .send(alert_delivery(1, 0, "Fall"))
        .await
        .unwrap();
    assert_eq!(sink.next_outcome().await, Outcome::Delivered(1));
    sink.stop().await;
    smsc.stop().await;
}

#[tokio::test]
async fn an_idle_session_is_kept_with_enquire_link() {
    let tmp = tempfile::tempdir().unwrap();
    let smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let mut cfg = config(smsc.port, pw, &NUMBERS[..1]);
    cfg.enquire_link = Duration::from_millis(200);
    let sink = start(cfg).await;
    sink.bound().await;
    smsc.wait_for("enquire_link", 3).await;
    assert!(sink.health.is_connected());
    assert_eq!(smsc.events("bind").len(), 1, "one session throughout");
    sink.stop().await;
    smsc.stop().await;
}
