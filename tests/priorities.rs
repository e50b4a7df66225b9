//! Queues and priorities against a real Redis: `QUEUES=a,b,c` works queues in strict priority
//! order; `QUEUES=a:3,b:1` works them by weight without starving the lighter one.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{App, Redis};

/// `(status, started_at ms)` of each job, read straight from Redis in one round trip.
fn statuses_and_starts(conn: &mut redis::Connection, ids: &[String]) -> Vec<(String, i64)> {
    let mut pipe = redis::pipe();
    for id in ids {
        // status and started_at, in the record's one-letter field names.
        pipe.cmd("HMGET")
            .arg(support::keys().job(id))
            .arg("s")
            .arg("t");
    }
    let rows: Vec<(Option<String>, Option<i64>)> = pipe.query(conn).expect("HMGET");
    rows.into_iter()
        .map(|(s, t)| (s.unwrap_or_default(), t.unwrap_or(-1)))
        .collect()
}

#[test]
fn strict_queues_run_in_priority_order() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    // Enqueued lowest priority first, interleaved, before any worker exists.
    let mut jobs: Vec<(&str, String)> = Vec::new();
    for _ in 0..3 {
        for queue in ["low", "default", "critical"] {
            let id = web.enqueue_ok(&json!({
                "kind": "sleep", "args": {"ms": 20}, "queue": queue
            }));
            jobs.push((queue, id));
        }
    }
    let (_, queues) = web.get("/queues");
    for queue in ["low", "default", "critical"] {
        let q = queues["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == queue))
            .unwrap_or_else(|| panic!("{queue} missing: {queues}"));
        assert_eq!(q["depth"], 3, "{queues}");
    }

    let worker = App::start_ready(
        &redis.url(),
        &[
            ("QUEUES", "critical,default,low"),
            ("WORKER_CONCURRENCY", "1"),
        ],
    );
    for (_, id) in &jobs {
        worker.wait_for_status(id, "succeeded", Duration::from_secs(10));
    }
    let mut started: Vec<(i64, &str, &str)> = jobs
        .iter()
        .map(|(queue, id)| {
            let job = worker.job(id);
            let at = chrono::DateTime::parse_from_rfc3339(job["started_at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            (at, *queue, id.as_str())
        })
        .collect();
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, q, _)| *q).collect();
    eprintln!("start order: {order:?}");
    assert_eq!(
        order,
        [
            "critical", "critical", "critical", "default", "default", "default", "low", "low",
            "low"
        ],
        "{started:?}"
    );
    // Within a queue, first in, first out.
    for queue in ["low", "default", "critical"] {
        let enqueued: Vec<&str> = jobs
            .iter()
            .filter(|(q, _)| *q == queue)
            .map(|(_, id)| id.as_str())
            .collect();
        let ran: Vec<&str> = started
            .iter()
            .filter(|(_, q, _)| *q == queue)
            .map(|(_, _, id)| *id)
            .collect();
        assert_eq!(ran, enqueued, "{queue} is not FIFO");
    }
}

#[test]
fn weighted_queues_share_the_worker_and_the_light_one_is_not_starved() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    let mut ids = Vec::new();
    for i in 0..400 {
        let queue = if i % 2 == 0 { "a" } else { "b" };
        ids.push((
            queue,
            web.enqueue_ok(&json!({"kind": "noop", "queue": queue})),
        ));
    }
    let mut conn = redis.conn();
    assert_eq!(support::queue_len(&mut conn, "a"), 200);
    assert_eq!(support::queue_len(&mut conn, "b"), 200);

    let worker = App::start_ready(
        &redis.url(),
        &[("QUEUES", "a:3,b:1"), ("WORKER_CONCURRENCY", "1")],
    );
    let just_ids: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    let all = support::eventually(Duration::from_secs(30), || {
        let rows = statuses_and_starts(&mut conn, &just_ids);
        rows.iter().all(|(s, _)| s == "succeeded").then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "not all 400 ran: a left {}, b left {}\n{}",
            support::queue_len(&mut conn, "a"),
            support::queue_len(&mut conn, "b"),
            worker.logs()
        )
    });
    assert_eq!(all.len(), 400);
    // With one worker slot, the order of `job.started` lines is the order the jobs were fetched.
    let first: Vec<String> = worker
        .log_lines("event=job.started")
        .iter()
        .take(100)
        .map(|line| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix("queue="))
                .expect("queue= in job.started")
                .to_string()
        })
        .collect();
    assert_eq!(first.len(), 100);
    let a = first.iter().filter(|q| *q == "a").count();
    let b = first.len() - a;
    eprintln!(
        "weighted a:3,b:1: of the first 100 jobs, a ran {a}, b ran {b} (expected about 75/25)"
    );
    assert!(b >= 10, "b starved: {b} of the first 100");
    assert!(a > b, "a (weight 3) ran {a}, b (weight 1) ran {b}");
    assert!(a >= 55, "a ran only {a} of the first 100");
}
