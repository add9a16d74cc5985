//! Rate-limited warnings, so a flood of bad input cannot flood the log. The per-peer budgets
//! are [`atgw_sdk::peer_budget`].
//!
//! Time here is the monotonic `tokio::time::Instant` passed in by the caller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Lets one warning per key through per interval and counts the rest.
#[derive(Debug)]
pub struct WarnLimiter {
    every: Duration,
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl WarnLimiter {
    pub fn new(every: Duration) -> WarnLimiter {
        WarnLimiter {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed since the last one)` when this warning may be logged now.
    pub fn check(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().ok()?;
        match last.get_mut(key) {
            Some((at, suppressed)) if now.saturating_duration_since(*at) < self.every => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                *at = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_and_count_what_they_suppressed() {
        let w = WarnLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.check("bad_crc", t0), Some(0));
        assert_eq!(w.check("bad_crc", t0), None);
        assert_eq!(w.check("bad_crc", t0), None);
        assert_eq!(w.check("other", t0), Some(0));
        assert_eq!(w.check("bad_crc", t0 + Duration::from_secs(11)), Some(2));
    }
}
