//! A private Mosquitto broker as a child process, for `atgw demo`, the end-to-end tests and the
//! benchmarks: its own config on a free loopback port, its own persistence directory, and
//! stop/start/kill so broker outages can be staged. Not used by `atgw run`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian and most distributions install the broker.
const CANDIDATES: &[&str] = &[
    "/usr/sbin/mosquitto",
    "/usr/bin/mosquitto",
    "/usr/local/sbin/mosquitto",
];

/// Finds the `mosquitto` binary on PATH or in the usual places.
pub fn find() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("mosquitto");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1 (bind to 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running private broker.
pub struct Mosquitto {
    binary: PathBuf,
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// In a process group of its own (see [`Mosquitto::start_own_process_group`]).
    own_group: bool,
}

impl Mosquitto {
    /// Starts a broker with persistence in `dir` on a free port; `extra` lines go into its config.
    pub fn start(dir: &Path, extra: &str) -> std::io::Result<Mosquitto> {
        Self::start_with(dir, "", extra)
    }

    /// As [`Mosquitto::start`], with `global` lines placed before the first listener (e.g.
    /// `per_listener_settings true`, then `extra` may define more listeners with their own
    /// TLS and authentication).
    pub fn start_with(dir: &Path, global: &str, extra: &str) -> std::io::Result<Mosquitto> {
        Self::launch(dir, global, extra, false)
    }

    /// As [`Mosquitto::start`], in a process group of its own: a terminal's Ctrl-C then reaches
    /// only the caller, which stops the broker after its clients are done with it (`atgw demo`
    /// drains the gateway before the broker goes). Tests keep the shared group, so that
    /// interrupting them takes their brokers down too.
    pub fn start_own_process_group(dir: &Path) -> std::io::Result<Mosquitto> {
        Self::launch(dir, "", "", true)
    }

    fn launch(
        dir: &Path,
        global: &str,
        extra: &str,
        own_group: bool,
    ) -> std::io::Result<Mosquitto> {
        let binary = find().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "mosquitto is not installed (apt-get install mosquitto)",
            )
        })?;
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let mut m = Mosquitto {
            binary,
            dir: dir.to_path_buf(),
            port,
            child: None,
            own_group,
        };
        m.write_config(global, extra)?;
        m.spawn()?;
        Ok(m)
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("mosquitto.conf")
    }

    fn write_config(&self, global: &str, extra: &str) -> std::io::Result<()> {
        // max_queued_messages 0: an offline persistent session must not lose a backlog (the
        // default of 1000 silently drops the rest). set_tcp_nodelay: see DESIGN §11.
        // `user root`: started as root, mosquitto would switch to its own user and could then
        // write neither its log nor its persistence file in our directory (no effect otherwise).
        let conf = format!(
            "{global}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {dir}/\n\
             autosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 100\nset_tcp_nodelay true\n\
             log_dest file {dir}/mosquitto.log\nuser root\n{extra}\n",
            port = self.port,
            dir = self.dir.display(),
        );
        std::fs::write(self.conf_path(), conf)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd.spawn()?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, within: Duration) -> std::io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while start.elapsed() < within {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(std::io::Error::other(format!(
                    "mosquitto exited ({status}); see {}",
                    self.dir.join("mosquitto.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "mosquitto did not start listening",
        ))
    }

    /// Graceful stop (SIGTERM via `kill`), so it saves its persistence file.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same persistence.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
