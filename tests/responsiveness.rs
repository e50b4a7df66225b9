//! Busy workers never starve HTTP: while every job thread is pinned by CPU-bound jobs, requests
//! are still answered and the process keeps its heartbeat.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis};

#[test]
fn requests_are_answered_while_cpu_bound_jobs_hold_every_job_thread() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "4")]);
    let busy: Vec<String> = (0..4)
        .map(|_| app.enqueue_ok(&json!({"kind": "cpu", "args": {"ms": 8000}})))
        .collect();
    for id in &busy {
        app.wait_for_status(id, "running", Duration::from_secs(5));
    }
    // The jobs compute without yielding for 8 s. Had they shared a runtime with HTTP or Redis
    // I/O, these requests would wait that long; allow a wide margin for a loaded machine.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let asked = Instant::now();
        assert_eq!(app.get("/health").0, StatusCode::OK);
        let (status, _, _) = app.enqueue(&json!({"kind": "echo", "args": {"i": i}}));
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(app.get("/queues").0, StatusCode::OK);
        slowest = slowest.max(asked.elapsed());
    }
    eprintln!("slowest round of 3 requests while jobs were busy: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(3),
        "requests waited {slowest:?}"
    );
    let still_busy = busy.iter().all(|id| app.job(id)["status"] == "running");
    assert!(still_busy, "the test must run while the jobs were busy");
    for id in &busy {
        let job = app.wait_for_status(id, "succeeded", Duration::from_secs(20));
        assert_eq!(job["attempts"], 1, "{job}");
    }
    assert!(app.log_lines("event=worker.reaped").is_empty());
    assert!(app.log_lines("event=worker.leases_lost").is_empty());
}
