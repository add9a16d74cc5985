//! The HTTP ingest adapter under the component contract: what the core's registry names
//! `type = "http"` in `[[adapter]]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_profile::{ProfileSet, ValuePath};
use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    Adapter, AdapterContext, ComponentError, ConfigFile, FileRole, Invalid, SecretUse, Site, Task,
};
use atgw_sdk::peer_budget::PeerBudget;
use atgw_sdk::ratelimit::LogLimiter;

use crate::auth::Verifier;
use crate::config::{Config, Format};
use crate::route::Route;
use crate::server::Shared;

/// The secret-file role of bearer tokens and API keys (checked by `judge_key`).
const TOKEN_TAG: &str = "token";

/// How often one kind of warning (a bad signature, a flood) may be logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Addresses whose request budgets are tracked at most (a scan from many addresses cannot grow
/// memory): the budget's own bound ([`atgw_sdk::peer_budget`]).
pub struct HttpAdapter {
    config: Config,
    routes: Vec<Route>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Adapter for HttpAdapter {
    const TYPE: &'static str = "http";
    type Config = Config;

    fn name(config: &Config) -> &str {
        &config.name
    }
    fn validate(config: &Config) -> Result<(), Invalid> {
        config.validate()?;
        for (i, r) in config.routes.iter().enumerate() {
            if let Some(d) = r.dedupe.as_deref().or(r.auth.default_dedupe()) {
                ValuePath::parse(d).map_err(|e| Invalid::new(format!("route[{i}].dedupe"), e))?;
            }
        }
        Ok(())
    }
    fn files(config: &mut Config) -> Vec<ConfigFile<'_>> {
        let mut out = Vec::new();
        if let Some(tls) = &mut config.tls {
            out.push(ConfigFile {
                key: "tls.cert_file".into(),
                path: &mut tls.cert_file,
                role: FileRole::Certificate,
            });
            out.push(ConfigFile {
                key: "tls.key_file".into(),
                path: &mut tls.key_file,
                role: FileRole::Secret(SecretUse::TlsKey),
            });
            if let Some(ca) = &mut tls.client_ca_file {
                out.push(ConfigFile {
                    key: "tls.client_ca_file".into(),
                    path: ca,
                    role: FileRole::Certificate,
                });
            }
        }
        for (i, r) in config.routes.iter_mut().enumerate() {
            let role = match r.auth {
                crate::config::AuthConfig::Basic { .. } => SecretUse::Password,
                crate::config::AuthConfig::Bearer { .. }
                | crate::config::AuthConfig::ApiKey { .. } => SecretUse::Key(TOKEN_TAG.into()),
                _ => SecretUse::SigningSecret,
            };
            out.push(ConfigFile {
                key: format!("route[{i}].auth.secret_file"),
                path: r.auth.secret_file_mut(),
                role: FileRole::Secret(role),
            });
        }
        out
    }
    /// A bearer token or API key travels in a header: one line of visible ASCII.
    fn judge_key(tag: &str, text: &str) -> Result<String, String> {
        if tag != TOKEN_TAG {
            return Err(format!("no check for key type `{tag}`"));
        }
        crate::auth::token_problem(text).map_or_else(
            || {
                let n = text.chars().count();
                Ok(if n < 16 {
                    format!("a token of {n} characters: short enough to guess (use 16 or more random ones)")
                } else {
                    format!("a token of {n} characters")
                })
            },
            Err,
        )
    }
    fn match_keys(config: &Config, site: &Site) -> Option<std::collections::BTreeSet<String>> {
        let mut keys = std::collections::BTreeSet::new();
        for r in &config.routes {
            match r.format {
                Format::Profiles => keys.extend(
                    ProfileSet::load(&site.profiles_dir, &r.profiles)
                        .ok()?
                        .registry_keys(),
                ),
                Format::Fhir => {
                    keys.extend(crate::fhir::REGISTRY_KEYS.iter().map(|k| (*k).to_owned()))
                }
            }
        }
        Some(keys)
    }
    fn audit(config: &Config, subject: &str, _site: &Site) -> Vec<Finding> {
        crate::audit::findings(subject, config)
    }
    fn check(config: &Config, site: &Site) -> Result<Self, ComponentError> {
        Self::validate(config).map_err(ComponentError::new)?;
        let tls = match &config.tls {
            None => None,
            Some(t) => Some(Arc::new(
                atgw_sdk::listener::server_config(
                    &t.cert_file,
                    &t.key_file,
                    t.client_ca_file.as_deref(),
                )
                .map_err(|e| ComponentError::new(format!("tls: {e}")))?,
            )),
        };
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let profiles = match r.format {
                Format::Profiles => ProfileSet::load(&site.profiles_dir, &r.profiles)
                    .map_err(|e| ComponentError::new(format!("route[{i}].profiles: {e}")))?,
                Format::Fhir => ProfileSet::default(),
            };
            let secret = atgw_sdk::secret::read_secret_file(r.auth.secret_file())
                .map_err(|e| ComponentError::new(format!("route[{i}].auth.secret_file: {e}")))?;
            let verifier = Verifier::new(&r.auth, secret)
                .map_err(|e| ComponentError::new(format!("route[{i}].auth.secret_file: {e}")))?;
            let dedupe = match r.dedupe.as_deref().or(r.auth.default_dedupe()) {
                Some(d) => Some(
                    ValuePath::parse(d)
                        .map_err(|e| ComponentError::new(format!("route[{i}].dedupe: {e}")))?,
                ),
                None => None,
            };
            routes.push(Route {
                path: r.path.clone(),
                topic: crate::route::Mount::topic_base(r).into_owned(),
                format: r.format,
                profiles: Arc::new(profiles),
                verifier,
                secret_headers: crate::route::secret_headers(&r.auth),
                dedupe,
                dedupe_window: r.dedupe_window,
            });
        }
        Ok(HttpAdapter {
            config: config.clone(),
            routes,
            tls,
        })
    }
    async fn start(self, ctx: AdapterContext) -> Result<Task, ComponentError> {
        let listener = tokio::net::TcpListener::bind(&self.config.listen)
            .await
            .map_err(|e| {
                ComponentError::new(format!(
                    "cannot listen on {}: {e}; is another program using the port?",
                    self.config.listen
                ))
            })?;
        let shared = Arc::new(Shared {
            name: self.config.name.clone(),
            routes: self.routes,
            budget: PeerBudget::new(self.config.max_connections, self.config.requests_per_sec),
            max_body_bytes: self.config.max_body_bytes,
            ingest: ctx.ingest,
            health: ctx.health.clone(),
            clock: ctx.clock,
            timezone: ctx.site.timezone,
            edges: Mutex::new(HashMap::new()),
            warn: LogLimiter::new(WARN_EVERY),
        });
        ctx.health.set_connected(true);
        let config = self.config;
        Ok(Box::pin(crate::listen::serve(
            listener,
            config,
            self.tls,
            shared,
            ctx.shutdown,
        )))
    }
}
