//! The SMS sink under the component contract ([`atgw_sdk::component`]): `[[sink]] type =
//! "sms"` in the core's registry.

use std::sync::Arc;

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    ComponentError, ConfigFile, FileRole, Invalid, Link, SecretUse, Sink, SinkContext, SinkTasks,
    Site, Task,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::SmsConfig;
use crate::error::SmsError;
use crate::sink::Settings;

/// An SMS sink whose password (and CA file) were readable at preflight.
pub struct SmsSink {
    config: SmsConfig,
}

impl Sink for SmsSink {
    const TYPE: &'static str = "sms";
    type Config = SmsConfig;

    fn name(config: &SmsConfig) -> &str {
        &config.name
    }
    fn validate(config: &SmsConfig) -> Result<(), Invalid> {
        config.validate()
    }
    fn files(config: &mut SmsConfig) -> Vec<ConfigFile<'_>> {
        let mut out = vec![ConfigFile {
            key: "password_file".into(),
            path: &mut config.password_file,
            role: FileRole::Secret(SecretUse::Password),
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
    /// The submit window plus the notifications bundling may hold, so held ones never take
    /// the slot a high-priority alert needs.
    fn window(config: &SmsConfig) -> usize {
        config.window + config.bundling().extra_window()
    }
    /// Held for a bundle at most this long: not late for the outbox's sink alert.
    fn hold(config: &SmsConfig) -> std::time::Duration {
        config.bundle_window
    }
    fn link(_: &SmsConfig) -> Link {
        Link::Held
    }
    fn audit(config: &SmsConfig, subject: &str, _site: &Site) -> Vec<Finding> {
        vec![crate::audit::smpp(subject, config)]
    }
    fn check(config: &SmsConfig, _site: &Site) -> Result<Self, ComponentError> {
        config.validate().map_err(ComponentError::new)?;
        password(config).map_err(ComponentError::new)?;
        if config.tls {
            tls(config).map_err(ComponentError::new)?;
        }
        Ok(SmsSink {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        let password = password(&self.config).map_err(ComponentError::new)?;
        let tls = if self.config.tls {
            Some(tls(&self.config).map_err(ComponentError::new)?)
        } else {
            None
        };
        let settings = Settings {
            config: self.config,
            password,
            tls,
            timezone: ctx.site.timezone.clone(),
        };
        let output: Task = Box::pin(crate::sink::run(settings, ctx.io, ctx.health, ctx.shutdown));
        Ok(SinkTasks {
            output,
            intake: Vec::new(),
        })
    }
}

/// The bind password: at most 8 printable ASCII characters (SMPP 3.4 §4.1.1). A trailing
/// newline in the file is not part of it.
fn password(cfg: &SmsConfig) -> Result<atgw_sdk::secret::Secret, SmsError> {
    let secret = atgw_sdk::secret::read_secret_file(&cfg.password_file).map_err(|source| {
        SmsError::Password {
            sink: cfg.name.clone(),
            source,
        }
    })?;
    let p = secret.expose();
    if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err(SmsError::PasswordFormat {
            sink: cfg.name.clone(),
            len: p.chars().count(),
        });
    }
    Ok(secret)
}

/// The TLS client: ring, TLS 1.2 and 1.3, the SMSC checked against `ca_file` or the system
/// store.
fn tls(cfg: &SmsConfig) -> Result<tokio_rustls::TlsConnector, SmsError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let ca_err = |problem: String| SmsError::CaFile {
                sink: cfg.name.clone(),
                path: path.display().to_string(),
                problem,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(format!("cannot read it: {e}")))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(format!("not a PEM certificate bundle: {e}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ca_err(
                    "holds no usable `BEGIN CERTIFICATE` block; expected the SMSC's CA in PEM"
                        .into(),
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(SmsError::NoRoots {
                    sink: cfg.name.clone(),
                });
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmsError::Tls {
            sink: cfg.name.clone(),
            problem: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
