//! Shared limits (`LIMITS`) across processes on one Redis: a rate holds whatever the number of
//! processes, a concurrency bound holds everywhere, a throttled job pauses its key for every
//! process, and waiting never spends an attempt.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{App, Redis, ms};

/// Starts `n` processes on `redis` with `env`.
fn processes(redis: &Redis, n: usize, env: &[(&str, &str)]) -> Vec<App> {
    (0..n)
        .map(|_| App::start_ready(&redis.url(), env))
        .collect()
}

/// Waits until every job succeeded; returns the records.
fn all_succeeded(app: &App, ids: &[String], timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    ids.iter()
        .map(|id| {
            let left = deadline.saturating_duration_since(Instant::now());
            app.wait_for_status(id, "succeeded", left.max(Duration::from_millis(100)))
        })
        .collect()
}

/// The most starts within any window of `window_ms` that opens at a start.
fn most_starts_in_a_window(starts: &[i64], window_ms: i64) -> usize {
    starts
        .iter()
        .map(|&open| {
            starts
                .iter()
                .filter(|&&s| s >= open && s < open + window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// How many `job.started` lines each app logged for `kind`.
fn starts_per_app(apps: &[App], kind: &str) -> Vec<usize> {
    let needle = "event=job.started job_id=";
    apps.iter()
        .map(|app| {
            app.log_lines(needle)
                .iter()
                .filter(|l| l.contains(&format!("kind={kind} ")))
                .count()
        })
        .collect()
}

#[test]
fn a_rate_limit_holds_across_three_processes() {
    let redis = Redis::start();
    let limits = r#"{"kind:echo": {"rate": "5/s"}}"#;
    let apps = processes(&redis, 3, &[("LIMITS", limits)]);
    let began = Instant::now();
    let ids: Vec<String> = (0..20)
        .map(|i| {
            let body = json!({"kind": "echo", "args": {"i": i}, "max_attempts": 1});
            apps[i % 3].enqueue_ok(&body)
        })
        .collect();
    let jobs = all_succeeded(&apps[0], &ids, Duration::from_secs(20));
    let took = began.elapsed();
    let mut starts: Vec<i64> = jobs.iter().map(|j| ms(&j["started_at"])).collect();
    starts.sort_unstable();
    let spread = starts[19] - starts[0];
    let busiest = most_starts_in_a_window(&starts, 1000);
    eprintln!(
        "20 jobs at 5/s on 3 processes: {took:?}, first to last start {spread} ms, busiest second {busiest}"
    );
    // 19 gaps of 200 ms: about 3.8 s, whichever process runs them.
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_secs(6),
        "{took:?}"
    );
    // The documented burst: at most one start beyond the rate in any second.
    assert!(busiest <= 6, "{busiest} starts in one second: {starts:?}");
    for job in &jobs {
        assert_eq!(job["attempts"], 1, "waiting is not an attempt: {job}");
        assert_eq!(job["errors"], json!([]), "{job}");
    }
    let per_app = starts_per_app(&apps, "echo");
    assert_eq!(per_app.iter().sum::<usize>(), 20, "{per_app:?}");
    assert!(
        per_app.iter().filter(|&&n| n > 0).count() >= 2,
        "the jobs ran on more than one process: {per_app:?}"
    );
}

#[test]
fn a_concurrency_limit_of_two_holds_across_three_processes() {
    let redis = Redis::start();
    let limits = r#"{"kind:sleep": {"concurrency": 2}}"#;
    let apps = processes(&redis, 3, &[("LIMITS", limits)]);
    let ids: Vec<String> = (0..8)
        .map(|i| {
            let body = json!({"kind": "sleep", "args": {"ms": 400}, "max_attempts": 1});
            apps[i % 3].enqueue_ok(&body)
        })
        .collect();
    // While they run, the limit's state is visible in GET /queues.
    let seen = support::eventually(Duration::from_secs(5), || {
        let (_, queues) = apps[1].get("/queues");
        let limit = queues["limits"]
            .as_array()?
            .iter()
            .find(|l| l["key"] == "kind:sleep")?
            .clone();
        (limit["running"] == 2).then_some(limit)
    })
    .expect("GET /queues shows two running under kind:sleep");
    assert_eq!(seen["concurrency"], 2, "{seen}");
    assert_eq!(seen["rate"], Value::Null, "{seen}");
    assert_eq!(seen["paused_until"], Value::Null, "{seen}");

    let jobs = all_succeeded(&apps[0], &ids, Duration::from_secs(30));
    let spans: Vec<(i64, i64)> = jobs
        .iter()
        .map(|j| (ms(&j["started_at"]), ms(&j["finished_at"])))
        .collect();
    let most = spans
        .iter()
        .map(|&(start, _)| {
            spans
                .iter()
                .filter(|&&(s, f)| s <= start && start < f)
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!("most sleep jobs running at once: {most}; spans {spans:?}");
    assert_eq!(most, 2, "never more than 2 at once, and the 2 are used");
    for job in &jobs {
        assert_eq!(job["attempts"], 1, "waiting is not an attempt: {job}");
    }
    let (_, queues) = apps[2].get("/queues");
    let limit = queues["limits"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["key"] == "kind:sleep").cloned())
        .expect("kind:sleep listed");
    assert_eq!(limit["running"], 0, "every slot was given back: {limit}");
}

#[test]
fn a_throttled_job_pauses_its_key_for_every_process_without_spending_an_attempt() {
    let redis = Redis::start();
    // No limit is declared for kind:fail: the pause alone makes its jobs wait.
    let apps = processes(&redis, 3, &[]);
    let throttled =
        apps[0].enqueue_ok(&json!({"kind": "fail", "args": {"throttle": 4}, "max_attempts": 1}));
    let paused = support::eventually(Duration::from_secs(5), || {
        let (_, queues) = apps[1].get("/queues");
        queues["limits"]
            .as_array()?
            .iter()
            .find(|l| l["key"] == "kind:fail")?
            .get("paused_until")
            .filter(|u| u.is_string())
            .cloned()
    })
    .expect("GET /queues shows kind:fail paused");
    let paused_until = ms(&paused);
    // Every process learns the pause within a second; then jobs of the kind wait it out.
    std::thread::sleep(Duration::from_millis(1200));
    let others: Vec<String> = (0..3)
        .map(|i| apps[i].enqueue_ok(&json!({"kind": "fail", "args": {"times": 0}})))
        .collect();
    let jobs = all_succeeded(&apps[0], &others, Duration::from_secs(15));
    for job in &jobs {
        assert!(
            ms(&job["started_at"]) >= paused_until,
            "started before the pause ended at {paused}: {job}"
        );
        assert_eq!(job["attempts"], 1, "{job}");
    }
    let job = apps[0].wait_for_status(&throttled, "succeeded", Duration::from_secs(10));
    assert_eq!(job["max_attempts"], 1, "{job}");
    assert_eq!(
        job["errors"],
        json!([]),
        "a throttled attempt is not a failure: {job}"
    );
    assert!(ms(&job["started_at"]) >= paused_until, "{job}");
    let logs: String = apps.iter().map(App::logs).collect();
    assert!(logs.contains("event=limit.paused"), "{logs}");
    assert!(logs.contains("status=throttled"), "{logs}");
}

#[test]
fn waiting_behind_a_limit_does_not_spend_attempts() {
    let redis = Redis::start();
    let limits = r#"{"kind:sleep": {"concurrency": 1, "rate": "10/s"}}"#;
    let app = App::start_ready(
        &redis.url(),
        &[("LIMITS", limits), ("RUST_LOG", "info,onedyno=debug")],
    );
    let ids: Vec<String> = (0..4)
        .map(|_| app.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 300}, "max_attempts": 1})))
        .collect();
    let jobs = all_succeeded(&app, &ids, Duration::from_secs(20));
    for job in &jobs {
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(job["errors"], json!([]), "{job}");
    }
    // They did wait: each ran alone, and the waits were logged.
    let mut spans: Vec<(i64, i64)> = jobs
        .iter()
        .map(|j| (ms(&j["started_at"]), ms(&j["finished_at"])))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "one at a time: {spans:?}");
    }
    assert!(
        !app.log_lines("event=job.throttled").is_empty(),
        "{}",
        app.logs()
    );
}

#[test]
fn a_bad_limits_entry_stops_start_up_naming_its_key_and_field() {
    for (value, key, field) in [
        (r#"{"kind:echo": {"rate": "5/day"}}"#, "kind:echo", "rate"),
        (
            r#"{"http:api.example.com": {"concurrency": 0}}"#,
            "http:api.example.com",
            "concurrency",
        ),
        (
            r#"{"queue:default": {"rate": "1/s"}}"#,
            "queue:default",
            "kind:<name>",
        ),
    ] {
        let mut app = App::spawn("redis://127.0.0.1:1", &[("LIMITS", value)]);
        let status = app.wait_exit(Duration::from_secs(5)).expect("must stop");
        std::thread::sleep(Duration::from_millis(100)); // the log readers drain the pipes
        let logs = app.logs();
        assert_eq!(status.code(), Some(2), "{logs}");
        assert!(
            logs.contains("LIMITS") && logs.contains(key) && logs.contains(field),
            "{value}: {logs}"
        );
    }
}

#[test]
fn the_slot_of_a_process_that_died_frees_itself() {
    let redis = Redis::start();
    let limits = r#"{"kind:sleep": {"concurrency": 1}}"#;
    let mut doomed = App::start_ready(&redis.url(), &[("LIMITS", limits)]);
    let held = doomed.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 60000}}));
    doomed.wait_for_status(&held, "running", Duration::from_secs(5));
    let survivor = App::start_ready(&redis.url(), &[("LIMITS", limits)]);
    let killed = Instant::now();
    doomed.kill();
    // Cancelled, so that once reaped it does not take the slot again itself.
    survivor.cancel(&held);
    let waiting =
        survivor.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 10}, "max_attempts": 1}));
    // The dead process's slot frees once its heartbeat expires (15 s), not after the 60 s job.
    let job = survivor.wait_for_status(&waiting, "succeeded", Duration::from_secs(30));
    eprintln!("slot freed {:?} after SIGKILL", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(30));
    assert_eq!(job["attempts"], 1, "{job}");
}

type Views = Vec<std::sync::Arc<onedyno::limiter::SharedLimits>>;

/// A Tokio runtime connected to `redis`, and two processes' views of a `10/s` limit.
fn two_processes_limits(redis: &Redis) -> (tokio::runtime::Runtime, Views) {
    use onedyno::config::Limit;
    use onedyno::queue::{Queue, RedisHandle, Retention};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let views = (0..2)
        .map(|i| {
            let mut registry = onedyno::Registry::new();
            registry
                .limit(
                    "http:api.example.com",
                    Limit::rate(10, Duration::from_secs(1)),
                )
                .unwrap();
            let handle = RedisHandle::open(&redis.url()).unwrap();
            let retention = Retention {
                job: Duration::from_secs(60),
                job_max: 100,
                dead: Duration::from_secs(60),
                dead_max: 100,
            };
            let queue = Queue::new(handle.clone(), "onedyno", retention);
            runtime.block_on(async {
                handle.spawn_connect(onedyno::shutdown::Shutdown::new(Duration::from_secs(5)));
                while !handle.is_connected() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            std::sync::Arc::new(onedyno::limiter::SharedLimits::new(
                queue,
                std::sync::Arc::new(registry),
                format!("process-{i}"),
            ))
        })
        .collect();
    (runtime, views)
}

#[test]
fn a_named_limiter_paces_calls_across_processes_and_honours_pauses_and_cancellation() {
    use tokio_util::sync::CancellationToken;
    let redis = Redis::start();
    let (runtime, views) = two_processes_limits(&redis);
    let began = Instant::now();
    // Three callers in two processes, ten calls each, against 10/s: about 2.9 s.
    let calls: Vec<Duration> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for caller in 0..3 {
            let limiter = views[caller % 2].limiter(
                "http:api.example.com",
                &format!("caller-{caller}"),
                Duration::from_secs(60),
                CancellationToken::new(),
            );
            tasks.push(tokio::spawn(async move {
                let mut at = Vec::new();
                for _ in 0..10 {
                    let _permit = limiter.acquire().await.unwrap();
                    at.push(began.elapsed());
                }
                at
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort();
        all
    });
    let took = calls[29];
    eprintln!("30 calls at 10/s from 3 callers in 2 processes: {took:?}");
    assert!(
        took >= Duration::from_millis(2500) && took <= Duration::from_millis(4500),
        "{took:?}"
    );
    let ms: Vec<i64> = calls.iter().map(|d| d.as_millis() as i64).collect();
    assert!(most_starts_in_a_window(&ms, 1000) <= 11, "{ms:?}");

    // A pause set in one process holds the other's caller until it ends.
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        let here = views[0].limiter(
            "http:api.example.com",
            "p",
            Duration::from_secs(60),
            cancel.clone(),
        );
        let there = views[1].limiter("http:api.example.com", "q", Duration::from_secs(60), cancel);
        here.pause(Duration::from_millis(700)).await.unwrap();
        let before = Instant::now();
        there.acquire().await.unwrap();
        assert!(
            before.elapsed() >= Duration::from_millis(600),
            "{:?}",
            before.elapsed()
        );

        // A caller waiting for a long pause stops as soon as it is cancelled.
        let cancel = CancellationToken::new();
        let waiting = views[1].limiter(
            "http:api.example.com",
            "r",
            Duration::from_secs(60),
            cancel.clone(),
        );
        here.pause(Duration::from_secs(30)).await.unwrap();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.cancel();
        });
        let before = Instant::now();
        assert!(waiting.acquire().await.is_err(), "cancelled");
        assert!(
            before.elapsed() < Duration::from_secs(2),
            "{:?}",
            before.elapsed()
        );
    });
}
