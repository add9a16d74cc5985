//! Assembles and runs the daemon: journal and writer, sinks with their outbox dispatchers, then
//! adapters; and takes it down in the reverse order so that nothing accepted is lost: intake
//! stops first, the writer commits what it holds, then sinks get a bounded time to deliver.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atgw_sdk::clock::{SharedClock, SystemClock};
use atgw_sdk::component::{AdapterContext, AlertAction, AlertRequest, SinkContext, Site};
use atgw_sdk::event::{EventDraft, Kind, Phase, Priority};
use atgw_sdk::sink::SinkIo;
use atgw_sdk::{Health, Shutdown};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::components::{PreparedAdapter, PreparedSink};
use crate::config::Config;
use crate::journal::{self, WriterHandle};
use crate::outbox;
use crate::registry::Registry;

/// How long sinks may keep delivering after intake stopped.
const DRAIN: Duration = Duration::from_secs(5);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Path(#[from] crate::paths::PathError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("adapter {adapter}: {what}")]
    Adapter { adapter: String, what: String },
    #[error("sink {sink}: {what}")]
    Sink { sink: String, what: String },
    #[error("gateway.timezone: {0}")]
    TimeZone(String),
    #[error("cannot start the journal writer: {0}")]
    Writer(std::io::Error),
    #[error("api: {0}")]
    Api(String),
}

/// A running gateway: health of every component, and how to stop it.
pub struct Running {
    pub health: BTreeMap<String, Arc<Health>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub writer: WriterHandle,
    pub journal_path: PathBuf,
    intake: Shutdown,
    output: Shutdown,
    adapters: JoinSet<()>,
    outputs: JoinSet<()>,
    writer_thread: std::thread::JoinHandle<()>,
}

/// What [`preflight`] prepared and `start` runs, in config order.
pub struct Checked {
    adapters: Vec<Box<dyn PreparedAdapter>>,
    sinks: Vec<Box<dyn PreparedSink>>,
}

/// What every component is told about the site.
fn site(cfg: &Config) -> Result<Site, StartError> {
    Ok(Site {
        gateway_id: cfg.gateway.id.clone(),
        profiles_dir: cfg.gateway.profiles_dir.clone(),
        timezone: jiff::tz::TimeZone::get(&cfg.gateway.timezone)
            .map_err(|e| StartError::TimeZone(e.to_string()))?,
        // Checked by `Config::validate`; a config that got here has consistent ids.
        fhir: std::sync::Arc::new(
            crate::registry::fhir_ids(&cfg.devices, false).unwrap_or_default(),
        ),
    })
}

/// `[[device]] match` keys no event of the device's adapter can carry (`{ device = … }` where
/// the profiles give `imei`): such a device would never be matched, and its events would arrive
/// unregistered, silently. One line each, for `check-config`; an adapter that cannot say which
/// keys it gives is not judged.
pub fn unmatchable_device_keys(cfg: &Config) -> Vec<String> {
    let Ok(site) = site(cfg) else {
        return Vec::new();
    };
    let known: BTreeMap<&str, Option<std::collections::BTreeSet<String>>> = cfg
        .adapters
        .iter()
        .map(|a| (a.name(), a.match_keys(&site)))
        .collect();
    let mut out = Vec::new();
    for (i, d) in cfg.devices.iter().enumerate() {
        let Some(Some(keys)) = known.get(d.adapter.as_str()) else {
            continue;
        };
        for k in d.match_keys.keys().filter(|k| !keys.contains(*k)) {
            out.push(format!(
                "device[{i}] (`{}`): match key `{k}` is not a key adapter `{}` reports (it \
                 reports: {}); this entry can never match, so the device's events would arrive \
                 unregistered",
                d.id,
                d.adapter,
                keys.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    out
}

/// Checks everything that can fail at start without binding a port or connecting: the paths
/// atgw owns ([`crate::paths`]), the time zone, and each component's own preflight (profiles,
/// TLS material, secrets and key files). `check-config` runs the same checks. `start` runs it
/// first, so a broken profile stops the start rather than a message; a reload runs it while the
/// old configuration still serves.
pub fn preflight(cfg: &Config) -> Result<Checked, StartError> {
    crate::paths::check_config(cfg)?;
    let site = site(cfg)?;
    let adapters = cfg
        .adapters
        .iter()
        .map(|a| {
            a.check(&site).map_err(|e| StartError::Adapter {
                adapter: a.name().to_owned(),
                what: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    let sinks = cfg
        .sinks
        .iter()
        .map(|s| {
            s.check(&site).map_err(|e| StartError::Sink {
                sink: s.name().to_owned(),
                what: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(api) = &cfg.api {
        atgw_sdk::secret::read_secret_file(&api.token_file)
            .map_err(|e| StartError::Api(format!("token_file: {e}")))?;
        if api.console.as_ref().is_some_and(|c| c.enabled) {
            crate::console::check_listen(&api.listen, api.tls.is_some())
                .map_err(StartError::Api)?;
        }
        // A configured certificate is checked here; a self-signed one is made at the start.
        if let Some(t) = api.tls.as_ref().filter(|t| !t.self_signed) {
            crate::api_tls::load(t, &cfg.gateway.data_dir)
                .map_err(|e| StartError::Api(e.to_string()))?;
        }
    }
    Ok(Checked { adapters, sinks })
}

/// Starts everything; returns once adapters and sinks are spawned.
pub async fn start(cfg: &Config) -> Result<Running, StartError> {
    start_with_clock(cfg, Arc::new(SystemClock)).await
}

/// [`start`] on `clock`: every timestamp, retention window, alert and supervision timer asks
/// it. The daemon always runs on the system clock; benches and tests that need days to pass in
/// minutes (the soak) give a [`atgw_sdk::clock::ManualClock`].
pub async fn start_with_clock(cfg: &Config, clock: SharedClock) -> Result<Running, StartError> {
    if let crate::paths::Found::Real { mode } =
        crate::paths::create_data_dir(&cfg.gateway.data_dir)?
        && mode & 0o007 != 0
    {
        // Not ours to change (DESIGN §8); the journal inside is private anyway.
        tracing::warn!(
            "data_dir {} has mode {mode:o}: other users can list it; run `chmod 750 {}`",
            cfg.gateway.data_dir.display(),
            cfg.gateway.data_dir.display()
        );
    }
    let journal_path = cfg.gateway.data_dir.join(journal::FILE_NAME);
    let mut opened = journal::open(&journal_path)?;
    let sink_names: Vec<String> = cfg.sinks.iter().map(|s| s.name().to_owned()).collect();
    let salvaged = match &opened.moved_aside {
        Some((aside, _)) => Some(journal::salvage::salvage(
            aside,
            &mut opened.conn,
            &sink_names,
        )),
        None => None,
    };
    let site = site(cfg)?;
    let registry = Arc::new(Registry::new(&cfg.gateway.site, &cfg.devices));

    let Checked {
        adapters: prepared_adapters,
        sinks: prepared_sinks,
    } = preflight(cfg)?;
    for w in unmatchable_device_keys(cfg) {
        tracing::warn!("{w}");
    }

    let intake = Shutdown::new();
    let output = Shutdown::new();
    let mut health = BTreeMap::new();
    let notifies: Vec<(String, Arc<crate::outbox::SinkWake>)> = cfg
        .sinks
        .iter()
        .map(|s| (s.name().to_owned(), Arc::default()))
        .collect();
    let (ingest, ingest_rx) = atgw_sdk::ingest::channel(4096);
    let metrics = Arc::new(crate::metrics::Metrics::new(
        &cfg.adapters
            .iter()
            .map(|a| a.name().to_owned())
            .collect::<Vec<_>>(),
        &sink_names,
    ));
    let commits = Arc::new(journal::commits::CommitHealth::default());
    let rota = Arc::new(crate::rota::Rota::new(
        &cfg.people,
        &cfg.teams,
        site.timezone.clone(),
    ));
    let (writer, writer_thread) = journal::writer::spawn(
        opened.conn,
        crate::pipeline::Setup {
            gateway_id: cfg.gateway.id.clone(),
            sinks: notifies.clone(),
            registry: registry.clone(),
            policies: Arc::new(
                crate::alerts::Policies::new(&cfg.policies, &cfg.routes, &cfg.alerts, &sink_names)
                    .in_time_zone(site.timezone.clone()),
            ),
            rota: rota.clone(),
            vitals: Arc::new(crate::rules::VitalRules {
                config: cfg.vitals.clone(),
                residents: cfg
                    .residents
                    .iter()
                    .map(|r| (r.id.clone(), r.clone()))
                    .collect(),
                not_reading_after: cfg
                    .devices
                    .iter()
                    .filter_map(|d| d.not_reading_after.map(|t| (d.id.clone(), t)))
                    .collect(),
            }),
            dedupe_window: cfg.journal.dedupe_window,
            dead_letter_bytes: cfg.journal.dead_letter_bytes,
            max_clock_skew: cfg.gateway.max_clock_skew,
            max_dead_letters: cfg.journal.max_dead_letters,
            max_unregistered_devices: cfg.journal.max_unregistered_devices,
            link_down_alert_after: cfg.alerts.link_down_alert_after,
            retention: journal::retention::Retention::from_config(
                &cfg.journal,
                site.timezone.clone(),
            ),
            max_bytes: cfg
                .journal
                .max_bytes
                .or_else(|| journal::budget::default_for(&cfg.gateway.data_dir)),
            clock: clock.clone(),
            metrics: metrics.clone(),
            commits: commits.clone(),
        },
        ingest_rx,
    )
    .map_err(StartError::Writer)?;

    if !opened.reclaims {
        tracing::warn!(
            "the journal predates incremental vacuum and is too large to convert at start: space freed by retention is reused but not returned to the filesystem; to convert it, stop atgw and run `sqlite3 <data_dir>/atgw.db 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'` (needs free space the size of the file)"
        );
    }
    if let Some((aside, reason)) = &opened.moved_aside {
        tracing::error!(
            "the journal was corrupt ({reason}); it was moved to {} and a new one started",
            aside.display()
        );
        let recovered = match &salvaged {
            Some(Ok(s)) => {
                if s.complete() {
                    tracing::warn!("journal salvage: {}", s.summary());
                } else {
                    tracing::error!("journal salvage: {}", s.summary());
                }
                if s.complete() {
                    format!("all {} events recovered", s.events())
                } else if s.lost_at_end() {
                    format!("{} events recovered, some could not be read", s.events())
                } else {
                    format!(
                        "{} events recovered, up to {} could not be read",
                        s.events(),
                        s.events_lost()
                    )
                }
            }
            Some(Err(e)) => {
                tracing::error!("journal salvage failed ({e}); nothing was recovered");
                "nothing could be recovered".to_owned()
            }
            None => String::new(),
        };
        let mut d = EventDraft::new(
            Kind::DeviceFault,
            Phase::Raised,
            gateway_device(cfg),
            crate::GATEWAY_ADAPTER,
        );
        d.data.priority = Priority::High;
        d.data.message = Some(format!(
            "Gateway journal was corrupt; moved aside and restarted ({recovered})"
        ));
        // The quick_check dump is for the log above and the kept file, not for every sink.
        d.data.codes.vendor = Some(format!(
            "journal corrupt; moved aside to {}",
            aside.display()
        ));
        let _ = writer.gateway_event(d).await;
    }

    let mut outputs = JoinSet::new();
    // Intake tasks started with the sinks (alert acknowledgements), stopped with the adapters.
    let mut adapters_early = JoinSet::new();
    let (alert_requests, alert_rx) = mpsc::channel(64);
    adapters_early.spawn(commit_alert_requests(alert_rx, writer.clone()));
    for ((s, prepared), (name, wake)) in cfg.sinks.iter().zip(prepared_sinks).zip(notifies) {
        let h = Arc::new(Health::default());
        health.insert(format!("sink:{name}"), h.clone());
        let mut extra_health = BTreeMap::new();
        for part in s.extra_health() {
            let ph = Arc::new(Health::default());
            health.insert(format!("{part}:{name}"), ph.clone());
            extra_health.insert(part, ph);
        }
        let window = s.window();
        let (to_sink, deliveries) = mpsc::channel(window);
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let ctx = SinkContext {
            site: site.clone(),
            io: SinkIo {
                deliveries,
                outcomes: outcomes_tx,
            },
            health: h,
            clock: clock.clone(),
            shutdown: output.clone(),
            intake_shutdown: intake.clone(),
            alert_requests: alert_requests.clone(),
            extra_health,
        };
        let tasks = prepared.start(ctx).await.map_err(|e| StartError::Sink {
            sink: name.clone(),
            what: e.to_string(),
        })?;
        outputs.spawn(tasks.output);
        for t in tasks.intake {
            adapters_early.spawn(t);
        }
        let dispatch = outbox::Dispatch {
            sink: name.clone(),
            journal: journal_path.clone(),
            window,
            wake,
            writer: writer.clone(),
            to_sink,
            outcomes,
            shutdown: output.clone(),
            escalate_after_failed_attempts: cfg.alerts.escalate_after_failed_attempts,
            // A row held for a bundle is not late: the sink's hold comes on top.
            failing_alert_after: cfg.alerts.sink_failing_alert_after + s.hold(),
            metrics: metrics.clone(),
            rota: rota.clone(),
            channel: s.type_name(),
        };
        outputs.spawn(async move {
            if let Err(e) = outbox::run(dispatch, DRAIN).await {
                tracing::error!(sink = %name, "outbox dispatcher stopped: {e}");
            }
        });
    }
    drop(alert_requests);

    let mut adapters = adapters_early;
    for (a, prepared) in cfg.adapters.iter().zip(prepared_adapters) {
        let h = Arc::new(Health::default());
        health.insert(format!("adapter:{}", a.name()), h.clone());
        let ctx = AdapterContext {
            site: site.clone(),
            ingest: ingest.for_adapter(a.name()),
            health: h,
            clock: clock.clone(),
            shutdown: intake.clone(),
        };
        let task = prepared.start(ctx).await.map_err(|e| StartError::Adapter {
            adapter: a.name().to_owned(),
            what: e.to_string(),
        })?;
        adapters.spawn(task);
    }
    let links: Vec<(String, Arc<Health>)> = health
        .iter()
        .filter_map(|(k, h)| Some((k.strip_prefix("adapter:")?.to_owned(), h.clone())))
        .collect();
    adapters.spawn(crate::supervision::watch_links(
        links,
        writer.clone(),
        clock.clone(),
        intake.clone(),
    ));
    // The check a clean stop let the start skip runs beside the writer, and again daily;
    // stopped with the adapters (it holds a writer handle, which would keep the writer up).
    {
        let check = check_journal_daily(
            journal_path.clone(),
            opened.checked,
            writer.clone(),
            gateway_device(cfg),
        );
        let stop = intake.clone();
        adapters.spawn(async move {
            tokio::select! {
                _ = check => {}
                _ = stop.cancelled() => {}
            }
        });
    }
    metrics.watch(&health);
    if let Some(api) = &cfg.api {
        // No token, no API: refuse to start rather than serve alerts to anyone on the box.
        let token = atgw_sdk::secret::read_secret_file(&api.token_file)
            .map_err(|e| StartError::Api(format!("token_file: {e}")))?;
        let (listener, addr) = crate::api::bind(api)
            .await
            .map_err(|e| StartError::Api(format!("listen {}: {e}", api.listen)))?;
        let state = crate::api::ApiState {
            token: Arc::new(token),
            writer: writer.clone(),
            journal: journal_path.clone(),
            metrics: metrics.clone(),
            readiness: Arc::new(crate::readiness::Readiness::new(
                cfg.sinks.iter().map(|s| (s.name().to_owned(), s.link())),
                &health,
                journal_path.clone(),
                commits.clone(),
            )),
            auth_log: Arc::new(atgw_sdk::ratelimit::LogLimiter::new(
                crate::api::AUTH_LOG_EVERY,
            )),
            console: match api.console.clone().filter(|c| c.enabled) {
                Some(c) => {
                    crate::console::check_listen(&api.listen, api.tls.is_some())
                        .map_err(StartError::Api)?;
                    Some(Arc::new(
                        crate::console::ConsoleState::new(
                            c,
                            &cfg.devices,
                            &cfg.gateway.timezone,
                            &journal_path,
                            writer.commits(),
                            crate::console::now_ms(),
                        )
                        .map_err(|e| StartError::Api(format!("console: journal: {e}")))?,
                    ))
                }
                None => None,
            },
        };
        let state_has_console = state.console.is_some();
        let tls = match &api.tls {
            Some(t) => {
                let loaded = crate::api_tls::load(t, &cfg.gateway.data_dir)
                    .map_err(|e| StartError::Api(e.to_string()))?;
                if let Some(p) = &loaded.generated {
                    tracing::info!(
                        "local API: generated a self-signed certificate {}",
                        p.display()
                    );
                }
                tracing::info!(
                    fingerprint = %loaded.fingerprint,
                    "local API: TLS certificate SHA-256 fingerprint {} (check it in the browser the first time)",
                    loaded.fingerprint
                );
                Some(loaded.config)
            }
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop, limits, gateway_id) = (intake.clone(), api.clone(), cfg.gateway.id.clone());
        adapters.spawn(async move {
            if let Err(e) =
                crate::api::serve(listener, state, &limits, tls, &gateway_id, stop).await
            {
                tracing::error!("local API stopped: {e}");
            }
        });
        tracing::info!("local API on {scheme}://{addr}");
        if state_has_console {
            tracing::info!("care-team console on {scheme}://{addr}/console");
        }
    }
    drop(ingest);
    tracing::info!(
        adapters = cfg.adapters.len(),
        sinks = cfg.sinks.len(),
        devices = registry.len(),
        journal = %journal_path.display(),
        "atgw ready"
    );
    let status = format!(
        "ready: adapters={} sinks={} devices={}",
        cfg.adapters.len(),
        cfg.sinks.len(),
        registry.len()
    );
    crate::systemd::ready(&status, writer.clone(), intake.clone(), &mut adapters);
    Ok(Running {
        health,
        metrics,
        writer,
        journal_path,
        intake,
        output,
        adapters,
        outputs,
        writer_thread,
    })
}

impl Running {
    /// Stops intake, commits what was accepted, gives sinks `DRAIN` to deliver, and stops.
    pub async fn stop(mut self) {
        self.intake.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.adapters.join_next().await.is_some() {}
        })
        .await;
        self.writer.flush().await;
        self.output.cancel();
        let _ = tokio::time::timeout(DRAIN + Duration::from_secs(2), async {
            while self.outputs.join_next().await.is_some() {}
        })
        .await;
        self.outputs.abort_all();
        drop(self.writer);
        let t = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
        tracing::info!("atgw stopped");
    }
}

/// Care-team commands that reached a sink's own connection (MQTT acknowledgements): each is
/// committed through the writer and answered once committed.
async fn commit_alert_requests(mut rx: mpsc::Receiver<AlertRequest>, writer: WriterHandle) {
    while let Some(req) = rx.recv().await {
        let (by, req_via) = (req.by.clone(), req.via.clone());
        let cmd = match req.action {
            AlertAction::Ack => crate::alerts::AlertCommand::Ack {
                id: req.alert_id,
                by: req.by,
                note: req.note,
            },
            AlertAction::Resolve => crate::alerts::AlertCommand::Resolve {
                id: req.alert_id,
                by: req.by,
                outcome: req.outcome.unwrap_or_else(|| "other".into()),
                note: req.note,
            },
            AlertAction::Note => crate::alerts::AlertCommand::Note {
                id: req.alert_id,
                by: req.by,
                note: req.note.unwrap_or_default(),
            },
        };
        let result = match writer.alert(cmd).await {
            Ok(view) => {
                tracing::info!(alert = %view.id, status = %view.status, "alert updated over {}", req_via);
                Ok(())
            }
            Err(
                e
                @ (crate::alerts::AlertError::Storage(_) | crate::alerts::AlertError::Unavailable),
            ) => {
                // Not committed: drop the reply so the command stays unacknowledged and its
                // sender delivers it again. Only a refusal (unknown alert, already resolved,
                // bad outcome) is final and acknowledged.
                tracing::error!("cannot commit an alert command from {by}: {e}");
                continue;
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = req.reply.send(result);
    }
}

/// The gateway's own device id, for events it raises about itself.
pub fn gateway_device(cfg: &Config) -> String {
    format!("gateway:{}", cfg.gateway.id)
}

/// Exit status after the background check found damage (not 2, which systemd is told never
/// to restart).
const JOURNAL_DAMAGED_EXIT: i32 = 75;

/// How often the journal is checked in the background.
const JOURNAL_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// `PRAGMA quick_check` on a read-only connection: now (unless the start just ran it), then
/// every [`JOURNAL_CHECK_EVERY`]. Damage raises a high gateway alert and ends the process with
/// a failure, without the writer's clean-stop mark: the restart (systemd `Restart=on-failure`)
/// runs the full check before accepting anything, moves the file aside and salvages it, as
/// after a crash. Like a crash, the exit loses nothing: devices were acknowledged only for
/// what was committed.
async fn check_journal_daily(
    path: std::path::PathBuf,
    checked_at_start: bool,
    writer: journal::WriterHandle,
    device: String,
) {
    if checked_at_start {
        tokio::time::sleep(JOURNAL_CHECK_EVERY).await;
    }
    loop {
        let p = path.clone();
        let verdict = tokio::task::spawn_blocking(move || journal::check_in_background(&p)).await;
        if let Ok(Err(reason)) = verdict {
            tracing::error!("the journal check found damage ({reason})");
            let mut d = EventDraft::new(
                Kind::DeviceFault,
                Phase::Raised,
                device.clone(),
                crate::GATEWAY_ADAPTER,
            );
            d.data.priority = Priority::High;
            d.data.message = Some(
                "Gateway journal check found damage; the gateway restarts to recover the journal"
                    .into(),
            );
            d.data.codes.vendor = Some("journal_check_failed".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), writer.gateway_event(d)).await;
            tracing::error!("exiting so that the restart checks and salvages the journal");
            std::process::exit(JOURNAL_DAMAGED_EXIT);
        }
        tokio::time::sleep(JOURNAL_CHECK_EVERY).await;
    }
}
