//! HTTP hardening against hostile or broken clients: lying lengths, stalled bodies, foreign
//! `Host` names in loopback-only mode, Redis error text on `/health`, HEAD and `Allow`, errors
//! of the HTTP layer itself, every spelling of a job id, and sub-millisecond timeouts.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis, assert_error, raw_exchange};

fn assert_healthy(app: &App) {
    let (status, body) = app.get("/health");
    assert_eq!(status, StatusCode::OK, "{body}\n{}", app.logs());
}

/// A POST /jobs head declaring `length` body bytes, followed by `body`.
fn post_head(port: u16, length: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n{body}"
    )
    .into_bytes()
}

#[test]
fn a_lying_content_length_past_the_limit_gets_413_at_once_and_the_process_lives() {
    let redis = Redis::start();
    let app = App::start(&redis.url(), &[("MAX_BODY_BYTES", "16777216")]);
    let port = app.port();
    let res = raw_exchange(
        port,
        &post_head(port, "999999999999", "{\"kind\""),
        Duration::from_secs(5),
    );
    assert_error(
        res.status_code(),
        &res.json(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(
        res.closed,
        "the rest of the body is not waited for: {res:?}"
    );
    assert_healthy(&app);
}

#[test]
fn a_length_within_a_huge_limit_is_not_allocated_up_front() {
    // The old reader reserved the declared length at once: with a limit this large, a lying
    // Content-Length aborted the process ("memory allocation ... failed").
    let redis = Redis::start();
    let mut app = App::spawn(
        &redis.url(),
        &[
            ("MAX_BODY_BYTES", "1000000000000"),
            ("REQUEST_TIMEOUT", "1"),
        ],
    );
    let up = support::eventually(Duration::from_secs(10), || {
        if !app.log_lines("event=app.started").is_empty() {
            return Some(true);
        }
        app.log_lines("event=config.invalid").first().map(|_| false)
    });
    if up == Some(false) {
        eprintln!("MAX_BODY_BYTES=1e12 is refused by config; nothing to allocate");
        return;
    }
    let port = app.port();
    assert_eq!(up, Some(true), "never bound:\n{}", app.logs());
    let res = raw_exchange(
        port,
        &post_head(port, "999999999999", "{\"kind\""),
        Duration::from_secs(10),
    );
    assert_eq!(res.status(), Some(408), "{res:?}\n{}", app.logs());
    assert!(
        app.wait_exit(Duration::from_millis(100)).is_none(),
        "died:\n{}",
        app.logs()
    );
    assert_healthy(&app);
}

#[test]
fn a_stalled_body_gets_a_json_408_and_the_connection_is_closed() {
    // Passes once REQUEST_TIMEOUT is honoured (app.rs reads it until config.rs has the field).
    let redis = Redis::start();
    let app = App::start(&redis.url(), &[("REQUEST_TIMEOUT", "1")]);
    let port = app.port();
    let started = Instant::now();
    let res = raw_exchange(
        port,
        &post_head(port, "100", "{\"kind\":"),
        Duration::from_secs(10),
    );
    assert_error(
        res.status_code(),
        &res.json(),
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
    );
    assert!(res.closed, "{res:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!app.log_lines("status=408").is_empty(), "{}", app.logs());
}

#[test]
fn a_stalled_request_head_is_answered_408_within_the_request_timeout() {
    // actix's own default is 5 s; REQUEST_TIMEOUT=1 must shorten it.
    let redis = Redis::start();
    let app = App::start(&redis.url(), &[("REQUEST_TIMEOUT", "1")]);
    let started = Instant::now();
    let res = raw_exchange(
        app.port(),
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        Duration::from_secs(10),
    );
    assert_eq!(res.status(), Some(408), "{res:?}");
    assert!(res.closed, "{res:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hundreds_of_trickling_and_half_open_connections_do_not_starve_health() {
    let redis = Redis::start();
    let app = App::start(&redis.url(), &[("REQUEST_TIMEOUT", "2")]);
    let port = app.port();
    assert!(
        support::eventually(Duration::from_secs(10), || {
            (app.get("/health").0 == StatusCode::OK).then_some(())
        })
        .is_some()
    );
    let mut held = Vec::new();
    for i in 0..200 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let request = if i % 2 == 0 {
            post_head(port, "100", "{\"kind\":")
        } else {
            b"GET /queues HTTP/1.1\r\nHost: localhost\r\n".to_vec()
        };
        stream.write_all(&request).expect("write");
        if i % 4 == 1 {
            // Half-open: the client will send nothing more.
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        held.push(stream);
    }
    let started = Instant::now();
    assert_healthy(&app);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // ...and every one of them is let go within the timeout, not held for good.
    let deadline = Instant::now() + Duration::from_secs(15);
    for (i, stream) in held.iter_mut().enumerate() {
        use std::io::Read;
        let mut sink = Vec::new();
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .expect("timeout");
        let result = stream.read_to_end(&mut sink);
        assert!(
            result.is_ok()
                || matches!(result, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "connection {i} still open: {result:?}"
        );
    }
    assert_healthy(&app);
}

fn request_with_host(port: u16, path: &str, host: Option<&str>) -> support::RawResponse {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    raw_exchange(
        port,
        format!("GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
}

#[test]
fn without_a_token_only_host_names_of_this_machine_are_served() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let port = app.port();
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("localhost.:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let res = request_with_host(port, "/queues", Some(&host));
        assert_error(
            res.status_code(),
            &res.json(),
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        "127.0.0.1".to_string(),
        format!("[::1]:{port}"),
    ] {
        let res = request_with_host(port, "/queues", Some(&host));
        assert_eq!(res.status(), Some(200), "{host}: {res:?}");
    }
    // Public paths hold no data, and Heroku's router sends the app's own name.
    let res = request_with_host(port, "/health", Some("myapp.herokuapp.com"));
    assert_eq!(res.status(), Some(200), "{res:?}");
    let res = request_with_host(port, "/queues", None);
    assert_eq!(res.status(), Some(400), "{res:?}");
}

#[test]
fn with_a_token_any_host_name_is_served() {
    let redis = Redis::start();
    let app = App::start(
        &redis.url(),
        &[("API_TOKEN", "s3cret-token"), ("WORKER_CONCURRENCY", "0")],
    );
    let res = raw_exchange(
        app.port(),
        b"GET /queues HTTP/1.1\r\nHost: onedyno.herokuapp.com\r\nAuthorization: Bearer s3cret-token\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(res.status(), Some(200), "{res:?}\n{}", app.logs());
}

#[test]
fn health_does_not_show_redis_error_text() {
    let redis = Redis::start_with_password("hunter2");
    let app = App::start(&redis.url(), &[("WORKER_CONCURRENCY", "0")]);
    // Until the background connect has made its connection, /health says "redis unreachable";
    // after it, Redis answers every command with NOAUTH. Neither answer may carry Redis's text.
    let refused = support::eventually(Duration::from_secs(10), || {
        let res = app
            .http()
            .get(app.url("/health"))
            .send()
            .expect("GET /health");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = res.text().expect("body");
        assert!(!text.contains("NOAUTH"), "{text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        (body["reason"] == "redis refused the check").then_some(body)
    });
    assert_eq!(
        refused,
        Some(json!({"status": "unavailable", "reason": "redis refused the check"}))
    );
    // The detail is for the log.
    app.wait_for_log("event=health.unhealthy", Duration::from_secs(1));
    assert!(app.log_lines("event=health.unhealthy")[0].contains("NOAUTH"));
    // The detail is in the log, for the operator.
    app.wait_for_log("event=health.unhealthy", Duration::from_secs(2));
}

#[test]
fn head_answers_like_get_without_a_body() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let id = app.enqueue_ok(&json!({"kind": "noop"}));
    for path in [
        "/health".to_string(),
        "/".to_string(),
        "/queues".to_string(),
        format!("/jobs/{id}"),
        "/jobs?status=dead".to_string(),
    ] {
        let get = app.http().get(app.url(&path)).send().expect("GET");
        let head = app.http().head(app.url(&path)).send().expect("HEAD");
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(get.status(), StatusCode::OK, "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().expect("HEAD body").is_empty(), "{path}");
    }
    // HEAD needs the same authorisation as GET: an unknown job is still a 404.
    let head = app
        .http()
        .head(app.url("/jobs/0190a0a0-0000-7000-8000-000000000000"))
        .send()
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}

#[test]
fn every_405_carries_allow_with_the_resources_methods() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let id = "0190a0a0-0000-7000-8000-000000000000";
    for (method, path, allow) in [
        ("PUT", "/jobs".to_string(), "GET, HEAD, POST"),
        ("DELETE", "/health".to_string(), "GET, HEAD"),
        ("POST", "/".to_string(), "GET, HEAD"),
        ("POST", "/queues".to_string(), "GET, HEAD"),
        ("PATCH", format!("/jobs/{id}"), "GET, HEAD, DELETE"),
        ("GET", format!("/jobs/{id}/retry"), "POST"),
    ] {
        let res = app
            .http()
            .request(method.parse().unwrap(), app.url(&path))
            .send()
            .expect("request");
        assert_eq!(
            res.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let status = res.status();
        let body: Value = res.json().expect("JSON");
        assert_error(
            status,
            &body,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
    }
}

#[test]
fn malformed_requests_get_400_or_431_and_one_readable_warn_line_each() {
    let redis = Redis::start();
    let app = App::start(&redis.url(), &[("WORKER_CONCURRENCY", "0")]);
    let port = app.port();
    let res = raw_exchange(port, b"NOT A REQUEST\r\n\r\n", Duration::from_secs(5));
    assert_eq!(res.status(), Some(400), "{res:?}");
    let res = raw_exchange(
        port,
        &post_head(port, "twelve", "{}"),
        Duration::from_secs(5),
    );
    assert_eq!(res.status(), Some(400), "{res:?}");
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let res = raw_exchange(port, huge.as_bytes(), Duration::from_secs(5));
    assert_eq!(res.status(), Some(431), "{res:?}");

    let warned = support::eventually(Duration::from_secs(3), || {
        let lines = app.log_lines("event=http.protocol_error");
        (lines.len() >= 3).then_some(lines)
    })
    .unwrap_or_else(|| panic!("no protocol_error lines:\n{}", app.logs()));
    for line in &warned {
        assert!(
            line.starts_with("at=warn ")
                && line.contains(" request_id=")
                && line.contains(" error="),
            "{line}"
        );
    }
    assert!(
        app.log_lines("stream error").is_empty(),
        "actix's own error lines leak:\n{}",
        app.logs()
    );
    assert!(app.log_lines("at=error").is_empty(), "{}", app.logs());
    assert_healthy(&app);
}

#[test]
fn extractor_errors_get_the_json_error_body() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let (status, body) = app.list("dead", "&limit=many");
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    // An unknown status fails the query's own parsing, as does an unknown parameter.
    let (status, body) = app.list("bogus", "");
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let (status, body) = app.list("queued", "&colour=red");
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let (status, body) = app.get("/jobs/%FF%FE");
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[test]
fn any_spelling_of_a_job_uuid_names_the_job() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let id = app.enqueue_ok(&json!({"kind": "noop"}));
    let upper = id.to_uppercase();
    let braced = format!("{{{id}}}");
    let urn = format!("urn:uuid:{upper}");

    for spelling in [&upper, &braced, &urn] {
        let (status, job) = app.get(&format!("/jobs/{spelling}"));
        assert_eq!(status, StatusCode::OK, "{spelling}: {job}");
        assert_eq!(job["id"], id.as_str());
    }
    let res = app
        .http()
        .delete(app.url(&format!("/jobs/{upper}")))
        .send()
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().expect("JSON")["status"], "cancelled");
    let res = app
        .http()
        .post(app.url(&format!("/jobs/{braced}/retry")))
        .send()
        .expect("retry");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let retried: Value = res.json().expect("JSON");
    assert_eq!(retried["id"], id.as_str());
    assert_eq!(retried["status"], "queued", "{retried}");
    let res = app
        .http()
        .delete(app.url(&format!("/jobs/{urn}")))
        .send()
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::OK);
    // Not a UUID at all: still 404.
    let (status, body) = app.get("/jobs/JOB-42");
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[test]
fn a_timeout_below_one_millisecond_is_refused() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    for timeout in [0.0001, 0.0009] {
        let (status, _, body) = app.enqueue(&json!({"kind": "noop", "timeout": timeout}));
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    }
    let (status, _, body) = app.enqueue(&json!({"kind": "noop", "timeout": 0.001}));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}
