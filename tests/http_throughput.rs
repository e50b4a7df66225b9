//! A benchmark, not a timed test (ignored by default): how many `http` jobs a second one worker
//! process runs against a loopback server.
//!
//! ```text
//! cargo test --release --test http_throughput -- --ignored --nocapture
//! JOBS=5000 CONCURRENCY=100 cargo test --release --test http_throughput -- --ignored --nocapture
//! ```
//!
//! A web-only process enqueues `JOBS` (default 2000) `POST` jobs first; then a worker-only process
//! (`ROLE=worker`, `WORKER_CONCURRENCY` = `CONCURRENCY`, default 50) starts and runs them. It
//! prints the jobs/s from the worker's start until every job has succeeded, the request rate the
//! server saw, and the worker's CPU time.

#[path = "support/http_server.rs"]
mod http_server;
mod support;

use std::time::{Duration, Instant};

use http_server::{HttpServer, Reply};
use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User plus system CPU seconds `pid` has used, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Some(ticks / per_second)
}

/// Waits until the default queue is empty and idle and the server has seen `jobs` requests.
fn wait_done(web: &App, server: &HttpServer, jobs: usize) {
    let done = support::eventually(Duration::from_secs(300), || {
        let (status, queues) = web.get("/queues");
        let default = queues["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == "default").cloned())
            .unwrap_or_default();
        let idle = status == StatusCode::OK && default["depth"] == 0 && default["running"] == 0;
        (idle && server.received_count() >= jobs).then_some(())
    });
    assert!(done.is_some(), "the jobs never finished");
}

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn http_jobs_per_second_against_a_loopback_server() {
    let (jobs, concurrency) = (setting("JOBS", 2000), setting("CONCURRENCY", 50));
    let redis = Redis::start();
    let server = HttpServer::start();
    server.route("/hook", vec![Reply::json(200, &json!({"ok": true}))]);
    let allow = ("HTTP_ALLOW_NETWORKS", "127.0.0.0/8");
    let web = App::start_web_only_with(&redis.url(), &[allow]);
    let job = json!({"kind": "http", "args": {
        "url": server.url("/hook"), "method": "POST", "body": {"event": "signup", "user": 1}
    }});
    let last = (0..jobs)
        .map(|_| web.enqueue_ok(&job))
        .last()
        .expect("jobs > 0");

    let started = Instant::now();
    let concurrency_text = concurrency.to_string();
    let worker = App::spawn(
        &redis.url(),
        &[
            allow,
            ("ROLE", "worker"),
            ("WORKER_CONCURRENCY", &concurrency_text),
        ],
    );
    wait_done(&web, &server, jobs);
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(worker.pid());

    assert_eq!(web.job(&last)["status"], "succeeded");
    assert_eq!(web.queue_counter("dead"), 0);
    assert_eq!(web.queue_counter("retrying"), 0);
    let received = server.received();
    assert_eq!(received.len(), jobs, "one request per job");
    let first = received.iter().map(|r| r.at).min().expect("requests");
    let final_request = received.iter().map(|r| r.at).max().expect("requests");
    let span = final_request.duration_since(first).as_secs_f64();
    println!("http jobs         {jobs} (POST with a JSON body, 200 with a JSON body)");
    println!("worker            ROLE=worker WORKER_CONCURRENCY={concurrency}");
    println!(
        "end to end        {:.0} jobs/s ({:.2} s from the worker's start to the last success)",
        jobs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "requests          {:.0} /s at the server (first to last request, {span:.2} s; the \
         first came {:.2} s after the worker was started)",
        (jobs - 1) as f64 / span,
        first.duration_since(started).as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!(
            "worker CPU        {cpu:.2} s ({:.0}% of one core over the run, {:.0} µs per job)",
            100.0 * cpu / elapsed.as_secs_f64(),
            1e6 * cpu / jobs as f64
        );
    }
}
