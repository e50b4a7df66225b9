//! Delayed and scheduled jobs against a real Redis: `delay` and `run_at` hold a job back until it
//! is due, a past `run_at` runs at once, and several processes promoting the same schedule run
//! every job exactly once, soon after it is due.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis};

#[test]
fn a_delayed_job_stays_scheduled_until_its_delay_has_passed() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let (status, _, job) =
        app.enqueue(&json!({"kind": "echo", "args": {"late": true}, "delay": 1.5}));
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "scheduled", "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let due = support::ms(&job["run_at"]) - support::ms(&job["created_at"]);
    assert_eq!(due, 1500, "{job}");
    assert_eq!(app.queue_counter("scheduled"), 1);

    std::thread::sleep(Duration::from_millis(800));
    let early = app.job(&id);
    assert_eq!(early["status"], "scheduled", "{early}");
    assert_eq!(early["attempts"], 0, "{early}");

    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(6));
    assert_eq!(done["result"], json!({"late": true}));
    assert_eq!(done["attempts"], 1, "{done}");
    let waited = support::ms(&done["started_at"]) - support::ms(&done["created_at"]);
    eprintln!("delay 1.5 s: started {waited} ms after creation");
    assert!(
        waited >= 1300,
        "started after {waited} ms, before its delay"
    );
    assert!(
        waited <= 3000,
        "started after {waited} ms, long after its delay"
    );
    assert_eq!(app.queue_counter("scheduled"), 0);
}

#[test]
fn a_job_with_a_future_run_at_runs_then() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let run_at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, _, job) = app.enqueue(&json!({"kind": "noop", "run_at": run_at}));
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "scheduled", "{job}");
    assert_eq!(support::ms(&job["run_at"]), at.timestamp_millis(), "{job}");
    let id = job["id"].as_str().unwrap().to_string();

    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(app.job(&id)["status"], "scheduled");

    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(6));
    let started = support::ms(&done["started_at"]);
    let late = started - at.timestamp_millis();
    eprintln!("run_at +2 s: started {late} ms after run_at");
    assert!(late >= 0, "started {} ms before its run_at", -late);
    assert!(late <= 1500, "started {late} ms after its run_at");
}

#[test]
fn a_job_with_a_past_run_at_runs_at_once() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let past = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, _, job) = app.enqueue(&json!({"kind": "noop", "run_at": past}));
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "queued", "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(5));
    let waited = support::ms(&done["started_at"]) - support::ms(&done["created_at"]);
    assert!(waited < 1000, "a past run_at waited {waited} ms: {done}");
    // run_at shows when it became due: not before it was created.
    assert!(
        support::ms(&done["run_at"]) >= support::ms(&done["created_at"]),
        "{done}"
    );
}

#[test]
fn three_processes_promote_a_spread_schedule_and_run_every_job_exactly_once() {
    let redis = Redis::start();
    let apps: Vec<App> = (0..3)
        .map(|_| App::start_ready(&redis.url(), &[]))
        .collect();
    let mut ids = Vec::new();
    for i in 0..50u64 {
        // Due times spread over 2 s, enqueued through all three processes.
        let delay = 0.04 * i as f64;
        let id = apps[i as usize % 3]
            .enqueue_ok(&json!({"kind": "echo", "args": {"i": i}, "delay": delay}));
        ids.push(id);
    }

    let mut done: HashMap<String, Value> = HashMap::new();
    let all = support::eventually(Duration::from_secs(15), || {
        for id in &ids {
            if !done.contains_key(id) {
                let job = apps[0].job(id);
                if job["status"] == "succeeded" {
                    done.insert(id.clone(), job);
                }
            }
        }
        (done.len() == ids.len()).then_some(())
    });
    assert!(
        all.is_some(),
        "{} of {} jobs succeeded; not done: {:?}",
        done.len(),
        ids.len(),
        ids.iter()
            .filter(|id| !done.contains_key(*id))
            .map(|id| apps[0].job(id))
            .collect::<Vec<_>>()
    );
    // A duplicate promoted twice would be queued or running now; wait until neither.
    assert_eq!(apps[0].queue_counter("scheduled"), 0);
    support::wait_idle(&mut redis.conn(), "default");

    let mut delays = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let job = apps[0].job(id);
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "ran more than once: {job}");
        assert_eq!(job["result"], json!({"i": i}), "{job}");
        let started = apps
            .iter()
            .map(|app| {
                app.log_lines(&format!("event=job.started job_id={id} "))
                    .len()
            })
            .sum::<usize>();
        assert_eq!(started, 1, "job {id} started {started} times");
        let late = support::ms(&job["started_at"]) - support::ms(&job["run_at"]);
        assert!(late >= 0, "started {} ms before its run_at: {job}", -late);
        delays.push(late);
    }
    let max = delays.iter().copied().max().unwrap_or_default();
    let avg = delays.iter().sum::<i64>() as f64 / delays.len() as f64;
    eprintln!(
        "promotion delay (started_at - run_at) over {} jobs, 3 processes: max {max} ms, avg {avg:.0} ms",
        delays.len()
    );
    assert!(max < 1500, "promotion delay up to {max} ms");
    let mut conn = redis.conn();
    assert!(support::inflight_ids(&mut conn).is_empty());
    assert_eq!(support::queue_len(&mut conn, "default"), 0);
    let per_process: Vec<usize> = apps
        .iter()
        .map(|app| app.log_lines("event=job.started").len())
        .collect();
    eprintln!("jobs started per process: {per_process:?}");
}
