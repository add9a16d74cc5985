//! The receiver's decision for one frame, as data: what to dead-letter, what to commit, what to
//! answer, and what to log. No I/O, so every branch of legacy.md §1.10 is a unit test; the
//! listeners execute the [`Decision`] in order (dead letter, commit, then answer).
//!
//! The one rule the I/O side must keep: `reply` goes out only after `commit` resolved `Ok`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use atgw_sdk::event::Raw;
use atgw_sdk::{DeadLetter, EventDraft, Kind, Phase, Priority, Seen, Submission};
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::crypto::{self, AesKey};
use crate::frame::{Body, Frame, FrameError, Header, Payload, Token, parse_payload};
use crate::keys;
use crate::mapping::{self, Mapper, PROTOCOL};
use crate::response;
use crate::timestamp::Window;

/// A transmitter's retries of one frame end within minutes; default for `retransmit_window`.
pub const DEFAULT_RETRANSMIT_WINDOW: Duration = Duration::from_secs(300);

/// How often one unknown account may raise the "unknown account transmitting" alert.
const UNKNOWN_ALERT_EVERY: SignedDuration = SignedDuration::from_hours(1);
/// Bound on remembered unknown accounts, so a scan of made-up accounts cannot grow memory.
const UNKNOWN_ALERT_MEMORY: usize = 4096;
/// Refusals for the timestamp in a row, with nothing accepted in between, after which an
/// account's clock is called wrong. The first NAK carries our time; a transmitter that adopts
/// it is accepted on its next try and never raises the alert.
const CLOCK_ALERT_AFTER: u32 = 2;
/// How often one account may raise the "clock off, alarms refused" alert.
const CLOCK_ALERT_EVERY: SignedDuration = SignedDuration::from_hours(1);
/// Bound on accounts remembered for clock refusals.
const CLOCK_ALERT_MEMORY: usize = 4096;

/// What to do with one frame.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Dead-letter first (durable before any answer).
    pub dead_letter: Option<DeadLetter>,
    /// A gateway alert to journal; best effort, does not gate the answer.
    pub alert: Option<Submission>,
    /// Must be committed before `reply` is sent; if the commit fails, the listener answers a
    /// NAK instead and the transmitter retries.
    pub commit: Option<Submission>,
    /// Bytes for the transmitter.
    pub reply: Option<Vec<u8>>,
    /// The ACK is for an encrypted frame (for counters and tests).
    pub encrypted: bool,
}

impl Decision {
    fn reject(reason: &str, detail: String, origin: &str, raw: &[u8]) -> Decision {
        Decision {
            dead_letter: Some(DeadLetter {
                reason: reason.into(),
                detail,
                origin: origin.into(),
                raw: raw.to_vec(),
            }),
            ..Decision::default()
        }
    }

    fn answer(mut self, reply: Vec<u8>) -> Decision {
        self.reply = Some(reply);
        self
    }
}

/// One account as the handler needs it.
#[derive(Clone, Debug)]
pub struct AccountEntry {
    /// `None`: the account sends plaintext.
    pub key: Option<AesKey>,
}

/// The receiver's policy and state for one adapter instance.
#[derive(Debug)]
pub struct Handler {
    mapper: Mapper,
    accounts: HashMap<String, AccountEntry>,
    accept_unknown: bool,
    window: Window,
    retransmit_window: Duration,
    unknown_alerts: Mutex<HashMap<String, Timestamp>>,
    clock_faults: Mutex<HashMap<String, ClockFault>>,
}

/// One account's recent refusals for its clock.
#[derive(Debug, Default)]
struct ClockFault {
    /// Refused in a row since the last accepted frame.
    refused: u32,
    /// When the last alert was raised.
    alerted: Option<Timestamp>,
}

impl Handler {
    pub fn new(
        mapper: Mapper,
        accounts: HashMap<String, AccountEntry>,
        accept_unknown: bool,
        window: Window,
    ) -> Handler {
        Handler {
            mapper,
            accounts,
            accept_unknown,
            window,
            retransmit_window: DEFAULT_RETRANSMIT_WINDOW,
            unknown_alerts: Mutex::new(HashMap::new()),
            clock_faults: Mutex::new(HashMap::new()),
        }
    }

    /// How long a frame with the same account, sequence and message is a retransmission
    /// (`retransmit_window`; [`DEFAULT_RETRANSMIT_WINDOW`] unless set).
    pub fn with_retransmit_window(mut self, window: Duration) -> Handler {
        self.retransmit_window = window;
        self
    }

    pub fn adapter(&self) -> &str {
        self.mapper.adapter()
    }

    /// A frame the decoder had to throw away for size.
    pub fn oversize(&self, err: &FrameError, origin: &str, head: &[u8]) -> Decision {
        Decision::reject(err.reason(), err.to_string(), origin, head)
    }

    /// Decides what one complete frame (LF … CR) becomes.
    pub fn handle(&self, raw: &[u8], origin: &str, now: Timestamp, rng: &mut impl Rng) -> Decision {
        let frame = match Frame::decode(raw) {
            Ok((f, _)) => f,
            Err(e) => return Decision::reject(e.reason(), e.to_string(), origin, raw),
        };
        let h = &frame.header;
        if matches!(h.token, Token::Ack | Token::Nak | Token::Duh | Token::Rsp) {
            return Decision::reject(
                "unexpected_response",
                format!(
                    "a transmitter sent us a {} (we are the receiver)",
                    h.token.as_str()
                ),
                origin,
                raw,
            );
        }
        let Some(account) = h.account.as_deref() else {
            return Decision::reject("bad_frame", "frame has no #account".into(), origin, raw);
        };
        let entry = match self.accounts.get(account) {
            Some(e) => Some(e),
            None if self.accept_unknown => None,
            None => {
                let mut out = Decision::reject(
                    "unknown_account",
                    format!("account {account} is not in this adapter's accounts"),
                    origin,
                    raw,
                );
                out.alert = self.unknown_account_alert(account, origin, now);
                return out.answer(response::duh(h));
            }
        };
        if let Token::Other(t) = &h.token {
            let detail = format!("ID token \"{t}\" is not one this receiver processes");
            return Decision::reject("unknown_token", detail, origin, raw).answer(response::duh(h));
        }
        let key = entry.and_then(|e| e.key.as_ref());
        let payload = match (&frame.body, key) {
            (Body::Encrypted(_), None) => {
                let detail =
                    format!("account {account} sent an encrypted frame but has no key_file");
                return Decision::reject("decrypt_failed", detail, origin, raw)
                    .answer(response::nak(now));
            }
            (Body::Encrypted(hex), Some(key)) => match open(key, hex) {
                Ok(p) => p,
                Err(detail) => {
                    let detail = format!("account {account}: {detail}");
                    return Decision::reject("decrypt_failed", detail, origin, raw)
                        .answer(response::nak(now));
                }
            },
            (Body::Clear(_), Some(_)) => {
                let detail = format!("account {account} has a key but sent a plaintext frame");
                return Decision::reject("unencrypted", detail, origin, raw)
                    .answer(response::duh(h));
            }
            (Body::Clear(p), None) => p.clone(),
        };
        if let Some(ts) = payload.timestamp
            && !self.window.accepts(ts, now)
        {
            let detail = format!(
                "account {account}: frame time {} is outside the window around our {}",
                ts.format(),
                crate::timestamp::Dc09Time::from_timestamp(now).format()
            );
            let mut out =
                Decision::reject("stale_timestamp", detail, origin, raw).answer(response::nak(now));
            out.alert = self.clock_fault_alert(account, ts.timestamp(), origin, now);
            return out;
        }
        self.clock_accepted(account);
        let events = match self.mapper.drafts(h, &payload) {
            Ok(ev) => ev,
            Err(e) => {
                let detail = format!("account {account}: {e}");
                return Decision::reject("bad_data", detail, origin, raw).answer(response::duh(h));
            }
        };
        let dedupe_key = (!events.is_empty()).then(|| dedupe_key(h, &payload));
        Decision {
            commit: Some(Submission {
                events,
                dedupe_key,
                dedupe_window: Some(self.retransmit_window),
                seen: vec![Seen {
                    device_id: mapping::device_id(account),
                    registry_keys: keys::reported(account, None),
                }],
                // Other fields keep their defaults: DC-09 cannot tell a retransmission from an
                // original, so `first_delivery` stays false and the key (within the window)
                // decides.
                ..Submission::default()
            }),
            reply: Some(response::ack(h, key, now, rng)),
            encrypted: key.is_some(),
            ..Decision::default()
        }
    }

    /// At most one alert per account per hour.
    fn unknown_account_alert(
        &self,
        account: &str,
        origin: &str,
        now: Timestamp,
    ) -> Option<Submission> {
        let mut seen = self.unknown_alerts.lock().ok()?;
        if let Some(last) = seen.get(account)
            && now.duration_since(*last) < UNKNOWN_ALERT_EVERY
        {
            return None;
        }
        if seen.len() >= UNKNOWN_ALERT_MEMORY {
            seen.retain(|_, t| now.duration_since(*t) < UNKNOWN_ALERT_EVERY);
            if seen.len() >= UNKNOWN_ALERT_MEMORY {
                return None;
            }
        }
        seen.insert(account.to_owned(), now);
        // `unknown` rather than `tamper` or `device_fault`: most often this is a panel nobody
        // added to the config, and the message says what to do; medium so someone looks.
        let mut d = EventDraft::new(
            Kind::Unknown,
            Phase::Point,
            mapping::device_id(account),
            self.adapter().to_owned(),
        );
        d.data.priority = Priority::Medium;
        d.data.message = Some(format!(
            "Unknown DC-09 account {account} transmitting to {}; add it to accounts or check the panel",
            self.adapter()
        ));
        d.data.raw = Some(Raw {
            protocol: PROTOCOL.into(),
            topic: None,
            path: None,
            payload: serde_json::json!({ "alert": "unknown_account", "account": account, "origin": origin }),
            upstream_id: None,
        });
        d.registry_keys = keys::reported(account, None);
        Some(Submission {
            events: vec![d],
            ..Submission::default()
        })
    }
}

impl Handler {
    /// An account's frame passed the timestamp window: its clock is fine (again).
    fn clock_accepted(&self, account: &str) {
        if let Ok(mut faults) = self.clock_faults.lock()
            && let Some(f) = faults.get_mut(account)
        {
            f.refused = 0;
        }
    }

    /// Counts a refusal for the clock; after [`CLOCK_ALERT_AFTER`] in a row, a gateway alert
    /// (at most one per account per [`CLOCK_ALERT_EVERY`]): every alarm this panel sends is
    /// being refused until someone sets its clock.
    fn clock_fault_alert(
        &self,
        account: &str,
        sent: Timestamp,
        origin: &str,
        now: Timestamp,
    ) -> Option<Submission> {
        let mut faults = self.clock_faults.lock().ok()?;
        if faults.len() >= CLOCK_ALERT_MEMORY && !faults.contains_key(account) {
            faults.retain(|_, f| {
                f.refused > 0
                    || f.alerted
                        .is_some_and(|t| now.duration_since(t) < CLOCK_ALERT_EVERY)
            });
            if faults.len() >= CLOCK_ALERT_MEMORY {
                return None;
            }
        }
        let fault = faults.entry(account.to_owned()).or_default();
        fault.refused = fault.refused.saturating_add(1);
        if fault.refused < CLOCK_ALERT_AFTER
            || fault
                .alerted
                .is_some_and(|t| now.duration_since(t) < CLOCK_ALERT_EVERY)
        {
            return None;
        }
        fault.alerted = Some(now);
        let refused = fault.refused;
        drop(faults);
        let off = now.duration_since(sent);
        let side = if off.is_negative() {
            "ahead of"
        } else {
            "behind"
        };
        let secs = off.as_secs().unsigned_abs();
        // device_fault at high priority: the panel's own alarms (fire, pendant) are refused
        // until its clock is set, so someone must look now.
        let mut d = EventDraft::new(
            Kind::DeviceFault,
            Phase::Point,
            mapping::device_id(account),
            self.adapter().to_owned(),
        );
        d.data.priority = Priority::High;
        d.data.message = Some(format!(
            "DC-09 panel {account}: clock off by {secs} s ({side} the gateway's) — its alarms are being refused; set the panel's clock (it ignores the time in our NAK)"
        ));
        d.data.raw = Some(Raw {
            protocol: PROTOCOL.into(),
            topic: None,
            path: None,
            payload: serde_json::json!({
                "alert": "clock_fault",
                "account": account,
                "origin": origin,
                "offset_s": off.as_secs(),
                "refused_in_a_row": refused,
            }),
            upstream_id: None,
        });
        d.registry_keys = keys::reported(account, None);
        Some(Submission {
            events: vec![d],
            ..Submission::default()
        })
    }
}

/// Decrypts and parses; a timestamp is mandatory inside encryption (it is the anti-replay).
fn open(key: &AesKey, hex: &str) -> Result<Payload, String> {
    let text = crypto::open(key, hex).map_err(|e| e.to_string())?;
    let payload = parse_payload(&text)
        .map_err(|e| format!("decrypted text is not DC-09 ({e}): wrong key?"))?;
    if payload.timestamp.is_none() {
        return Err("encrypted frame has no timestamp".into());
    }
    Ok(payload)
}

/// `dc09:<account>:<seq>:<digest>`, the digest (SHA-256, first 128 bits) over the token and the
/// whole message: data, extended data and timestamp. DC-09 makes a frame a retransmission when
/// account, sequence *and* message are the same; a transmitter repeats the message unchanged
/// (timestamp included) when it retries. So a panel that restarted its numbering (after a power
/// cycle, or at the 9999 wrap) and reports the same event again, at a new time, gets a new key:
/// a new alarm, never taken for a retransmission. The key is about the plaintext, so an
/// encrypted retry with a new pad still matches. The key only counts within
/// `retransmit_window`.
pub fn dedupe_key(h: &Header, payload: &Payload) -> String {
    let mut d = Sha256::new();
    d.update(h.token.as_str().as_bytes());
    d.update([0u8]);
    d.update(payload.data.as_bytes());
    for x in &payload.xdata {
        d.update([0u8]);
        d.update(x.id.to_string().as_bytes());
        d.update(x.value.as_bytes());
    }
    d.update([0u8]);
    if let Some(ts) = payload.timestamp {
        d.update(ts.format().as_bytes());
    }
    let digest = d.finalize();
    format!(
        "dc09:{}:{}:{}",
        h.account.as_deref().unwrap_or_default(),
        h.seq,
        hex::encode(&digest[..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyFormat;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const NOW: &str = "2024-06-01T12:00:05Z";
    const P2: &[u8] = b"\nD315003B\"ADM-CID\"0002L0#1234[#1234|1101 01 003]_12:00:00,06-01-2024\r";

    fn handler(accept_unknown: bool) -> Handler {
        let mut accounts = HashMap::new();
        accounts.insert("1234".to_owned(), AccountEntry { key: None });
        accounts.insert(
            "5678".to_owned(),
            AccountEntry {
                key: Some(AesKey::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap()),
            },
        );
        Handler::new(
            Mapper::new("alarms", &std::collections::BTreeMap::new()),
            accounts,
            accept_unknown,
            Window::default(),
        )
    }

    fn run(h: &Handler, raw: &[u8], now: &str) -> Decision {
        h.handle(
            raw,
            "tcp:127.0.0.1:1",
            now.parse().unwrap(),
            &mut StdRng::seed_from_u64(0),
        )
    }

    #[test]
    fn a_good_frame_commits_then_acks() {
        let o = run(&handler(false), P2, NOW);
        assert_eq!(o.dead_letter, None);
        let c = o.commit.unwrap();
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.seen[0].device_id, "dc09:1234");
        assert!(c.dedupe_key.unwrap().starts_with("dc09:1234:0002:"));
        assert_eq!(
            o.reply.unwrap(),
            crate::frame::wrap_message(b"\"ACK\"0002L0#1234[]")
        );
    }

    #[test]
    fn stale_timestamp_gets_nak_with_receiver_time_and_a_dead_letter() {
        let o = run(&handler(false), P2, "2024-06-01T12:01:00Z");
        assert_eq!(o.commit, None);
        assert_eq!(o.dead_letter.unwrap().reason, "stale_timestamp");
        assert_eq!(
            o.reply.unwrap(),
            response::nak("2024-06-01T12:01:00Z".parse().unwrap())
        );
    }

    #[test]
    fn a_clock_refused_twice_in_a_row_raises_one_alert_per_hour() {
        let h = handler(false);
        // P2 says 12:00:00; at 12:00:55 it is 55 s old (the window is 40 s).
        let late = "2024-06-01T12:00:55Z";
        let first = run(&h, P2, late);
        assert_eq!(first.dead_letter.unwrap().reason, "stale_timestamp");
        assert_eq!(
            first.alert, None,
            "one refusal: the transmitter may adopt our time"
        );
        let second = run(&h, P2, late);
        assert_eq!(
            second.reply.unwrap(),
            response::nak(late.parse().unwrap()),
            "still a NAK with our time"
        );
        let alert = second.alert.unwrap();
        let e = &alert.events[0];
        assert_eq!(e.data.kind, Kind::DeviceFault);
        assert_eq!(e.data.priority, Priority::High);
        let message = e.data.message.as_deref().unwrap();
        assert!(
            message.contains("panel 1234: clock off by 55 s (behind the gateway's)")
                && message.contains("its alarms are being refused"),
            "{message}"
        );
        assert_eq!(run(&h, P2, "2024-06-01T12:00:56Z").alert, None);
        assert!(run(&h, P2, "2024-06-01T13:00:56Z").alert.is_some());
    }

    #[test]
    fn an_accepted_frame_resets_the_clock_refusals() {
        let h = handler(false);
        assert_eq!(run(&h, P2, "2024-06-01T12:00:55Z").alert, None);
        assert!(run(&h, P2, NOW).commit.is_some());
        assert_eq!(run(&h, P2, "2024-06-01T12:00:55Z").alert, None);
    }

    #[test]
    fn unknown_account_gets_duh_a_dead_letter_and_one_alert_per_hour() {
        let h = handler(false);
        let raw = crate::frame::wrap_message(b"\"NULL\"0001L0#9999[]");
        let o = run(&h, &raw, NOW);
        assert_eq!(o.dead_letter.unwrap().reason, "unknown_account");
        assert_eq!(
            o.reply.unwrap(),
            crate::frame::wrap_message(b"\"DUH\"0001L0#9999[]")
        );
        let alert = o.alert.unwrap();
        assert_eq!(alert.events[0].data.priority, Priority::Medium);
        assert!(
            alert.events[0]
                .data
                .message
                .as_ref()
                .unwrap()
                .contains("9999")
        );
        assert_eq!(run(&h, &raw, "2024-06-01T12:30:00Z").alert, None);
        assert!(run(&h, &raw, "2024-06-01T13:00:06Z").alert.is_some());
    }

    #[test]
    fn unknown_account_is_accepted_when_configured() {
        let raw = crate::frame::wrap_message(b"\"NULL\"0001L0#9999[]");
        let o = run(&handler(true), &raw, NOW);
        assert!(o.commit.is_some());
        assert_eq!(o.commit.unwrap().dedupe_key, None);
    }

    #[test]
    fn unknown_token_gets_duh() {
        let raw = crate::frame::wrap_message(b"\"XNM\"0001L0#1234[]");
        let o = run(&handler(false), &raw, NOW);
        assert_eq!(o.dead_letter.unwrap().reason, "unknown_token");
        assert_eq!(
            o.reply.unwrap(),
            crate::frame::wrap_message(b"\"DUH\"0001L0#1234[]")
        );
    }

    #[test]
    fn bad_crc_gets_no_answer_and_a_dead_letter() {
        let mut raw = P2.to_vec();
        raw[1] = b'0';
        let o = run(&handler(false), &raw, NOW);
        assert_eq!(o.reply, None);
        assert_eq!(o.dead_letter.unwrap().reason, "bad_crc");
    }

    #[test]
    fn plaintext_from_an_account_with_a_key_is_refused() {
        let raw = crate::frame::wrap_message(b"\"NULL\"0001L0#5678[]");
        let o = run(&handler(false), &raw, NOW);
        assert_eq!(o.dead_letter.unwrap().reason, "unencrypted");
        assert!(o.commit.is_none());
    }

    #[test]
    fn retransmission_has_the_same_dedupe_key_but_new_content_does_not() {
        let h = handler(false);
        let a = run(&h, P2, NOW).commit.unwrap().dedupe_key;
        assert_eq!(a, run(&h, P2, NOW).commit.unwrap().dedupe_key);
        let other = crate::frame::wrap_message(b"\"ADM-CID\"0002L0#1234[#1234|1101 01 004]");
        assert_ne!(a, run(&h, &other, NOW).commit.unwrap().dedupe_key);
    }

    #[test]
    fn a_reused_sequence_number_with_a_new_timestamp_is_not_a_retransmission() {
        let h = handler(false);
        let a = run(&h, P2, NOW).commit.unwrap();
        let later = crate::frame::wrap_message(
            b"\"ADM-CID\"0002L0#1234[#1234|1101 01 003]_12:00:02,06-01-2024",
        );
        let b = run(&h, &later, NOW).commit.unwrap();
        assert_ne!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.dedupe_window, Some(DEFAULT_RETRANSMIT_WINDOW));
        let h = handler(false).with_retransmit_window(Duration::from_secs(3));
        assert_eq!(
            run(&h, P2, NOW).commit.unwrap().dedupe_window,
            Some(Duration::from_secs(3))
        );
    }
}
