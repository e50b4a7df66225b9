//! Faults between the process and Redis: a fetch whose reply never arrived, a connection that
//! goes silent without closing, and a shutdown while Redis does not answer.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use onedyno::queue::shard_number;
use redis::Commands;
use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis, SIGTERM};

fn process_id(app: &App) -> String {
    app.wait_for_log("event=worker.registered", Duration::from_secs(10));
    let line = app.log_lines("event=worker.registered").remove(0);
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("process="))
        .expect("process id in the log")
        .to_string()
}

#[test]
fn a_job_fetched_into_a_live_process_without_a_runner_is_put_back() {
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    // This worker works another queue, so it will not fetch the job on its own.
    let worker = App::start_ready(&redis.url(), &[("QUEUES", "elsewhere")]);
    let process = process_id(&worker);
    // A queue no process works, in the shard of the worker's queue: the worker registers in
    // that shard, so its heartbeat walks its in-flight list there.
    let unserved = (0..)
        .map(|i| format!("unserved-{i}"))
        .find(|q| shard_number(q) == shard_number("elsewhere"))
        .expect("a queue name in the shard");
    let id = web.enqueue_ok(&json!({"kind": "echo", "queue": unserved}));

    // What fetch.lua does, with the reply lost on its way back: the job sits in the live
    // process's in-flight list, running under a lease no runner holds.
    let mut conn = redis.conn();
    let inflight = support::keys().for_queue(&unserved).inflight(&process);
    let moved: Option<String> = redis::cmd("LMOVE")
        .arg(support::keys().queue(&unserved))
        .arg(&inflight)
        .arg("RIGHT")
        .arg("LEFT")
        .query(&mut conn)
        .unwrap();
    assert_eq!(moved.as_deref(), Some(id.as_str()));
    let _: () = conn
        .hset_multiple(
            support::job_key(&id),
            &[
                // status, attempts, lease, owner, in the record's one-letter field names.
                ("s", "running"),
                ("n", "1"),
                ("L", &format!("{process}:1")),
                ("o", &process),
            ],
        )
        .unwrap();

    let started = Instant::now();
    let back = support::eventually(Duration::from_secs(20), || {
        (support::job_field(&mut conn, &id, "status").as_deref() == Some("queued")).then_some(())
    });
    assert!(back.is_some(), "never put back:\n{}", worker.logs());
    eprintln!("unowned job put back after {:?}", started.elapsed());
    assert!(support::inflight_ids(&mut conn).is_empty());
    assert_eq!(support::job_field(&mut conn, &id, "err_seq"), None);
    assert_eq!(support::queue_len(&mut conn, &unserved), 1);
    worker.wait_for_log("event=job.unowned_requeued", Duration::from_secs(1));
}

/// A TCP proxy that can go silent: connections it already carries stop moving bytes but stay
/// open (as when a server vanishes behind a NAT), while new connections pass.
struct SilentProxy {
    port: u16,
    accepted: Arc<AtomicU64>,
    silenced_up_to: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl SilentProxy {
    fn start(upstream: u16) -> SilentProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let proxy = SilentProxy {
            port,
            accepted: Arc::new(AtomicU64::new(0)),
            silenced_up_to: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (accepted, silenced, stopping) = (
            proxy.accepted.clone(),
            proxy.silenced_up_to.clone(),
            proxy.stop.clone(),
        );
        thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let generation = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (silenced, stopping) = (silenced.clone(), stopping.clone());
                            thread::spawn(move || pipe(from, to, generation, &silenced, &stopping));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
        });
        proxy
    }

    /// Every connection open now goes silent; later ones pass.
    fn silence_current_connections(&self) {
        let accepted = self.accepted.load(Ordering::SeqCst);
        self.silenced_up_to.store(accepted, Ordering::SeqCst);
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    generation: u64,
    silenced_up_to: &AtomicU64,
    stop: &AtomicBool,
) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        if generation <= silenced_up_to.load(Ordering::SeqCst) {
            // Hold the socket open and move nothing, for as long as the test runs.
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_connection_that_goes_silent_is_replaced() {
    let redis = Redis::start();
    let upstream: u16 = redis.url().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = SilentProxy::start(upstream);
    let app = App::start_ready(&format!("redis://127.0.0.1:{}", proxy.port), &[]);
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"before": true}}));
    app.wait_for_status(&id, "succeeded", Duration::from_secs(10));

    proxy.silence_current_connections();
    let silenced_at = Instant::now();
    // The silence shows: Redis stops answering this process (its PINGs time out)...
    let noticed = support::eventually(Duration::from_secs(10), || {
        (app.get("/health").0 == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    });
    assert!(
        noticed.is_some(),
        "the proxy did not silence the connection"
    );
    // ...until the silent connection is replaced by a new one.
    let healed = support::eventually(Duration::from_secs(30), || {
        let (status, _, job) = app.enqueue(&json!({"kind": "echo", "args": {"after": true}}));
        (status == StatusCode::ACCEPTED).then(|| job["id"].as_str().unwrap().to_string())
    });
    let id = healed.unwrap_or_else(|| panic!("never recovered:\n{}", app.logs()));
    eprintln!(
        "accepting jobs again {:?} after the connection went silent",
        silenced_at.elapsed()
    );
    app.wait_for_status(&id, "succeeded", Duration::from_secs(20));
    app.wait_for_log("event=redis.reconnected", Duration::from_secs(1));
}

#[test]
fn sigterm_while_redis_does_not_answer_still_exits_zero_in_time() {
    let redis = Redis::start();
    let mut app = App::start_ready(&redis.url(), &[]);
    let id = app.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 60000}}));
    app.wait_for_status(&id, "running", Duration::from_secs(5));
    let url = redis.url();
    let sleeper = thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let slept: redis::RedisResult<String> =
            redis::cmd("DEBUG").arg("SLEEP").arg(20).query(&mut conn);
        slept.expect("DEBUG SLEEP");
    });
    thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    app.signal(SIGTERM);
    let status = app.wait_exit(Duration::from_secs(12)).expect("no exit");
    let took = signalled.elapsed();
    eprintln!("exit {:?} after {took:?} with Redis asleep", status.code());
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    sleeper.join().unwrap();
    // The job was never put back (Redis did not answer), so it is still held by the dead
    // process; a new process recovers it once that heartbeat has expired.
    let next = App::start_ready(&redis.url(), &[]);
    next.wait_for_status(&id, "running", Duration::from_secs(30));
}

#[test]
fn a_checkpoint_save_waits_out_a_stalled_redis_instead_of_failing_the_attempt() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("DEMO_KINDS", "true")]);
    let id = app.enqueue_ok(&json!({"kind": "steps", "args": {"steps": 30, "step_ms": 100}}));
    app.wait_for_status(&id, "running", Duration::from_secs(10));
    // Longer than a reply may take (3 s), so a save in flight fails with a timeout and is retried.
    redis.freeze_for(Duration::from_secs(4));
    let job = app.wait_for_status(&id, "succeeded", Duration::from_secs(60));
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["errors"], json!([]), "{job}");
    assert!(
        !app.log_lines("event=job.save_retrying").is_empty(),
        "a save was retried:\n{}",
        app.logs()
    );
}
