//! Why an SMS sink cannot start ([`SmsError`]) and why a session to the SMSC ended or never
//! began ([`SessionError`]). Neither ever contains the password or a phone number. Refusals of
//! single messages are not errors here: they are `Outcome::Retry` reasons for the outbox.

use crate::pdu::{EncodeError, status};

/// An SMS sink that cannot run with its configuration or on this host.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("sms sink `{sink}`: {source}")]
    Invalid {
        sink: String,
        source: atgw_sdk::component::Invalid,
    },
    #[error("sms sink `{sink}`: password_file: {source}")]
    Password {
        sink: String,
        source: atgw_sdk::secret::SecretError,
    },
    #[error(
        "sms sink `{sink}`: password_file holds {len} characters; SMPP 3.4 allows at most 8 printable ASCII characters (ask the SMSC operator for a password that fits)"
    )]
    PasswordFormat { sink: String, len: usize },
    #[error("sms sink `{sink}`: ca_file {path}: {problem}")]
    CaFile {
        sink: String,
        path: String,
        problem: String,
    },
    #[error(
        "sms sink `{sink}`: no CA certificates found in the system store; install ca-certificates or set `ca_file`"
    )]
    NoRoots { sink: String },
    #[error("sms sink `{sink}`: cannot set up TLS: {problem}")]
    Tls { sink: String, problem: String },
}

/// Why there is no bound session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("no {0} response within response_timeout")]
    Timeout(&'static str),
    #[error(
        "the SMSC refused the bind: {} (check system_id, password_file and system_type with the SMSC operator)",
        status::name(*.0)
    )]
    BindRefused(u32),
    #[error("{0}")]
    Closed(String),
    #[error("write failed: {0}")]
    Io(String),
    #[error("cannot encode a PDU: {0}")]
    Encode(EncodeError),
}
