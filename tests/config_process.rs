//! The process as configured: demo kinds only on request, SIGHUP drains like SIGTERM, and the
//! command line answers `--help` and `--version` without starting anything.

mod support;

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
