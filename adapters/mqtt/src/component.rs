//! The MQTT adapter and sink under the component contract ([`atgw_sdk::component`]): what the
//! core's registry names `type = "mqtt"` in `[[adapter]]` and `[[sink]]`.

use std::sync::Arc;

use atgw_profile::ProfileSet;
use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    Adapter, AdapterContext, ComponentError, ConfigFile, Invalid, Link, Sink, SinkContext,
    SinkTasks, Site, Task,
};

use crate::config::{AdapterConfig, SinkConfig};

/// Devices on a broker, through profiles (`[[adapter]] type = "mqtt"`).
pub struct MqttAdapter {
    config: AdapterConfig,
    profiles: Arc<ProfileSet>,
}

impl Adapter for MqttAdapter {
    const TYPE: &'static str = "mqtt";
    type Config = AdapterConfig;

    fn name(config: &AdapterConfig) -> &str {
        &config.name
    }
    fn validate(config: &AdapterConfig) -> Result<(), Invalid> {
        config.validate()
    }
    fn files(config: &mut AdapterConfig) -> Vec<ConfigFile<'_>> {
        config.broker_files()
    }
    fn audit(config: &AdapterConfig, subject: &str, site: &Site) -> Vec<Finding> {
        let mut out = crate::audit::broker(subject, &config.broker(), "device messages");
        out.extend(crate::audit::input(subject, config, &site.profiles_dir));
        out
    }
    fn match_keys(
        config: &AdapterConfig,
        site: &Site,
    ) -> Option<std::collections::BTreeSet<String>> {
        ProfileSet::load(&site.profiles_dir, &config.profiles)
            .ok()
            .map(|p| p.registry_keys())
    }
    fn check(config: &AdapterConfig, site: &Site) -> Result<Self, ComponentError> {
        let profiles =
            ProfileSet::load(&site.profiles_dir, &config.profiles).map_err(ComponentError::new)?;
        // TLS material and secrets are read now, so a bad file stops the start, not a task.
        crate::connection::options(&config.broker(), "check", 1024).map_err(ComponentError::new)?;
        Ok(MqttAdapter {
            config: config.clone(),
            profiles: Arc::new(profiles),
        })
    }
    async fn start(self, ctx: AdapterContext) -> Result<Task, ComponentError> {
        let context = crate::ingress::Context {
            gateway_id: ctx.site.gateway_id,
            profiles: self.profiles,
            timezone: ctx.site.timezone,
            ingest: ctx.ingest,
            health: ctx.health,
            clock: ctx.clock,
            shutdown: ctx.shutdown,
        };
        let name = self.config.name.clone();
        let config = self.config;
        Ok(Box::pin(async move {
            if let Err(e) = crate::ingress::run(config, context).await {
                tracing::error!(adapter = %name, "adapter stopped: {e}");
            }
        }))
    }
}

/// Events upstream to a broker, and care-team acknowledgements back (`[[sink]] type = "mqtt"`).
pub struct MqttSink {
    config: SinkConfig,
}

/// The name of the acknowledgement connection's health (`control:<sink>`).
pub const CONTROL: &str = "control";

impl Sink for MqttSink {
    const TYPE: &'static str = "mqtt";
    type Config = SinkConfig;

    fn name(config: &SinkConfig) -> &str {
        &config.name
    }
    fn validate(config: &SinkConfig) -> Result<(), Invalid> {
        config.validate()
    }
    fn files(config: &mut SinkConfig) -> Vec<ConfigFile<'_>> {
        config.broker_files()
    }
    fn window(config: &SinkConfig) -> usize {
        usize::from(config.window)
    }
    fn link(_: &SinkConfig) -> Link {
        Link::Held
    }
    fn extra_health(config: &SinkConfig) -> Vec<&'static str> {
        if config.accept_acks {
            vec![CONTROL]
        } else {
            Vec::new()
        }
    }
    fn audit(config: &SinkConfig, subject: &str, _site: &Site) -> Vec<Finding> {
        crate::audit::broker(
            subject,
            &config.broker(),
            "events and alerts about residents",
        )
    }
    fn check(config: &SinkConfig, _site: &Site) -> Result<Self, ComponentError> {
        crate::connection::options(&config.broker(), "check", 1024).map_err(ComponentError::new)?;
        Ok(MqttSink {
            config: config.clone(),
        })
    }
    async fn start(self, mut ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        let mut intake: Vec<Task> = Vec::new();
        if let Some(health) = ctx.extra_health.remove(CONTROL) {
            let (cfg, gw, stop, tx) = (
                self.config.clone(),
                ctx.site.gateway_id.clone(),
                ctx.intake_shutdown.clone(),
                ctx.alert_requests.clone(),
            );
            let name = self.config.name.clone();
            intake.push(Box::pin(async move {
                if let Err(e) = crate::control::run(cfg, gw, tx, health, stop).await {
                    tracing::error!(sink = %name, "alert acknowledgements over MQTT stopped: {e}");
                }
            }));
        }
        let (cfg, gw) = (self.config, ctx.site.gateway_id);
        let (io, health, stop) = (ctx.io, ctx.health, ctx.shutdown);
        let output: Task = Box::pin(async move {
            if let Err(e) = crate::sink::run(cfg, &gw, io, health, stop).await {
                tracing::error!("sink stopped: {e}");
            }
        });
        Ok(SinkTasks { output, intake })
    }
}
