//! A `redis-server` of the run's own with the append-only file on, on a free loopback port in a
//! temp dir, that can be killed and started again on the same port and data; killed on drop.
//!
//! `appendfsync always`: Redis fsyncs the AOF before it answers a write, so a job whose `202`
//! was sent is on disk whatever is killed afterwards, the machine included. (`everysec` would
//! also survive a killed `redis-server`, since Redis hands the write to the kernel before it
//! answers and only the fsync is deferred; it could lose the last second only if the machine
//! itself went down. The run claims "no accepted job lost", so it takes the setting that makes
//! the claim hold without that footnote; on loopback and a few thousand jobs a second the cost
//! does not matter.)

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A restartable `redis-server` with AOF.
pub(crate) struct AofRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

impl AofRedis {
    /// Starts a fresh server on a free port, with the AOF when `aof` (the soak leaves it off:
    /// it measures onedyno, not the disk); panics when `redis-server` cannot be started.
    pub(crate) fn start(aof: bool) -> AofRedis {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("no free port");
            let dir = tempfile::tempdir().expect("temp dir");
            let mut redis = AofRedis {
                child: None,
                port,
                dir,
                aof,
            };
            if redis.spawn() {
                return redis;
            }
        }
        panic!("could not start redis-server (is it installed?)");
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendfsync", "always"])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on the PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            if Instant::now() >= deadline {
                self.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// True when the server answers `PING` (it also answers `LOADING` while it reads the AOF,
    /// which is an error here, so a restarted server counts as up only once it is loaded).
    fn answers(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    /// SIGKILL: no goodbye to clients and no final save, only what the AOF already holds.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server, waits `down` and starts it again on the same port from its AOF;
    /// panics when it does not come back.
    pub(crate) fn restart(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        assert!(
            self.spawn(),
            "redis-server did not come back on {}",
            self.port
        );
    }

    /// `redis://127.0.0.1:port`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (0 when it is down).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Drop for AofRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
