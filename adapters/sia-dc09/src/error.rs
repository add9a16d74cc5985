//! What can stop the adapter from running. Per-frame problems are not errors of the adapter:
//! they become dead letters and answers (see [`crate::handler`]).

use crate::config::ConfigErrors;

#[derive(Debug, thiserror::Error)]
pub enum Dc09Error {
    #[error("adapter `{adapter}` (sia-dc09): invalid configuration: {errors}")]
    Config {
        adapter: String,
        errors: ConfigErrors,
    },
    #[error(
        "adapter `{adapter}` (sia-dc09): key for account {account}: {reason}; fix key_file or key_format of that account"
    )]
    Key {
        adapter: String,
        account: String,
        reason: String,
    },
    #[error(
        "adapter `{adapter}` (sia-dc09): cannot listen on {proto} {addr}: {source}; is another program using the port?"
    )]
    Bind {
        adapter: String,
        proto: &'static str,
        addr: String,
        source: std::io::Error,
    },
}
