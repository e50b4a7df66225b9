//! Queue storage: the only code that knows Redis keys.
//!
//! # Data model
//! Every key starts with `{prefix}:` (a hash tag: one Redis Cluster slot for all of them).
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `job:{id}` | hash | the record: `id kind queue args status attempts failures max_attempts timeout_ms err_seq err:{n} result progress checkpoint created_at run_at enqueued_at started_at finished_at lease owner cancel idem_key idem_fp` (times in ms since the epoch, JSON values as text; `err:{n}` is the n-th failed attempt's entry, the last [`ERRORS_KEPT`] kept) |
//! | `queue:{name}` | list | ids ready to run; new ones are pushed on the left, workers take from the right, an interrupted job goes back on the right (first); a cancelled job's id stays until a fetch skips it |
//! | `queues` | set | queue names with waiting jobs or a live process working them (for `GET /queues`; others are pruned) |
//! | `inflight:{process}` | list | ids a process holds; a job is always in exactly one queue or one in-flight list |
//! | `process:{process}` | string, TTL | the process's heartbeat; its expiry means the process is gone |
//! | `processes` | set | registered processes, which the reaper walks |
//! | `scheduled` | zset | delayed jobs by due time (ms) |
//! | `retry` | zset | failed jobs by the time of their next attempt |
//! | `dead` | zset | dead jobs by time of death, trimmed by age and count |
//! | `finished` | list | succeeded and cancelled job ids, newest first, at most `JOB_RETENTION_MAX`: a job pushed out is deleted |
//! | `idem:{key}` | string, TTL 24 h | the id of the job an `Idempotency-Key` created |
//!
//! Pub/sub channels `wake` (a queue got a ready job) and `cancel` (a running job was cancelled)
//! carry hints only: every process also polls, so a lost message delays work but never loses it.
//!
//! Every change of state is one Lua script (see `scripts/`), and every write a worker makes for a
//! job it fetched checks the job's `lease` in the same script, so a process that lost its lease
//! (it stalled past its heartbeat and was reaped) cannot overwrite what the next owner does.
//! Scripts read the clock from Redis (`TIME`), so dynos with skewed clocks agree on due times.

mod connection;
mod error;
mod events;
mod job;
mod keys;
mod limits;
mod memory;
mod scripts;
pub mod spec;
mod summary;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use connection::RedisHandle;
pub use error::QueueError;
pub use events::QueueEvent;
pub use job::{AttemptError, JobRecord, JobStatus};
pub use keys::Keys;
pub use limits::{
    CHECKPOINT_MAX_BYTES, ERROR_MAX_BYTES, ERRORS_KEPT, PROGRESS_MAX_BYTES, RESULT_MAX_BYTES,
    SUMMARY_ERROR_MAX_BYTES, TooLarge, json_within, truncate,
};
pub use memory::RedisMemory;
pub use summary::JobSummary;

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Jobs and sets promoted per call, per set, so one call stays short.
const PROMOTE_BATCH: usize = 500;

/// The most queues `GET /queues` and the metrics line list (the rest are counted as omitted).
pub const QUEUES_LISTED: usize = 50;
/// The most known queue names one stats call looks at (a sample when there are more).
const QUEUES_SCANNED: usize = 1000;
/// Queue names one prune call looks at.
const PRUNE_SAMPLE: usize = 1000;

/// Retention and limits the scripts apply.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long a succeeded or cancelled job stays readable.
    pub job: Duration,
    /// How many succeeded or cancelled jobs are kept at most.
    pub job_max: u64,
    /// How long a dead job is kept.
    pub dead: Duration,
    /// How many dead jobs are kept at most.
    pub dead_max: u64,
}

/// The job queue in Redis.
#[derive(Clone)]
pub struct Queue {
    redis: RedisHandle,
    keys: Keys,
    retention: Arc<Retention>,
}

/// A job to store.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id (UUIDv7).
    pub id: String,
    /// The handler's name.
    pub kind: String,
    /// The queue it goes to.
    pub queue: String,
    /// The handler's arguments.
    pub args: Value,
    /// Failed attempts allowed.
    pub max_attempts: u32,
    /// Its own time limit, if any.
    pub timeout: Option<Duration>,
    /// When to run it.
    pub when: RunAt,
    /// The `Idempotency-Key` and the fingerprint of the request that came with it.
    pub idempotency: Option<(String, String)>,
}

/// When a new job becomes ready.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunAt {
    /// Now.
    Now,
    /// After this long (measured on Redis's clock).
    After(Duration),
    /// At this time (ms since the epoch); a past time means now.
    At(i64),
}

/// What `enqueue` did.
#[derive(Debug)]
pub enum Enqueued {
    /// Stored a new job.
    Created(JobRecord),
    /// The idempotency key was seen before, with the same request: here is the job it created.
    Existing(JobRecord),
    /// The idempotency key was seen before with a different request.
    KeyReused,
}

/// What `cancel` did.
#[derive(Debug)]
pub enum Cancelled {
    /// No such job.
    Missing,
    /// Too late: the job succeeded or is dead.
    Finished(JobRecord),
    /// Cancelled (a running job's owner is told to stop).
    Cancelled(JobRecord),
}

/// What `retry` did.
#[derive(Debug)]
pub enum Retried {
    /// No such job.
    Missing,
    /// Only dead or cancelled jobs (that no worker still holds) can be retried.
    Conflict(JobRecord),
    /// Queued again.
    Queued(JobRecord),
}

/// What `fetch` found.
#[derive(Debug)]
pub enum Fetched {
    /// This process has no live heartbeat; it must register before it may fetch.
    Unregistered,
    /// The jobs now leased to this process (possibly none).
    Jobs(Vec<Lease>),
}

/// What a heartbeat learned.
#[derive(Debug)]
pub struct Beat {
    /// A reaper released this process: every lease it held is void.
    pub reaped: bool,
    /// Ids of this process's running jobs that were cancelled through the API.
    pub cancelled: Vec<String>,
    /// `(id, lease)` of every job this process holds in its in-flight list.
    pub held: Vec<(String, String)>,
}

/// A snapshot of every queue, for `GET /queues`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// Per queue.
    pub queues: Vec<QueueStats>,
    /// Jobs waiting for their `run_at`.
    pub scheduled: u64,
    /// Failed jobs waiting for their next attempt.
    pub retrying: u64,
    /// Dead jobs kept for inspection.
    pub dead: u64,
    /// Registered worker processes.
    pub processes: u64,
    /// Queues not listed in `queues` (past [`QUEUES_LISTED`]: the shallowest are left out).
    pub queues_omitted: u64,
}

/// One queue's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueStats {
    /// Its name.
    pub name: String,
    /// Jobs waiting in it.
    pub depth: u64,
    /// Seconds the oldest waiting job has waited.
    pub latency: f64,
    /// Its jobs being worked now.
    pub running: u64,
}

/// How a failed attempt goes on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextAttempt {
    /// Retry after this long (if attempts are left).
    RetryAfter(Duration),
    /// Do not retry: the job is dead now.
    Never,
}

/// The outcome of writing a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// A retry is scheduled.
    Retrying,
    /// The job is dead.
    Dead,
    /// It had been cancelled; it is finished as cancelled.
    Cancelled,
    /// The lease was no longer ours; nothing was written.
    LeaseLost,
}

/// The outcome of giving a job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueOutcome {
    /// Back at the front of its queue.
    Queued,
    /// It had been cancelled; it is finished as cancelled.
    Cancelled,
    /// The lease was no longer ours; nothing was written.
    LeaseLost,
}

/// Which piece of a running job's state to save.
#[derive(Debug, Clone, Copy)]
pub enum StateField {
    /// Shown in `GET /jobs/{id}`.
    Progress,
    /// Read back by the next attempt.
    Checkpoint,
}

impl StateField {
    /// The field's name, as errors and the record spell it.
    pub fn name(self) -> &'static str {
        match self {
            StateField::Progress => "progress",
            StateField::Checkpoint => "checkpoint",
        }
    }

    /// The most bytes of JSON the field may hold.
    pub fn max_bytes(self) -> usize {
        match self {
            StateField::Progress => PROGRESS_MAX_BYTES,
            StateField::Checkpoint => CHECKPOINT_MAX_BYTES,
        }
    }
}

fn script_tag(tag: &str, field: &str) -> QueueError {
    QueueError::Corrupt(format!("unexpected {field} reply {tag:?}"))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Queue {
    /// A queue in `redis` under `prefix`.
    pub fn new(redis: RedisHandle, prefix: &str, retention: Retention) -> Queue {
        Queue {
            redis,
            keys: Keys::new(prefix),
            retention: Arc::new(retention),
        }
    }

    /// The Redis handle (for health checks and the connection task).
    pub fn redis(&self) -> &RedisHandle {
        &self.redis
    }

    /// Stores a job; it is in Redis when this returns `Created`.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let mut conn = self.redis.connection()?;
        let (delay, run_at) = match job.when {
            RunAt::Now => (String::new(), String::new()),
            RunAt::After(d) => (ms(d).to_string(), String::new()),
            RunAt::At(at) => (String::new(), at.to_string()),
        };
        let (idem_key, fingerprint) = job.idempotency.unwrap_or_default();
        let args = serde_json::to_string(&job.args)
            .map_err(|e| QueueError::Corrupt(format!("args: {e}")))?;
        let (tag, same, fields): (String, i64, Vec<String>) = scripts::ENQUEUE
            .key(self.keys.scheduled())
            .key(self.keys.queues())
            .arg(self.keys.base())
            .arg(&job.id)
            .arg(&job.kind)
            .arg(&job.queue)
            .arg(args)
            .arg(job.max_attempts)
            .arg(job.timeout.map(|t| ms(t).to_string()).unwrap_or_default())
            .arg(delay)
            .arg(run_at)
            .arg(idem_key)
            .arg(ms(IDEMPOTENCY_TTL))
            .arg(fingerprint)
            .invoke_async(&mut conn)
            .await?;
        match (tag.as_str(), same) {
            ("created", _) => Ok(Enqueued::Created(JobRecord::from_fields(fields)?)),
            ("existing", 1) => Ok(Enqueued::Existing(JobRecord::from_fields(fields)?)),
            ("existing", _) => Ok(Enqueued::KeyReused),
            _ => Err(script_tag(&tag, "enqueue")),
        }
    }

    /// Reads a job.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let mut conn = self.redis.connection()?;
        let fields: Vec<String> = redis::cmd("HGETALL")
            .arg(self.keys.job(id))
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        JobRecord::from_fields(fields).map(Some)
    }

    /// Summaries of the most recent dead jobs, newest first.
    pub async fn dead_summaries(&self, limit: usize) -> Result<Vec<JobSummary>, QueueError> {
        let mut conn = self.redis.connection()?;
        let replies: Vec<Vec<Option<String>>> = scripts::SUMMARIES
            .key(self.keys.dead())
            .arg(self.keys.base())
            .arg(limit.max(1))
            .invoke_async(&mut conn)
            .await?;
        replies.into_iter().map(JobSummary::from_reply).collect()
    }

    /// Cancels a job (see [`Cancelled`]).
    pub async fn cancel(&self, id: &str) -> Result<Cancelled, QueueError> {
        let mut conn = self.redis.connection()?;
        let (tag, fields): (String, Vec<String>) = scripts::CANCEL
            .key(self.keys.job(id))
            .key(self.keys.scheduled())
            .key(self.keys.retry())
            .arg(self.keys.base())
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .invoke_async(&mut conn)
            .await?;
        match tag.as_str() {
            "missing" => Ok(Cancelled::Missing),
            "finished" => Ok(Cancelled::Finished(JobRecord::from_fields(fields)?)),
            "ok" => Ok(Cancelled::Cancelled(JobRecord::from_fields(fields)?)),
            _ => Err(script_tag(&tag, "cancel")),
        }
    }

    /// Queues a dead or cancelled job again (see [`Retried`]).
    pub async fn retry(&self, id: &str) -> Result<Retried, QueueError> {
        let mut conn = self.redis.connection()?;
        let (tag, fields): (String, Vec<String>) = scripts::RETRY
            .key(self.keys.job(id))
            .key(self.keys.dead())
            .arg(self.keys.base())
            .invoke_async(&mut conn)
            .await?;
        match tag.as_str() {
            "missing" => Ok(Retried::Missing),
            "conflict" => Ok(Retried::Conflict(JobRecord::from_fields(fields)?)),
            "ok" => Ok(Retried::Queued(JobRecord::from_fields(fields)?)),
            _ => Err(script_tag(&tag, "retry")),
        }
    }

    /// A snapshot of the queues (at most [`QUEUES_LISTED`]); `always` are listed even when empty.
    pub async fn stats(&self, always: &[String]) -> Result<Stats, QueueError> {
        let mut conn = self.redis.connection()?;
        let (scheduled, retrying, dead, processes, flat, queues_omitted): (
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
            u64,
        ) = scripts::STATS
            .key(self.keys.queues())
            .key(self.keys.processes())
            .key(self.keys.scheduled())
            .key(self.keys.retry())
            .key(self.keys.dead())
            .arg(self.keys.base())
            .arg(QUEUES_LISTED)
            .arg(QUEUES_SCANNED)
            .arg(always)
            .invoke_async(&mut conn)
            .await?;
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| QueueError::Corrupt(format!("stats value {s:?}")))
        };
        let queues = flat
            .chunks_exact(4)
            .map(|c| {
                Ok(QueueStats {
                    name: c[0].clone(),
                    depth: number(&c[1])?,
                    latency: number(&c[2])? as f64 / 1000.0,
                    running: number(&c[3])?,
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        Ok(Stats {
            queues,
            scheduled,
            retrying,
            dead,
            processes,
            queues_omitted,
        })
    }

    /// Drops queue names that have no waiting job and no live process working them from the
    /// known-queues set (a sample per call); returns how many.
    pub async fn prune_queue_names(&self) -> Result<u64, QueueError> {
        let mut conn = self.redis.connection()?;
        Ok(scripts::PRUNE_QUEUES
            .key(self.keys.queues())
            .key(self.keys.processes())
            .arg(self.keys.base())
            .arg(PRUNE_SAMPLE)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Redis's memory use, limit and eviction policy (`INFO memory`).
    pub async fn memory(&self) -> Result<RedisMemory, QueueError> {
        let mut conn = self.redis.connection()?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        Ok(RedisMemory::from_info(&info))
    }

    /// Whether Redis takes writes now: one small write that expires by itself. Out of memory
    /// under `noeviction` it fails with [`QueueError::Full`], which a PING would not show.
    pub async fn check_writable(&self) -> Result<(), QueueError> {
        let mut conn = self.redis.connection()?;
        let mut set = redis::cmd("SET");
        set.arg(self.keys.health()).arg(1).arg("PX").arg(10_000);
        let check = set.query_async::<()>(&mut conn);
        tokio::time::timeout(Duration::from_secs(1), check)
            .await
            .map_err(|_| QueueError::Unavailable("write check timed out".into()))??;
        Ok(())
    }

    /// Leases up to `count` ready jobs to `process`, trying `queues` in order.
    pub async fn fetch(
        &self,
        process: &str,
        queues: &[String],
        count: usize,
    ) -> Result<Fetched, QueueError> {
        let mut conn = self.redis.connection()?;
        let inflight = self.keys.inflight(process);
        let (tag, jobs): (String, Vec<Vec<String>>) = scripts::FETCH
            .key(&inflight)
            .key(self.keys.heartbeat(process))
            .arg(self.keys.base())
            .arg(process)
            .arg(count)
            .arg(queues)
            .invoke_async(&mut conn)
            .await?;
        match tag.as_str() {
            "unregistered" => Ok(Fetched::Unregistered),
            "ok" => {
                let mut leases = Vec::with_capacity(jobs.len());
                for fields in jobs {
                    // A record that cannot be read stays in flight (the heartbeat puts it
                    // back) rather than failing the whole batch.
                    let job = match JobRecord::from_fields(fields) {
                        Ok(job) => job,
                        Err(e) => {
                            tracing::error!(event = "job.unreadable", error = %e);
                            continue;
                        }
                    };
                    let Some(token) = job.lease.clone() else {
                        tracing::error!(event = "job.unreadable", job_id = %job.id, error = "no lease");
                        continue;
                    };
                    leases.push(Lease {
                        job,
                        token,
                        inflight: inflight.clone(),
                        queue: self.clone(),
                    });
                }
                Ok(Fetched::Jobs(leases))
            }
            _ => Err(script_tag(&tag, "fetch")),
        }
    }

    /// Registers `process` (or renews it) for `ttl`.
    pub async fn heartbeat(
        &self,
        process: &str,
        ttl: Duration,
        info: &Value,
        registered_before: bool,
    ) -> Result<Beat, QueueError> {
        let mut conn = self.redis.connection()?;
        let (reaped, cancelled, held): (i64, Vec<String>, Vec<String>) = scripts::HEARTBEAT
            .key(self.keys.heartbeat(process))
            .key(self.keys.processes())
            .key(self.keys.inflight(process))
            .arg(self.keys.base())
            .arg(ms(ttl))
            .arg(info.to_string())
            .arg(if registered_before { "1" } else { "0" })
            .arg(process)
            .invoke_async(&mut conn)
            .await?;
        let held = held
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok(Beat {
            reaped: reaped == 1,
            cancelled,
            held,
        })
    }

    /// Gives back a job `process` holds under `lease` without a runner for it (see the worker's
    /// heartbeat), as a requeue: not counted as a failure.
    pub async fn requeue_held(
        &self,
        process: &str,
        id: &str,
        lease: &str,
    ) -> Result<RequeueOutcome, QueueError> {
        let inflight = self.keys.inflight(process);
        self.requeue_lease(id, lease, &inflight).await
    }

    async fn requeue_lease(
        &self,
        id: &str,
        lease: &str,
        inflight: &str,
    ) -> Result<RequeueOutcome, QueueError> {
        let mut conn = self.redis.connection()?;
        let tag: String = scripts::REQUEUE
            .key(self.keys.job(id))
            .key(inflight)
            .arg(self.keys.base())
            .arg(lease)
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .invoke_async(&mut conn)
            .await?;
        match tag.as_str() {
            "queued" => Ok(RequeueOutcome::Queued),
            "cancelled" => Ok(RequeueOutcome::Cancelled),
            "lost" => Ok(RequeueOutcome::LeaseLost),
            _ => Err(script_tag(&tag, "requeue")),
        }
    }

    /// Puts back the jobs of every process whose heartbeat expired; returns `(process, jobs)`.
    pub async fn reap_expired_processes(&self) -> Result<Vec<(String, u64)>, QueueError> {
        self.release("").await
    }

    /// Puts back every job `process` still holds and deregisters it (its own shutdown).
    pub async fn release_process(&self, process: &str) -> Result<u64, QueueError> {
        Ok(self
            .release(process)
            .await?
            .into_iter()
            .map(|(_, n)| n)
            .sum())
    }

    async fn release(&self, process: &str) -> Result<Vec<(String, u64)>, QueueError> {
        let mut conn = self.redis.connection()?;
        Ok(scripts::RELEASE
            .key(self.keys.processes())
            .arg(self.keys.base())
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .arg(process)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Moves due scheduled jobs and retries to their queues. Returns how many moved, and how
    /// long until the next one is due (`None` when none waits).
    pub async fn promote_due(&self) -> Result<(u64, Option<Duration>), QueueError> {
        let mut conn = self.redis.connection()?;
        let (moved, next): (u64, i64) = scripts::PROMOTE
            .key(self.keys.scheduled())
            .key(self.keys.retry())
            .key(self.keys.dead())
            .arg(self.keys.base())
            .arg(PROMOTE_BATCH)
            .arg(ms(self.retention.dead))
            .invoke_async(&mut conn)
            .await?;
        let next = u64::try_from(next).ok().map(Duration::from_millis);
        Ok((moved, next))
    }

    /// Listens to the wake and cancel channels on a connection of its own (see [`QueueEvent`]).
    pub fn subscribe(
        &self,
        shutdown: crate::shutdown::Shutdown,
    ) -> tokio::sync::mpsc::Receiver<QueueEvent> {
        events::subscribe(self.redis.clone(), self.keys.clone(), shutdown)
    }
}

/// A fetched job, held under a lease until its outcome is written.
///
/// Every write checks the lease in the same script; a write that finds it gone changes nothing
/// and reports `LeaseLost`.
#[derive(Clone)]
pub struct Lease {
    job: JobRecord,
    token: String,
    inflight: String,
    queue: Queue,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("job", &self.job.id)
            .field("token", &self.token)
            .finish()
    }
}

impl Lease {
    /// The job as it was when fetched.
    pub fn job(&self) -> &JobRecord {
        &self.job
    }

    /// Records success with `result` (JSON text, within [`RESULT_MAX_BYTES`]: see
    /// [`json_within`]). Returns false when the lease was lost (nothing written).
    pub async fn ack(&self, result: &str) -> Result<bool, QueueError> {
        let q = &self.queue;
        let mut conn = q.redis.connection()?;
        let applied: i64 = scripts::ACK
            .key(q.keys.job(&self.job.id))
            .key(&self.inflight)
            .arg(q.keys.base())
            .arg(&self.token)
            .arg(result)
            .arg(ms(q.retention.job))
            .arg(q.retention.job_max)
            .invoke_async(&mut conn)
            .await?;
        Ok(applied == 1)
    }

    /// Records a failed attempt (its message cut to [`ERROR_MAX_BYTES`]) and schedules a retry
    /// or kills the job.
    pub async fn fail(&self, message: &str, next: NextAttempt) -> Result<FailOutcome, QueueError> {
        let q = &self.queue;
        let mut conn = q.redis.connection()?;
        let (mode, delay) = match next {
            NextAttempt::RetryAfter(d) => ("retry", ms(d)),
            NextAttempt::Never => ("dead", 0),
        };
        let tag: String = scripts::FAIL
            .key(q.keys.job(&self.job.id))
            .key(&self.inflight)
            .key(q.keys.retry())
            .key(q.keys.dead())
            .arg(q.keys.base())
            .arg(&self.token)
            .arg(truncate(message, ERROR_MAX_BYTES).as_ref())
            .arg(mode)
            .arg(delay)
            .arg(ms(q.retention.job))
            .arg(q.retention.job_max)
            .arg(ms(q.retention.dead))
            .arg(q.retention.dead_max)
            .arg(ERRORS_KEPT)
            .invoke_async(&mut conn)
            .await?;
        match tag.as_str() {
            "retrying" => Ok(FailOutcome::Retrying),
            "dead" => Ok(FailOutcome::Dead),
            "cancelled" => Ok(FailOutcome::Cancelled),
            "lost" => Ok(FailOutcome::LeaseLost),
            _ => Err(script_tag(&tag, "fail")),
        }
    }

    /// Gives the job back to the front of its queue, not counted as a failure.
    pub async fn requeue(&self) -> Result<RequeueOutcome, QueueError> {
        self.queue
            .requeue_lease(&self.job.id, &self.token, &self.inflight)
            .await
    }

    /// The lease token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Saves progress or a checkpoint (JSON text, within its limit: see [`StateField::max_bytes`]).
    /// Returns false when the lease was lost.
    pub async fn save(&self, field: StateField, value: &str) -> Result<bool, QueueError> {
        let q = &self.queue;
        let mut conn = q.redis.connection()?;
        let field = field.name();
        let applied: i64 = scripts::SAVE_STATE
            .key(q.keys.job(&self.job.id))
            .arg(&self.token)
            .arg(field)
            .arg(value)
            .invoke_async(&mut conn)
            .await?;
        Ok(applied == 1)
    }
}
