//! Steering many jobs or removing one for good: deleting a dead job and retrying dead jobs in
//! bulk, as the HTTP API and the dashboard call them.

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::JobStatus;
use super::keys::Shard;
use super::reply::{parse, unexpected};
use super::{Queue, scripts};

/// The most dead jobs one bulk retry queues again.
pub const RETRY_BATCH: usize = 1000;
/// The most dead entries one bulk retry looks at (the default `DEAD_MAX`).
const RETRY_SCAN: usize = 10_000;

/// What `delete_dead` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Gone for good.
    Deleted,
    /// No such job.
    Missing,
    /// Not dead: nothing was deleted.
    NotDead(JobStatus),
}

/// `delete.lua`: `'deleted'`, `'missing'` or the job's status.
impl FromRedisValue for Deleted {
    fn from_redis_value(v: Value) -> Result<Deleted, ParsingError> {
        let tag = String::from_redis_value(v)?;
        match tag.as_str() {
            "deleted" => Ok(Deleted::Deleted),
            "missing" => Ok(Deleted::Missing),
            other => JobStatus::parse(other)
                .map(Deleted::NotDead)
                .ok_or_else(|| unexpected(other)),
        }
    }
}

/// What one bulk retry did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BulkRetried {
    /// Jobs queued again by this call.
    pub retried: u64,
    /// Dead jobs that may still match (call again while above zero).
    pub remaining: u64,
}

impl Queue {
    /// Deletes a dead job (see [`Deleted`]).
    pub async fn delete_dead(&self, id: &str) -> Result<Deleted, QueueError> {
        let mut conn = self.redis.connection()?;
        let shard = self.keys.for_job(id);
        let reply: Value = scripts::DELETE
            .key(shard.job(id))
            .key(shard.dead())
            .arg(shard.base())
            .invoke_async(&mut conn)
            .await?;
        parse("delete", reply)
    }

    /// Queues up to [`RETRY_BATCH`] dead jobs again, oldest first, in one script; `queue` and
    /// `kind` narrow which.
    pub async fn retry_dead(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<BulkRetried, QueueError> {
        // With a queue, only its shard (and the legacy shard) can hold its jobs.
        let shards = match queue {
            Some(name) => vec![self.keys.legacy().clone(), self.keys.for_queue(name)],
            None => self.known_shards(&[]).await?,
        };
        let mut total = BulkRetried {
            retried: 0,
            remaining: 0,
        };
        for shard in shards {
            let most = RETRY_BATCH as u64 - total.retried;
            if most == 0 {
                total.remaining += self.dead_count(&shard).await?;
                continue;
            }
            let mut conn = self.redis.connection()?;
            let (retried, remaining): (u64, u64) = scripts::RETRY_DEAD
                .key(shard.dead())
                .arg(shard.base())
                .arg(most)
                .arg(RETRY_SCAN)
                .arg(queue.unwrap_or(""))
                .arg(kind.unwrap_or(""))
                .invoke_async(&mut conn)
                .await?;
            total.retried += retried;
            total.remaining += remaining;
        }
        Ok(total)
    }

    /// How many ids a shard's dead set holds (each may match: a bound on what is left).
    async fn dead_count(&self, shard: &Shard) -> Result<u64, QueueError> {
        let mut conn = self.redis.connection()?;
        Ok(redis::cmd("ZCARD")
            .arg(shard.dead())
            .query_async(&mut conn)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::s;
    use super::*;

    #[test]
    fn delete_replies_read_as_deleted_missing_or_a_status() {
        assert_eq!(
            parse::<Deleted>("delete", s("deleted")).unwrap(),
            Deleted::Deleted
        );
        assert_eq!(
            parse::<Deleted>("delete", s("missing")).unwrap(),
            Deleted::Missing
        );
        assert_eq!(
            parse::<Deleted>("delete", s("queued")).unwrap(),
            Deleted::NotDead(JobStatus::Queued)
        );
        assert!(parse::<Deleted>("delete", s("gone")).is_err());
    }
}
