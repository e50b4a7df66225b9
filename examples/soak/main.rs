//! The soak: one onedyno process (web and worker, the release binary) under a steady mixed load
//! for N minutes, sampled every 10 s, to show that nothing grows while jobs flow through.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example soak -- --rate 500 --minutes 10
//! cargo run --release --example soak -- --rate 500 --minutes 10 --redis-url redis://host:port
//! ```
//!
//! The load: `--rate` single `POST /jobs` a second of the chaos mix (40% `echo`, 30% `sleep`
//! 100–400 ms, 15% `fail` once then succeed, 15% five-step `steps`), from four threads, and a
//! fifth of that in reads (`GET /jobs/{id}` of a recent job, `GET /queues`, `GET /health` in
//! turn). Every 10 s it prints a row: elapsed, jobs accepted and succeeded, the queue's depth,
//! onedyno's RSS (`VmRSS`) and open fds, Redis's `used_memory` and `connected_clients`, and the
//! p99 of the POSTs and of the reads of those 10 s. At the end it compares the samples after the
//! first minute (the warm-up, while `JOB_RETENTION_MAX` fills) and says whether each stayed flat.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod sample;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

use common::flags::Flags;
use common::procs::{Onedyno, onedyno_binary};
use common::redis_server::AofRedis;
use sample::Sampler;

const USAGE: &str = "usage: soak [--rate 500] [--minutes 10] [--redis-url URL] [--concurrency 100]";
const POSTERS: usize = 4;
const RECENT: usize = 1000;

/// What the load threads share: counts, the latencies of the current 10 s, recent job ids.
#[derive(Default)]
pub(crate) struct Load {
    pub(crate) accepted: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) post_latency: Mutex<Vec<Duration>>,
    pub(crate) read_latency: Mutex<Vec<Duration>>,
    recent: Mutex<VecDeque<String>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn main() {
    let flags = Flags::parse(&["rate", "minutes", "redis-url", "concurrency"], USAGE);
    let rate: f64 = flags.get("rate", 500.0);
    let minutes: f64 = flags.get("minutes", 10.0);
    let concurrency: u64 = flags.get("concurrency", 100);
    let own = flags
        .text("redis-url")
        .is_none()
        .then(|| AofRedis::start(false));
    let url = flags
        .text("redis-url")
        .or_else(|| own.as_ref().map(AofRedis::url))
        .unwrap_or_default();
    let env = [
        ("WORKER_CONCURRENCY", concurrency.to_string()),
        ("RETRY_BACKOFF_BASE", "0.2".to_string()),
        ("RETRY_BACKOFF_MAX", "1".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let log = std::env::temp_dir().join(format!("onedyno-soak-{}.log", std::process::id()));
    let Some(app) = Onedyno::start(&onedyno_binary(), &url, &env, &log) else {
        eprintln!(
            "onedyno did not become healthy within 30 s; see {}",
            log.display()
        );
        std::process::exit(1);
    };
    println!(
        "soak: {rate} jobs/s and {} reads/s for {minutes} min, onedyno pid {} \
         (WORKER_CONCURRENCY={concurrency}, log {}), Redis {url}",
        rate / 5.0,
        app.pid(),
        log.display()
    );
    let load = Load::default();
    let run = Duration::from_secs_f64(minutes.max(0.1) * 60.0);
    let port = app.port();
    let rows = std::thread::scope(|s| {
        for n in 0..POSTERS {
            let load = &load;
            s.spawn(move || post_loop(load, port, rate / POSTERS as f64, n as u64));
        }
        s.spawn(|| read_loop(&load, port, rate / 5.0));
        let rows = Sampler::new(&url, &app).run(&load, run);
        load.stop.store(true, Ordering::Relaxed);
        rows
    });
    sample::verdict(&rows);
}

/// Calls `each` `rate` times a second until the load stops (falling behind, it catches up at
/// most a second's worth, so a stall does not turn into a burst).
fn paced(load: &Load, rate: f64, mut each: impl FnMut()) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut next = Instant::now();
    while !load.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            next = now;
        }
        next += interval;
        each();
    }
}

fn post_loop(load: &Load, port: u16, rate: f64, thread: u64) {
    let client = Client::new();
    let mut rng = StdRng::seed_from_u64(thread);
    let url = format!("http://127.0.0.1:{port}/jobs");
    let mut i = 0;
    paced(load, rate, || {
        let mut body = common::mix::plan(&mut rng, thread, i).body;
        i += 1;
        // No idempotency keys: each would stay in Redis for 24 h, and the soak is about what
        // steady work leaves behind.
        if let Some(job) = body.as_object_mut() {
            job.remove("idempotency_key");
        }
        let started = Instant::now();
        let res = client.post(&url).json(&body).send();
        let took = started.elapsed();
        let id = res
            .ok()
            .filter(|r| r.status() == StatusCode::ACCEPTED)
            .and_then(|r| {
                let job: Value = r.json().ok()?;
                job["id"].as_str().map(str::to_string)
            });
        lock(&load.post_latency).push(took);
        match id {
            Some(id) => {
                load.accepted.fetch_add(1, Ordering::Relaxed);
                let mut recent = lock(&load.recent);
                recent.push_back(id);
                if recent.len() > RECENT {
                    recent.pop_front();
                }
            }
            None => {
                load.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

fn read_loop(load: &Load, port: u16, rate: f64) {
    let client = Client::new();
    let mut turn = 0u64;
    paced(load, rate, || {
        turn += 1;
        let path = match turn % 3 {
            0 => "/queues".to_string(),
            1 => "/health".to_string(),
            _ => match lock(&load.recent).back() {
                Some(id) => format!("/jobs/{id}"),
                None => "/health".to_string(),
            },
        };
        let started = Instant::now();
        let ok = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .is_ok_and(|r| r.status() == StatusCode::OK && r.bytes().is_ok());
        lock(&load.read_latency).push(started.elapsed());
        if !ok {
            load.errors.fetch_add(1, Ordering::Relaxed);
        }
    });
}
