//! The dead set against a real Redis: dead jobs are counted, listed and retriable with a fresh
//! budget of attempts; only dead or cancelled jobs can be retried; dead jobs are kept for
//! `DEAD_RETENTION` and at most `DEAD_MAX` of them.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis};

const QUICK_BACKOFF: [(&str, &str); 2] =
    [("RETRY_BACKOFF_BASE", "0.05"), ("RETRY_BACKOFF_MAX", "0.2")];

fn dead_ids(conn: &mut redis::Connection) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(support::default_shard().dead())
        .arg(0)
        .arg(-1)
        .query(conn)
        .expect("ZRANGE")
}

#[test]
fn a_dead_job_is_counted_listed_and_retried_with_a_fresh_budget() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &QUICK_BACKOFF);

    // Fails twice, which is its whole budget; after a manual retry its third attempt succeeds.
    let recovers = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"times": 2, "message": "flaky"}, "max_attempts": 2
    }));
    // Always fails: a manual retry gives it max_attempts more attempts, not one.
    let hopeless = app.enqueue_ok(&json!({
        "kind": "fail", "args": {"message": "hopeless"}, "max_attempts": 2
    }));
    for id in [&recovers, &hopeless] {
        let dead = app.wait_for_status(id, "dead", Duration::from_secs(10));
        assert_eq!(dead["attempts"], 2, "{dead}");
        assert_eq!(dead["errors"].as_array().map(Vec::len), Some(2), "{dead}");
    }
    assert_eq!(app.queue_counter("dead"), 2);
    let listed = app.list_ids("dead");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.contains(&recovers) && listed.contains(&hopeless),
        "{listed:?}"
    );
    let (status, body) = app.list("dead", "&limit=1");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1), "{body}");

    let (status, body) = app.retry(&recovers);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["id"], recovers.as_str(), "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    let done = app.wait_for_status(&recovers, "succeeded", Duration::from_secs(10));
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["result"], json!({"succeeded_on_attempt": 3}), "{done}");
    // The history of the earlier failures is kept.
    assert_eq!(done["errors"].as_array().map(Vec::len), Some(2), "{done}");

    let (status, body) = app.retry(&hopeless);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // It left the dead set while it runs again...
    assert!(!app.list_ids("dead").contains(&hopeless));
    // ...and dies again after two more attempts (a fresh budget), not after one.
    let dead = support::eventually(Duration::from_secs(10), || {
        let job = app.job(&hopeless);
        (job["status"] == "dead" && job["attempts"] == 4).then_some(job)
    })
    .unwrap_or_else(|| panic!("not dead again after 4 attempts: {}", app.job(&hopeless)));
    let attempts: Vec<&Value> = dead["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| &e["attempt"])
        .collect();
    assert_eq!(
        attempts,
        [&json!(1), &json!(2), &json!(3), &json!(4)],
        "{dead}"
    );
    assert_eq!(app.queue_counter("dead"), 1);
    assert_eq!(app.list_ids("dead"), vec![hopeless.clone()]);
}

#[test]
fn only_dead_or_cancelled_jobs_can_be_retried() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "1")]);

    let succeeded = app.enqueue_ok(&json!({"kind": "noop"}));
    app.wait_for_status(&succeeded, "succeeded", Duration::from_secs(10));
    let running = app.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 60000}}));
    app.wait_for_status(&running, "running", Duration::from_secs(10));
    // The single worker is busy, so this one stays queued.
    let queued = app.enqueue_ok(&json!({"kind": "noop"}));
    let scheduled = app.enqueue_ok(&json!({"kind": "noop", "delay": 60}));

    for (id, status) in [
        (&succeeded, "succeeded"),
        (&running, "running"),
        (&queued, "queued"),
        (&scheduled, "scheduled"),
    ] {
        assert_eq!(app.job(id)["status"], status);
        let (code, body) = app.retry(id);
        assert_eq!(
            code,
            StatusCode::CONFLICT,
            "retry of a {status} job: {body}"
        );
        assert_eq!(body["error"]["code"], "conflict", "{body}");
        // Nothing changed.
        assert_eq!(app.job(id)["status"], status);
    }
    let (code, body) = app.retry("0190a0a0-0000-7000-8000-000000000000");
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (code, _) = app.retry("not-a-uuid");
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[test]
fn dead_jobs_are_deleted_after_dead_retention() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("DEAD_RETENTION", "2")]);
    let mut conn = redis.conn();
    let id = app.enqueue_ok(&json!({"kind": "fail", "max_attempts": 1}));
    app.wait_for_status(&id, "dead", Duration::from_secs(10));
    assert!(support::exists(&mut conn, &support::job_key(&id)));
    assert_eq!(dead_ids(&mut conn), vec![id.clone()]);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(support::job_key(&id))
        .query(&mut conn)
        .expect("PTTL");
    assert!((1..=2000).contains(&ttl), "dead job's TTL {ttl} ms");

    let gone = support::eventually(Duration::from_secs(6), || {
        (!support::exists(&mut conn, &support::job_key(&id)) && dead_ids(&mut conn).is_empty())
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "dead job still kept: key exists {}, dead set {:?}",
        support::exists(&mut conn, &support::job_key(&id)),
        dead_ids(&mut conn)
    );
    assert_eq!(app.get(&format!("/jobs/{id}")).0, StatusCode::NOT_FOUND);
    assert_eq!(app.queue_counter("dead"), 0);
    assert!(app.list_ids("dead").is_empty());
}

#[test]
fn at_most_dead_max_dead_jobs_are_kept_and_the_oldest_go_first() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("DEAD_MAX", "3")]);
    let mut conn = redis.conn();
    let mut ids = Vec::new();
    // One after the other, so the order of death is the order of enqueueing.
    for n in 0..5 {
        let id = app.enqueue_ok(&json!({
            "kind": "fail", "args": {"message": format!("job {n}")}, "max_attempts": 1
        }));
        app.wait_for_status(&id, "dead", Duration::from_secs(10));
        ids.push(id);
    }
    let kept = dead_ids(&mut conn);
    assert_eq!(kept, ids[2..].to_vec(), "the three newest are kept");
    for id in &ids[..2] {
        assert!(
            !support::exists(&mut conn, &support::job_key(id)),
            "{id} should be deleted"
        );
        assert_eq!(app.get(&format!("/jobs/{id}")).0, StatusCode::NOT_FOUND);
    }
    for id in &ids[2..] {
        assert!(
            support::exists(&mut conn, &support::job_key(id)),
            "{id} should be kept"
        );
    }
    assert_eq!(app.queue_counter("dead"), 3);
    let newest_first: Vec<String> = ids[2..].iter().rev().cloned().collect();
    assert_eq!(app.list_ids("dead"), newest_first);
}
