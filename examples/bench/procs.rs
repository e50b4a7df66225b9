//! The processes the suite starts and measures: its own `redis-server` and the onedyno binary.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// CPU seconds (user + system) a process has used, from `/proc/{pid}/stat`.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(Path::new(&format!("/proc/{pid}/stat")))
}

/// CPU seconds so far of each of a process's threads, summed by thread name (tokio's threads of
/// one runtime share a name), from `/proc/{pid}/task/*`. The process's CPU per job, split this
/// way, shows which thread carries it: the one that talks to Redis and runs the runners, the job
/// threads, or the log writer. Threads that exited are not counted.
pub(crate) fn cpu_by_thread(pid: u32) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let cpu = stat_cpu_seconds(&path.join("stat"));
        *by_name.entry(name.trim().to_string()).or_insert(0.0) += cpu;
    }
    by_name
}

/// utime + stime of a `/proc` `stat` file, in seconds.
fn stat_cpu_seconds(path: &Path) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the command and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// How often the threads of a process have gone to sleep so far (`voluntary_ctxt_switches`,
/// summed over `/proc/{pid}/task/*/status`): each is a later wake-up, which another thread or the
/// kernel paid for. On a virtual machine a wake-up of an idle CPU costs tens of µs of CPU time,
/// so a low rate of jobs pays for its wake-ups more than for its work. Threads that exited are
/// not counted: compare readings over a stretch in which the process keeps its threads.
pub(crate) fn sleeps(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The most resident memory a process has had, in KiB (`VmHWM`).
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A `redis-server` of the suite's own, stopped on drop.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Redis {
    pub(crate) fn start() -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("onedyno-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server)");
        let redis = Redis { child, port, dir };
        let until = Instant::now() + Duration::from_secs(10);
        while redis.conn_maybe().is_none() {
            assert!(Instant::now() < until, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn conn_maybe(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_connection().ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    pub(crate) fn conn(&self) -> redis::Connection {
        self.conn_maybe().expect("redis connection")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `INFO` as a number.
    pub(crate) fn info(&self, section: &str, field: &str) -> f64 {
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn())
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Bytes Redis holds for data: `used_memory` less the script cache and the clients' buffers,
    /// which grow with the processes that connect and the scripts they load, not with the jobs.
    pub(crate) fn data_bytes(&self) -> f64 {
        self.info("memory", "used_memory")
            - self.info("memory", "used_memory_scripts")
            - self.info("memory", "mem_clients_normal")
    }

    /// Scripts run so far (EVALSHA and EVAL calls, from `INFO commandstats`).
    pub(crate) fn script_calls(&self) -> f64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn())
            .expect("INFO commandstats");
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .sum()
    }

    pub(crate) fn flush(&self) {
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut self.conn())
            .expect("FLUSHALL");
    }

    /// Jobs waiting in `default` or held in any in-flight list.
    pub(crate) fn unfinished(&self) -> u64 {
        // The `default` queue's shard (`{onedyno:sbde}`): its list, and the in-flight list of
        // each process registered there. No KEYS scan: it would cost Redis time per poll in
        // proportion to the jobs stored, and show up in the Redis CPU per job.
        let script = redis::Script::new(
            "local n = redis.call('LLEN', KEYS[1]) \
             for _, p in ipairs(redis.call('SMEMBERS', KEYS[2])) do \
               n = n + redis.call('LLEN', ARGV[1] .. p) end \
             return n",
        );
        script
            .key("{onedyno:sbde}:queue:default")
            .key("{onedyno:sbde}:processes")
            .arg("{onedyno:sbde}:inflight:")
            .invoke(&mut self.conn())
            .expect("count")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One onedyno process, stopped with SIGTERM on drop.
pub(crate) struct App {
    child: Child,
    pub(crate) port: u16,
}

impl App {
    /// Starts `binary` against `redis` with `env`; waits for `/health` (or, without HTTP, for
    /// the process to be up a moment).
    pub(crate) fn start(binary: &Path, redis: &Redis, env: &[(&str, &str)]) -> App {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("the onedyno binary");
        App { child, port }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `GET /health` answers.
    pub(crate) fn wait_healthy(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        let client = reqwest::blocking::Client::new();
        while client.get(self.url("/health")).send().is_err() {
            assert!(Instant::now() < until, "onedyno never answered /health");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The release binary next to this example (`target/release/onedyno`), or `$ONEDYNO_BIN`
/// (to compare two builds).
pub(crate) fn onedyno_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ONEDYNO_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let binary = dir.join("onedyno");
    assert!(
        binary.exists(),
        "{} not found: run `cargo build --release` first",
        binary.display()
    );
    binary
}
