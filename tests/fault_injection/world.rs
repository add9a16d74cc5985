//! One scenario's world: the daemon's config, the private brokers, the webhook, the device load
//! and (for the disk-full scenario) a tmpfs `data_dir`; starting, killing and restarting the
//! daemon, stopping and starting a broker, and reading its API.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::common::*;
use super::devices::{ACCOUNTS, Ledger, Witness};
use super::sinks::Hook;

#[derive(Default)]
pub(crate) struct Setup {
    /// The upstream sink on its own broker (so it can be down while devices still publish).
    pub(crate) separate_upstream: bool,
    /// `data_dir` on a tmpfs of this many MiB.
    pub(crate) tmpfs_mib: Option<u32>,
    /// Appended to the config (`[[device]]`, `[[policy]]`).
    pub(crate) extra_config: &'static str,
    /// The file sink writes into `data_dir` (so it shares the journal's disk) instead of beside it.
    pub(crate) audit_in_data_dir: bool,
    /// The local API, for `/readyz` and `/metrics`.
    pub(crate) api: bool,
}

/// A tmpfs mounted for one test; unmounted when dropped.
pub(crate) struct TmpfsMount(pub(crate) PathBuf);

impl TmpfsMount {
    pub(crate) fn mount(at: &Path, mib: u32) -> Result<TmpfsMount, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0750"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(TmpfsMount(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Fields drop in order: the daemon first, then brokers and receivers, the mount, the directory.
pub(crate) struct World {
    pub(crate) gw: Gateway,
    pub(crate) hook: Hook,
    pub(crate) upstream: Upstream,
    pub(crate) broker: Mosquitto,
    pub(crate) up_broker: Option<Mosquitto>,
    pub(crate) ledger: Arc<Ledger>,
    /// What the ingress broker routed, whatever the devices' packet-id pairing saw.
    pub(crate) witness: Witness,
    pub(crate) dc09: SocketAddr,
    /// The file sink's JSON lines.
    pub(crate) audit: PathBuf,
    pub(crate) started: Instant,
    /// The local API's root URL and token, when the setup asked for it.
    pub(crate) api: Option<(String, String)>,
    /// Held for its `Drop` (unmount after the daemon is gone).
    pub(crate) _mount: Option<TmpfsMount>,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn gateway_config(
    dir: &Path,
    ingress_port: u16,
    upstream_port: u16,
    dc09: SocketAddr,
    hook_url: &str,
    audit: &Path,
    extra: &str,
) -> String {
    let accounts: Vec<String> = ACCOUNTS
        .iter()
        .map(|a| format!("{{ account = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"
timezone = "Europe/London"

[[adapter]]
name = "zigbee"
type = "mqtt"
host = "127.0.0.1"
port = {ingress_port}
topics = ["zigbee2mqtt/#", "dusun_pub"]
profiles = {PROFILES}
reconnect_min = "100ms"
reconnect_max = "1s"

[[adapter]]
name = "alarms"
type = "sia-dc09"
listen_tcp = "{dc09}"
accounts = [{accounts}]
# All panels share 127.0.0.1; retransmissions keep their first timestamp, so the window is wide.
per_peer_frames_per_sec = 1000000
per_peer_connections = 64
max_timestamp_age = "1h"

[[sink]]
name = "upstream"
type = "mqtt"
host = "127.0.0.1"
port = {upstream_port}
topic_prefix = "atgw/oakview"
reconnect_min = "100ms"
reconnect_max = "1s"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"
{hook}
[[route]]
name = "carers"
sinks = ["carers"]

[[policy]]
name = "alarms"
match = {{ priority = ["high"] }}
notify = ["carers"]
{extra}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        audit = audit.display(),
        accounts = accounts.join(", "),
        hook = webhook_sink(dir, "carers", hook_url),
    )
}

impl World {
    /// Brokers, receivers, then the daemon; returns once it has subscribed. `Err` only when
    /// the requested tmpfs cannot be mounted here.
    pub(crate) async fn start(setup: Setup) -> Result<World, String> {
        let dir = tempfile::tempdir().unwrap();
        let mount = match setup.tmpfs_mib {
            Some(mib) => Some(TmpfsMount::mount(&dir.path().join("state"), mib)?),
            None => None,
        };
        let broker = Mosquitto::start(&dir.path().join("broker"), "").unwrap();
        let up_broker = setup
            .separate_upstream
            .then(|| Mosquitto::start(&dir.path().join("upstream-broker"), "").unwrap());
        let up_port = up_broker.as_ref().map_or(broker.port, |b| b.port);
        let upstream = Upstream::start(up_port, "atgw/oakview/#").await;
        let witness = Witness::start(broker.port).await;
        let hook = Hook::start().await;
        let dc09 = SocketAddr::from(([127, 0, 0, 1], atgw::tools::mosquitto::free_port().unwrap()));
        let audit = match setup.audit_in_data_dir {
            true => dir.path().join("state/events.jsonl"),
            false => dir.path().join("events.jsonl"),
        };
        let (api_config, api) = match setup.api {
            true => {
                let (block, base, token) = api_block(dir.path());
                let root = base.trim_end_matches("/api/v1").to_owned();
                (block, Some((root, token)))
            }
            false => (String::new(), None),
        };
        let text = gateway_config(
            dir.path(),
            broker.port,
            up_port,
            dc09,
            &hook.url(),
            &audit,
            &format!("{}{api_config}", setup.extra_config),
        );
        let gw = tokio::task::block_in_place(|| Gateway::start(dir.path(), &text));
        gw.wait_subscribed().await;
        Ok(World {
            gw,
            hook,
            upstream,
            broker,
            up_broker,
            ledger: Arc::default(),
            witness,
            dc09,
            audit,
            started: Instant::now(),
            api,
            _mount: mount,
            dir,
        })
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.dir.path().join("state/atgw.db")
    }

    pub(crate) fn restart_gateway(&mut self) {
        tokio::task::block_in_place(|| self.gw.restart());
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = self.gw.log_text();
        let start = log.len().saturating_sub(6_000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        log[start..].to_owned()
    }
}

/// Fills `path`'s filesystem by appending to one file; returns the bytes written.
pub(crate) fn fill_filesystem(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    for size in [1 << 20, 64 << 10, 4 << 10, 512] {
        while let Ok(n) = f.write(&chunk[..size]) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
    }
    let _ = f.sync_all();
    written
}

impl World {
    /// `/readyz`: its HTTP status and whether it reports the journal ready.
    pub(crate) async fn journal_ready(&self) -> (u16, bool) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (root, _) = self.api.as_ref().expect("a setup with the API");
        let resp = reqwest::get(format!("{root}/readyz")).await.unwrap();
        let status = resp.status().as_u16();
        let report: Value = resp.json().await.unwrap_or_default();
        (status, report["components"]["journal"]["ready"] == true)
    }

    /// `atgw_journal_commit_failures_total` on `/metrics`.
    pub(crate) async fn commit_failures(&self) -> u64 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (root, token) = self.api.as_ref().expect("a setup with the API");
        let text = reqwest::Client::new()
            .get(format!("{root}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("atgw_journal_commit_failures_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}
