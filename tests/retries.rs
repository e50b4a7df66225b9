//! Retries against a real Redis: a failing job is retried with growing backoff until it is dead,
//! `times` succeeds on a later attempt, `permanent` is not retried, and `retry_after` overrides
//! the backoff; while a job waits for its retry it shows `retrying`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Redis};

/// The `retry_in_ms` of each `job.finished` line of `id`, in order (None when it was not retried).
fn retry_delays(app: &App, id: &str) -> Vec<Option<u64>> {
    app.log_lines("event=job.finished")
        .iter()
        .filter(|line| line.contains(&format!("job_id={id}")))
        .map(|line| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix("retry_in_ms="))
                .map(|v| v.parse().expect("retry_in_ms is a number"))
        })
        .collect()
}

#[test]
fn a_failing_job_is_retried_with_growing_backoff_until_it_is_dead() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &support::FAST_BACKOFF);
    let id = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"message": "boom"}, "max_attempts": 3
    }));

    let dead = app.wait_for_status(&id, "dead", Duration::from_secs(10));
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["max_attempts"], 3, "{dead}");
    let errors = dead["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3, "{dead}");
    for (i, error) in errors.iter().enumerate() {
        assert_eq!(error["attempt"], i as u64 + 1, "{dead}");
        assert_eq!(error["message"], "boom", "{dead}");
    }
    assert!(dead["finished_at"].is_string(), "{dead}");
    assert_eq!(dead["result"], Value::Null, "{dead}");

    // Each retry waited its backoff: about base x 2^(n-1) with ±25% jitter, so the delays the
    // worker chose do not overlap and grow, and the attempts really were that far apart.
    let delays = retry_delays(&app, &id);
    assert_eq!(delays.len(), 3, "{delays:?}\n{}", app.logs());
    let (first, second) = (
        delays[0].expect("first failure retried"),
        delays[1].expect("second failure retried"),
    );
    assert_eq!(delays[2], None, "the third failure is final: {delays:?}");
    assert!((150..=250).contains(&first), "first backoff {first} ms");
    assert!((300..=500).contains(&second), "second backoff {second} ms");
    assert!(second > first, "backoff grows: {first} then {second} ms");
    let at: Vec<i64> = errors.iter().map(|e| support::ms(&e["at"])).collect();
    let (gap1, gap2) = (at[1] - at[0], at[2] - at[1]);
    eprintln!(
        "backoff chosen {first} ms, {second} ms; failures {gap1} ms, {gap2} ms apart; dead after {} ms",
        support::ms(&dead["finished_at"]) - support::ms(&dead["created_at"])
    );
    assert!(gap1 >= first as i64, "retried after {gap1} ms < {first} ms");
    assert!(
        gap2 >= second as i64,
        "retried after {gap2} ms < {second} ms"
    );
    assert!(
        support::ms(&dead["finished_at"]) - support::ms(&dead["created_at"]) < 5000,
        "took too long to die: {dead}"
    );
    let line = app
        .log_lines(&format!("job_id={id}"))
        .into_iter()
        .rfind(|l| l.contains("event=job.finished"))
        .unwrap_or_default();
    assert!(
        line.contains("status=dead") && line.contains("attempt=3"),
        "{line}"
    );
}

#[test]
fn a_job_that_fails_twice_succeeds_on_its_third_attempt() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &support::FAST_BACKOFF);
    let id = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"times": 2, "message": "not yet"}, "max_attempts": 5
    }));
    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["result"], json!({"succeeded_on_attempt": 3}), "{done}");
    let errors = done["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{done}");
    assert_eq!(errors[0]["attempt"], 1, "{done}");
    assert_eq!(errors[1]["attempt"], 2, "{done}");
    assert!(errors.iter().all(|e| e["message"] == "not yet"), "{done}");
}

#[test]
fn a_permanent_failure_is_dead_after_one_attempt() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &support::FAST_BACKOFF);
    let id = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"permanent": true, "message": "bad input"}, "max_attempts": 5
    }));
    let dead = app.wait_for_status(&id, "dead", Duration::from_secs(10));
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert_eq!(dead["errors"].as_array().map(Vec::len), Some(1), "{dead}");
    assert_eq!(dead["errors"][0]["message"], "bad input", "{dead}");
    // It stays dead: no retry was scheduled (the fail script writes the outcome and any retry at
    // once, so the retry set would hold it now).
    assert_eq!(app.queue_counter("retrying"), 0);
    assert_eq!(app.queue_counter("dead"), 1);
    let still = app.job(&id);
    assert_eq!(
        (&still["status"], &still["attempts"]),
        (&json!("dead"), &json!(1))
    );
}

#[test]
fn retry_after_overrides_the_backoff_and_the_waiting_job_shows_retrying() {
    let redis = Redis::start();
    // Backoff alone would retry after about 50 ms.
    let app = App::start_ready(
        &redis.url(),
        &[("RETRY_BACKOFF_BASE", "0.05"), ("RETRY_BACKOFF_MAX", "1")],
    );
    let id = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"times": 1, "retry_after": 1.5, "message": "slow down"},
        "max_attempts": 3
    }));

    // While it waits for its retry: status retrying, and GET /queues counts it.
    let waiting = app.wait_for_status(&id, "retrying", Duration::from_secs(5));
    assert_eq!(waiting["attempts"], 1, "{waiting}");
    let failed_at = support::ms(&waiting["errors"][0]["at"]);
    let due = support::ms(&waiting["run_at"]) - failed_at;
    assert!(
        (1400..=1600).contains(&due),
        "retry due {due} ms after the failure: {waiting}"
    );
    assert!(app.queue_counter("retrying") >= 1);

    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["attempts"], 2, "{done}");
    let waited = support::ms(&done["started_at"]) - failed_at;
    eprintln!("retry_after 1.5 s: second attempt started {waited} ms after the failure");
    assert!(
        waited >= 1200,
        "retried after {waited} ms, wanted about 1500"
    );
    assert!(
        waited <= 3000,
        "retried after {waited} ms, wanted about 1500"
    );
    assert_eq!(app.queue_counter("retrying"), 0);
}

#[test]
fn a_job_that_exceeds_its_timeout_is_a_failed_attempt_and_is_retried() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &support::FAST_BACKOFF);
    let id = app.enqueue_ok(&json!({
        "kind": "sleep", "args": {"ms": 60000}, "timeout": 0.3, "max_attempts": 2
    }));
    let dead = app.wait_for_status(&id, "dead", Duration::from_secs(10));
    assert_eq!(dead["attempts"], 2, "{dead}");
    assert_eq!(dead["timeout"], 0.3, "{dead}");
    let errors = dead["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{dead}");
    for error in errors {
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("timed out"), "{dead}");
    }
    // Each attempt ran about its timeout, not the minute it asked for.
    let took = support::ms(&dead["finished_at"]) - support::ms(&dead["started_at"]);
    assert!(
        (250..3000).contains(&took),
        "the last attempt took {took} ms"
    );
}

/// With the default `JOB_LOG` a success costs one `info` line, yet a failed attempt that will be
/// retried still warns and a dead job is still an error: what an alert on the log should see.
#[test]
fn with_the_default_job_log_failures_keep_their_levels() {
    let redis = Redis::start();
    let mut env = support::FAST_BACKOFF.to_vec();
    env.push(("JOB_LOG", "finished"));
    let app = App::start_ready(&redis.url(), &env);
    let ok = app.enqueue_ok(&json!({"kind": "noop"}));
    let failing = app.enqueue_ok(&json!({"kind": "fail", "max_attempts": 2}));
    app.wait_for_status(&ok, "succeeded", Duration::from_secs(10));
    app.wait_for_status(&failing, "dead", Duration::from_secs(10));

    let lines = |id: &str| -> Vec<String> {
        app.log_lines(&format!("job_id={id}"))
            .into_iter()
            // The worker's lines (the request logged its own `job.enqueued`).
            .filter(|l| l.contains("event=job.") && !l.contains("event=job.enqueued"))
            .collect()
    };
    let ok_lines = lines(&ok);
    assert_eq!(ok_lines.len(), 1, "{ok_lines:?}");
    assert!(
        ok_lines[0].starts_with("at=info event=job.finished")
            && ok_lines[0].contains("status=succeeded"),
        "{ok_lines:?}"
    );
    let finished: Vec<String> = lines(&failing)
        .into_iter()
        .filter(|l| l.contains("event=job.finished"))
        .collect();
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(
        finished[0].starts_with("at=warn ") && finished[0].contains("status=retrying"),
        "{finished:?}"
    );
    assert!(
        finished[1].starts_with("at=error ") && finished[1].contains("status=dead"),
        "{finished:?}"
    );
    assert!(
        app.log_lines("event=job.started").is_empty(),
        "{}",
        app.logs()
    );
}
