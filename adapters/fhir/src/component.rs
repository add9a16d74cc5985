//! The FHIR sink under the component contract ([`atgw_sdk::component`]): `[[sink]] type =
//! "fhir"` in the core's registry.

use std::sync::Arc;

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    ComponentError, ConfigFile, FileRole, Invalid, Link, SecretUse, Sink, SinkContext, SinkTasks,
    Site, Task,
};
use atgw_sdk::fhir::FhirIds;

use crate::config::FhirConfig;

/// `SecretUse::Key` tag of the bearer token, judged by [`FhirSink::judge_key`].
pub const TOKEN_TAG: &str = "fhir-bearer-token";

/// A FHIR sink whose token and CA files were readable at preflight, with the registry's FHIR
/// ids.
pub struct FhirSink {
    config: FhirConfig,
    ids: Arc<FhirIds>,
}

impl Sink for FhirSink {
    const TYPE: &'static str = crate::SINK_TYPE;
    type Config = FhirConfig;

    fn name(config: &FhirConfig) -> &str {
        &config.name
    }
    fn validate(config: &FhirConfig) -> Result<(), Invalid> {
        config.validate()
    }
    fn files(config: &mut FhirConfig) -> Vec<ConfigFile<'_>> {
        let mut out = vec![ConfigFile {
            key: "token_file".into(),
            path: &mut config.token_file,
            role: FileRole::Secret(SecretUse::Key(TOKEN_TAG.into())),
        }];
        if let Some(path) = &mut config.ca_file {
            out.push(ConfigFile {
                key: "ca_file".into(),
                path,
                role: FileRole::Certificate,
            });
        }
        out
    }
    /// A bearer token: one line of visible ASCII, long enough not to be guessed (an OAuth
    /// access token or a JWT is far longer than 20 characters).
    fn judge_key(tag: &str, text: &str) -> Result<String, String> {
        if tag != TOKEN_TAG {
            return Err(format!("no check for key type `{tag}`"));
        }
        let t = text.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("not one line of visible ASCII without spaces".into());
        }
        if t.len() < 20 {
            return Err(format!(
                "{} characters: too short for a bearer token; issue one from the FHIR server's authorisation service",
                t.len()
            ));
        }
        Ok(format!("a bearer token of {} characters", t.len()))
    }
    fn window(config: &FhirConfig) -> usize {
        config.max_batch
    }
    fn link(_: &FhirConfig) -> Link {
        Link::PerDelivery
    }
    fn audit(config: &FhirConfig, subject: &str, _site: &Site) -> Vec<Finding> {
        crate::audit::fhir(subject, config)
    }
    fn check(config: &FhirConfig, site: &Site) -> Result<Self, ComponentError> {
        config.validate().map_err(ComponentError::new)?;
        let token = atgw_sdk::secret::read_secret_file(&config.token_file)
            .map_err(|e| ComponentError::new(format!("token_file: {e}")))?;
        if crate::sink::bearer(token.expose()).is_none() {
            return Err(ComponentError::new(format!(
                "token_file {}: not a usable bearer token (one line of visible ASCII without spaces)",
                config.token_file.display()
            )));
        }
        if let Some(p) = &config.ca_file {
            std::fs::metadata(p)
                .map_err(|e| ComponentError::new(format!("ca_file {}: {e}", p.display())))?;
        }
        Ok(FhirSink {
            config: config.clone(),
            ids: site.fhir.clone(),
        })
    }
    async fn start(self, ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        let name = self.config.name.clone();
        let output: Task = Box::pin(async move {
            if let Err(e) =
                crate::sink::run(self.config, self.ids, ctx.io, ctx.health, ctx.shutdown).await
            {
                tracing::error!(sink = %name, "fhir sink stopped: {e}");
            }
        });
        Ok(SinkTasks {
            output,
            intake: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_a_secret_judged_as_a_bearer_token() {
        let mut c = FhirConfig::new("ehr", "https://ehr.example/fhir", "ehr.token".into());
        c.ca_file = Some("ca.pem".into());
        let files = FhirSink::files(&mut c);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].key, "token_file");
        assert!(matches!(&files[0].role, FileRole::Secret(SecretUse::Key(t)) if t == TOKEN_TAG));
        assert!(matches!(files[1].role, FileRole::Certificate));
        assert!(FhirSink::judge_key(TOKEN_TAG, "eyJhbGciOiJSUzI1NiJ9.payload.sig\n").is_ok());
        assert!(FhirSink::judge_key(TOKEN_TAG, "short").is_err());
        assert!(FhirSink::judge_key(TOKEN_TAG, "has a space in it somewhere here").is_err());
        assert!(FhirSink::judge_key("other", "x").is_err());
    }
}
