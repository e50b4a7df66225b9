//! The process as configured: demo kinds only on request, SIGHUP drains like SIGTERM, and the
//! command line answers `--help` and `--version` without starting anything and refuses the rest.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis, SIGHUP};

#[test]
fn without_demo_kinds_a_demo_kind_is_refused_naming_the_setting() {
    let redis = Redis::start();
    // An empty value counts as unset, undoing the support code's DEMO_KINDS=true.
    let app = App::start_web_only_with(&redis.url(), &[("DEMO_KINDS", "")]);
    for kind in ["sleep", "fail", "steps", "cpu"] {
        let (status, _, body) = app.enqueue(&json!({"kind": kind, "args": {}}));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{kind}: {body}");
        assert!(body.to_string().contains("DEMO_KINDS"), "{kind}: {body}");
    }
    let (status, _, body) = app.enqueue(&json!({"kind": "nope"}));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(!body.to_string().contains("DEMO_KINDS"), "{body}");
    app.enqueue_ok(&json!({"kind": "echo", "args": {}}));
    app.enqueue_ok(&json!({"kind": "noop"}));

    let with_demo_kinds = App::start_web_only_with(&redis.url(), &[("DEMO_KINDS", "true")]);
    with_demo_kinds.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 1}}));
}

#[test]
fn sighup_drains_like_sigterm_and_exits_zero() {
    let redis = Redis::start();
    let mut app = App::start_ready(&redis.url(), &[("SHUTDOWN_TIMEOUT", "5")]);
    let id = app.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 800}}));
    app.wait_for_status(&id, "running", Duration::from_secs(5));

    app.signal(SIGHUP);
    let status = app
        .wait_exit(Duration::from_secs(6))
        .expect("no exit after SIGHUP");
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    app.wait_for_log("signal=SIGHUP", Duration::from_secs(1));
    assert!(
        app.log_lines("event=shutdown.started")
            .iter()
            .any(|l| l.contains("signal=SIGHUP")),
        "{}",
        app.logs()
    );
    // Drained, not killed: the running job was let finish.
    let mut conn = redis.conn();
    assert_eq!(
        support::job_field(&mut conn, &id, "status").as_deref(),
        Some("succeeded")
    );
}

/// Runs the binary with `args`, bounded: a process that starts serving instead of answering is
/// killed after 5 s and reported as `None`.
fn run_with_args(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onedyno"))
        .args(args)
        .env_clear()
        .env("PORT", support::free_port().to_string())
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start onedyno");
    let exited = support::eventually(Duration::from_secs(5), || child.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut stdout));
    child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut stderr));
    (exited.and_then(|s| s.code()), stdout, stderr)
}

#[test]
fn help_lists_the_variables_and_exits_zero() {
    for flag in ["--help", "-h"] {
        let (code, stdout, stderr) = run_with_args(&[flag]);
        assert_eq!(code, Some(0), "{flag}: {stdout}{stderr}");
        for needle in ["usage: onedyno", "REDIS_URL", "DEMO_KINDS", "README"] {
            assert!(stdout.contains(needle), "{flag}: no {needle}: {stdout}");
        }
        assert!(
            !stderr.contains("event="),
            "{flag} started the app: {stderr}"
        );
    }
}

#[test]
fn version_prints_the_package_version_and_exits_zero() {
    let (code, stdout, stderr) = run_with_args(&["--version"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("onedyno {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_argument_prints_usage_and_exits_2() {
    for args in [&["--port=80"][..], &["serve"], &["--help", "extra"]] {
        let (code, stdout, stderr) = run_with_args(args);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("usage: onedyno"), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}
