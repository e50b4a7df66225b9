//! Lists of every status against a real binary and Redis: each status lists its jobs in its
//! order, paging with the cursor covers every job exactly once, queue and kind filters narrow a
//! list; deleting a dead job, retrying dead jobs in bulk, the served flag, per-minute counts and
//! the kinds.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis, assert_error, eventually};

/// Every id of a list, page by page of `limit`, checking each page's bounds and the order
/// across pages with `key` (ascending) when given.
fn all_pages(app: &App, status: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let (code, body) = app.list(status, &q);
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status, "{body}");
        let page = body["jobs"].as_array().expect("jobs").clone();
        assert!(page.len() <= limit, "{body}");
        for job in &page {
            assert_eq!(job["status"], status, "{job}");
        }
        jobs.extend(page);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return jobs,
        }
    }
    panic!("the list never ended");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ids(jobs: &[Value]) -> Vec<String> {
    jobs.iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect()
}

/// Asserts `listed` holds each of `expected` exactly once and nothing else.
fn exactly_once(listed: &[String], expected: &[String]) {
    let unique: HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "duplicates in {listed:?}");
    let want: HashSet<_> = expected.iter().collect();
    assert_eq!(unique, want);
}

fn post(app: &App, path: &str) -> (StatusCode, Value) {
    let res = app.http().post(app.url(path)).send().expect("POST");
    let code = res.status();
    (code, res.json().unwrap_or(Value::Null))
}

fn delete(app: &App, id: &str) -> (StatusCode, Value) {
    let res = app
        .http()
        .delete(app.url(&format!("/jobs/{id}")))
        .send()
        .expect("DELETE");
    let code = res.status();
    (code, res.json().unwrap_or(Value::Null))
}

#[test]
fn every_status_is_listed_and_paged_exactly_once() {
    let redis = Redis::start();
    let app = App::start_ready(
        &redis.url(),
        &[("WORKER_CONCURRENCY", "4"), ("JOB_RETENTION_MAX", "100")],
    );
    let enqueue = |body: Value| app.enqueue_ok(&body);

    let succeeded: Vec<String> = (0..7)
        .map(|i| enqueue(json!({"kind": "echo", "args": {"n": i}})))
        .collect();
    let dead: Vec<String> = (0..5)
        .map(|_| enqueue(json!({"kind": "fail", "args": {"permanent": true}})))
        .collect();
    let retrying =
        enqueue(json!({"kind": "fail", "args": {"retry_after": 3600}, "max_attempts": 5}));
    for id in &succeeded {
        app.wait_for_status(id, "succeeded", Duration::from_secs(10));
    }
    for id in &dead {
        app.wait_for_status(id, "dead", Duration::from_secs(10));
    }
    app.wait_for_status(&retrying, "retrying", Duration::from_secs(10));
    // Queued: a queue no process works keeps its jobs waiting.
    let queued: Vec<String> = (0..7)
        .map(|i| {
            let kind = if i % 2 == 0 { "echo" } else { "noop" };
            enqueue(json!({"kind": kind, "args": {}, "queue": "other"}))
        })
        .collect();
    let scheduled: Vec<String> = (0..5)
        .map(|i| enqueue(json!({"kind": "echo", "args": {}, "delay": 3600 - i * 10})))
        .collect();
    let cancelled: Vec<String> = scheduled[3..].to_vec();
    for id in &cancelled {
        assert_eq!(app.cancel(id).0, StatusCode::OK);
    }
    let running: Vec<String> = (0..2)
        .map(|_| enqueue(json!({"kind": "steps", "args": {"steps": 200, "step_ms": 200}})))
        .collect();
    for id in &running {
        app.wait_for_status(id, "running", Duration::from_secs(10));
    }

    // Newest first for finished jobs.
    let listed = ids(&all_pages(&app, "succeeded", "", 3));
    exactly_once(&listed, &succeeded);
    let expected: Vec<String> = succeeded.iter().rev().cloned().collect();
    let by_finish: Vec<_> = all_pages(&app, "succeeded", "", 50)
        .iter()
        .map(|j| j["finished_at"].as_str().unwrap().to_string())
        .collect();
    assert!(
        by_finish.windows(2).all(|w| w[0] >= w[1]),
        "{by_finish:?} vs {expected:?}"
    );
    exactly_once(&ids(&all_pages(&app, "dead", "", 2)), &dead);
    exactly_once(
        &ids(&all_pages(&app, "retrying", "", 1)),
        std::slice::from_ref(&retrying),
    );
    exactly_once(&ids(&all_pages(&app, "cancelled", "", 1)), &cancelled);

    // Queued: next to run first, across pages; filtered by queue and by kind.
    let listed = ids(&all_pages(&app, "queued", "", 2));
    assert_eq!(listed, queued, "queued jobs in the order they will run");
    let listed = ids(&all_pages(&app, "queued", "&queue=other", 3));
    assert_eq!(listed, queued);
    let echoes: Vec<String> = queued.iter().step_by(2).cloned().collect();
    assert_eq!(ids(&all_pages(&app, "queued", "&kind=echo", 2)), echoes);
    assert!(all_pages(&app, "queued", "&queue=default", 5).is_empty());

    // Scheduled: next due first (the later ones were enqueued with shorter delays).
    let listed = ids(&all_pages(&app, "scheduled", "", 2));
    let mut want: Vec<String> = scheduled[..3].to_vec();
    want.reverse();
    assert_eq!(listed, want);
    assert_eq!(
        ids(&all_pages(&app, "scheduled", "&kind=fail", 2)),
        Vec::<String>::new()
    );

    // Running: both, with their progress.
    let jobs = eventually(Duration::from_secs(10), || {
        let jobs = all_pages(&app, "running", "", 1);
        jobs.iter()
            .all(|j| j["progress"].is_object())
            .then_some(jobs)
    })
    .expect("running jobs report progress");
    exactly_once(&ids(&jobs), &running);
    assert!(jobs[0]["started_at"].as_str() <= jobs[1]["started_at"].as_str());
    assert!(
        jobs[0]["progress"]["completed"].as_u64().is_some(),
        "{}",
        jobs[0]
    );

    // Summaries, not records.
    let page = all_pages(&app, "dead", "", 1);
    assert!(
        page[0].get("args").is_none() && page[0]["last_error"].is_object(),
        "{}",
        page[0]
    );

    // Bad input.
    let (code, body) = app.list("dead", "&cursor=abc");
    assert_error(code, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (code, body) = app.get("/jobs");
    assert_error(code, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let (code, body) = app.list("bogus", "");
    assert_error(code, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
}

#[test]
fn dead_jobs_are_deleted_and_retried_in_bulk() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let dead: Vec<String> = (0..4)
        .map(|_| app.enqueue_ok(&json!({"kind": "fail", "args": {"permanent": true}})))
        .collect();
    for id in &dead {
        app.wait_for_status(id, "dead", Duration::from_secs(10));
    }
    let done = app.enqueue_ok(&json!({"kind": "echo", "args": {}}));
    app.wait_for_status(&done, "succeeded", Duration::from_secs(10));

    // Delete one dead job: gone for good.
    let (code, body) = delete(&app, &dead[0]);
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"id": dead[0], "deleted": true}));
    assert_eq!(
        app.get(&format!("/jobs/{}", dead[0])).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.queue_counter("dead"), 3);
    let (code, body) = delete(&app, &done);
    assert_error(code, &body, StatusCode::CONFLICT, "conflict");
    let (code, body) = delete(&app, "0190a0a0-abcd-7000-8000-00000000beef");
    assert_error(code, &body, StatusCode::NOT_FOUND, "not_found");
    // A waiting job is cancelled, as before.
    let later = app.enqueue_ok(&json!({"kind": "echo", "args": {}, "delay": 600}));
    let (code, body) = delete(&app, &later);
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    let (code, body) = delete(&app, &later);
    assert_error(code, &body, StatusCode::CONFLICT, "conflict");

    // Bulk retry: a filter that matches nothing, then all of them.
    let (code, body) = post(&app, "/jobs/retry?status=dead&kind=echo");
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"retried": 0, "remaining": 0}));
    let (code, body) = post(&app, "/jobs/retry?status=succeeded");
    assert_error(code, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let (code, body) = post(&app, "/jobs/retry?status=dead&queue=default&kind=fail");
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"retried": 3, "remaining": 0}));
    // Each ran once more and died again (they always fail).
    for id in &dead[1..] {
        app.wait_for_status(id, "dead", Duration::from_secs(10));
    }
    assert_eq!(app.job(&dead[1])["attempts"], 2);
}

#[test]
fn queues_say_which_are_served_and_minutes_count_attempts() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("QUEUES", "default,mail")]);
    for _ in 0..3 {
        app.enqueue_ok(&json!({"kind": "echo", "args": {}, "queue": "typo"}));
    }
    let ok: Vec<String> = (0..4)
        .map(|_| app.enqueue_ok(&json!({"kind": "echo", "args": {}})))
        .collect();
    let failing = app.enqueue_ok(&json!({"kind": "fail", "args": {"permanent": true}}));
    for id in &ok {
        app.wait_for_status(id, "succeeded", Duration::from_secs(10));
    }
    app.wait_for_status(&failing, "dead", Duration::from_secs(10));

    let (code, body) = app.get("/queues");
    assert_eq!(code, StatusCode::OK, "{body}");
    let queue = |name: &str| {
        body["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no queue {name}: {body}"))
    };
    assert_eq!(queue("typo")["served"], false, "{body}");
    assert_eq!(queue("typo")["depth"], 3, "{body}");
    assert_eq!(queue("default")["served"], true, "{body}");
    assert_eq!(queue("mail")["served"], true, "{body}");
    let counts = &body["counts"];
    assert_eq!(
        (
            &counts["running"],
            &counts["scheduled"],
            &counts["retrying"],
            &counts["dead"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(1)),
        "{body}"
    );

    let (code, body) = app.get("/stats/minutes");
    assert_eq!(code, StatusCode::OK, "{body}");
    let minutes = body["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "{body}");
    let times: Vec<&str> = minutes.iter().map(|m| m["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(times.iter().all(|t| t.ends_with(":00Z")), "{times:?}");
    let sum = |field: &str| {
        minutes
            .iter()
            .map(|m| m[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("processed"), sum("failed")), (5, 1), "{body}");

    let (code, body) = app.get("/kinds");
    assert_eq!(code, StatusCode::OK, "{body}");
    let echo = body["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "echo")
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        echo,
        json!({"name": "echo", "queue": "default", "timeout_ms": 300000, "max_attempts": 10})
    );
}

#[test]
fn a_bulk_retry_is_bounded_per_call() {
    let redis = Redis::start();
    let mut worker = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "20")]);
    let total = 1005;
    for _ in 0..total {
        worker.enqueue_ok(&json!({"kind": "fail", "args": {"permanent": true}}));
    }
    let all_dead = eventually(Duration::from_secs(60), || {
        (worker.queue_counter("dead") == total).then_some(())
    });
    assert!(all_dead.is_some(), "dead: {}", worker.queue_counter("dead"));
    worker.kill();
    // No worker now, so retried jobs stay queued and the counts are exact.
    let web = App::start_web_only(&redis.url());
    let (code, body) = post(&web, "/jobs/retry?status=dead");
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"retried": 1000, "remaining": 5}));
    let (_, body) = post(&web, "/jobs/retry?status=dead");
    assert_eq!(body, json!({"retried": 5, "remaining": 0}));
    assert_eq!(web.queue_counter("dead"), 0);
    let queued = all_pages(&web, "queued", "", 200);
    assert_eq!(queued.len(), total as usize);
}
