//! Operations on one job by its id, as the HTTP API calls them: enqueue, read, cancel, retry,
//! and deleting a dead job. Their replies are read as the outcome types defined here.

use std::time::Duration;

use redis::{FromRedisValue, ParsingError, Value};
use serde_json::Value as Json;

use super::enqueue_batch::EnqueueArgs;
use super::error::QueueError;
use super::job::JobRecord;
use super::reply::{parse, record, tagged, unexpected};
use super::{Queue, ms, scripts};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A job to store.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id ([`Queue::job_id_for`] its queue: the id names the queue's shard).
    pub id: String,
    /// The handler's name.
    pub kind: String,
    /// The queue it goes to.
    pub queue: String,
    /// The handler's arguments.
    pub args: Json,
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

/// `cancel.lua`: `{'missing', {}}`, `{'finished', job}` or `{'ok', job}`.
impl FromRedisValue for Cancelled {
    fn from_redis_value(v: Value) -> Result<Cancelled, ParsingError> {
        let (tag, [job]) = tagged(v)?;
        match tag.as_str() {
            "missing" => Ok(Cancelled::Missing),
            "finished" => Ok(Cancelled::Finished(record(job)?)),
            "ok" => Ok(Cancelled::Cancelled(record(job)?)),
            _ => Err(unexpected(&tag)),
        }
    }
}

/// `retry.lua`: `{'missing', {}}`, `{'conflict', job}` or `{'ok', job}`.
impl FromRedisValue for Retried {
    fn from_redis_value(v: Value) -> Result<Retried, ParsingError> {
        let (tag, [job]) = tagged(v)?;
        match tag.as_str() {
            "missing" => Ok(Retried::Missing),
            "conflict" => Ok(Retried::Conflict(record(job)?)),
            "ok" => Ok(Retried::Queued(record(job)?)),
            _ => Err(unexpected(&tag)),
        }
    }
}

impl Queue {
    /// Stores a job; it is in Redis when this returns `Created`. Jobs enqueued at about the
    /// same time go to Redis together (see `enqueue_batch.rs`).
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let shard = self.keys.for_queue(&job.queue);
        debug_assert_eq!(
            self.keys.for_job(&job.id),
            shard,
            "a job id names its queue's shard"
        );
        self.announce(&[&job.queue]).await?;
        self.enqueue_batched(shard, EnqueueArgs::of(job)?).await
    }

    /// Reads a job.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let mut conn = self.redis.connection()?;
        let mut fields: Vec<String> = redis::cmd("HGETALL")
            .arg(self.keys.job(id))
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        // The key names the job; the hash holds no id (records from before may: either reads).
        fields.extend(["id".to_string(), id.to_string()]);
        JobRecord::from_fields(fields).map(Some)
    }

    /// Cancels a job (see [`Cancelled`]).
    pub async fn cancel(&self, id: &str) -> Result<Cancelled, QueueError> {
        let mut conn = self.redis.connection()?;
        let shard = self.keys.for_job(id);
        let reply: Value = scripts::CANCEL
            .key(shard.job(id))
            .key(shard.scheduled())
            .key(shard.retry())
            .arg(shard.base())
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .invoke_async(&mut conn)
            .await?;
        parse("cancel", reply)
    }

    /// Queues a dead or cancelled job again (see [`Retried`]).
    pub async fn retry(&self, id: &str) -> Result<Retried, QueueError> {
        let mut conn = self.redis.connection()?;
        let shard = self.keys.for_job(id);
        let reply: Value = scripts::RETRY
            .key(shard.job(id))
            .key(shard.dead())
            .arg(shard.base())
            .invoke_async(&mut conn)
            .await?;
        parse("retry", reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::{arr, job, s};
    use super::*;

    fn unexpected_reply<T: std::fmt::Debug>(r: Result<T, QueueError>, name: &str) {
        match r {
            Err(QueueError::UnexpectedReply { script, .. }) => assert_eq!(script, name),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cancel_replies_read_as_missing_finished_or_cancelled() {
        let missing: Cancelled = parse("cancel", arr(vec![s("missing"), arr(vec![])])).unwrap();
        assert!(matches!(missing, Cancelled::Missing));
        let finished: Cancelled = parse("cancel", arr(vec![s("finished"), job("j1")])).unwrap();
        assert!(matches!(finished, Cancelled::Finished(j) if j.id == "j1"));
        let ok: Cancelled = parse("cancel", arr(vec![s("ok"), job("j1")])).unwrap();
        assert!(matches!(ok, Cancelled::Cancelled(j) if j.id == "j1"));
        unexpected_reply(
            parse::<Cancelled>("cancel", arr(vec![s("gone"), job("j1")])),
            "cancel",
        );
    }

    #[test]
    fn retry_replies_read_as_missing_conflict_or_queued() {
        let missing: Retried = parse("retry", arr(vec![s("missing"), arr(vec![])])).unwrap();
        assert!(matches!(missing, Retried::Missing));
        let conflict: Retried = parse("retry", arr(vec![s("conflict"), job("j1")])).unwrap();
        assert!(matches!(conflict, Retried::Conflict(j) if j.id == "j1"));
        let ok: Retried = parse("retry", arr(vec![s("ok"), job("j1")])).unwrap();
        assert!(matches!(ok, Retried::Queued(j) if j.id == "j1"));
        unexpected_reply(
            parse::<Retried>("retry", arr(vec![s("nope"), job("j1")])),
            "retry",
        );
        // An unreadable record is a reply the script never sends either.
        unexpected_reply(
            parse::<Retried>("retry", arr(vec![s("ok"), arr(vec![s("id"), s("j1")])])),
            "retry",
        );
    }
}
