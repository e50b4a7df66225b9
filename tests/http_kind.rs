//! The `http` kind against a real HTTP server on loopback: results of 2xx, retries, throttling,
//! permanent failures, redirects, timeouts, the body cap, and the SSRF guard refusing private
//! addresses (the server sees no request) unless `HTTP_ALLOW_NETWORKS` allows them.

#[path = "support/http_server.rs"]
mod http_server;
mod support;

use std::time::Duration;

use http_server::{HttpServer, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis};

const WAIT: Duration = Duration::from_secs(15);

/// The app with fast retries and, when given, `HTTP_ALLOW_NETWORKS`.
fn app(redis: &Redis, allow: Option<&str>) -> App {
    let mut env = support::FAST_BACKOFF.to_vec();
    if let Some(allow) = allow {
        env.push(("HTTP_ALLOW_NETWORKS", allow));
    }
    App::start_ready(&redis.url(), &env)
}

/// Enqueues an `http` job with `args` and job fields `extra`; returns its id.
fn enqueue(app: &App, args: Value, extra: Value) -> String {
    let mut job = json!({"kind": "http", "args": args});
    if let (Some(job), Some(extra)) = (job.as_object_mut(), extra.as_object()) {
        job.extend(extra.clone());
    }
    app.enqueue_ok(&job)
}

fn error_messages(job: &Value) -> Vec<String> {
    job["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_2xx_is_the_result_and_the_request_goes_out_as_the_job_says() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route(
        "/hello",
        vec![
            Reply::text(200, "hi there")
                .header("x-request-id", "r-1")
                .header("x-noise", "n"),
        ],
    );
    server.route(
        "/items",
        vec![Reply::json(201, &json!({"id": 42})).header("location", "/items/42")],
    );
    server.route("/raw", vec![Reply::status(204)]);

    let hello = enqueue(
        &app,
        json!({"url": server.url("/hello"), "headers": {"X-Token": "t0k"}}),
        json!({}),
    );
    let items = enqueue(
        &app,
        json!({"url": server.url("/items"), "method": "post", "body": {"name": "widget"}}),
        json!({}),
    );
    let raw = enqueue(
        &app,
        json!({"url": server.url("/raw"), "method": "PUT", "body": "plain words",
                                   "headers": {"content-type": "text/plain"}}),
        json!({}),
    );

    let job = app.wait_for_status(&hello, "succeeded", WAIT);
    assert_eq!(
        job["result"],
        json!({"status": 200, "body": "hi there", "body_truncated": false, "headers": {
            "content-type": "text/plain; charset=utf-8", "content-length": "8", "x-request-id": "r-1"}}),
        "{job}"
    );
    let job = app.wait_for_status(&items, "succeeded", WAIT);
    assert_eq!(job["result"]["status"], 201, "{job}");
    assert_eq!(job["result"]["body"], json!({"id": 42}), "{job}");
    assert_eq!(job["result"]["headers"]["location"], "/items/42", "{job}");
    let job = app.wait_for_status(&raw, "succeeded", WAIT);
    assert_eq!(
        (
            job["result"]["status"].clone(),
            job["result"]["body"].clone()
        ),
        (json!(204), json!(""))
    );

    let got = &server.received_at("/hello")[0];
    assert_eq!(got.method, "GET");
    assert_eq!(got.header("x-token"), Some("t0k"));
    let agent = format!("onedyno/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(got.header("user-agent"), Some(agent.as_str()));
    let got = &server.received_at("/items")[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.json(), json!({"name": "widget"}));
    let got = &server.received_at("/raw")[0];
    assert_eq!(
        (got.method.as_str(), got.body.as_slice()),
        ("PUT", b"plain words".as_slice())
    );
    assert_eq!(got.header("content-type"), Some("text/plain"));
}

#[test]
fn server_errors_retry_and_other_client_errors_are_dead_at_once() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route(
        "/flaky",
        vec![
            Reply::text(500, "oops"),
            Reply::status(503),
            Reply::text(200, "ok"),
        ],
    );
    server.route("/gone", vec![Reply::text(404, "no such hook")]);
    server.route("/down", vec![Reply::status(502)]);

    let flaky = enqueue(
        &app,
        json!({"url": server.url("/flaky")}),
        json!({"max_attempts": 5}),
    );
    let gone = enqueue(
        &app,
        json!({"url": server.url("/gone")}),
        json!({"max_attempts": 5}),
    );
    let down = enqueue(
        &app,
        json!({"url": server.url("/down")}),
        json!({"max_attempts": 2}),
    );

    let job = app.wait_for_status(&flaky, "succeeded", WAIT);
    assert_eq!(job["attempts"], 3, "{job}");
    assert_eq!(
        error_messages(&job),
        [
            "HTTP 500 Internal Server Error: oops",
            "HTTP 503 Service Unavailable"
        ]
    );
    assert_eq!(server.received_at("/flaky").len(), 3);

    let job = app.wait_for_status(&gone, "dead", WAIT);
    assert_eq!(job["attempts"], 1, "a 404 is not retried: {job}");
    assert_eq!(error_messages(&job), ["HTTP 404 Not Found: no such hook"]);
    assert_eq!(server.received_at("/gone").len(), 1);

    let job = app.wait_for_status(&down, "dead", WAIT);
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(server.received_at("/down").len(), 2);
}

#[test]
fn a_429_waits_as_long_as_retry_after_says() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route(
        "/limited",
        vec![
            Reply::text(429, "slow down").header("retry-after", "1"),
            Reply::text(200, "ok"),
        ],
    );

    let id = enqueue(
        &app,
        json!({"url": server.url("/limited")}),
        json!({"max_attempts": 3}),
    );
    let job = app.wait_for_status(&id, "succeeded", WAIT);
    assert_eq!(job["result"]["body"], "ok", "{job}");
    let got = server.received_at("/limited");
    assert_eq!(got.len(), 2, "{job}");
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After"
    );
}

#[test]
fn redirects_are_followed_and_checked_by_the_guard_at_every_hop() {
    let redis = Redis::start();
    let server = HttpServer::start();
    // Also loopback, but outside the one address the app is allowed to reach.
    let target = HttpServer::start_on("127.0.0.2");
    let app = app(&redis, Some("127.0.0.1/32"));
    server.route(
        "/hop",
        vec![Reply::status(302).header("location", "/final")],
    );
    server.route("/final", vec![Reply::text(200, "arrived")]);
    server.route(
        "/escape",
        vec![Reply::status(307).header("location", &target.url("/secret"))],
    );
    server.route(
        "/loop",
        vec![Reply::status(302).header("location", "/loop")],
    );

    let hop = enqueue(&app, json!({"url": server.url("/hop")}), json!({}));
    let escape = enqueue(
        &app,
        json!({"url": server.url("/escape")}),
        json!({"max_attempts": 3}),
    );
    let looping = enqueue(
        &app,
        json!({"url": server.url("/loop")}),
        json!({"max_attempts": 3}),
    );

    let job = app.wait_for_status(&hop, "succeeded", WAIT);
    assert_eq!(job["result"]["body"], "arrived", "{job}");
    let job = app.wait_for_status(&escape, "dead", WAIT);
    assert_eq!(job["attempts"], 1, "{job}");
    let error = &error_messages(&job)[0];
    assert!(
        error.contains("blocked address 127.0.0.2 (loopback)"),
        "{error}"
    );
    assert!(target.received().is_empty(), "{:?}", target.received());
    let job = app.wait_for_status(&looping, "dead", WAIT);
    assert_eq!(error_messages(&job), ["more than 5 redirects"]);
    assert_eq!(
        server.received_at("/loop").len(),
        6,
        "the first request and 5 redirects"
    );
}

#[test]
fn a_response_slower_than_the_timeout_fails_the_attempt() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route(
        "/slow",
        vec![Reply::text(200, "late").after(Duration::from_secs(5))],
    );

    let id = enqueue(
        &app,
        json!({"url": server.url("/slow"), "timeout": 0.5}),
        json!({"max_attempts": 1}),
    );
    let job = app.wait_for_status(&id, "dead", WAIT);
    assert_eq!(
        error_messages(&job),
        ["no response within the 0.5s timeout"]
    );
    let took = support::ms(&job["finished_at"]) - support::ms(&job["created_at"]);
    assert!(
        took < 4000,
        "the attempt waited for the slow reply: {took} ms"
    );
}

#[test]
fn a_body_without_end_is_cut_at_the_cap() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route("/endless", vec![Reply::endless()]);

    let id = enqueue(&app, json!({"url": server.url("/endless")}), json!({}));
    let job = app.wait_for_status(&id, "succeeded", WAIT);
    assert_eq!(
        job["result"]["body_truncated"], true,
        "{}",
        job["result"]["headers"]
    );
    let body = job["result"]["body"].as_str().expect("a text body");
    assert_eq!(body.len(), 56 * 1024 - 2, "the cap counts the quotes");
    assert!(body.bytes().all(|b| b == b'y'));
}

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
