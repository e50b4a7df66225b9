//! Coalesced enqueues: the jobs of requests that arrive while an enqueue is on its way to Redis
//! go together in the next call of `enqueue.lua`, one script call and one round trip for many.
//!
//! As with acks (`ack_batch.rs`), there is no waiting window: a lone job is sent the moment it
//! arrives, and only jobs that queue up behind a call in flight are batched. Each job in a call
//! stands on its own (its own idempotency key, its own reply); should the call fail, every job
//! in it gets that error, as a single enqueue would have, and its client may send it again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{FromRedisValue, ParsingError, Value};
use tokio::sync::{mpsc, oneshot};

use super::error::QueueError;
use super::job::JobRecord;
use super::jobs::{Enqueued, IDEMPOTENCY_TTL, NewJob, RunAt};
use super::keys::Shard;
use super::reply::{parse, record, tagged, unexpected};
use super::status::JobStatus;
use super::{Queue, ms, scripts};

/// The most jobs in one script call: well under a millisecond of Redis time.
const BATCH_MAX: usize = 64;
/// Jobs waiting for the batcher; one that does not fit is sent on its own.
const QUEUED_MAX: usize = 1024;

/// A job as `enqueue.lua` takes it (its ten arguments), and what its record is built from once
/// Redis has said what it decided (the script sends back none of what it was sent).
pub(super) struct EnqueueArgs {
    strings: [String; 10],
    args: serde_json::Value,
    max_attempts: u32,
    timeout: Option<Duration>,
}

impl EnqueueArgs {
    /// The arguments of `job` (its args encoded as JSON here, before it waits for a batch).
    pub(super) fn of(job: NewJob) -> Result<EnqueueArgs, QueueError> {
        let (delay, run_at) = match job.when {
            RunAt::Now => (String::new(), String::new()),
            RunAt::After(d) => (ms(d).to_string(), String::new()),
            RunAt::At(at) => (String::new(), at.to_string()),
        };
        let (idem_key, fingerprint) = job.idempotency.unwrap_or_default();
        // Stored in whole milliseconds, and so read back.
        let timeout_ms = job.timeout.map(ms);
        Ok(EnqueueArgs {
            strings: [
                job.id,
                job.kind,
                job.queue,
                serde_json::to_string(&job.args)?,
                job.max_attempts.to_string(),
                timeout_ms.map(|t| t.to_string()).unwrap_or_default(),
                delay,
                run_at,
                idem_key,
                fingerprint,
            ],
            args: job.args,
            max_attempts: job.max_attempts,
            timeout: timeout_ms.map(Duration::from_millis),
        })
    }

    /// The record of the job as stored, from what was sent and what Redis `decided`; the same as
    /// reading it back.
    fn record(&self, decided: Decided) -> JobRecord {
        let [id, kind, queue, ..] = &self.strings;
        JobRecord {
            id: id.clone(),
            kind: kind.clone(),
            queue: queue.clone(),
            args: self.args.clone(),
            status: decided.status,
            attempts: 0,
            failures: 0,
            max_attempts: self.max_attempts,
            timeout: self.timeout,
            errors: Vec::new(),
            result: None,
            progress: None,
            checkpoint: None,
            created_at: decided.created_at,
            run_at: Some(decided.run_at),
            started_at: None,
            finished_at: None,
            enqueued_at: (decided.status == JobStatus::Queued).then_some(decided.created_at),
            lease: None,
        }
    }
}

/// What `enqueue.lua` decided of a new job.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decided {
    status: JobStatus,
    /// Redis's time, ms.
    created_at: i64,
    run_at: i64,
}

/// `enqueue.lua`'s reply for one job.
#[derive(Debug)]
enum EnqueueReply {
    Created(Decided),
    /// Boxed: a record is far larger than what Redis decided of a new job.
    Existing(Box<JobRecord>),
    KeyReused,
}

/// `enqueue.lua`'s whole reply: `{now, per job...}`, where a new job's entry is `0` (queued at
/// `now`) or its `run_at` (scheduled), and an existing one's is
/// `{'existing', same request (1|0), job}`.
struct EnqueueReplies(Vec<EnqueueReply>);

impl FromRedisValue for EnqueueReplies {
    fn from_redis_value(v: Value) -> Result<EnqueueReplies, ParsingError> {
        let Value::Array(items) = v else {
            return Err(format!("expected an array, got {v:?}").into());
        };
        let mut items = items.into_iter();
        let now = match items.next() {
            Some(Value::Int(now)) => now,
            other => return Err(format!("expected the time first, got {other:?}").into()),
        };
        items
            .map(|item| match item {
                Value::Int(0) => Ok(EnqueueReply::Created(Decided {
                    status: JobStatus::Queued,
                    created_at: now,
                    run_at: now,
                })),
                Value::Int(run_at) if run_at > now => Ok(EnqueueReply::Created(Decided {
                    status: JobStatus::Scheduled,
                    created_at: now,
                    run_at,
                })),
                Value::Int(other) => Err(format!("a run_at of {other} at {now}").into()),
                existing => {
                    let (tag, [same, job]) = tagged(existing)?;
                    match (tag.as_str(), i64::from_redis_value(same)?) {
                        ("existing", 1) => Ok(EnqueueReply::Existing(Box::new(record(job)?))),
                        ("existing", _) => Ok(EnqueueReply::KeyReused),
                        _ => Err(unexpected(&tag)),
                    }
                }
            })
            .collect::<Result<_, _>>()
            .map(EnqueueReplies)
    }
}

/// One job waiting for its batch.
pub(super) struct Pending {
    shard: Shard,
    job: EnqueueArgs,
    done: oneshot::Sender<Result<Enqueued, QueueError>>,
}

/// The sending side, set when the batcher starts (see [`Queue::start_batchers`]).
pub(super) type EnqueueSender = Arc<OnceLock<mpsc::Sender<Pending>>>;

impl Queue {
    /// The batcher's channel, starting the batcher on the calling runtime the first time (see
    /// [`Queue::start_batchers`] for where the app starts it).
    pub(super) fn enqueue_sender(&self) -> &mpsc::Sender<Pending> {
        self.enqueues.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUED_MAX);
            tokio::spawn(run(self.clone(), rx));
            tx
        })
    }

    /// Stores `job` in `shard` (its queue's), together with the others that are waiting.
    pub(super) async fn enqueue_batched(
        &self,
        shard: Shard,
        job: EnqueueArgs,
    ) -> Result<Enqueued, QueueError> {
        let sender = self.enqueue_sender();
        let (done, outcome) = oneshot::channel();
        match sender.try_send(Pending { shard, job, done }) {
            Ok(()) => outcome
                .await
                .unwrap_or(Err(QueueError::NoAnswer("the enqueue batcher stopped"))),
            Err(refused) => {
                let Pending { shard, job, .. } = refused.into_inner();
                let mut one = call(self, &shard, &[&job]).await?;
                one.pop().ok_or_else(|| QueueError::UnexpectedReply {
                    script: "enqueue",
                    reply: "no reply for the job".into(),
                })
            }
        }
    }
}

async fn run(queue: Queue, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        // One call per shard (one in all, unless the jobs go to queues of several shards).
        while !batch.is_empty() {
            let shard = batch[0].shard.clone();
            let (same, rest): (Vec<Pending>, Vec<Pending>) =
                batch.drain(..).partition(|p| p.shard == shard);
            batch = rest;
            let jobs: Vec<&EnqueueArgs> = same.iter().map(|p| &p.job).collect();
            match call(&queue, &shard, &jobs).await {
                Ok(outcomes) => {
                    for (pending, outcome) in same.into_iter().zip(outcomes) {
                        let _ = pending.done.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    tracing::debug!(event = "job.enqueue_batch_failed", jobs = same.len(), error = %e);
                    for pending in same {
                        let _ = pending.done.send(Err(e.duplicate()));
                    }
                }
            }
        }
    }
}

/// One `enqueue.lua` call for `jobs`, all of `shard`: one outcome per job, in order.
async fn call(
    queue: &Queue,
    shard: &Shard,
    jobs: &[&EnqueueArgs],
) -> Result<Vec<Enqueued>, QueueError> {
    let mut conn = queue.redis.connection()?;
    let mut call = scripts::ENQUEUE.prepare_invoke();
    call.key(shard.scheduled())
        .key(shard.queues())
        .arg(shard.base())
        .arg(ms(IDEMPOTENCY_TTL));
    for job in jobs {
        for arg in &job.strings {
            call.arg(arg);
        }
    }
    let reply: Value = call.invoke_async(&mut conn).await?;
    let EnqueueReplies(replies) = parse("enqueue", reply)?;
    if replies.len() != jobs.len() {
        return Err(QueueError::UnexpectedReply {
            script: "enqueue",
            reply: format!("{} outcomes for {} jobs", replies.len(), jobs.len()),
        });
    }
    Ok(jobs
        .iter()
        .zip(replies)
        .map(|(job, reply)| match reply {
            EnqueueReply::Created(decided) => Enqueued::Created(job.record(decided)),
            EnqueueReply::Existing(record) => Enqueued::Existing(*record),
            EnqueueReply::KeyReused => Enqueued::KeyReused,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::{arr, job, s};
    use super::*;

    fn existing(same: i64, job: Value) -> Value {
        arr(vec![s("existing"), Value::Int(same), job])
    }

    fn replies(items: Vec<Value>) -> Result<Vec<EnqueueReply>, QueueError> {
        parse::<EnqueueReplies>("enqueue", arr(items)).map(|r| r.0)
    }

    #[test]
    fn replies_read_as_created_existing_or_key_reused() {
        let read = replies(vec![
            Value::Int(1_000),
            Value::Int(0),
            Value::Int(31_000),
            existing(1, job("j1")),
            existing(0, job("j1")),
        ])
        .unwrap();
        let queued = Decided {
            status: JobStatus::Queued,
            created_at: 1_000,
            run_at: 1_000,
        };
        let scheduled = Decided {
            status: JobStatus::Scheduled,
            created_at: 1_000,
            run_at: 31_000,
        };
        assert!(matches!(read[0], EnqueueReply::Created(d) if d == queued));
        assert!(matches!(read[1], EnqueueReply::Created(d) if d == scheduled));
        assert!(matches!(&read[2], EnqueueReply::Existing(j) if j.id == "j1"));
        assert!(matches!(read[3], EnqueueReply::KeyReused));
        assert_eq!(read.len(), 4);
        for bad in [
            vec![],
            vec![s("1000"), Value::Int(0)],
            vec![
                Value::Int(1_000),
                arr(vec![s("stored"), Value::Int(1), job("j1")]),
            ],
            // A scheduled job runs later than its creation.
            vec![Value::Int(1_000), Value::Int(999)],
            vec![Value::Int(1_000), s("queued")],
        ] {
            let e = replies(bad).err();
            assert!(
                matches!(
                    e,
                    Some(QueueError::UnexpectedReply {
                        script: "enqueue",
                        ..
                    })
                ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_created_record_is_what_was_sent_and_what_redis_decided() {
        let job = NewJob {
            id: "0190aabbccdd-x".into(),
            kind: "echo".into(),
            queue: "mail".into(),
            args: serde_json::json!({"to": "a@b.c", "n": 1.5}),
            max_attempts: 3,
            timeout: Some(Duration::from_micros(2_500)),
            when: RunAt::After(Duration::from_secs(30)),
            idempotency: Some(("key".into(), "fingerprint".into())),
        };
        let args = EnqueueArgs::of(job).unwrap();
        assert_eq!(args.strings[3], r#"{"n":1.5,"to":"a@b.c"}"#);
        assert_eq!(args.strings[5], "2", "timeout in whole ms");
        assert_eq!(args.strings[6], "30000");
        let scheduled = args.record(Decided {
            status: JobStatus::Scheduled,
            created_at: 1_000,
            run_at: 31_000,
        });
        assert_eq!(
            (scheduled.id.as_str(), scheduled.kind.as_str()),
            ("0190aabbccdd-x", "echo")
        );
        assert_eq!(scheduled.queue, "mail");
        assert_eq!(scheduled.args, serde_json::json!({"to": "a@b.c", "n": 1.5}));
        assert_eq!(scheduled.status, JobStatus::Scheduled);
        assert_eq!((scheduled.attempts, scheduled.failures), (0, 0));
        assert_eq!(scheduled.max_attempts, 3);
        // As a read of the stored record gives it back: whole milliseconds.
        assert_eq!(scheduled.timeout, Some(Duration::from_millis(2)));
        assert_eq!(
            (
                scheduled.created_at,
                scheduled.run_at,
                scheduled.enqueued_at
            ),
            (1_000, Some(31_000), None)
        );
        let queued = args.record(Decided {
            status: JobStatus::Queued,
            created_at: 1_000,
            run_at: 1_000,
        });
        assert_eq!(queued.enqueued_at, Some(1_000), "queued at its creation");
    }
}
