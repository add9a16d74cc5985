//! What stands between a guesser and a password: a rate limit on login attempts per client
//! address (in memory), and a lockout of the account after `lockout_after` wrong passwords in
//! a row (counted in the journal, so a restart does not reset it), lifted `lockout_for` after
//! the last failure or by `atgw users passwd`.
//!
//! Pure: time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::accounts::User;

/// Attempts per client address per [`WINDOW`].
pub const ATTEMPTS_PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; past that the table is cleared (an attacker with more addresses
/// than this meets the per-account lockout instead).
const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Default)]
pub struct RateLimit {
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimit {
    /// Counts an attempt from `ip`; `false` when it is over the limit (refuse without checking
    /// the password, which is also what keeps Argon2's cost from being a lever).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
            if map.len() >= MAX_CLIENTS {
                map.clear();
            }
        }
        let e = map.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= ATTEMPTS_PER_WINDOW
    }
}

/// The account is locked out at `now_ms`: that many wrong passwords, the last one recently.
pub fn locked_out(user: &User, lockout_after: u32, lockout_for: Duration, now_ms: i64) -> bool {
    user.failed_logins >= lockout_after
        && user
            .last_failed_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < lockout_for.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::accounts::Role;

    fn user(failed: u32, last: Option<i64>) -> User {
        User {
            name: "amy".into(),
            role: Role::Carer,
            hash: String::new(),
            disabled: false,
            failed_logins: failed,
            last_failed_ms: last,
        }
    }

    #[test]
    fn an_account_locks_after_n_failures_and_unlocks_after_the_lockout_time() {
        let d = Duration::from_secs(900);
        assert!(!locked_out(&user(4, Some(1_000)), 5, d, 1_000));
        assert!(locked_out(&user(5, Some(1_000)), 5, d, 1_000));
        assert!(locked_out(&user(5, Some(1_000)), 5, d, 900_999));
        assert!(!locked_out(&user(5, Some(1_000)), 5, d, 901_000));
    }

    #[test]
    fn a_client_is_limited_per_window() {
        let r = RateLimit::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..ATTEMPTS_PER_WINDOW {
            assert!(r.allow(ip, t0));
        }
        assert!(!r.allow(ip, t0 + Duration::from_secs(59)));
        assert!(r.allow([127, 0, 0, 2].into(), t0), "per address");
        assert!(r.allow(ip, t0 + WINDOW));
    }
}
