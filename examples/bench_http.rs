//! Benchmark: enqueue rate over HTTP, and end-to-end throughput of `noop` jobs, against a running
//! onedyno.
//!
//! Start Redis and the app first (a release build, or the figures mean little), then run the bench
//! from another terminal:
//!
//! ```text
//! redis-server --port 6379 --save "" --appendonly no
//! cargo run --release                      # serves on PORT=5000, works jobs with WORKER_CONCURRENCY=10
//! cargo run --release --example bench_http -- --url http://127.0.0.1:5000 --jobs 10000 --concurrency 32
//! ```
//!
//! Options (all optional):
//!
//! - `--url URL`          the app (default `http://127.0.0.1:5000`)
//! - `--jobs N`           jobs to enqueue (default 10000)
//! - `--concurrency C`    POST /jobs requests in flight at once (default 32)
//! - `--token T`          the app's `API_TOKEN` (default: the `API_TOKEN` environment variable)
//! - `--queue Q`          the queue to enqueue to and watch (default `default`)
//! - `--enqueue-only`     measure the enqueue rate only, for a web-only app (`WORKER_CONCURRENCY=0`)
//! - `--timeout SECS`     the longest wait for the jobs to finish (default 600)
//!
//! What it measures:
//!
//! 1. Enqueue: N `{"kind": "noop"}` jobs POSTed with C requests in flight over reused keep-alive
//!    connections; jobs/s, and the p50/p99 latency of one POST /jobs.
//! 2. End to end: from the first POST until every job has run. Done when `GET /queues` shows the
//!    queue with depth 0 and running 0 and the last job enqueued (the greatest id, as ids
//!    sort by creation time) is `succeeded`. Progress is printed every second.
//!
//! Run it against an otherwise idle queue: jobs already waiting count against the end-to-end time.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo run --release --example bench_http -- [--url http://127.0.0.1:5000] \
[--jobs 10000] [--concurrency 32] [--token T] [--queue default] [--enqueue-only] [--timeout 600]";

/// How often the end-to-end phase polls `GET /queues`.
const POLL_EVERY: Duration = Duration::from_millis(25);
/// How often it prints progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Options {
    url: String,
    jobs: usize,
    concurrency: usize,
    token: Option<String>,
    queue: String,
    enqueue_only: bool,
    timeout: Duration,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        url: "http://127.0.0.1:5000".to_string(),
        jobs: 10_000,
        concurrency: 32,
        token: std::env::var("API_TOKEN").ok().filter(|t| !t.is_empty()),
        queue: "default".to_string(),
        enqueue_only: false,
        timeout: Duration::from_secs(600),
    };
    let mut args = args;
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, v: String| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} must be a positive integer, got {v:?}"))
        };
        match name.as_str() {
            "--url" => options.url = value("--url")?.trim_end_matches('/').to_string(),
            "--jobs" => options.jobs = number("--jobs", value("--jobs")?)?,
            "--concurrency" => {
                options.concurrency = number("--concurrency", value("--concurrency")?)?
            }
            "--token" => options.token = Some(value("--token")?).filter(|t| !t.is_empty()),
            "--queue" => options.queue = value("--queue")?,
            "--timeout" => {
                options.timeout =
                    Duration::from_secs(number("--timeout", value("--timeout")?)? as u64)
            }
            "--enqueue-only" if inline.is_none() => options.enqueue_only = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// The bench's HTTP client: keep-alive connections, one per request in flight.
struct Api {
    client: Client,
    url: String,
    token: Option<String>,
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let req = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// GET a JSON document; an error names the path and what the app answered.
    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let res = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: bad JSON ({e}): {body}"))
    }
}

/// What one enqueuing task saw.
#[derive(Default)]
struct Enqueued {
    latencies: Vec<Duration>,
    /// The greatest job id accepted (ids are UUIDv7, so the latest one).
    last_id: Option<String>,
    /// Requests refused or lost.
    failures: usize,
    /// The first few of their errors.
    first_errors: Vec<String>,
}

async fn enqueue_worker(
    api: Arc<Api>,
    next: Arc<AtomicUsize>,
    total: usize,
    queue: String,
) -> Enqueued {
    let mut out = Enqueued::default();
    let body = json!({ "kind": "noop", "queue": queue });
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let started = Instant::now();
        let result = api
            .request(reqwest::Method::POST, "/jobs")
            .json(&body)
            .send()
            .await;
        let outcome = match result {
            Ok(res) if res.status() == StatusCode::ACCEPTED => res
                .json::<Value>()
                .await
                .map_err(|e| format!("bad response body: {e}"))
                .and_then(|job| {
                    job["id"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("no id in {job}"))
                }),
            Ok(res) => {
                let status = res.status();
                Err(format!(
                    "{status}: {}",
                    res.text().await.unwrap_or_default()
                ))
            }
            Err(e) => Err(e.to_string()),
        };
        let elapsed = started.elapsed();
        match outcome {
            Ok(id) => {
                out.latencies.push(elapsed);
                if out.last_id.as_ref().is_none_or(|last| id > *last) {
                    out.last_id = Some(id);
                }
            }
            Err(e) => {
                out.failures += 1;
                if out.first_errors.len() < 3 {
                    out.first_errors.push(e);
                }
            }
        }
    }
    out
}

/// The nearest-rank percentile of sorted latencies, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// Depth and running of one queue in a `GET /queues` answer (0, 0 when it is not listed).
fn queue_numbers(stats: &Value, queue: &str) -> (u64, u64) {
    stats["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == queue))
        .map(|q| {
            (
                q["depth"].as_u64().unwrap_or(0),
                q["running"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0))
}

/// Polls until the queue is empty and idle and `last_id` has succeeded; the moment that was seen.
async fn wait_until_done(
    api: &Api,
    queue: &str,
    last_id: &str,
    started: Instant,
    deadline: Instant,
) -> Result<Instant, String> {
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    loop {
        let stats = api.get_json("/queues").await?;
        let (depth, running) = queue_numbers(&stats, queue);
        if depth == 0 && running == 0 {
            let job = api.get_json(&format!("/jobs/{last_id}")).await?;
            match job["status"].as_str() {
                Some("succeeded") => return Ok(Instant::now()),
                Some(s @ ("dead" | "cancelled")) => {
                    return Err(format!("the last job {last_id} ended {s}: {job}"));
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "gave up after {:.0} s: queue {queue} depth {depth} running {running} \
                 (is a worker running? WORKER_CONCURRENCY=0 needs --enqueue-only)",
                now.duration_since(started).as_secs_f64()
            ));
        }
        if now >= next_progress {
            println!(
                "  waiting: {:6.1} s  depth {depth:>7}  running {running:>4}  processes {}",
                now.duration_since(started).as_secs_f64(),
                stats["processes"]
            );
            next_progress = now + PROGRESS_EVERY;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn run(options: Options) -> Result<(), String> {
    let client = Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let api = Arc::new(Api {
        client,
        url: options.url.clone(),
        token: options.token.clone(),
    });

    // Reachable, authorised, and how busy the queue already is.
    let health = api.get_json("/health").await?;
    let before = api.get_json("/queues").await?;
    let (depth, running) = queue_numbers(&before, &options.queue);
    println!(
        "onedyno bench: {} queue {} (health {}, processes {})",
        options.url, options.queue, health["status"], before["processes"]
    );
    if depth + running > 0 {
        println!(
            "  note: queue {} already holds {depth} waiting and {running} running jobs",
            options.queue
        );
    }
    println!(
        "  enqueueing {} noop jobs, {} in flight...",
        options.jobs, options.concurrency
    );

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..options.concurrency.min(options.jobs))
        .map(|_| {
            tokio::spawn(enqueue_worker(
                api.clone(),
                next.clone(),
                options.jobs,
                options.queue.clone(),
            ))
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.jobs);
    let mut last_id: Option<String> = None;
    let mut failures = 0;
    let mut first_errors = Vec::new();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| format!("an enqueue task failed: {e}"))?;
        latencies.extend(part.latencies);
        failures += part.failures;
        first_errors.extend(part.first_errors);
        if let Some(id) = part.last_id
            && last_id.as_ref().is_none_or(|last| id > *last)
        {
            last_id = Some(id);
        }
    }
    let enqueue_time = started.elapsed();
    latencies.sort_unstable();
    let accepted = latencies.len();
    for e in first_errors.iter().take(3) {
        println!("  refused: {e}");
    }

    let end_to_end = match (&last_id, options.enqueue_only) {
        (_, true) => Err("not measured (--enqueue-only)".to_string()),
        (None, false) => Err("not measured (no job was accepted)".to_string()),
        (Some(last_id), false) => {
            let deadline = started + options.timeout;
            wait_until_done(&api, &options.queue, last_id, started, deadline)
                .await
                .map(|done| done.duration_since(started))
        }
    };

    println!();
    println!("jobs              {accepted} accepted, {failures} refused");
    println!("concurrency       {}", options.concurrency);
    println!(
        "enqueue           {:.0} jobs/s ({:.3} s)",
        accepted as f64 / enqueue_time.as_secs_f64(),
        enqueue_time.as_secs_f64()
    );
    println!(
        "POST /jobs p50    {:.2} ms",
        percentile_ms(&latencies, 50.0)
    );
    println!(
        "POST /jobs p99    {:.2} ms",
        percentile_ms(&latencies, 99.0)
    );
    match &end_to_end {
        Ok(total) => {
            println!(
                "end-to-end        {:.0} jobs/s",
                accepted as f64 / total.as_secs_f64()
            );
            println!("total             {:.3} s", total.as_secs_f64());
        }
        Err(why) => {
            println!("end-to-end        {why}");
            println!("total             {:.3} s", started.elapsed().as_secs_f64());
        }
    }
    if failures > 0 {
        return Err(format!(
            "{failures} of {} POST /jobs were refused",
            options.jobs
        ));
    }
    if end_to_end.is_err() && !options.enqueue_only {
        return Err("the jobs did not all finish".to_string());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
