//! UDP server transactions (RFC 3261 §17.2.2, non-INVITE): a retransmitted request gets the
//! same final answer again, and one that arrives while the first copy is still being committed
//! is absorbed (answering it then would be an answer before the commit).
//!
//! A transaction is keyed by the top `Via` branch, the method and the peer address (§17.2.3).
//! A completed one is kept for Timer J (64·T1 = 32 s), then forgotten. The table is capped:
//! when full, the oldest completed transaction makes room; when every entry is still pending,
//! the request is refused with `503` rather than growing memory.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Timer J for UDP: how long a completed transaction absorbs retransmissions.
pub const TIMER_J: Duration = Duration::from_secs(32);

/// A transaction's identity.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Key {
    pub branch: String,
    pub method: String,
    pub peer: SocketAddr,
}

#[derive(Debug)]
enum State {
    /// The first copy is being handled (committing): retransmissions are absorbed.
    Pending,
    /// Answered: retransmissions get these bytes again.
    Completed(Vec<u8>),
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A new transaction, now pending: handle it, then [`Transactions::complete`] or
    /// [`Transactions::abandon`] it.
    New,
    /// A retransmission while the first copy is in hand: send nothing.
    InProgress,
    /// A retransmission of an answered request: send these bytes again.
    Answered(Vec<u8>),
    /// The table is full of pending transactions.
    Full,
}

/// The table of one UDP listener.
#[derive(Debug)]
pub struct Transactions {
    map: HashMap<Key, (State, Instant)>,
    /// Keys in creation order, for expiry and eviction.
    order: VecDeque<(Key, Instant)>,
    cap: usize,
}

impl Transactions {
    pub fn new(cap: usize) -> Transactions {
        Transactions {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.duration_since(*at) < TIMER_J {
                break;
            }
            // Only completed ones expire; a pending one older than Timer J is still in hand.
            if let Some((State::Completed(_), t)) = self.map.get(key)
                && t == at
            {
                self.map.remove(key);
            }
            let Some((key, at)) = self.order.pop_front() else {
                break;
            };
            if let Some((State::Pending, t)) = self.map.get(&key)
                && *t == at
            {
                self.order.push_back((key, at));
                break;
            }
        }
    }

    /// Looks a request up, starting a transaction when it is new.
    pub fn seen(&mut self, key: &Key, now: Instant) -> Seen {
        self.expire(now);
        match self.map.get(key) {
            Some((State::Pending, _)) => return Seen::InProgress,
            Some((State::Completed(bytes), _)) => return Seen::Answered(bytes.clone()),
            None => {}
        }
        if self.map.len() >= self.cap && !self.evict_one() {
            return Seen::Full;
        }
        self.map.insert(key.clone(), (State::Pending, now));
        self.order.push_back((key.clone(), now));
        Seen::New
    }

    /// The oldest completed transaction makes room.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .map
            .iter()
            .filter(|(_, (s, _))| matches!(s, State::Completed(_)))
            .min_by_key(|(_, (_, t))| *t)
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                self.map.remove(&k);
                true
            }
            None => false,
        }
    }

    /// The request was answered with `bytes` (after its commit).
    pub fn complete(&mut self, key: &Key, bytes: Vec<u8>) {
        if let Some(entry) = self.map.get_mut(key) {
            entry.0 = State::Completed(bytes);
        }
    }

    /// The request could not be handled (the commit failed): forget it, so the unit's
    /// retransmission is handled afresh.
    pub fn abandon(&mut self, key: &Key) {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: &str) -> Key {
        Key {
            branch: b.into(),
            method: "MESSAGE".into(),
            peer: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    #[test]
    fn a_retransmission_is_absorbed_while_pending_and_answered_again_once_complete() {
        let mut t = Transactions::new(8);
        let now = Instant::now();
        assert_eq!(t.seen(&key("a"), now), Seen::New);
        assert_eq!(t.seen(&key("a"), now), Seen::InProgress);
        t.complete(&key("a"), b"200".to_vec());
        assert_eq!(t.seen(&key("a"), now), Seen::Answered(b"200".to_vec()));
        // After Timer J it is a new transaction.
        assert_eq!(t.seen(&key("a"), now + TIMER_J), Seen::New);
    }

    #[test]
    fn an_abandoned_transaction_is_handled_afresh() {
        let mut t = Transactions::new(8);
        let now = Instant::now();
        assert_eq!(t.seen(&key("a"), now), Seen::New);
        t.abandon(&key("a"));
        assert_eq!(t.seen(&key("a"), now), Seen::New);
    }

    #[test]
    fn a_full_table_evicts_completed_ones_and_refuses_when_all_are_pending() {
        let mut t = Transactions::new(2);
        let now = Instant::now();
        t.seen(&key("a"), now);
        t.seen(&key("b"), now);
        assert_eq!(t.seen(&key("c"), now), Seen::Full);
        t.complete(&key("a"), vec![]);
        assert_eq!(t.seen(&key("c"), now), Seen::New);
        assert_eq!(t.len(), 2);
    }
}
