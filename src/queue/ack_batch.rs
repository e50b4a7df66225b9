//! Coalesced acks: the successes of runners that finish while an ack is on its way to Redis go
//! together in the next call of `ack_many.lua`, one script call and one round trip for many jobs.
//!
//! There is no waiting window: a lone ack is sent the moment it arrives, and only acks that
//! queue up behind a call in flight are batched, so batching never delays a job; under load it
//! turns N calls into one. Should a batch fail, each of its runners is told to ack on its own
//! (the single `ack.lua`), so every error is the job's own and retried as before.

use std::sync::{Arc, OnceLock};

use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Queue, ms, scripts};

/// The most acks in one script call: the call stays well under a millisecond of Redis time.
const BATCH_MAX: usize = 64;
/// Acks waiting for the batcher; a runner whose ack does not fit acks on its own.
const QUEUED_MAX: usize = 4096;

/// One runner's ack, waiting for its batch.
pub(super) struct Pending {
    id: String,
    inflight: String,
    lease: String,
    result: String,
    /// `Some(applied)` once written; `None` when the batch failed (ack on your own).
    done: oneshot::Sender<Option<bool>>,
}

/// The sending side, set when the batcher starts (see [`Queue::start_batchers`]).
pub(super) type AckSender = Arc<OnceLock<mpsc::Sender<Pending>>>;

impl Queue {
    /// The batcher's channel, starting the batcher on the calling runtime the first time (see
    /// [`Queue::start_batchers`] for where the app starts it).
    pub(super) fn ack_sender(&self) -> &mpsc::Sender<Pending> {
        self.acks.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUED_MAX);
            tokio::spawn(run(self.clone(), rx));
            tx
        })
    }

    /// Acks job `id` with the others that are waiting. `None`: not written, ack on your own.
    pub(super) async fn ack_batched(
        &self,
        id: &str,
        inflight: &str,
        lease: &str,
        result: &str,
    ) -> Option<bool> {
        let sender = self.ack_sender();
        let (done, outcome) = oneshot::channel();
        let pending = Pending {
            id: id.to_string(),
            inflight: inflight.to_string(),
            lease: lease.to_string(),
            result: result.to_string(),
            done,
        };
        sender.try_send(pending).ok()?;
        outcome.await.ok().flatten()
    }
}

async fn run(queue: Queue, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        // One call per in-flight list (one per process, in practice).
        while !batch.is_empty() {
            let inflight = batch[0].inflight.clone();
            let (same, rest): (Vec<Pending>, Vec<Pending>) =
                batch.drain(..).partition(|p| p.inflight == inflight);
            batch = rest;
            let applied = write(&queue, &inflight, &same).await;
            for (i, pending) in same.into_iter().enumerate() {
                let _ = pending
                    .done
                    .send(applied.as_ref().and_then(|a| a.get(i).copied()));
            }
        }
    }
}

/// Runs `ack_many.lua`; `None` when the call failed or its reply does not fit.
async fn write(queue: &Queue, inflight: &str, acks: &[Pending]) -> Option<Vec<bool>> {
    let mut conn = queue.redis.connection().ok()?;
    // One in-flight list is in one shard, with every job it holds.
    let shard = queue.keys.for_job(&acks.first()?.id);
    let mut call = scripts::ACK_MANY.prepare_invoke();
    call.key(inflight)
        .arg(shard.base())
        .arg(ms(queue.retention.job))
        .arg(queue.retention.job_max);
    for ack in acks {
        call.arg(&ack.id).arg(&ack.lease).arg(&ack.result);
    }
    let reply: Value = match call.invoke_async(&mut conn).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::debug!(event = "job.ack_batch_failed", jobs = acks.len(), error = %e);
            return None;
        }
    };
    let applied: Vec<i64> = redis::FromRedisValue::from_redis_value(reply).ok()?;
    (applied.len() == acks.len()).then(|| applied.into_iter().map(|a| a == 1).collect())
}
