//! Digest replay protection (RFC 7616 §3.3 / RFC 2617 §3.2.2): per nonce we issued, the highest
//! nonce-count (`nc`) a unit has authenticated with. A request whose `nc` is not above it is a
//! replay (a captured request sent again) and is refused.
//!
//! Only requests whose digest response verified are recorded, so filling the table takes valid
//! credentials, and a forged `nc=ffffffff` cannot lock a unit out of its own nonce. Memory is
//! bounded twice: an entry lives no longer than the nonce's lifetime (a stale nonce is refused
//! anyway), and at most [`MAX_NONCES`] entries are kept. When the table is full the oldest nonce
//! is forgotten and a *watermark* rises to its issue time: every nonce issued at or before the
//! watermark that is not in the table is treated as stale (the unit gets a fresh `401` with
//! `stale=true` and retries without its user), so forgetting a nonce never makes it replayable.
//! Each forgotten entry is counted by the caller.
//!
//! Keys are `(issued ms, nonce)`: the issue time is inside our nonce, so expiry and eviction
//! are the front of one ordered map.

use std::collections::BTreeMap;

/// Nonces tracked at once (about 100 bytes each: ~1.6 MB at the cap). A unit keeps one nonce
/// for its lifetime (5 min by default), so this covers 16,384 units authenticating at once.
pub const MAX_NONCES: usize = 16_384;

/// What [`NonceCounts::record`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// New highest `nc`: accepted and recorded. `evicted` entries were forgotten to make room.
    Fresh { evicted: usize },
    /// `nc` not above the highest seen for this nonce.
    Replay { highest: u32 },
    /// The nonce is older than the watermark: its count was forgotten, ask for a new one.
    Forgotten,
}

#[derive(Debug)]
pub struct NonceCounts {
    highest: BTreeMap<(i64, String), u32>,
    cap: usize,
    lifetime_ms: i64,
    /// Nonces issued at or before this (ms) and not in the map were evicted.
    watermark_ms: i64,
}

impl NonceCounts {
    pub fn new(cap: usize, lifetime_ms: i64) -> NonceCounts {
        NonceCounts {
            highest: BTreeMap::new(),
            cap: cap.max(1),
            lifetime_ms,
            watermark_ms: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.highest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.highest.is_empty()
    }

    /// Checks `nc` for a verified response to `nonce` (issued at `issued_ms`) and records it
    /// when it is new.
    pub fn record(&mut self, issued_ms: i64, nonce: &str, nc: u32, now_ms: i64) -> Count {
        self.expire(now_ms);
        let key = (issued_ms, nonce.to_owned());
        if let Some(h) = self.highest.get_mut(&key) {
            if nc <= *h {
                return Count::Replay { highest: *h };
            }
            *h = nc;
            return Count::Fresh { evicted: 0 };
        }
        if issued_ms <= self.watermark_ms {
            return Count::Forgotten;
        }
        let mut evicted = 0;
        while self.highest.len() >= self.cap {
            let Some(((issued, _), _)) = self.highest.pop_first() else {
                break;
            };
            self.watermark_ms = self.watermark_ms.max(issued);
            evicted += 1;
        }
        if issued_ms <= self.watermark_ms {
            // The newcomer is itself the oldest (evicting it would change nothing).
            return Count::Forgotten;
        }
        self.highest.insert(key, nc);
        Count::Fresh { evicted }
    }

    /// Undoes a [`Count::Fresh`] whose request was not answered (a failed commit): the unit's
    /// retransmission carries the same `nc` and must pass.
    pub fn release(&mut self, issued_ms: i64, nonce: &str, nc: u32) {
        if let Some(h) = self.highest.get_mut(&(issued_ms, nonce.to_owned()))
            && *h == nc
        {
            *h = nc.saturating_sub(1);
        }
    }

    /// Forgets nonces past their lifetime: the digest check refuses them as stale first.
    fn expire(&mut self, now_ms: i64) {
        let limit = now_ms.saturating_sub(self.lifetime_ms);
        while let Some(entry) = self.highest.first_entry() {
            if entry.key().0 >= limit {
                break;
            }
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_must_rise_and_a_replayed_or_lower_one_is_refused() {
        let mut c = NonceCounts::new(8, 300_000);
        assert_eq!(c.record(1_000, "a", 1, 2_000), Count::Fresh { evicted: 0 });
        assert_eq!(c.record(1_000, "a", 1, 2_000), Count::Replay { highest: 1 });
        assert_eq!(c.record(1_000, "a", 3, 2_000), Count::Fresh { evicted: 0 });
        assert_eq!(c.record(1_000, "a", 2, 2_000), Count::Replay { highest: 3 });
        // Another nonce counts on its own.
        assert_eq!(c.record(1_500, "b", 1, 2_000), Count::Fresh { evicted: 0 });
    }

    #[test]
    fn a_released_count_passes_again_for_the_units_retransmission() {
        let mut c = NonceCounts::new(8, 300_000);
        assert_eq!(c.record(1_000, "a", 1, 2_000), Count::Fresh { evicted: 0 });
        c.release(1_000, "a", 1);
        assert_eq!(c.record(1_000, "a", 1, 2_000), Count::Fresh { evicted: 0 });
        assert_eq!(c.record(1_000, "a", 1, 2_000), Count::Replay { highest: 1 });
    }

    #[test]
    fn expired_nonces_leave_the_table() {
        let mut c = NonceCounts::new(8, 10_000);
        c.record(1_000, "a", 1, 1_000);
        c.record(5_000, "b", 1, 5_000);
        assert_eq!(c.len(), 2);
        c.record(12_000, "c", 1, 12_000);
        assert_eq!(c.len(), 2, "a (issued 1000) expired at 11000");
    }

    #[test]
    fn a_full_table_forgets_the_oldest_and_never_lets_it_be_replayed() {
        let mut c = NonceCounts::new(2, 300_000);
        c.record(1_000, "a", 1, 3_000);
        c.record(2_000, "b", 1, 3_000);
        assert_eq!(c.record(3_000, "c", 1, 3_000), Count::Fresh { evicted: 1 });
        assert_eq!(c.len(), 2);
        // `a` was forgotten: its replay is not taken for a first use.
        assert_eq!(c.record(1_000, "a", 1, 3_000), Count::Forgotten);
        assert_eq!(c.record(1_000, "a", 2, 3_000), Count::Forgotten);
        // Newer nonces still work.
        assert_eq!(c.record(4_000, "d", 1, 4_000), Count::Fresh { evicted: 1 });
        assert_eq!(c.record(2_000, "b", 2, 4_000), Count::Forgotten);
        assert_eq!(c.len(), 2);
    }
}
