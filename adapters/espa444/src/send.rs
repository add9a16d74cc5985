//! The link as the control station sees it (atgw's sink, station `1` by default) while it
//! sends one block to the paging system: a pure state machine from (state, token, time) to
//! (state, bytes to write).
//!
//! ```text
//!  start: <own> ENQ <peer> ENQ        ACK: block                 ACK: EOT
//!   ──────────────────────────▶ Selecting ─────────▶ Sending ─────────────▶ Done(Ok)
//!            NAK / select_timeout: select again      NAK / block_timeout: block again
//!            (select_retries)                        (block_retries)
//!            exhausted ─────────────────────────────────────────────────▶ Done(Err)
//! ```
//!
//! `<own> ENQ` before the select is what the paging systems seen in the field expect (the
//! control station "announcing" itself; digimat-espa's server requires it). A block counts as
//! delivered only on the paging system's ACK.

use std::time::Duration;

use crate::block::{ENQ, EOT};
use crate::wire::Token;

/// Timers and retry counts of the sending side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Wait for the answer to a select.
    pub select_timeout: Duration,
    /// Selects after the first that may go unanswered or refused.
    pub select_retries: u32,
    /// Wait for the answer to a block.
    pub block_timeout: Duration,
    /// Retransmissions of a block after the first that may be refused (NAK) or unanswered.
    pub block_retries: u32,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            select_timeout: Duration::from_secs(3),
            select_retries: 2,
            block_timeout: Duration::from_secs(3),
            block_retries: 2,
        }
    }
}

/// Why a block was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the paging system refused the select (NAK) {0} times")]
    SelectRefused(u32),
    #[error("the paging system did not answer the select ({0} tries)")]
    NoAnswerToSelect(u32),
    #[error(
        "the paging system refused the block (NAK) {0} times: a bad BCC or a block it cannot take"
    )]
    BlockRefused(u32),
    #[error("the paging system did not answer the block ({0} tries)")]
    NoAnswerToBlock(u32),
}

/// Where one block's sending is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Selecting {
        deadline: Duration,
        tries: u32,
        naks: u32,
    },
    Sending {
        deadline: Duration,
        tries: u32,
        naks: u32,
    },
    Done(Result<(), SendError>),
}

/// Sending one block.
#[derive(Clone, Debug)]
pub struct Sender {
    state: State,
    own: u8,
    peer: u8,
    timing: Timing,
    block: Vec<u8>,
}

impl Sender {
    /// Starts sending `block` (SOH through BCC); returns it and the select to write.
    pub fn start(
        own: u8,
        peer: u8,
        timing: Timing,
        block: Vec<u8>,
        now: Duration,
    ) -> (Sender, Vec<u8>) {
        let s = Sender {
            state: State::Selecting {
                deadline: now.saturating_add(timing.select_timeout),
                tries: 1,
                naks: 0,
            },
            own,
            peer,
            timing,
            block,
        };
        let select = s.select();
        (s, select)
    }

    fn select(&self) -> Vec<u8> {
        vec![self.own, ENQ, self.peer, ENQ]
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// `Some` once it is over.
    pub fn outcome(&self) -> Option<&Result<(), SendError>> {
        match &self.state {
            State::Done(r) => Some(r),
            _ => None,
        }
    }

    pub fn deadline(&self) -> Option<Duration> {
        match self.state {
            State::Selecting { deadline, .. } | State::Sending { deadline, .. } => Some(deadline),
            State::Done(_) => None,
        }
    }

    /// One token from the paging system; returns the bytes to write.
    pub fn on(&mut self, token: Token, now: Duration) -> Vec<u8> {
        match (self.state.clone(), token) {
            (State::Selecting { .. }, Token::Ack) => {
                self.state = State::Sending {
                    deadline: now.saturating_add(self.timing.block_timeout),
                    tries: 1,
                    naks: 0,
                };
                self.block.clone()
            }
            (State::Selecting { tries, naks, .. }, Token::Nak) => {
                self.reselect(tries, naks + 1, now)
            }
            (State::Sending { .. }, Token::Ack) => {
                self.state = State::Done(Ok(()));
                vec![EOT]
            }
            (State::Sending { tries, naks, .. }, Token::Nak) => self.resend(tries, naks + 1, now),
            // EOT from the paging system (digimat-espa sends one after every exchange), polls
            // and blocks are nothing this side waits for; the timers cover a peer that reset.
            _ => Vec::new(),
        }
    }

    /// Time passes: an unanswered select or block is sent again, or the send fails.
    pub fn tick(&mut self, now: Duration) -> Vec<u8> {
        if self.deadline().is_none_or(|d| d > now) {
            return Vec::new();
        }
        match self.state.clone() {
            State::Selecting { tries, naks, .. } => self.reselect(tries, naks, now),
            State::Sending { tries, naks, .. } => self.resend(tries, naks, now),
            State::Done(_) => Vec::new(),
        }
    }

    fn reselect(&mut self, tries: u32, naks: u32, now: Duration) -> Vec<u8> {
        if tries > self.timing.select_retries {
            self.state = State::Done(Err(if naks > 0 {
                SendError::SelectRefused(naks)
            } else {
                SendError::NoAnswerToSelect(tries)
            }));
            return vec![EOT];
        }
        self.state = State::Selecting {
            deadline: now.saturating_add(self.timing.select_timeout),
            tries: tries + 1,
            naks,
        };
        self.select()
    }

    fn resend(&mut self, tries: u32, naks: u32, now: Duration) -> Vec<u8> {
        if tries > self.timing.block_retries {
            self.state = State::Done(Err(if naks > 0 {
                SendError::BlockRefused(naks)
            } else {
                SendError::NoAnswerToBlock(tries)
            }));
            return vec![EOT];
        }
        self.state = State::Sending {
            deadline: now.saturating_add(self.timing.block_timeout),
            tries: tries + 1,
            naks,
        };
        self.block.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &[u8] = &[1, b'1', 2, b'1', 0x1F, b'A', 3, 0x5F];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn start() -> Sender {
        let (s, out) = Sender::start(b'1', b'2', Timing::default(), BLOCK.to_vec(), ms(0));
        assert_eq!(out, b"1\x052\x05");
        s
    }

    #[test]
    fn select_block_ack_eot() {
        let mut s = start();
        assert_eq!(s.on(Token::Ack, ms(10)), BLOCK);
        assert_eq!(s.outcome(), None);
        assert_eq!(s.on(Token::Ack, ms(20)), vec![EOT]);
        assert_eq!(s.outcome(), Some(&Ok(())));
    }

    #[test]
    fn a_nak_resends_the_block_until_the_retries_are_spent() {
        let mut s = start();
        s.on(Token::Ack, ms(10));
        assert_eq!(s.on(Token::Nak, ms(20)), BLOCK);
        assert_eq!(s.on(Token::Nak, ms(30)), BLOCK);
        assert_eq!(s.on(Token::Nak, ms(40)), vec![EOT]);
        assert_eq!(s.outcome(), Some(&Err(SendError::BlockRefused(3))));
    }

    #[test]
    fn a_nak_then_an_ack_delivers() {
        let mut s = start();
        s.on(Token::Ack, ms(10));
        s.on(Token::Nak, ms(20));
        s.on(Token::Ack, ms(30));
        assert_eq!(s.outcome(), Some(&Ok(())));
    }

    #[test]
    fn silence_retries_the_select_then_gives_up() {
        let mut s = start();
        assert!(s.tick(ms(2_999)).is_empty());
        assert_eq!(s.tick(ms(3_000)), b"1\x052\x05");
        assert_eq!(s.tick(ms(6_000)), b"1\x052\x05");
        assert_eq!(s.tick(ms(9_000)), vec![EOT]);
        assert_eq!(s.outcome(), Some(&Err(SendError::NoAnswerToSelect(3))));
    }

    #[test]
    fn an_unanswered_block_is_sent_again() {
        let mut s = start();
        s.on(Token::Ack, ms(0));
        assert_eq!(s.tick(ms(3_000)), BLOCK);
        assert_eq!(s.on(Token::Eot, ms(3_100)), Vec::<u8>::new());
        assert_eq!(s.on(Token::Ack, ms(3_200)), vec![EOT]);
        assert_eq!(s.outcome(), Some(&Ok(())));
    }

    #[test]
    fn a_refused_select_fails_as_refused() {
        let mut s = start();
        s.on(Token::Nak, ms(1));
        s.on(Token::Nak, ms(2));
        assert_eq!(s.on(Token::Nak, ms(3)), vec![EOT]);
        assert_eq!(s.outcome(), Some(&Err(SendError::SelectRefused(3))));
    }
}
