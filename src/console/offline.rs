//! A device's offline history for the devices view: when it went offline and when it came
//! back, from its journaled `device_offline` transitions (supervision's missed check-ins and an
//! adapter's own reports), newest first.
//!
//! Only the device's own events count (`correlation_id IS NULL`): an alert's lifecycle events
//! carry the same kind but are about the alert, not the device.

use rusqlite::{Connection, params};
use serde::Serialize;

/// Episodes shown per device: enough for "is this one flaky?", bounded for a big home.
pub const SHOWN: usize = 5;
/// Transitions read per device to find them (a raised repeated by a restart is read too).
const READ: i64 = 4 * SHOWN as i64;

/// One time offline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    /// When it went offline (RFC 3339).
    pub from: String,
    /// When it came back; absent while it still is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Pairs transitions (ms, went offline?), oldest first, into episodes, newest first, at most
/// `limit`. A second "offline" before a "back" is the same episode (a restart re-announces
/// it); a "back" with no "offline" before it (its start pruned away) is skipped.
pub fn pair(transitions: &[(i64, bool)], limit: usize) -> Vec<(i64, Option<i64>)> {
    let mut out = Vec::new();
    let mut since: Option<i64> = None;
    for &(t, offline) in transitions {
        match (since, offline) {
            (None, true) => since = Some(t),
            (Some(start), false) => {
                out.push((start, Some(t)));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        out.push((start, None));
    }
    out.reverse();
    out.truncate(limit);
    out
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| atgw_sdk::event::rfc3339_ms::format(&t))
        .unwrap_or_default()
}

/// The device's latest episodes, newest first.
pub fn recent(conn: &Connection, device: &str) -> rusqlite::Result<Vec<Episode>> {
    let mut rows: Vec<(i64, bool)> = conn
        .prepare_cached(
            "SELECT recorded_ms, phase = 'raised' FROM events
             WHERE device_id = ?1 AND kind = 'device_offline' AND phase IN ('raised', 'cleared')
               AND correlation_id IS NULL
             ORDER BY seq DESC LIMIT ?2",
        )?
        .query_map(params![device, READ], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rows.reverse();
    Ok(pair(&rows, SHOWN)
        .into_iter()
        .map(|(from, to)| Episode {
            from: time(from),
            to: to.map(time),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_pair_into_episodes_newest_first_with_an_open_one_last_seen() {
        let t = [
            (5, false), // back, its start pruned: skipped
            (10, true),
            (12, true), // re-announced after a restart: the same episode
            (20, false),
            (30, true),
            (40, false),
            (50, true), // still offline
        ];
        assert_eq!(
            pair(&t, 10),
            vec![(50, None), (30, Some(40)), (10, Some(20))]
        );
        assert_eq!(pair(&t, 2), vec![(50, None), (30, Some(40))]);
        assert!(pair(&[], 5).is_empty());
    }
}
