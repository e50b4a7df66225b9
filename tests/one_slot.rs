//! Every script touches the keys of one hash tag only, so on a Redis Cluster each runs in one
//! slot. Redis's MONITOR shows each script call and, right after it, every command the script
//! ran (scripts are atomic, so nothing interleaves): the test drives a job of every fate through
//! queues on different shards and the API across them, then checks each script's keys.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{App, FAST_BACKOFF, Redis};

const WITHIN: Duration = Duration::from_secs(20);

/// Collects MONITOR's lines from a connection of its own until stopped.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (lines.clone(), stop.clone());
        let reader = thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while !stopped.load(Ordering::SeqCst) {
                match reader.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) => into.lock().unwrap().push(std::mem::take(&mut line)),
                    Err(_) => {} // A read timeout: look at the stop flag again.
                }
            }
        });
        Monitor {
            lines,
            stop,
            reader: Some(reader),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            reader.join().expect("monitor thread");
        }
        std::mem::take(&mut self.lines.lock().unwrap())
    }
}

/// The quoted arguments of one MONITOR line (`+1700000000.1 [0 lua] "HSET" "key" ...`).
fn arguments(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => arg.extend(chars.next()),
                '"' => break,
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    args
}

/// The keys a command a script ran names (its channel is not a key: PUBLISH is left out).
fn command_keys(args: &[String]) -> Vec<String> {
    let Some(name) = args.first() else {
        return Vec::new();
    };
    match name.to_ascii_uppercase().as_str() {
        "TIME" | "PUBLISH" => Vec::new(),
        "DEL" | "EXISTS" | "UNLINK" | "MGET" => args[1..].to_vec(),
        "LMOVE" | "RPOPLPUSH" | "SMOVE" => args[1..3.min(args.len())].to_vec(),
        _ => args.get(1).cloned().into_iter().collect(),
    }
}

/// A key's hash tag: what stands between its first `{` and the next `}`.
fn tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open..].find('}')? + open;
    Some(&key[open + 1..close])
}

/// Each script call: its name (sha), its KEYS, and the keys of the commands it ran.
fn script_calls(lines: &[String]) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut calls: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for line in lines {
        let args = arguments(line);
        if line.contains(" lua] ") {
            if let Some(call) = calls.last_mut() {
                call.2.extend(command_keys(&args));
            }
        } else if args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
        {
            let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
            let keys = args.iter().skip(3).take(count).cloned().collect();
            calls.push((args[1].clone(), keys, Vec::new()));
        }
    }
    calls
}

/// Drives jobs of every fate through three queues (three shards) and the API over them.
fn exercise(app: &App) {
    let a = app.enqueue_ok(&json!({"kind": "echo", "queue": "alpha"}));
    let key = [("Idempotency-Key", "k-1")];
    let (status, _, b) = app.enqueue_with(&json!({"kind": "echo", "queue": "beta"}), &key);
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    let (status, body) = {
        let res = app
            .http()
            .post(app.url("/jobs"))
            .json(&json!([
                {"kind": "noop", "queue": "alpha", "idempotency_key": "bulk-1"},
                {"kind": "noop", "queue": "beta", "delay": 1},
                {"kind": "noop", "queue": "gamma"}
            ]))
            .send()
            .expect("POST /jobs");
        (res.status(), res.json::<serde_json::Value>().expect("JSON"))
    };
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let dead = app.enqueue_ok(&json!({"kind": "fail", "queue": "beta",
        "args": {"times": 1, "permanent": true}}));
    let gone = app.enqueue_ok(&json!({"kind": "fail", "queue": "alpha",
        "args": {"permanent": true}}));
    let retried = app.enqueue_ok(&json!({"kind": "fail", "queue": "gamma",
        "args": {"times": 1}, "max_attempts": 3}));
    let throttled = app.enqueue_ok(&json!({"kind": "fail", "queue": "alpha",
        "args": {"throttle": 0.2}}));
    let cancelled = app.enqueue_ok(&json!({"kind": "echo", "queue": "gamma", "delay": 60}));
    assert_eq!(app.cancel(&cancelled).0, StatusCode::OK);
    let running = app.enqueue_ok(&json!({"kind": "steps", "queue": "beta",
        "args": {"steps": 100, "step_ms": 50}}));
    app.wait_for_status(&running, "running", WITHIN);
    assert_eq!(app.cancel(&running).0, StatusCode::OK);
    for id in [&a, &retried, &throttled] {
        app.wait_for_status(id, "succeeded", WITHIN);
    }
    app.wait_for_status(&dead, "dead", WITHIN);
    app.wait_for_status(&gone, "dead", WITHIN);
    let res = app
        .http()
        .delete(app.url(&format!("/jobs/{gone}")))
        .send()
        .expect("DELETE");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.retry(&dead).0, StatusCode::ACCEPTED);
    app.wait_for_status(&dead, "succeeded", WITHIN);
    let res = app
        .http()
        .post(app.url("/jobs/retry?status=dead"))
        .send()
        .expect("POST");
    assert_eq!(res.status(), StatusCode::OK);
    for status in [
        "queued",
        "running",
        "scheduled",
        "retrying",
        "dead",
        "succeeded",
        "cancelled",
    ] {
        assert_eq!(app.list(status, "").0, StatusCode::OK);
    }
    for path in ["/queues", "/processes", "/stats/minutes"] {
        assert_eq!(app.get(path).0, StatusCode::OK, "{path}");
    }
    let fired = support::eventually(WITHIN, || {
        let (_, schedules) = app.get("/schedules");
        schedules["schedules"].as_array()?[0]["last_status"]
            .as_str()
            .map(str::to_string)
    });
    assert!(fired.is_some(), "{}", app.get("/schedules").1);
}

#[test]
fn every_script_touches_the_keys_of_one_hash_tag() {
    let redis = Redis::start();
    let port: u16 = redis.url().rsplit(':').next().unwrap().parse().unwrap();
    let monitor = Monitor::start(port);
    let schedules =
        r#"[{"name": "pulse", "cron": "* * * * * *", "kind": "noop", "queue": "beta"}]"#;
    let mut env = vec![("QUEUES", "alpha,beta,gamma"), ("SCHEDULES", schedules)];
    env.extend(FAST_BACKOFF);
    let app = App::start_ready(&redis.url(), &env);
    exercise(&app);
    drop(app);
    let calls = script_calls(&monitor.finish());
    assert!(calls.len() > 50, "{} script calls seen", calls.len());
    let mut tags_seen = BTreeSet::new();
    for (sha, declared, touched) in &calls {
        assert!(!declared.is_empty(), "script {sha} was called with no key");
        let tags: BTreeSet<&str> = declared
            .iter()
            .chain(touched)
            .filter_map(|k| tag(k))
            .collect();
        assert_eq!(tags.len(), 1, "script {sha}: {declared:?} {touched:?}");
        tags_seen.extend(tags.into_iter().map(str::to_string));
    }
    // The deployment's tag and a shard of each queue (two may share one: not these three).
    assert!(tags_seen.len() >= 4, "{tags_seen:?}");
}
