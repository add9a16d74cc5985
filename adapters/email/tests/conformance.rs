//! The SDK's sink conformance kit against the email sink, with a real peer: the aiosmtpd
//! server of `smtp_server.py`, which can refuse for now (451). SMTP has no "gone for good"
//! (a 5xx is about one message, see the crate doc), so the kit's disabled case is skipped.

mod common;

use atgw_email::TlsMode;
use atgw_sdk::testkit::{self, Peer, PeerMode, SinkReport};
use common::*;

struct Smtp(SmtpServer);

impl Peer for Smtp {
    async fn set_mode(&mut self, mode: PeerMode) -> bool {
        match mode {
            PeerMode::Accept => self.0.set_mode("accept"),
            PeerMode::RefuseForNow => self.0.set_mode("tempfail"),
            PeerMode::Gone => return false,
        }
        true
    }
    /// Every message the server was offered (accepted or refused), by the event id it carries.
    async fn received_ids(&mut self) -> Vec<String> {
        self.0
            .attempts()
            .iter()
            .map(|a| a.header("x-atgw-event-id"))
            .filter(|id| !id.is_empty())
            .collect()
    }
}

#[tokio::test]
async fn the_email_sink_keeps_the_sink_contract() {
    let server = SmtpServer::start(ServerOpts::default());
    let config = config(server.port, TlsMode::None);
    let report = testkit::run_sink::<atgw_email::EmailSink, _>(config, site(), &mut Smtp(server))
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
}
