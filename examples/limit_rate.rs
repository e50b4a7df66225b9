//! Measures a shared rate limit's achieved rate across running onedyno processes.
//!
//! Start Redis and one or more processes with a rate on `kind:echo`, then run this against them:
//!
//! ```text
//! redis-server --port 6379 --save "" --appendonly no &
//! cargo build --release
//! for port in 5001 5002 5003; do
//!   PORT=$port LIMITS='{"kind:echo": {"rate": "20/s"}}' ./target/release/onedyno &
//! done
//! cargo run --release --example limit_rate -- --jobs 100 \
//!   --url http://127.0.0.1:5001 --url http://127.0.0.1:5002 --url http://127.0.0.1:5003
//! ```
//!
//! It enqueues `--jobs` `echo` jobs (`max_attempts` 1) round-robin to the `--url`s (default
//! `http://127.0.0.1:5000`), waits until all succeeded, and reads their `started_at` (Redis's
//! clock) to print the time from the first start to the last, the achieved rate, the busiest
//! one-second window, the shortest gap between two starts, and the most attempts of a job (1:
//! waiting was never an attempt). Run it against an idle queue.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo run --release --example limit_rate -- [--url URL]... [--jobs 100] \
[--token T] [--timeout 120]";

struct Options {
    urls: Vec<String>,
    jobs: usize,
    token: Option<String>,
    timeout: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        urls: Vec::new(),
        jobs: 100,
        token: std::env::var("API_TOKEN").ok(),
        timeout: Duration::from_secs(120),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => options.urls.push(value.trim_end_matches('/').to_string()),
            "--jobs" => options.jobs = value.parse().map_err(|_| "--jobs: a number")?,
            "--token" => options.token = Some(value),
            "--timeout" => {
                let secs: u64 = value.parse().map_err(|_| "--timeout: seconds")?;
                options.timeout = Duration::from_secs(secs);
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.urls.is_empty() {
        options.urls.push("http://127.0.0.1:5000".into());
    }
    if options.jobs < 2 {
        return Err("--jobs: at least 2".into());
    }
    Ok(options)
}

fn request(
    client: &Client,
    token: Option<&str>,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut builder = client.request(method, url);
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let response = builder.send().map_err(|e| format!("{url}: {e}"))?;
    response.json().map_err(|e| format!("{url}: {e}"))
}

fn started_ms(job: &Value) -> Result<i64, String> {
    let text = job["started_at"]
        .as_str()
        .ok_or(format!("no started_at: {job}"))?;
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text}: {e}"))
}

fn run(options: &Options) -> Result<(), String> {
    let client = Client::new();
    let token = options.token.as_deref();
    let mut ids = Vec::with_capacity(options.jobs);
    for i in 0..options.jobs {
        let url = format!("{}/jobs", options.urls[i % options.urls.len()]);
        let body = json!({"kind": "echo", "args": {"i": i}, "max_attempts": 1});
        let job = request(&client, token, reqwest::Method::POST, &url, Some(&body))?;
        ids.push(
            job["id"]
                .as_str()
                .ok_or(format!("refused: {job}"))?
                .to_string(),
        );
    }
    let deadline = Instant::now() + options.timeout;
    let jobs = loop {
        let mut jobs = Vec::with_capacity(ids.len());
        for id in &ids {
            let url = format!("{}/jobs/{id}", options.urls[0]);
            jobs.push(request(&client, token, reqwest::Method::GET, &url, None)?);
        }
        if jobs.iter().all(|j| j["status"] == "succeeded") {
            break jobs;
        }
        if Instant::now() > deadline {
            return Err("timed out waiting for the jobs".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut starts = jobs.iter().map(started_ms).collect::<Result<Vec<_>, _>>()?;
    starts.sort_unstable();
    let span_ms = starts[starts.len() - 1] - starts[0];
    let busiest = starts
        .iter()
        .map(|&open| {
            starts
                .iter()
                .filter(|&&s| s >= open && s < open + 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    let min_gap = starts.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
    let attempts = jobs.iter().filter_map(|j| j["attempts"].as_u64()).max();
    println!("processes          {}", options.urls.len());
    println!("jobs               {}", options.jobs);
    println!("first to last      {:.2} s", span_ms as f64 / 1000.0);
    println!(
        "achieved rate      {:.2}/s",
        (options.jobs - 1) as f64 * 1000.0 / span_ms.max(1) as f64
    );
    println!("busiest second     {busiest} starts");
    println!("shortest gap       {min_gap} ms");
    println!("most attempts      {}", attempts.unwrap_or(0));
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
