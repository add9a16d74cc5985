//! The component contract: what an adapter (devices in) and a sink (events out) implement so the
//! core can load, check, audit, start and stop it without knowing its protocol.
//!
//! # Static at the edges, dynamic in between
//! A component's config type is concrete ([`Adapter::Config`], [`Sink::Config`]): the core's
//! component list (`src/components.rs`) turns its one list of component types into the
//! `[[adapter]]`/`[[sink]]` config enums, so serde reports a wrong key at its exact path
//! (`adapter[1].port`) and `deny_unknown_fields` works as it does anywhere else. Everything a
//! component does is then reached through these traits by static dispatch. Only the started
//! task is boxed ([`Task`]), because the runtime keeps tasks of every kind in one set.
//!
//! # Life of a component
//! 1. `validate`: pure checks of the values, at load (`check-config`, `run`, reload).
//! 2. [`files`](Adapter::files): every file the config names, so the core resolves relative
//!    paths, refuses symlinked outputs and audits secrets, whatever the component.
//! 3. `audit` (for `atgw audit`): the findings only the component can make.
//! 4. `check`: preflight that reads files (keys, certificates, profiles) but binds nothing and
//!    connects nowhere; returns the prepared component. `check-config` stops here.
//! 5. `start`: binds ports and builds clients (errors stop the daemon's start with the
//!    component named), then returns the task that serves until shutdown.
//!
//! The promise every adapter keeps (checked by the conformance kit): a device is acknowledged
//! only after [`Ingest::submit`](crate::Ingest::submit) resolved `Ok`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::audit::Finding;
use crate::clock::SharedClock;
use crate::sink::SinkIo;
use crate::{Health, Ingest, Shutdown};

/// A started component's work: runs until its shutdown token is cancelled.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A value the config loader refuses: which key (relative to the component's table) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct Invalid {
    pub key: String,
    pub problem: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Why a component could not be prepared or started, for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    pub fn new(what: impl std::fmt::Display) -> Self {
        ComponentError(what.to_string())
    }
}

/// What a file named in a component's config is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// A secret: must be private to atgw; read through [`crate::secret`]; a relative name may
    /// be a systemd credential.
    Secret(SecretUse),
    /// A certificate (or CA bundle): public, must be PEM.
    Certificate,
    /// A file the component writes: it and its directory must be real (not symlinks).
    Output,
}

/// What a secret is, so `audit` can judge its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretUse {
    /// A password for a server account (judged on length).
    Password,
    /// A TLS private key (must be a PEM private key).
    TlsKey,
    /// A signing secret (Standard Webhooks `whsec_…` or raw; judged on entropy).
    SigningSecret,
    /// A key whose format only the component knows: `audit` asks [`Adapter::judge_key`]
    /// (or [`Sink::judge_key`]) with this tag.
    Key(String),
}

/// One file a component's config names.
#[derive(Debug)]
pub struct ConfigFile<'a> {
    /// The key as a person writes it, relative to the component's table (`tls.key_file`,
    /// `accounts[0].key_file`).
    pub key: String,
    pub path: &'a mut PathBuf,
    pub role: FileRole,
}

/// What the site tells every component at check and start.
#[derive(Clone, Debug)]
pub struct Site {
    /// `[gateway] id`: the stem of client ids and CloudEvents sources.
    pub gateway_id: String,
    /// Directory of device profiles.
    pub profiles_dir: PathBuf,
    /// The site's time zone, for device times without one.
    pub timezone: jiff::tz::TimeZone,
    /// FHIR Patient and Device ids from the registry (empty unless devices name them).
    pub fhir: Arc<crate::fhir::FhirIds>,
}

/// What a started adapter is given.
pub struct AdapterContext {
    pub site: Site,
    /// Commits events and dead letters; resolves after the commit.
    pub ingest: Ingest,
    pub health: Arc<Health>,
    pub clock: SharedClock,
    /// Cancelled when intake stops (first, at shutdown).
    pub shutdown: Shutdown,
}

/// A device or input protocol.
pub trait Adapter: Sized + Send + 'static {
    /// `type = "…"` in `[[adapter]]`.
    const TYPE: &'static str;
    /// Its `[[adapter]]` table (serde, `deny_unknown_fields`).
    type Config: DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static;

    /// The instance's `name`.
    fn name(config: &Self::Config) -> &str;
    /// Checks of the values alone (no file system).
    fn validate(config: &Self::Config) -> Result<(), Invalid>;
    /// Every file the config names.
    fn files(config: &mut Self::Config) -> Vec<ConfigFile<'_>> {
        let _ = config;
        Vec::new()
    }
    /// `audit`'s verdict on a [`SecretUse::Key`] secret: `Ok(description)` or the problem.
    fn judge_key(tag: &str, text: &str) -> Result<String, String> {
        let _ = text;
        Err(format!("no check for key type `{tag}`"))
    }
    /// A `[[device]] match` value in the one form this adapter reports it (so `zone = "7"`
    /// matches a panel that writes `007`), or why no message can carry it. The default: ids
    /// compare exactly.
    fn canonical_match(key: &str, value: &str) -> Result<String, String> {
        let _ = key;
        Ok(value.to_owned())
    }
    /// The registry keys this adapter's events can carry (`account`, `zone`; an MQTT
    /// adapter's are its profiles' `device.keys`), so `check-config` can warn about a
    /// `[[device]] match` key no event will ever carry (the device would arrive unregistered,
    /// silently). `None`: the adapter cannot say. May read the profiles directory.
    fn match_keys(
        config: &Self::Config,
        site: &Site,
    ) -> Option<std::collections::BTreeSet<String>> {
        let _ = (config, site);
        None
    }
    /// `atgw audit`'s findings on what only this component knows (how its links are
    /// protected, what it listens on, how strictly it takes input). `subject` names the
    /// instance (`adapter \`panels\``). Reads no file other than the config's own inputs.
    fn audit(config: &Self::Config, subject: &str, site: &Site) -> Vec<Finding> {
        let _ = (config, subject, site);
        Vec::new()
    }
    /// Preflight: reads what it needs, binds and connects nothing.
    fn check(config: &Self::Config, site: &Site) -> Result<Self, ComponentError>;
    /// Binds and connects; the returned task serves until `ctx.shutdown`.
    fn start(
        self,
        ctx: AdapterContext,
    ) -> impl Future<Output = Result<Task, ComponentError>> + Send;
}

/// How a sink's readiness is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// It holds a connection (MQTT): ready while connected.
    Held,
    /// It connects per delivery (HTTP, a file): ready unless the last delivery failed.
    PerDelivery,
}

/// A care-team command that arrived through a sink's own connection (MQTT `…/alerts/<id>/ack`),
/// answered once the core committed it.
#[derive(Debug)]
pub struct AlertRequest {
    /// What carried it, for the log (`MQTT sink \`upstream\``).
    pub via: String,
    pub alert_id: String,
    pub action: AlertAction,
    /// The person, as they identified themselves.
    pub by: String,
    pub note: Option<String>,
    /// For a resolve: the outcome (`attended`, `false_alarm`, …).
    pub outcome: Option<String>,
    /// `Ok` once committed; `Err(reason)` when refused. Dropped unanswered when the core could
    /// not commit: then the sink must not acknowledge the command to its peer.
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// What a person asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertAction {
    Ack,
    Resolve,
    /// Record what the sink's receiver reported about the alert (a pager's "paged", "absent"):
    /// journaled in the alert's history with `by` and `note`, told to no route, no state change.
    Note,
}

/// What a started sink is given.
pub struct SinkContext {
    pub site: Site,
    /// Deliveries in, outcomes back (see [`crate::sink`]).
    pub io: SinkIo,
    pub health: Arc<Health>,
    pub clock: SharedClock,
    /// Cancelled after intake stopped and the journal committed what it holds.
    pub shutdown: Shutdown,
    /// Cancelled when intake stops: for the tasks a sink runs that take input
    /// ([`Sink::extra_health`]).
    pub intake_shutdown: Shutdown,
    /// Where care-team commands go.
    pub alert_requests: mpsc::Sender<AlertRequest>,
    /// Health of each extra part the sink declared, by its name.
    pub extra_health: BTreeMap<&'static str, Arc<Health>>,
}

/// What a started sink runs.
pub struct SinkTasks {
    /// Delivery: stopped with the outputs.
    pub output: Task,
    /// Input it takes (care-team commands): stopped with the adapters.
    pub intake: Vec<Task>,
}

/// An output.
pub trait Sink: Sized + Send + 'static {
    /// `type = "…"` in `[[sink]]`.
    const TYPE: &'static str;
    /// Its `[[sink]]` table (serde, `deny_unknown_fields`).
    type Config: DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static;

    fn name(config: &Self::Config) -> &str;
    fn validate(config: &Self::Config) -> Result<(), Invalid>;
    fn files(config: &mut Self::Config) -> Vec<ConfigFile<'_>> {
        let _ = config;
        Vec::new()
    }
    fn judge_key(tag: &str, text: &str) -> Result<String, String> {
        let _ = text;
        Err(format!("no check for key type `{tag}`"))
    }
    /// Deliveries in flight at most (the outbox's window for it).
    fn window(config: &Self::Config) -> usize;
    /// Longest a sink may keep a delivery unanswered on purpose (bundling's `bundle_window`):
    /// the outbox adds it to `sink_failing_alert_after`, so a held notification never raises
    /// the gateway's "sink failing" alert. Zero for sinks that send at once.
    fn hold(_config: &Self::Config) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    fn link(config: &Self::Config) -> Link;
    /// Parts besides delivery with a health of their own (`control` for MQTT acknowledgements),
    /// reported as `<part>:<name>`.
    fn extra_health(config: &Self::Config) -> Vec<&'static str> {
        let _ = config;
        Vec::new()
    }
    /// As [`Adapter::audit`].
    fn audit(config: &Self::Config, subject: &str, site: &Site) -> Vec<Finding> {
        let _ = (config, subject, site);
        Vec::new()
    }
    fn check(config: &Self::Config, site: &Site) -> Result<Self, ComponentError>;
    fn start(
        self,
        ctx: SinkContext,
    ) -> impl Future<Output = Result<SinkTasks, ComponentError>> + Send;
}
