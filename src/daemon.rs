//! The daemon's life under a service manager: start, reload on SIGHUP, drain on SIGTERM.
//!
//! A reload is all or nothing. The new file is read and checked completely (syntax, keys,
//! references, profiles, TLS material and secret files) while the old configuration keeps
//! running; a file that fails any check is refused, logged in one line and raised as a gateway
//! alert, and nothing changes. A file that passes replaces the running gateway the same way a
//! stop and start would (intake stops, accepted work is committed, sinks drain), so every
//! guarantee of a clean stop holds across a reload: MQTT messages wait in atgw's persistent
//! session at the broker and DC-09 panels retransmit until acknowledged. Should the new
//! configuration still fail to start (a port taken by another program), the previous one is
//! started again. A reload always restarts, even for an unchanged file: profiles, secrets, keys
//! and certificates are read at start, and SIGHUP is how an integrator rotates them.

use std::path::PathBuf;
use std::process::ExitCode;

use atgw_sdk::event::{EventDraft, Kind, Phase, Priority};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::runtime::{self, Running, StartError};

/// Runs the gateway until SIGTERM or SIGINT, reloading on SIGHUP.
pub async fn run(path: PathBuf, cfg: Config) -> ExitCode {
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A configuration that cannot work exits 2 (the unit's RestartPreventExitStatus=):
    // restarting cannot fix it. What fails later (a port in use) exits 1 and is retried.
    if let Err(e) = runtime::preflight(&cfg) {
        tracing::error!("invalid configuration: {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let mut daemon = match runtime::start(&cfg).await {
        Ok(running) => Daemon {
            path,
            cfg,
            running: Some(running),
            refused: false,
        },
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = daemon.reload().await {
                    tracing::error!("{e}; exiting so that the service manager restarts atgw");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    tracing::info!("stopping: intake closed, committing and draining");
    crate::systemd::stopping();
    if let Some(running) = daemon.running.take() {
        running.stop().await;
    }
    ExitCode::SUCCESS
}

struct Daemon {
    path: PathBuf,
    cfg: Config,
    /// Always `Some` except while a reload swaps configurations.
    running: Option<Running>,
    /// A reload was refused and its gateway alert is still raised.
    refused: bool,
}

impl Daemon {
    /// Applies the file as it is now. Errs only when neither the new nor the previous
    /// configuration can run.
    async fn reload(&mut self) -> Result<(), StartError> {
        tracing::info!("SIGHUP: reloading {}", self.path.display());
        let new = match check(&self.path) {
            Ok(new) => new,
            Err(why) => {
                self.refuse(&why).await;
                return Ok(());
            }
        };
        // Always a restart, even when the file is byte for byte the same: profiles, secrets,
        // keys and certificates are read at start too, and SIGHUP is how they are rotated.
        crate::systemd::reloading();
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        match runtime::start(&new).await {
            Ok(r) => {
                self.running = Some(r);
                self.cfg = new;
                tracing::info!("configuration reloaded");
                self.clear_refusal().await;
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    "the new configuration cannot start ({e}); starting the previous one again"
                );
                self.running = Some(runtime::start(&self.cfg).await.inspect_err(|_| {
                    crate::systemd::stopping();
                })?);
                self.refuse(&format!("it did not start: {e}")).await;
                Ok(())
            }
        }
    }

    async fn refuse(&mut self, why: &str) {
        tracing::error!(
            "configuration reload refused: {why}; the previous configuration keeps running"
        );
        let mut d = EventDraft::new(
            Kind::DeviceFault,
            Phase::Raised,
            config_device(&self.cfg),
            crate::GATEWAY_ADAPTER,
        );
        d.data.priority = Priority::Medium;
        d.data.message = Some(
            "Gateway configuration reload refused; previous configuration still running".into(),
        );
        d.data.codes.vendor = Some(format!("config_reload_refused: {why}"));
        if let Some(r) = &self.running
            && let Err(e) = r.writer.gateway_event(d).await
        {
            tracing::error!("cannot journal the refused reload: {e}");
        }
        self.refused = true;
    }

    async fn clear_refusal(&mut self) {
        if !std::mem::take(&mut self.refused) {
            return;
        }
        let mut d = EventDraft::new(
            Kind::DeviceFault,
            Phase::Cleared,
            config_device(&self.cfg),
            crate::GATEWAY_ADAPTER,
        );
        d.data.priority = Priority::Medium;
        d.data.message = Some("Gateway configuration reloaded".into());
        if let Some(r) = &self.running
            && let Err(e) = r.writer.gateway_event(d).await
        {
            tracing::error!("cannot journal the reload: {e}");
        }
    }
}

/// Everything that can be checked without taking the running gateway's ports.
fn check(path: &std::path::Path) -> Result<Config, String> {
    let cfg = crate::config::load(path).map_err(|e| e.to_string())?;
    runtime::preflight(&cfg).map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn config_device(cfg: &Config) -> String {
    format!("{}:config", runtime::gateway_device(cfg))
}
