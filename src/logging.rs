//! Where log lines go: journald under systemd (`JOURNAL_STREAM` set), otherwise readable text on
//! a terminal or JSON lines on request. `RUST_LOG` overrides the default filter.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Log line format chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Call once, first thing.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},rumqttc=warn")));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && format == LogFormat::Text
        && let Ok(journald) = tracing_journald::layer()
    {
        // Only journald: stdout is also captured by journald, so both would double every line.
        let _ = registry
            .with(journald.with_syslog_identifier("atgw".into()))
            .try_init();
        return;
    }
    match format {
        LogFormat::Json => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stderr),
                )
                .try_init();
        }
        LogFormat::Text => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
                )
                .try_init();
        }
    }
}
