//! Job records written by an earlier release (long field names and an `id` field, a UUIDv7 id,
//! every key under the deployment's one tag `{prefix}`) still read, run and finish in place:
//! the legacy shard is served like any other, and a script renames a record's fields the first
//! time it touches it.

mod support;

use std::time::Duration;

use redis::Commands;
use reqwest::StatusCode;
use support::{App, Redis};

/// A record as releases before the one-letter field names wrote it.
fn write_old_record(conn: &mut redis::Connection, id: &str, status: &str) {
    let now = "1796000000000";
    let _: () = conn
        .hset_multiple(
            support::job_key(id),
            &[
                ("id", id),
                ("kind", "echo"),
                ("queue", "default"),
                ("args", r#"{"old":true}"#),
                ("attempts", "0"),
                ("failures", "0"),
                ("max_attempts", "3"),
                ("created_at", now),
                ("run_at", now),
                ("status", status),
                ("enqueued_at", now),
            ],
        )
        .expect("HSET");
}

#[test]
fn a_queued_record_of_the_old_format_runs_and_is_renamed() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let id = "01900000-0000-7000-8000-000000000001";
    write_old_record(&mut conn, id, "queued");
    let _: () = conn
        .lpush(support::keys().legacy().queue("default"), id)
        .expect("LPUSH");
    let _: () = conn
        .sadd(support::keys().legacy().queues(), "default")
        .expect("SADD");

    let app = App::start_ready(&redis.url(), &[]);
    let done = app.wait_for_status(id, "succeeded", Duration::from_secs(20));
    assert_eq!(done["result"]["old"], true, "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["max_attempts"], 3, "{done}");
    let fields: Vec<String> = conn.hkeys(support::job_key(id)).expect("HKEYS");
    assert!(fields.contains(&"s".to_string()), "{fields:?}");
    for old in ["id", "status", "kind", "queue"] {
        assert!(!fields.contains(&old.to_string()), "{old} in {fields:?}");
    }
}

#[test]
fn a_finished_record_of_the_old_format_reads_and_refuses_a_cancel() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let id = "01900000-0000-7000-8000-000000000002";
    write_old_record(&mut conn, id, "succeeded");
    let app = App::start_web_only(&redis.url());
    let job = app.job(id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "echo", "{job}");
    assert_eq!(job["args"]["old"], true, "{job}");
    let (status, body) = app.cancel(id);
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.job(id)["status"], "succeeded");
}

/// Puts an old-format record in the dead set, as a release before the short names left it.
fn write_old_dead(conn: &mut redis::Connection, id: &str) {
    write_old_record(conn, id, "dead");
    let _: () = conn
        .hset_multiple(
            support::job_key(id),
            &[("finished_at", "1796000000500"), ("failures", "3")],
        )
        .expect("HSET");
    let _: () = conn
        .zadd(support::keys().legacy().dead(), id, 1796000000500_i64)
        .expect("ZADD");
}

#[test]
fn old_dead_records_list_retry_in_bulk_and_delete() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let (kept, gone) = (
        "01900000-0000-7000-8000-000000000003",
        "01900000-0000-7000-8000-000000000004",
    );
    write_old_dead(&mut conn, kept);
    write_old_dead(&mut conn, gone);
    let app = App::start_ready(&redis.url(), &[]);

    let (code, page) = app.list("dead", "");
    assert_eq!(code, StatusCode::OK, "{page}");
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{page}");
    for job in jobs {
        assert_eq!(job["kind"], "echo", "{page}");
        assert_eq!(job["queue"], "default", "{page}");
        assert_eq!(job["status"], "dead", "{page}");
    }

    let res = app
        .http()
        .delete(app.url(&format!("/jobs/{gone}")))
        .send()
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!support::exists(&mut conn, &support::job_key(gone)));

    let res = app
        .http()
        .post(app.url("/jobs/retry?status=dead&kind=echo"))
        .send()
        .expect("POST");
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().expect("JSON");
    assert_eq!(body["retried"], 1, "{body}");
    let done = app.wait_for_status(kept, "succeeded", Duration::from_secs(20));
    assert_eq!(done["result"]["old"], true, "{done}");
    // A fresh budget of failures: an absent count, as a new job has.
    assert_eq!(support::job_field(&mut conn, kept, "failures"), None);
    assert_eq!(
        support::job_field(&mut conn, kept, "status").as_deref(),
        Some("succeeded")
    );
    let fields: Vec<String> = conn.hkeys(support::job_key(kept)).expect("HKEYS");
    for old in ["id", "status", "failures", "finished_at"] {
        assert!(!fields.contains(&old.to_string()), "{old} in {fields:?}");
    }
}
