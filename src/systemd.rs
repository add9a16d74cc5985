//! systemd integration for `Type=notify` (DESIGN §10): `READY=1` once the journal, sinks,
//! adapters and API are up, `STATUS=` lines an operator sees in `systemctl status`,
//! `STOPPING=1` when shutdown begins, and the watchdog.
//!
//! The watchdog is not a timer that pings regardless: every half `WatchdogSec` it sends a fresh
//! task through the tokio runtime, and that task asks the journal writer for a heartbeat, which
//! the writer answers only after a transaction that wrote a row has committed. `WATCHDOG=1` goes
//! out only when that round trip came back within the half interval. A wedged writer thread, a
//! journal that no longer takes writes (lock held, disk gone read-only) or a runtime that no
//! longer schedules tasks all mean no ping, and systemd restarts the gateway (`Restart=`).
//!
//! Outside systemd (`$NOTIFY_SOCKET` unset) everything here is a no-op. Messages are sent with a
//! plain `AF_UNIX` datagram to the socket named by the environment (the protocol of
//! `sd_notify(3)`, states formatted by the `sd-notify` crate), so tests can point a
//! [`Notifier`] at a socket of their own without touching the process environment.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::future::Future;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use atgw_sdk::Shutdown;
use sd_notify::NotifyState;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::journal::WriterHandle;

/// Where `sd_notify` messages go: the service manager's socket, or nowhere.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    socket: Option<OsString>,
}

impl Notifier {
    /// The socket systemd named in `$NOTIFY_SOCKET`; a no-op notifier when there is none.
    pub fn from_env() -> Notifier {
        Notifier {
            socket: std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()),
        }
    }

    /// A notifier that sends to `path` (tests, or a supervisor of one's own).
    pub fn to_socket(path: impl Into<PathBuf>) -> Notifier {
        Notifier {
            socket: Some(path.into().into_os_string()),
        }
    }

    /// Whether anybody is listening.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `states` in one datagram, one `KEY=value` line each.
    pub fn send(&self, states: &[NotifyState<'_>]) -> std::io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let mut msg = String::new();
        for s in states {
            // Writing to a String cannot fail.
            let _ = writeln!(msg, "{s}");
        }
        let sock = UnixDatagram::unbound()?;
        // Never block a runtime worker on a full queue: systemd drains its socket promptly,
        // and a message that cannot go now is reported instead.
        sock.set_nonblocking(true)?;
        let sent = send_to(&sock, socket, msg.as_bytes())?;
        if sent != msg.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "notify socket took a partial message",
            ));
        }
        Ok(())
    }

    /// As [`Notifier::send`], logging (not returning) a failure: telling systemd is best effort,
    /// and a missed `WATCHDOG=1` already has the right consequence.
    fn tell(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = self.send(states) {
            tracing::warn!("cannot notify systemd: {e}");
        }
    }
}

/// `@name` is an abstract socket (as container managers use); anything else a path.
fn send_to(sock: &UnixDatagram, socket: &OsString, msg: &[u8]) -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        if let Some(name) = socket.as_bytes().strip_prefix(b"@") {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            return sock.send_to_addr(msg, &addr);
        }
    }
    sock.send_to(msg, socket)
}

/// Called once the gateway is up: `READY=1` with a `STATUS=` summary, and, when systemd set
/// `WatchdogSec=` (`$WATCHDOG_USEC`), the watchdog task, spawned into `tasks` and stopped by
/// `stop` (intake's shutdown, so it ends before the writer is asked to finish).
pub fn ready(status: &str, writer: WriterHandle, stop: Shutdown, tasks: &mut JoinSet<()>) {
    let notifier = Notifier::from_env();
    if !notifier.is_enabled() {
        return;
    }
    notifier.tell(&[NotifyState::Ready, NotifyState::Status(status)]);
    if let Some(period) = sd_notify::watchdog_enabled() {
        tracing::info!(
            "systemd watchdog every {} ms: pinged only after a journal commit round trip",
            period.as_millis()
        );
        tasks.spawn(watchdog(notifier, period, writer, stop));
    }
}

/// Called when shutdown begins: `STOPPING=1`, and what the gateway is doing meanwhile.
pub fn stopping() {
    Notifier::from_env().tell(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: intake closed, committing and draining sinks"),
    ]);
}

/// Called when a SIGHUP reload begins: `RELOADING=1` (with the monotonic time systemd asks
/// for); the new configuration's start sends `READY=1` again.
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    Notifier::from_env().tell(&states);
}

/// What the watchdog vouches for with one round trip.
pub trait Pipeline: Clone + Send + Sync + 'static {
    /// Resolves `Ok` once the pipeline proved it is alive.
    fn round_trip(&self) -> impl Future<Output = Result<(), String>> + Send;
}

impl Pipeline for WriterHandle {
    fn round_trip(&self) -> impl Future<Output = Result<(), String>> + Send {
        let w = self.clone();
        async move {
            w.heartbeat()
                .await
                .map_err(|e| format!("journal heartbeat failed: {e}"))
        }
    }
}

/// What the watchdog believes about the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// The last probe failed, and why.
    Stalled(String),
}

/// How one probe went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The round trip came back in time.
    Answered,
    /// The pipeline answered with an error (a failed commit, a writer gone).
    Failed(String),
    /// No answer within the budget.
    TimedOut(Duration),
}

/// What to do after a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effects {
    /// Send `WATCHDOG=1`.
    pub ping: bool,
    /// A new `STATUS=` line (and a log line) when liveness changed.
    pub status: Option<String>,
}

/// The watchdog's decision: ping only after an answered probe; say so once when the pipeline
/// stalls and once when it recovers.
pub fn step(state: &Liveness, probe: Probe) -> (Liveness, Effects) {
    let why = match probe {
        Probe::Answered => {
            let status = match state {
                Liveness::Alive => None,
                Liveness::Stalled(_) => Some("running: journal commits again".to_owned()),
            };
            return (Liveness::Alive, Effects { ping: true, status });
        }
        Probe::Failed(e) => e,
        Probe::TimedOut(budget) => format!(
            "the journal writer did not commit a heartbeat within {} ms",
            budget.as_millis()
        ),
    };
    let status = match state {
        Liveness::Alive => Some(format!(
            "stalled: {why}; watchdog pings withheld, systemd will restart atgw"
        )),
        Liveness::Stalled(_) => None,
    };
    (
        Liveness::Stalled(why),
        Effects {
            ping: false,
            status,
        },
    )
}

/// Aborts the probe task when the probe is abandoned (timed out, or shutdown began).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One round trip: a freshly spawned task (the runtime must schedule it) through `pipeline`,
/// within `budget`.
pub async fn probe<P: Pipeline>(pipeline: &P, budget: Duration) -> Probe {
    let p = pipeline.clone();
    let mut task = AbortOnDrop(tokio::spawn(async move { p.round_trip().await }));
    match tokio::time::timeout(budget, &mut task.0).await {
        Ok(Ok(Ok(()))) => Probe::Answered,
        Ok(Ok(Err(e))) => Probe::Failed(e),
        Ok(Err(e)) => Probe::Failed(format!("watchdog probe task failed: {e}")),
        Err(_) => Probe::TimedOut(budget),
    }
}

/// Probes every half `period` and pings after each answered probe, until `stop`.
pub async fn watchdog<P: Pipeline>(
    notifier: Notifier,
    period: Duration,
    pipeline: P,
    stop: Shutdown,
) {
    // Half the interval, as sd_watchdog_enabled(3) advises; the probe gets that long, so an
    // answered probe always pings before systemd's deadline.
    let half = (period / 2).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(half);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = Liveness::Alive;
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = async { tick.tick().await; probe(&pipeline, half).await } => o,
        };
        let (next, fx) = step(&state, outcome);
        if fx.ping {
            notifier.tell(&[NotifyState::Watchdog]);
        }
        if let Some(status) = &fx.status {
            match next {
                Liveness::Alive => tracing::info!("watchdog: {status}"),
                Liveness::Stalled(_) => tracing::error!("watchdog: {status}"),
            }
            notifier.tell(&[NotifyState::Status(status)]);
        }
        state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A pipeline that answers, or hangs like a wedged writer, at the flip of a switch.
    #[derive(Clone)]
    struct Switch(Arc<AtomicBool>);

    impl Pipeline for Switch {
        fn round_trip(&self) -> impl Future<Output = Result<(), String>> + Send {
            let wedged = self.0.load(Ordering::SeqCst);
            async move {
                if wedged {
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        }
    }

    fn listener() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        (dir, sock, Notifier::to_socket(path))
    }

    fn drain(sock: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn every_probe_outcome_from_every_state_decides_ping_and_status() {
        let stalled = Liveness::Stalled("earlier".into());
        let late = Probe::TimedOut(Duration::from_millis(200));
        let failed = Probe::Failed("commit failed".into());

        let (s, fx) = step(&Liveness::Alive, Probe::Answered);
        assert_eq!((s, fx.ping, fx.status), (Liveness::Alive, true, None));

        let (s, fx) = step(&stalled, Probe::Answered);
        assert_eq!(s, Liveness::Alive);
        assert!(fx.ping);
        assert!(fx.status.unwrap().starts_with("running"));

        let (s, fx) = step(&Liveness::Alive, late.clone());
        assert!(matches!(s, Liveness::Stalled(ref w) if w.contains("200 ms")));
        assert!(!fx.ping);
        assert!(fx.status.unwrap().starts_with("stalled"));

        let (s, fx) = step(&Liveness::Alive, failed.clone());
        assert_eq!(s, Liveness::Stalled("commit failed".into()));
        assert!(!fx.ping);
        assert!(fx.status.unwrap().contains("commit failed"));

        // Still stalled: no ping, and no repeated status line.
        for p in [late, failed] {
            let (s, fx) = step(&stalled, p);
            assert!(matches!(s, Liveness::Stalled(_)));
            assert_eq!((fx.ping, fx.status), (false, None));
        }
    }

    #[test]
    fn a_notifier_sends_one_datagram_of_lines_to_its_socket() {
        let (_dir, sock, n) = listener();
        n.send(&[NotifyState::Ready, NotifyState::Status("ready: 1 adapter")])
            .unwrap();
        n.send(&[NotifyState::Watchdog]).unwrap();
        assert_eq!(
            drain(&sock),
            ["READY=1\nSTATUS=ready: 1 adapter\n", "WATCHDOG=1\n"]
        );
        // Nobody listening is not an error.
        Notifier::default().send(&[NotifyState::Ready]).unwrap();
    }

    #[test]
    fn an_abstract_notify_socket_is_reached_by_its_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("atgw-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_nonblocking(true).unwrap();
        Notifier::to_socket(format!("@{name}"))
            .send(&[NotifyState::Watchdog])
            .unwrap();
        assert_eq!(drain(&sock), ["WATCHDOG=1\n"]);
    }

    /// Waits (real time: the crate's tests run without tokio's test clock) until `sock` has
    /// produced messages satisfying `done`, or `within` passed; returns what arrived.
    async fn collect(
        sock: &UnixDatagram,
        within: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        while tokio::time::Instant::now() < deadline && !done(&got) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            got.extend(drain(sock));
        }
        got
    }

    fn pings(got: &[String]) -> usize {
        got.iter().filter(|m| *m == "WATCHDOG=1\n").count()
    }

    #[tokio::test]
    async fn pings_stop_while_the_pipeline_is_wedged_and_resume_after() {
        let (_dir, sock, notifier) = listener();
        let wedged = Arc::new(AtomicBool::new(false));
        let stop = Shutdown::new();
        let period = Duration::from_millis(400);
        let task = tokio::spawn(watchdog(
            notifier,
            period,
            Switch(wedged.clone()),
            stop.clone(),
        ));

        // Healthy: a ping per half period, the first at once.
        let got = collect(&sock, Duration::from_secs(5), |g| pings(g) >= 3).await;
        assert!(pings(&got) >= 3, "{got:?}");
        assert_eq!(pings(&got), got.len(), "only pings while healthy: {got:?}");

        // Wedged: once a probe already under way is done, not one ping for several periods,
        // and one status line saying why.
        wedged.store(true, Ordering::SeqCst);
        tokio::time::sleep(period).await;
        let mut after = drain(&sock);
        let settled = after.len();
        tokio::time::sleep(period * 3).await;
        after.extend(drain(&sock));
        assert_eq!(pings(&after[settled..]), 0, "{after:?}");
        let status: Vec<_> = after.iter().filter(|m| m.starts_with("STATUS=")).collect();
        assert_eq!(status.len(), 1, "{after:?}");
        assert!(
            status[0].starts_with("STATUS=stalled: the journal writer did not commit"),
            "{status:?}"
        );

        // Recovered: the status says so and the pings come back.
        wedged.store(false, Ordering::SeqCst);
        let got = collect(&sock, Duration::from_secs(5), |g| pings(g) >= 2).await;
        assert!(pings(&got) >= 2, "{got:?}");
        assert!(
            got.iter().any(|m| m.starts_with("STATUS=running")),
            "{got:?}"
        );

        stop.cancel();
        task.await.unwrap();
    }

    /// The real writer: a heartbeat commits a row; while another connection holds the
    /// journal's write lock the probe cannot come back, and it does once the lock is gone.
    #[tokio::test]
    async fn the_writer_heartbeat_commits_and_a_locked_journal_starves_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let opened = crate::journal::open(&path).unwrap();
        let (ingest, ingest_rx) = atgw_sdk::ingest::channel(16);
        let (writer, thread) = crate::journal::writer::spawn(
            opened.conn,
            crate::pipeline::Setup {
                gateway_id: "gw-test".into(),
                sinks: Vec::new(),
                registry: Arc::new(crate::registry::Registry::new("site", &[])),
                rota: std::sync::Arc::new(crate::rota::Rota::new(
                    &[],
                    &[],
                    jiff::tz::TimeZone::UTC,
                )),
                policies: Arc::new(crate::alerts::Policies::new(
                    &[],
                    &[],
                    &Default::default(),
                    &[],
                )),
                vitals: Arc::new(crate::rules::VitalRules {
                    config: Default::default(),
                    residents: Default::default(),
                    not_reading_after: Default::default(),
                }),
                dedupe_window: Duration::from_secs(60),
                dead_letter_bytes: 1024,
                max_clock_skew: Duration::from_secs(120),
                max_dead_letters: 10_000,
                max_unregistered_devices: 1000,
                link_down_alert_after: std::time::Duration::from_secs(60),
                retention: Default::default(),
                max_bytes: None,
                clock: Arc::new(atgw_sdk::clock::SystemClock),
                metrics: Arc::new(crate::metrics::Metrics::new(&[], &[])),
                commits: Default::default(),
            },
            ingest_rx,
        )
        .unwrap();

        let budget = Duration::from_millis(500);
        assert_eq!(probe(&writer, budget).await, Probe::Answered);
        let other = rusqlite::Connection::open(&path).unwrap();
        let beat = |c: &rusqlite::Connection| -> i64 {
            c.query_row(
                "SELECT value FROM adapter_state WHERE adapter = 'gateway' AND key = ?1",
                [crate::journal::writer::HEARTBEAT_KEY],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
            .parse()
            .unwrap()
        };
        let first = beat(&other);
        assert!(first > 0);

        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert_eq!(probe(&writer, budget).await, Probe::TimedOut(budget));
        other.execute_batch("COMMIT").unwrap();
        // The writer gets the lock back and answers the next probe.
        assert_eq!(
            probe(&writer, Duration::from_secs(10)).await,
            Probe::Answered
        );
        assert!(beat(&other) >= first);

        drop(writer);
        drop(ingest);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}
