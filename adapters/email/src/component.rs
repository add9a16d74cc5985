//! The email sink under the component contract ([`atgw_sdk::component`]): `[[sink]] type =
//! "email"` in the core's registry.

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    ComponentError, ConfigFile, FileRole, Invalid, Link, SecretUse, Sink, SinkContext, SinkTasks,
    Site, Task,
};

use crate::config::EmailConfig;

/// An email sink whose password and CA files were readable at preflight.
pub struct EmailSink {
    config: EmailConfig,
}

impl Sink for EmailSink {
    const TYPE: &'static str = "email";
    type Config = EmailConfig;

    fn name(config: &EmailConfig) -> &str {
        &config.name
    }
    fn validate(config: &EmailConfig) -> Result<(), Invalid> {
        config.validate()
    }
    fn files(config: &mut EmailConfig) -> Vec<ConfigFile<'_>> {
        let mut out = Vec::new();
        if let Some(path) = &mut config.password_file {
            out.push(ConfigFile {
                key: "password_file".into(),
                path,
                role: FileRole::Secret(SecretUse::Password),
            });
        }
        if let Some(path) = &mut config.ca_file {
            out.push(ConfigFile {
                key: "ca_file".into(),
                path,
                role: FileRole::Certificate,
            });
        }
        out
    }
    /// The sending window plus the notifications bundling may hold, so held ones never take
    /// the slot a high-priority alert needs.
    fn window(config: &EmailConfig) -> usize {
        config.window + config.bundling().extra_window()
    }
    /// Held for a bundle at most this long: not late for the outbox's sink alert.
    fn hold(config: &EmailConfig) -> std::time::Duration {
        config.bundle_window
    }
    fn link(_: &EmailConfig) -> Link {
        Link::PerDelivery
    }
    fn audit(config: &EmailConfig, subject: &str, _site: &Site) -> Vec<Finding> {
        crate::audit::email(subject, config)
    }
    fn check(config: &EmailConfig, _site: &Site) -> Result<Self, ComponentError> {
        config.validate().map_err(ComponentError::new)?;
        if let Some(p) = &config.password_file {
            atgw_sdk::secret::read_secret_file(p)
                .map_err(|e| ComponentError::new(format!("password_file: {e}")))?;
        }
        if let Some(p) = &config.ca_file {
            std::fs::metadata(p)
                .map_err(|e| ComponentError::new(format!("ca_file {}: {e}", p.display())))?;
        }
        Ok(EmailSink {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        let prepared = crate::sink::prepare(&self.config, ctx.site, ctx.health)
            .await
            .map_err(ComponentError::new)?;
        let output: Task = Box::pin(crate::sink::serve(prepared, ctx.io, ctx.shutdown));
        Ok(SinkTasks {
            output,
            intake: Vec::new(),
        })
    }
}
