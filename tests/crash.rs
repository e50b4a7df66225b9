//! SIGKILL and many processes: a killed process's jobs run again on a live one within 30 s, and
//! two processes on one Redis never run the same job twice.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::json;
use support::{App, Redis, SIGKILL};

#[test]
fn the_jobs_of_a_killed_process_run_again_on_a_live_one_within_30_seconds() {
    let redis = Redis::start();
    let mut doomed = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "4")]);
    let ids: Vec<String> = (0..4)
        .map(|_| doomed.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 2000}})))
        .collect();
    for id in &ids {
        doomed.wait_for_status(id, "running", Duration::from_secs(5));
    }
    // A survivor that was already running when the other died, as on Heroku.
    let survivor = App::start_ready(&redis.url(), &[]);
    let killed = Instant::now();
    doomed.signal(SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).expect("SIGKILL");

    for id in &ids {
        let job = survivor.wait_for_status(id, "succeeded", Duration::from_secs(30));
        assert_eq!(job["attempts"], 2, "{job}");
        assert_eq!(job["errors"], json!([]), "a crash is not the job's failure");
    }
    let recovered = killed.elapsed();
    eprintln!("all jobs of the killed process done {recovered:?} after SIGKILL");
    assert!(recovered < Duration::from_secs(30));
    survivor.wait_for_log("event=reaper.released", Duration::from_secs(1));
    let mut conn = redis.conn();
    assert!(support::inflight_ids(&mut conn).is_empty());
    let processes: Vec<String> = conn.smembers(support::keys().processes()).unwrap();
    assert_eq!(
        processes.len(),
        1,
        "the dead process is deregistered: {processes:?}"
    );
}

#[test]
fn two_processes_on_one_redis_never_run_a_job_twice() {
    let redis = Redis::start();
    let a = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "8")]);
    let b = App::start_ready(&redis.url(), &[("WORKER_CONCURRENCY", "8")]);
    let ids: Vec<String> = (0..300)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let job = if i % 3 == 0 {
                json!({"kind": "sleep", "args": {"ms": 5}})
            } else {
                json!({"kind": "echo", "args": {"i": i}})
            };
            app.enqueue_ok(&job)
        })
        .collect();
    let mut conn = redis.conn();
    let all_done = support::eventually(Duration::from_secs(30), || {
        ids.iter()
            .all(|id| support::job_field(&mut conn, id, "status").as_deref() == Some("succeeded"))
            .then_some(())
    });
    assert!(all_done.is_some(), "not all jobs succeeded");
    let mut starts: HashMap<String, usize> = HashMap::new();
    for app in [&a, &b] {
        for line in app.log_lines("event=job.started") {
            let id = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("job_id="))
                .unwrap()
                .to_string();
            *starts.entry(id).or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            support::job_field(&mut conn, id, "attempts").as_deref(),
            Some("1")
        );
        assert_eq!(
            starts.get(id),
            Some(&1),
            "job {id} started {:?} times",
            starts.get(id)
        );
    }
    let (by_a, by_b) = (
        a.log_lines("event=job.started").len(),
        b.log_lines("event=job.started").len(),
    );
    eprintln!("process a ran {by_a} jobs, process b ran {by_b}");
    assert!(by_a > 0 && by_b > 0, "both processes work");
    let keys: Vec<String> = conn.keys(support::in_every_shard("inflight:*")).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
