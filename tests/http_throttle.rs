//! A 429 is the outside service asking to wait, not a failed attempt: a job with `max_attempts` 1
//! that meets a 429 (`Retry-After: 1`) once and then a 200 succeeds, after waiting the second.
//!
//! This needs the runner to honour `Retry::Throttled` (requeue without spending an attempt), which
//! the shared-limits work brings; before it, the 429 spends the only attempt and the job is dead.

#[path = "support/http_server.rs"]
mod http_server;
mod support;

use std::time::Duration;

use http_server::{HttpServer, Reply};
use serde_json::json;
use support::{App, Redis};

#[test]
fn a_429_does_not_spend_an_attempt() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = App::start_ready(&redis.url(), &[("HTTP_ALLOW_NETWORKS", "127.0.0.0/8")]);
    server.route(
        "/limited",
        vec![
            Reply::text(429, "slow down").header("retry-after", "1"),
            Reply::text(200, "ok"),
        ],
    );

    let id = app.enqueue_ok(&json!({
        "kind": "http", "args": {"url": server.url("/limited")}, "max_attempts": 1
    }));
    let job = app.wait_for_status(&id, "succeeded", Duration::from_secs(15));
    assert_eq!(job["result"]["status"], 200, "{job}");
    assert_eq!(job["result"]["body"], "ok", "{job}");
    let got = server.received_at("/limited");
    assert_eq!(got.len(), 2, "{job}");
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "asked again after {gap:?}, before Retry-After"
    );
}
