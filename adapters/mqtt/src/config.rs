//! Configuration of MQTT connections: the device-facing adapter (`[[adapter]] type = "mqtt"`) and
//! the upstream sink (`[[sink]] type = "mqtt"`). Every field is part of the user-facing config
//! contract (README "Configuration reference").

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How to reach and authenticate to a broker; shared by the adapter and the sink.
#[derive(Clone, Debug, PartialEq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub tls: Option<Tls>,
    pub keep_alive: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Declares a config struct that carries the broker connection keys at its top level (the
/// config file's shape, DESIGN §9) plus its own keys. serde's `flatten` cannot be combined with
/// `deny_unknown_fields`, and unknown keys must be errors, so the shared keys are spelled once here.
macro_rules! with_broker_keys {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Broker host name or IP address.
            pub host: String,
            /// Broker port (1883 plain, 8883 TLS by convention).
            pub port: u16,
            /// MQTT client id; must be stable so the broker keeps our session. Default
            /// `<gateway-id>-<name>`.
            #[serde(default)]
            pub client_id: Option<String>,
            /// User name, when the broker requires one.
            #[serde(default)]
            pub username: Option<String>,
            /// File holding the password (never the password itself in config).
            #[serde(default)]
            pub password_file: Option<PathBuf>,
            /// TLS settings; absent means plain TCP.
            #[serde(default)]
            pub tls: Option<Tls>,
            /// MQTT keep-alive interval.
            #[serde(default = "default_keep_alive", with = "humantime_serde")]
            pub keep_alive: Duration,
            /// First reconnect delay; doubles per failure up to `reconnect_max`, with jitter.
            #[serde(default = "default_reconnect_min", with = "humantime_serde")]
            pub reconnect_min: Duration,
            /// Longest reconnect delay.
            #[serde(default = "default_reconnect_max", with = "humantime_serde")]
            pub reconnect_max: Duration,
        }

        impl $name {
            /// The connection's files (password, TLS key and certificates), for the core.
            pub fn broker_files(&mut self) -> Vec<atgw_sdk::component::ConfigFile<'_>> {
                use atgw_sdk::component::{ConfigFile, FileRole, SecretUse};
                let mut out = Vec::new();
                if let Some(p) = &mut self.password_file {
                    out.push(ConfigFile {
                        key: "password_file".into(),
                        path: p,
                        role: FileRole::Secret(SecretUse::Password),
                    });
                }
                if let Some(t) = &mut self.tls {
                    for (key, p) in [("tls.ca_file", &mut t.ca_file), ("tls.cert_file", &mut t.cert_file)] {
                        if let Some(p) = p {
                            out.push(ConfigFile { key: key.into(), path: p, role: FileRole::Certificate });
                        }
                    }
                    if let Some(p) = &mut t.key_file {
                        out.push(ConfigFile {
                            key: "tls.key_file".into(),
                            path: p,
                            role: FileRole::Secret(SecretUse::TlsKey),
                        });
                    }
                }
                out
            }

            /// The connection part of this config.
            pub fn broker(&self) -> Broker {
                Broker {
                    host: self.host.clone(),
                    port: self.port,
                    client_id: self.client_id.clone(),
                    username: self.username.clone(),
                    password_file: self.password_file.clone(),
                    tls: self.tls.clone(),
                    keep_alive: self.keep_alive,
                    reconnect_min: self.reconnect_min,
                    reconnect_max: self.reconnect_max,
                }
            }
        }
    };
}

/// TLS towards the broker (rustls; no OpenSSL).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM file of the CA(s) that sign the broker's certificate. Absent: the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that require client certificates.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to verify the broker's certificate against, when it differs from `host`.
    #[serde(default)]
    pub server_name: Option<String>,
}

with_broker_keys! {
    /// `[[adapter]] type = "mqtt"`: devices that publish to a broker (zigbee2mqtt, BLE hubs…).
    pub struct AdapterConfig {
        /// Adapter instance name (`device.adapter`, `source`, registry matching).
        pub name: String,
        /// Topic filters to subscribe to (QoS 1).
        pub topics: Vec<String>,
        /// Device profile names, resolved as `<profiles_dir>/<name>.toml`; the first that
        /// matches a message maps it.
        pub profiles: Vec<String>,
        /// Payloads larger than this are dead-lettered (`oversize`) without being parsed.
        #[serde(default = "default_max_payload")]
        pub max_payload: usize,
        /// Messages committed per journal transaction at most.
        #[serde(default = "default_batch")]
        pub batch: usize,
        /// Bytes of messages (topic + payload + 192 per message) held in memory between read
        /// and commit; past it the adapter stops reading and the broker keeps the backlog.
        #[serde(default = "default_max_held_bytes")]
        pub max_held_bytes: usize,
    }
}

with_broker_keys! {
    /// `[[sink]] type = "mqtt"`: CloudEvents to an upstream broker at QoS 1.
    pub struct SinkConfig {
        /// Sink name (routes refer to it).
        pub name: String,
        /// Events go to `<topic_prefix>/events/<kind>`.
        pub topic_prefix: String,
        /// Publishes awaiting PUBACK at most (the rumqttc inflight window).
        #[serde(default = "default_window")]
        pub window: u16,
        /// Take alert acknowledgements and resolutions from
        /// `<topic_prefix>/alerts/<id>/ack|resolve` on this broker.
        #[serde(default = "default_true")]
        pub accept_acks: bool,
    }
}

/// Below this a batch of ordinary device messages would not fit the window.
const MIN_HELD_BYTES: usize = 64 * 1024;

fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(250)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_max_payload() -> usize {
    256 * 1024
}
fn default_batch() -> usize {
    512
}
fn default_max_held_bytes() -> usize {
    crate::window::HELD_BYTES
}
fn default_true() -> bool {
    true
}
fn default_window() -> u16 {
    32
}

/// A setting that cannot work, named by its key (the component contract's type).
pub use atgw_sdk::component::Invalid;

impl Broker {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.host.trim().is_empty() {
            return Err(Invalid::new("host", "must not be empty"));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err(Invalid::new("password_file", "needs `username` as well"));
        }
        if let Some(tls) = &self.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err(Invalid::new(
                "tls",
                "`cert_file` and `key_file` go together",
            ));
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err(Invalid::new(
                "reconnect_min",
                "must be above zero and at most `reconnect_max`",
            ));
        }
        Ok(())
    }
}

impl AdapterConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        self.broker().validate()?;
        if self.topics.is_empty() {
            return Err(Invalid::new("topics", "needs at least one topic filter"));
        }
        if self.profiles.is_empty() {
            return Err(Invalid::new("profiles", "needs at least one profile"));
        }
        if self.batch == 0 {
            return Err(Invalid::new("batch", "must be at least 1"));
        }
        if self.max_held_bytes < MIN_HELD_BYTES {
            return Err(Invalid::new(
                "max_held_bytes",
                format!("must be at least {MIN_HELD_BYTES} (64 KiB)"),
            ));
        }
        Ok(())
    }
}

impl SinkConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        self.broker().validate()?;
        if self.window == 0 {
            return Err(Invalid::new("window", "must be at least 1"));
        }
        if self.topic_prefix.contains(['#', '+']) {
            return Err(Invalid::new(
                "topic_prefix",
                "must not contain MQTT wildcards",
            ));
        }
        Ok(())
    }
}
