//! Bulk enqueue: a batch of new jobs stored all or none by one script call (`enqueue_bulk.lua`).

use std::sync::Arc;

use redis::{FromRedisValue, ParsingError, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::QueueError;
use super::job::JobStatus;
use super::jobs::{IDEMPOTENCY_TTL, NewJob, RunAt};
use super::keys::Shard;
use super::reply::{parse, tagged, unexpected};
use super::scripts::{self, ScriptCall};
use super::{Queue, ms};

/// Arguments `enqueue_bulk.lua` takes per job (besides a fingerprint for a job with a key).
const ENQUEUE_BULK_ARGS_PER_JOB: usize = 9;

/// The most jobs one batch may hold: one script call stays short (a few milliseconds), so it
/// never stalls the other clients of a single-threaded Redis for long.
pub const BULK_MAX: usize = 1000;

/// The most jobs of batches being stored at once by one process: a batch waits for room before
/// its jobs are built, so the memory batches take stays bounded however many clients send them
/// (~1 MB while a 1,000-job batch is stored; one waiting holds its body). One Redis runs one
/// script at a time anyway (a Redis Cluster could run batches for different primaries at once);
/// room for two full batches stored 25-35% more jobs a second for about 1 MiB more peak RSS.
pub const BULK_ROOM: usize = BULK_MAX;

/// Room for one batch's jobs among those being stored at once (see [`BULK_ROOM`]); given back
/// when dropped.
#[derive(Debug)]
pub struct BulkRoom {
    _jobs: OwnedSemaphorePermit,
}

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
    /// Appends the items of a stored call's jobs (at `places` in the batch) to `items`; the
    /// ids of jobs it created are taken from `jobs`.
    fn items(
        marks: &[u8],
        existing: Vec<(String, JobStatus)>,
        places: &[usize],
        jobs: &mut [NewJob],
        items: &mut Vec<(usize, BulkItem)>,
    ) -> Result<(), ParsingError> {
        if marks.len() != places.len() {
            return Err(format!("{} marks for {} jobs", marks.len(), places.len()).into());
        }
        let mut existing = existing.into_iter();
        for (&mark, &place) in marks.iter().zip(places) {
            let item = match mark {
                b'q' | b's' => BulkItem {
                    id: jobs
                        .get_mut(place)
                        .map(|job| std::mem::take(&mut job.id))
                        .ok_or_else(|| ParsingError::from("a place past the batch"))?,
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
            items.push((place, item));
        }
        Ok(())
    }
}

/// Waits for room for `jobs` jobs (at least one, at most all of it) in `room`.
async fn take_room(room: &Arc<Semaphore>, jobs: usize) -> BulkRoom {
    let wanted = jobs.clamp(1, BULK_ROOM) as u32;
    let permit = Arc::clone(room)
        .acquire_many_owned(wanted)
        .await
        .expect("the bulk room's semaphore is never closed");
    BulkRoom { _jobs: permit }
}

/// The place in the batch of the `i`th job of a call, as a reply names it.
fn place(places: &[usize], i: usize) -> Result<usize, QueueError> {
    places
        .get(i)
        .copied()
        .ok_or_else(|| QueueError::UnexpectedReply {
            script: "enqueue_bulk",
            reply: format!("job {i} reused a key, of {} in the call", places.len()),
        })
}

impl Queue {
    /// Waits until `jobs` more jobs may be stored by batches (at most [`BULK_ROOM`]: a larger
    /// batch waits for all of it).
    pub async fn bulk_room(&self, jobs: usize) -> BulkRoom {
        take_room(&self.bulk_room, jobs).await
    }

    /// The room for every batch of this process.
    pub(super) fn new_bulk_room() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(BULK_ROOM))
    }

    /// Stores a batch of jobs (see [`BulkEnqueued`]) in the room taken for it. Jobs whose queues
    /// share a shard are stored by one call, all or none; a batch over several shards is first
    /// checked shard by shard (nothing written), then written shard by shard, so a reused key
    /// refuses the whole batch unless another request races it between the two passes.
    pub async fn enqueue_many(
        &self,
        _room: BulkRoom,
        mut jobs: Vec<NewJob>,
    ) -> Result<BulkEnqueued, QueueError> {
        let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        self.announce(&queues).await?;
        // Grouped by place, not moved: the jobs stay where they are until their ids are taken.
        let groups = self.bulk_groups(&jobs);
        if groups.len() > 1 {
            for (shard, places) in &groups {
                if let ShardReply::KeyReused(i) = self.bulk_call(shard, &jobs, places, true).await?
                {
                    return Ok(BulkEnqueued::KeyReused(place(places, i)?));
                }
            }
        }
        let mut items: Vec<(usize, BulkItem)> = Vec::with_capacity(jobs.len());
        for (shard, places) in &groups {
            match self.bulk_call(shard, &jobs, places, false).await? {
                ShardReply::KeyReused(i) => return Ok(BulkEnqueued::KeyReused(place(places, i)?)),
                ShardReply::Stored { marks, existing } => {
                    ShardReply::items(&marks, existing, places, &mut jobs, &mut items).map_err(
                        |e| QueueError::UnexpectedReply {
                            script: "enqueue_bulk",
                            reply: e.to_string(),
                        },
                    )?;
                }
            }
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(BulkEnqueued::Stored(
            items.into_iter().map(|(_, item)| item).collect(),
        ))
    }

    /// The places in the batch of its jobs, grouped by shard in first-seen order.
    fn bulk_groups(&self, jobs: &[NewJob]) -> Vec<(Shard, Vec<usize>)> {
        let mut groups: Vec<(Shard, Vec<usize>)> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let shard = self.keys.for_queue(&job.queue);
            match groups.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, places)) => places.push(i),
                None => groups.push((shard, vec![i])),
            }
        }
        groups
    }

    /// One `enqueue_bulk.lua` call for the jobs of one shard (`check`: read and check only).
    async fn bulk_call(
        &self,
        shard: &Shard,
        jobs: &[NewJob],
        places: &[usize],
        check: bool,
    ) -> Result<ShardReply, QueueError> {
        let mut conn = self.redis.connection()?;
        let jobs = || places.iter().filter_map(|&i| jobs.get(i));
        let fingerprints = jobs().filter(|job| job.idempotency.is_some()).count();
        // The argument count is exact and the bytes a floor (args and keys are not counted): the
        // arguments' index (16 B each) is most of a call without args, and grown by doubling
        // it held up to twice what it needs.
        let args = 4 + ENQUEUE_BULK_ARGS_PER_JOB * places.len() + fingerprints;
        let bytes: usize = jobs()
            .map(|job| job.id.len() + job.kind.len() + job.queue.len() + 16)
            .sum();
        let mut call = ScriptCall::with_capacity(
            &scripts::ENQUEUE_BULK,
            &[&shard.scheduled(), &shard.queues()],
            args,
            bytes,
        );
        call.arg(shard.base())
            .arg(ms(IDEMPOTENCY_TTL))
            .arg(places.len())
            .arg(if check { "check" } else { "write" });
        let mut requests = Vec::with_capacity(fingerprints);
        for job in jobs() {
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
        // The call's jobs stand at places 0, 2 and 3 of the batch.
        let mut jobs = vec![new_job("a"), new_job("x"), new_job("b"), new_job("c")];
        let mut items = Vec::new();
        ShardReply::items(&marks, existing, &[0, 2, 3], &mut jobs, &mut items).unwrap();
        let seen: Vec<(usize, &str, JobStatus, bool)> = items
            .iter()
            .map(|(i, item)| (*i, item.id.as_str(), item.status, item.created))
            .collect();
        assert_eq!(
            seen,
            [
                (0, "a", JobStatus::Queued, true),
                (2, "b-earlier", JobStatus::Succeeded, false),
                (3, "c", JobStatus::Scheduled, true),
            ]
        );
        let reused = Value::Array(vec![s("reused"), Value::Int(3), Value::Array(vec![])]);
        assert_eq!(
            parse::<ShardReply>("enqueue_bulk", reused).unwrap(),
            ShardReply::KeyReused(3)
        );
    }

    #[tokio::test]
    async fn a_batch_waits_until_the_batches_before_it_leave_room() {
        let room = Queue::new_bulk_room();
        let full = take_room(&room, BULK_MAX).await;
        let waiting = tokio::spawn({
            let room = Arc::clone(&room);
            async move { take_room(&room, 10).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "room was given twice");
        drop(full);
        let small = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("room given back")
            .unwrap();
        // More than the room asks for all of it, rather than waiting forever.
        drop(small);
        let all = take_room(&room, 5 * BULK_ROOM).await;
        assert_eq!(room.available_permits(), 0);
        drop(all);
        assert_eq!(room.available_permits(), BULK_ROOM);
    }

    #[test]
    fn a_reply_that_does_not_match_the_call_is_an_error() {
        let mut jobs = vec![new_job("a"), new_job("b")];
        let mut items = Vec::new();
        let mut items_of = |marks: &[u8], places: &[usize]| {
            ShardReply::items(marks, vec![], places, &mut jobs, &mut items)
        };
        assert!(items_of(b"q", &[0, 1]).is_err(), "fewer marks than jobs");
        assert!(items_of(b"e", &[0]).is_err(), "an existing job not named");
        assert!(items_of(b"x", &[0]).is_err(), "an unknown mark");
        assert!(items_of(b"q", &[7]).is_err(), "a place past the batch");
        let group = [5, 6];
        assert_eq!(place(&group, 1).unwrap(), 6);
        assert!(place(&group, 3).is_err());
    }
}
