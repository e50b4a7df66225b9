//! The soak's samples: one row every 10 s, and the verdict on whether they stayed flat.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use super::{Load, lock};
use crate::common::procs::{Onedyno, open_fds, rss_kib};

const EVERY: Duration = Duration::from_secs(10);
/// Samples before this are the warm-up: the finished-job list fills up to
/// `JOB_RETENTION_MAX` (10,000 jobs, 20 s at 500 jobs/s) and the allocators find their size.
const WARM_UP: Duration = Duration::from_secs(60);

/// One sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    elapsed: Duration,
    accepted: u64,
    succeeded: u64,
    depth: u64,
    rss_kib: u64,
    redis_bytes: u64,
    clients: u64,
    fds: u64,
    p99_post_ms: f64,
    p99_read_ms: f64,
    errors: u64,
}

/// Takes the samples: reads `/proc` for onedyno, `INFO` for Redis, `/metrics` and `/queues`.
pub(crate) struct Sampler<'a> {
    url: String,
    redis: Option<redis::Connection>,
    app: &'a Onedyno,
    client: Client,
}

impl<'a> Sampler<'a> {
    /// A sampler of `app` and the Redis at `url`.
    pub(crate) fn new(url: &str, app: &'a Onedyno) -> Sampler<'a> {
        Sampler {
            url: url.to_string(),
            redis: None,
            app,
            client: Client::new(),
        }
    }

    /// Prints a header, then a row every 10 s until `run` has passed; returns the rows.
    pub(crate) fn run(mut self, load: &Load, run: Duration) -> Vec<Row> {
        println!(
            "{:>6} {:>9} {:>9} {:>6} {:>8} {:>10} {:>7} {:>4} {:>9} {:>9} {:>6}",
            "t(s)",
            "accepted",
            "succeeded",
            "depth",
            "RSS MiB",
            "Redis MiB",
            "clients",
            "fds",
            "p99 POST",
            "p99 GET",
            "errors"
        );
        let started = Instant::now();
        let mut rows = Vec::new();
        while started.elapsed() < run {
            let due = started + EVERY * (rows.len() as u32 + 1);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let row = self.sample(load, started.elapsed());
            print_row(&row);
            rows.push(row);
        }
        rows
    }

    fn sample(&mut self, load: &Load, elapsed: Duration) -> Row {
        let pid = self.app.pid();
        let port = self.app.port();
        let (redis_bytes, clients) = self.redis_info();
        Row {
            elapsed,
            accepted: load.accepted.load(std::sync::atomic::Ordering::Relaxed),
            succeeded: succeeded(&self.client, port),
            depth: depth(&self.client, port),
            rss_kib: rss_kib(pid),
            redis_bytes,
            clients,
            fds: open_fds(pid) as u64,
            p99_post_ms: p99_ms(std::mem::take(&mut *lock(&load.post_latency))),
            p99_read_ms: p99_ms(std::mem::take(&mut *lock(&load.read_latency))),
            errors: load.errors.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Redis's `used_memory` and `connected_clients` (the sampler's own connection included);
    /// zeros when Redis does not answer.
    fn redis_info(&mut self) -> (u64, u64) {
        if self.redis.is_none() {
            self.redis = redis::Client::open(self.url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .ok();
        }
        let Some(conn) = self.redis.as_mut() else {
            return (0, 0);
        };
        let Ok(info) = redis::cmd("INFO").query::<String>(conn) else {
            self.redis = None;
            return (0, 0);
        };
        (
            field(&info, "used_memory"),
            field(&info, "connected_clients"),
        )
    }
}

fn field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Job attempts this process finished as succeeded, from `/metrics`.
fn succeeded(client: &Client, port: u16) -> u64 {
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("onedyno_jobs_finished_total{") && l.contains("outcome=\"succeeded\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Jobs waiting in every queue, from `/queues`.
fn depth(client: &Client, port: u16) -> u64 {
    let queues: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/queues"))
        .send()
        .and_then(|r| r.json())
        .unwrap_or_default();
    queues["queues"]
        .as_array()
        .map_or(0, |qs| qs.iter().filter_map(|q| q["depth"].as_u64()).sum())
}

fn p99_ms(mut latencies: Vec<Duration>) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let rank = (0.99 * latencies.len() as f64).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_row(r: &Row) {
    println!(
        "{:>6} {:>9} {:>9} {:>6} {:>8.1} {:>10.1} {:>7} {:>4} {:>6.1} ms {:>6.1} ms {:>6}",
        r.elapsed.as_secs(),
        r.accepted,
        r.succeeded,
        r.depth,
        r.rss_kib as f64 / 1024.0,
        mib(r.redis_bytes),
        r.clients,
        r.fds,
        r.p99_post_ms,
        r.p99_read_ms,
        r.errors
    );
}

/// A gauge the verdict judges: its name, how to read it from a row, the slack it is allowed.
type Gauge = (&'static str, fn(&Row) -> f64, f64);

/// Prints, for each gauge, its range after the warm-up and whether it stayed flat: the last
/// sample at most 10% (and 1 MiB, or 2 for counts) above the first after the warm-up, and the
/// queue's depth not growing (the process keeps up with the load).
pub(crate) fn verdict(rows: &[Row]) {
    let steady: Vec<&Row> = rows.iter().filter(|r| r.elapsed >= WARM_UP).collect();
    let (Some(first), Some(last)) = (steady.first(), steady.last()) else {
        println!("too short for a verdict: run at least 2 minutes");
        return;
    };
    let gauges: [Gauge; 5] = [
        ("RSS MiB", |r| r.rss_kib as f64 / 1024.0, 1.0),
        ("Redis MiB", |r| mib(r.redis_bytes), 1.0),
        ("clients", |r| r.clients as f64, 2.0),
        ("fds", |r| r.fds as f64, 2.0),
        ("depth", |r| r.depth as f64, 500.0),
    ];
    let mut all_flat = true;
    for (name, get, slack) in gauges {
        let values: Vec<f64> = steady.iter().map(|r| get(r)).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let flat = get(last) <= get(first) * 1.1 + slack;
        all_flat &= flat;
        println!(
            "{name:>9}: first {:.1} last {:.1} min {min:.1} max {max:.1} after the warm-up: {}",
            get(first),
            get(last),
            if flat { "flat" } else { "GREW" }
        );
    }
    let p99s: Vec<f64> = steady.iter().map(|r| r.p99_post_ms).collect();
    let worst = p99s.iter().copied().fold(0.0, f64::max);
    println!("p99 POST per 10 s after the warm-up: worst {worst:.1} ms");
    println!("{}", if all_flat { "FLAT" } else { "NOT FLAT" });
}
