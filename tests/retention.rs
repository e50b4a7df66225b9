//! Retention against a real Redis: succeeded and cancelled jobs are deleted after `JOB_RETENTION`
//! (pruned by age from the finished list, with no TTL of their own), so Redis does not grow while
//! jobs flow through.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis};

fn pttl(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(conn).expect("PTTL")
}

fn keys(conn: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(conn).expect("KEYS");
    keys.sort();
    keys
}

/// Waits until `key` is gone; panics with what is left otherwise.
fn wait_gone(conn: &mut redis::Connection, key: &str, timeout: Duration) {
    let gone = support::eventually(timeout, || (!support::exists(conn, key)).then_some(()));
    assert!(
        gone.is_some(),
        "{key} still exists (PTTL {} ms)",
        pttl(conn, key)
    );
}

#[test]
fn a_succeeded_job_is_deleted_after_job_retention() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("JOB_RETENTION", "1")]);
    let mut conn = redis.conn();
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"x": 1}}));
    // While it waits or runs it has no expiry.
    let ttl = pttl(&mut conn, &support::job_key(&id));
    assert!(
        ttl == -1 || ttl > 0,
        "unexpected PTTL {ttl} right after enqueue"
    );
    app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    // No TTL: the scheduler loop prunes it from the finished list once its retention has passed.
    assert_eq!(pttl(&mut conn, &support::job_key(&id)), -1);

    wait_gone(&mut conn, &support::job_key(&id), Duration::from_secs(3));
    assert_eq!(app.get(&format!("/jobs/{id}")).0, StatusCode::NOT_FOUND);
}

#[test]
fn a_queued_job_is_kept_but_a_cancelled_one_is_deleted_after_job_retention() {
    let redis = Redis::start();
    let web = App::start(
        &redis.url(),
        &[("WORKER_CONCURRENCY", "0"), ("JOB_RETENTION", "1")],
    );
    let healthy = support::eventually(Duration::from_secs(10), || {
        (web.get("/health").0 == StatusCode::OK).then_some(())
    });
    assert!(healthy.is_some(), "never healthy:\n{}", web.logs());
    let mut conn = redis.conn();
    let waiting = web.enqueue_ok(&json!({"kind": "noop"}));
    let cancelled = web.enqueue_ok(&json!({"kind": "noop", "delay": 30}));
    assert_eq!(
        pttl(&mut conn, &support::job_key(&waiting)),
        -1,
        "a queued job must not expire"
    );
    assert_eq!(
        pttl(&mut conn, &support::job_key(&cancelled)),
        -1,
        "a scheduled job must not expire"
    );

    let res = web
        .http()
        .delete(web.url(&format!("/jobs/{cancelled}")))
        .send()
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::OK);
    // A web-only process prunes too: every process runs the scheduler loop.
    wait_gone(
        &mut conn,
        &support::job_key(&cancelled),
        Duration::from_secs(3),
    );
    assert_eq!(
        web.get(&format!("/jobs/{cancelled}")).0,
        StatusCode::NOT_FOUND
    );
    // The queued one is still there, well past the retention.
    assert_eq!(web.job(&waiting)["status"], "queued");
    assert_eq!(pttl(&mut conn, &support::job_key(&waiting)), -1);
}

#[test]
fn redis_holds_no_job_records_after_many_jobs_have_run_and_their_retention_passed() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("JOB_RETENTION", "1")]);
    let mut conn = redis.conn();
    let before: i64 = redis::cmd("DBSIZE").query(&mut conn).expect("DBSIZE");
    for i in 0..200 {
        app.enqueue_ok(&json!({"kind": "noop", "args": {"i": i}}));
    }
    let all_ran = support::eventually(Duration::from_secs(20), || {
        (app.log_lines("status=succeeded").len() >= 200).then_some(())
    });
    assert!(
        all_ran.is_some(),
        "only {} of 200 jobs succeeded",
        app.log_lines("status=succeeded").len()
    );
    let drained = support::eventually(Duration::from_secs(5), || {
        keys(&mut conn, &support::in_every_shard("job:*"))
            .is_empty()
            .then_some(())
    });
    let left = keys(&mut conn, "*");
    assert!(
        drained.is_some(),
        "{} job records left after their retention; keys: {:?}",
        keys(&mut conn, &support::in_every_shard("job:*")).len(),
        left.iter().take(10).collect::<Vec<_>>()
    );
    // DBSIZE also counts expired keys Redis has not evicted yet; its active expiry gets to them.
    let dbsize =
        |conn: &mut redis::Connection| -> i64 { redis::cmd("DBSIZE").query(conn).expect("DBSIZE") };
    let size = support::eventually(Duration::from_secs(5), || {
        let size = dbsize(&mut conn);
        (size <= 9).then_some(size)
    })
    .unwrap_or_else(|| dbsize(&mut conn));
    eprintln!("DBSIZE {before} before 200 jobs, {size} after they expired: {left:?}");
    // Only the constant keys remain: the known shards; in the legacy shard and in the default
    // queue's, the processes and this one's registration; the default queue's shard's queue
    // names and per-minute counters (one per minute, each expiring after 65 minutes).
    let shard = support::default_shard();
    let constant = |k: &str| {
        k.starts_with(&format!("{}minute:", shard.base()))
            || k == support::keys().shards()
            || k == shard.queues()
            || k == shard.processes()
            || k.starts_with(&shard.heartbeat(""))
            || k == support::keys().processes()
            || k.starts_with(&support::keys().heartbeat(""))
    };
    assert!(
        left.iter().all(|k| constant(k)),
        "unexpected keys: {left:?}"
    );
    assert!(size <= 9, "DBSIZE {size}: {left:?}");
}

#[test]
fn pruning_by_age_spares_younger_jobs_and_those_with_an_idempotency_key() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("JOB_RETENTION", "3")]);
    let mut conn = redis.conn();
    let old = app.enqueue_ok(&json!({"kind": "noop"}));
    let (status, _, keyed) =
        app.enqueue_with(&json!({"kind": "noop"}), &[("Idempotency-Key", "kept")]);
    assert_eq!(status, StatusCode::ACCEPTED, "{keyed}");
    let keyed = keyed["id"].as_str().expect("id").to_string();
    app.wait_for_status(&old, "succeeded", Duration::from_secs(10));
    app.wait_for_status(&keyed, "succeeded", Duration::from_secs(10));
    // The idempotent one expires with its key (24 h), not after the 3 s retention.
    assert!(pttl(&mut conn, &support::job_key(&keyed)) > 3_600_000);
    std::thread::sleep(Duration::from_secs(2));
    let young = app.enqueue_ok(&json!({"kind": "noop"}));
    app.wait_for_status(&young, "succeeded", Duration::from_secs(10));

    wait_gone(&mut conn, &support::job_key(&old), Duration::from_secs(5));
    // Pruning stopped at the first job younger than the retention: it finished 2 s later.
    assert!(support::exists(&mut conn, &support::job_key(&young)));
    let finished: Vec<String> = redis::cmd("LRANGE")
        .arg(support::default_shard().finished())
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .expect("LRANGE");
    assert_eq!(
        finished,
        std::slice::from_ref(&young),
        "the pruned ids left the list"
    );
    assert_eq!(app.job(&keyed)["status"], "succeeded");
    let (status, _, again) =
        app.enqueue_with(&json!({"kind": "noop"}), &[("Idempotency-Key", "kept")]);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], keyed.as_str());

    wait_gone(&mut conn, &support::job_key(&young), Duration::from_secs(5));
}

#[test]
fn a_finished_list_given_a_ttl_by_an_older_release_loses_it() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let mut conn = redis.conn();
    let id = app.enqueue_ok(&json!({"kind": "noop"}));
    app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    // What a release before this one did at every finish: the list would expire, and with it
    // the only way to the records it names, which have no TTL of their own.
    let list = support::default_shard().finished();
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(&list)
        .arg(60_000)
        .query(&mut conn)
        .expect("PEXPIRE");
    let persisted = support::eventually(Duration::from_secs(5), || {
        (pttl(&mut conn, &list) == -1).then_some(())
    });
    assert!(persisted.is_some(), "PTTL {}", pttl(&mut conn, &list));
    assert_eq!(pttl(&mut conn, &support::job_key(&id)), -1);
}
