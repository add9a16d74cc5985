//! The care-team console (DESIGN §7, "console"): a live web page the gateway serves itself, for
//! the nurses' station PC, the wall tablet and carers' phones, with each person's own login.
//!
//! It is served on the local API's listener under `/console` when `[api.console]` is set; the
//! token API (`/api/v1`) is untouched and stays for machines. Nothing is fetched from outside:
//! the page, its script and style are compiled into the binary ([`assets`]).
//!
//! # Layout
//! - [`accounts`]: the `users` table, roles, Argon2id hashes, the audit trail.
//! - [`sessions`]: login sessions (cookie, idle and absolute expiry, CSRF token).
//! - [`login_guard`]: login rate limit per client and lockout per account.
//! - [`views`]: what the page shows, read from the journal (alerts, history, devices).
//! - [`offline`]: a device's offline episodes, from its journaled transitions.
//! - [`report`]: the pilot report for managers, as `atgw report` renders it.
//! - [`handlers`]: the HTTP routes (login, alerts, acknowledge/resolve, devices and shelving,
//!   health).
//! - [`stream`]: the live Server-Sent Events stream, resumable from the journal's sequence.
//! - [`assets`]: the embedded page.
//!
//! Security (the page carries residents' alarms and acts on them): no default account; a
//! console on a non-loopback address is refused at start ([`check_listen`]) unless the
//! listener has TLS (`[api.tls]`, [`crate::api_tls`]); every state change needs the session's CSRF token; the cookie is
//! `HttpOnly; Secure; SameSite=Strict`; the page sends a strict Content-Security-Policy.

pub mod accounts;
pub mod assets;
pub mod handlers;
pub mod login_guard;
pub mod offline;
pub mod report;
pub mod sessions;
pub mod stream;
pub mod views;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// `[api.console]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console (the table's presence is what usually says so).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A session with no request for this long ends (an open live page counts as requests).
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active (a shift and a bit).
    #[serde(default = "default_absolute", with = "humantime_serde")]
    pub session_max: Duration,
    /// Wrong passwords in a row that lock an account.
    #[serde(default = "default_lockout_after")]
    pub lockout_after: u32,
    /// How long a locked account stays locked after its last wrong password (or until
    /// `atgw users passwd`).
    #[serde(default = "default_lockout_for", with = "humantime_serde")]
    pub lockout_for: Duration,
}

fn yes() -> bool {
    true
}
fn default_idle() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_absolute() -> Duration {
    Duration::from_secs(13 * 3600)
}
fn default_lockout_after() -> u32 {
    5
}
fn default_lockout_for() -> Duration {
    Duration::from_secs(15 * 60)
}

/// The console's own state beside the API's.
#[derive(Debug)]
pub struct ConsoleState {
    pub cfg: ConsoleConfig,
    pub sessions: sessions::Sessions,
    pub limit: login_guard::RateLimit,
    /// Verified against for an unknown or disabled user, so every refusal costs the same.
    pub decoy: String,
    /// The registry by device id (area, room, check-in interval).
    pub devices: HashMap<String, crate::registry::DeviceConfig>,
    /// The journal reader behind every live stream.
    pub hub: stream::Hub,
    /// `gateway.timezone`: the report's days.
    pub timezone: String,
}

impl ConsoleState {
    /// Restores the journal's live sessions and starts the live streams' reader (in a tokio
    /// runtime), woken by the writer's `commits`.
    pub fn new(
        cfg: ConsoleConfig,
        devices: &[crate::registry::DeviceConfig],
        timezone: &str,
        journal: &std::path::Path,
        commits: tokio::sync::watch::Receiver<u64>,
        now_ms: i64,
    ) -> Result<ConsoleState, rusqlite::Error> {
        let sessions = sessions::Sessions::new(cfg.idle_timeout, cfg.session_max);
        let since = now_ms.saturating_sub(cfg.session_max.as_millis() as i64);
        let reader = crate::journal::Reader::open(journal)?;
        sessions.restore(accounts::stored_sessions(reader.conn(), since)?, now_ms);
        let newest: i64 =
            reader
                .conn()
                .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
        Ok(ConsoleState {
            cfg,
            sessions,
            limit: login_guard::RateLimit::default(),
            decoy: accounts::decoy_hash(),
            devices: devices.iter().map(|d| (d.id.clone(), d.clone())).collect(),
            hub: stream::Hub::start(journal.to_path_buf(), commits, newest),
            timezone: timezone.to_owned(),
        })
    }
}

/// Refuses a console on an address other hosts can reach without TLS: passwords and session
/// cookies would cross the LAN in clear.
pub fn check_listen(listen: &str, tls: bool) -> Result<(), String> {
    let ip = listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .map_err(|e| format!("[api] listen `{listen}`: {e}"))?;
    if ip.is_loopback() || tls {
        Ok(())
    } else {
        Err(format!(
            "[api.console] is enabled but [api] listen `{listen}` is not a loopback address and \
             [api.tls] is not set: the console would send passwords and session cookies over the \
             network in clear. Add [api.tls] (cert_file and key_file, or self_signed = true), or \
             keep listen on 127.0.0.1 (see docs/CONSOLE.md)"
        ))
    }
}

/// Wall-clock milliseconds now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_on_a_lan_address_without_tls_is_refused() {
        assert!(check_listen("127.0.0.1:8780", false).is_ok());
        assert!(check_listen("[::1]:8780", false).is_ok());
        let e = check_listen("0.0.0.0:8780", false).unwrap_err();
        assert!(e.contains("in clear"), "{e}");
        assert!(check_listen("192.168.1.5:8780", false).is_err());
        assert!(check_listen("192.168.1.5:8780", true).is_ok());
    }
}
