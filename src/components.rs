//! The component types: the one list of every adapter and sink atgw can run.
//!
//! Adding a protocol or an output is its crate (implementing [`atgw_sdk::component::Adapter`]
//! or [`Sink`]) plus one line in [`component_types!`] below. From that line come the `[[adapter]]` and
//! `[[sink]]` config enums (serde picks the variant by `type`, so errors keep their exact key
//! path), and every use the core makes of a component: validation, the files its config names
//! (path resolution, symlink refusal, `audit`'s secret checks), preflight, readiness and start.
//! Nothing else in the core names a component type.

use atgw_sdk::audit::Finding;
use atgw_sdk::component::{
    Adapter, AdapterContext, ComponentError, ConfigFile, Invalid, Link, Sink, SinkContext,
    SinkTasks, Site, Task,
};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;

/// An adapter that passed its preflight, ready to bind and run. Boxed because the runtime
/// holds adapters of every type in one list; the boxing ends at the contract's edge.
pub trait PreparedAdapter: Send {
    fn start(
        self: Box<Self>,
        ctx: AdapterContext,
    ) -> Pin<Box<dyn Future<Output = Result<Task, ComponentError>> + Send>>;
}

impl<A: Adapter> PreparedAdapter for A {
    fn start(
        self: Box<Self>,
        ctx: AdapterContext,
    ) -> Pin<Box<dyn Future<Output = Result<Task, ComponentError>> + Send>> {
        Box::pin(Adapter::start(*self, ctx))
    }
}

/// A sink that passed its preflight.
pub trait PreparedSink: Send {
    fn start(
        self: Box<Self>,
        ctx: SinkContext,
    ) -> Pin<Box<dyn Future<Output = Result<SinkTasks, ComponentError>> + Send>>;
}

impl<S: Sink> PreparedSink for S {
    fn start(
        self: Box<Self>,
        ctx: SinkContext,
    ) -> Pin<Box<dyn Future<Output = Result<SinkTasks, ComponentError>> + Send>> {
        Box::pin(Sink::start(*self, ctx))
    }
}

/// One file a component's config names, read-only (see [`ConfigFile`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedFile {
    /// `adapter \`panels\` accounts[0].key_file`: what a person finds in the file.
    pub subject: String,
    pub path: std::path::PathBuf,
    pub role: atgw_sdk::component::FileRole,
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

macro_rules! component_types {
    (
        adapters { $($a:ident($ta:literal) => $A:ty,)* }
        sinks { $($s:ident($ts:literal) => $S:ty,)* }
    ) => {
        /// `[[adapter]]`: one protocol listener or client, chosen by `type`.
        #[derive(Clone, Debug, Deserialize, PartialEq)]
        #[serde(tag = "type")]
        pub enum AdapterConfig {
            $(#[serde(rename = $ta)] $a(Box<<$A as Adapter>::Config>),)*
        }

        /// `[[sink]]`: an output, chosen by `type`.
        #[derive(Clone, Debug, Deserialize, PartialEq)]
        #[serde(tag = "type")]
        pub enum SinkConfig {
            $(#[serde(rename = $ts)] $s(Box<<$S as Sink>::Config>),)*
        }

        // The list line's `type` is the component's own.
        const _: () = {
            $(assert!(same($ta, <$A as Adapter>::TYPE), "component_types! type differs from Adapter::TYPE");)*
            $(assert!(same($ts, <$S as Sink>::TYPE), "component_types! type differs from Sink::TYPE");)*
        };

        /// Every adapter type, as `type = "…"` names it.
        pub const ADAPTER_TYPES: &[&str] = &[$($ta),*];
        /// Every sink type.
        pub const SINK_TYPES: &[&str] = &[$($ts),*];

        impl AdapterConfig {
            pub fn type_name(&self) -> &'static str {
                match self { $(Self::$a(_) => <$A as Adapter>::TYPE,)* }
            }
            pub fn name(&self) -> &str {
                match self { $(Self::$a(c) => <$A as Adapter>::name(c),)* }
            }
            pub fn validate(&self) -> Result<(), Invalid> {
                match self { $(Self::$a(c) => <$A as Adapter>::validate(c),)* }
            }
            pub fn files_mut(&mut self) -> Vec<ConfigFile<'_>> {
                match self { $(Self::$a(c) => <$A as Adapter>::files(c),)* }
            }
            pub fn judge_key(&self, tag: &str, text: &str) -> Result<String, String> {
                match self { $(Self::$a(_) => <$A as Adapter>::judge_key(tag, text),)* }
            }
            /// A `[[device]] match` value in this adapter's canonical form.
            pub fn canonical_match(&self, key: &str, value: &str) -> Result<String, String> {
                match self { $(Self::$a(_) => <$A as Adapter>::canonical_match(key, value),)* }
            }
            /// The registry keys this adapter's events can carry, if it can say.
            pub fn match_keys(&self, site: &Site) -> Option<std::collections::BTreeSet<String>> {
                match self { $(Self::$a(c) => <$A as Adapter>::match_keys(c, site),)* }
            }
            pub fn audit(&self, site: &Site) -> Vec<Finding> {
                let subject = format!("adapter `{}`", self.name());
                match self { $(Self::$a(c) => <$A as Adapter>::audit(c, &subject, site),)* }
            }
            /// Preflight: reads files, binds nothing.
            pub fn check(&self, site: &Site) -> Result<Box<dyn PreparedAdapter>, ComponentError> {
                match self {
                    $(Self::$a(c) => <$A as Adapter>::check(c, site)
                        .map(|p| Box::new(p) as Box<dyn PreparedAdapter>),)*
                }
            }
        }

        impl SinkConfig {
            pub fn type_name(&self) -> &'static str {
                match self { $(Self::$s(_) => <$S as Sink>::TYPE,)* }
            }
            pub fn name(&self) -> &str {
                match self { $(Self::$s(c) => <$S as Sink>::name(c),)* }
            }
            pub fn validate(&self) -> Result<(), Invalid> {
                match self { $(Self::$s(c) => <$S as Sink>::validate(c),)* }
            }
            pub fn files_mut(&mut self) -> Vec<ConfigFile<'_>> {
                match self { $(Self::$s(c) => <$S as Sink>::files(c),)* }
            }
            pub fn judge_key(&self, tag: &str, text: &str) -> Result<String, String> {
                match self { $(Self::$s(_) => <$S as Sink>::judge_key(tag, text),)* }
            }
            pub fn audit(&self, site: &Site) -> Vec<Finding> {
                let subject = format!("sink `{}`", self.name());
                match self { $(Self::$s(c) => <$S as Sink>::audit(c, &subject, site),)* }
            }
            pub fn window(&self) -> usize {
                match self { $(Self::$s(c) => <$S as Sink>::window(c),)* }
            }
            pub fn hold(&self) -> std::time::Duration {
                match self { $(Self::$s(c) => <$S as Sink>::hold(c),)* }
            }
            pub fn link(&self) -> Link {
                match self { $(Self::$s(c) => <$S as Sink>::link(c),)* }
            }
            pub fn extra_health(&self) -> Vec<&'static str> {
                match self { $(Self::$s(c) => <$S as Sink>::extra_health(c),)* }
            }
            pub fn check(&self, site: &Site) -> Result<Box<dyn PreparedSink>, ComponentError> {
                match self {
                    $(Self::$s(c) => <$S as Sink>::check(c, site)
                        .map(|p| Box::new(p) as Box<dyn PreparedSink>),)*
                }
            }
        }
    };
}

component_types! {
    adapters {
        Mqtt("mqtt") => atgw_mqtt::component::MqttAdapter,
        SiaDc09("sia-dc09") => atgw_sia_dc09::Dc09Component,
        ExampleLine("example-line") => atgw_example_line::LineAdapter,
        Espa444("espa444") => atgw_espa444::EspaAdapter,
        Scaip("scaip") => atgw_scaip::ScaipComponent,
        Http("http") => atgw_http_ingest::HttpAdapter,
    }
    sinks {
        Mqtt("mqtt") => atgw_mqtt::component::MqttSink,
        File("file") => crate::sinks::file::FileSink,
        Webhook("webhook") => atgw_http::WebhookSink,
        Email("email") => atgw_email::EmailSink,
        Sms("sms") => atgw_sms::SmsSink,
        Fhir("fhir") => atgw_fhir::FhirSink,
        Espa444("espa444") => atgw_espa444::EspaSink,
    }
}

impl AdapterConfig {
    /// Every file the config names, with the component it belongs to in the subject.
    pub fn files(&self) -> Vec<NamedFile> {
        let subject = format!("adapter `{}`", self.name());
        named(&subject, self.clone().files_mut())
    }
}

impl SinkConfig {
    /// Every file the config names.
    pub fn files(&self) -> Vec<NamedFile> {
        let subject = format!("sink `{}`", self.name());
        named(&subject, self.clone().files_mut())
    }
}

fn named(subject: &str, files: Vec<ConfigFile<'_>>) -> Vec<NamedFile> {
    files
        .into_iter()
        .map(|f| NamedFile {
            subject: format!("{subject} {}", f.key),
            path: f.path.clone(),
            role: f.role,
        })
        .collect()
}
