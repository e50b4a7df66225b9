//! `POST /jobs` with a JSON array: all stored or none, one result per job in order, an
//! idempotency key per job, at most 1000 jobs, and errors that name the job's index.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis};

fn job_keys(conn: &mut redis::Connection) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(support::in_every_shard("job:*"))
        .query(conn)
        .expect("KEYS")
}

/// The `jobs` of a 202 reply.
#[track_caller]
fn stored(app: &App, batch: &Value) -> Vec<Value> {
    let (status, _, body) = app.enqueue(batch);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["jobs"].as_array().expect("jobs").clone()
}

#[test]
fn a_batch_is_stored_in_order_and_every_job_runs() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let batch: Vec<Value> = (0..50)
        .map(|n| json!({"kind": "echo", "args": {"n": n}}))
        .chain([json!({"kind": "echo", "args": {"later": true}, "delay": 3600})])
        .collect();
    let jobs = stored(&app, &Value::Array(batch));
    assert_eq!(jobs.len(), 51);
    assert!(jobs.iter().all(|j| j["created"] == true), "{jobs:?}");
    assert_eq!(jobs[50]["status"], "scheduled");
    for (n, job) in jobs[..50].iter().enumerate() {
        let id = job["id"].as_str().expect("id");
        let done = app.wait_for_status(id, "succeeded", Duration::from_secs(20));
        assert_eq!(done["result"], json!({"n": n}), "{done}");
    }
    let later = app.job(jobs[50]["id"].as_str().expect("id"));
    assert_eq!(later["status"], "scheduled", "{later}");
}

#[test]
fn one_bad_job_refuses_the_whole_batch_naming_its_index() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let mut conn = redis.conn();
    let cases = [
        (
            json!([{"kind": "noop"}, {"kind": "no-such-kind"}, {"kind": "noop"}]),
            "jobs[1]",
        ),
        (
            json!([{"kind": "noop"}, {"kind": "noop", "max_attempts": 0}]),
            "jobs[1]",
        ),
        (json!([{"kind": "noop"}, {"kind": "noop"}, 7]), "jobs[2]"),
        (json!([{"kind": "noop", "idempotency_key": ""}]), "jobs[0]"),
        (json!([{"kind": "noop", "typo": 1}]), "jobs[0]"),
    ];
    for (batch, index) in cases {
        let (status, _, body) = app.enqueue(&batch);
        let message =
            support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert!(message.starts_with(index), "{index}: {message}");
    }
    let (status, _, body) = app.enqueue(&json!([]));
    support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    // JSON that is well formed as a batch but not as a job (a lone surrogate, a number out of
    // range) is malformed JSON, a 400, still naming the job.
    for (body, index) in [
        (
            r#"[{"kind": "noop"}, {"kind": "echo", "args": {"s": "\ud800"}}]"#,
            "jobs[1]",
        ),
        (r#"[{"kind": "echo", "args": {"n": 1e400}}]"#, "jobs[0]"),
    ] {
        let res = support::client()
            .post(app.url("/jobs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("POST /jobs");
        let status = res.status();
        let body: Value = res.json().expect("json");
        let message =
            support::assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
        assert!(message.contains(index), "{index}: {message}");
    }
    assert!(job_keys(&mut conn).is_empty());
    assert_eq!(support::queue_len(&mut conn, "default"), 0);
}

/// Batches are stored one full batch at a time: while Redis does not answer, a batch that waits
/// for its turn longer than REQUEST_TIMEOUT is answered 503, and the batches after it are served
/// again once Redis is back.
#[test]
fn a_batch_that_waits_too_long_for_its_turn_is_answered_503() {
    let redis = Redis::start();
    let app = App::start_web_only_with(&redis.url(), &[("REQUEST_TIMEOUT", "1")]);
    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let slept: redis::RedisResult<String> =
            redis::cmd("DEBUG").arg("SLEEP").arg(4).query(&mut conn);
        slept.expect("DEBUG SLEEP");
    });
    std::thread::sleep(Duration::from_millis(200));
    let full = std::thread::scope(|scope| {
        let first = scope.spawn(|| app.enqueue(&Value::Array(vec![json!({"kind": "noop"}); 1000])));
        std::thread::sleep(Duration::from_millis(300));
        let (status, _, body) = app.enqueue(&json!([{"kind": "noop"}]));
        let message = support::assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        );
        assert!(message.contains("other batches"), "{message}");
        first.join().expect("first batch").0
    });
    // The full batch held the room while Redis slept: stored, or refused once its call timed out.
    assert!(
        full == StatusCode::ACCEPTED || full == StatusCode::SERVICE_UNAVAILABLE,
        "{full}"
    );
    sleeper.join().unwrap();
    assert_eq!(stored(&app, &json!([{"kind": "noop"}])).len(), 1);
}

#[test]
fn a_batch_holds_at_most_1000_jobs() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let mut conn = redis.conn();
    let batch = |n: usize| Value::Array(vec![json!({"kind": "noop"}); n]);
    let (status, _, body) = app.enqueue(&batch(1001));
    let message = support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(message.contains("1000"), "{message}");
    assert!(job_keys(&mut conn).is_empty());
    assert_eq!(stored(&app, &batch(1000)).len(), 1000);
    assert_eq!(support::queue_len(&mut conn, "default"), 1000);
}

#[test]
fn each_job_has_its_own_idempotency_key() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let mut conn = redis.conn();
    let batch = json!([
        {"kind": "echo", "args": {"order": 1}, "idempotency_key": "order-1"},
        {"kind": "echo", "args": {"order": 2}, "idempotency_key": "order-2"},
        {"kind": "echo", "args": {"order": 3}},
        // The same key and request again in the same batch: the job of the first.
        {"kind": "echo", "args": {"order": 1}, "idempotency_key": "order-1"},
    ]);
    let first = stored(&app, &batch);
    let created: Vec<bool> = first.iter().map(|j| j["created"] == true).collect();
    assert_eq!(created, [true, true, true, false], "{first:?}");
    assert_eq!(first[3]["id"], first[0]["id"]);
    assert_eq!(job_keys(&mut conn).len(), 3);

    // Repeated: the keyed jobs answer with their first job, the unkeyed one is new.
    let again = stored(&app, &batch);
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(again[1]["id"], first[1]["id"]);
    assert_eq!(again[0]["created"], false);
    assert_eq!(again[2]["created"], true);
    assert_ne!(again[2]["id"], first[2]["id"]);
    assert_eq!(job_keys(&mut conn).len(), 4);

    // A key reused with a different request refuses the batch, and nothing of it is stored.
    let reused = json!([
        {"kind": "echo", "args": {"order": 9}},
        {"kind": "echo", "args": {"order": 99}, "idempotency_key": "order-2"},
    ]);
    let (status, _, body) = app.enqueue(&reused);
    let message = support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(message.starts_with("jobs[1]"), "{message}");
    let within = json!([
        {"kind": "echo", "args": {"a": 1}, "idempotency_key": "k"},
        {"kind": "echo", "args": {"a": 2}, "idempotency_key": "k"},
    ]);
    let (status, _, body) = app.enqueue(&within);
    let message = support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(message.starts_with("jobs[1]"), "{message}");
    assert_eq!(job_keys(&mut conn).len(), 4);

    // A batch names keys per job, not in the header.
    let (status, _, body) =
        app.enqueue_with(&json!([{"kind": "noop"}]), &[("Idempotency-Key", "x")]);
    support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
}

/// A batch over queues of different shards is stored by one call per shard; the answers come
/// back in the request's order, with the ids of the jobs made earlier for repeated keys. The body
/// is pretty-printed, as a client may send it: leading whitespace before the array too.
#[test]
fn a_batch_over_several_shards_answers_in_request_order() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let batch = json!([
        {"kind": "echo", "queue": "mail", "idempotency_key": "m-1"},
        {"kind": "echo", "queue": "default", "delay": 3600},
        {"kind": "echo", "queue": "mail"},
        {"kind": "echo", "queue": "default", "idempotency_key": "d-1"},
    ]);
    let body = format!(
        "\n  {}",
        serde_json::to_string_pretty(&batch).expect("json")
    );
    let post = || {
        let res = support::client()
            .post(app.url("/jobs"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .expect("POST /jobs");
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        res.json::<Value>().expect("json")["jobs"]
            .as_array()
            .expect("jobs")
            .clone()
    };
    let first = post();
    let statuses: Vec<&str> = first
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "scheduled", "queued", "queued"]);
    for job in &first {
        let stored = app.job(job["id"].as_str().expect("id"));
        assert_eq!(stored["status"], job["status"], "{stored}");
    }
    let again = post();
    let created: Vec<bool> = again.iter().map(|j| j["created"] == true).collect();
    assert_eq!(created, [false, true, true, false], "{again:?}");
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(again[3]["id"], first[3]["id"]);
    assert_eq!(again[1]["status"], "scheduled");
    assert_ne!(again[2]["id"], first[2]["id"]);
}

/// Many runners finishing at once have their acks written together (`ack_many.lua`): each job
/// still counts in its minute and is listed as succeeded, once.
#[test]
fn jobs_acked_together_are_each_counted_and_listed() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "50")]);
    let total = 600_u64;
    for _ in 0..3 {
        let batch: Vec<Value> = (0..total / 3).map(|_| json!({"kind": "noop"})).collect();
        stored(&app, &Value::Array(batch));
    }
    let processed = || {
        let (code, body) = app.get("/stats/minutes");
        assert_eq!(code, StatusCode::OK, "{body}");
        body["minutes"]
            .as_array()
            .expect("minutes")
            .iter()
            .map(|m| m["processed"].as_u64().expect("processed"))
            .sum::<u64>()
    };
    let done = support::eventually(Duration::from_secs(60), || {
        (processed() >= total).then_some(())
    });
    assert!(done.is_some(), "processed {} of {total}", processed());
    // Settled: nothing counted twice.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processed(), total);
    // Listed as succeeded once each, newest first, across pages.
    let mut listed = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let (code, page) = app.list("succeeded", &format!("&limit=200{cursor}"));
        assert_eq!(code, StatusCode::OK, "{page}");
        for job in page["jobs"].as_array().expect("jobs") {
            assert!(listed.insert(job["id"].as_str().expect("id").to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed.len() as u64, total);
}
