//! Which deliveries wait on which `submit_sm`s, and what each response means for the outbox.
//! Pure: no I/O, no clock. The session loop asks it for the next submit, tells it the sequence
//! number it went out under and each response, and sends the outcomes it returns.
//!
//! The rule: **a delivery is `Delivered` only when every recipient's `submit_sm_resp` had status
//! 0**. Recipients already accepted for an event are remembered (by event id, within the
//! process lifetime, for the last [`REMEMBERED`] events not yet delivered), so a retry after
//! one recipient was throttled texts only that one again. After a restart the memory is gone
//! and a retried event may text a recipient twice: better twice than never.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::sink::{Delivery, Outcome};

use crate::pdu::status;

/// Events whose accepted recipients are remembered, at most.
pub const REMEMBERED: usize = 4096;

/// One `submit_sm`: a delivery to one recipient (an index into the delivery's numbers,
/// [`crate::sink::numbers`]: the config's `to`, then the people on shift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub outbox_id: i64,
    pub recipient: usize,
}

/// What a refusal means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// May pass later: throttled, queue full, a temporary SMSC error, a lost connection.
    ForNow,
    /// Will not pass as it is (bad number, barred sender, invalid parameters). Still a
    /// `Retry`, with a longer back-off: the outbox escalates the alert to the next tier.
    ForGood,
}

/// What a `submit_sm_resp` (or `generic_nack`) status means.
pub fn classify(s: u32) -> Refusal {
    match s {
        status::ESME_RTHROTTLED
        | status::ESME_RMSGQFUL
        | status::ESME_RSYSERR
        | status::ESME_RX_T_APPN => Refusal::ForNow,
        _ => Refusal::ForGood,
    }
}

struct Pending {
    delivery: Delivery,
    short_message: Arc<[u8]>,
    /// Submits not yet answered (queued or in flight).
    waiting: usize,
    /// Refusals so far: status and what it means.
    refused: Vec<(u32, Refusal)>,
    /// Numbers this delivery goes to.
    recipients: usize,
}

/// A submit the ledger wants sent.
pub struct Next<'a> {
    pub job: Job,
    pub delivery: &'a Delivery,
    pub short_message: Arc<[u8]>,
}

/// What one response settled.
#[derive(Debug, PartialEq)]
pub struct Settled {
    pub job: Job,
    /// The event the submit was for.
    pub event_id: Option<Arc<str>>,
    /// The delivery's outcome, once its last submit was answered.
    pub outcome: Option<Outcome>,
}

/// The deliveries in hand and their submits.
pub struct Ledger {
    permanent_after: Duration,
    pending: BTreeMap<i64, Pending>,
    queue: VecDeque<Job>,
    inflight: HashMap<u32, Job>,
    accepted: Accepted,
}

impl Ledger {
    pub fn new(permanent_after: Duration) -> Ledger {
        Ledger {
            permanent_after,
            pending: BTreeMap::new(),
            queue: VecDeque::new(),
            inflight: HashMap::new(),
            accepted: Accepted::default(),
        }
    }

    /// Deliveries in hand.
    pub fn deliveries(&self) -> usize {
        self.pending.len()
    }

    /// Submits sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Takes a delivery to `recipients` numbers: queues a submit for each one not yet
    /// accepted for this event. Returns `Delivered` at once when every recipient already has
    /// it, or a retry when it has no recipient at all or a delivery with this outbox id is
    /// already in hand (the dispatcher never does that).
    pub fn offer(
        &mut self,
        delivery: Delivery,
        short_message: Arc<[u8]>,
        recipients: usize,
    ) -> Option<Outcome> {
        let id = delivery.outbox_id;
        if recipients == 0 {
            // The outbox's own quick back-off: after a few attempts the alert's next tier is
            // told, rather than after several `permanent_retry_after` waits.
            return Some(Outcome::Retry {
                outbox_id: id,
                after: None,
                reason:
                    "nobody to text: the sink has no `to` and nobody on shift has an sms number"
                        .into(),
            });
        }
        if self.pending.contains_key(&id) {
            return Some(Outcome::Retry {
                outbox_id: id,
                after: None,
                reason: "offered again while its first attempt is in flight".into(),
            });
        }
        let done = self.accepted.of(&delivery.event_id);
        let todo: Vec<usize> = (0..recipients).filter(|r| !done.contains(r)).collect();
        if todo.is_empty() {
            self.accepted.forget(&delivery.event_id);
            return Some(Outcome::Delivered(id));
        }
        self.queue.extend(todo.iter().map(|&recipient| Job {
            outbox_id: id,
            recipient,
        }));
        self.pending.insert(
            id,
            Pending {
                delivery,
                short_message,
                waiting: todo.len(),
                refused: Vec::new(),
                recipients,
            },
        );
        None
    }

    /// The next submit to send, if any is queued. Call [`Ledger::sent`] with its sequence
    /// number once it is written.
    pub fn next_submit(&mut self) -> Option<Next<'_>> {
        let job = self.queue.pop_front()?;
        let p = self.pending.get(&job.outbox_id)?;
        Some(Next {
            job,
            delivery: &p.delivery,
            short_message: p.short_message.clone(),
        })
    }

    /// `job` went out under `sequence`.
    pub fn sent(&mut self, sequence: u32, job: Job) {
        self.inflight.insert(sequence, job);
    }

    /// `job` could not be written (an encode error): counts as refused for good.
    pub fn unsendable(&mut self, job: Job) -> Option<Outcome> {
        self.settle(job, status::ESME_RSYSERR, Refusal::ForGood)
    }

    /// A `submit_sm_resp` or `generic_nack` for `sequence`; `None` when no submit of ours went
    /// out under it (a late answer after a reconnect).
    pub fn response(&mut self, sequence: u32, status: u32) -> Option<Settled> {
        let job = self.inflight.remove(&sequence)?;
        let event_id = self
            .pending
            .get(&job.outbox_id)
            .map(|p| p.delivery.event_id.clone());
        let outcome = if status == status::ESME_ROK {
            if let Some(e) = &event_id {
                self.accepted.add(e, job.recipient);
            }
            self.settle_ok(job)
        } else {
            self.settle(job, status, classify(status))
        };
        Some(Settled {
            job,
            event_id,
            outcome,
        })
    }

    /// True while a submit sent under `sequence` awaits its response.
    pub fn has_in_flight(&self, sequence: u32) -> bool {
        self.inflight.contains_key(&sequence)
    }

    /// The session is gone: every delivery in hand is a retry (recipients already accepted
    /// stay remembered).
    pub fn lost(&mut self, reason: &str) -> Vec<Outcome> {
        self.queue.clear();
        self.inflight.clear();
        std::mem::take(&mut self.pending)
            .into_keys()
            .map(|outbox_id| Outcome::Retry {
                outbox_id,
                after: None,
                reason: reason.to_owned(),
            })
            .collect()
    }

    fn settle_ok(&mut self, job: Job) -> Option<Outcome> {
        let p = self.pending.get_mut(&job.outbox_id)?;
        p.waiting = p.waiting.saturating_sub(1);
        self.finish_if_done(job.outbox_id)
    }

    fn settle(&mut self, job: Job, status: u32, refusal: Refusal) -> Option<Outcome> {
        let p = self.pending.get_mut(&job.outbox_id)?;
        p.waiting = p.waiting.saturating_sub(1);
        p.refused.push((status, refusal));
        self.finish_if_done(job.outbox_id)
    }

    fn finish_if_done(&mut self, outbox_id: i64) -> Option<Outcome> {
        if self.pending.get(&outbox_id)?.waiting > 0 {
            return None;
        }
        let p = self.pending.remove(&outbox_id)?;
        if p.refused.is_empty() {
            self.accepted.forget(&p.delivery.event_id);
            return Some(Outcome::Delivered(outbox_id));
        }
        let for_good = p.refused.iter().any(|&(_, r)| r == Refusal::ForGood);
        let mut statuses: Vec<String> = p.refused.iter().map(|&(s, _)| status::name(s)).collect();
        statuses.dedup();
        let reason = format!(
            "the SMSC refused {} of {} recipients {}: {}",
            p.refused.len(),
            p.recipients,
            if for_good { "for good" } else { "for now" },
            statuses.join(", ")
        );
        Some(Outcome::Retry {
            outbox_id,
            after: for_good.then_some(self.permanent_after),
            reason,
        })
    }
}

/// Recipients that accepted each event, for the last [`REMEMBERED`] events.
#[derive(Default)]
struct Accepted {
    by_event: HashMap<Arc<str>, Vec<usize>>,
    order: VecDeque<Arc<str>>,
}

impl Accepted {
    fn of(&self, event: &str) -> Vec<usize> {
        self.by_event.get(event).cloned().unwrap_or_default()
    }

    fn add(&mut self, event: &Arc<str>, recipient: usize) {
        if !self.by_event.contains_key(&**event) {
            if self.order.len() >= REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.by_event.remove(&old);
            }
            self.order.push_back(event.clone());
        }
        let r = self.by_event.entry(event.clone()).or_default();
        if !r.contains(&recipient) {
            r.push(recipient);
        }
    }

    fn forget(&mut self, event: &str) {
        if self.by_event.remove(event).is_some() {
            self.order.retain(|e| &**e != event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: i64) -> Delivery {
        atgw_sdk::testkit::delivery(n, 0)
    }

    fn msg() -> Arc<[u8]> {
        Arc::from(&b"hi"[..])
    }

    /// Sends every queued submit under sequence numbers from `seq`; returns them.
    fn send_all(l: &mut Ledger, seq: &mut u32) -> Vec<(u32, Job)> {
        let mut out = Vec::new();
        while let Some(n) = l.next_submit() {
            let job = n.job;
            *seq += 1;
            l.sent(*seq, job);
            out.push((*seq, job));
        }
        out
    }

    #[test]
    fn nobody_to_text_is_never_delivered_and_retries_on_the_quick_schedule() {
        let mut l = Ledger::new(Duration::from_secs(300));
        match l.offer(delivery(1), msg(), 0) {
            Some(Outcome::Retry {
                outbox_id: 1,
                after: None,
                reason,
            }) => {
                assert!(reason.contains("nobody to text"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.deliveries(), 0);
    }

    #[test]
    fn delivered_only_when_every_recipient_accepted() {
        let mut l = Ledger::new(Duration::from_secs(300));
        assert_eq!(l.offer(delivery(1), msg(), 2), None);
        let mut seq = 0;
        let sent = send_all(&mut l, &mut seq);
        assert_eq!(sent.len(), 2);
        let first = l.response(sent[0].0, 0).unwrap();
        assert_eq!(first.outcome, None, "one of two accepted is not delivered");
        let second = l.response(sent[1].0, 0).unwrap();
        assert_eq!(second.outcome, Some(Outcome::Delivered(1)));
        assert_eq!(l.deliveries(), 0);
    }

    #[test]
    fn a_retry_texts_only_the_recipients_not_yet_accepted() {
        let mut l = Ledger::new(Duration::from_secs(300));
        l.offer(delivery(1), msg(), 3);
        let mut seq = 0;
        let sent = send_all(&mut l, &mut seq);
        l.response(sent[0].0, 0);
        l.response(sent[1].0, status::ESME_RTHROTTLED);
        let last = l.response(sent[2].0, 0).unwrap().outcome.unwrap();
        match last {
            Outcome::Retry { after, reason, .. } => {
                assert_eq!(
                    after, None,
                    "throttling is retried on the outbox's schedule"
                );
                assert!(reason.contains("ESME_RTHROTTLED"), "{reason}");
                assert!(reason.contains("for now"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // The retry: only recipient 1 again.
        assert_eq!(l.offer(atgw_sdk::testkit::delivery(1, 1), msg(), 3), None);
        let again = send_all(&mut l, &mut seq);
        assert_eq!(
            again.iter().map(|(_, j)| j.recipient).collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(
            l.response(again[0].0, 0).unwrap().outcome,
            Some(Outcome::Delivered(1))
        );
    }

    #[test]
    fn a_permanent_refusal_is_a_retry_with_the_long_back_off() {
        let mut l = Ledger::new(Duration::from_secs(300));
        l.offer(delivery(1), msg(), 1);
        let mut seq = 0;
        let sent = send_all(&mut l, &mut seq);
        match l
            .response(sent[0].0, status::ESME_RINVDSTADR)
            .unwrap()
            .outcome
        {
            Some(Outcome::Retry { after, reason, .. }) => {
                assert_eq!(after, Some(Duration::from_secs(300)));
                assert!(reason.contains("for good"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lost_session_retries_everything_in_hand_and_late_answers_are_ignored() {
        let mut l = Ledger::new(Duration::from_secs(300));
        l.offer(delivery(1), msg(), 1);
        l.offer(delivery(2), msg(), 1);
        let mut seq = 0;
        let sent = send_all(&mut l, &mut seq);
        let lost = l.lost("connection lost");
        assert_eq!(lost.len(), 2);
        assert!(lost.iter().all(|o| matches!(o, Outcome::Retry { .. })));
        assert_eq!(l.response(sent[0].0, 0), None);
        assert_eq!((l.deliveries(), l.in_flight()), (0, 0));
    }

    #[test]
    fn statuses_are_classified() {
        for s in [0x58, 0x14, 0x08, 0x64] {
            assert_eq!(classify(s), Refusal::ForNow, "{s:#x}");
        }
        for s in [0x0B, 0x0A, 0x45, 0x01, 0xFF] {
            assert_eq!(classify(s), Refusal::ForGood, "{s:#x}");
        }
    }

    #[test]
    fn remembered_events_are_bounded() {
        let mut a = Accepted::default();
        for n in 0..REMEMBERED + 5 {
            a.add(&Arc::from(n.to_string()), 0);
        }
        assert_eq!(a.by_event.len(), REMEMBERED);
        assert!(a.of("0").is_empty());
        assert_eq!(a.of(&(REMEMBERED + 4).to_string()), [0]);
    }
}
