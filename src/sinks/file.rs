//! The `file` sink: CloudEvents as JSON lines, for audits and the demo. A batch of lines is
//! written, flushed and `fdatasync`ed before any of it is reported delivered. Files rotate by
//! size (`path.1` newest … `path.<keep>` oldest).
//!
//! Every line stays whole: a batch that fails part-way (disk full) is cut off again before it
//! is retried, and a torn last line left by a crash is ended before the next batch, so a retry
//! never glues its first event onto a fragment.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atgw_sdk::Health;
use atgw_sdk::component::{
    ComponentError, ConfigFile, FileRole, Invalid, Link, Sink, SinkContext, SinkTasks, Site,
};
use atgw_sdk::sink::{Outcome, SinkIo};
use serde::Deserialize;

/// `[[sink]] type = "file"`: JSON lines, rotated by size.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub name: String,
    /// The JSON-lines file; relative paths are relative to the config file's directory.
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Rotated files kept (`path.1` newest … `path.N` oldest).
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_rotate_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_keep() -> u32 {
    5
}

/// The file sink under the component contract.
pub struct FileSink {
    config: FileSinkConfig,
}

impl Sink for FileSink {
    const TYPE: &'static str = "file";
    type Config = FileSinkConfig;

    fn name(config: &FileSinkConfig) -> &str {
        &config.name
    }
    fn validate(config: &FileSinkConfig) -> Result<(), Invalid> {
        if config.rotate_bytes < 1024 {
            return Err(Invalid::new("rotate_bytes", "must be at least 1024"));
        }
        Ok(())
    }
    fn files(config: &mut FileSinkConfig) -> Vec<ConfigFile<'_>> {
        vec![ConfigFile {
            key: "path".into(),
            path: &mut config.path,
            role: FileRole::Output,
        }]
    }
    fn window(_: &FileSinkConfig) -> usize {
        BATCH
    }
    fn link(_: &FileSinkConfig) -> Link {
        Link::PerDelivery
    }
    fn check(config: &FileSinkConfig, _site: &Site) -> Result<Self, ComponentError> {
        Ok(FileSink {
            config: config.clone(),
        })
    }
    async fn start(self, ctx: SinkContext) -> Result<SinkTasks, ComponentError> {
        Ok(SinkTasks {
            output: Box::pin(run(self.config, ctx.io, ctx.health)),
            intake: Vec::new(),
        })
    }
}

/// Lines written per fsync at most.
const BATCH: usize = 512;

/// Runs the sink until the dispatcher closes its channel.
pub async fn run(cfg: FileSinkConfig, mut io: SinkIo, health: Arc<Health>) {
    let mut batch = Vec::with_capacity(BATCH);
    // A full disk fails every retry the same way: one line a minute says so.
    let limiter = atgw_sdk::ratelimit::LogLimiter::new(std::time::Duration::from_secs(60));
    while let Some(first) = io.deliveries.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match io.deliveries.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let lines: Vec<Arc<str>> = batch.iter().map(|d| d.json.clone()).collect();
        let cfg2 = cfg.clone();
        let result = tokio::task::spawn_blocking(move || append(&cfg2, &lines)).await;
        let ok = matches!(result, Ok(Ok(())));
        if ok {
            health.set_connected(true);
            health.delivered(batch.len() as u64);
        } else {
            let why = match result {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(())) => String::new(),
            };
            health.set_connected(false);
            health.error(format!("cannot write {}: {why}", cfg.path.display()));
            if let Some(suppressed) = limiter.allow("write") {
                tracing::warn!(
                    sink = %cfg.name,
                    suppressed,
                    "cannot write {}: {why}",
                    cfg.path.display()
                );
            }
        }
        for d in batch.drain(..) {
            let o = if ok {
                Outcome::Delivered(d.outbox_id)
            } else {
                Outcome::Retry {
                    outbox_id: d.outbox_id,
                    after: None,
                    reason: "file write failed".into(),
                }
            };
            let _ = io.outcomes.send(o);
        }
    }
}

fn append(cfg: &FileSinkConfig, lines: &[Arc<str>]) -> std::io::Result<()> {
    // Missing directories are created 750; a symlinked directory or file is refused (paths.rs).
    crate::paths::prepare_sink(&cfg.name, &cfg.path).map_err(std::io::Error::other)?;
    let incoming: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let current = std::fs::symlink_metadata(&cfg.path)
        .map(|m| m.len())
        .unwrap_or(0);
    if current > 0 && current + incoming > cfg.rotate_bytes {
        rotate(&cfg.path, cfg.keep)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).read(true).append(true);
    // Every event, residents' included: a new file is for atgw alone, whatever the umask.
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = crate::paths::no_follow(&mut options).open(&cfg.path)?;
    let start = f.metadata()?.len();
    let mut buf = Vec::with_capacity(incoming as usize + 1);
    // A torn last line is from a batch never reported delivered (it comes again): end it.
    if start > 0 && !ends_with_newline(&mut f)? {
        buf.push(b'\n');
    }
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    if let Err(e) = f.write_all(&buf).and_then(|()| f.sync_data()) {
        // Take back what part of the batch got written, so the retry starts on a line of its own.
        let _ = f.set_len(start);
        return Err(e);
    }
    Ok(())
}

fn ends_with_newline(f: &mut File) -> std::io::Result<bool> {
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    if keep == 0 {
        return crate::paths::create_file(path, 0o600).map(|_| ());
    }
    let _ = std::fs::remove_file(rotated(path, keep));
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_files() {
        let d = tempfile::tempdir().unwrap();
        let cfg = FileSinkConfig {
            name: "audit".into(),
            path: d.path().join("events.jsonl"),
            rotate_bytes: 1024,
            keep: 2,
        };
        let line: Arc<str> = Arc::from("x".repeat(600));
        for _ in 0..5 {
            append(&cfg, std::slice::from_ref(&line)).unwrap();
        }
        assert!(cfg.path.exists());
        assert!(rotated(&cfg.path, 1).exists());
        assert!(rotated(&cfg.path, 2).exists());
        assert!(!rotated(&cfg.path, 3).exists());
    }

    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_batchs_first_line() {
        let d = tempfile::tempdir().unwrap();
        let cfg = FileSinkConfig {
            name: "audit".into(),
            path: d.path().join("events.jsonl"),
            rotate_bytes: 1 << 20,
            keep: 1,
        };
        // What a crash in the middle of a write leaves behind.
        std::fs::write(&cfg.path, "{\"id\":\"a\"}\n{\"id\":\"b").unwrap();
        append(
            &cfg,
            &[Arc::from("{\"id\":\"c\"}"), Arc::from("{\"id\":\"d\"}")],
        )
        .unwrap();
        let text = std::fs::read_to_string(&cfg.path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "{\"id\":\"a\"}",
                "{\"id\":\"b",
                "{\"id\":\"c\"}",
                "{\"id\":\"d\"}"
            ]
        );
        append(&cfg, &[Arc::from("{\"id\":\"e\"}")]).unwrap();
        assert!(
            std::fs::read_to_string(&cfg.path)
                .unwrap()
                .ends_with("{\"id\":\"d\"}\n{\"id\":\"e\"}\n"),
            "a whole file gets no blank line"
        );
    }
}
