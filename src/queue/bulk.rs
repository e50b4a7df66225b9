//! Bulk enqueue: a batch of new jobs stored all or none by one script call (`enqueue_bulk.lua`).

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::JobStatus;
use super::jobs::{IDEMPOTENCY_TTL, NewJob, RunAt};
use super::keys::Shard;
use super::reply::{parse, tagged, unexpected};
use super::scripts::{self, ScriptCall};
use super::{Queue, ms};

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

/// One `enqueue_bulk.lua` call's answer: the index (0-based, within the call) of a job whose
/// key was reused, or one mark per job and the (id, status) of each job an earlier one answered.
#[derive(Debug, PartialEq, Eq)]
enum ShardReply {
    KeyReused(usize),
    Stored {
        marks: Vec<u8>,
        existing: Vec<(String, JobStatus)>,
    },
}

/// `{'reused', index, {}}` or `{'ok', marks, {id, status, ...}}`.
impl FromRedisValue for ShardReply {
    fn from_redis_value(v: Value) -> Result<ShardReply, ParsingError> {
        let (tag, [first, rest]) = tagged(v)?;
        match tag.as_str() {
            "reused" => Ok(ShardReply::KeyReused(usize::from_redis_value(first)?)),
            "ok" => {
                let marks = Vec::<u8>::from_redis_value(first)?;
                let flat: Vec<String> = FromRedisValue::from_redis_value(rest)?;
                let mut existing = Vec::with_capacity(flat.len() / 2);
                let mut flat = flat.into_iter();
                while let (Some(id), Some(status)) = (flat.next(), flat.next()) {
                    let status = JobStatus::parse(&status)
                        .ok_or_else(|| ParsingError::from(format!("status {status:?}")))?;
                    existing.push((id, status));
                }
                Ok(ShardReply::Stored { marks, existing })
            }
            _ => Err(unexpected(&tag)),
        }
    }
}

impl ShardReply {
    /// The items of a stored call's jobs (ids and places in the batch), in their order.
    fn items(
        marks: &[u8],
        existing: Vec<(String, JobStatus)>,
        jobs: Vec<(usize, NewJob)>,
    ) -> Result<Vec<(usize, BulkItem)>, ParsingError> {
        if marks.len() != jobs.len() {
            return Err(format!("{} marks for {} jobs", marks.len(), jobs.len()).into());
        }
        let mut existing = existing.into_iter();
        let mut items = Vec::with_capacity(jobs.len());
        for (&mark, (index, job)) in marks.iter().zip(jobs) {
            let item = match mark {
                b'q' | b's' => BulkItem {
                    id: job.id,
                    status: if mark == b'q' {
                        JobStatus::Queued
                    } else {
                        JobStatus::Scheduled
                    },
                    created: true,
                },
                b'e' => {
                    let (id, status) = existing
                        .next()
                        .ok_or_else(|| ParsingError::from("fewer existing jobs than marks"))?;
                    BulkItem {
                        id,
                        status,
                        created: false,
                    }
                }
                other => return Err(unexpected(&char::from(other).to_string())),
            };
            items.push((index, item));
        }
        Ok(items)
    }
}

/// The place in the batch of the `i`th job of a call (a reply out of range names the call's first).
fn place(group: &[(usize, NewJob)], i: usize) -> usize {
    group
        .get(i)
        .or(group.first())
        .map_or(0, |(place, _)| *place)
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
                if let ShardReply::KeyReused(i) = self.bulk_call(shard, group, true).await? {
                    return Ok(BulkEnqueued::KeyReused(place(group, i)));
                }
            }
        }
        let mut items: Vec<(usize, BulkItem)> = Vec::new();
        for (shard, group) in groups {
            match self.bulk_call(&shard, &group, false).await? {
                ShardReply::KeyReused(i) => return Ok(BulkEnqueued::KeyReused(place(&group, i))),
                ShardReply::Stored { marks, existing } => {
                    let stored = ShardReply::items(&marks, existing, group).map_err(|e| {
                        QueueError::UnexpectedReply {
                            script: "enqueue_bulk",
                            reply: e.to_string(),
                        }
                    })?;
                    items.extend(stored);
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
    ) -> Result<ShardReply, QueueError> {
        let mut conn = self.redis.connection()?;
        let mut call = ScriptCall::new(
            &scripts::ENQUEUE_BULK,
            &[&shard.scheduled(), &shard.queues()],
        );
        call.arg(shard.base())
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
        let reply: Value = call.invoke(&mut conn).await?;
        parse("enqueue_bulk", reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::s;
    use super::*;

    fn new_job(id: &str) -> NewJob {
        NewJob {
            id: id.to_string(),
            kind: "noop".to_string(),
            queue: "default".to_string(),
            args: serde_json::json!({}),
            max_attempts: 1,
            timeout: None,
            when: RunAt::Now,
            idempotency: None,
        }
    }

    #[test]
    fn marks_give_created_jobs_their_own_ids_and_existing_ones_the_stored_ids() {
        let reply = Value::Array(vec![
            s("ok"),
            s("qes"),
            Value::Array(vec![s("b-earlier"), s("succeeded")]),
        ]);
        let ShardReply::Stored { marks, existing } =
            parse::<ShardReply>("enqueue_bulk", reply).unwrap()
        else {
            panic!("not stored");
        };
        let jobs = vec![(4, new_job("a")), (7, new_job("b")), (9, new_job("c"))];
        let items = ShardReply::items(&marks, existing, jobs).unwrap();
        let seen: Vec<(usize, &str, JobStatus, bool)> = items
            .iter()
            .map(|(i, item)| (*i, item.id.as_str(), item.status, item.created))
            .collect();
        assert_eq!(
            seen,
            [
                (4, "a", JobStatus::Queued, true),
                (7, "b-earlier", JobStatus::Succeeded, false),
                (9, "c", JobStatus::Scheduled, true),
            ]
        );
        let reused = Value::Array(vec![s("reused"), Value::Int(3), Value::Array(vec![])]);
        assert_eq!(
            parse::<ShardReply>("enqueue_bulk", reused).unwrap(),
            ShardReply::KeyReused(3)
        );
    }

    #[test]
    fn a_reply_that_does_not_match_the_call_is_an_error() {
        let short = ShardReply::items(b"q", vec![], vec![(0, new_job("a")), (1, new_job("b"))]);
        assert!(short.is_err());
        let missing = ShardReply::items(b"e", vec![], vec![(0, new_job("a"))]);
        assert!(missing.is_err());
        let unknown = ShardReply::items(b"x", vec![], vec![(0, new_job("a"))]);
        assert!(unknown.is_err());
        let group = [(5, new_job("a"))];
        assert_eq!(place(&group, 0), 5);
        assert_eq!(place(&group, 3), 5);
    }
}
