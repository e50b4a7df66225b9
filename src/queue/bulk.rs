//! Bulk enqueue: a batch of new jobs stored all or none by one script call (`enqueue_bulk.lua`).

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::JobStatus;
use super::jobs::{IDEMPOTENCY_TTL, NewJob, RunAt};
use super::keys::Shard;
use super::reply::{parse, tagged, unexpected};
use super::{Queue, ms, scripts};

/// The most jobs one batch may hold: one script call stays short (a few milliseconds), so it
/// never stalls the other clients of a single-threaded Redis for long.
pub const BULK_MAX: usize = 1000;

/// What happened to one job of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    /// The job's id.
    pub id: String,
    /// Its status now.
    pub status: JobStatus,
    /// False when its idempotency key answered with an earlier job.
    pub created: bool,
}

/// What `enqueue_many` did.
#[derive(Debug, PartialEq, Eq)]
pub enum BulkEnqueued {
    /// Every job is stored (or answered by its idempotency key), in the batch's order.
    Stored(Vec<BulkItem>),
    /// The job at this index (0-based) reused an idempotency key with a different request:
    /// nothing was stored.
    KeyReused(usize),
}

/// `enqueue_bulk.lua`: `{'reused', index}` or `{'ok', {tag, id, status, ...}}`.
impl FromRedisValue for BulkEnqueued {
    fn from_redis_value(v: Value) -> Result<BulkEnqueued, ParsingError> {
        let (tag, [rest]) = tagged(v)?;
        match tag.as_str() {
            "reused" => Ok(BulkEnqueued::KeyReused(usize::from_redis_value(rest)?)),
            "ok" => {
                let flat: Vec<String> = FromRedisValue::from_redis_value(rest)?;
                let mut items = Vec::with_capacity(flat.len() / 3);
                for triple in flat.chunks_exact(3) {
                    let status = JobStatus::parse(&triple[2])
                        .ok_or_else(|| ParsingError::from(format!("status {:?}", triple[2])))?;
                    let created = match triple[0].as_str() {
                        "created" => true,
                        "existing" => false,
                        other => return Err(unexpected(other)),
                    };
                    items.push(BulkItem {
                        id: triple[1].clone(),
                        status,
                        created,
                    });
                }
                Ok(BulkEnqueued::Stored(items))
            }
            _ => Err(unexpected(&tag)),
        }
    }
}

impl Queue {
    /// Stores a batch of jobs (see [`BulkEnqueued`]). Jobs whose queues share a shard are
    /// stored by one call, all or none; a batch over several shards is first checked shard by
    /// shard (nothing written), then written shard by shard, so a reused key refuses the whole
    /// batch unless another request races it between the two passes.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<BulkEnqueued, QueueError> {
        let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        self.announce(&queues).await?;
        let groups = self.bulk_groups(jobs);
        if groups.len() > 1 {
            for (shard, group) in &groups {
                if let BulkEnqueued::KeyReused(i) = self.bulk_call(shard, group, true).await? {
                    return Ok(BulkEnqueued::KeyReused(group[i].0));
                }
            }
        }
        let mut items: Vec<(usize, BulkItem)> = Vec::new();
        for (shard, group) in &groups {
            match self.bulk_call(shard, group, false).await? {
                BulkEnqueued::KeyReused(i) => return Ok(BulkEnqueued::KeyReused(group[i].0)),
                BulkEnqueued::Stored(stored) => {
                    items.extend(group.iter().map(|(i, _)| *i).zip(stored));
                }
            }
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(BulkEnqueued::Stored(
            items.into_iter().map(|(_, item)| item).collect(),
        ))
    }

    /// The batch's jobs, with their places in it, grouped by shard in first-seen order.
    fn bulk_groups(&self, jobs: Vec<NewJob>) -> Vec<(Shard, Vec<(usize, NewJob)>)> {
        let mut groups: Vec<(Shard, Vec<(usize, NewJob)>)> = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let shard = self.keys.for_queue(&job.queue);
            match groups.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, group)) => group.push((i, job)),
                None => groups.push((shard, vec![(i, job)])),
            }
        }
        groups
    }

    /// One `enqueue_bulk.lua` call for the jobs of one shard (`check`: read and check only).
    async fn bulk_call(
        &self,
        shard: &Shard,
        jobs: &[(usize, NewJob)],
        check: bool,
    ) -> Result<BulkEnqueued, QueueError> {
        let mut conn = self.redis.connection()?;
        let mut call = scripts::ENQUEUE_BULK.prepare_invoke();
        call.key(shard.scheduled())
            .key(shard.queues())
            .arg(shard.base())
            .arg(ms(IDEMPOTENCY_TTL))
            .arg(jobs.len())
            .arg(if check { "check" } else { "write" });
        let mut requests = Vec::new();
        for (_, job) in jobs {
            let (delay, run_at) = match job.when {
                RunAt::Now => (String::new(), String::new()),
                RunAt::After(d) => (ms(d).to_string(), String::new()),
                RunAt::At(at) => (String::new(), at.to_string()),
            };
            let (idem_key, fingerprint) = match &job.idempotency {
                Some((key, fingerprint)) => (key.as_str(), Some(fingerprint)),
                None => ("", None),
            };
            call.arg(&job.id)
                .arg(&job.kind)
                .arg(&job.queue)
                .arg(serde_json::to_string(&job.args)?)
                .arg(job.max_attempts)
                .arg(job.timeout.map(|t| ms(t).to_string()).unwrap_or_default())
                .arg(delay)
                .arg(run_at)
                .arg(idem_key);
            requests.extend(fingerprint);
        }
        call.arg(requests);
        let reply: Value = call.invoke_async(&mut conn).await?;
        parse("enqueue_bulk", reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::s;
    use super::*;

    #[test]
    fn replies_read_in_order() {
        let reply = Value::Array(vec![
            s("ok"),
            Value::Array(
                ["created", "a", "queued", "existing", "b", "succeeded"]
                    .into_iter()
                    .map(s)
                    .collect(),
            ),
        ]);
        let BulkEnqueued::Stored(items) = parse::<BulkEnqueued>("enqueue_bulk", reply).unwrap()
        else {
            panic!("not stored");
        };
        assert_eq!(items.len(), 2);
        assert!(items[0].created && items[0].id == "a" && items[0].status == JobStatus::Queued);
        assert!(!items[1].created && items[1].status == JobStatus::Succeeded);
        let reused = Value::Array(vec![s("reused"), Value::Int(3)]);
        assert_eq!(
            parse::<BulkEnqueued>("enqueue_bulk", reused).unwrap(),
            BulkEnqueued::KeyReused(3)
        );
    }
}
