//! Coalesced enqueues: the jobs of requests that arrive while an enqueue is on its way to Redis
//! go together in the next call of `enqueue.lua`, one script call and one round trip for many.
//!
//! As with acks (`ack_batch.rs`), there is no waiting window: a lone job is sent the moment it
//! arrives, and only jobs that queue up behind a call in flight are batched. Each job in a call
//! stands on its own (its own idempotency key, its own reply); should the call fail, every job
//! in it gets that error, as a single enqueue would have, and its client may send it again.

use std::sync::{Arc, OnceLock};

use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::error::QueueError;
use super::jobs::{Enqueued, IDEMPOTENCY_TTL, NewJob, RunAt};
use super::keys::Shard;
use super::reply::parse;
use super::{Queue, ms, scripts};

/// The most jobs in one script call: well under a millisecond of Redis time.
const BATCH_MAX: usize = 64;
/// Jobs waiting for the batcher; one that does not fit is sent on its own.
const QUEUED_MAX: usize = 1024;

/// A job as `enqueue.lua` takes it: its ten arguments.
pub(super) struct EnqueueArgs([String; 10]);

impl EnqueueArgs {
    /// The arguments of `job` (its args encoded as JSON here, before it waits for a batch).
    pub(super) fn of(job: NewJob) -> Result<EnqueueArgs, QueueError> {
        let (delay, run_at) = match job.when {
            RunAt::Now => (String::new(), String::new()),
            RunAt::After(d) => (ms(d).to_string(), String::new()),
            RunAt::At(at) => (String::new(), at.to_string()),
        };
        let (idem_key, fingerprint) = job.idempotency.unwrap_or_default();
        Ok(EnqueueArgs([
            job.id,
            job.kind,
            job.queue,
            serde_json::to_string(&job.args)?,
            job.max_attempts.to_string(),
            job.timeout.map(|t| ms(t).to_string()).unwrap_or_default(),
            delay,
            run_at,
            idem_key,
            fingerprint,
        ]))
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
        for arg in &job.0 {
            call.arg(arg);
        }
    }
    let reply: Value = call.invoke_async(&mut conn).await?;
    let outcomes: Vec<Enqueued> = parse("enqueue", reply)?;
    if outcomes.len() != jobs.len() {
        return Err(QueueError::UnexpectedReply {
            script: "enqueue",
            reply: format!("{} outcomes for {} jobs", outcomes.len(), jobs.len()),
        });
    }
    Ok(outcomes)
}
