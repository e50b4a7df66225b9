//! Resumable long jobs against a real Redis: a `steps` job interrupted by a deploy (SIGTERM past
//! the drain deadline) or a crash (SIGKILL) goes back to its queue, not counted as a failure, and
//! the next process resumes it from its last checkpoint.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{App, Redis};

/// Waits until the job reports at least `steps` completed steps; returns the progress seen.
fn wait_for_progress(app: &App, id: &str, steps: u64, timeout: Duration) -> u64 {
    let mut last = Value::Null;
    support::eventually(timeout, || {
        let job = app.job(id);
        last = job.clone();
        job["progress"]["completed"]
            .as_u64()
            .filter(|done| *done >= steps)
    })
    .unwrap_or_else(|| panic!("job {id} never reached {steps} steps; last seen {last}"))
}

#[test]
fn a_long_job_interrupted_by_sigterm_is_put_back_and_resumes_elsewhere() {
    let redis = Redis::start();
    let mut a = App::start_ready(&redis.url(), &[("SHUTDOWN_TIMEOUT", "2")]);
    let id = a.enqueue_ok(&json!({"kind": "steps", "args": {"steps": 20, "step_ms": 250}}));
    let seen = wait_for_progress(&a, &id, 4, Duration::from_secs(8));

    // 16 steps (4 s) are left: more than the drain allows, so the deadline interrupts the job.
    let signalled = Instant::now();
    a.signal(support::SIGTERM);
    let status = a
        .wait_exit(Duration::from_secs(4))
        .unwrap_or_else(|| panic!("A did not exit after SIGTERM:\n{}", a.logs()));
    let took = signalled.elapsed();
    eprintln!("SIGTERM: A exited {status} after {took:?}");
    assert!(status.success(), "A exited with {status}:\n{}", a.logs());
    // SHUTDOWN_TIMEOUT=2; a little slack for this test noticing the exit.
    assert!(
        took < Duration::from_millis(2300),
        "A took {took:?} to exit"
    );
    assert!(
        !a.log_lines("event=worker.interrupting").is_empty(),
        "{}",
        a.logs()
    );

    let mut conn = redis.conn();
    let back = support::job_field(&mut conn, &id, "status");
    assert_eq!(back.as_deref(), Some("queued"), "{}", a.logs());
    assert_eq!(support::queue_len(&mut conn, "default"), 1);
    assert!(support::inflight_ids(&mut conn).is_empty());
    assert_eq!(support::job_field(&mut conn, &id, "err_seq"), None);
    assert_eq!(
        support::job_field(&mut conn, &id, "failures")
            .as_deref()
            .unwrap_or("0"),
        "0",
        "failures are absent (0) until a failed attempt"
    );
    let progress: Value = serde_json::from_str(
        &support::job_field(&mut conn, &id, "progress").expect("progress kept"),
    )
    .unwrap();
    let interrupted_at = progress["completed"].as_u64().expect("completed");
    assert!(interrupted_at >= seen, "{progress}");
    assert!(
        interrupted_at < 20,
        "it finished instead of being interrupted: {progress}"
    );

    let b = App::start_ready(&redis.url(), &[]);
    let done = b.wait_for_status(&id, "succeeded", Duration::from_secs(15));
    eprintln!(
        "SIGTERM resume: progress seen {seen}, interrupted at {interrupted_at}, result {}",
        done["result"]
    );
    assert_eq!(done["result"]["completed"], 20, "{done}");
    let resumed_from = done["result"]["resumed_from"]
        .as_u64()
        .expect("resumed_from");
    assert!(resumed_from >= 4, "{done}");
    assert!(
        resumed_from >= seen,
        "resumed from {resumed_from}, {seen} steps were done: {done}"
    );
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(
        done["errors"],
        json!([]),
        "an interruption is not a failure: {done}"
    );
}

#[test]
fn a_long_job_of_a_killed_process_resumes_in_another_once_its_heartbeat_expires() {
    let redis = Redis::start();
    let mut a = App::start_ready(&redis.url(), &[]);
    let id = a.enqueue_ok(&json!({"kind": "steps", "args": {"steps": 20, "step_ms": 250}}));
    let seen = wait_for_progress(&a, &id, 4, Duration::from_secs(8));
    a.kill();
    let killed = Instant::now();
    let b = App::start_ready(&redis.url(), &[]);
    // Until A's heartbeat expires the job is still A's.
    assert_eq!(b.job(&id)["status"], "running");

    let done = b.wait_for_status(&id, "succeeded", Duration::from_secs(40));
    let took = killed.elapsed();
    eprintln!(
        "SIGKILL resume: progress seen {seen}, result {}, succeeded {took:?} after the kill",
        done["result"]
    );
    assert_eq!(done["result"]["completed"], 20, "{done}");
    let resumed_from = done["result"]["resumed_from"]
        .as_u64()
        .expect("resumed_from");
    assert!(
        resumed_from + 1 >= seen,
        "resumed from {resumed_from}, {seen} steps were done: {done}"
    );
    assert!(resumed_from >= 3, "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(
        done["errors"],
        json!([]),
        "a crash is not a failure: {done}"
    );
    let released = b.log_lines("event=reaper.released");
    assert!(
        released.iter().any(|l| l.contains("jobs=1")),
        "B's reaper did not put A's job back: {released:?}"
    );
    let mut conn = redis.conn();
    assert!(support::inflight_ids(&mut conn).is_empty());
}
