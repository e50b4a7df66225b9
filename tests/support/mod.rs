//! Test support: a `redis-server` of the test's own on a free loopback port, and the real
//! `onedyno` binary started against it, with HTTP helpers and real signals.
//!
//! Every loop here is bounded by a deadline, so a broken build fails a test instead of hanging it.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod smtp_server;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

/// The crate's key names under the prefix the tests use (`REDIS_PREFIX` is left at its default).
pub fn keys() -> onedyno::queue::Keys {
    onedyno::queue::Keys::new("onedyno")
}

/// The shard of the `default` queue, where the tests' jobs go unless they name a queue.
pub fn default_shard() -> onedyno::queue::Shard {
    keys().for_queue("default")
}

/// A `KEYS` pattern for the keys called `name` (itself a pattern) in every shard, the legacy
/// one included: `{onedyno}:name` and `{onedyno:sXXX}:name`.
pub fn in_every_shard(name: &str) -> String {
    format!("{{onedyno*}}:{name}")
}

/// A port that was free a moment ago (for `redis-server`; the app itself binds `PORT=0`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Polls `check` every 25 ms until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// A `redis-server` of this test's own, in a temp dir, killed on drop.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a fresh server on a free port.
    pub fn start() -> Redis {
        for _ in 0..5 {
            let mut redis = Redis::not_started();
            if redis.spawn() {
                return redis;
            }
        }
        panic!("could not start redis-server (is it installed?)");
    }

    /// A server that is not running yet, on a port reserved for it.
    pub fn not_started() -> Redis {
        Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            // DEBUG SLEEP lets a test make Redis stop answering without closing connections.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let up = eventually(Duration::from_secs(5), || {
            let mut conn = redis::Client::open(self.url())
                .ok()?
                .get_connection()
                .ok()?;
            redis::cmd("PING").query::<String>(&mut conn).ok()
        })
        .is_some();
        if !up {
            self.stop();
        }
        up
    }

    /// Starts the server (again) on its port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        assert!(
            self.spawn(),
            "redis-server did not come back on port {}",
            self.port
        );
    }

    /// Freezes the server for `pause` (SIGSTOP, then SIGCONT): connections stay open and every
    /// command waits unanswered, as with a stalled host; nothing is lost.
    pub fn freeze_for(&self, pause: Duration) {
        let pid = Pid::from_raw(self.child.as_ref().expect("running").id() as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP redis-server");
        thread::sleep(pause);
        kill(pid, Signal::SIGCONT).expect("SIGCONT redis-server");
    }

    /// Kills the server (SIGKILL: no goodbye to clients, nothing saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain connection, to look at keys directly.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `onedyno` binary, running, with its log captured; killed on drop.
pub struct App {
    child: Child,
    /// The port the app logged in `app.started`, read on first use.
    port: OnceLock<u16>,
    logs: Arc<Mutex<Vec<String>>>,
    client: Client,
    name: String,
}

/// An HTTP client with a bounded timeout.
pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
}

impl App {
    /// Starts the binary against `redis_url` with `env` on top of a clean environment, and
    /// waits until its port accepts connections.
    pub fn start(redis_url: &str, env: &[(&str, &str)]) -> App {
        let app = App::spawn(redis_url, env);
        let port = app.port();
        let accepting = eventually(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(
            accepting.is_some(),
            "app did not bind {port}:\n{}",
            app.logs()
        );
        app
    }

    /// Starts the binary and waits until its workers have registered with Redis.
    pub fn start_ready(redis_url: &str, env: &[(&str, &str)]) -> App {
        let app = App::start(redis_url, env);
        app.wait_for_log("event=worker.registered", Duration::from_secs(10));
        app
    }

    /// Starts a web-only process (`WORKER_CONCURRENCY=0`) and waits until it reaches Redis.
    pub fn start_web_only(redis_url: &str) -> App {
        App::start_web_only_with(redis_url, &[])
    }

    /// [`App::start_web_only`] with `env` on top.
    pub fn start_web_only_with(redis_url: &str, env: &[(&str, &str)]) -> App {
        let env: Vec<_> = [("WORKER_CONCURRENCY", "0")]
            .into_iter()
            .chain(env.iter().copied())
            .collect();
        let app = App::start(redis_url, &env);
        let healthy = eventually(Duration::from_secs(10), || {
            (app.get("/health").0 == StatusCode::OK).then_some(())
        });
        assert!(healthy.is_some(), "never healthy:\n{}", app.logs());
        app
    }

    /// Starts the binary without waiting for anything. The demo kinds are on (`DEMO_KINDS=true`)
    /// since most tests use them; `("DEMO_KINDS", "")` in `env` turns them off again.
    pub fn spawn(redis_url: &str, env: &[(&str, &str)]) -> App {
        let mut command = Command::new(env!("CARGO_BIN_EXE_onedyno"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // Any free port; the app logs the one it bound, so no other process can take it first.
            .env("PORT", "0")
            .env("REDIS_URL", redis_url)
            .env("RUST_LOG", "info")
            // Tests read `job.started` lines; the default logs only `job.finished`.
            .env("JOB_LOG", "all")
            .env("WEB_CONCURRENCY", "2")
            .env("DEMO_KINDS", "true");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start onedyno");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let name = format!("onedyno[{}]", child.id());
        App {
            child,
            port: OnceLock::new(),
            logs,
            client: client(),
            name,
        }
    }

    /// The HTTP port, from the `app.started` line (waited for, up to 10 s).
    pub fn port(&self) -> u16 {
        *self.port.get_or_init(|| {
            self.logged_port(Duration::from_secs(10))
                .unwrap_or_else(|| {
                    panic!("{}: no port in app.started:\n{}", self.name, self.logs())
                })
        })
    }

    /// Waits up to `timeout` for the `app.started` line and returns the port it names, if any
    /// (`None` for a worker-only process, or one that never started).
    pub fn logged_port(&self, timeout: Duration) -> Option<u16> {
        if let Some(port) = self.port.get() {
            return Some(*port);
        }
        let line = eventually(timeout, || {
            self.log_lines("event=app.started").into_iter().next()
        })?;
        line.split_whitespace()
            .find_map(|field| field.strip_prefix("port="))
            .and_then(|port| port.parse().ok())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits until a log line contains `needle`; panics with the log otherwise.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let found = eventually(timeout, || {
            (!self.log_lines(needle).is_empty()).then_some(())
        });
        assert!(
            found.is_some(),
            "{}: no log line with {needle:?}:\n{}",
            self.name,
            self.logs()
        );
    }

    /// Sends a real signal.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send signal");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// POST /jobs with a JSON body; returns status, headers' Location, and body.
    pub fn enqueue(&self, body: &Value) -> (StatusCode, Option<String>, Value) {
        self.enqueue_with(body, &[])
    }

    /// POST /jobs with extra headers.
    pub fn enqueue_with(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, Value) {
        let mut req = self.client.post(self.url("/jobs")).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().expect("POST /jobs");
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.json().unwrap_or(Value::Null);
        (status, location, body)
    }

    /// POST /jobs that must be accepted; returns the job's id.
    pub fn enqueue_ok(&self, body: &Value) -> String {
        let (status, _, job) = self.enqueue(body);
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        job["id"].as_str().expect("id").to_string()
    }

    /// GET a path; returns status and JSON body (Null when not JSON).
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.client.get(self.url(path)).send().expect("GET");
        let status = res.status();
        (status, res.json().unwrap_or(Value::Null))
    }

    /// A counter of `GET /queues` (`scheduled`, `retrying`, `dead`, `processes`).
    pub fn queue_counter(&self, name: &str) -> u64 {
        let (status, queues) = self.get("/queues");
        assert_eq!(status, StatusCode::OK, "{queues}");
        queues[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {queues}"))
    }

    /// GET /jobs/{id}, which must exist.
    pub fn job(&self, id: &str) -> Value {
        let (status, job) = self.get(&format!("/jobs/{id}"));
        assert_eq!(status, StatusCode::OK, "GET /jobs/{id}: {job}");
        job
    }

    /// Waits until the job has `status`; returns it.
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let found = eventually(timeout, || {
            let (code, job) = self.get(&format!("/jobs/{id}"));
            last = job.clone();
            (code == StatusCode::OK && job["status"] == status).then_some(job)
        });
        found.unwrap_or_else(|| {
            panic!(
                "job {id} never became {status}; last seen {last}\n{}",
                self.logs()
            )
        })
    }

    /// DELETE /jobs/{id} (cancel); returns status and JSON body.
    pub fn cancel(&self, id: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .delete(self.url(&format!("/jobs/{id}")))
            .send()
            .expect("DELETE /jobs/{id}");
        let status = res.status();
        (status, res.json().unwrap_or(Value::Null))
    }

    /// POST /jobs/{id}/retry; returns status and JSON body.
    pub fn retry(&self, id: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url(&format!("/jobs/{id}/retry")))
            .send()
            .expect("POST /jobs/{id}/retry");
        let status = res.status();
        (status, res.json().unwrap_or(Value::Null))
    }

    /// GET /jobs?status={status}{query}, e.g. `list("dead", "&limit=5")`; returns status and body.
    pub fn list(&self, status: &str, query: &str) -> (StatusCode, Value) {
        self.get(&format!("/jobs?status={status}{query}"))
    }

    /// The ids `GET /jobs?status={status}` lists, in its order; the request must succeed.
    pub fn list_ids(&self, status: &str) -> Vec<String> {
        let (code, body) = self.list(status, "");
        assert_eq!(code, StatusCode::OK, "{body}");
        body["jobs"]
            .as_array()
            .unwrap_or_else(|| panic!("no jobs list: {body}"))
            .iter()
            .map(|j| j["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// A request builder for anything else.
    pub fn http(&self) -> &Client {
        &self.client
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, self.logs());
        }
    }
}

/// Reads a job hash straight from Redis (the test's own view, bypassing the app). `field` is
/// the record's long name; the hash stores the hot fields under one-letter names
/// (`src/queue/scripts/prelude.lua`), and records from before under the long ones.
pub fn job_field(conn: &mut redis::Connection, id: &str, field: &str) -> Option<String> {
    let short = match field {
        "kind" => "k",
        "queue" => "q",
        "args" => "a",
        "status" => "s",
        "attempts" => "n",
        "failures" => "x",
        "max_attempts" => "m",
        "timeout_ms" => "T",
        "created_at" => "c",
        "run_at" => "r",
        "enqueued_at" => "e",
        "started_at" => "t",
        "finished_at" => "f",
        "lease" => "L",
        "owner" => "o",
        "result" => "R",
        other => other,
    };
    let (new, old): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(job_key(id))
        .arg(short)
        .arg(field)
        .query(conn)
        .expect("HMGET");
    new.or(old)
}

/// The ids in a process's in-flight lists, across all processes.
pub fn inflight_ids(conn: &mut redis::Connection) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(in_every_shard("inflight:*"))
        .query(conn)
        .expect("KEYS");
    keys.iter()
        .flat_map(|k| {
            redis::cmd("LRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .query::<Vec<String>>(conn)
                .expect("LRANGE")
        })
        .collect()
}

/// Length of a queue's ready list.
pub fn queue_len(conn: &mut redis::Connection, queue: &str) -> usize {
    redis::cmd("LLEN")
        .arg(keys().queue(queue))
        .query(conn)
        .expect("LLEN")
}

/// Waits until `queue` is empty and no process holds a job: whatever was enqueued by then has
/// been fetched (run or skipped) and finished. Proves "nothing more will happen" without a sleep.
#[track_caller]
pub fn wait_idle(conn: &mut redis::Connection, queue: &str) {
    let idle = eventually(Duration::from_secs(10), || {
        (queue_len(conn, queue) == 0 && inflight_ids(conn).is_empty()).then_some(())
    });
    assert!(idle.is_some(), "queue {queue} never became idle");
}

/// Fast retries for tests: about 0.2 s, 0.4 s, 0.8 s, capped at 1 s.
pub const FAST_BACKOFF: [(&str, &str); 2] =
    [("RETRY_BACKOFF_BASE", "0.2"), ("RETRY_BACKOFF_MAX", "1")];

/// An RFC 3339 time from the API as ms since the epoch.
pub fn ms(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"))
        .timestamp_millis()
}

/// The Redis key of a job's record.
pub fn job_key(id: &str) -> String {
    keys().job(id)
}

/// Asserts an API error: the status, and the JSON body's `error.code`; returns the message.
#[track_caller]
pub fn assert_error(
    status: StatusCode,
    body: &Value,
    expected_status: StatusCode,
    expected_code: &str,
) -> String {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], expected_code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "no error message in {body}");
    message.to_string()
}

/// Whether a key exists.
pub fn exists(conn: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(conn)
        .expect("EXISTS")
        == 1
}

/// Sends SIGTERM.
pub const SIGTERM: Signal = Signal::SIGTERM;
/// Sends SIGKILL.
pub const SIGKILL: Signal = Signal::SIGKILL;
/// Sends SIGHUP.
pub const SIGHUP: Signal = Signal::SIGHUP;

/// What came back on a raw connection: everything read, and whether the server closed it.
#[derive(Debug)]
pub struct RawResponse {
    /// The bytes read, as text.
    pub text: String,
    /// The server closed the connection (EOF) before `wait` ran out.
    pub closed: bool,
}

impl RawResponse {
    /// The status code of the first response, if one came.
    pub fn status(&self) -> Option<u16> {
        self.text
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| self.text.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
    }

    /// The status of the first response; panics when none came.
    #[track_caller]
    pub fn status_code(&self) -> StatusCode {
        self.status()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or_else(|| panic!("no response: {self:?}"))
    }

    /// The value of a response header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// The body of the first response.
    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.body()).unwrap_or(Value::Null)
    }
}

/// Sends `request` as-is on a new loopback connection (the write half stays open), then reads
/// until the server closes or `wait` passes.
pub fn raw_exchange(port: u16, request: &[u8], wait: Duration) -> RawResponse {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(request).expect("write request");
    let deadline = Instant::now() + wait;
    let mut bytes = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        stream
            .set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    RawResponse {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        closed,
    }
}

impl Redis {
    /// Starts a fresh server that refuses every command until `AUTH password`, so clients
    /// without the password get `NOAUTH` errors.
    pub fn start_with_password(password: &str) -> Redis {
        for _ in 0..5 {
            let mut redis = Redis::not_started();
            let child = Command::new("redis-server")
                .args(["--port", &redis.port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--requirepass", password])
                .arg("--dir")
                .arg(redis.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            redis.child = Some(child);
            let authed = format!("redis://:{password}@127.0.0.1:{}", redis.port);
            let up = eventually(Duration::from_secs(5), || {
                let mut conn = redis::Client::open(authed.as_str())
                    .ok()?
                    .get_connection()
                    .ok()?;
                redis::cmd("PING").query::<String>(&mut conn).ok()
            });
            if up.is_some() {
                return redis;
            }
            redis.stop();
        }
        panic!("could not start redis-server with a password");
    }
}
