//! The paging sink against a paging system written from the spec, over real TCP: delivered
//! only on ACK, NAK and silence retried on the link then handed back to the outbox as a retry,
//! and the reset after an acknowledgement when the site wants it.

mod common;

use std::time::Duration;

use atgw_espa444::config::{SinkConfig, Transport};
use atgw_sdk::sink::Outcome;
use common::*;
use tokio::net::TcpListener;

async fn setup(tweak: impl FnOnce(&mut SinkConfig)) -> (SinkRun, PagingSystem) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = SinkConfig::new(
        "pagers",
        Transport {
            connect: Some(listener.local_addr().unwrap().to_string()),
            ..Transport::default()
        },
    );
    config.block_timeout = Duration::from_millis(300);
    config.select_timeout = Duration::from_millis(300);
    tweak(&mut config);
    let run = start_sink(config).await;
    let (stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    (run, PagingSystem::spawn(stream))
}

async fn outcome(run: &mut SinkRun) -> Outcome {
    tokio::time::timeout(Duration::from_secs(10), run.outcomes.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_page_is_delivered_only_on_the_paging_systems_ack() {
    let (mut run, pager) = setup(|c| c.to = vec!["200".into()]).await;
    pager.set(Answering::Silent);
    run.deliveries
        .send(escalated_fall(1, &["4711"]))
        .await
        .unwrap();
    // Unanswered: not delivered, and retried after retry_after.
    match outcome(&mut run).await {
        Outcome::Retry {
            outbox_id: 1,
            reason,
            ..
        } => assert!(reason.contains("did not answer"), "{reason}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        pager.blocks.lock().unwrap().len(),
        3,
        "the block and its two retries"
    );
    pager.set(Answering::Ack);
    pager.blocks.lock().unwrap().clear();
    run.deliveries
        .send(escalated_fall(1, &["4711"]))
        .await
        .unwrap();
    assert_eq!(outcome(&mut run).await, Outcome::Delivered(1));
    let pages = pager.records();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0][&'1'], "200");
    assert_eq!(
        pages[1][&'1'], "4711",
        "the route's on-shift carer (espa444 contact)"
    );
    assert_eq!(pages[0][&'2'], "Room 12 Fall ESCALATED Fall");
    assert!(pages[0][&'2'].chars().count() <= 32);
    assert_eq!(pages[0][&'6'], "1");
    assert_eq!(pages[0][&'4'], "3");
    run.shutdown.cancel();
}

#[tokio::test]
async fn naks_are_retried_on_the_link_then_count_as_a_failed_delivery() {
    let (mut run, pager) = setup(|c| c.to = vec!["200".into()]).await;
    pager.set(Answering::Nak);
    run.deliveries.send(escalated_fall(7, &[])).await.unwrap();
    match outcome(&mut run).await {
        Outcome::Retry {
            outbox_id: 7,
            after,
            reason,
        } => {
            assert!(reason.contains("refused"), "{reason}");
            assert_eq!(after, Some(Duration::from_secs(5)));
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(pager.blocks.lock().unwrap().len(), 3);
    run.shutdown.cancel();
}

#[tokio::test]
async fn nobody_to_page_is_never_delivered() {
    let (mut run, _pager) = setup(|_| {}).await;
    run.deliveries
        .send(escalated_fall(3, &["not-a-number"]))
        .await
        .unwrap();
    assert!(matches!(
        outcome(&mut run).await,
        Outcome::Retry { outbox_id: 3, .. }
    ));
    run.shutdown.cancel();
}

#[tokio::test]
async fn an_acknowledgement_sends_the_reset_when_configured() {
    let (mut run, pager) = setup(|c| {
        c.to = vec!["200".into()];
        c.reset_on_close = true;
    })
    .await;
    run.deliveries
        .send(lifecycle(9, "acknowledged", "acknowledged", &[]))
        .await
        .unwrap();
    assert_eq!(outcome(&mut run).await, Outcome::Delivered(9));
    let pages = pager.records();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0][&'1'], "200");
    assert_eq!(pages[0][&'4'], "1", "call type 1: reset");
    run.shutdown.cancel();
}
