//! Inhibition through the real binary and a real broker: when the gateway loses its broker,
//! the supervised devices behind it are not paged one by one; one gateway alert says the link
//! is down, and only a device still silent after the link returned raises its own
//! `device_offline`.

mod common;

use std::time::Duration;

use common::*;

const DEVICES: usize = 50;

fn ieee(n: usize) -> String {
    format!("0xa4c13899607f{n:04x}")
}

fn supervised() -> String {
    let mut s = String::from("\n[alerts]\nlink_down_alert_after = \"2s\"\n");
    for n in 0..DEVICES {
        s.push_str(&format!(
            "\n[[device]]\nid = \"sensor-{n}\"\nadapter = \"zigbee\"\nmatch = {{ device = \"{}\" }}\nlocation = {{ area = \"West wing\", room = \"{n}\" }}\ncheck_in = \"3s\"\n",
            ieee(n)
        ));
    }
    s
}

/// (phase, device id) of the journal's `device_offline` events, oldest first.
fn offline(gw: &Gateway) -> Vec<String> {
    gw.column(
        "SELECT phase || ' ' || device_id FROM events WHERE kind = 'device_offline' ORDER BY seq",
    )
}

/// (phase, time ms) of the gateway's alert about the `zigbee` link.
fn link_alerts(gw: &Gateway) -> Vec<(String, i64)> {
    let phases: Vec<String> = gw.column(
        "SELECT phase FROM events WHERE device_id = 'gateway:gw-test:link:zigbee'
           AND kind = 'device_fault' ORDER BY seq",
    );
    let times: Vec<i64> = gw.column(
        "SELECT time_ms FROM events WHERE device_id = 'gateway:gw-test:link:zigbee'
           AND kind = 'device_fault' ORDER BY seq",
    );
    phases.into_iter().zip(times).collect()
}

/// Every device but `silent` checks in every second until the task is aborted.
fn report_every_second(
    port: u16,
    client: &'static str,
    silent: Option<usize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let p = Publisher::connect(port, client).await;
        loop {
            for n in (0..DEVICES).filter(|n| Some(*n) != silent) {
                p.send(
                    &format!("zigbee2mqtt/{}", ieee(n)),
                    r#"{"linkquality":80,"battery":90}"#,
                )
                .await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_broker_is_one_gateway_alert_and_a_device_still_silent_after_it_returns_raises_its_own()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
    let gw = Gateway::start(dir.path(), &config(dir.path(), broker.port, &supervised()));
    gw.wait_subscribed().await;
    // Every device checks in every second, up to the moment the broker goes.
    let reporting = report_every_second(broker.port, "inhibit-1", None);
    wait_until_async(Duration::from_secs(20), || {
        gw.column::<i64>("SELECT count(*) FROM devices WHERE device_id LIKE 'sensor-%'")[0]
            >= DEVICES as i64
    })
    .await
    .unwrap_or_else(|_| panic!("devices not heard:\n{}", gw.log_text()));
    // Longer than a check-in interval: heard devices are not offline.
    tokio::time::sleep(Duration::from_secs(4)).await;
    reporting.abort();
    let _ = reporting.await;
    assert!(offline(&gw).is_empty(), "{:?}", offline(&gw));

    // The broker is gone for longer than every check-in interval and the alert delay.
    broker.stop();
    let stopped_ms = jiff::Timestamp::now().as_millisecond();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = offline(&gw);
    assert!(
        during.is_empty(),
        "no device paged while the gateway could not hear it: {during:?}\n{}",
        gw.log_text()
    );
    let raised = link_alerts(&gw);
    assert_eq!(
        raised.len(),
        1,
        "one gateway alert: {raised:?}\n{}",
        gw.log_text()
    );
    assert_eq!(raised[0].0, "raised");
    let after = raised[0].1 - stopped_ms;
    assert!(
        (1_500..6_000).contains(&after),
        "raised {after} ms after the broker stopped (link_down_alert_after = 2s)"
    );
    let text: Vec<String> = gw.column(
        "SELECT json_extract(json, '$.data.message') FROM events
         WHERE device_id = 'gateway:gw-test:link:zigbee' AND phase = 'raised'",
    );
    assert!(
        text[0].contains("offline alerts of its 50 supervised devices are held"),
        "{text:?}"
    );

    // Back: 49 devices report, number 7 stays silent.
    broker.restart().unwrap();
    wait_until_async(Duration::from_secs(20), || link_alerts(&gw).len() >= 2)
        .await
        .unwrap_or_else(|_| panic!("the link alert never cleared:\n{}", gw.log_text()));
    let back_ms = link_alerts(&gw)[1].1;
    assert_eq!(link_alerts(&gw)[1].0, "cleared");
    let reporting = report_every_second(broker.port, "inhibit-2", Some(7));
    wait_until_async(Duration::from_secs(20), || !offline(&gw).is_empty())
        .await
        .unwrap_or_else(|_| panic!("the silent device never raised:\n{}", gw.log_text()));
    // Past another interval: still only the silent one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(offline(&gw), ["raised sensor-7"]);
    let raised_ms: Vec<i64> =
        gw.column("SELECT time_ms FROM events WHERE kind = 'device_offline' AND phase = 'raised'");
    assert!(
        raised_ms[0] - back_ms >= 2_900,
        "a full check-in interval after the link returned, got {} ms",
        raised_ms[0] - back_ms
    );
    reporting.abort();
}
