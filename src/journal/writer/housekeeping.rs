//! The caps' and tables' upkeep inside a batch: dead letters written and capped, the
//! unregistered-device cap's alert, expired dedupe keys pruned.

use std::time::Duration;

use atgw_sdk::ingest::DeadLetter;
use jiff::Timestamp;
use rusqlite::{Transaction, params};

use super::PRUNE_EVERY;
use crate::pipeline::Batch;

/// Applies `[journal] max_dead_letters` after a batch that wrote dead letters; whether any
/// were deleted.
pub(super) fn cap_dead_letters(b: &Batch<'_>) -> rusqlite::Result<bool> {
    Ok(prune_dead_letters(b.tx, b.setup.max_dead_letters)? > 0)
}

/// The dead-letter cap was reached for the first time in this run: one log line and one
/// gateway alert, journaled in the same batch.
pub(super) fn dead_letters_capped(
    b: &mut Batch<'_>,
    tally: &mut crate::metrics::BatchTally,
) -> rusqlite::Result<()> {
    tracing::warn!(
        max_dead_letters = b.setup.max_dead_letters,
        "dead letters reached max_dead_letters ({}); the oldest are deleted from now on and counted (adapter_state gateway/{DEAD_LETTERS_PRUNED_KEY}); raising a gateway alert",
        b.setup.max_dead_letters
    );
    let d = crate::gateway_alerts::cap_reached(
        &b.setup.gateway_id,
        "dead_letters",
        format!(
            "Gateway dead letters reached their cap ({}); the oldest are being deleted (input nobody could read is arriving fast)",
            b.setup.max_dead_letters
        ),
        "dead_letters_capped",
    );
    let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
    tally.events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
    Ok(())
}

/// The unregistered-device cap was reached for the first time in this run: one log line and
/// one gateway alert, journaled in the same batch.
pub(super) fn unregistered_capped(
    b: &mut Batch<'_>,
    tally: &mut crate::metrics::BatchTally,
    max: usize,
) -> rusqlite::Result<()> {
    tracing::warn!(
        max_unregistered_devices = max,
        "unregistered devices reached max_unregistered_devices ({max}); from now on the least recently heard are forgotten (their events are still journaled and alerted) and counted (adapter_state gateway/{}, atgw_unregistered_devices_evicted_total); add the real ones as [[device]] entries, or find out who publishes under invented device ids; raising a gateway alert",
        crate::journal::unregistered::EVICTED_KEY
    );
    let d = crate::gateway_alerts::cap_reached(
        &b.setup.gateway_id,
        "unregistered_devices",
        format!(
            "Unregistered devices reached their cap ({max}); the least recently heard are forgotten (their events still count)"
        ),
        "unregistered_devices_capped",
    );
    let ids = b.device_events(crate::GATEWAY_ADAPTER, vec![d])?;
    tally.events_in(crate::GATEWAY_ADAPTER, ids.len() as u64);
    Ok(())
}

/// Drops dedupe keys past their expiry (rows from before expiries were kept: older than the
/// journal's window), at most once a minute.
pub(super) fn prune_if_due(
    tx: &Transaction<'_>,
    last: &mut Option<Timestamp>,
    window: Duration,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let due = match last {
        None => true,
        Some(t) => now.duration_since(*t).as_secs() >= PRUNE_EVERY.as_secs() as i64,
    };
    if due {
        let cutoff = now.as_millisecond() - window.as_millis() as i64;
        tx.prepare_cached("DELETE FROM dedupe WHERE until_ms < ?1")?
            .execute([now.as_millisecond()])?;
        tx.prepare_cached("DELETE FROM dedupe WHERE until_ms IS NULL AND seen_ms < ?1")?
            .execute([cutoff])?;
        *last = Some(now);
    }
    Ok(())
}

/// `adapter_state` key (gateway adapter) counting telemetry shed at the disk budget.
pub const SHED_KEY: &str = "journal.shed";

/// Adds `n` to the persistent count of telemetry shed at `[journal] max_bytes`.
pub(super) fn count_shed(tx: &Transaction<'_>, n: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(adapter, key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?3 AS TEXT)",
    )?
    .execute(params![crate::GATEWAY_ADAPTER, SHED_KEY, n as i64])?;
    Ok(())
}

/// `adapter_state` key (gateway adapter) counting dead letters deleted by the cap.
pub const DEAD_LETTERS_PRUNED_KEY: &str = "dead_letters.pruned";

/// Deletes the oldest dead letters beyond `max` (ids only grow, so the newest `max` are the
/// ids above `max(id) - max`) and adds how many to the persistent count; returns how many.
pub(super) fn prune_dead_letters(tx: &Transaction<'_>, max: usize) -> rusqlite::Result<u64> {
    let newest: Option<i64> = tx
        .prepare_cached("SELECT max(id) FROM dead_letters")?
        .query_row([], |r| r.get(0))?;
    let Some(newest) = newest else { return Ok(0) };
    let n = tx
        .prepare_cached("DELETE FROM dead_letters WHERE id <= ?1")?
        .execute([newest.saturating_sub(max as i64)])? as u64;
    if n > 0 {
        tx.prepare_cached(
            "INSERT INTO adapter_state (adapter, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(adapter, key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?3 AS TEXT)",
        )?
        .execute(params![crate::GATEWAY_ADAPTER, DEAD_LETTERS_PRUNED_KEY, n as i64])?;
    }
    Ok(n)
}

pub(super) fn insert_dead_letter(
    tx: &Transaction<'_>,
    adapter: &str,
    l: &DeadLetter,
    max_bytes: usize,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let kept = &l.raw[..l.raw.len().min(max_bytes)];
    tx.prepare_cached(
        "INSERT INTO dead_letters (adapter, reason, detail, origin, raw, raw_len, recorded_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        adapter,
        l.reason,
        l.detail,
        l.origin,
        kept,
        l.raw.len() as i64,
        now.as_millisecond()
    ])?;
    Ok(())
}
