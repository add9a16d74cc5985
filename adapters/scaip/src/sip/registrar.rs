//! Registrations (RFC 3261 §10): where a unit that sent `REGISTER` can be reached, so the
//! `<mrs>` MESSAGE goes to its registered contact (SCAIP guideline: units should register).
//! Capped at [`MAX_REGISTRATIONS`]; a full table refuses new units with `503`, never forgets
//! a live one for a stranger.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Units that can be registered at once.
pub const MAX_REGISTRATIONS: usize = 10_000;
/// `Expires` when the unit asks for none.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(3600);
/// The longest registration we grant.
pub const MAX_EXPIRES: Duration = Duration::from_secs(86_400);

/// Where one account is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub contact: SocketAddr,
    pub until: Instant,
}

#[derive(Debug, Default)]
pub struct Registrar {
    bindings: HashMap<String, Binding>,
}

/// Why a registration was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Registrar {
    /// Registers (or, with `expires` zero, removes) `user` at `contact`; returns the granted
    /// lifetime.
    pub fn register(
        &mut self,
        user: &str,
        contact: SocketAddr,
        expires: Option<Duration>,
        now: Instant,
    ) -> Result<Duration, Full> {
        let expires = expires.unwrap_or(DEFAULT_EXPIRES).min(MAX_EXPIRES);
        if expires.is_zero() {
            self.bindings.remove(user);
            return Ok(expires);
        }
        if !self.bindings.contains_key(user) && self.bindings.len() >= MAX_REGISTRATIONS {
            self.bindings.retain(|_, b| b.until > now);
            if self.bindings.len() >= MAX_REGISTRATIONS {
                return Err(Full);
            }
        }
        self.bindings.insert(
            user.to_owned(),
            Binding {
                contact,
                until: now + expires,
            },
        );
        Ok(expires)
    }

    /// The live contact of `user`.
    pub fn contact(&self, user: &str, now: Instant) -> Option<SocketAddr> {
        self.bindings
            .get(user)
            .filter(|b| b.until > now)
            .map(|b| b.contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_lives_until_it_expires_or_is_removed() {
        let mut r = Registrar::default();
        let now = Instant::now();
        let at: SocketAddr = "10.0.0.5:5060".parse().unwrap();
        assert_eq!(
            r.register("678", at, Some(Duration::from_secs(60)), now),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(r.contact("678", now), Some(at));
        assert_eq!(r.contact("678", now + Duration::from_secs(61)), None);
        r.register("678", at, None, now).unwrap();
        r.register("678", at, Some(Duration::ZERO), now).unwrap();
        assert_eq!(r.contact("678", now), None);
    }
}
