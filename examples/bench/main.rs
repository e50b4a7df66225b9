//! The benchmark suite: starts its own `redis-server` and the release binary, and reports what
//! issue-level performance is judged by: enqueue (single and bulk), drain, produce-and-consume,
//! enqueue-to-start latency, Redis bytes per queued and finished job, CPU per job, RSS, and the
//! web's p99 idle vs with every worker slot busy.
//!
//! ```text
//! cargo build --release && cargo run --release --example bench
//! cargo run --release --example bench -- --jobs 20000     # fewer jobs for a quick look
//! ```
//!
//! Figures from a shared or busy machine move a lot: compare runs made back to back, and read
//! CPU per job (steadier than jobs/s). For onedyno beside BullMQ and others on the same Redis,
//! use `../shared/bench` (see the README's Benchmark section).

mod procs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use procs::{App, Redis, cpu_by_thread, cpu_seconds, onedyno_binary, peak_rss_kib, sleeps};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// Sends `total` POST /jobs bodies from `inflight` threads; returns each request's latency.
fn post_all(
    app: &App,
    bodies: impl Fn(usize) -> Value + Sync,
    total: usize,
    inflight: usize,
) -> Vec<Duration> {
    let client = Client::builder().tcp_nodelay(true).build().expect("client");
    let next = AtomicUsize::new(0);
    let url = app.url("/jobs");
    let mut latencies = Vec::with_capacity(total);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..inflight)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return mine;
                        }
                        let started = Instant::now();
                        let res = client
                            .post(&url)
                            .json(&bodies(i))
                            .send()
                            .expect("POST /jobs");
                        assert!(res.status().is_success(), "POST /jobs: {}", res.status());
                        let _ = res.bytes();
                        mine.push(started.elapsed());
                    }
                })
            })
            .collect();
        for w in workers {
            latencies.extend(w.join().expect("poster"));
        }
    });
    latencies
}

fn percentile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort_unstable();
    if latencies.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1000.0
}

/// Waits until nothing is waiting or in flight; returns when that was seen.
fn wait_drained(redis: &Redis) -> Instant {
    let until = Instant::now() + Duration::from_secs(600);
    while redis.unfinished() > 0 {
        assert!(Instant::now() < until, "jobs never drained");
        std::thread::sleep(Duration::from_millis(5));
    }
    Instant::now()
}

fn batch(n: usize) -> Value {
    Value::Array(vec![json!({"kind": "noop"}); n])
}

/// CPU of Redis and of a process over a measured stretch, per job, in µs, the process's split by
/// thread, the scripts Redis ran per job, and how often each went to sleep per job (see
/// [`sleeps`]).
struct Cpu {
    redis: f64,
    app: f64,
    threads: BTreeMap<String, f64>,
    scripts: f64,
    redis_sleeps: u64,
    app_sleeps: u64,
    pid: u32,
}

impl Cpu {
    fn start(redis: &Redis, pid: u32) -> Cpu {
        Cpu {
            redis: cpu_seconds(redis.pid()),
            app: cpu_seconds(pid),
            threads: cpu_by_thread(pid),
            scripts: redis.script_calls(),
            redis_sleeps: sleeps(redis.pid()),
            app_sleeps: sleeps(pid),
            pid,
        }
    }

    fn per_job(&self, redis: &Redis, jobs: usize) -> String {
        let us = |s: f64| s / jobs as f64 * 1e6;
        let each = |n: u64, since: u64| n.saturating_sub(since) as f64 / jobs as f64;
        // Threads that used under half a µs per job are left out: the line stays readable.
        let by_thread: Vec<String> = cpu_by_thread(self.pid)
            .into_iter()
            .map(|(name, cpu)| {
                let before = self.threads.get(&name).copied().unwrap_or(0.0);
                (name, us(cpu - before))
            })
            .filter(|(_, per_job)| *per_job >= 0.5)
            .map(|(name, per_job)| format!("{name} {per_job:.0}"))
            .collect();
        format!(
            "Redis {:.0} µs/job, onedyno {:.0} µs/job ({}), {:.2} script calls/job, sleeps/job Redis {:.2}, onedyno {:.2}",
            us(cpu_seconds(redis.pid()) - self.redis),
            us(cpu_seconds(self.pid) - self.app),
            by_thread.join(", "),
            (redis.script_calls() - self.scripts) / jobs as f64,
            each(sleeps(redis.pid()), self.redis_sleeps),
            each(sleeps(self.pid), self.app_sleeps)
        )
    }
}

fn enqueue_cases(binary: &std::path::Path, redis: &Redis, jobs: usize) {
    redis.flush();
    let web = App::start(binary, redis, &[("WORKER_CONCURRENCY", "0")]);
    web.wait_healthy();
    let cpu = Cpu::start(redis, web.pid());
    let started = Instant::now();
    let mut lat = post_all(&web, |_| json!({"kind": "noop"}), jobs, 50);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "enqueue, POST /jobs, 50 in flight   {:>8.0} jobs/s  p50 {:.2} ms  p99 {:.2} ms  ({})",
        jobs as f64 / secs,
        percentile_ms(&mut lat, 50.0),
        percentile_ms(&mut lat, 99.0),
        cpu.per_job(redis, jobs)
    );
    redis.flush();
    let batches = (jobs / 1000).max(1);
    let cpu = Cpu::start(redis, web.pid());
    let started = Instant::now();
    post_all(&web, |_| batch(1000), batches, 4);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bulk enqueue, 1000 a POST, 4 in flight {:>6.0} jobs/s  ({})",
        (batches * 1000) as f64 / secs,
        cpu.per_job(redis, batches * 1000)
    );
    println!(
        "web-only process peak RSS {:.1} MiB (both enqueue cases)",
        peak_rss_kib(web.pid()) as f64 / 1024.0
    );
}

fn memory_and_drain(binary: &std::path::Path, redis: &Redis, jobs: usize) {
    redis.flush();
    let web = App::start(binary, redis, &[("WORKER_CONCURRENCY", "0")]);
    web.wait_healthy();
    // A warm-up round first, then the data goes: what Redis spends once (the scripts each
    // process loads, Lua's heap) is not a cost per job, and would be counted as one.
    post_all(&web, |_| batch(1000), 1, 1);
    let warm = App::start(
        binary,
        redis,
        &[("ROLE", "worker"), ("WORKER_CONCURRENCY", "50")],
    );
    wait_drained(redis);
    drop((warm, web));
    let (queued, finished) = bytes_per_job(binary, redis);
    println!("Redis bytes per job (10k noop)      queued {queued:.0} B, finished {finished:.0} B");
    let web = App::start(binary, redis, &[("WORKER_CONCURRENCY", "0")]);
    web.wait_healthy();
    redis.flush();
    post_all(&web, |_| batch(1000), (jobs / 1000).max(1), 2);
    let total = (jobs / 1000).max(1) * 1000;
    drop(web);
    let spawned = Instant::now();
    let worker = App::start(
        binary,
        redis,
        &[("ROLE", "worker"), ("WORKER_CONCURRENCY", "50")],
    );
    let cpu = Cpu::start(redis, worker.pid());
    let until = Instant::now() + Duration::from_secs(30);
    while redis.unfinished() as usize >= total && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let boot = spawned.elapsed();
    let done = wait_drained(redis);
    println!(
        "drain {total} pre-filled, c=50       {:>8.0} jobs/s  first job {:.3} s after spawn  peak RSS {} MiB  ({})",
        total as f64 / done.duration_since(spawned).as_secs_f64(),
        boot.as_secs_f64(),
        peak_rss_kib(worker.pid()) / 1024,
        cpu.per_job(redis, total)
    );
    drop(worker);
    drain_one_slot(binary, redis, jobs);
}

/// Redis's bytes per `noop` job, queued and finished: `INFO memory`'s data bytes (see
/// [`Redis::data_bytes`]) before and after 10,000 jobs, 10,000 being `JOB_RETENTION_MAX`'s
/// default, so every finished one is still kept. Each figure's "before" has the processes that
/// write the "after" already connected and one job through: what a connected process costs Redis
/// (its connections' structures, its subscription, the queue's list and the known-queues set) is
/// a cost per process, not per job. Counted from a worker's start instead, it added 100-300 KB,
/// 10-30 B a job, and moved with the moment of the reading.
fn bytes_per_job(binary: &std::path::Path, redis: &Redis) -> (f64, f64) {
    const JOBS: usize = 10_000;
    redis.flush();
    let web = App::start(binary, redis, &[("WORKER_CONCURRENCY", "0")]);
    web.wait_healthy();
    post_all(&web, |_| json!({"kind": "noop"}), 1, 1);
    let before = redis.data_bytes();
    post_all(&web, |_| batch(1000), JOBS / 1000, 1);
    let queued = (redis.data_bytes() - before) / JOBS as f64;
    drop(web);

    redis.flush();
    let web = App::start(binary, redis, &[("WORKER_CONCURRENCY", "0")]);
    web.wait_healthy();
    let worker = App::start(
        binary,
        redis,
        &[("ROLE", "worker"), ("WORKER_CONCURRENCY", "50")],
    );
    post_all(&web, |_| json!({"kind": "noop"}), 1, 1);
    wait_drained(redis);
    // Past the worker's first heartbeat and idle poll, which write their keys once.
    std::thread::sleep(Duration::from_millis(1500));
    let before = redis.data_bytes();
    post_all(&web, |_| batch(1000), JOBS / 1000, 1);
    wait_drained(redis);
    std::thread::sleep(Duration::from_millis(300));
    let finished = (redis.data_bytes() - before) / JOBS as f64;
    drop((worker, web));
    redis.flush();
    (queued, finished)
}

/// A drain with one slot: every job waits for the one before, so this measures the round trip
/// and the wake-ups a job costs rather than how well they are shared.
fn drain_one_slot(binary: &std::path::Path, redis: &Redis, jobs: usize) {
    redis.flush();
    let batches = (jobs / 5000).max(1);
    let web = App::start(binary, redis, &[("WORKER_CONCURRENCY", "0")]);
    web.wait_healthy();
    post_all(&web, |_| batch(1000), batches, 2);
    drop(web);
    let total = batches * 1000;
    let worker = App::start(
        binary,
        redis,
        &[("ROLE", "worker"), ("WORKER_CONCURRENCY", "1")],
    );
    let until = Instant::now() + Duration::from_secs(30);
    while redis.unfinished() as usize >= total && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    // From the first job finished: the boot is the c=50 case's figure.
    let cpu = Cpu::start(redis, worker.pid());
    let started = Instant::now();
    let left = redis.unfinished() as usize;
    // Every 50 ms: each look is a connection and a script call of its own, which at 5 ms would
    // add a wake-up of Redis for every twenty-odd jobs to the figures.
    let until = Instant::now() + Duration::from_secs(600);
    while redis.unfinished() > 0 {
        assert!(Instant::now() < until, "jobs never drained");
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = Instant::now();
    println!(
        "drain {total} pre-filled, c=1         {:>8.0} jobs/s  ({})",
        left as f64 / done.duration_since(started).as_secs_f64(),
        cpu.per_job(redis, left.max(1))
    );
}

/// A web+worker process with 50 slots and the demo kinds, on an empty Redis, answering.
fn web_and_worker(binary: &std::path::Path, redis: &Redis) -> App {
    redis.flush();
    let app = App::start(
        binary,
        redis,
        &[("WORKER_CONCURRENCY", "50"), ("DEMO_KINDS", "true")],
    );
    app.wait_healthy();
    app
}

fn concurrent_and_latency(binary: &std::path::Path, redis: &Redis, jobs: usize) {
    let app = web_and_worker(binary, redis);
    std::thread::sleep(Duration::from_millis(300));
    let cpu = Cpu::start(redis, app.pid());
    let started = Instant::now();
    post_all(&app, |_| json!({"kind": "noop"}), jobs, 50);
    let done = wait_drained(redis);
    println!(
        "produce and consume, one process    {:>8.0} jobs/s  peak RSS {} MiB  ({})",
        jobs as f64 / done.duration_since(started).as_secs_f64(),
        peak_rss_kib(app.pid()) / 1024,
        cpu.per_job(redis, jobs)
    );
    latency(&app);
    web_under_load(&app);
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// 1000 `probe` jobs one at a time into the idle worker: from just before the POST to the
/// handler's start, on the same machine's clock.
fn latency(app: &App) {
    let client = Client::builder().tcp_nodelay(true).build().expect("client");
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let sent = now_ns();
        let job: Value = client
            .post(app.url("/jobs"))
            .json(&json!({"kind": "probe"}))
            .send()
            .and_then(|r| r.json())
            .expect("POST probe");
        let id = job["id"].as_str().expect("id").to_string();
        let started = loop {
            let job: Value = client
                .get(app.url(&format!("/jobs/{id}")))
                .send()
                .and_then(|r| r.json())
                .expect("GET probe");
            if let Some(ns) = job["result"]["started_unix_ns"].as_u64() {
                break ns;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        samples.push(Duration::from_nanos(started.saturating_sub(sent)));
    }
    println!(
        "enqueue-to-start, idle worker       p50 {:.2} ms  p99 {:.2} ms  (1000 probe jobs, one at a time)",
        percentile_ms(&mut samples, 50.0),
        percentile_ms(&mut samples, 99.0)
    );
}

/// GETs per p99: 10,000, so the p99 is the 100th slowest and one hiccup of the machine moves it
/// little.
const SAMPLES: usize = 10_000;

fn h2load_available() -> bool {
    std::process::Command::new("h2load")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// p99 of [`SAMPLES`] GETs of `path`, one at a time on one keep-alive connection: timed by h2load (its
/// per-request log) when it is on the PATH, a C client that adds little of its own; else by
/// this process's client.
fn p99_ms(app: &App, client: &Client, path: &str) -> f64 {
    if h2load_available() {
        let log = std::env::temp_dir().join(format!("onedyno-bench-h2load-{}", std::process::id()));
        let out = std::process::Command::new("h2load")
            .args(["--h1", "-n", &SAMPLES.to_string(), "-c", "1", "-m", "1"])
            .arg(format!("--log-file={}", log.display()))
            .arg(app.url(path))
            .output()
            .expect("h2load");
        assert!(out.status.success(), "h2load: {out:?}");
        // Tab-separated: start (µs since the epoch), status, µs until the response ended.
        let text = std::fs::read_to_string(&log).expect("h2load log");
        let _ = std::fs::remove_file(&log);
        let mut lat: Vec<Duration> = text
            .lines()
            .filter_map(|line| line.split('\t').nth(2)?.trim().parse().ok())
            .map(Duration::from_micros)
            .collect();
        assert_eq!(lat.len(), SAMPLES, "h2load logged {} requests", lat.len());
        return percentile_ms(&mut lat, 99.0);
    }
    let mut lat: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            let res = client.get(app.url(path)).send().expect("GET");
            let _ = res.bytes();
            t.elapsed()
        })
        .collect();
    percentile_ms(&mut lat, 99.0)
}

/// p99 of GET /health and GET /jobs/{id}, idle and with all 50 slots running `cpu` jobs.
fn web_under_load(app: &App) {
    let client = Client::builder().tcp_nodelay(true).build().expect("client");
    let job: Value = client
        .post(app.url("/jobs"))
        .json(&json!({"kind": "noop"}))
        .send()
        .and_then(|r| r.json())
        .expect("POST");
    let job_path = format!("/jobs/{}", job["id"].as_str().expect("id"));
    let measure = |path: &str| p99_ms(app, &client, path);
    let idle = (measure("/health"), measure(&job_path));
    let busy_jobs = Value::Array(vec![json!({"kind": "cpu", "args": {"ms": 20000}}); 50]);
    client
        .post(app.url("/jobs"))
        .json(&busy_jobs)
        .send()
        .expect("POST cpu");
    std::thread::sleep(Duration::from_millis(500));
    let busy = (measure("/health"), measure(&job_path));
    println!(
        "web p99 idle -> 50 cpu jobs running  GET /health {:.2} -> {:.2} ms, GET /jobs/{{id}} {:.2} -> {:.2} ms  ({})",
        idle.0,
        busy.0,
        idle.1,
        busy.1,
        if h2load_available() {
            "h2load, 10,000 GETs one at a time"
        } else {
            "10,000 GETs one at a time; h2load not on the PATH"
        }
    );
}

/// The cases `--only` can pick; without it all run, in this order (`web` and `latency` alone are
/// parts of `concurrent`).
const CASES: [&str; 5] = ["enqueue", "drain", "concurrent", "web", "latency"];

/// `--jobs N` and `--only CASE`, or `None` for a usage error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Option<(usize, Option<String>)> {
    let (mut jobs, mut only) = (50_000, None);
    while let Some(arg) = args.next() {
        let value = args.next()?;
        match arg.as_str() {
            "--jobs" => jobs = value.parse::<usize>().ok().filter(|n| *n >= 1000)?,
            "--only" if CASES.contains(&value.as_str()) => only = Some(value),
            _ => return None,
        }
    }
    Some((jobs, only))
}

/// The web's p99 alone: a web+worker process with 50 slots, idle and then busy.
fn web_only(binary: &std::path::Path, redis: &Redis) {
    web_under_load(&web_and_worker(binary, redis));
}

fn main() {
    let Some((jobs, only)) = parse_args(std::env::args().skip(1)) else {
        eprintln!(
            "usage: cargo run --release --example bench [-- --jobs N (>= 1000)] [--only {}]",
            CASES.join("|")
        );
        std::process::exit(2);
    };
    let runs = |case: &str| only.as_deref().is_none_or(|o| o == case);
    let binary = onedyno_binary();
    let redis = Arc::new(Redis::start());
    println!(
        "onedyno bench: {} ({jobs} jobs a case), redis on port {}",
        binary.display(),
        redis.port
    );
    if runs("enqueue") {
        enqueue_cases(&binary, &redis, jobs);
    }
    if runs("drain") {
        memory_and_drain(&binary, &redis, jobs);
    }
    if runs("concurrent") {
        concurrent_and_latency(&binary, &redis, jobs / 2);
    }
    if only.as_deref() == Some("web") {
        web_only(&binary, &redis);
    }
    if only.as_deref() == Some("latency") {
        latency(&web_and_worker(&binary, &redis));
    }
}
