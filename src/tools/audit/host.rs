//! Checks on what the file system and the process say: secret files private and well formed,
//! the state directory and journal closed to other users, configuration and profiles writable
//! only by their owner, free space for the journal, the user atgw runs as, and the binary.

use std::path::{Path, PathBuf};

use atgw_sdk::secret::{Secret, SecretError, read_secret_file};

use super::Finding;
use super::Provision::*;
use atgw_sdk::component::{FileRole, SecretUse};

use crate::components::NamedFile;
use crate::config::{AdapterConfig, Config, SinkConfig};

/// Below this much free space in `data_dir` the journal may stop accepting events soon.
const LOW_SPACE: u64 = 1 << 30;
/// Below this it is an emergency.
const NO_SPACE: u64 = 64 << 20;
/// An API token shorter than this is guessable in practice.
const MIN_TOKEN_CHARS: usize = 32;

/// Permission bits of `path`, if it exists.
fn mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// 5.7: the configuration decides where alerts go; only its owner may change it.
pub fn config_file(path: &Path) -> Vec<Finding> {
    let subject = path.display().to_string();
    match mode(path) {
        Some(m) if m & 0o022 != 0 => vec![Finding::fail(
            SoftwareIntegrity,
            "config-writable",
            subject,
            format!("mode {m:o}: other users can rewrite where alerts go"),
            format!("chmod 644 {} (or 640 with the atgw group)", path.display()),
        )],
        Some(m) => vec![Finding::pass(
            SoftwareIntegrity,
            "config-writable",
            subject,
            format!("mode {m:o}: only its owner can change it"),
        )],
        None => Vec::new(),
    }
}

/// What a secret file holds, for the checks on its content.
enum SecretKind<'a> {
    ApiToken,
    /// Named by a component's config: judged by its use, keys by the component itself.
    Component(SecretUse, Owner<'a>),
}

/// The component a file belongs to.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Adapter(&'a AdapterConfig),
    Sink(&'a SinkConfig),
}

impl Owner<'_> {
    fn judge_key(self, tag: &str, text: &str) -> Result<String, String> {
        match self {
            Owner::Adapter(a) => a.judge_key(tag, text),
            Owner::Sink(s) => s.judge_key(tag, text),
        }
    }
}

/// Every file the components' configs name, with their owner.
fn component_files(cfg: &Config) -> Vec<(NamedFile, Owner<'_>)> {
    let adapters = cfg
        .adapters
        .iter()
        .flat_map(|a| a.files().into_iter().map(move |f| (f, Owner::Adapter(a))));
    let sinks = cfg
        .sinks
        .iter()
        .flat_map(|s| s.files().into_iter().map(move |f| (f, Owner::Sink(s))));
    adapters.chain(sinks).collect()
}

/// Every secret file the configuration names, with what it is.
fn secret_files(cfg: &Config) -> Vec<(String, PathBuf, SecretKind<'_>)> {
    let mut out = Vec::new();
    if let Some(api) = &cfg.api {
        out.push((
            "api.token_file".to_owned(),
            api.token_file.clone(),
            SecretKind::ApiToken,
        ));
    }
    for (f, owner) in component_files(cfg) {
        if let FileRole::Secret(how) = f.role {
            out.push((f.subject, f.path, SecretKind::Component(how, owner)));
        }
    }
    out
}

/// Every check that needs the file system.
pub fn for_config(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for (subject, path, kind) in secret_files(cfg) {
        out.extend(secret(&subject, &path, &kind));
    }
    out.extend(certificates(cfg));
    out.extend(state(cfg));
    out.extend(file_sinks(cfg));
    out.extend(profiles(cfg));
    out
}

/// 5.4 (and 5.1 for the API token): one secret file, read exactly as the daemon reads it.
fn secret(subject: &str, path: &Path, kind: &SecretKind) -> Vec<Finding> {
    let shown = path.display();
    let (mut out, value) = match read_secret_file(path) {
        Ok(v) => (
            vec![Finding::pass(
                SecureStorage,
                "secret-file",
                subject,
                format!(
                    "{} is private to atgw",
                    atgw_sdk::secret::resolve(path).display()
                ),
            )],
            v,
        ),
        Err(e) => {
            let (found, fix) = match &e {
                SecretError::TooOpen { path, mode } => (
                    format!(
                        "{} has mode {mode:o}: other users can read or change it; atgw refuses to start with it",
                        path.display()
                    ),
                    format!(
                        "chmod 600 {} (or 640 with atgw's group); then replace the secret, since others could read it",
                        path.display()
                    ),
                ),
                SecretError::ForeignGroup { path, mode, gid } => (
                    format!(
                        "{} has mode {mode:o} and group {gid}, which atgw does not run in; atgw refuses to start with it",
                        path.display()
                    ),
                    format!(
                        "chmod 600 {} (or chgrp it to atgw's group); then replace the secret, since others could read it",
                        path.display()
                    ),
                ),
                SecretError::Read { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    (
                        format!("{shown} does not exist; atgw refuses to start without it"),
                        format!(
                            "create it with a unique value: umask 077; head -c 32 /dev/urandom | base64 > {shown} \
                             (or LoadCredential= it under systemd)"
                        ),
                    )
                }
                SecretError::Read { .. } | SecretError::Empty { .. } => (
                    format!("{e}; atgw refuses to start with it"),
                    format!("write the secret into {shown}, readable by atgw only"),
                ),
            };
            let fail = Finding::fail(SecureStorage, "secret-file", subject, found, fix);
            // A file refused only for its mode is still judged on what it holds: both need
            // fixing, and the report should say so at once.
            let readable = match &e {
                SecretError::TooOpen { path, .. } | SecretError::ForeignGroup { path, .. } => {
                    std::fs::read_to_string(path).ok()
                }
                _ => None,
            };
            match readable {
                Some(t) => (
                    vec![fail],
                    Secret::from(t.trim_end_matches(['\n', '\r']).to_owned()),
                ),
                None => return vec![fail],
            }
        }
    };
    let text = value.expose();
    match kind {
        SecretKind::ApiToken => out.push(token_strength(subject, path, text)),
        SecretKind::Component(SecretUse::Password, _) if text.chars().count() < 16 => {
            out.push(Finding::warn(
                NoDefaultPasswords,
                "mqtt-password",
                subject,
                format!(
                    "the password has {} characters: short enough to guess",
                    text.chars().count()
                ),
                "give the broker account a random password of 16 characters or more",
            ))
        }
        SecretKind::Component(SecretUse::Password, _) => {}
        SecretKind::Component(SecretUse::TlsKey, _) => {
            use rustls::pki_types::PrivateKeyDer;
            use rustls::pki_types::pem::PemObject;
            if let Err(e) = PrivateKeyDer::from_pem_slice(text.as_bytes()) {
                out.push(Finding::fail(
                    SecureCommunication,
                    "tls-file",
                    subject,
                    format!("not a PEM private key ({e}); the link cannot start"),
                    "point key_file (tls.key_file for MQTT) at the client certificate's PEM private key",
                ));
            }
        }
        SecretKind::Component(SecretUse::SigningSecret, _) => {
            out.push(webhook_secret(subject, text))
        }
        SecretKind::Component(SecretUse::Key(tag), owner) => {
            out.push(match owner.judge_key(tag, text) {
                Ok(what) => Finding::pass(SecureCommunication, "key-file", subject, what),
                Err(e) => Finding::fail(
                    SecureCommunication,
                    "key-file",
                    subject,
                    format!("not a usable key: {e}; the component will not start"),
                    "write the key in the format the component's config says (key_format)",
                ),
            });
        }
    }
    out
}

/// 5.1: the API token is the one password of atgw; it must be unique and unguessable.
fn token_strength(subject: &str, path: &Path, token: &str) -> Finding {
    let chars = token.chars().count();
    let distinct = token
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let lower = token.to_ascii_lowercase();
    let common = [
        "changeme", "password", "secret", "default", "example", "admin", "letmein", "atgw",
    ]
    .into_iter()
    .find(|w| lower.contains(w));
    let weak = if chars < MIN_TOKEN_CHARS {
        Some(format!(
            "the token has {chars} characters, fewer than {MIN_TOKEN_CHARS}"
        ))
    } else if distinct < 10 {
        Some(format!(
            "the token uses only {distinct} different characters"
        ))
    } else {
        common.map(|w| format!("the token contains the word `{w}`"))
    };
    match weak {
        Some(why) => Finding::fail(
            NoDefaultPasswords,
            "api-token",
            subject,
            format!("{why}: guessable, like a default password"),
            format!(
                "replace it with a random one: umask 077; head -c 32 /dev/urandom | base64 > {}",
                path.display()
            ),
        ),
        None => Finding::pass(
            NoDefaultPasswords,
            "api-token",
            subject,
            format!("{chars} characters, unique to this installation"),
        ),
    }
}

/// 5.4: a webhook signing secret atgw can use and the receiver cannot be guessed into.
fn webhook_secret(subject: &str, text: &str) -> Finding {
    if let Err(e) = atgw_http::signing::WebhookKey::parse(text) {
        return Finding::fail(
            SecureStorage,
            "webhook-secret",
            subject,
            format!("not a usable signing secret: {e}"),
            "copy the receiver's secret (`whsec_…`) into the file",
        );
    }
    // Standard Webhooks secrets are 24 to 64 random bytes; `whsec_` + base64 of 24 is 32 chars.
    let short = match text.trim().strip_prefix("whsec_") {
        Some(b64) => b64.trim_end_matches('=').len() < 32,
        None => text.trim().len() < 24,
    };
    if short {
        Finding::warn(
            SecureStorage,
            "webhook-secret",
            subject,
            "the signing secret is shorter than the 24 bytes Standard Webhooks asks for",
            "ask the receiver for a new secret of 24 random bytes or more",
        )
    } else {
        Finding::pass(
            SecureStorage,
            "webhook-secret",
            subject,
            "a signing secret of adequate length",
        )
    }
}

/// 5.5: certificate files the TLS links need.
fn certificates(cfg: &Config) -> Vec<Finding> {
    let files: Vec<(String, PathBuf)> = component_files(cfg)
        .into_iter()
        .filter(|(f, _)| f.role == FileRole::Certificate)
        .map(|(f, _)| (f.subject, f.path))
        .collect();
    files
        .into_iter()
        .filter_map(|(subject, path)| match std::fs::read_to_string(&path) {
            Ok(t) if t.contains("-----BEGIN CERTIFICATE-----") => None,
            Ok(_) => Some(Finding::fail(
                SecureCommunication,
                "tls-file",
                subject,
                format!("{} holds no PEM certificate", path.display()),
                "point it at the PEM certificate (-----BEGIN CERTIFICATE-----)",
            )),
            Err(e) => Some(Finding::fail(
                SecureCommunication,
                "tls-file",
                subject,
                format!("cannot read {}: {e}; the link cannot start", path.display()),
                "install the certificate there, or correct the path",
            )),
        })
        .collect()
}

/// 6 and 5.9: the state directory, the journal in it, and room to grow.
fn state(cfg: &Config) -> Vec<Finding> {
    let dir = &cfg.gateway.data_dir;
    let mut out = Vec::new();
    // lstat first: `mode` follows a symlink, and atgw refuses a symlinked data_dir.
    if let Err(e) = crate::paths::check_data_dir(dir) {
        out.push(Finding::fail(
            PersonalData,
            "data-dir",
            "gateway.data_dir",
            e.to_string(),
            "point data_dir at a real directory owned by the service user (systemd StateDirectory=atgw)",
        ));
        return out;
    }
    match mode(dir) {
        None => out.push(Finding::pass(
            PersonalData,
            "data-dir",
            "gateway.data_dir",
            format!(
                "{} does not exist yet; atgw creates it with mode 750",
                dir.display()
            ),
        )),
        Some(m) if m & 0o007 != 0 => out.push(Finding::fail(
            PersonalData,
            "data-dir",
            "gateway.data_dir",
            format!(
                "{} has mode {m:o}: other users can reach the journal of residents' events",
                dir.display()
            ),
            format!(
                "chmod 750 {} (atgw never changes the mode of a directory it did not create)",
                dir.display()
            ),
        )),
        Some(m) => out.push(Finding::pass(
            PersonalData,
            "data-dir",
            "gateway.data_dir",
            format!("{} has mode {m:o}: closed to other users", dir.display()),
        )),
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.join(format!("{}{suffix}", crate::journal::FILE_NAME));
        if let Some(m) = mode(&file)
            && m & 0o006 != 0
        {
            out.push(Finding::warn(
                PersonalData,
                "journal-file",
                file.display().to_string(),
                format!(
                    "mode {m:o}: readable by other users as soon as data_dir is opened to them"
                ),
                format!("chmod 600 {}", file.display()),
            ));
        }
    }
    let existing = dir.ancestors().find(|p| p.exists());
    if let Some(at) = existing
        && let Ok(s) = rustix::fs::statvfs(at)
    {
        let free = s.f_bavail.saturating_mul(s.f_frsize);
        let mib = free >> 20;
        out.push(if free < NO_SPACE {
            Finding::fail(
                Resilience,
                "disk-space",
                "gateway.data_dir",
                format!(
                    "{mib} MiB free at {}: the journal will stop accepting events",
                    at.display()
                ),
                "free space or move data_dir to a larger file system",
            )
        } else if free < LOW_SPACE {
            Finding::warn(
                Resilience,
                "disk-space",
                "gateway.data_dir",
                format!(
                    "{mib} MiB free at {}: little room for a backlog during an outage",
                    at.display()
                ),
                "keep at least 1 GiB free for the journal",
            )
        } else {
            Finding::pass(
                Resilience,
                "disk-space",
                "gateway.data_dir",
                format!("{mib} MiB free for the journal and its backlog"),
            )
        });
    }
    out
}

/// 6: file sinks hold every event, residents' included.
fn file_sinks(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let outputs = cfg.sinks.iter().flat_map(|s| {
        s.files()
            .into_iter()
            .filter(|f| f.role == FileRole::Output)
            .map(move |f| (s.name(), f.path))
    });
    for (name, path) in outputs {
        let subject = format!("sink `{name}`");
        if let Err(e) = crate::paths::check_sink_path(name, &path) {
            out.push(Finding::fail(
                PersonalData,
                "file-sink",
                subject,
                e.to_string(),
                "point the sink's path at a regular file in a real directory (inside data_dir, for example)",
            ));
            continue;
        }
        let dir_open = path.parent().and_then(mode).is_some_and(|m| m & 0o001 != 0);
        match mode(&path) {
            Some(m) if m & 0o004 != 0 && dir_open => out.push(Finding::fail(
                PersonalData,
                "file-sink",
                subject,
                format!(
                    "{} (mode {m:o}) in an open directory: other users can read residents' events",
                    path.display()
                ),
                format!("chmod 600 {}*, or keep it inside data_dir", path.display()),
            )),
            Some(m) if m & 0o004 != 0 => out.push(Finding::warn(
                PersonalData,
                "file-sink",
                subject,
                format!(
                    "{} has mode {m:o}; only its directory keeps other users out",
                    path.display()
                ),
                format!("chmod 600 {}*", path.display()),
            )),
            _ => out.push(Finding::pass(
                PersonalData,
                "file-sink",
                subject,
                format!("{} is not readable by other users", path.display()),
            )),
        }
    }
    out
}

/// 5.7: a profile decides what a device message means; only its owner may change it.
fn profiles(cfg: &Config) -> Vec<Finding> {
    let dir = &cfg.gateway.profiles_dir;
    let mut writable: Vec<String> = Vec::new();
    if mode(dir).is_some_and(|m| m & 0o022 != 0) {
        writable.push(dir.display().to_string());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if mode(&e.path()).is_some_and(|m| m & 0o022 != 0) {
                writable.push(e.path().display().to_string());
            }
        }
    }
    if writable.is_empty() {
        vec![Finding::pass(
            SoftwareIntegrity,
            "profiles-writable",
            "gateway.profiles_dir",
            format!(
                "{} and its profiles are writable by their owner only",
                dir.display()
            ),
        )]
    } else {
        vec![Finding::fail(
            SoftwareIntegrity,
            "profiles-writable",
            "gateway.profiles_dir",
            format!(
                "writable by other users, who could turn a fall into nothing: {}",
                writable.join(", ")
            ),
            format!("chmod go-w {0} {0}/*", dir.display()),
        )]
    }
}

/// 5.3, 5.6 and 5.7: this process and its binary.
pub fn process() -> Vec<Finding> {
    let mut out = vec![Finding::pass(
        SoftwareUpdates,
        "version",
        "atgw",
        format!(
            "version {}; atgw installs nothing and calls no one at run time: updates come as a new package",
            env!("CARGO_PKG_VERSION")
        ),
    )];
    if rustix::process::geteuid().is_root() {
        out.push(Finding::warn(
            AttackSurface,
            "run-as-root",
            "user",
            "running as root: a flaw in any adapter would own the whole gateway",
            "run atgw as its own user (the systemd unit's DynamicUser= or a sysusers.d user), with secrets via LoadCredential=",
        ));
    } else {
        out.push(Finding::pass(
            AttackSurface,
            "run-as-root",
            "user",
            "not running as root",
        ));
    }
    if let Ok(exe) = std::env::current_exe() {
        let open: Vec<String> = [Some(exe.as_path()), exe.parent()]
            .into_iter()
            .flatten()
            .filter(|p| mode(p).is_some_and(|m| m & 0o022 != 0 && m & 0o1000 == 0))
            .map(|p| p.display().to_string())
            .collect();
        out.push(if open.is_empty() {
            Finding::pass(
                SoftwareIntegrity,
                "binary-writable",
                exe.display().to_string(),
                "the atgw binary and its directory are writable by their owner only",
            )
        } else {
            Finding::fail(
                SoftwareIntegrity,
                "binary-writable",
                exe.display().to_string(),
                format!("writable by other users, who could replace atgw: {}", open.join(", ")),
                "install atgw from its package (root-owned, mode 755), or chmod go-w the paths named",
            )
        });
    }
    out
}
