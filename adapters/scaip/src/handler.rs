//! The receiver's decision for one SCAIP request body, as data: what to dead-letter, what to
//! commit, and the `<mrs>` to answer. No I/O; the server executes the [`Decision`] in order.
//!
//! The one rule the I/O side must keep: the SIP `200 OK` and the `<mrs>` go out only after
//! `commit` (or `dead_letter`) resolved `Ok`. If it fails, the unit is not answered and
//! retries; the retry (same `ref`, same content) has the same dedupe key, so however often it
//! comes it is one journal row.

use std::time::Duration;

use atgw_sdk::{DeadLetter, Seen, Submission};
use sha2::{Digest, Sha256};

use crate::codec::{MessageType, Request, Response};
use crate::mapping;

/// The version of SS 91100 this receiver speaks (`cve`).
pub const VERSION: (u8, u8) = (1, 0);

/// What to do with one request.
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// Dead-letter first (durable before the answer).
    pub dead_letter: Option<DeadLetter>,
    /// Must be committed before the answer is sent.
    pub commit: Option<Submission>,
    /// The `<mrs>` for the unit.
    pub reply: Response,
    /// For logs and counters: the request's type, when it decoded.
    pub mty: Option<MessageType>,
}

/// The receiver's policy for one adapter instance.
#[derive(Debug, Clone)]
pub struct Handler {
    adapter: String,
    retransmit_window: Duration,
    hbi: Option<u16>,
}

impl Handler {
    pub fn new(adapter: &str, retransmit_window: Duration, hbi: Option<u16>) -> Handler {
        Handler {
            adapter: adapter.to_owned(),
            retransmit_window,
            hbi,
        }
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Decides what one `MESSAGE` body becomes.
    pub fn handle(&self, body: &[u8], origin: &str) -> Decision {
        let req = match Request::decode(body) {
            Ok(r) => r,
            Err(e) => {
                return Decision {
                    dead_letter: Some(DeadLetter {
                        reason: e.kind.reason().into(),
                        detail: format!(
                            "SCAIP request refused with snu {}: {}",
                            e.kind.snu(),
                            e.kind
                        ),
                        origin: origin.into(),
                        raw: body.to_vec(),
                    }),
                    commit: None,
                    reply: Response {
                        reference: e.reference,
                        snu: e.kind.snu(),
                        ste: Some(e.kind.to_string()),
                        ..Response::default()
                    },
                    mty: None,
                };
            }
        };
        let events: Vec<_> = mapping::draft(&req, &self.adapter).into_iter().collect();
        let dedupe_key = (!events.is_empty()).then(|| dedupe_key(&req));
        let reply = Response {
            reference: Some(req.reference.clone()),
            snu: 0,
            ste: None,
            cve: Some(common_version(req.version.as_deref())),
            // No voice bridging: the gateway is not a speech-call receiver.
            mre: Some(0),
            hbi: self.hbi.filter(|_| req.hbo == Some(1)),
        };
        Decision {
            dead_letter: None,
            commit: Some(Submission {
                events,
                dedupe_key,
                dedupe_window: Some(self.retransmit_window),
                seen: vec![Seen {
                    device_id: mapping::device_id(&req.cid),
                    registry_keys: mapping::registry_keys(&req),
                }],
                ..Submission::default()
            }),
            reply,
            mty: Some(req.mty),
        }
    }
}

/// `scaip:<cid>:<ref>:<digest>`, the digest (SHA-256, first 128 bits) over the request in its
/// canonical form (codes zero-padded, so `<dty>5</dty>` and `<dty>0005</dty>` are one). A unit
/// retrying a request repeats it unchanged, `ref` included; an `IN` update or an `RE` reset
/// reuses the `ref` with other content and so is its own event. A unit that restarts its
/// numbering and sends the same ref with the same content within `retransmit_window` is taken
/// for a retransmission; one whose content differs (another status, another device) is not.
pub fn dedupe_key(req: &Request) -> String {
    let digest = Sha256::digest(req.encode().as_bytes());
    format!(
        "scaip:{}:{}:{}",
        req.cid,
        req.reference,
        hex::encode(&digest[..16])
    )
}

/// `cve`: the lower of the request's `ver` (default 01.00) and ours.
fn common_version(ver: Option<&str>) -> String {
    let theirs = ver
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
        .unwrap_or(VERSION);
    let (a, b) = theirs.min(VERSION);
    format!("{a:02}.{b:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use atgw_sdk::{Kind, Phase};

    fn h() -> Handler {
        Handler::new("units", Duration::from_secs(1800), Some(60))
    }

    #[test]
    fn a_good_alarm_commits_one_event_and_answers_snu_0_no_voice() {
        let d = h().handle(
            b"<mrq><ref>1242</ref><cid>678</cid><dty>0005</dty><stc>0009</stc><lco>011</lco></mrq>",
            "udp:127.0.0.1:15061",
        );
        let c = d.commit.unwrap();
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.events[0].data.kind, Kind::Fall);
        assert!(c.dedupe_key.unwrap().starts_with("scaip:678:1242:"));
        assert_eq!(c.seen[0].device_id, "scaip:678");
        assert_eq!(
            d.reply.encode(),
            "<mrs><ref>1242</ref><snu>0</snu><cve>01.00</cve><mre>0</mre></mrs>"
        );
    }

    #[test]
    fn a_heartbeat_offering_hbo_is_a_check_in_answered_with_hbi() {
        let d = h().handle(
            b"<mrq><ref>1244</ref><mty>PI</mty><hbo>001</hbo><cid>678</cid><dty>2</dty></mrq>",
            "o",
        );
        let c = d.commit.unwrap();
        assert!(c.events.is_empty() && c.dedupe_key.is_none());
        assert_eq!(c.seen.len(), 1);
        assert_eq!(d.reply.hbi, Some(60));
        let d = h().handle(
            b"<mrq><ref>1245</ref><mty>PI</mty><cid>678</cid><dty>2</dty></mrq>",
            "o",
        );
        assert_eq!(d.reply.hbi, None, "no hbo: the unit keeps its own interval");
    }

    #[test]
    fn a_retransmission_shares_the_key_and_an_update_or_reset_of_the_same_ref_does_not() {
        let key = |b: &[u8]| h().handle(b, "o").commit.unwrap().dedupe_key.unwrap();
        let me = key(b"<mrq><ref>9</ref><cid>678</cid><dty>3</dty></mrq>");
        assert_eq!(
            me,
            key(b"<mrq><ref>9</ref><cid>678</cid><dty>0003</dty></mrq>")
        );
        let re = b"<mrq><ref>9</ref><mty>RE</mty><cid>678</cid><dty>3</dty></mrq>";
        assert_ne!(me, key(re));
        let d = h().handle(re, "o").commit.unwrap();
        assert_eq!(d.events[0].data.phase, Phase::Cleared);
        assert_ne!(me, key(b"<mrq><ref>9</ref><mty>IN</mty><cid>678</cid><dty>3</dty><stt>still down</stt></mrq>"));
    }

    #[test]
    fn a_bad_request_is_a_dead_letter_and_the_snu_of_its_fault() {
        let d = h().handle(b"<mrq><ref>5</ref><dty>3</dty></mrq>", "o");
        assert!(d.commit.is_none());
        assert_eq!(d.dead_letter.unwrap().reason, "missing_tag");
        assert_eq!((d.reply.snu, d.reply.reference.as_deref()), (7, Some("5")));
    }

    #[test]
    fn the_common_version_is_the_lower_one() {
        assert_eq!(common_version(None), "01.00");
        assert_eq!(common_version(Some("02.10")), "01.00");
        assert_eq!(common_version(Some("00.90")), "00.90");
    }
}
