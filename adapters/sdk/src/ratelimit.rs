//! One warning line per problem, not one per message: a device spraying garbage must not flood
//! the journal or the disk. Each key logs at most once per interval and reports how many were
//! suppressed since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-key limiter for log lines.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be logged now (with how many were skipped
    /// since the last one); `None` when it must be skipped.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let Ok(mut m) = self.last.lock() else {
            return Some(0);
        };
        let now = Instant::now();
        match m.get_mut(key) {
            Some((at, skipped)) if now.duration_since(*at) < self.every => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                let n = *skipped;
                *at = now;
                *skipped = 0;
                Some(n)
            }
            None => {
                if m.len() > 10_000 {
                    m.clear();
                }
                m.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_logs_once_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(l.allow("a"), Some(0));
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("b"), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.allow("a"), Some(2));
    }
}
