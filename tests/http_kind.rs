//! The `http` kind against a real HTTP server on loopback: results of 2xx, retries, throttling,
//! permanent failures, redirects re-checked by the SSRF guard, timeouts and the body cap.

#[path = "support/http_jobs.rs"]
mod http_jobs;
#[path = "support/http_server.rs"]
mod http_server;
mod support;

use std::time::Duration;

use http_jobs::{WAIT, app, enqueue, error_messages};
use http_server::{HttpServer, Reply};
use serde_json::json;
use support::Redis;

#[test]
fn a_2xx_is_the_result_with_the_headers_of_note() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    let hello = Reply::text(200, "hi there")
        .header("x-request-id", "r-1")
        .header("x-noise", "n");
    server.route("/hello", vec![hello]);
    let created = Reply::json(201, &json!({"id": 42})).header("location", "/items/42");
    server.route("/items", vec![created]);

    let args = json!({"url": server.url("/hello"), "headers": {"X-Token": "t0k"}});
    let hello = enqueue(&app, args, json!({}));
    let args = json!({"url": server.url("/items"), "method": "post", "body": {"name": "widget"}});
    let items = enqueue(&app, args, json!({}));

    let job = app.wait_for_status(&hello, "succeeded", WAIT);
    let headers = json!({"content-type": "text/plain; charset=utf-8", "content-length": "8",
                         "x-request-id": "r-1"});
    let want =
        json!({"status": 200, "body": "hi there", "body_truncated": false, "headers": headers});
    assert_eq!(job["result"], want, "{job}");
    let job = app.wait_for_status(&items, "succeeded", WAIT);
    assert_eq!(job["result"]["status"], 201, "{job}");
    assert_eq!(job["result"]["body"], json!({"id": 42}), "{job}");
    assert_eq!(job["result"]["headers"]["location"], "/items/42", "{job}");

    let got = &server.received_at("/hello")[0];
    assert_eq!(got.method, "GET");
    assert_eq!(got.header("x-token"), Some("t0k"));
    let agent = format!("onedyno/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(got.header("user-agent"), Some(agent.as_str()));
    let got = &server.received_at("/items")[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.json(), json!({"name": "widget"}));
}

#[test]
fn a_string_body_is_sent_as_is() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    server.route("/raw", vec![Reply::status(204)]);

    let args = json!({"url": server.url("/raw"), "method": "PUT", "body": "plain words",
                      "headers": {"content-type": "text/plain"}});
    let raw = enqueue(&app, args, json!({}));
    let job = app.wait_for_status(&raw, "succeeded", WAIT);
    assert_eq!(job["result"]["status"], 204, "{job}");
    assert_eq!(job["result"]["body"], "", "{job}");
    let got = &server.received_at("/raw")[0];
    assert_eq!(got.method, "PUT");
    assert_eq!(got.body, b"plain words");
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
        ["no complete response within the 0.5s timeout"]
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
fn a_failed_tls_handshake_is_a_network_error_and_retried() {
    let redis = Redis::start();
    let server = HttpServer::start();
    let app = app(&redis, Some("127.0.0.0/8"));
    // The server speaks plain HTTP, so the client's TLS handshake fails.
    let url = format!("https://127.0.0.1:{}/x", server.port());
    let id = enqueue(&app, json!({"url": url}), json!({"max_attempts": 2}));
    let job = app.wait_for_status(&id, "dead", WAIT);
    assert_eq!(job["attempts"], 2, "retried: {job}");
    let errors = error_messages(&job);
    assert!(errors[0].contains("error sending request"), "{errors:?}");
    assert!(
        !errors[0].contains("127.0.0.1"),
        "no URL in errors: {errors:?}"
    );
}
