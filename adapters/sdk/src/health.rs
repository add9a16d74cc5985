//! What an adapter or sink reports about itself, for `/readyz`, metrics and logs. Lock-free
//! counters: the hot path only increments atomics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use jiff::Timestamp;
use serde::Serialize;

/// Shared, cheaply updated health of one component (an adapter or a sink).
#[derive(Debug, Default)]
pub struct Health {
    connected: AtomicBool,
    last_message_ms: AtomicI64,
    received: AtomicU64,
    committed: AtomicU64,
    duplicates: AtomicU64,
    ignored: AtomicU64,
    delivered: AtomicU64,
    reconnects: AtomicU64,
    errors: AtomicU64,
    bundles: AtomicU64,
    bundled: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    path_absent: Mutex<BTreeMap<String, u64>>,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy for reporting.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HealthSnapshot {
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    pub received: u64,
    pub committed: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub delivered: u64,
    pub reconnects: u64,
    pub errors: u64,
    /// Bundled messages a sink had accepted (each told one audience about several
    /// notifications), and the notifications they carried.
    #[serde(skip_serializing_if = "is_zero")]
    pub bundles: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub bundled: u64,
    /// Dead letters by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Messages a profile rule took that left nothing, because none of the fields it reads
    /// was in them, by `profile/rule`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub path_absent: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Health {
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// A message arrived from a device (counted before it is understood).
    pub fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
        self.last_message_ms
            .store(Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }
    pub fn committed(&self, n: u64) {
        self.committed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    /// A message a profile explicitly ignores (counted, not dead-lettered).
    pub fn ignored(&self) {
        self.ignored.fetch_add(1, Ordering::Relaxed);
    }
    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }
    /// A bundled message carrying `members` notifications was accepted by the server.
    pub fn bundle_delivered(&self, members: u64) {
        self.bundles.fetch_add(1, Ordering::Relaxed);
        self.bundled.fetch_add(members, Ordering::Relaxed);
    }
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    pub fn rejected(&self, reason: &str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(reason.to_owned()).or_default() += 1;
        }
    }
    /// A message rule `profile/rule` took left nothing: none of its fields' paths found a
    /// value. Returns whether this is the first time (for one log line).
    pub fn path_absent(&self, rule: &str) -> bool {
        match self.path_absent.lock() {
            Ok(mut m) => {
                let n = m.entry(rule.to_owned()).or_default();
                *n += 1;
                *n == 1
            }
            Err(_) => false,
        }
    }
    pub fn error(&self, what: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(what.into());
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let ms = self.last_message_ms.load(Ordering::Relaxed);
        HealthSnapshot {
            connected: self.is_connected(),
            last_message: (ms > 0)
                .then(|| Timestamp::from_millisecond(ms).ok())
                .flatten()
                .map(|t| crate::event::rfc3339_ms::format(&t)),
            received: self.received.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            bundles: self.bundles.load(Ordering::Relaxed),
            bundled: self.bundled.load(Ordering::Relaxed),
            rejected: self.rejected.lock().map(|m| m.clone()).unwrap_or_default(),
            path_absent: self
                .path_absent
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
