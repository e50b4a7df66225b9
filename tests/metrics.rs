//! Metrics against a real binary: `GET /metrics` after some jobs (counters, the duration
//! histogram and the gauges with their labels, token required), the l2met line with a short
//! `METRICS_INTERVAL`, and which requests `LOG_REQUESTS` logs.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis, eventually};

const TOKEN: &str = "metrics-test-token-0123456789";

fn scrape(app: &App, token: Option<&str>) -> (StatusCode, String) {
    let mut req = app.http().get(app.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().expect("GET /metrics");
    (res.status(), res.text().unwrap_or_default())
}

#[test]
fn metrics_count_jobs_requests_and_read_the_queues() {
    let redis = Redis::start();
    let app = App::start_ready(
        &redis.url(),
        &[
            ("API_TOKEN", TOKEN),
            ("METRICS_INTERVAL", "1"),
            ("DYNO", "web.7"),
        ],
    );
    let client = app.http();
    let enqueue = |body: serde_json::Value| {
        let res = client
            .post(app.url("/jobs"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .expect("POST");
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        res.json::<serde_json::Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ok: Vec<String> = (0..3)
        .map(|_| enqueue(json!({"kind": "echo", "args": {}})))
        .collect();
    let dead = enqueue(json!({"kind": "fail", "args": {"permanent": true}, "queue": "default"}));
    enqueue(json!({"kind": "echo", "args": {}, "queue": "nobody"}));
    let status = |id: &str| {
        client
            .get(app.url(&format!("/jobs/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let done = eventually(Duration::from_secs(10), || {
        (ok.iter().all(|id| status(id) == "succeeded") && status(&dead) == "dead").then_some(())
    });
    assert!(done.is_some(), "{}", app.logs());

    let (code, _) = scrape(&app, None);
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, text) = scrape(&app, Some(TOKEN));
    assert_eq!(code, StatusCode::OK);
    for line in [
        r#"onedyno_jobs_finished_total{queue="default",kind="echo",outcome="succeeded"} 3"#,
        r#"onedyno_jobs_finished_total{queue="default",kind="fail",outcome="dead"} 1"#,
        r#"onedyno_job_duration_seconds_count{queue="default",kind="echo"} 3"#,
        r#"onedyno_job_duration_seconds_bucket{le="+Inf",queue="default",kind="echo"} 3"#,
        r#"onedyno_queue_depth{queue="nobody"} 1"#,
        "onedyno_jobs_running 0",
        "# TYPE onedyno_queue_latency_seconds gauge",
        "# TYPE onedyno_process_resident_memory_bytes gauge",
        r#"onedyno_http_requests_total{route="/jobs",status="202"} 5"#,
        r#"onedyno_http_requests_total{route="/jobs/{id}",status="200"}"#,
        r#"onedyno_http_requests_total{route="/metrics",status="401"} 1"#,
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    // Route templates only: no job id is a label.
    assert!(!text.contains(&ok[0]), "{text}");

    // The l2met line: one per interval, with what finished since the previous one.
    let line = eventually(Duration::from_secs(10), || {
        app.log_lines("event=metrics")
            .into_iter()
            .find(|l| l.contains("count#jobs.succeeded=3"))
    })
    .unwrap_or_else(|| panic!("no metrics line:\n{}", app.logs()));
    for part in [
        "source=web.7",
        "count#jobs.dead=1",
        "count#jobs.failed=0",
        "measure#jobs.duration.p50=",
        "measure#jobs.duration.p99=",
        "sample#queue.nobody.depth=1",
        "sample#queue.default.latency=",
        "sample#jobs.running=0",
        "sample#memory.rss=",
    ] {
        assert!(line.contains(part), "no {part:?} in {line}");
    }
    // The next line counts only what finished since.
    let later = eventually(Duration::from_secs(5), || {
        let lines = app.log_lines("event=metrics");
        let at = lines.iter().position(|l| l == &line)?;
        lines.get(at + 1).cloned()
    })
    .expect("a second metrics line");
    assert!(later.contains("count#jobs.succeeded=0"), "{later}");
}

#[test]
fn successful_polls_are_not_logged_unless_asked() {
    let redis = Redis::start();
    let quiet = App::start_web_only(&redis.url());
    let loud = App::start_web_only_with(&redis.url(), &[("LOG_REQUESTS", "all")]);
    for app in [&quiet, &loud] {
        assert_eq!(app.get("/queues").0, StatusCode::OK);
        assert_eq!(app.get("/jobs/not-a-job").0, StatusCode::NOT_FOUND);
        app.enqueue_ok(&json!({"kind": "echo", "args": {}}));
    }
    for app in [&quiet, &loud] {
        app.wait_for_log(
            "method=GET path=/jobs/not-a-job status=404",
            Duration::from_secs(5),
        );
        app.wait_for_log("method=POST path=/jobs status=202", Duration::from_secs(5));
    }
    loud.wait_for_log("method=GET path=/queues status=200", Duration::from_secs(5));
    assert!(
        quiet.log_lines("path=/queues").is_empty(),
        "{}",
        quiet.logs()
    );
    // A bad setting names itself and exits 2.
    let mut bad = App::spawn(&redis.url(), &[("LOG_REQUESTS", "some")]);
    let status = bad.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2));
    assert!(bad.logs().contains("LOG_REQUESTS"), "{}", bad.logs());
}
