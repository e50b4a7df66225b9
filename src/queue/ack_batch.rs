//! Coalesced acks: the successes of runners that finish while an ack is on its way to Redis go
//! together in the next call of `ack_many.lua`, one script call and one round trip for many jobs.
//!
//! A lone ack is sent the moment it arrives, and acks that queue up behind a call in flight go in
//! the next one; under load it turns N calls into one. While jobs finish faster than a round trip
//! (the last call carried more than one and came back a moment ago), the next call also waits a
//! millisecond or two for as many acks as the last one carried (see [`LastCall::gather_for`]).
//! Should a batch fail, each of its runners is told to ack on its own (the single `ack.lua`), so
//! every error is the job's own and retried as before.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

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
    let mut last = LastCall::default();
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        if let Some(enough) = last.gather_for(Instant::now()) {
            gather(&mut rx, &mut batch, enough, GATHER).await;
        }
        let carried = batch.len();
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
        last = LastCall {
            carried,
            ended: Some(Instant::now()),
        };
    }
}

/// The batcher's previous call: how many acks it carried and when it came back.
#[derive(Debug, Default)]
struct LastCall {
    carried: usize,
    ended: Option<Instant>,
}

impl LastCall {
    /// How many acks the next call waits for, if any. Only while jobs finish faster than a round
    /// trip: the last call carried more than one and came back within [`GATHER`]; a lone ack
    /// after a quiet moment goes at once. As many as the last call carried (at most half a
    /// batch): no more can be on their way than were a moment ago (each holds a place among the
    /// outcomes being written, one per slot), so a call never waits for acks that cannot come.
    fn gather_for(&self, now: Instant) -> Option<usize> {
        let ended = self.ended?;
        (self.carried > 1 && now.duration_since(ended) < GATHER)
            .then_some(self.carried.min(BATCH_MAX / 2))
    }
}

/// Adds the acks that arrive within `wait` until the batch holds `enough`: a call costs a round
/// trip (on loopback ~25 us of this process's CPU and as much of Redis's) whatever its size. The
/// job's slot is free by then (unless it holds a shared concurrency limit, which it gives back
/// once the outcome is written), so what waits is the record's `succeeded`, not a job's start.
async fn gather(
    rx: &mut mpsc::Receiver<Pending>,
    batch: &mut Vec<Pending>,
    enough: usize,
    wait: Duration,
) {
    let deadline = Instant::now() + wait;
    while batch.len() < enough {
        let room = BATCH_MAX - batch.len();
        match tokio::time::timeout_at(deadline, rx.recv_many(batch, room)).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// How long acks are gathered at most while jobs finish fast (see [`LastCall::gather_for`]);
/// tokio's timer rounds it up to the next millisecond tick.
const GATHER: Duration = Duration::from_millis(1);

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
    let applied: String = redis::FromRedisValue::from_redis_value(reply).ok()?;
    (applied.len() == acks.len()).then(|| applied.bytes().map(|a| a == b'1').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str) -> Pending {
        Pending {
            id: id.into(),
            inflight: "inflight".into(),
            lease: "p:1".into(),
            result: "null".into(),
            done: oneshot::channel().0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acks_gather_only_while_jobs_finish_faster_than_a_round_trip() {
        let now = Instant::now();
        let ago = |ms: u64| Some(now - Duration::from_millis(ms));
        let last = |carried, ended| LastCall { carried, ended };
        assert_eq!(
            last(0, None).gather_for(now),
            None,
            "the first call goes at once"
        );
        assert_eq!(
            last(1, ago(0)).gather_for(now),
            None,
            "after a lone ack, at once"
        );
        assert_eq!(
            last(10, ago(0)).gather_for(now),
            Some(10),
            "as many as last time"
        );
        assert_eq!(last(200, ago(0)).gather_for(now), Some(BATCH_MAX / 2));
        assert_eq!(
            last(10, ago(5)).gather_for(now),
            None,
            "a lone ack after a quiet moment goes at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn busy_acks_gather_until_there_are_enough_then_go() {
        let (tx, mut rx) = mpsc::channel(QUEUED_MAX);
        let mut batch = vec![pending("first")];
        // Acks arrive one at a time, each while the batcher waits.
        tokio::spawn(async move {
            for i in 0..BATCH_MAX {
                tokio::task::yield_now().await;
                if tx.send(pending(&i.to_string())).await.is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        gather(&mut rx, &mut batch, 10, Duration::from_millis(1)).await;
        assert_eq!(batch.len(), 10, "enough, then it goes");
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "without waiting out the wait"
        );
        // Many at once are taken at once, never more than a batch.
        let (tx, mut rx) = mpsc::channel(QUEUED_MAX);
        for i in 0..2 * BATCH_MAX {
            tx.send(pending(&i.to_string())).await.unwrap();
        }
        let mut batch = vec![pending("first")];
        gather(&mut rx, &mut batch, BATCH_MAX / 2, Duration::from_millis(1)).await;
        assert_eq!(batch.len(), BATCH_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_waits_no_longer_than_the_wait_for_others() {
        let (tx, mut rx) = mpsc::channel(QUEUED_MAX);
        let mut batch = vec![pending("first")];
        tx.send(pending("second")).await.unwrap();
        let start = Instant::now();
        gather(&mut rx, &mut batch, 10, Duration::from_millis(1)).await;
        assert_eq!(batch.len(), 2);
        assert_eq!(start.elapsed(), Duration::from_millis(1));
        drop(tx);
    }
}
