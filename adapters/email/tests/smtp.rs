//! The email sink against a real SMTP server (aiosmtpd, `smtp_server.py`): an alert's messages
//! threaded, STARTTLS and SMTPS with a private CA, AUTH with the password from a file, a 4xx
//! retried until delivered, and a 5xx never delivered.

mod common;

use std::time::Duration;

use atgw_email::TlsMode;
use atgw_email::compose::thread_id;
use atgw_sdk::Phase;
use atgw_sdk::sink::Outcome;
use common::*;

fn delivered(o: &Outcome, row: i64) {
    assert_eq!(*o, Outcome::Delivered(row), "row {row}");
}

#[tokio::test]
async fn an_alert_is_raised_escalated_and_acknowledged_in_one_thread() {
    let server = SmtpServer::start(ServerOpts::default());
    let mut sink = Running::start(config(server.port, TlsMode::None)).await;
    delivered(&sink.deliver(raise(0)).await, 1);
    let escalation = lifecycle(2, Phase::Escalated, "ack_timeout", "open", 1, None, 0);
    delivered(&sink.deliver(escalation).await, 2);
    let ack = lifecycle(
        3,
        Phase::Acknowledged,
        "acknowledged",
        "acknowledged",
        1,
        Some("Sam"),
        0,
    );
    delivered(&sink.deliver(ack).await, 3);
    sink.stop().await;

    let got = server.accepted();
    assert_eq!(got.len(), 3, "{got:#?}");
    let subjects: Vec<String> = got.iter().map(|m| m.header("subject")).collect();
    assert_eq!(
        subjects,
        [
            "HIGH: Fall – Room 9, West wing",
            "ESCALATED (not acknowledged): Fall – Room 9, West wing",
            "Acknowledged by Sam: Fall – Room 9, West wing",
        ]
    );
    let root = thread_id(ALERT_ID, "oakview.example");
    assert_eq!(got[0].header("message-id"), root);
    assert!(!got[0].headers.contains_key("in-reply-to"), "{:?}", got[0]);
    for later in &got[1..] {
        assert_eq!(later.header("in-reply-to"), root);
        assert_eq!(later.header("references"), root);
        assert_ne!(later.header("message-id"), root);
    }
    assert_ne!(got[1].header("message-id"), got[2].header("message-id"));
    for m in &got {
        assert_eq!(
            m.rcpt_tos,
            ["night@oakview.example", "duty@oakview.example"]
        );
        assert_eq!(m.header("from"), FROM);
        assert!(!m.tls && !m.authenticated);
    }
    // The body a carer reads: where, when (UTC, the site's zone here), what to do.
    let body = &got[0].body;
    assert!(
        body.contains("Where:      Room 9, West wing (site oakview)"),
        "{body}"
    );
    assert!(
        body.contains("When:       Fri 17 Apr 2026, 15:33:22 UTC"),
        "{body}"
    );
    assert!(
        body.contains("acknowledge on the console or reply on your handset"),
        "{body}"
    );
    assert!(body.contains("does NOT acknowledge"), "{body}");
    assert!(got[2].body.contains("By:         Sam"), "{}", got[2].body);
}

#[tokio::test]
async fn starttls_with_a_private_ca_and_auth_with_the_password_from_a_file() {
    let pki = private_pki();
    let server = SmtpServer::start(ServerOpts {
        tls: "starttls",
        cert: Some((pki.cert_pem.clone(), pki.key_pem.clone())),
        auth: Some(("atgw-gw", "s3cret-horse-battery")),
        ..ServerOpts::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("smtp-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let mut c = config(server.port, TlsMode::Starttls);
    c.ca_file = Some(ca.clone());
    c.username = Some("atgw-gw".into());
    c.password_file = Some(secret_file(
        tmp.path(),
        "smtp-password",
        "s3cret-horse-battery\n",
    ));
    let mut sink = Running::start(c.clone()).await;
    delivered(&sink.deliver(raise(0)).await, 1);
    sink.stop().await;
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls, "the message did not travel inside TLS");
    assert!(got[0].authenticated, "the session was not authenticated");

    // A wrong password is refused by the server: retried, never delivered.
    c.password_file = Some(secret_file(tmp.path(), "wrong-password", "not-it"));
    let mut sink = Running::start(c).await;
    match sink.deliver(raise(1)).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("535"), "{reason}"),
        other => panic!("a refused login got {other:?}"),
    }
    sink.stop().await;
    assert_eq!(
        server.attempts().len(),
        1,
        "a message went out without a login"
    );
}

#[tokio::test]
async fn smtps_pinned_to_the_private_ca_and_a_server_from_another_ca_is_refused() {
    let pki = private_pki();
    let server = SmtpServer::start(ServerOpts {
        tls: "implicit",
        cert: Some((pki.cert_pem.clone(), pki.key_pem.clone())),
        ..ServerOpts::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("smtp-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let mut c = config(server.port, TlsMode::Implicit);
    c.ca_file = Some(ca);
    c.ca_only = true;
    let mut sink = Running::start(c.clone()).await;
    delivered(&sink.deliver(raise(0)).await, 1);
    sink.stop().await;
    assert!(server.accepted()[0].tls);

    // Pinned to a different CA: the handshake fails, nothing is sent, the row is retried.
    let other = tmp.path().join("other-ca.pem");
    std::fs::write(&other, private_pki().ca_pem).unwrap();
    c.ca_file = Some(other);
    let mut sink = Running::start(c).await;
    match sink.deliver(raise(1)).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("TLS"), "{reason}"),
        other => panic!("a server with an untrusted certificate got {other:?}"),
    }
    sink.stop().await;
    assert_eq!(server.attempts().len(), 1);
}

#[tokio::test]
async fn starttls_is_required_a_server_without_it_gets_nothing() {
    let server = SmtpServer::start(ServerOpts::default());
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("smtp-ca.pem");
    std::fs::write(&ca, private_pki().ca_pem).unwrap();
    let mut c = config(server.port, TlsMode::Starttls);
    c.ca_file = Some(ca);
    c.ca_only = true;
    let mut sink = Running::start(c).await;
    assert!(matches!(
        sink.deliver(raise(0)).await,
        Outcome::Retry { .. }
    ));
    sink.stop().await;
    assert!(
        server.attempts().is_empty(),
        "sent in clear: {:?}",
        server.attempts()
    );
}

#[tokio::test]
async fn a_451_is_retried_with_the_same_message_id_and_then_delivered() {
    let server = SmtpServer::start(ServerOpts {
        tempfail: 2,
        ..ServerOpts::default()
    });
    let mut sink = Running::start(config(server.port, TlsMode::None)).await;
    for attempt in 0..2 {
        match sink.deliver(raise(attempt)).await {
            Outcome::Retry {
                outbox_id: 1,
                after: None,
                reason,
            } => assert!(reason.contains("451"), "{reason}"),
            other => panic!("attempt {attempt} against a 451 got {other:?}"),
        }
    }
    delivered(&sink.deliver(raise(2)).await, 1);
    sink.stop().await;
    let attempts = server.attempts();
    let codes: Vec<u64> = attempts.iter().map(|a| a.code).collect();
    assert_eq!(codes, [451, 451, 250]);
    let ids: Vec<String> = attempts.iter().map(|a| a.header("message-id")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn a_5xx_is_retried_slowly_and_counted_in_health_never_delivered() {
    let server = SmtpServer::start(ServerOpts::default());
    server.set_mode("permfail");
    let mut sink = Running::start(config(server.port, TlsMode::None)).await;
    let mut waits = Vec::new();
    for attempt in 0..3 {
        match sink.deliver(raise(attempt)).await {
            Outcome::Retry {
                outbox_id: 1,
                after: Some(after),
                reason,
            } => {
                assert!(reason.contains("554"), "{reason}");
                assert!(
                    !reason.contains("night@"),
                    "an address in the reason: {reason}"
                );
                waits.push(after);
            }
            other => panic!("attempt {attempt} against a 554 got {other:?}"),
        }
    }
    assert_eq!(
        waits,
        [
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(20)
        ]
    );
    let h = sink.health.snapshot();
    assert_eq!(h.errors, 3, "{h:?}");
    assert_eq!(h.delivered, 0);
    assert!(!h.connected);
    let last = h.last_error.unwrap_or_default();
    assert!(last.contains("554") && !last.contains("night@"), "{last}");
    // The server took it up once it stopped refusing: the waiting row goes out as it was.
    server.set_mode("accept");
    delivered(&sink.deliver(raise(3)).await, 1);
    assert_eq!(sink.health.snapshot().delivered, 1);
    sink.stop().await;
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retry_naming_the_connection() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sink = Running::start(config(port, TlsMode::None)).await;
    match sink.deliver(raise(0)).await {
        Outcome::Retry { reason, after, .. } => {
            assert!(reason.contains("cannot connect"), "{reason}");
            assert_eq!(after, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.health.snapshot().errors, 1);
    sink.stop().await;
}
