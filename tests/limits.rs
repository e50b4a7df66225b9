//! One request must never cost unbounded Redis or process memory: error messages, results and
//! list responses are bounded by size, finished jobs by count, queue names by use.

mod support;

use std::time::Duration;

use redis::Commands;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

fn memory_usage(conn: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        // Every field, not an estimate from a sample of five.
        .arg("SAMPLES")
        .arg(0)
        .query::<Option<u64>>(conn)
        .expect("MEMORY USAGE")
        .unwrap_or(0)
}

#[test]
fn huge_error_messages_are_cut_and_the_history_is_bounded() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let message = "é".repeat(250_000); // 500,000 bytes
    let id = app.enqueue_ok(&json!({
        "kind": "fail",
        "args": {"message": message, "retry_after": 0.01},
        "max_attempts": 30,
    }));
    let job = app.wait_for_status(&id, "dead", Duration::from_secs(60));
    let errors = job["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 25, "the last 25 attempts are kept");
    assert_eq!(errors[0]["attempt"], 6);
    assert_eq!(errors[24]["attempt"], 30);
    for e in errors {
        let text = e["message"].as_str().unwrap();
        assert!(text.len() <= 2048, "{} bytes", text.len());
        assert!(text.starts_with("éé") && text.ends_with("[truncated]"));
    }
    let bytes = memory_usage(&mut redis.conn(), &job_key(&id));
    // The args hold the message once; 25 errors of 2 KiB add about 52 KB on top.
    assert!(
        bytes < message.len() as u64 + 100_000,
        "the record takes {bytes} bytes"
    );
    // The log line of each failure carries the cut message too, not half a megabyte.
    let longest = app
        .log_lines("event=job.finished")
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
}

#[test]
fn the_dead_list_shows_bounded_summaries() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let message = "x".repeat(400_000);
    let ids: Vec<String> = (0..12)
        .map(|_| {
            app.enqueue_ok(&json!({
                "kind": "fail",
                "args": {"message": message, "permanent": true},
            }))
        })
        .collect();
    for id in &ids {
        app.wait_for_status(id, "dead", Duration::from_secs(20));
    }
    let res = app
        .http()
        .get(app.url("/jobs?status=dead&limit=500"))
        .send()
        .expect("GET dead");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().unwrap();
    assert!(text.len() < 20_000, "dead list of {} bytes", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 12);
    let first = &jobs[0];
    assert_eq!(first["id"], ids[11].as_str(), "newest first");
    assert_eq!(first["status"], "dead");
    assert_eq!(first["kind"], "fail");
    assert!(first.get("args").is_none() && first.get("errors").is_none());
    let last = first["last_error"]["message"].as_str().unwrap();
    assert!(last.len() <= 256 && last.starts_with("xxx"), "{last}");
    // The whole record, errors and all, is one GET away.
    let job = app.job(&ids[11]);
    assert_eq!(job["errors"][0]["message"].as_str().unwrap().len(), 2048);
}

#[test]
fn a_result_over_the_limit_fails_the_job_with_a_clear_message() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let big = app.enqueue_ok(&json!({"kind": "echo", "args": {"blob": "y".repeat(70_000)}}));
    let small = app.enqueue_ok(&json!({"kind": "echo", "args": {"blob": "y".repeat(60_000)}}));
    let job = app.wait_for_status(&big, "dead", Duration::from_secs(20));
    let message = job["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("result is 70011 bytes") && message.contains("65536-byte limit"),
        "{message}"
    );
    assert_eq!(job["result"], Value::Null);
    let job = app.wait_for_status(&small, "succeeded", Duration::from_secs(20));
    assert_eq!(job["result"]["blob"].as_str().unwrap().len(), 60_000);
}

#[test]
fn finished_jobs_are_bounded_by_count() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("JOB_RETENTION_MAX", "10")]);
    let ids: Vec<String> = (0..30)
        .map(|i| app.enqueue_ok(&json!({"kind": "echo", "args": {"i": i}})))
        .collect();
    let mut conn = redis.conn();
    let last = ids.last().unwrap();
    app.wait_for_status(last, "succeeded", Duration::from_secs(20));
    let kept = eventually(Duration::from_secs(10), || {
        let kept: Vec<&String> = ids
            .iter()
            .filter(|id| exists(&mut conn, &job_key(id)))
            .collect();
        (kept.len() == 10).then_some(kept.len())
    });
    assert_eq!(kept, Some(10), "only the newest 10 finished jobs are kept");
    assert!(exists(&mut conn, &job_key(last)), "the newest is kept");
    assert_eq!(
        app.get(&format!("/jobs/{}", ids[0])).0,
        StatusCode::NOT_FOUND
    );
    let listed: u64 = redis::cmd("LLEN")
        .arg(support::default_shard().finished())
        .query(&mut conn)
        .unwrap();
    assert_eq!(listed, 10);
}

#[test]
fn a_retried_job_is_never_deleted_by_the_count_bound() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("JOB_RETENTION_MAX", "3")]);
    // Cancelled while it waits, so its id enters the finished list, then retried to wait again
    // in a queue nobody works.
    let parked = app.enqueue_ok(&json!({"kind": "echo", "queue": "parked", "delay": 60}));
    let (status, _) = app.cancel(&parked);
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.retry(&parked);
    assert_eq!(status, StatusCode::ACCEPTED);
    // It now waits in a queue nobody works while ten other jobs finish and push it out of the list.
    for i in 0..10 {
        let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"i": i}}));
        app.wait_for_status(&id, "succeeded", Duration::from_secs(20));
    }
    assert_eq!(app.job(&parked)["status"], "queued");
    let listed: Vec<String> = redis::cmd("LRANGE")
        .arg(support::default_shard().finished())
        .arg(0)
        .arg(-1)
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(!listed.contains(&parked));
}

#[test]
fn cancelling_a_queued_job_leaves_its_id_for_fetch_to_skip() {
    let redis = Redis::start();
    // A web-only process: nothing fetches, so the queue holds still.
    let web = App::start_web_only(&redis.url());
    let ids: Vec<String> = (0..5)
        .map(|i| web.enqueue_ok(&json!({"kind": "echo", "args": {"i": i}})))
        .collect();
    let mut conn = redis.conn();
    assert_eq!(queue_len(&mut conn, "default"), 5);
    let (status, job) = web.cancel(&ids[2]);
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "cancelled");
    // No scan of the queue (LREM is O(depth)): the id stays until a worker passes it.
    assert_eq!(queue_len(&mut conn, "default"), 5);
    let worker = App::start_ready(&redis.url(), &[]);
    for (i, id) in ids.iter().enumerate() {
        if i != 2 {
            worker.wait_for_status(id, "succeeded", Duration::from_secs(20));
        }
    }
    let cancelled = worker.job(&ids[2]);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["attempts"], 0, "a cancelled job never runs");
    assert_eq!(queue_len(&mut conn, "default"), 0);
    assert!(inflight_ids(&mut conn).is_empty());
}

#[test]
fn queue_names_are_listed_up_to_a_bound_and_unused_ones_drop_out() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let ids: Vec<String> = (0..120)
        .map(|i| app.enqueue_ok(&json!({"kind": "noop", "queue": format!("q{i:03}")})))
        .collect();
    let (status, queues) = app.get("/queues");
    assert_eq!(status, StatusCode::OK);
    let listed = queues["queues"].as_array().unwrap();
    assert_eq!(listed.len(), 50, "{queues}");
    assert_eq!(
        listed[0]["name"], "default",
        "this process's queues come first"
    );
    assert_eq!(queues["queues_omitted"], 71);
    for id in &ids {
        assert_eq!(app.cancel(id).0, StatusCode::OK);
    }
    // Nothing waits in those queues and no process works them: the reaper's pass drops them.
    let pruned = eventually(Duration::from_secs(20), || {
        let (_, queues) = app.get("/queues");
        (queues["queues"].as_array()?.len() == 1 && queues["queues_omitted"] == 0).then_some(())
    });
    assert!(pruned.is_some(), "{}", app.get("/queues").1);
    let mut conn = redis.conn();
    let sets: Vec<String> = conn.keys(support::in_every_shard("queues")).unwrap();
    let known: u64 = sets
        .iter()
        .map(|set| conn.scard::<_, u64>(set).unwrap())
        .sum();
    assert!(known <= 1, "{known} names left");
    // A name comes back with its next job.
    app.enqueue_ok(&json!({"kind": "noop", "queue": "q007", "delay": 60}));
    let id = app.enqueue_ok(&json!({"kind": "noop", "queue": "q008"}));
    let (_, queues) = app.get("/queues");
    assert!(
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "q008" && q["depth"] == 1),
        "{queues}"
    );
    assert_eq!(app.job(&id)["status"], "queued");
}

#[test]
fn redis_memory_is_reported_and_an_evicting_policy_is_warned_about() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    for (k, v) in [("maxmemory", "50mb"), ("maxmemory-policy", "allkeys-lru")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query(&mut conn)
            .unwrap();
    }
    let app = App::start_ready(&redis.url(), &[]);
    app.wait_for_log("event=redis.evicting_policy", Duration::from_secs(10));
    let line = &app.log_lines("event=redis.evicting_policy")[0];
    assert!(
        line.starts_with("at=warn") && line.contains("policy=allkeys-lru"),
        "{line}"
    );
    let (_, queues) = app.get("/queues");
    assert_eq!(queues["redis"]["max_bytes"], 50 * 1024 * 1024);
    assert_eq!(queues["redis"]["policy"], "allkeys-lru");
    assert!(queues["redis"]["used_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn health_is_unavailable_while_redis_refuses_writes() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    assert_eq!(app.get("/health").0, StatusCode::OK);
    let mut conn = redis.conn();
    let set = |conn: &mut redis::Connection, v: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(v)
            .query(conn)
            .unwrap();
    };
    set(&mut conn, "1");
    let (status, body) = app.get("/health");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(body.to_string().contains("memory"), "{body}");
    assert!(
        !body.to_string().contains("OOM"),
        "no raw Redis text: {body}"
    );
    let (status, _, body) = app.enqueue(&json!({"kind": "noop"}));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    set(&mut conn, "0");
    assert_eq!(app.get("/health").0, StatusCode::OK);
}
