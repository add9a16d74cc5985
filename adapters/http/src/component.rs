//! The webhook sink under the component contract ([`atgw_sdk::component`]): `[[sink]] type =
//! "webhook"` in the core's registry.

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    ComponentError, ConfigFile, FileRole, Invalid, Link, SecretUse, Sink, SinkContext, SinkTasks,
    Site, Task,
};

use crate::config::WebhookConfig;

/// A webhook sink whose secret and TLS files were readable at preflight.
pub struct WebhookSink {
    config: WebhookConfig,
}

impl Sink for WebhookSink {
    const TYPE: &'static str = "webhook";
    type Config = WebhookConfig;

    fn name(config: &WebhookConfig) -> &str {
        &config.name
    }
    fn validate(config: &WebhookConfig) -> Result<(), Invalid> {
        config.validate()
    }
    fn files(config: &mut WebhookConfig) -> Vec<ConfigFile<'_>> {
        let mut out = vec![ConfigFile {
            key: "secret_file".into(),
            path: &mut config.secret_file,
            role: FileRole::Secret(SecretUse::SigningSecret),
        }];
        for (key, p) in [
            ("ca_file", &mut config.ca_file),
            ("cert_file", &mut config.cert_file),
        ] {
            if let Some(path) = p {
                out.push(ConfigFile {
                    key: key.into(),
                    path,
                    role: FileRole::Certificate,
                });
            }
        }
        if let Some(path) = &mut config.key_file {
            out.push(ConfigFile {
                key: "key_file".into(),
                path,
                role: FileRole::Secret(SecretUse::TlsKey),
            });
        }
        out
    }
    fn window(config: &WebhookConfig) -> usize {
        config.window
    }
    fn link(_: &WebhookConfig) -> Link {
        Link::PerDelivery
    }
    fn audit(config: &WebhookConfig, subject: &str, _site: &Site) -> Vec<Finding> {
        vec![crate::audit::webhook(subject, config)]
    }
    fn check(config: &WebhookConfig, _site: &Site) -> Result<Self, ComponentError> {
        config.validate().map_err(ComponentError::new)?;
        atgw_sdk::secret::read_secret_file(&config.secret_file)
            .map_err(|e| ComponentError::new(format!("secret_file: {e}")))?;
        for (key, file) in [
            ("ca_file", &config.ca_file),
            ("cert_file", &config.cert_file),
        ] {
            if let Some(p) = file {
                std::fs::metadata(p)
                    .map_err(|e| ComponentError::new(format!("{key} {}: {e}", p.display())))?;
            }
        }
        if let Some(key) = &config.key_file {
            atgw_sdk::secret::read_secret_file(key)
                .map_err(|e| ComponentError::new(format!("key_file: {e}")))?;
        }
        Ok(WebhookSink {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        let name = self.config.name.clone();
        let output: Task = Box::pin(async move {
            if let Err(e) = crate::run(self.config, ctx.io, ctx.health, ctx.shutdown).await {
                tracing::error!(sink = %name, "webhook sink stopped: {e}");
            }
        });
        Ok(SinkTasks {
            output,
            intake: Vec::new(),
        })
    }
}
