//! What the adapter holds in memory between reading a PUBLISH and committing it, and the bound
//! on it: the backlog lives with the broker, not here.
//!
//! rumqttc couples reading and writing in one `poll()`, and mosquitto 2.0.11 stops honouring
//! `max_inflight_messages` once PUBACKs flow (protocols/rumqttc-acks.md §3), so a reconnect after
//! an outage can send the whole offline queue at once. Before forwarding a message to the
//! committer the poll task takes room from a byte budget ([`Window::admit`]); when the budget is
//! spent it stops polling, the socket fills and the broker keeps the rest. The room comes back
//! when the committer has committed the message and queued its PUBACK, never later: the PUBACK
//! itself can only be written by a `poll()`, and waiting for that would deadlock (§4.2).
//!
//! What stays after the room is returned is an [`Ack`] (a packet id and a QoS, a few bytes) in
//! the acker's queue, which the poll task drains as it polls. So memory is bounded by the budget
//! in payload and by a few bytes per message not yet acknowledged on the wire.

use std::sync::Arc;

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Default bytes (topic, payload and [`OVERHEAD`] per message) held between read and commit
/// (`max_held_bytes`): some 8,000 typical device messages, or 8 at the largest `max_payload`. A
/// single message larger than the window is still admitted, alone.
pub const HELD_BYTES: usize = 2 * 1024 * 1024;

/// What one held message costs besides its topic and payload (the `Publish`, its place in the
/// channel and in the batch), so a flood of tiny messages is bounded too.
const OVERHEAD: usize = 192;

/// The byte budget for messages read but not yet committed.
#[derive(Clone)]
pub struct Window {
    room: Arc<Semaphore>,
    bytes: u32,
}

/// A message read from the broker, holding its share of the window until dropped.
pub struct Held {
    pub publish: Publish,
    _room: Option<OwnedSemaphorePermit>,
}

impl Window {
    pub fn new(bytes: usize) -> Self {
        let bytes = u32::try_from(bytes.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Window {
            room: Arc::new(Semaphore::new(bytes as usize)),
            bytes,
        }
    }

    /// Waits until the message fits, then holds it. Awaits only the committer (which returns
    /// room after each commit), never the poll task.
    pub async fn admit(&self, publish: Publish) -> Held {
        let cost = self.cost(&publish);
        // The semaphore is never closed; if it were, holding the message without room beats
        // dropping one we would then never acknowledge.
        let room = self.room.clone().acquire_many_owned(cost).await.ok();
        Held {
            publish,
            _room: room,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        (self.bytes as usize).saturating_sub(self.room.available_permits())
    }

    fn cost(&self, p: &Publish) -> u32 {
        let cost = p.payload.len() + p.topic.len() + OVERHEAD;
        u32::try_from(cost).unwrap_or(u32::MAX).min(self.bytes)
    }
}

/// A PUBACK owed for a committed message: only what rumqttc needs to write it.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pkid: u16,
    qos: QoS,
}

impl Ack {
    pub fn of(p: &Publish) -> Self {
        Ack {
            pkid: p.pkid,
            qos: p.qos,
        }
    }
}

/// Hands committed messages' PUBACKs to rumqttc in commit (= receive) order. It waits for room
/// in rumqttc's request channel, which only the poll task drains; the committer therefore never
/// waits on the poll task, and the poll task waits only on the committer (through [`Window`]).
pub async fn acker(client: AsyncClient, mut acks: mpsc::UnboundedReceiver<Ack>) {
    while let Some(ack) = acks.recv().await {
        let mut p = Publish::new(String::new(), ack.qos, Vec::new());
        p.pkid = ack.pkid;
        if client.ack(&p).await.is_err() {
            // The event loop is gone (shutdown): unsent PUBACKs mean redeliveries, which the
            // journal's dedupe absorbs.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn publish(payload: usize) -> Publish {
        Publish::new("t/x", QoS::AtLeastOnce, vec![0u8; payload])
    }

    #[tokio::test]
    async fn admits_up_to_the_budget_then_waits_for_room() {
        let w = Window::new(10 * (100 + 3 + OVERHEAD));
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(w.admit(publish(100)).await);
        }
        assert_eq!(w.held(), 10 * (100 + 3 + OVERHEAD));
        let w2 = w.clone();
        let waiting = tokio::spawn(async move { w2.admit(publish(100)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "an eleventh message must wait for room"
        );
        held.pop();
        let h = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("room returned, the message is admitted")
            .expect("task");
        assert_eq!(h.publish.payload.len(), 100);
        drop(held);
        drop(h);
        assert_eq!(w.held(), 0);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_budget_is_admitted_alone() {
        let w = Window::new(1000);
        let big = tokio::time::timeout(Duration::from_secs(1), w.admit(publish(5000)))
            .await
            .expect("an over-budget message must not wait forever");
        assert_eq!(w.held(), 1000);
        drop(big);
        assert_eq!(w.held(), 0);
    }
}
