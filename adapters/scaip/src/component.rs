//! The receiver under the component contract ([`atgw_sdk::component`]): `[[adapter]] type =
//! "scaip"` in the core's registry.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    Adapter, AdapterContext, ComponentError, ConfigFile, FileRole, Invalid, SecretUse, Site, Task,
};
use atgw_sdk::secret::{Secret, read_secret_file};

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::handler::Handler;
use crate::mapping::{KEY_CID, KEY_DCO, KEY_DID};
use crate::server::Bound;
use crate::sip::digest::DigestServer;

/// A SCAIP receiver that passed its preflight (config valid, every password readable).
pub struct ScaipComponent {
    config: Config,
    accounts: HashMap<String, Secret>,
    realm: String,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Adapter for ScaipComponent {
    const TYPE: &'static str = "scaip";
    type Config = Config;

    fn name(config: &Config) -> &str {
        &config.name
    }
    fn validate(config: &Config) -> Result<(), Invalid> {
        config.validate().map_err(|(k, p)| Invalid::new(k, p))
    }
    fn match_keys(_: &Config, _: &Site) -> Option<BTreeSet<String>> {
        Some([KEY_CID, KEY_DID, KEY_DCO].map(str::to_owned).into())
    }
    fn files(config: &mut Config) -> Vec<ConfigFile<'_>> {
        let mut out: Vec<ConfigFile<'_>> = config
            .accounts
            .iter_mut()
            .enumerate()
            .map(|(i, a)| ConfigFile {
                key: format!("accounts[{i}].password_file (user {})", a.user),
                path: &mut a.password_file,
                role: FileRole::Secret(SecretUse::Password),
            })
            .collect();
        if let Some(t) = &mut config.tls {
            out.push(ConfigFile {
                key: "tls.cert_file".into(),
                path: &mut t.cert_file,
                role: FileRole::Certificate,
            });
            out.push(ConfigFile {
                key: "tls.key_file".into(),
                path: &mut t.key_file,
                role: FileRole::Secret(SecretUse::TlsKey),
            });
            if let Some(ca) = &mut t.client_ca_file {
                out.push(ConfigFile {
                    key: "tls.client_ca_file".into(),
                    path: ca,
                    role: FileRole::Certificate,
                });
            }
        }
        out
    }
    fn canonical_match(key: &str, value: &str) -> Result<String, String> {
        match key {
            KEY_DCO => value
                .parse::<u16>()
                .ok()
                .filter(|v| *v <= 999)
                .map(|v| format!("{v:03}"))
                .ok_or_else(|| format!("dco `{value}` is not a component code 0–999")),
            KEY_CID if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) => Err(
                format!("cid `{value}` is not digits (SCAIP controller ids are)"),
            ),
            _ => Ok(value.to_owned()),
        }
    }
    fn audit(config: &Config, subject: &str, _site: &Site) -> Vec<Finding> {
        crate::audit::receiver(subject, config)
    }
    fn check(config: &Config, site: &Site) -> Result<Self, ComponentError> {
        let mut accounts = HashMap::new();
        for a in &config.accounts {
            let secret = read_secret_file(&a.password_file)
                .map_err(|e| ComponentError::new(format!("SCAIP account {}: {e}", a.user)))?;
            accounts.insert(a.user.clone(), secret);
        }
        let tls =
            match &config.tls {
                Some(t) => Some(crate::tls::server_config(t).map_err(|e| {
                    ComponentError::new(format!("SCAIP adapter {}: {e}", config.name))
                })?),
                None => None,
            };
        Ok(ScaipComponent {
            config: config.clone(),
            accounts,
            tls,
            realm: config
                .realm
                .clone()
                .unwrap_or_else(|| site.gateway_id.clone()),
        })
    }
    async fn start(self, ctx: AdapterContext) -> Result<Task, ComponentError> {
        let c = self.config;
        let tls = match (c.listen_tls.as_deref(), self.tls) {
            (Some(addr), Some(config)) => Some((addr, config)),
            _ => None,
        };
        let bound = Bound::bind(
            c.listen_udp.as_deref(),
            c.listen_tcp.as_deref(),
            tls,
            c.max_connections,
            c.max_transactions,
            c.idle_timeout,
        )
        .await
        .map_err(|e| {
            ComponentError::new(format!("SCAIP adapter {}: cannot listen: {e}", c.name))
        })?;
        let handler = Handler::new(&c.name, c.retransmit_window, c.hbi_minutes());
        let digest = DigestServer::new(
            &self.realm,
            c.digest_algorithms.clone(),
            i64::try_from(c.nonce_lifetime.as_millis()).unwrap_or(i64::MAX),
        );
        let dispatcher = Arc::new(Dispatcher::new(
            handler,
            digest,
            self.accounts,
            c.allow_unauthenticated,
            ctx.ingest,
            ctx.health,
            ctx.clock,
        ));
        Ok(Box::pin(bound.run(dispatcher, ctx.shutdown)))
    }
}
