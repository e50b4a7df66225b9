//! The SSRF guard end to end: private addresses in every spelling are refused for good with
//! the server seeing no request, `HTTP_ALLOW_NETWORKS` lets jobs reach them, and bad arguments or
//! a bad allow-list are refused before anything runs.

#[path = "support/http_jobs.rs"]
mod http_jobs;
#[path = "support/http_server.rs"]
mod http_server;
mod support;

use std::time::Duration;

use http_jobs::{WAIT, app, enqueue, error_messages};
use http_server::{HttpServer, Reply};
use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis};

#[test]
fn the_guard_refuses_private_addresses_and_the_server_sees_nothing() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, None);
    server.route("/x", vec![Reply::text(200, "should not be reached")]);
    let port = server.port();
    let cases = [
        (format!("http://127.0.0.1:{port}/x"), "127.0.0.1 (loopback)"),
        (format!("http://10.0.0.1:{port}/x"), "10.0.0.1 (private)"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "169.254.169.254 (link-local, cloud metadata)",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/x"),
            "::ffff:127.0.0.1 (loopback)",
        ),
        (
            format!("http://2130706433:{port}/x"),
            "127.0.0.1 (loopback)",
        ),
        (format!("http://0x7f.1:{port}/x"), "127.0.0.1 (loopback)"),
        (
            format!("http://localhost:{port}/x"),
            "127.0.0.1 (loopback) for host localhost",
        ),
        (
            format!("http://localhost.:{port}/x"),
            "127.0.0.1 (loopback) for host localhost.",
        ),
    ];
    let ids: Vec<String> = cases
        .iter()
        .map(|(url, _)| {
            enqueue(
                &app,
                json!({"url": url, "timeout": 2}),
                json!({"max_attempts": 3}),
            )
        })
        .collect();
    for ((url, blocked), id) in cases.iter().zip(&ids) {
        let job = app.wait_for_status(id, "dead", WAIT);
        assert_eq!(job["attempts"], 1, "{url}: refused for good at once: {job}");
        let errors = error_messages(&job);
        assert_eq!(errors.len(), 1, "{url}: {job}");
        assert!(
            errors[0].starts_with(&format!("blocked address {blocked}")),
            "{url}: {}",
            errors[0]
        );
        assert!(errors[0].contains("HTTP_ALLOW_NETWORKS"), "{}", errors[0]);
    }
    assert!(server.received().is_empty(), "{:?}", server.received());
}

#[test]
fn the_allow_list_lets_jobs_reach_the_loopback_server() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route("/x", vec![Reply::text(200, "reached")]);
    let port = server.port();
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://2130706433:{port}/x"),
    ] {
        let id = enqueue(&app, json!({"url": url}), json!({"max_attempts": 1}));
        let job = app.wait_for_status(&id, "succeeded", WAIT);
        assert_eq!(job["result"]["body"], "reached", "{url}: {job}");
    }
    assert_eq!(server.received_at("/x").len(), 3);
}

#[test]
fn bad_args_are_refused_at_enqueue_and_a_bad_allow_list_stops_the_process() {
    let redis = Redis::start();
    let app = app(&redis, None);
    for args in [
        json!({"url": "ftp://example.com/file"}),
        json!({"url": "https://example.com", "method": "TRACE"}),
        json!({"url": "https://example.com", "timeout": -1}),
        json!({}),
    ] {
        let (status, _, body) = app.enqueue(&json!({"kind": "http", "args": args}));
        let message =
            support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert!(message.contains("http"), "{message}");
    }

    let mut bad = App::spawn(
        &redis.url(),
        &[("HTTP_ALLOW_NETWORKS", "10.0.0.0/8,banana")],
    );
    let status = bad.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2), "{}", bad.logs());
    assert!(
        bad.logs().contains("HTTP_ALLOW_NETWORKS") && bad.logs().contains("banana"),
        "{}",
        bad.logs()
    );
}
