//! `[[adapter]] type = "example-line"`: where to listen and how much to take.

use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The instance's name (events' `device.adapter`, logs, metrics).
    pub name: String,
    /// `host:port` to listen on, e.g. `"0.0.0.0:7300"`.
    pub listen: String,
    /// A longer line is a dead letter (`oversize`) and the connection is closed.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Connections held at most; more are refused until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection silent for this long is closed.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A line repeating `seq`, device and kind within this window is a retransmission: answered
    /// `ACK`, journaled once. A device restarts its numbering after a reboot, so the window is
    /// minutes (its retry time), not a day.
    #[serde(default = "default_retransmit_window", with = "humantime_serde")]
    pub retransmit_window: Duration,
}

fn default_max_line_bytes() -> usize {
    256
}
fn default_max_connections() -> usize {
    64
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_retransmit_window() -> Duration {
    Duration::from_secs(300)
}

impl Config {
    /// The config with every default, listening on `listen`.
    pub fn new(name: impl Into<String>, listen: impl Into<String>) -> Config {
        Config {
            name: name.into(),
            listen: listen.into(),
            max_line_bytes: default_max_line_bytes(),
            max_connections: default_max_connections(),
            idle_timeout: default_idle_timeout(),
            retransmit_window: default_retransmit_window(),
        }
    }
}
