//! The real queue: one `redis-server` for the whole test, flushed between cases, driven through
//! `onedyno::queue::Queue`'s public API only (no key names), so the test does not depend on
//! how keys are laid out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onedyno::queue::{
    BulkEnqueued, Cancelled, Enqueued, Fetched, JobRecord, JobStatus, JobSummary, Lease,
    ListCursor, ListRequest, NewJob, NextAttempt, Queue, RedisHandle, Registration, Retention,
    Retried, RunAt, StateField,
};
use serde_json::json;

use super::model::pick_handle;
use super::ops::{NewSpec, PROCESSES, QUEUES, queues_of};
use super::outcome::{Facts, Outcome, process_name};
use super::retention::Keep;
use crate::support::Redis;

/// A heartbeat that outlives any case.
const LIVE_HEARTBEAT: Duration = Duration::from_secs(600);
/// A heartbeat that is over almost at once (a process that died).
const DYING_HEARTBEAT: Duration = Duration::from_millis(1);

/// The real side of a case.
pub(crate) struct System {
    runtime: tokio::runtime::Runtime,
    redis: Redis,
    clock: redis::Connection,
    pub(crate) queue: Queue,
    /// The lease handles each process was given and has not used yet (stale ones too).
    pub(crate) leases: [Vec<Arc<Lease>>; PROCESSES],
    /// How many steps of each kind ([`label`](super::outcome::label)) agreed with the model.
    pub(crate) tally: std::collections::BTreeMap<String, u64>,
    /// The retention's count bounds.
    pub(crate) keep: Keep,
}

impl System {
    /// A fresh `redis-server` and a connected queue that keeps at most `keep` finished and dead
    /// jobs (its age bounds outlast every case).
    pub(crate) fn start(keep: Keep) -> System {
        let redis = Redis::start();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = RedisHandle::open(&redis.url()).expect("redis url");
        let queue = Queue::new(handle.clone(), "onedyno", retention(&keep));
        runtime.block_on(async {
            handle.spawn_connect(onedyno::shutdown::Shutdown::new(Duration::from_secs(5)));
            tokio::time::timeout(Duration::from_secs(10), handle.connected())
                .await
                .expect("connected to redis");
        });
        let clock = redis.conn();
        System {
            runtime,
            redis,
            clock,
            queue,
            leases: Default::default(),
            tally: Default::default(),
            keep,
        }
    }

    /// Empties Redis and forgets every lease: a new case.
    pub(crate) fn reset(&mut self) {
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut self.redis.conn())
            .expect("FLUSHALL");
        self.leases = Default::default();
        // A queue of its own per case: what one remembers of Redis (the shards it has announced,
        // the shards found empty) went with the flush.
        self.queue = Queue::new(self.queue.redis().clone(), "onedyno", retention(&self.keep));
    }

    /// Redis's clock in ms (the clock the scripts read).
    pub(crate) fn now_ms(&mut self) -> i64 {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut self.clock).expect("TIME");
        secs * 1000 + micros / 1000
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// Every record of `ids` read now, with the step's window of time.
    pub(crate) fn facts(&mut self, ids: &[String], before_ms: i64) -> Facts {
        let after_ms = self.now_ms();
        let records = ids
            .iter()
            .filter_map(|id| self.get(id).map(|r| (id.clone(), r)))
            .collect();
        Facts {
            records,
            before_ms,
            after_ms,
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<JobRecord> {
        self.block(self.queue.get(id)).expect("get job")
    }

    pub(crate) fn enqueue(
        &self,
        id: &str,
        queue: usize,
        delay_ms: Option<u64>,
        idem: Option<(u8, bool)>,
        max_attempts: u32,
    ) -> Outcome {
        let job = new_job(id, queue, delay_ms, idem, max_attempts);
        match self.block(self.queue.enqueue(job)).expect("enqueue") {
            Enqueued::Created(job) => Outcome::Created {
                id: job.id,
                status: job.status,
            },
            Enqueued::Existing(job) => Outcome::Existing(job.id),
            Enqueued::KeyReused => Outcome::KeyReused,
        }
    }

    /// Stores a batch (`ids[i]` for `jobs[i]`).
    pub(crate) fn enqueue_bulk(&self, ids: &[String], jobs: &[NewSpec]) -> Outcome {
        let batch = ids
            .iter()
            .zip(jobs)
            .map(|(id, job)| new_job(id, job.queue, job.delay_ms, job.idem, job.max_attempts))
            .collect();
        let room = self.block(self.queue.bulk_room(jobs.len()));
        match self
            .block(self.queue.enqueue_many(room, batch))
            .expect("enqueue_many")
        {
            BulkEnqueued::Stored(items) => Outcome::Bulk(
                items
                    .into_iter()
                    .map(|i| (i.created, i.id, i.status))
                    .collect(),
            ),
            BulkEnqueued::KeyReused(i) => Outcome::BulkKeyReused(i),
        }
    }

    pub(crate) fn fetch(&mut self, p: usize, count: usize) -> Outcome {
        // A model fetch looks at every queue, as a worker's does on a poll tick: the shards the
        // queue remembers as empty (skipped until a wake-up) are forgotten first.
        self.queue.forget_empty();
        let fetched = self.block(self.queue.fetch(&process_name(p), &queues_of(p), count));
        let leases = match fetched.expect("fetch") {
            Fetched::Unregistered => return Outcome::Unregistered,
            Fetched::Jobs(leases) | Fetched::More(leases) => leases,
        };
        let pairs = leases
            .iter()
            .map(|l| (l.job().id.clone(), l.token().to_string()))
            .collect();
        self.leases[p].extend(leases);
        Outcome::Fetched(pairs)
    }

    /// Takes the lease handle a `lease` choice names (see [`pick_handle`]).
    pub(crate) fn take_lease(&mut self, lease: u8) -> Option<(usize, Arc<Lease>)> {
        let (p, i) = pick_handle(self.leases.iter().map(Vec::len), lease)?;
        Some((p, self.leases[p].remove(i)))
    }

    /// Saves progress under `lease`, and gives the handle back to process `p` (last).
    pub(crate) fn save(&mut self, p: usize, lease: Arc<Lease>) -> Outcome {
        let saved = self.block(lease.save(StateField::Progress, r#"{"done":1}"#));
        self.leases[p].push(lease);
        Outcome::Saved(saved.expect("save"))
    }

    /// Process `p` acks its first `count` handles concurrently, as runners finishing together
    /// do; `None` when it holds none.
    pub(crate) fn ack_many(&mut self, p: usize, count: usize) -> Option<Outcome> {
        let n = count.min(self.leases[p].len());
        let leases: Vec<Arc<Lease>> = self.leases[p].drain(..n).collect();
        if leases.is_empty() {
            return None;
        }
        let acks = futures_util::future::join_all(leases.iter().map(|l| l.ack("null")));
        let written = self.block(acks).into_iter().map(|r| r.expect("ack"));
        Some(Outcome::AckedMany(written.collect()))
    }

    pub(crate) fn ack(&self, lease: &Lease) -> Outcome {
        Outcome::Acked(self.block(lease.ack(r#"{"ok":true}"#)).expect("ack"))
    }

    pub(crate) fn fail(&self, lease: &Lease, retry_ms: Option<u64>) -> Outcome {
        let next = retry_ms.map_or(NextAttempt::Never, |ms| {
            NextAttempt::RetryAfter(Duration::from_millis(ms))
        });
        Outcome::Failed(self.block(lease.fail("boom", next)).expect("fail"))
    }

    pub(crate) fn requeue(&self, lease: &Lease) -> Outcome {
        Outcome::Requeued(self.block(lease.requeue()).expect("requeue"))
    }

    pub(crate) fn cancel(&self, id: &str) -> Outcome {
        match self.block(self.queue.cancel(id)).expect("cancel") {
            Cancelled::Missing => Outcome::Steered("missing", None),
            Cancelled::Finished(job) => Outcome::Steered("finished", Some(job.status)),
            Cancelled::Cancelled(job) => Outcome::Steered("ok", Some(job.status)),
        }
    }

    pub(crate) fn retry(&self, id: &str) -> Outcome {
        match self.block(self.queue.retry(id)).expect("retry") {
            Retried::Missing => Outcome::Steered("missing", None),
            Retried::Conflict(job) => Outcome::Steered("conflict", Some(job.status)),
            Retried::Queued(job) => Outcome::Steered("ok", Some(job.status)),
        }
    }

    pub(crate) fn retry_dead(&self) -> Outcome {
        let done = self
            .block(self.queue.retry_dead(None, None))
            .expect("retry");
        Outcome::RetriedDead(done.retried, done.remaining)
    }

    pub(crate) fn delete_dead(&self, id: &str) -> Outcome {
        Outcome::Deleted(self.block(self.queue.delete_dead(id)).expect("delete"))
    }

    /// A heartbeat of process `p` lasting `ttl`.
    fn heartbeat(&self, p: usize, ttl: Duration, registration: Registration) -> Outcome {
        let beat = self.block(self.queue.heartbeat(
            &process_name(p),
            ttl,
            // The served queues name the shards the process registers in, as a worker's do.
            &json!({"test": "queue_model", "queues": queues_of(p)}),
            registration,
        ));
        let beat = beat.expect("heartbeat");
        Outcome::Beat {
            reaped: beat.reaped,
            cancelled: beat.cancelled,
            held: beat.held.into_iter().map(|h| (h.id, h.lease)).collect(),
        }
    }

    pub(crate) fn register(&self, p: usize) -> Outcome {
        self.heartbeat(p, LIVE_HEARTBEAT, Registration::First)
    }

    pub(crate) fn beat(&self, p: usize) -> Outcome {
        self.heartbeat(p, LIVE_HEARTBEAT, Registration::Renewal)
    }

    /// Process `p`'s heartbeat is written to expire at once, and has expired on return.
    pub(crate) fn die(&mut self, p: usize) {
        self.heartbeat(p, DYING_HEARTBEAT, Registration::First);
        let until = self.now_ms() + 3;
        while self.now_ms() <= until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(crate) fn reap(&self) -> Outcome {
        let mut released = self
            .block(self.queue.reap_expired_processes())
            .expect("reap");
        released.sort();
        Outcome::Released(released)
    }

    pub(crate) fn shutdown(&self, p: usize) -> Outcome {
        let name = process_name(p);
        let n = self
            .block(self.queue.release_process(&name))
            .expect("release");
        Outcome::Released(vec![(name, n)])
    }

    pub(crate) fn promote(&self) -> Outcome {
        Outcome::Promoted(self.block(self.queue.promote_due()).expect("promote").0)
    }

    /// Waits (bounded) until every scheduled job and retry the lists show is due, then promotes.
    pub(crate) fn wait_due_and_promote(&mut self) -> Outcome {
        let mut waiting = self.list(JobStatus::Scheduled, None);
        waiting.extend(self.list(JobStatus::Retrying, None));
        let last_due = waiting.iter().filter_map(|j| j.run_at).max().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.now_ms() <= last_due && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.promote()
    }

    /// Every job a list shows, page after page.
    pub(crate) fn list(&self, status: JobStatus, queue: Option<&str>) -> Vec<JobSummary> {
        let mut all = Vec::new();
        let mut cursor: Option<ListCursor> = None;
        for _ in 0..100 {
            let req = ListRequest {
                status,
                queue: queue.map(str::to_string),
                kind: None,
                limit: 7,
                cursor: cursor.clone(),
            };
            let page = self.block(self.queue.list_jobs(&req)).expect("list");
            all.extend(page.jobs);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
        panic!("the {status} list never ended");
    }

    /// `GET /queues`'s counters: scheduled, retrying, dead and processes.
    pub(crate) fn counters(&self) -> HashMap<&'static str, u64> {
        let stats = self.block(self.queue.stats(&[])).expect("stats");
        HashMap::from([
            ("scheduled", stats.scheduled),
            ("retrying", stats.retrying),
            ("dead", stats.dead),
            ("processes", stats.processes),
        ])
    }
}

/// Retention that keeps at most `keep` finished and dead jobs (its age bounds outlast every case).
fn retention(keep: &Keep) -> Retention {
    Retention {
        job: Duration::from_secs(3600),
        job_max: keep.finished as u64,
        dead: Duration::from_secs(3600),
        dead_max: keep.dead as u64,
    }
}

/// A `noop` job as the API would store it; the fingerprint stands for the request variant.
fn new_job(
    id: &str,
    queue: usize,
    delay_ms: Option<u64>,
    idem: Option<(u8, bool)>,
    max_attempts: u32,
) -> NewJob {
    NewJob {
        id: id.to_string(),
        kind: "noop".to_string(),
        queue: QUEUES[queue].to_string(),
        args: json!({}),
        max_attempts,
        timeout: None,
        when: delay_ms.map_or(RunAt::Now, |ms| RunAt::After(Duration::from_millis(ms))),
        idempotency: idem.map(|(key, variant)| (format!("key-{key}"), format!("{variant}"))),
    }
}
