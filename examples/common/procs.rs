//! The onedyno processes the examples start (the release binary), and what `/proc` says about
//! a process: resident memory and open file descriptors.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One running onedyno process; SIGKILLed on drop.
pub(crate) struct Onedyno {
    child: Child,
    port: u16,
}

impl Onedyno {
    /// Starts `binary` against `redis_url` with the demo kinds and `env`, its log (warnings and
    /// errors) appended to `log`, and waits until `GET /health` answers `200` (Redis reached);
    /// `None` if it does not within 30 s.
    pub(crate) fn start(
        binary: &Path,
        redis_url: &str,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Option<Onedyno> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("REDIS_URL", redis_url)
            .env("DEMO_KINDS", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone().ok()?))
            .stderr(Stdio::from(log));
        for (k, v) in env {
            command.env(k, v);
        }
        let process = Onedyno {
            child: command.spawn().ok()?,
            port,
        };
        process
            .wait_healthy(Duration::from_secs(30))
            .then_some(process)
    }

    fn wait_healthy(&self, timeout: Duration) -> bool {
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let res = client
                .get(format!("http://127.0.0.1:{}/health", self.port))
                .send();
            if res.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Its HTTP port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait up to `timeout` for the drain to end; SIGKILL after that. True when it
    /// exited by itself.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> bool {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }
}

impl Drop for Onedyno {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The release binary next to the example (`target/release/onedyno`), or `$ONEDYNO_BIN`.
pub(crate) fn onedyno_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ONEDYNO_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let binary = dir.join("onedyno");
    if !binary.exists() {
        eprintln!(
            "{} not found: run `cargo build --release` first",
            binary.display()
        );
        std::process::exit(2);
    }
    binary
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/{pid}/status`), 0 if unreadable.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process (entries of `/proc/{pid}/fd`), 0 if unreadable.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}
