//! Idempotency keys against a real Redis: a repeated `POST /jobs` with the same `Idempotency-Key`
//! returns the job the first one created, even when the requests race, and the job runs once.

mod support;

use std::sync::Barrier;
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

#[test]
fn a_repeated_key_returns_the_first_job_and_it_runs_once() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let body = json!({"kind": "echo", "args": {"order": 42}});
    let key = [("Idempotency-Key", "order-42")];

    let (status, location, first) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let id = first["id"].as_str().expect("id").to_string();
    let (status, again_location, again) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id.as_str(), "{again}");
    assert_eq!(again_location, location);

    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["result"], json!({"order": 42}));
    // After it ran, the key still answers with the same (finished) job, and nothing new runs.
    let (status, _, later) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["id"], id.as_str(), "{later}");
    assert_eq!(later["status"], "succeeded", "{later}");
    let mut conn = redis.conn();
    // A job made by the repeat would be queued before its answer; once nothing is queued or
    // running, it would have started.
    support::wait_idle(&mut conn, "default");
    assert_eq!(app.log_lines("event=job.started").len(), 1);
    assert_eq!(app.log_lines("event=job.enqueued").len(), 1);
    assert_eq!(app.job(&id)["attempts"], 1);
    assert_eq!(job_keys(&mut conn).len(), 1);

    // Without the header, or with another key, the same body is a new job.
    let other = app.enqueue_ok(&body);
    assert_ne!(other, id);
    let (status, _, third) = app.enqueue_with(&body, &[("Idempotency-Key", "order-43")]);
    assert_eq!(status, StatusCode::ACCEPTED, "{third}");
    assert_ne!(third["id"], id.as_str());
}

#[test]
fn the_same_key_with_a_different_body_is_refused() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let key = [("Idempotency-Key", "charge-7")];
    let (status, _, first) =
        app.enqueue_with(&json!({"kind": "echo", "args": {"cents": 100}}), &key);
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");

    for different in [
        json!({"kind": "echo", "args": {"cents": 200}}),
        json!({"kind": "noop"}),
    ] {
        let (status, _, body) = app.enqueue_with(&different, &key);
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{different}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid", "{body}");
    }
    // The same request again is still answered with the first job.
    let (status, _, again) =
        app.enqueue_with(&json!({"kind": "echo", "args": {"cents": 100}}), &key);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    let mut conn = redis.conn();
    assert_eq!(job_keys(&mut conn).len(), 1);
    // A key's scope is its queue: in another queue the same key names another job.
    let other = json!({"kind": "echo", "args": {"cents": 100}, "queue": "other"});
    let (status, _, elsewhere) = app.enqueue_with(&other, &key);
    assert_eq!(status, StatusCode::ACCEPTED, "{elsewhere}");
    assert_ne!(elsewhere["id"], first["id"]);
    let (status, _, again) = app.enqueue_with(&other, &key);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], elsewhere["id"]);
}

#[test]
fn twenty_concurrent_requests_with_one_key_create_one_job() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let body = json!({"kind": "echo", "args": {"race": true}});
    let url = app.url("/jobs");
    let barrier = Barrier::new(20);
    let answers: Vec<(StatusCode, Value)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (url, body, barrier) = (&url, &body, &barrier);
                scope.spawn(move || {
                    let client = support::client();
                    barrier.wait();
                    let res = client
                        .post(url)
                        .header("Idempotency-Key", "race-1")
                        .json(body)
                        .send()
                        .expect("POST /jobs");
                    let status = res.status();
                    (status, res.json::<Value>().unwrap_or(Value::Null))
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });

    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let repeated = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, repeated), (1, 19), "{answers:?}");
    let id = answers[0].1["id"].as_str().expect("id").to_string();
    assert!(
        answers.iter().all(|(_, job)| job["id"] == id.as_str()),
        "{answers:?}"
    );

    let mut conn = redis.conn();
    assert_eq!(job_keys(&mut conn), vec![support::keys().job(&id)]);
    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["attempts"], 1, "{done}");
    support::wait_idle(&mut conn, "default");
    assert_eq!(app.log_lines("event=job.started").len(), 1);
    assert_eq!(job_keys(&mut conn).len(), 1);
}

#[test]
fn a_finished_job_outlives_its_retention_while_its_key_lives() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("JOB_RETENTION", "1")]);
    let body = json!({"kind": "echo", "args": {"keep": "me"}});
    let key = [("Idempotency-Key", "keep-1")];
    let (status, _, first) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let id = first["id"].as_str().expect("id").to_string();
    // A job without a key, for comparison, expires after its retention.
    let plain = app.enqueue_ok(&body);
    app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    app.wait_for_status(&plain, "succeeded", Duration::from_secs(10));

    let expired = support::eventually(Duration::from_secs(5), || {
        (app.get(&format!("/jobs/{plain}")).0 == StatusCode::NOT_FOUND).then_some(())
    });
    assert!(
        expired.is_some(),
        "a job without a key outlived JOB_RETENTION"
    );
    let job = app.job(&id);
    assert_eq!(job["status"], "succeeded", "{job}");
    let (status, _, again) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id.as_str(), "{again}");
    assert_eq!(again["attempts"], 1, "{again}");
}

#[test]
fn a_dead_job_is_still_answered_for_its_key_after_dead_retention() {
    // Like a succeeded job above: within the key's 24 h the same request gets the job it created,
    // and never "used with a different request", however short DEAD_RETENTION is.
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("DEAD_RETENTION", "1")]);
    let body = json!({"kind": "fail", "args": {"message": "declined"}, "max_attempts": 1});
    let key = [("Idempotency-Key", "payment-9")];
    let (status, _, first) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let id = first["id"].as_str().expect("id").to_string();
    app.wait_for_status(&id, "dead", Duration::from_secs(10));
    let (status, _, again) = app.enqueue_with(&body, &key);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id.as_str(), "{again}");

    std::thread::sleep(Duration::from_millis(2000));
    let (status, _, later) = app.enqueue_with(&body, &key);
    assert_ne!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the identical request was refused as a different one: {later}"
    );
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["id"], id.as_str(), "{later}");
    assert_eq!(later["status"], "dead", "{later}");
}
