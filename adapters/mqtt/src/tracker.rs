//! Which of our publishes the broker has acknowledged. rumqttc gives no per-publish handle
//! (rumqttc issue 349): it reports `Outgoing::Publish(pkid)` in the order requests leave its
//! channel and `PubAck(pkid)` when the broker answers. This tracker ties those back to outbox
//! rows, following the procedure measured in `protocols/rumqttc-acks.md` §2 and §5:
//!
//! - ids wait in a FIFO until rumqttc assigns them a packet id;
//! - a `Publish(pkid)` for a pkid already awaiting its ack is a replay after reconnect, not a
//!   new publish, and must not pop the FIFO (the naive tracker mis-attributes every later ack);
//! - after a connection error the publishes rumqttc drained into `pending` without a pkid sit
//!   at the FIFO head; if the session is then lost, rumqttc silently drops them and everything
//!   awaiting an ack, so all of those go back to be published again.
//!
//! Correct only while the caller keeps at most `inflight` publishes handed to rumqttc and not
//! yet acknowledged (the app-level window that avoids rumqttc's replay collision bug).

use std::collections::{HashMap, VecDeque};

/// Publish bookkeeping for one connection. `T` identifies a publish (an outbox row id).
#[derive(Debug)]
pub struct Tracker<T> {
    waiting_pkid: VecDeque<T>,
    awaiting_ack: HashMap<u16, (u64, T)>,
    /// Order in which ids got their pkid, so requeued ids keep their original order.
    counter: u64,
    /// Publishes rumqttc moved into `pending` without a pkid at the last connection error.
    drained_unassigned: usize,
}

impl<T> Default for Tracker<T> {
    fn default() -> Self {
        Tracker {
            waiting_pkid: VecDeque::new(),
            awaiting_ack: HashMap::new(),
            counter: 0,
            drained_unassigned: 0,
        }
    }
}

impl<T> Tracker<T> {
    /// Call immediately before handing the publish to rumqttc (same order as the channel).
    pub fn handed(&mut self, id: T) {
        self.waiting_pkid.push_back(id);
    }

    /// rumqttc wrote a publish with this pkid. Returns false for a replay.
    pub fn outgoing(&mut self, pkid: u16) -> bool {
        if self.awaiting_ack.contains_key(&pkid) {
            return false;
        }
        if let Some(id) = self.waiting_pkid.pop_front() {
            self.counter += 1;
            self.awaiting_ack.insert(pkid, (self.counter, id));
            self.drained_unassigned = self.drained_unassigned.saturating_sub(1);
        }
        true
    }

    /// The broker acknowledged `pkid`: the publish it carried is delivered.
    pub fn acked(&mut self, pkid: u16) -> Option<T> {
        self.awaiting_ack.remove(&pkid).map(|(_, id)| id)
    }

    /// After `poll()` failed: how many pkid-less publishes rumqttc holds in `pending` now.
    pub fn connection_error(&mut self, unassigned_in_pending: usize) {
        self.drained_unassigned = unassigned_in_pending.min(self.waiting_pkid.len());
    }

    /// CONNACK with `session_present = false`: the broker forgot our session and rumqttc dropped
    /// its pending publishes. Returns every id that must be published again, in original order.
    pub fn session_lost(&mut self) -> Vec<T> {
        let mut lost: Vec<(u64, T)> = self.awaiting_ack.drain().map(|(_, v)| v).collect();
        lost.sort_by_key(|(n, _)| *n);
        let mut out: Vec<T> = lost.into_iter().map(|(_, id)| id).collect();
        let n = self.drained_unassigned.min(self.waiting_pkid.len());
        out.extend(self.waiting_pkid.drain(..n));
        self.drained_unassigned = 0;
        out
    }

    /// Publishes handed over and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.waiting_pkid.len() + self.awaiting_ack.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_map_back_to_ids_in_order() {
        let mut t = Tracker::default();
        for id in 1..=3 {
            t.handed(id);
        }
        assert!(t.outgoing(1) && t.outgoing(2) && t.outgoing(3));
        assert_eq!(t.acked(1), Some(1));
        assert_eq!(t.acked(2), Some(2));
        assert_eq!(t.acked(3), Some(3));
        assert_eq!(t.acked(3), None, "an ack is delivered once");
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn a_replay_after_reconnect_does_not_pop_the_fifo() {
        let mut t = Tracker::default();
        t.handed(10);
        t.handed(11);
        assert!(t.outgoing(1)); // 10 gets pkid 1
        t.connection_error(0);
        // session present: rumqttc replays pkid 1, then sends 11 with a fresh pkid
        assert!(!t.outgoing(1));
        assert!(t.outgoing(2));
        assert_eq!(t.acked(1), Some(10));
        assert_eq!(t.acked(2), Some(11));
    }

    #[test]
    fn session_loss_requeues_unacked_and_drained_ids_in_order() {
        let mut t = Tracker::default();
        for id in [1, 2, 3, 4, 5] {
            t.handed(id);
        }
        assert!(t.outgoing(7)); // 1
        assert!(t.outgoing(8)); // 2
        assert_eq!(t.acked(7), Some(1));
        // error: 3 and 4 were drained into `pending` without pkid; 5 was handed after the error
        t.connection_error(2);
        let lost = t.session_lost();
        assert_eq!(lost, vec![2, 3, 4]);
        // 5 is still in the channel and gets a pkid normally
        assert!(t.outgoing(1));
        assert_eq!(t.acked(1), Some(5));
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn session_present_keeps_everything() {
        let mut t = Tracker::default();
        t.handed(1);
        t.handed(2);
        t.connection_error(2);
        // replay of pending: they get pkids in order
        assert!(t.outgoing(1));
        assert!(t.outgoing(2));
        assert_eq!(t.acked(2), Some(2));
        assert_eq!(t.acked(1), Some(1));
    }
}
