//! A nurse-call block → the submission to commit: header 1 calls become events (call address
//! → registry `address`, display text → message, priority 1/2/3 → high/medium/low, call type 1
//! → the call's `cleared`), other transactions are dead letters. Pure; the adapter's memory
//! ([`Memory`]) is passed in and only advanced once the journal committed the submission.
//!
//! **Retransmissions.** ESPA blocks carry no sequence number: a control station whose ACK was
//! lost sends the same bytes again at once. The dedupe key is the block's hash with a
//! generation that moves on whenever a block differs from the one before it, so an identical
//! block right after itself (within `retransmit_window`) is the retransmission, while the
//! same call again after a reset is a new call. The generation and the kind each open call was
//! raised as are adapter state, committed with the events, so a restart forgets neither.

use std::collections::BTreeMap;

use atgw_sdk::event::Raw;
use atgw_sdk::{EventDraft, Kind, Phase, Priority, Seen, StateUpdate, Submission};

use crate::block::{Block, Field, Header};
use crate::config::AdapterConfig;

/// `raw.protocol` of this adapter's events.
pub const PROTOCOL: &str = "espa444";
/// The registry key a call is matched on: `[[device]] match = { address = "1234" }`.
pub const ADDRESS_KEY: &str = "address";

/// What a call's type record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallType {
    Reset,
    Speech,
    Standard,
}

/// Why a good block is not an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("transaction type `{0}` is not a call; only header 1 (call to pager) becomes an event")]
    NotACall(char),
    #[error("the call has no call address (record 1)")]
    NoAddress,
    #[error("call address must be 1–16 letters or digits")]
    BadAddress,
    #[error("priority record must be 1, 2 or 3")]
    BadPriority,
    #[error("call type record must be 1, 2 or 3")]
    BadCallType,
}

impl MapError {
    pub fn reason(&self) -> &'static str {
        match self {
            MapError::NotACall(_) => "unsupported_transaction",
            MapError::NoAddress => "no_call_address",
            MapError::BadAddress => "bad_call_address",
            MapError::BadPriority => "bad_priority",
            MapError::BadCallType => "bad_call_type",
        }
    }

    /// Whether the block should still be ACKed: it is well formed, just not ours to act on, and
    /// a NAK would only make the control station send it again and again.
    pub fn ack(&self) -> bool {
        matches!(self, MapError::NotACall(_))
    }
}

/// A header 1 block, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub address: String,
    pub text: String,
    pub priority: Option<Priority>,
    pub call_type: Option<CallType>,
}

impl Call {
    pub fn read(block: &Block) -> Result<Call, MapError> {
        if block.header != Header::CallToPager {
            return Err(MapError::NotACall(char::from(block.header.byte())));
        }
        let address = block
            .get(Field::CallAddress)
            .ok_or(MapError::NoAddress)?
            .trim();
        if address.is_empty()
            || address.len() > 16
            || !address.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(MapError::BadAddress);
        }
        let priority = match block.get(Field::Priority).map(str::trim) {
            None | Some("") => None,
            Some("1") => Some(Priority::High),
            Some("2") => Some(Priority::Medium),
            Some("3") => Some(Priority::Low),
            Some(_) => return Err(MapError::BadPriority),
        };
        let call_type = match block.get(Field::CallType).map(str::trim) {
            None | Some("") => None,
            Some("1") => Some(CallType::Reset),
            Some("2") => Some(CallType::Speech),
            Some("3") => Some(CallType::Standard),
            Some(_) => return Err(MapError::BadCallType),
        };
        Ok(Call {
            address: address.to_owned(),
            text: block.get(Field::Message).unwrap_or("").trim().to_owned(),
            priority,
            call_type,
        })
    }
}

/// What the adapter remembers across blocks (and restarts, through its state).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    generation: u64,
    last: Option<u64>,
    /// Call address → the kind its open call was raised as, so its reset clears that alert
    /// even when the reset's text (often empty) would map to another kind.
    open: BTreeMap<String, Kind>,
}

const GENERATION_KEY: &str = "generation";
const OPEN_PREFIX: &str = "open:";

/// One block's submission and what the memory becomes once it is committed.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub submission: Submission,
    next: Memory,
}

impl Memory {
    /// From the adapter's committed state (unknown or unreadable keys are ignored).
    pub fn from_state(pairs: &[(String, String)]) -> Memory {
        let mut m = Memory::default();
        for (k, v) in pairs {
            if k == GENERATION_KEY {
                if let Some((g, h)) = v.split_once(':') {
                    m.generation = g.parse().unwrap_or(0);
                    m.last = u64::from_str_radix(h, 16).ok();
                }
            } else if let Some(addr) = k.strip_prefix(OPEN_PREFIX)
                && let Ok(kind) = v.parse::<Kind>()
            {
                m.open.insert(addr.to_owned(), kind);
            }
        }
        m
    }

    /// The memory after a committed plan.
    pub fn commit(&mut self, plan: Plan) {
        *self = plan.next;
    }

    /// The submission for `call` (from `raw`, SOH through BCC).
    pub fn plan(&self, cfg: &AdapterConfig, block: &Block, call: &Call, raw: &[u8]) -> Plan {
        let hash = fnv1a(raw);
        let mut next = self.clone();
        if self.last != Some(hash) {
            next.generation = self.generation.wrapping_add(1);
            next.last = Some(hash);
        }
        let reset = call.call_type == Some(CallType::Reset);
        let kind = match (reset, self.open.get(&call.address)) {
            (true, Some(k)) => *k,
            _ => cfg.kind_of(&call.address, &call.text),
        };
        let mut state = vec![StateUpdate {
            key: GENERATION_KEY.into(),
            value: Some(format!("{}:{hash:016x}", next.generation)),
        }];
        let open_key = format!("{OPEN_PREFIX}{}", call.address);
        if reset {
            next.open.remove(&call.address);
            state.push(StateUpdate {
                key: open_key,
                value: None,
            });
        } else {
            next.open.insert(call.address.clone(), kind);
            state.push(StateUpdate {
                key: open_key,
                value: Some(kind.as_str().into()),
            });
        }
        let device_id = format!("espa:{}", call.address);
        let keys: BTreeMap<String, String> =
            [(ADDRESS_KEY.to_owned(), call.address.clone())].into();
        let phase = if reset { Phase::Cleared } else { Phase::Raised };
        let mut draft = EventDraft::new(kind, phase, &device_id, &cfg.name);
        draft.registry_keys = keys.clone();
        if let Some(p) = call.priority {
            draft.data.priority = p;
        }
        if !call.text.is_empty() {
            draft.data.message = Some(call.text.clone());
        }
        draft.data.codes.vendor = call.call_type.map(|t| {
            match t {
                CallType::Reset => "espa444:reset",
                CallType::Speech => "espa444:speech_call",
                CallType::Standard => "espa444:standard_call",
            }
            .to_owned()
        });
        let records: serde_json::Map<String, serde_json::Value> = block
            .records
            .iter()
            .map(|r| {
                (
                    char::from(r.field.byte()).to_string(),
                    r.data.clone().into(),
                )
            })
            .collect();
        draft.data.raw = Some(Raw {
            protocol: PROTOCOL.into(),
            topic: None,
            path: None,
            payload: serde_json::json!({ "header": "1", "records": records }),
            upstream_id: None,
        });
        Plan {
            submission: Submission {
                events: vec![draft],
                dedupe_key: Some(format!("{}:{hash:016x}", next.generation)),
                dedupe_window: Some(cfg.retransmit_window),
                first_delivery: false,
                state,
                seen: vec![Seen {
                    device_id,
                    registry_keys: keys,
                }],
            },
            next,
        }
    }
}

/// FNV-1a, 64 bits: a stable hash of a block's bytes (the same across builds and restarts,
/// which std's hasher does not promise).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KindRule, Transport};

    fn cfg() -> AdapterConfig {
        let mut c = AdapterConfig::new(
            "nc",
            Transport {
                listen: Some("127.0.0.1:1".into()),
                ..Transport::default()
            },
        );
        c.kinds = vec![KindRule {
            addresses: None,
            text: Some("fall".into()),
            kind: Kind::Fall,
        }];
        c
    }

    fn block(records: &[(Field, &str)]) -> Block {
        Block::new(
            Header::CallToPager,
            records.iter().map(|(f, d)| (*f, (*d).to_owned())),
        )
    }

    fn plan(m: &Memory, b: &Block) -> Plan {
        let call = Call::read(b).unwrap();
        m.plan(&cfg(), b, &call, &b.encode())
    }

    #[test]
    fn a_call_becomes_an_event_with_address_text_and_priority() {
        let b = block(&[
            (Field::CallAddress, "1234"),
            (Field::Message, "Fall Room 12"),
            (Field::CallType, "2"),
            (Field::Priority, "1"),
        ]);
        let p = plan(&Memory::default(), &b);
        let d = &p.submission.events[0];
        assert_eq!(
            (d.data.kind, d.data.phase, d.data.priority),
            (Kind::Fall, Phase::Raised, Priority::High)
        );
        assert_eq!(d.data.message.as_deref(), Some("Fall Room 12"));
        assert_eq!(
            d.registry_keys.get("address").map(String::as_str),
            Some("1234")
        );
        assert_eq!(d.data.codes.vendor.as_deref(), Some("espa444:speech_call"));
        assert_eq!(d.data.device.id, "espa:1234");
        for (rec, p) in [("2", Priority::Medium), ("3", Priority::Low)] {
            let b = block(&[(Field::CallAddress, "1"), (Field::Priority, rec)]);
            assert_eq!(
                plan(&Memory::default(), &b).submission.events[0]
                    .data
                    .priority,
                p
            );
        }
    }

    #[test]
    fn a_reset_clears_the_kind_the_call_was_raised_as() {
        let mut m = Memory::default();
        let call = block(&[
            (Field::CallAddress, "1234"),
            (Field::Message, "Fall Room 12"),
        ]);
        let p = plan(&m, &call);
        m.commit(p);
        // The reset's text says nothing about a fall; it still clears the fall.
        let reset = block(&[(Field::CallAddress, "1234"), (Field::CallType, "1")]);
        let p = plan(&m, &reset);
        let d = &p.submission.events[0];
        assert_eq!((d.data.kind, d.data.phase), (Kind::Fall, Phase::Cleared));
        m.commit(p);
        // The memory survives a restart through the state it wrote.
        let state: Vec<(String, String)> = plan(&m, &call)
            .submission
            .state
            .iter()
            .filter_map(|s| Some((s.key.clone(), s.value.clone()?)))
            .collect();
        let restored = Memory::from_state(&state);
        assert_eq!(restored.open.get("1234"), Some(&Kind::Fall));
    }

    #[test]
    fn the_same_block_again_is_a_retransmission_but_not_after_another() {
        let mut m = Memory::default();
        let a = block(&[(Field::CallAddress, "7")]);
        let r = block(&[(Field::CallAddress, "7"), (Field::CallType, "1")]);
        let p1 = plan(&m, &a);
        let k1 = p1.submission.dedupe_key.clone();
        m.commit(p1);
        // Not committed (the journal failed): the retransmission gets the same key anyway.
        assert_eq!(plan(&m, &a).submission.dedupe_key, k1);
        let p2 = plan(&m, &r);
        m.commit(p2);
        let p3 = plan(&m, &a);
        assert_ne!(p3.submission.dedupe_key, k1);
    }

    #[test]
    fn blocks_that_are_not_calls_say_why() {
        let status = Block::new(
            Header::StatusInformation,
            [(Field::CallStatus, "3".to_owned())],
        );
        assert!(Call::read(&status).unwrap_err().ack());
        assert_eq!(
            Call::read(&block(&[(Field::Message, "x")])).unwrap_err(),
            MapError::NoAddress
        );
        assert_eq!(
            Call::read(&block(&[(Field::CallAddress, "1 2")])).unwrap_err(),
            MapError::BadAddress
        );
        assert_eq!(
            Call::read(&block(&[(Field::CallAddress, "1"), (Field::Priority, "4")])).unwrap_err(),
            MapError::BadPriority
        );
        assert!(!MapError::BadCallType.ack());
    }
}
