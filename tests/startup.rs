//! Start-up: the port is bound at once whether or not Redis is up, bad configuration stops the
//! process with a message naming the variable, and a `rediss://` URL to a self-signed server works.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis};

#[test]
fn with_redis_down_the_port_is_bound_at_once_then_healthy_when_redis_starts() {
    let mut redis = Redis::not_started();
    let started = Instant::now();
    let app = App::spawn(&redis.url(), &[]);
    let bound = support::eventually(Duration::from_secs(2), || {
        std::net::TcpStream::connect(("127.0.0.1", app.port())).ok()
    });
    assert!(
        bound.is_some(),
        "port not bound within 2 s:\n{}",
        app.logs()
    );
    eprintln!("port bound after {:?} with Redis down", started.elapsed());

    let (status, body) = app.get("/health");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let res = app
        .http()
        .post(app.url("/jobs"))
        .json(&json!({"kind": "echo"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "2");
    // Each failed connection attempt is logged.
    app.wait_for_log(
        "event=redis.connect_failed attempt=2",
        Duration::from_secs(5),
    );

    redis.start_again();
    let healthy = support::eventually(Duration::from_secs(10), || {
        (app.get("/health").0 == StatusCode::OK).then_some(())
    });
    assert!(
        healthy.is_some(),
        "not healthy after Redis started:\n{}",
        app.logs()
    );
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"late": true}}));
    let job = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(job["result"], json!({"late": true}));
}

fn start_with_bad_env(var: &str, value: &str) -> (i32, String) {
    let mut app = App::spawn("redis://127.0.0.1:1", &[(var, value)]);
    let status = app
        .wait_exit(Duration::from_secs(5))
        .expect("a bad configuration must stop the process");
    // Give the log readers a moment to drain the pipes.
    std::thread::sleep(Duration::from_millis(100));
    (status.code().unwrap_or(-1), app.logs())
}

#[test]
fn a_bad_configuration_value_stops_start_up_naming_the_variable_and_value() {
    for (var, value) in [
        ("PORT", "eighty"),
        ("WORKER_CONCURRENCY", "-1"),
        ("SHUTDOWN_TIMEOUT", "soon"),
        ("QUEUES", "critical:x"),
        ("REDIS_URL", "http://example.com"),
        ("LOG_FORMAT", "xml"),
        ("MAX_ATTEMPTS", "0"),
        ("MAX_BODY_BYTES", "16777217"),
        ("SHUTDOWN_TIMEOUT", "1e19"),
        ("JOB_RETENTION", "1e16"),
        ("WORKER_CONCURRENCY", "1001"),
        ("REQUEST_TIMEOUT", "NaN"),
        ("DEMO_KINDS", "yes"),
    ] {
        let (code, logs) = start_with_bad_env(var, value);
        assert_eq!(
            code, 2,
            "{var}={value} must fail as a configuration error:\n{logs}"
        );
        assert!(
            logs.contains("event=config.invalid"),
            "{var}={value}:\n{logs}"
        );
        assert!(
            logs.contains(var) && logs.contains(value),
            "{var}={value}: message does not name both:\n{logs}"
        );
    }
}

#[test]
fn a_redis_url_that_does_not_parse_stops_start_up_without_showing_the_password() {
    for url in [
        "redis://:pw-s3cret@host:notaport",
        "redis://user:pw-s3cret@host:6379/notadb",
        "http://:pw-s3cret@host:6379",
    ] {
        let (code, logs) = start_with_bad_env("REDIS_URL", url);
        assert_eq!(code, 2, "{url}:\n{logs}");
        assert!(
            logs.contains("event=config.invalid") && logs.contains("REDIS_URL"),
            "{url}:\n{logs}"
        );
        assert!(
            !logs.contains("pw-s3cret"),
            "{url}: password shown:\n{logs}"
        );
    }
}

#[test]
fn an_unusable_api_token_stops_start_up_without_showing_it() {
    let (code, logs) = start_with_bad_env("API_TOKEN", "tok-s3cret with-space");
    assert_eq!(code, 2, "{logs}");
    assert!(
        logs.contains("event=config.invalid") && logs.contains("API_TOKEN=<redacted>"),
        "{logs}"
    );
    assert!(!logs.contains("s3cret"), "token shown:\n{logs}");
}

#[test]
fn a_padded_token_is_trimmed_and_a_long_shutdown_timeout_warned_about() {
    let redis = Redis::start();
    let app = App::start(
        &redis.url(),
        &[
            ("API_TOKEN", "  tok-s3cret-xyz\n"),
            ("SHUTDOWN_TIMEOUT", "45"),
        ],
    );
    app.wait_for_log("event=config.warning", Duration::from_secs(5));
    let warnings = app.log_lines("event=config.warning");
    assert!(
        warnings.iter().any(|l| l.contains("SHUTDOWN_TIMEOUT=45"))
            && warnings
                .iter()
                .any(|l| l.contains("API_TOKEN") && l.contains("trimmed")),
        "{warnings:?}"
    );
    assert!(
        !app.logs().contains("tok-s3cret-xyz"),
        "token logged:\n{}",
        app.logs()
    );
    let with = |token: &str| {
        app.http()
            .get(app.url("/queues"))
            .bearer_auth(token)
            .send()
            .expect("GET /queues")
            .status()
    };
    assert_eq!(with("tok-s3cret-xyz"), StatusCode::OK);
    assert_eq!(with("wrong"), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_rediss_url_connects_to_a_self_signed_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=redis.example.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = support::free_port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    let listening = support::eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(listening.is_some(), "TLS redis-server did not start");

    // As on Heroku: a rediss:// URL, a certificate no one signed, for another host name.
    let url = format!("rediss://127.0.0.1:{port}");
    let app = App::start_ready("redis://127.0.0.1:1", &[("REDIS_TLS_URL", url.as_str())]);
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"tls": true}}));
    let job = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(job["result"], json!({"tls": true}));
    let _ = server.kill();
    let _ = server.wait();
}
