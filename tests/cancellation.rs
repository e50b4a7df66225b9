//! Cancellation against a real Redis: `DELETE /jobs/{id}` keeps a queued or scheduled job from
//! ever running, stops a running job in whichever process runs it, and refuses finished jobs.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis};

fn zscore(conn: &mut redis::Connection, key: &str, id: &str) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(id)
        .query(conn)
        .expect("ZSCORE")
}

#[test]
fn a_cancelled_queued_job_never_runs() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    let mut conn = redis.conn();
    let id = web.enqueue_ok(&json!({"kind": "noop"}));
    assert_eq!(web.job(&id)["status"], "queued");
    assert_eq!(support::queue_len(&mut conn, "default"), 1);

    let (status, body) = web.cancel(&id);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(body["id"], id.as_str(), "{body}");
    assert!(body["finished_at"].is_string(), "{body}");
    // Cancelling is O(1): the id stays in the list until a worker skips it.
    assert_eq!(support::queue_len(&mut conn, "default"), 1);

    // A worker comes along and works the queue: a later job runs, the cancelled one never does.
    let worker = App::start_ready(&redis.url(), &[]);
    let later = web.enqueue_ok(&json!({"kind": "noop"}));
    worker.wait_for_status(&later, "succeeded", Duration::from_secs(10));
    // The cancelled id was ahead of `later` in the list, so it has been fetched and skipped.
    support::wait_idle(&mut conn, "default");
    let job = web.job(&id);
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(job["attempts"], 0, "{job}");
    assert_eq!(job["started_at"], Value::Null, "{job}");
    assert!(worker.log_lines(&format!("job_id={id}")).is_empty());
}

#[test]
fn a_cancelled_scheduled_job_never_runs() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let mut conn = redis.conn();
    let cancelled = app.enqueue_ok(&json!({"kind": "noop", "delay": 2}));
    // Due at the same time, not cancelled: shows the schedule was promoted meanwhile.
    let control = app.enqueue_ok(&json!({"kind": "noop", "delay": 2}));
    assert_eq!(app.job(&cancelled)["status"], "scheduled");

    let (status, body) = app.cancel(&cancelled);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(
        zscore(&mut conn, &support::default_shard().scheduled(), &cancelled),
        None
    );
    let (_, queues) = app.get("/queues");
    assert_eq!(queues["scheduled"], 1, "{queues}");

    app.wait_for_status(&control, "succeeded", Duration::from_secs(8));
    // Nothing is scheduled, queued or running any more, so nothing can still run it.
    assert_eq!(app.queue_counter("scheduled"), 0);
    support::wait_idle(&mut conn, "default");
    let job = app.job(&cancelled);
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(job["attempts"], 0, "{job}");
    assert!(
        app.log_lines(&format!("event=job.started job_id={cancelled}"))
            .is_empty()
    );
}

#[test]
fn cancelling_a_job_running_in_another_process_stops_it_there() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    // A worker-only process: no HTTP, so the DELETE can only reach it through Redis.
    let worker = App::spawn(&redis.url(), &[("ROLE", "worker")]);
    worker.wait_for_log("event=worker.registered", Duration::from_secs(10));
    let mut conn = redis.conn();

    let id = web.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 60000}}));
    let running = web.wait_for_status(&id, "running", Duration::from_secs(10));
    assert_eq!(running["attempts"], 1, "{running}");
    worker.wait_for_log(
        &format!("event=job.started job_id={id}"),
        Duration::from_secs(5),
    );

    let asked = Instant::now();
    let (status, body) = web.cancel(&id);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");

    // The worker stops it and records the end: cancelled, not a failure.
    let ended = support::eventually(Duration::from_secs(3), || {
        let job = web.job(&id);
        (job["finished_at"].is_string() && support::inflight_ids(&mut conn).is_empty())
            .then_some(job)
    })
    .unwrap_or_else(|| {
        panic!(
            "the running job did not stop: {}\n{}",
            web.job(&id),
            worker.logs()
        )
    });
    let took = asked.elapsed();
    eprintln!("a running job in another process stopped {took:?} after DELETE");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(ended["status"], "cancelled", "{ended}");
    assert_eq!(ended["errors"], json!([]), "{ended}");
    assert_eq!(ended["attempts"], 1, "{ended}");
    assert_eq!(ended["result"], Value::Null, "{ended}");
    let finished = worker.log_lines(&format!("event=job.finished job_id={id} "));
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert!(finished[0].contains("status=cancelled"), "{finished:?}");

    // The worker process is fine: still running, and it works the next job.
    let mut worker = worker;
    assert!(
        worker.wait_exit(Duration::ZERO).is_none(),
        "the worker exited"
    );
    let next = web.enqueue_ok(&json!({"kind": "echo", "args": {"after": "cancel"}}));
    let done = web.wait_for_status(&next, "succeeded", Duration::from_secs(10));
    assert_eq!(done["result"], json!({"after": "cancel"}));
    // And the cancelled job was not run again: nothing is left to run or running.
    support::wait_idle(&mut conn, "default");
    let job = web.job(&id);
    assert_eq!(
        (&job["status"], &job["attempts"]),
        (&json!("cancelled"), &json!(1))
    );
}

#[test]
fn succeeded_or_unknown_jobs_cannot_be_cancelled() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let succeeded = app.enqueue_ok(&json!({"kind": "noop"}));
    app.wait_for_status(&succeeded, "succeeded", Duration::from_secs(10));
    let dead = app.enqueue_ok(&json!({"kind": "fail", "args": {"permanent": true}}));
    app.wait_for_status(&dead, "dead", Duration::from_secs(10));

    let (code, body) = app.cancel(&succeeded);
    assert_eq!(
        code,
        StatusCode::CONFLICT,
        "DELETE of a succeeded job: {body}"
    );
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert_eq!(app.job(&succeeded)["status"], "succeeded");
    // A dead job is not cancelled but deleted for good (see tests/lists.rs).
    let (code, body) = app.cancel(&dead);
    assert_eq!(code, StatusCode::OK, "DELETE of a dead job: {body}");
    assert_eq!(body, json!({"id": dead, "deleted": true}));
    let (code, body) = app.cancel("0190a0a0-0000-7000-8000-000000000000");
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (code, _) = app.cancel("not-a-uuid");
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[test]
fn a_job_cancelled_while_it_waits_for_a_retry_is_not_retried() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let mut conn = redis.conn();
    let id = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"retry_after": 1.5}, "max_attempts": 5
    }));
    app.wait_for_status(&id, "retrying", Duration::from_secs(5));
    let (status, body) = app.cancel(&id);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(
        zscore(&mut conn, &support::default_shard().retry(), &id),
        None
    );
    let (_, queues) = app.get("/queues");
    assert_eq!(queues["retrying"], 0, "{queues}");

    // Fails after `id` did, with the same retry_after: once it has been retried, `id`'s retry
    // would have been due too.
    let control = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"retry_after": 1.5}, "max_attempts": 2
    }));
    app.wait_for_status(&control, "dead", Duration::from_secs(10));
    support::wait_idle(&mut conn, "default");
    let job = app.job(&id);
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["errors"].as_array().map(Vec::len), Some(1), "{job}");
}

#[test]
fn a_cancelled_job_can_be_retried_and_then_runs() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    let mut conn = redis.conn();
    let id = web.enqueue_ok(&json!({"kind": "echo", "args": {"second": "chance"}}));
    let (status, _) = web.cancel(&id);
    assert_eq!(status, StatusCode::OK);

    let res = web
        .http()
        .post(web.url(&format!("/jobs/{id}/retry")))
        .send()
        .expect("POST retry");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().unwrap();
    assert_eq!(body["status"], "queued", "{body}");
    assert_eq!(body["finished_at"], Value::Null, "{body}");
    // Queued again, and no longer expiring.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(support::keys().job(&id))
        .query(&mut conn)
        .unwrap();
    assert_eq!(ttl, -1);
    // The id the cancel left behind waits again: the job is in its queue once, not twice.
    assert_eq!(support::queue_len(&mut conn, "default"), 1);

    let worker = App::start_ready(&redis.url(), &[]);
    let done = worker.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["result"], json!({"second": "chance"}));
    assert_eq!(done["attempts"], 1, "{done}");
    // Its cancel's finish time went with the retry: the success keeps its duration instead.
    assert_eq!(support::job_field(&mut conn, &id, "f"), None);
    assert!(support::job_field(&mut conn, &id, "d").is_some());
    assert!(
        support::ms(&done["finished_at"]) >= support::ms(&done["started_at"]),
        "{done}"
    );
}
