//! A fetched job's lease and the writes its runner makes under it: ack, fail, requeue and
//! saving progress or a checkpoint. The worker's runners call these; the worker's heartbeat
//! gives back jobs no runner owns through [`Queue::requeue_held`](super::Queue::requeue_held),
//! which shares the requeue here.

use std::time::Duration;

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::JobRecord;
use super::limits::truncate;
use super::limits::{CHECKPOINT_MAX_BYTES, ERROR_MAX_BYTES, ERRORS_KEPT, PROGRESS_MAX_BYTES};
use super::reply::{parse, unexpected};
use super::{Queue, ms, scripts};

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

/// `fail.lua`: `'retrying'`, `'dead'`, `'cancelled'` or `'lost'`.
impl FromRedisValue for FailOutcome {
    fn from_redis_value(v: Value) -> Result<FailOutcome, ParsingError> {
        let tag = String::from_redis_value(v)?;
        match tag.as_str() {
            "retrying" => Ok(FailOutcome::Retrying),
            "dead" => Ok(FailOutcome::Dead),
            "cancelled" => Ok(FailOutcome::Cancelled),
            "lost" => Ok(FailOutcome::LeaseLost),
            _ => Err(unexpected(&tag)),
        }
    }
}

/// `requeue.lua`: `'queued'`, `'cancelled'` or `'lost'`.
impl FromRedisValue for RequeueOutcome {
    fn from_redis_value(v: Value) -> Result<RequeueOutcome, ParsingError> {
        let tag = String::from_redis_value(v)?;
        match tag.as_str() {
            "queued" => Ok(RequeueOutcome::Queued),
            "cancelled" => Ok(RequeueOutcome::Cancelled),
            "lost" => Ok(RequeueOutcome::LeaseLost),
            _ => Err(unexpected(&tag)),
        }
    }
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
    /// `job` leased under `token`, listed in the in-flight list `inflight`.
    pub(super) fn new(job: JobRecord, token: String, inflight: String, queue: Queue) -> Lease {
        Lease {
            job,
            token,
            inflight,
            queue,
        }
    }

    /// The job as it was when fetched.
    pub fn job(&self) -> &JobRecord {
        &self.job
    }

    /// The lease token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Records success with `result` (JSON text, within [`RESULT_MAX_BYTES`]: see
    /// [`json_within`]). Returns false when the lease was lost (nothing written).
    ///
    /// [`RESULT_MAX_BYTES`]: super::RESULT_MAX_BYTES
    /// [`json_within`]: super::json_within
    pub async fn ack(&self, result: &str) -> Result<bool, QueueError> {
        let q = &self.queue;
        if let Some(applied) = q
            .ack_batched(&self.job.id, &self.inflight, &self.token, result)
            .await
        {
            return Ok(applied);
        }
        // Boxed: taken only when the batch call failed, its reply did not fit, or the batcher's
        // queue was full; its future would add its size to every runner's.
        Box::pin(self.ack_alone(result)).await
    }

    /// [`ack`](Self::ack) in a call of its own.
    async fn ack_alone(&self, result: &str) -> Result<bool, QueueError> {
        let q = &self.queue;
        let mut conn = q.redis.connection()?;
        let shard = q.keys.for_job(&self.job.id);
        let applied: i64 = scripts::ACK
            .key(shard.job(&self.job.id))
            .key(&self.inflight)
            .arg(shard.base())
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
        let shard = q.keys.for_job(&self.job.id);
        let reply: Value = scripts::FAIL
            .key(shard.job(&self.job.id))
            .key(&self.inflight)
            .key(shard.retry())
            .key(shard.dead())
            .arg(shard.base())
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
        parse("fail", reply)
    }

    /// Gives the job back to the front of its queue, not counted as a failure.
    pub async fn requeue(&self) -> Result<RequeueOutcome, QueueError> {
        self.queue
            .requeue_lease(&self.job.id, &self.token, &self.inflight)
            .await
    }

    /// Puts the job back to wait `delay` without spending an attempt (see `defer.lua`);
    /// `started` says whether the handler ran (then the fetch still counts in `attempts`).
    pub async fn defer(
        &self,
        delay: Duration,
        started: bool,
    ) -> Result<super::DeferOutcome, QueueError> {
        self.queue
            .defer_lease(&self.job.id, &self.token, &self.inflight, delay, started)
            .await
    }

    /// Saves progress or a checkpoint (JSON text, within its limit: see [`StateField::max_bytes`]).
    /// Returns false when the lease was lost.
    pub async fn save(&self, field: StateField, value: &str) -> Result<bool, QueueError> {
        self.save_field(field.name(), value).await
    }

    /// Writes when the job really started (Redis's clock, ms), if the lease still holds it.
    pub(crate) async fn save_started(&self, at_ms: i64) -> Result<bool, QueueError> {
        self.save_field("t", &at_ms.to_string()).await
    }

    async fn save_field(&self, field: &str, value: &str) -> Result<bool, QueueError> {
        let q = &self.queue;
        let mut conn = q.redis.connection()?;
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

impl Queue {
    /// Gives back job `id` held under `lease` in the in-flight list `inflight`.
    pub(super) async fn requeue_lease(
        &self,
        id: &str,
        lease: &str,
        inflight: &str,
    ) -> Result<RequeueOutcome, QueueError> {
        let mut conn = self.redis.connection()?;
        let shard = self.keys.for_job(id);
        let reply: Value = scripts::REQUEUE
            .key(shard.job(id))
            .key(inflight)
            .arg(shard.base())
            .arg(lease)
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .invoke_async(&mut conn)
            .await?;
        parse("requeue", reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::s;
    use super::*;

    #[test]
    fn fail_replies_read_as_outcomes() {
        for (tag, outcome) in [
            ("retrying", FailOutcome::Retrying),
            ("dead", FailOutcome::Dead),
            ("cancelled", FailOutcome::Cancelled),
            ("lost", FailOutcome::LeaseLost),
        ] {
            assert_eq!(parse::<FailOutcome>("fail", s(tag)).unwrap(), outcome);
        }
        let e = parse::<FailOutcome>("fail", s("queued")).unwrap_err();
        assert!(
            matches!(e, QueueError::UnexpectedReply { script: "fail", .. }),
            "{e:?}"
        );
        assert!(parse::<FailOutcome>("fail", Value::Int(1)).is_err());
    }

    #[test]
    fn requeue_replies_read_as_outcomes() {
        for (tag, outcome) in [
            ("queued", RequeueOutcome::Queued),
            ("cancelled", RequeueOutcome::Cancelled),
            ("lost", RequeueOutcome::LeaseLost),
        ] {
            assert_eq!(parse::<RequeueOutcome>("requeue", s(tag)).unwrap(), outcome);
        }
        let e = parse::<RequeueOutcome>("requeue", s("dead")).unwrap_err();
        assert!(
            matches!(
                e,
                QueueError::UnexpectedReply {
                    script: "requeue",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
