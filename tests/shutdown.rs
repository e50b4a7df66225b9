//! SIGTERM: exit 0 before SHUTDOWN_TIMEOUT; jobs that fit in the window finish once; waiting jobs
//! stay queued; a job still running at the deadline goes back to the front of its queue (not a
//! failure) and completes on the next process; nothing is left in flight.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::json;
use support::{App, Redis, SIGTERM};

fn no_inflight_and_no_processes(redis: &Redis) {
    let mut conn = redis.conn();
    assert!(support::inflight_ids(&mut conn).is_empty());
    let keys: Vec<String> = conn.keys(support::in_every_shard("inflight:*")).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    let processes: Vec<String> = conn.smembers(support::keys().processes()).unwrap();
    assert!(processes.is_empty(), "still registered: {processes:?}");
}

#[test]
fn sigterm_finishes_what_fits_requeues_the_rest_and_exits_zero_in_time() {
    let redis = Redis::start();
    let env = [("WORKER_CONCURRENCY", "3"), ("SHUTDOWN_TIMEOUT", "4")];
    let mut first = App::start_ready(&redis.url(), &env);
    let short: Vec<String> = (0..2)
        .map(|_| first.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 1200}})))
        .collect();
    let long = first.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 6000}}));
    for id in short.iter().chain([&long]) {
        first.wait_for_status(id, "running", Duration::from_secs(5));
    }
    let waiting: Vec<String> = (0..4)
        .map(|i| first.enqueue_ok(&json!({"kind": "echo", "args": {"i": i}})))
        .collect();

    let signalled = Instant::now();
    first.signal(SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    first.signal(SIGTERM); // Heroku may repeat it; the drain must not be cut short.
    let status = first
        .wait_exit(Duration::from_secs(6))
        .expect("no exit after SIGTERM");
    let drain = signalled.elapsed();
    eprintln!("drain took {drain:?} with SHUTDOWN_TIMEOUT=4");
    assert_eq!(status.code(), Some(0), "{}", first.logs());
    assert!(drain < Duration::from_secs(4), "took {drain:?}");
    first.wait_for_log("event=shutdown.signal_ignored", Duration::from_secs(1));

    let mut conn = redis.conn();
    for id in &short {
        assert_eq!(
            support::job_field(&mut conn, id, "status").as_deref(),
            Some("succeeded")
        );
        assert_eq!(
            support::job_field(&mut conn, id, "attempts").as_deref(),
            Some("1")
        );
    }
    for id in &waiting {
        assert_eq!(
            support::job_field(&mut conn, id, "status").as_deref(),
            Some("queued")
        );
        assert_eq!(
            // Never fetched: no attempts field yet, which reads as 0.
            support::job_field(&mut conn, id, "attempts")
                .as_deref()
                .unwrap_or("0"),
            "0"
        );
    }
    assert_eq!(
        support::job_field(&mut conn, &long, "status").as_deref(),
        Some("queued")
    );
    assert_eq!(
        support::job_field(&mut conn, &long, "failures")
            .as_deref()
            .unwrap_or("0"),
        "0",
        "failures are absent (0) until a failed attempt"
    );
    assert_eq!(support::job_field(&mut conn, &long, "err_seq"), None);
    // The stop line counts the job its runner put back, not only what the final release found.
    let stopped = first.log_lines("event=worker.stopped");
    assert!(
        stopped.len() == 1 && stopped[0].contains("requeued=1"),
        "{stopped:?}"
    );
    // Back at the front: the interrupted job is the next one a worker takes.
    let next: Option<String> = conn.lindex(support::keys().queue("default"), -1).unwrap();
    assert_eq!(next.as_deref(), Some(long.as_str()));
    no_inflight_and_no_processes(&redis);

    let second = App::start_ready(&redis.url(), &env);
    let done = second.wait_for_status(&long, "succeeded", Duration::from_secs(15));
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["errors"], json!([]));
    for id in &waiting {
        second.wait_for_status(id, "succeeded", Duration::from_secs(5));
    }
}

#[test]
fn with_the_default_window_a_stuck_job_is_requeued_and_the_process_exits_before_ten_seconds() {
    let redis = Redis::start();
    let mut app = App::start_ready(&redis.url(), &[]);
    let id = app.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 60000}}));
    app.wait_for_status(&id, "running", Duration::from_secs(5));
    let signalled = Instant::now();
    app.signal(SIGTERM);
    let status = app.wait_exit(Duration::from_secs(12)).expect("no exit");
    let drain = signalled.elapsed();
    eprintln!("drain took {drain:?} with the default SHUTDOWN_TIMEOUT=10");
    assert_eq!(status.code(), Some(0));
    assert!(drain < Duration::from_secs(10), "took {drain:?}");
    assert!(drain > Duration::from_secs(7), "gave up early: {drain:?}");
    let mut conn = redis.conn();
    assert_eq!(
        support::job_field(&mut conn, &id, "status").as_deref(),
        Some("queued")
    );
    no_inflight_and_no_processes(&redis);
}

#[test]
fn sigterm_on_an_idle_process_exits_at_once() {
    let redis = Redis::start();
    let mut app = App::start_ready(&redis.url(), &[]);
    let signalled = Instant::now();
    app.signal(SIGTERM);
    let status = app.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "{:?}",
        signalled.elapsed()
    );
    no_inflight_and_no_processes(&redis);
}

#[test]
fn sigterm_before_redis_was_ever_reached_exits_at_once() {
    let redis = Redis::not_started();
    let mut app = App::start(&redis.url(), &[]);
    app.wait_for_log("event=redis.connect_failed", Duration::from_secs(5));
    let signalled = Instant::now();
    app.signal(SIGTERM);
    let status = app.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "{:?}",
        signalled.elapsed()
    );
}

#[test]
fn a_request_still_arriving_does_not_hold_the_exit_past_the_window() {
    use std::io::Write;
    let redis = Redis::start();
    let mut app = App::start_ready(&redis.url(), &[("SHUTDOWN_TIMEOUT", "1")]);
    // A client that sends half a request and then goes quiet.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", app.port())).unwrap();
    slow.write_all(
        b"POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    app.signal(SIGTERM);
    let status = app.wait_exit(Duration::from_secs(5)).expect("no exit");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    drop(slow);
}
