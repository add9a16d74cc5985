//! Per-peer budgets, so one address flooding a listener (or holding sockets open) cannot
//! starve the others: connections per IP address and a requests-per-second token bucket per
//! address, with the number of addresses tracked bounded.
//!
//! Time here is the monotonic `tokio::time::Instant` passed in by the caller; budgets are about
//! load, not about wall-clock correctness, so they don't use the injected wall clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// Forget idle peers once this many are tracked (a scan from many addresses cannot grow memory
/// without bound).
const MAX_TRACKED_PEERS: usize = 8192;

#[derive(Debug)]
struct Peer {
    connections: usize,
    tokens: f64,
    refilled: Instant,
}

/// Connections per IP and a frames-per-second token bucket per IP.
#[derive(Debug)]
pub struct PeerBudget {
    peers: Mutex<HashMap<IpAddr, Peer>>,
    max_connections: usize,
    frames_per_sec: f64,
}

/// Holds one of a peer's connection slots; gives it back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    budget: Arc<PeerBudget>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut peers) = self.budget.peers.lock()
            && let Some(p) = peers.get_mut(&self.ip)
        {
            p.connections = p.connections.saturating_sub(1);
        }
    }
}

impl PeerBudget {
    pub fn new(max_connections: usize, frames_per_sec: u32) -> Arc<PeerBudget> {
        Arc::new(PeerBudget {
            peers: Mutex::new(HashMap::new()),
            max_connections,
            frames_per_sec: f64::from(frames_per_sec.max(1)),
        })
    }

    fn with_peer<T>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut Peer) -> T) -> Option<T> {
        let mut peers = self.peers.lock().ok()?;
        if peers.len() >= MAX_TRACKED_PEERS && !peers.contains_key(&ip) {
            let full = self.frames_per_sec;
            peers.retain(|_, p| p.connections > 0 || p.tokens < full);
        }
        let peer = peers.entry(ip).or_insert(Peer {
            connections: 0,
            tokens: self.frames_per_sec,
            refilled: now,
        });
        Some(f(peer))
    }

    /// A slot for a new connection from `ip`, or `None` when that address has too many.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let max = self.max_connections;
        let ok = self.with_peer(ip, Instant::now(), |p| {
            if p.connections >= max {
                false
            } else {
                p.connections += 1;
                true
            }
        })?;
        ok.then(|| ConnectionSlot {
            budget: self.clone(),
            ip,
        })
    }

    /// Whether `ip` may have one more frame or request processed now (a bucket of one second's worth).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.frames_per_sec;
        self.with_peer(ip, now, |p| {
            let elapsed = now.saturating_duration_since(p.refilled).as_secs_f64();
            p.tokens = (p.tokens + elapsed * rate).min(rate);
            p.refilled = now;
            if p.tokens >= 1.0 {
                p.tokens -= 1.0;
                true
            } else {
                false
            }
        })
        .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn connection_slots_are_per_address_and_returned_on_drop() {
        let b = PeerBudget::new(2, 10);
        let a1 = b.connect(IP).unwrap();
        let _a2 = b.connect(IP).unwrap();
        assert!(b.connect(IP).is_none());
        assert!(b.connect(OTHER).is_some());
        drop(a1);
        assert!(b.connect(IP).is_some());
    }

    #[test]
    fn frame_budget_refills_with_time_and_is_per_address() {
        let b = PeerBudget::new(2, 5);
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| b.allow(IP, t0)).count(), 5);
        assert!(b.allow(OTHER, t0));
        assert!(!b.allow(IP, t0 + Duration::from_millis(100)));
        assert!(b.allow(IP, t0 + Duration::from_millis(250)));
    }
}
