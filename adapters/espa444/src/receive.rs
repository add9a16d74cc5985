//! The link as the paging system sees it (atgw's adapter, station `2` by default): a pure
//! state machine from (state, token or commit answer, time) to (state, actions).
//!
//! ```text
//!            <other> ENQ                 <own> ENQ / ACK
//!   Idle ─────────────────▶ Polled ──────────────────────▶ Selected ◀──────┐
//!    ▲  ◀── EOT, timeout ──┘                                │   │         │
//!    │                                  good block / Deliver│   │bad block│
//!    │                                                      ▼   └─ NAK ───┘
//!    └──────────── EOT, block_timeout ──────────────── Receiving
//!                                          answered(ack) / ACK or NAK → Selected
//! ```
//!
//! The one rule: a good block is answered only through [`Receiver::answered`], which the I/O
//! side calls after the journal committed the call (ACK) or failed to (NAK, and the control
//! station retransmits). A block that arrives while this station is not selected is not ours
//! to answer (legacy.md §4.3: ignore until EOT).

use std::time::Duration;

use crate::block::{ACK, BlockError, NAK};
use crate::wire::Token;

/// Where the link is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Nobody selected us.
    Idle,
    /// Another station was polled or selected (some control stations announce themselves with
    /// `<own addr> ENQ` first); `<our addr> ENQ` may follow.
    Polled { since: Duration },
    /// We answered our select with ACK: blocks for us may follow until EOT.
    Selected { since: Duration },
    /// A good block is with the journal; its answer waits for the commit.
    Receiving,
}

/// What the I/O side must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the control station.
    Send(Vec<u8>),
    /// A block with a good BCC: decide (commit or dead-letter), then call
    /// [`Receiver::answered`]. `raw` is SOH through BCC.
    Deliver { raw: Vec<u8> },
    /// A block that is not one (bad BCC, unparseable, cut short): dead-letter `raw`; the NAK is
    /// already in the actions after it.
    Reject { raw: Vec<u8>, error: RejectReason },
}

/// Why a block was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectReason {
    Block(BlockError),
    /// Cut short by a control byte or by length.
    Broken,
}

impl RejectReason {
    pub fn reason(&self) -> &'static str {
        match self {
            RejectReason::Block(e) => e.reason(),
            RejectReason::Broken => "broken_block",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::Block(e) => e.fmt(f),
            RejectReason::Broken => {
                f.write_str("block cut short by a link control byte or by its length")
            }
        }
    }
}

/// The paging-system side of one link.
#[derive(Clone, Debug)]
pub struct Receiver {
    state: State,
    /// Our station address (`'2'`).
    own: u8,
    /// How long a selected or polled link waits for its next token before it is idle again.
    block_timeout: Duration,
    /// When the control station was last heard (any token), for link supervision.
    last_heard: Option<Duration>,
}

impl Receiver {
    pub fn new(own: u8, block_timeout: Duration) -> Receiver {
        Receiver {
            state: State::Idle,
            own,
            block_timeout,
            last_heard: None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// When the control station was last heard.
    pub fn last_heard(&self) -> Option<Duration> {
        self.last_heard
    }

    /// One token from the control station at `now`.
    pub fn on(&mut self, token: Token, now: Duration) -> Vec<Action> {
        self.last_heard = Some(now);
        if self.state == State::Receiving {
            // The I/O side does not read while a commit is pending; a token here is a bug
            // there, and dropping it is what a slow slave would do anyway.
            return Vec::new();
        }
        match token {
            Token::Eot => {
                self.state = State::Idle;
                Vec::new()
            }
            Token::Enq(a) if a == self.own => {
                self.state = State::Selected { since: now };
                vec![Action::Send(vec![ACK])]
            }
            Token::Enq(_) => {
                self.state = State::Polled { since: now };
                Vec::new()
            }
            Token::Block(raw) => match self.state {
                State::Selected { .. } => match crate::block::Block::decode(&raw) {
                    Ok(_) => {
                        self.state = State::Receiving;
                        vec![Action::Deliver { raw }]
                    }
                    Err(e) => self.refuse(raw, RejectReason::Block(e), now),
                },
                _ => Vec::new(),
            },
            Token::Broken(raw) => match self.state {
                State::Selected { .. } => self.refuse(raw, RejectReason::Broken, now),
                _ => Vec::new(),
            },
            // We are a slave: acknowledgements are not for us.
            Token::Ack | Token::Nak => Vec::new(),
        }
    }

    fn refuse(&mut self, raw: Vec<u8>, error: RejectReason, now: Duration) -> Vec<Action> {
        self.state = State::Selected { since: now };
        vec![Action::Reject { raw, error }, Action::Send(vec![NAK])]
    }

    /// The delivered block's fate: `ack` when it is committed (or deliberately dead-lettered),
    /// `false` when the journal failed, so the control station sends it again.
    pub fn answered(&mut self, ack: bool, now: Duration) -> Vec<Action> {
        if self.state != State::Receiving {
            return Vec::new();
        }
        self.state = State::Selected { since: now };
        vec![Action::Send(vec![if ack { ACK } else { NAK }])]
    }

    /// When [`Receiver::tick`] has something to do.
    pub fn deadline(&self) -> Option<Duration> {
        match self.state {
            State::Polled { since } | State::Selected { since } => {
                Some(since.saturating_add(self.block_timeout))
            }
            State::Idle | State::Receiving => None,
        }
    }

    /// Time passes: a link left selected or polled past `block_timeout` is idle again (the
    /// control station went away without EOT).
    pub fn tick(&mut self, now: Duration) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.state = State::Idle;
        }
    }

    /// Whether the control station was heard within `silence` of `now` (`started`: when the
    /// link was opened, so a new link gets one full interval).
    pub fn heard_within(&self, silence: Duration, started: Duration, now: Duration) -> bool {
        let from = self.last_heard.unwrap_or(started).max(started);
        now.saturating_sub(from) < silence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, Field, Header};

    const T: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn good() -> Vec<u8> {
        Block::new(
            Header::CallToPager,
            [(Field::CallAddress, "1234".to_owned())],
        )
        .encode()
    }

    fn selected() -> Receiver {
        let mut r = Receiver::new(b'2', T);
        assert!(r.on(Token::Enq(b'1'), ms(0)).is_empty());
        assert_eq!(r.on(Token::Enq(b'2'), ms(1)), vec![Action::Send(vec![ACK])]);
        r
    }

    #[test]
    fn own_select_is_acked_and_others_are_not() {
        let mut r = Receiver::new(b'2', T);
        assert!(r.on(Token::Enq(b'3'), ms(0)).is_empty());
        assert_eq!(r.state(), &State::Polled { since: ms(0) });
        let r = selected();
        assert_eq!(r.state(), &State::Selected { since: ms(1) });
    }

    #[test]
    fn a_good_block_is_answered_only_after_the_commit() {
        let mut r = selected();
        assert_eq!(
            r.on(Token::Block(good()), ms(5)),
            vec![Action::Deliver { raw: good() }]
        );
        assert_eq!(r.state(), &State::Receiving);
        // Nothing is sent until the I/O side says how the commit went.
        assert!(r.on(Token::Block(good()), ms(6)).is_empty());
        assert_eq!(r.answered(true, ms(7)), vec![Action::Send(vec![ACK])]);
        assert_eq!(r.state(), &State::Selected { since: ms(7) });
    }

    #[test]
    fn a_failed_commit_is_naked_and_the_retransmission_delivered_again() {
        let mut r = selected();
        r.on(Token::Block(good()), ms(5));
        assert_eq!(r.answered(false, ms(6)), vec![Action::Send(vec![NAK])]);
        assert_eq!(
            r.on(Token::Block(good()), ms(7)),
            vec![Action::Deliver { raw: good() }]
        );
        assert_eq!(r.answered(true, ms(8)), vec![Action::Send(vec![ACK])]);
    }

    #[test]
    fn a_bad_bcc_is_rejected_and_naked() {
        let mut r = selected();
        let mut bad = good();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let a = r.on(Token::Block(bad.clone()), ms(5));
        assert!(
            matches!(&a[..], [Action::Reject { raw, error: RejectReason::Block(BlockError::BadBcc { .. }) }, Action::Send(n)] if raw == &bad && n == &vec![NAK])
        );
        let a = r.on(Token::Broken(vec![1, 2]), ms(6));
        assert!(matches!(
            &a[..],
            [
                Action::Reject {
                    error: RejectReason::Broken,
                    ..
                },
                Action::Send(_)
            ]
        ));
        // Still selected: the retransmission is taken.
        assert_eq!(
            r.on(Token::Block(good()), ms(7)),
            vec![Action::Deliver { raw: good() }]
        );
    }

    #[test]
    fn blocks_for_somebody_else_are_ignored() {
        let mut r = Receiver::new(b'2', T);
        assert!(r.on(Token::Block(good()), ms(0)).is_empty());
        r.on(Token::Enq(b'3'), ms(1));
        assert!(r.on(Token::Block(good()), ms(2)).is_empty());
        assert!(r.on(Token::Broken(vec![1]), ms(3)).is_empty());
        let mut r = selected();
        r.on(Token::Eot, ms(4));
        assert_eq!(r.state(), &State::Idle);
        assert!(r.on(Token::Block(good()), ms(5)).is_empty());
    }

    #[test]
    fn a_silent_selected_link_times_out_to_idle() {
        let mut r = selected();
        assert_eq!(r.deadline(), Some(ms(1) + T));
        r.tick(ms(1) + T - ms(1));
        assert!(matches!(r.state(), State::Selected { .. }));
        r.tick(ms(1) + T);
        assert_eq!(r.state(), &State::Idle);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn supervision_counts_from_the_last_token_or_the_start() {
        let silence = Duration::from_secs(60);
        let mut r = Receiver::new(b'2', T);
        assert!(r.heard_within(silence, ms(0), ms(59_999)));
        assert!(!r.heard_within(silence, ms(0), ms(60_000)));
        r.on(Token::Eot, ms(50_000));
        assert!(r.heard_within(silence, ms(0), ms(109_999)));
        assert!(!r.heard_within(silence, ms(0), ms(110_000)));
    }
}
