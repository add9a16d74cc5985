//! The TCP connection table: which connections are open, since when, and whether each has
//! completed a usable frame yet ("established").
//!
//! It replaces a plain semaphore so that idle sockets cannot lock transmitters out. When the
//! table is full, a newcomer takes the place of the *oldest connection that has not completed a
//! frame*: that one is cancelled and closes. A connection that has completed a usable frame is a
//! transmitter's link and is never evicted for a frameless one; when every connection is
//! established, the newcomer is refused (the transmitter retries, as it does for any failure).
//!
//! Time is the monotonic `tokio::time::Instant` passed in by the caller, so every rule is a
//! plain unit test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Entry {
    peer: SocketAddr,
    accepted: Instant,
    established: bool,
    cancel: CancellationToken,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// By id, which is also accept order: the first frameless entry is the oldest.
    open: BTreeMap<u64, Entry>,
}

/// Open TCP connections, at most `capacity`.
#[derive(Debug)]
pub struct ConnectionTable {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// A connection closed to make room for a newcomer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evicted {
    pub peer: SocketAddr,
    /// How long it had been open without completing a frame.
    pub frameless_for: Duration,
}

/// What [`ConnectionTable::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// There was room (or room was made by evicting `evicted`).
    Admitted {
        registration: Registration,
        evicted: Option<Evicted>,
    },
    /// Full, and every open connection is established: refuse the newcomer.
    Full,
}

/// One connection's place in the table; leaving it (drop) frees the place.
#[derive(Debug)]
pub struct Registration {
    table: Arc<ConnectionTable>,
    id: u64,
    cancel: CancellationToken,
}

impl ConnectionTable {
    pub fn new(capacity: usize) -> Arc<ConnectionTable> {
        Arc::new(ConnectionTable {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table holds no invariant a panic elsewhere could break half-way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections in the table now.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A place for a connection from `peer` accepted at `now`, evicting the oldest frameless
    /// connection when the table is full.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr, now: Instant) -> Admission {
        let mut inner = self.lock();
        let mut evicted = None;
        if inner.open.len() >= self.capacity {
            let victim = inner
                .open
                .iter()
                .find(|(_, e)| !e.established)
                .map(|(id, _)| *id);
            let Some(victim) = victim.and_then(|id| inner.open.remove(&id)) else {
                return Admission::Full;
            };
            victim.cancel.cancel();
            evicted = Some(Evicted {
                peer: victim.peer,
                frameless_for: now.saturating_duration_since(victim.accepted),
            });
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let cancel = CancellationToken::new();
        inner.open.insert(
            id,
            Entry {
                peer,
                accepted: now,
                established: false,
                cancel: cancel.clone(),
            },
        );
        Admission::Admitted {
            registration: Registration {
                table: self.clone(),
                id,
                cancel,
            },
            evicted,
        }
    }
}

impl Registration {
    /// The connection completed a usable frame: it is a transmitter's link from now on and is
    /// no longer evicted for newcomers.
    pub fn establish(&self) {
        if let Some(e) = self.table.lock().open.get_mut(&self.id) {
            e.established = true;
        }
    }

    /// Resolves when the table evicted this connection: close it.
    pub async fn evicted(&self) {
        self.cancel.cancelled().await
    }

    pub fn is_evicted(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.lock().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 40_000))
    }

    fn admitted(a: Admission) -> (Registration, Option<Evicted>) {
        match a {
            Admission::Admitted {
                registration,
                evicted,
            } => (registration, evicted),
            Admission::Full => panic!("refused"),
        }
    }

    #[test]
    fn connections_are_admitted_while_there_is_room_and_leave_on_drop() {
        let t = ConnectionTable::new(2);
        let now = Instant::now();
        let (a, ev) = admitted(t.admit(peer(1), now));
        assert_eq!(ev, None);
        let (_b, ev) = admitted(t.admit(peer(2), now));
        assert_eq!(ev, None);
        assert_eq!(t.len(), 2);
        drop(a);
        assert_eq!(t.len(), 1);
        let (_c, ev) = admitted(t.admit(peer(3), now));
        assert_eq!(ev, None);
    }

    #[test]
    fn when_full_the_oldest_frameless_connection_is_evicted_for_a_newcomer() {
        let t = ConnectionTable::new(3);
        let t0 = Instant::now();
        let (old, _) = admitted(t.admit(peer(1), t0));
        let (older_established, _) = admitted(t.admit(peer(2), t0));
        let (young, _) = admitted(t.admit(peer(3), t0 + Duration::from_secs(1)));
        // Established later than the first one connected: still not evictable.
        older_established.establish();
        old.establish();
        let (_new, ev) = admitted(t.admit(peer(4), t0 + Duration::from_secs(5)));
        assert_eq!(
            ev,
            Some(Evicted {
                peer: peer(3),
                frameless_for: Duration::from_secs(4)
            })
        );
        assert!(young.is_evicted());
        assert!(!old.is_evicted() && !older_established.is_evicted());
        assert_eq!(t.len(), 3);
        // The evicted connection's drop does not free anybody else's place.
        drop(young);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn eviction_takes_frameless_connections_in_accept_order() {
        let t = ConnectionTable::new(2);
        let t0 = Instant::now();
        let (a, _) = admitted(t.admit(peer(1), t0));
        let (b, _) = admitted(t.admit(peer(2), t0));
        let (c, ev) = admitted(t.admit(peer(3), t0));
        assert_eq!(ev.unwrap().peer, peer(1));
        let (_d, ev) = admitted(t.admit(peer(4), t0));
        assert_eq!(ev.unwrap().peer, peer(2));
        assert!(a.is_evicted() && b.is_evicted() && !c.is_evicted());
    }

    #[test]
    fn a_full_table_of_established_connections_refuses_the_newcomer() {
        let t = ConnectionTable::new(2);
        let now = Instant::now();
        let (a, _) = admitted(t.admit(peer(1), now));
        let (b, _) = admitted(t.admit(peer(2), now));
        a.establish();
        b.establish();
        assert!(matches!(t.admit(peer(3), now), Admission::Full));
        assert!(!a.is_evicted() && !b.is_evicted());
        drop(b);
        let (_c, ev) = admitted(t.admit(peer(3), now));
        assert_eq!(ev, None);
    }

    #[tokio::test]
    async fn an_evicted_connection_is_woken() {
        let t = ConnectionTable::new(1);
        let now = Instant::now();
        let (a, _) = admitted(t.admit(peer(1), now));
        let (_b, _) = admitted(t.admit(peer(2), now));
        tokio::time::timeout(Duration::from_secs(1), a.evicted())
            .await
            .unwrap();
    }
}
