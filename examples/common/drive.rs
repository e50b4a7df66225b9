//! The HTTP side of a chaos run, shared by `tests/chaos.rs` and `examples/chaos`: enqueueing
//! the planned jobs into whichever process is up, waiting until nothing is left to do, and
//! judging every accepted job by its public record. Only the public API is used, so the checks
//! hold whatever the Redis key layout is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

use super::mix::{Planned, judge};

/// The ports of the processes that are up. The chaos loop takes a port out before it stops
/// that process and puts the new one in once its replacement answers.
#[derive(Default)]
pub(crate) struct Ports(Mutex<Vec<u16>>);

impl Ports {
    /// Adds a process that is up.
    pub(crate) fn add(&self, port: u16) {
        self.lock().push(port);
    }

    /// Removes a process about to be stopped.
    pub(crate) fn remove(&self, port: u16) {
        self.lock().retain(|p| *p != port);
    }

    /// One of the processes that are up, at random.
    pub(crate) fn any(&self) -> Option<u16> {
        let ports = self.lock();
        (!ports.is_empty()).then(|| ports[rand::rng().random_range(0..ports.len())])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An HTTP client whose every request gives up after 10 s.
pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// What the enqueuer did: the id of every job whose batch was accepted (`None` for the rest),
/// and how many POSTs failed and were sent again.
pub(crate) struct Enqueued {
    /// Job ids, by plan index.
    pub(crate) ids: Vec<Option<String>>,
    /// POSTs that failed (connection refused or reset, 503) and were sent again.
    pub(crate) resent: u64,
}

/// Sends the plan in batches of `batch` to a random live process, one batch every `pace`,
/// sending a batch again (same idempotency keys, so no job is made twice) until it is
/// accepted or `deadline` passes, or `stop` is set. `accepted` counts accepted jobs as they go.
pub(crate) fn enqueue_all(
    plan: &[Planned],
    ports: &Ports,
    batch: usize,
    pace: Duration,
    deadline: Instant,
    accepted: &AtomicU64,
    stop: &AtomicBool,
) -> Enqueued {
    let client = client();
    let mut ids = vec![None; plan.len()];
    let mut resent = 0;
    for (n, chunk) in plan.chunks(batch).enumerate() {
        let body = Value::Array(chunk.iter().map(|p| p.body.clone()).collect());
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Some(got) = ports
                .any()
                .and_then(|port| post_batch(&client, port, &body))
            {
                for (i, id) in got.into_iter().enumerate() {
                    ids[n * batch + i] = Some(id);
                }
                accepted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                break;
            }
            resent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(pace);
    }
    Enqueued { ids, resent }
}

/// POSTs one batch; the ids when it was accepted (`202`) with one id per job.
fn post_batch(client: &Client, port: u16, body: &Value) -> Option<Vec<String>> {
    let url = format!("http://127.0.0.1:{port}/jobs");
    let res = client.post(url).json(body).send().ok()?;
    if res.status() != StatusCode::ACCEPTED {
        return None;
    }
    let reply: Value = res.json().ok()?;
    let ids: Vec<String> = reply["jobs"]
        .as_array()?
        .iter()
        .filter_map(|j| j["id"].as_str().map(str::to_string))
        .collect();
    (Some(ids.len()) == body.as_array().map(Vec::len)).then_some(ids)
}

/// GET a path of a process as JSON; `None` unless it answered `200` with JSON.
pub(crate) fn get_json(client: &Client, port: u16, path: &str) -> Option<Value> {
    let res = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .ok()?;
    if res.status() != StatusCode::OK {
        return None;
    }
    res.json().ok()
}

/// True when `GET /queues` shows nothing waiting, running, scheduled, retrying or dead.
pub(crate) fn idle(queues: &Value) -> bool {
    let counts_zero = ["running", "scheduled", "retrying", "dead"]
        .iter()
        .all(|c| queues["counts"][c] == 0);
    let queues_empty = queues["queues"]
        .as_array()
        .is_some_and(|qs| qs.iter().all(|q| q["depth"] == 0 && q["running"] == 0));
    counts_zero && queues_empty
}

/// Polls `GET /queues` until [`idle`] or `timeout`; returns the last answer and whether it was
/// idle.
pub(crate) fn wait_idle(client: &Client, port: u16, timeout: Duration) -> (Value, bool) {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        if let Some(queues) = get_json(client, port, "/queues") {
            last = queues;
            if idle(&last) {
                return (last, true);
            }
        }
        if Instant::now() >= deadline {
            return (last, false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Jobs listed by `GET /jobs?status=...` in each status that should be empty after a run
/// (`queued`, `running`, `scheduled`, `retrying`, `dead`); `None` when a list could not be read.
pub(crate) fn leftovers(client: &Client, port: u16) -> Option<Vec<(String, String)>> {
    let mut left = Vec::new();
    for status in ["queued", "running", "scheduled", "retrying", "dead"] {
        let page = get_json(client, port, &format!("/jobs?status={status}&limit=200"))?;
        for job in page["jobs"].as_array()? {
            left.push((status.to_string(), job["id"].to_string()));
        }
    }
    Some(left)
}

/// The counts a run ends with.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Jobs whose batch was accepted (`202`).
    pub(crate) accepted: u64,
    /// Accepted jobs that finished as their kind dictates.
    pub(crate) succeeded: u64,
    /// Accepted jobs `GET /jobs/{id}` does not know (`404`).
    pub(crate) lost: u64,
    /// Accepted jobs found in another state or with the wrong result or attempts.
    pub(crate) wrong: u64,
    /// Starts cut short (a kill, a drain, a lost reply): the extra runs.
    pub(crate) extra_runs: u64,
    /// Failed starts caused by the Redis restart (a checkpoint that could not be saved).
    pub(crate) redis_failures: u64,
    /// The first few problems, for the report.
    pub(crate) problems: Vec<String>,
}

/// Reads every accepted job through `port` and judges it (four readers at once).
pub(crate) fn judge_all(
    port: u16,
    plan: &[Planned],
    ids: &[Option<String>],
    redis_restarted: bool,
) -> Tally {
    let tally = Mutex::new(Tally::default());
    let jobs: Vec<(&Planned, &String)> = plan
        .iter()
        .zip(ids)
        .filter_map(|(p, id)| Some((p, id.as_ref()?)))
        .collect();
    std::thread::scope(|s| {
        for part in jobs.chunks(jobs.len().div_ceil(4).max(1)) {
            let tally = &tally;
            s.spawn(move || {
                let client = client();
                for (planned, id) in part {
                    let seen = read_job(&client, port, id);
                    let mut t = tally
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    record(&mut t, planned, id, seen, redis_restarted);
                }
            });
        }
    });
    tally
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `GET /jobs/{id}`: `Ok(Some(job))`, `Ok(None)` on 404, `Err` when it could not be read.
fn read_job(client: &Client, port: u16, id: &str) -> Result<Option<Value>, String> {
    for _ in 0..5 {
        let url = format!("http://127.0.0.1:{port}/jobs/{id}");
        match client.get(url).send() {
            Ok(res) if res.status() == StatusCode::NOT_FOUND => return Ok(None),
            Ok(res) if res.status() == StatusCode::OK => {
                return res.json().map(Some).map_err(|e| e.to_string());
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    Err(format!("GET /jobs/{id} kept failing"))
}

fn record(
    t: &mut Tally,
    planned: &Planned,
    id: &str,
    seen: Result<Option<Value>, String>,
    redis_restarted: bool,
) {
    t.accepted += 1;
    let problem = match seen {
        Ok(None) => {
            t.lost += 1;
            format!("lost: {id}")
        }
        Ok(Some(job)) => match judge(planned, &job, redis_restarted) {
            Ok(verdict) => {
                t.succeeded += 1;
                t.extra_runs += verdict.interrupted;
                t.redis_failures += verdict.redis_failures;
                return;
            }
            Err(e) => {
                t.wrong += 1;
                e
            }
        },
        Err(e) => {
            t.wrong += 1;
            e
        }
    };
    if t.problems.len() < 10 {
        t.problems.push(problem);
    }
}
