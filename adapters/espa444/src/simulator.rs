//! `atgw simulate espa`: the two ends atgw talks to, for commissioning and load.
//!
//! - [`control_station`]: a nurse-call control station (address 1) sending calls, and resets
//!   when asked, to atgw's adapter, checking every answer (each block must be ACKed) and
//!   measuring the ACK latency.
//! - [`pager`]: a paging system (address 2) taking atgw's pages, ACKing each good block and
//!   printing what it was paged.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::block::{Block, Field, Header};
use crate::config::Transport;
use crate::receive::{Action, Receiver};
use crate::send::{SendError, Sender, Timing};
use crate::transport::{Opener, Stream};
use crate::wire::Reader;

/// What the control station sends.
#[derive(Clone, Debug)]
pub struct CallPlan {
    pub transport: Transport,
    /// Call address of the first call; `count` calls cycle through `addresses` addresses.
    pub address: u64,
    pub addresses: u64,
    pub text: String,
    /// `1` alarm, `2` high, `3` normal.
    pub priority: char,
    /// Send a reset (call type 1) after each call.
    pub reset: bool,
    pub count: u64,
    /// Calls per second; 0: as fast as they are answered.
    pub rate: f64,
    /// How long to wait for each answer.
    pub timeout: Duration,
}

/// What came of it.
#[derive(Clone, Debug, Default)]
pub struct CallReport {
    pub sent: u64,
    pub acked: u64,
    pub refused: u64,
    pub timeouts: u64,
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
    pub elapsed: Duration,
}

/// Why the simulator could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot open the link ({0}): {1}")]
    Open(String, std::io::Error),
    #[error("the link broke: {0}")]
    Io(#[from] std::io::Error),
}

async fn open(t: &Transport) -> Result<Stream, SimError> {
    let opener = Opener::bind(t)
        .await
        .map_err(|e| SimError::Open(t.describe(), e))?;
    let (s, _) = opener
        .open()
        .await
        .map_err(|e| SimError::Open(t.describe(), e))?;
    Ok(s)
}

/// Sends one block through select, block, ACK, EOT; the time from the block to its ACK.
async fn send_one(
    s: &mut Stream,
    block: Vec<u8>,
    timing: Timing,
) -> Result<Result<Duration, SendError>, std::io::Error> {
    let base = Instant::now();
    let (mut sender, first) = Sender::start(b'1', b'2', timing, block, base.elapsed());
    s.write_all(&first).await?;
    let mut reader = Reader::new();
    let mut buf = [0u8; 256];
    let mut block_sent = None;
    loop {
        if let Some(r) = sender.outcome() {
            let took = block_sent.map_or(Duration::ZERO, |t: Instant| t.elapsed());
            return Ok(r.clone().map(|()| took));
        }
        let wake = sender
            .deadline()
            .map_or_else(|| Instant::now() + Duration::from_secs(1), |d| base + d);
        let out = tokio::select! {
            r = s.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the peer"));
                }
                let mut out = Vec::new();
                for t in reader.feed(&buf[..n]) {
                    out.extend(sender.on(t, base.elapsed()));
                }
                out
            }
            _ = tokio::time::sleep_until(wake) => sender.tick(base.elapsed()),
        };
        if matches!(sender.state(), crate::send::State::Sending { .. }) && block_sent.is_none() {
            block_sent = Some(Instant::now());
        }
        s.write_all(&out).await?;
    }
}

/// Runs the control station's plan.
pub async fn control_station(plan: CallPlan) -> Result<CallReport, SimError> {
    let mut s = open(&plan.transport).await?;
    let timing = Timing {
        select_timeout: plan.timeout,
        select_retries: 0,
        block_timeout: plan.timeout,
        block_retries: 0,
    };
    let mut r = CallReport::default();
    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..plan.count {
        if plan.rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / plan.rate)).await;
        }
        let address = (plan.address + i % plan.addresses.max(1)).to_string();
        let mut blocks = vec![Block::new(
            Header::CallToPager,
            [
                (Field::CallAddress, address.clone()),
                (Field::Message, plan.text.clone()),
                (Field::CallType, "3".to_owned()),
                (Field::Priority, plan.priority.to_string()),
            ],
        )];
        if plan.reset {
            blocks.push(Block::new(
                Header::CallToPager,
                [
                    (Field::CallAddress, address),
                    (Field::CallType, "1".to_owned()),
                ],
            ));
        }
        for b in blocks {
            r.sent += 1;
            match send_one(&mut s, b.encode(), timing).await? {
                Ok(took) => {
                    r.acked += 1;
                    latencies.push(took);
                }
                Err(SendError::SelectRefused(_) | SendError::BlockRefused(_)) => r.refused += 1,
                Err(_) => r.timeouts += 1,
            }
        }
    }
    r.elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    r.latency_p50 = at(0.5);
    r.latency_p99 = at(0.99);
    Ok(r)
}

/// One page the paging system took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paged {
    pub address: String,
    pub text: String,
    pub priority: Option<String>,
    pub reset: bool,
}

impl std::fmt::Display for Paged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reset {
            return write!(f, "reset {}", self.address);
        }
        write!(
            f,
            "page {} priority {}: {}",
            self.address,
            self.priority.as_deref().unwrap_or("-"),
            self.text
        )
    }
}

/// Takes pages until `count` (0: forever) were ACKed, calling `each` for every one.
pub async fn pager(
    transport: Transport,
    count: u64,
    mut each: impl FnMut(&Paged),
) -> Result<u64, SimError> {
    let mut s = open(&transport).await?;
    let base = Instant::now();
    let mut rx = Receiver::new(b'2', Duration::from_secs(3));
    let mut reader = Reader::new();
    let mut buf = [0u8; 512];
    let mut taken = 0;
    while count == 0 || taken < count {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        for t in reader.feed(&buf[..n]) {
            let mut queue: std::collections::VecDeque<Action> = rx.on(t, base.elapsed()).into();
            while let Some(a) = queue.pop_front() {
                match a {
                    Action::Send(b) => s.write_all(&b).await?,
                    Action::Reject { error, .. } => eprintln!("refused a block (NAK): {error}"),
                    Action::Deliver { raw } => {
                        if let Ok(b) = Block::decode(&raw) {
                            let p = Paged {
                                address: b.get(Field::CallAddress).unwrap_or("").to_owned(),
                                text: b.get(Field::Message).unwrap_or("").to_owned(),
                                priority: b.get(Field::Priority).map(str::to_owned),
                                reset: b.get(Field::CallType) == Some("1"),
                            };
                            each(&p);
                            taken += 1;
                        }
                        queue.extend(rx.answered(true, base.elapsed()));
                    }
                }
            }
        }
    }
    Ok(taken)
}
