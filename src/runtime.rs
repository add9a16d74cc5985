//! Assembles and runs the daemon: journal and writer, sinks with their outbox dispatchers, then
//! adapters; and takes it down in the reverse order so that nothing accepted is lost: intake
//! stops first, the writer commits what it holds, then sinks get a bounded time to deliver.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atgw_profile::ProfileSet;
use atgw_sdk::clock::{SharedClock, SystemClock};
use atgw_sdk::event::{EventDraft, Kind, Phase, Priority};
use atgw_sdk::sink::SinkIo;
use atgw_sdk::{Health, Shutdown};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{AdapterConfig, Config, SinkConfig};
use crate::journal::{self, WriterHandle};
use crate::outbox;
use crate::registry::Registry;
use crate::sinks;

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
    pub writer: WriterHandle,
    pub journal_path: PathBuf,
    intake: Shutdown,
    output: Shutdown,
    adapters: JoinSet<()>,
    outputs: JoinSet<()>,
    writer_thread: std::thread::JoinHandle<()>,
}

/// What [`preflight`] loaded and `start` uses.
pub struct Checked {
    profile_sets: BTreeMap<String, Arc<ProfileSet>>,
}

/// Checks everything that can fail at start without binding a port or connecting: the paths
/// atgw owns ([`crate::paths`]), the time zone, every profile, TLS material, and every secret
/// and key file. `check-config` runs the same checks. `start` runs it first,
/// so a broken profile stops the start rather than a message; a reload runs it while the old
/// configuration still serves.
pub fn preflight(cfg: &Config) -> Result<Checked, StartError> {
    crate::paths::check_config(cfg)?;
    jiff::tz::TimeZone::get(&cfg.gateway.timezone)
        .map_err(|e| StartError::TimeZone(e.to_string()))?;
    let mut profile_sets = BTreeMap::new();
    for a in &cfg.adapters {
        let adapter_err = |what: String| StartError::Adapter {
            adapter: a.name().to_owned(),
            what,
        };
        match a {
            AdapterConfig::Mqtt(m) => {
                let set = ProfileSet::load(&cfg.gateway.profiles_dir, &m.profiles)
                    .map_err(|e| adapter_err(e.to_string()))?;
                atgw_mqtt::connection::options(&m.broker(), "check", 1024)
                    .map_err(|e| adapter_err(e.to_string()))?;
                profile_sets.insert(m.name.clone(), Arc::new(set));
            }
            AdapterConfig::SiaDc09(d) => {
                atgw_sia_dc09::Dc09Adapter::check(d).map_err(|e| adapter_err(e.to_string()))?;
            }
        }
    }
    for s in &cfg.sinks {
        let sink_err = |what: String| StartError::Sink {
            sink: s.name().to_owned(),
            what,
        };
        match s {
            SinkConfig::Mqtt(m) => {
                atgw_mqtt::connection::options(&m.broker(), "check", 1024)
                    .map_err(|e| sink_err(e.to_string()))?;
            }
            SinkConfig::Webhook(w) => {
                w.validate().map_err(|e| sink_err(e.to_string()))?;
                atgw_sdk::secret::read_secret_file(&w.secret_file)
                    .map_err(|e| sink_err(format!("secret_file: {e}")))?;
                if let Some(ca) = &w.ca_file {
                    std::fs::metadata(ca)
                        .map_err(|e| sink_err(format!("ca_file {}: {e}", ca.display())))?;
                }
                if let Some(cert) = &w.cert_file {
                    std::fs::metadata(cert)
                        .map_err(|e| sink_err(format!("cert_file {}: {e}", cert.display())))?;
                }
                if let Some(key) = &w.key_file {
                    atgw_sdk::secret::read_secret_file(key)
                        .map_err(|e| sink_err(format!("key_file: {e}")))?;
                }
            }
            SinkConfig::File(_) => {}
        }
    }
    if let Some(api) = &cfg.api {
        atgw_sdk::secret::read_secret_file(&api.token_file)
            .map_err(|e| StartError::Api(format!("token_file: {e}")))?;
    }
    Ok(Checked { profile_sets })
}

/// Starts everything; returns once adapters and sinks are spawned.
pub async fn start(cfg: &Config) -> Result<Running, StartError> {
    let clock: SharedClock = Arc::new(SystemClock);
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
    let opened = journal::open(&journal_path)?;
    let timezone = jiff::tz::TimeZone::get(&cfg.gateway.timezone)
        .map_err(|e| StartError::TimeZone(e.to_string()))?;
    let registry = Arc::new(Registry::new(&cfg.gateway.site, &cfg.devices));

    let Checked { profile_sets } = preflight(cfg)?;

    let intake = Shutdown::new();
    let output = Shutdown::new();
    let mut health = BTreeMap::new();
    let notifies: Vec<(String, Arc<crate::outbox::SinkWake>)> = cfg
        .sinks
        .iter()
        .map(|s| (s.name().to_owned(), Arc::default()))
        .collect();
    let (ingest, ingest_rx) = atgw_sdk::ingest::channel(4096);
    let metrics = Arc::new(crate::metrics::Metrics::for_config(cfg));
    let commits = Arc::new(journal::commits::CommitHealth::default());
    let (writer, writer_thread) = journal::writer::spawn(
        opened.conn,
        journal::writer::WriterSetup {
            gateway_id: cfg.gateway.id.clone(),
            sinks: notifies.clone(),
            registry: registry.clone(),
            policies: Arc::new(crate::alerts::Policies::new(
                &cfg.policies,
                &cfg.routes,
                &cfg.alerts,
                &cfg.sinks
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect::<Vec<_>>(),
            )),
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
            clock: clock.clone(),
            metrics: metrics.clone(),
            commits: commits.clone(),
        },
        ingest_rx,
    )
    .map_err(StartError::Writer)?;

    if let Some((aside, reason)) = &opened.moved_aside {
        tracing::error!(
            "the journal was corrupt ({reason}); it was moved to {} and a new one started",
            aside.display()
        );
        let mut d = EventDraft::new(
            Kind::DeviceFault,
            Phase::Raised,
            gateway_device(cfg),
            crate::GATEWAY_ADAPTER,
        );
        d.data.priority = Priority::High;
        d.data.message = Some("Gateway journal was corrupt; moved aside and restarted".into());
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
    for (s, (name, wake)) in cfg.sinks.iter().zip(notifies) {
        let h = Arc::new(Health::default());
        health.insert(format!("sink:{name}"), h.clone());
        let window = match s {
            SinkConfig::Mqtt(m) => m.window as usize,
            SinkConfig::File(_) => 512,
            SinkConfig::Webhook(w) => w.window,
        };
        let (to_sink, deliveries) = mpsc::channel(window);
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let io = SinkIo {
            deliveries,
            outcomes: outcomes_tx,
        };
        match s.clone() {
            SinkConfig::Mqtt(m) => {
                let gw = cfg.gateway.id.clone();
                let stop = output.clone();
                // Fail fast on bad TLS material or secrets: the options are built before spawning.
                atgw_mqtt::connection::options(&m.broker(), "check", 1024).map_err(|e| {
                    StartError::Sink {
                        sink: name.clone(),
                        what: e.to_string(),
                    }
                })?;
                if m.accept_acks {
                    let ch = Arc::new(Health::default());
                    health.insert(format!("control:{name}"), ch.clone());
                    spawn_mqtt_control(
                        (*m).clone(),
                        gw.clone(),
                        ch,
                        writer.clone(),
                        intake.clone(),
                        &mut adapters_early,
                    );
                }
                outputs.spawn(async move {
                    if let Err(e) = atgw_mqtt::sink::run(*m, &gw, io, h, stop).await {
                        tracing::error!("sink stopped: {e}");
                    }
                });
            }
            SinkConfig::File(f) => {
                outputs.spawn(sinks::file::run(f, io, h));
            }
            SinkConfig::Webhook(w) => {
                let stop = output.clone();
                let sink = name.clone();
                outputs.spawn(async move {
                    if let Err(e) = atgw_http::run(*w, io, h, stop).await {
                        tracing::error!(sink = %sink, "webhook sink stopped: {e}");
                    }
                });
            }
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
            failing_alert_after: cfg.alerts.sink_failing_alert_after,
            metrics: metrics.clone(),
        };
        outputs.spawn(async move {
            if let Err(e) = outbox::run(dispatch, DRAIN).await {
                tracing::error!(sink = %name, "outbox dispatcher stopped: {e}");
            }
        });
    }

    let mut adapters = adapters_early;
    for a in &cfg.adapters {
        let h = Arc::new(Health::default());
        health.insert(format!("adapter:{}", a.name()), h.clone());
        match a.clone() {
            AdapterConfig::SiaDc09(d) => {
                let name = d.name.clone();
                // Bind now: a port in use or a bad key file stops the start with a clear error.
                let bound = atgw_sia_dc09::Dc09Adapter::bind(*d).await.map_err(|e| {
                    StartError::Adapter {
                        adapter: name.clone(),
                        what: e.to_string(),
                    }
                })?;
                let ingest = ingest.for_adapter(&name);
                let (clock, stop) = (clock.clone(), intake.clone());
                adapters.spawn(async move {
                    if let Err(e) = bound.run(ingest, h, clock, stop).await {
                        tracing::error!(adapter = %name, "adapter stopped: {e}");
                    }
                });
            }
            AdapterConfig::Mqtt(m) => {
                let m = *m;
                let profiles = profile_sets.get(&m.name).cloned().unwrap_or_default();
                atgw_mqtt::connection::options(&m.broker(), "check", 1024).map_err(|e| {
                    StartError::Adapter {
                        adapter: m.name.clone(),
                        what: e.to_string(),
                    }
                })?;
                let ctx = atgw_mqtt::ingress::Context {
                    gateway_id: cfg.gateway.id.clone(),
                    profiles,
                    timezone: timezone.clone(),
                    ingest: ingest.for_adapter(&m.name),
                    health: h,
                    clock: clock.clone(),
                    shutdown: intake.clone(),
                };
                let name = m.name.clone();
                adapters.spawn(async move {
                    if let Err(e) = atgw_mqtt::ingress::run(m, ctx).await {
                        tracing::error!(adapter = %name, "adapter stopped: {e}");
                    }
                });
            }
        }
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
                cfg,
                &health,
                journal_path.clone(),
                commits.clone(),
            )),
            auth_log: Arc::new(atgw_sdk::ratelimit::LogLimiter::new(
                crate::api::AUTH_LOG_EVERY,
            )),
        };
        let (stop, limits, gateway_id) = (intake.clone(), api.clone(), cfg.gateway.id.clone());
        adapters.spawn(async move {
            if let Err(e) = crate::api::serve(listener, state, &limits, &gateway_id, stop).await {
                tracing::error!("local API stopped: {e}");
            }
        });
        tracing::info!("local API on http://{addr}");
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

/// Alert acknowledgements over MQTT: the control connection forwards requests, this bridge
/// commits them through the writer and answers once committed.
fn spawn_mqtt_control(
    cfg: atgw_mqtt::config::SinkConfig,
    gateway_id: String,
    health: Arc<Health>,
    writer: WriterHandle,
    stop: Shutdown,
    tasks: &mut JoinSet<()>,
) {
    let (tx, mut rx) = mpsc::channel::<atgw_mqtt::control::ControlRequest>(64);
    let name = cfg.name.clone();
    tasks.spawn(async move {
        if let Err(e) = atgw_mqtt::control::run(cfg, gateway_id, tx, health, stop).await {
            tracing::error!(sink = %name, "alert acknowledgements over MQTT stopped: {e}");
        }
    });
    tasks.spawn(async move {
        while let Some(req) = rx.recv().await {
            let by = req.body.by.clone();
            let cmd = match req.action {
                atgw_mqtt::control::Action::Ack => crate::alerts::AlertCommand::Ack {
                    id: req.alert_id,
                    by: req.body.by,
                    note: req.body.note,
                },
                atgw_mqtt::control::Action::Resolve => crate::alerts::AlertCommand::Resolve {
                    id: req.alert_id,
                    by: req.body.by,
                    outcome: req.body.outcome.unwrap_or_else(|| "other".into()),
                    note: req.body.note,
                },
            };
            let result = match writer.alert(cmd).await {
                Ok(view) => {
                    tracing::info!(alert = %view.id, status = %view.status, "alert updated over MQTT");
                    Ok(())
                }
                Err(e @ (crate::alerts::AlertError::Storage(_) | crate::alerts::AlertError::Unavailable)) => {
                    // Not committed: drop the reply so the message stays unacknowledged and
                    // the broker delivers it again. Only a refusal (unknown alert, already
                    // resolved, bad outcome) is final and acknowledged.
                    tracing::error!("cannot commit an alert command from {by}: {e}");
                    continue;
                }
                Err(e) => Err(e.to_string()),
            };
            let _ = req.reply.send(result);
        }
    });
}

/// The gateway's own device id, for events it raises about itself.
pub fn gateway_device(cfg: &Config) -> String {
    format!("gateway:{}", cfg.gateway.id)
}
