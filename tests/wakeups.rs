//! Wake-ups: an idle worker starts a new job when it is enqueued, and a worker that boots onto a
//! full queue starts at once, never by waiting out its poll interval. Each test sets
//! `WORKER_POLL_INTERVAL=60`, so a job that runs within the (generous, far shorter) waits below
//! can only have been started by a wake-up.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{App, Redis};

const POLL: (&str, &str) = ("WORKER_POLL_INTERVAL", "60");
/// Far below the poll interval, far above any wake-up on a loaded machine.
const WITHIN: Duration = Duration::from_secs(20);

#[test]
fn an_idle_worker_starts_each_enqueued_job_without_waiting_for_its_poll() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[POLL]);
    let mut conn = redis.conn();
    // Each job lands in an empty queue while the worker waits, idle, on its 60 s poll.
    for n in 0..5 {
        support::wait_idle(&mut conn, "default");
        let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": n}}));
        app.wait_for_status(&id, "succeeded", WITHIN);
    }
}

#[test]
fn a_worker_process_is_woken_by_a_job_another_process_enqueued() {
    let redis = Redis::start();
    let worker = App::spawn(&redis.url(), &[("ROLE", "worker"), POLL]);
    worker.wait_for_log("event=worker.registered", Duration::from_secs(10));
    let web = App::start_web_only(&redis.url());
    let mut conn = redis.conn();
    for n in 0..3 {
        support::wait_idle(&mut conn, "default");
        let id = web.enqueue_ok(&json!({"kind": "echo", "args": {"n": n}}));
        web.wait_for_status(&id, "succeeded", WITHIN);
    }
}

#[test]
fn a_worker_booting_onto_a_full_queue_starts_at_once() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    let ids: Vec<String> = (0..20)
        .map(|n| web.enqueue_ok(&json!({"kind": "echo", "args": {"n": n}})))
        .collect();
    let _worker = App::spawn(&redis.url(), &[("ROLE", "worker"), POLL]);
    for id in &ids {
        web.wait_for_status(id, "succeeded", WITHIN);
    }
}
