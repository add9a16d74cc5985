//! The `file` sink: CloudEvents as JSON lines, for audits and the demo. A batch of lines is
//! written, flushed and `fdatasync`ed before any of it is reported delivered. Files rotate by
//! size (`path.1` newest … `path.<keep>` oldest).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atgw_sdk::Health;
use atgw_sdk::sink::{Outcome, SinkIo};

use crate::config::FileSinkConfig;

/// Lines written per fsync at most.
const BATCH: usize = 512;

/// Runs the sink until the dispatcher closes its channel.
pub async fn run(cfg: FileSinkConfig, mut io: SinkIo, health: Arc<Health>) {
    let mut batch = Vec::with_capacity(BATCH);
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
            tracing::warn!(sink = %cfg.name, "cannot write {}: {why}", cfg.path.display());
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
    if let Some(dir) = cfg.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let incoming: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let current = std::fs::metadata(&cfg.path).map(|m| m.len()).unwrap_or(0);
    if current > 0 && current + incoming > cfg.rotate_bytes {
        rotate(&cfg.path, cfg.keep)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Every event, residents' included: a new file is for atgw alone, whatever the umask.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&cfg.path)?;
    let mut buf = Vec::with_capacity(incoming as usize);
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    f.write_all(&buf)?;
    f.sync_data()
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    if keep == 0 {
        return File::create(path).map(|_| ());
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
}
