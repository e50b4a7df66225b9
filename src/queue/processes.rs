//! Worker processes and the jobs they hold (fetching them is `fetch.rs`): the heartbeat that
//! keeps a process registered in each shard it works, releasing a process's jobs (its own shutdown, or the reaper after it
//! died), and the periodic upkeep of promoting due jobs and pruning queue names. The worker
//! calls fetch, heartbeat and release; the maintenance loops call reap, promote and prune.

use std::time::Duration;

use redis::{FromRedisValue, ParsingError, Value};
use serde_json::Value as Json;

use super::error::QueueError;
use super::keys::Shard;
use super::lease::RequeueOutcome;
use super::reply::parse;
use super::{Queue, ms, scripts};

/// Jobs and sets promoted per call, per set, so one call stays short.
const PROMOTE_BATCH: usize = 500;
/// Queue names one prune call looks at.
const PRUNE_SAMPLE: usize = 1000;

/// Whether a heartbeat registers its process for the first time or renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Not registered yet (just started, or reaped and starting over): registers.
    First,
    /// Registered by an earlier beat: renews, unless a reaper released the process meanwhile.
    Renewal,
}

/// What a heartbeat learned.
#[derive(Debug)]
pub struct Beat {
    /// A reaper released this process: every lease it held is void.
    pub reaped: bool,
    /// Ids of this process's running jobs that were cancelled through the API.
    pub cancelled: Vec<String>,
    /// Every job this process holds in its in-flight list.
    pub held: Vec<HeldJob>,
}

/// A job in a process's in-flight list, and the lease it is held under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeldJob {
    /// The job's id.
    pub id: String,
    /// Its lease token.
    pub lease: String,
}

/// `heartbeat.lua`: `{reaped (1|0), {cancelled id, ...}, {id, lease, id, lease, ...}}`.
impl FromRedisValue for Beat {
    fn from_redis_value(v: Value) -> Result<Beat, ParsingError> {
        let (reaped, cancelled, held): (i64, Vec<String>, Vec<String>) =
            FromRedisValue::from_redis_value(v)?;
        let held = held
            .chunks_exact(2)
            .map(|pair| HeldJob {
                id: pair[0].clone(),
                lease: pair[1].clone(),
            })
            .collect();
        Ok(Beat {
            reaped: reaped == 1,
            cancelled,
            held,
        })
    }
}

/// Whose jobs `release.lua` puts back.
enum Release<'a> {
    /// Every registered process whose heartbeat expired (the reaper).
    Expired,
    /// This one, whatever its heartbeat (its own shutdown).
    Process(&'a str),
}

impl Queue {
    /// Registers `process` (or renews it) for `ttl`: in the legacy shard, whose registration is
    /// the heartbeat `GET /processes` reads, and in the shard of every queue `info` names (the
    /// process's `queues`), where its fetches check it and reapers watch it.
    pub async fn heartbeat(
        &self,
        process: &str,
        ttl: Duration,
        info: &Json,
        registration: Registration,
    ) -> Result<Beat, QueueError> {
        let served: Vec<&str> = info
            .get("queues")
            .and_then(Json::as_array)
            .map(|q| q.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        self.announce(&served).await?;
        let mut shards = vec![self.keys.legacy().clone()];
        for name in &served {
            let shard = self.keys.for_queue(name);
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        let mut beat = Beat {
            reaped: false,
            cancelled: Vec::new(),
            held: Vec::new(),
        };
        for shard in &shards {
            let one = self
                .heartbeat_shard(shard, process, ttl, info, registration)
                .await?;
            beat.reaped |= one.reaped;
            beat.cancelled.extend(one.cancelled);
            beat.held.extend(one.held);
        }
        Ok(beat)
    }

    /// `heartbeat.lua` on one shard.
    async fn heartbeat_shard(
        &self,
        shard: &Shard,
        process: &str,
        ttl: Duration,
        info: &Json,
        registration: Registration,
    ) -> Result<Beat, QueueError> {
        let mut conn = self.redis.connection()?;
        let renewal = match registration {
            Registration::First => "0",
            Registration::Renewal => "1",
        };
        let reply: Value = scripts::HEARTBEAT
            .key(shard.heartbeat(process))
            .key(shard.processes())
            .key(shard.inflight(process))
            .arg(shard.base())
            .arg(ms(ttl))
            .arg(info.to_string())
            .arg(renewal)
            .arg(process)
            .invoke_async(&mut conn)
            .await?;
        parse("heartbeat", reply)
    }

    /// Gives back a job `process` holds under `lease` without a runner for it (see the worker's
    /// heartbeat), as a requeue: not counted as a failure.
    pub async fn requeue_held(
        &self,
        process: &str,
        id: &str,
        lease: &str,
    ) -> Result<RequeueOutcome, QueueError> {
        let inflight = self.keys.for_job(id).inflight(process);
        self.requeue_lease(id, lease, &inflight).await
    }

    /// Puts back the jobs of every process whose heartbeat expired, in every known shard;
    /// returns `(process, jobs)`.
    pub async fn reap_expired_processes(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let mut released: Vec<(String, u64)> = Vec::new();
        for shard in self.known_shards(&[]).await? {
            for (process, jobs) in self.release(&shard, Release::Expired).await? {
                match released.iter_mut().find(|(p, _)| *p == process) {
                    Some((_, total)) => *total += jobs,
                    None => released.push((process, jobs)),
                }
            }
        }
        Ok(released)
    }

    /// Puts back every job `process` still holds and deregisters it (its own shutdown), in
    /// every known shard.
    pub async fn release_process(&self, process: &str) -> Result<u64, QueueError> {
        let mut total = 0;
        for shard in self.known_shards(&[]).await? {
            let released = self.release(&shard, Release::Process(process)).await?;
            total += released.into_iter().map(|(_, n)| n).sum::<u64>();
        }
        Ok(total)
    }

    async fn release(
        &self,
        shard: &Shard,
        which: Release<'_>,
    ) -> Result<Vec<(String, u64)>, QueueError> {
        let mut conn = self.redis.connection()?;
        // The script's contract spells "every expired process" as an empty name.
        let process = match which {
            Release::Expired => "",
            Release::Process(process) => process,
        };
        Ok(scripts::RELEASE
            .key(shard.processes())
            .arg(shard.base())
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .arg(process)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Moves due scheduled jobs and retries to their queues, and deletes finished jobs past their
    /// retention, in every known shard. Returns how many moved, and how long until the next one
    /// is due (`None` when none waits).
    pub async fn promote_due(&self) -> Result<(u64, Option<Duration>), QueueError> {
        let (mut moved, mut next) = (0, None::<Duration>);
        for shard in self.known_shards(&[]).await? {
            let (n, due) = self.promote_shard(&shard).await?;
            moved += n;
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok((moved, next))
    }

    async fn promote_shard(&self, shard: &Shard) -> Result<(u64, Option<Duration>), QueueError> {
        let mut conn = self.redis.connection()?;
        let (moved, next): (u64, i64) = scripts::PROMOTE
            .key(shard.scheduled())
            .key(shard.retry())
            .key(shard.dead())
            .arg(shard.base())
            .arg(PROMOTE_BATCH)
            .arg(ms(self.retention.dead))
            .arg(ms(self.retention.job))
            .invoke_async(&mut conn)
            .await?;
        Ok((moved, u64::try_from(next).ok().map(Duration::from_millis)))
    }

    /// Drops queue names that have no waiting job and no live process working them from each
    /// known shard's queue-names set (a sample per call); returns how many.
    pub async fn prune_queue_names(&self) -> Result<u64, QueueError> {
        let mut dropped = 0;
        for shard in self.known_shards(&[]).await? {
            let mut conn = self.redis.connection()?;
            let n: u64 = scripts::PRUNE_QUEUES
                .key(shard.queues())
                .key(shard.processes())
                .arg(shard.base())
                .arg(PRUNE_SAMPLE)
                .invoke_async(&mut conn)
                .await?;
            dropped += n;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::{arr, s};
    use super::*;

    #[test]
    fn a_heartbeat_reply_reads_as_a_beat_with_held_jobs() {
        let reply = arr(vec![
            Value::Int(0),
            arr(vec![s("a")]),
            arr(vec![s("a"), s("p:1"), s("b"), s("p:2")]),
        ]);
        let beat: Beat = parse("heartbeat", reply).unwrap();
        assert!(!beat.reaped);
        assert_eq!(beat.cancelled, ["a"]);
        assert_eq!(
            beat.held,
            [
                HeldJob {
                    id: "a".into(),
                    lease: "p:1".into()
                },
                HeldJob {
                    id: "b".into(),
                    lease: "p:2".into()
                },
            ]
        );
        let reaped: Beat = parse(
            "heartbeat",
            arr(vec![Value::Int(1), arr(vec![]), arr(vec![])]),
        )
        .unwrap();
        assert!(reaped.reaped && reaped.held.is_empty());
        let e = parse::<Beat>("heartbeat", s("ok")).unwrap_err();
        assert!(
            matches!(
                e,
                QueueError::UnexpectedReply {
                    script: "heartbeat",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
