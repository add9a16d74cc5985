//! The SDK's sink conformance kit against the sms sink, with a real SMPP peer (the npm `smpp`
//! package as the SMSC, which can refuse for now with ESME_RTHROTTLED). SMPP cannot say "gone
//! for good", so the disabled case does not apply.

mod common;

use atgw_sdk::testkit::{self, Peer, PeerMode, SinkReport};
use common::*;

struct SmscPeer(Smsc);

impl Peer for SmscPeer {
    async fn set_mode(&mut self, mode: PeerMode) -> bool {
        match mode {
            PeerMode::Accept => self.0.command("accept").await,
            PeerMode::RefuseForNow => self.0.command("refuse").await,
            PeerMode::Gone => return false,
        }
        true
    }
    async fn received_ids(&mut self) -> Vec<String> {
        self.0
            .events("submit")
            .into_iter()
            .filter_map(|s| s["event_id"].as_str().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn the_sms_sink_keeps_the_sink_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let smsc = Smsc::start().await;
    let pw = password_file(tmp.path(), PASSWORD);
    let config = config(smsc.port, pw, &NUMBERS[..1]);
    let mut peer = SmscPeer(smsc);
    let report = testkit::run_sink::<atgw_sms::SmsSink, _>(config, site(), &mut peer)
        .await
        .unwrap_or_else(|f| panic!("conformance: {f}"));
    assert_eq!(
        report,
        SinkReport {
            delivered: 3,
            retry_checked: true,
            disabled_checked: false
        }
    );
    peer.0.stop().await;
}
