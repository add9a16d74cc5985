//! The receiver under the component contract ([`atgw_sdk::component`]): `[[adapter]] type =
//! "sia-dc09"` in the core's registry.

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    Adapter, AdapterContext, ComponentError, ConfigFile, FileRole, Invalid, SecretUse, Site, Task,
};

use crate::config::Config;
use crate::crypto::{AesKey, KeyFormat};

/// A DC-09 receiver that passed its preflight (config valid, every account key readable).
pub struct Dc09Component {
    config: Config,
}

/// [`SecretUse::Key`] tags: the key format of the account.
const HEX: &str = "dc09-hex";
const ASCII: &str = "dc09-ascii";

impl Adapter for Dc09Component {
    const TYPE: &'static str = "sia-dc09";
    type Config = Config;

    fn name(config: &Config) -> &str {
        &config.name
    }
    fn validate(config: &Config) -> Result<(), Invalid> {
        config
            .validate()
            .map_err(|errors| Invalid::new("", errors.to_string()))
    }
    fn match_keys(_: &Config, _: &Site) -> Option<std::collections::BTreeSet<String>> {
        Some(
            [crate::keys::ACCOUNT, crate::keys::ZONE]
                .map(str::to_owned)
                .into(),
        )
    }
    fn files(config: &mut Config) -> Vec<ConfigFile<'_>> {
        config
            .accounts
            .iter_mut()
            .enumerate()
            .filter_map(|(i, a)| {
                let tag = match a.key_format {
                    KeyFormat::Hex => HEX,
                    KeyFormat::Ascii => ASCII,
                };
                a.key_file.as_mut().map(|path| ConfigFile {
                    key: format!("accounts[{i}].key_file (account {})", a.account),
                    path,
                    role: FileRole::Secret(SecretUse::Key(tag.into())),
                })
            })
            .collect()
    }
    fn judge_key(tag: &str, text: &str) -> Result<String, String> {
        let format = match tag {
            HEX => KeyFormat::Hex,
            ASCII => KeyFormat::Ascii,
            other => return Err(format!("no check for key type `{other}`")),
        };
        AesKey::parse(text, format)
            .map(|k| format!("a valid AES-{} key", k.bits()))
            .map_err(|e| e.to_string())
    }
    fn canonical_match(key: &str, value: &str) -> Result<String, String> {
        crate::keys::canonical_match(key, value).map_err(|e| e.to_string())
    }
    fn audit(config: &Config, subject: &str, _site: &Site) -> Vec<Finding> {
        crate::audit::receiver(subject, config)
    }
    fn check(config: &Config, _site: &Site) -> Result<Self, ComponentError> {
        crate::Dc09Adapter::check(config).map_err(ComponentError::new)?;
        Ok(Dc09Component {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: AdapterContext) -> Result<Task, ComponentError> {
        let name = self.config.name.clone();
        // Bound now: a port in use stops the start with a clear error.
        let bound = crate::Dc09Adapter::bind(self.config)
            .await
            .map_err(ComponentError::new)?;
        Ok(Box::pin(async move {
            if let Err(e) = bound
                .run(ctx.ingest, ctx.health, ctx.clock, ctx.shutdown)
                .await
            {
                tracing::error!(adapter = %name, "adapter stopped: {e}");
            }
        }))
    }
}
