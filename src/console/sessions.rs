//! Console sessions: who is logged in on which browser.
//!
//! A session is a random id and a random secret in one cookie (`<id>.<secret>`); the id finds
//! the session and the secret's SHA-256 is compared in constant time, so neither a lookup's
//! timing nor a copy of the journal yields a usable cookie. Each session has its own CSRF
//! token, which every state-changing request must carry in `X-CSRF-Token` (compared in
//! constant time too).
//!
//! A session ends after `idle` without a request, or `absolute` after login, whichever is
//! first. An open live stream counts as activity (a wall tablet that only watches stays logged
//! in until its absolute expiry). Sessions are journaled when they start and end (through the
//! writer, [`super::accounts::record`]), so a restart or an upgrade does not log the nurses'
//! station out in the middle of a night; the last activity is kept in memory only, so after a
//! restart each session's idle time starts again.
//!
//! Time (wall-clock milliseconds) is passed in, so expiry is tested without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use subtle::ConstantTimeEq;

use super::accounts::Role;

/// The cookie's name.
pub const COOKIE: &str = "atgw_console";

/// At most this many sessions at once; the oldest is dropped for a new one (a login loop
/// cannot grow memory).
const MAX_SESSIONS: usize = 1024;

/// A logged-in person, as handlers see them.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView {
    pub id: String,
    pub user: String,
    pub role: Role,
    pub csrf: String,
}

/// A session as the journal keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub view: SessionView,
    /// Hex SHA-256 of the cookie's secret.
    pub secret_hash: String,
    pub created_ms: i64,
}

#[derive(Debug)]
struct Session {
    stored: Stored,
    last_ms: i64,
}

/// A new session: the cookie value to set, and what to journal.
#[derive(Debug)]
pub struct Created {
    pub cookie: String,
    pub stored: Stored,
}

#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    absolute: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::rng(), buf.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn digest(secret: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Sessions {
        Sessions {
            idle,
            absolute,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn absolute(&self) -> Duration {
        self.absolute
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock left a consistent map (every change is one insert or
        // remove), so keep using it.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions journaled before a restart; their idle time starts at `now_ms`.
    pub fn restore(&self, stored: Vec<Stored>, now_ms: i64) {
        let mut map = self.lock();
        for s in stored {
            let s = Session {
                stored: s,
                last_ms: now_ms,
            };
            if self.live(&s, now_ms) {
                map.insert(s.stored.view.id.clone(), s);
            }
        }
    }

    pub fn create(&self, user: &str, role: Role, now_ms: i64) -> Created {
        let (id, secret) = (token(12), token(32));
        let stored = Stored {
            view: SessionView {
                id: id.clone(),
                user: user.to_owned(),
                role,
                csrf: token(32),
            },
            secret_hash: digest(&secret),
            created_ms: now_ms,
        };
        let mut map = self.lock();
        map.retain(|_, s| self.live(s, now_ms));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.stored.created_ms)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                stored: stored.clone(),
                last_ms: now_ms,
            },
        );
        Created {
            cookie: format!("{id}.{secret}"),
            stored,
        }
    }

    fn live(&self, s: &Session, now_ms: i64) -> bool {
        let ms = |d: Duration| d.as_millis() as i64;
        now_ms.saturating_sub(s.last_ms) < ms(self.idle)
            && now_ms.saturating_sub(s.stored.created_ms) < ms(self.absolute)
    }

    /// The session a cookie value names, if it is live; the request counts as activity.
    pub fn check(&self, cookie: &str, now_ms: i64) -> Option<SessionView> {
        let (id, secret) = cookie.split_once('.')?;
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if !bool::from(
            s.stored
                .secret_hash
                .as_bytes()
                .ct_eq(digest(secret).as_bytes()),
        ) {
            return None;
        }
        if !self.live(s, now_ms) {
            map.remove(id);
            return None;
        }
        s.last_ms = now_ms;
        Some(s.stored.view.clone())
    }

    /// Whether session `id` is still live (a stream's periodic check); counts as activity.
    pub fn touch(&self, id: &str, now_ms: i64) -> bool {
        let mut map = self.lock();
        let Some(s) = map.get_mut(id) else {
            return false;
        };
        if self.live(s, now_ms) {
            s.last_ms = now_ms;
            true
        } else {
            map.remove(id);
            false
        }
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session of `user` (disabled meanwhile); returns their ids.
    pub fn end_user(&self, user: &str) -> Vec<String> {
        let mut map = self.lock();
        let ids: Vec<String> = map
            .iter()
            .filter(|(_, s)| s.stored.view.user == user)
            .map(|(k, _)| k.clone())
            .collect();
        for id in &ids {
            map.remove(id);
        }
        ids
    }
}

/// Whether a request's CSRF token is the session's.
pub fn csrf_ok(session: &SessionView, given: Option<&str>) -> bool {
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(session.csrf.as_bytes())))
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value: script cannot read it, it is sent only over a secure context
/// (browsers count http://localhost and 127.0.0.1 as one) and never on a cross-site request.
pub fn set_cookie(value: &str, max_age: Duration) -> String {
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn sessions(idle_min: u64, absolute_min: u64) -> Sessions {
        Sessions::new(
            Duration::from_secs(idle_min * 60),
            Duration::from_secs(absolute_min * 60),
        )
    }

    #[test]
    fn a_session_ends_after_idle_time_without_requests() {
        let s = sessions(10, 600);
        let c = s.create("amy", Role::Carer, 0);
        assert!(s.check(&c.cookie, 9 * MIN).is_some());
        // the request at 9 min moved the idle deadline
        assert!(s.check(&c.cookie, 18 * MIN).is_some());
        assert!(s.check(&c.cookie, 28 * MIN).is_none());
        assert!(s.check(&c.cookie, 29 * MIN).is_none(), "stays ended");
    }

    #[test]
    fn a_session_ends_at_its_absolute_expiry_however_active() {
        let s = sessions(10, 30);
        let c = s.create("amy", Role::Carer, 0);
        for m in (5..30).step_by(5) {
            assert!(s.check(&c.cookie, m * MIN).is_some(), "{m} min");
        }
        assert!(s.check(&c.cookie, 30 * MIN).is_none());
    }

    #[test]
    fn a_wrong_secret_or_csrf_token_is_refused() {
        let s = sessions(10, 30);
        let c = s.create("amy", Role::Carer, 0);
        let (id, _) = c.cookie.split_once('.').unwrap();
        assert!(s.check(&format!("{id}.AAAA"), 0).is_none());
        assert!(s.check(id, 0).is_none());
        let v = s.check(&c.cookie, 0).unwrap();
        assert!(csrf_ok(&v, Some(&v.csrf)));
        assert!(!csrf_ok(&v, Some("x")));
        assert!(!csrf_ok(&v, None));
        let other = s.create("bob", Role::Carer, 0).stored.view;
        assert!(!csrf_ok(&v, Some(&other.csrf)), "tokens are per session");
    }

    #[test]
    fn a_restored_session_takes_the_same_cookie_and_the_journal_holds_no_secret() {
        let s = sessions(10, 30);
        let c = s.create("amy", Role::Carer, 0);
        let (_, secret) = c.cookie.split_once('.').unwrap();
        assert!(!c.stored.secret_hash.contains(secret));
        let after = sessions(10, 30);
        after.restore(vec![c.stored.clone()], 20 * MIN);
        assert_eq!(after.check(&c.cookie, 25 * MIN).unwrap().user, "amy");
        let late = sessions(10, 30);
        late.restore(vec![c.stored], 31 * MIN);
        assert!(
            late.check(&c.cookie, 31 * MIN).is_none(),
            "past absolute expiry"
        );
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_with_every_protection() {
        assert_eq!(cookie_value("a=1; atgw_console=x.y; b=2"), Some("x.y"));
        assert_eq!(cookie_value("a=1"), None);
        let set = set_cookie("x.y", Duration::from_secs(3600));
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=3600"] {
            assert!(set.contains(attr), "{set}");
        }
    }
}
