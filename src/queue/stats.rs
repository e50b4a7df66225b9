//! What Redis and the queues look like as a whole: the queue snapshot for `GET /queues` and the
//! metrics line, Redis's memory for the telemetry, and the write check behind `GET /health`.

use std::time::Duration;

use super::error::QueueError;
use super::memory::RedisMemory;
use super::{Queue, scripts};

/// The most queues `GET /queues` and the metrics line list (the rest are counted as omitted).
pub const QUEUES_LISTED: usize = 50;
/// The most known queue names one stats call looks at (a sample when there are more).
const QUEUES_SCANNED: usize = 1000;

/// A snapshot of every queue, for `GET /queues`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// Per queue.
    pub queues: Vec<QueueStats>,
    /// Jobs waiting for their `run_at`.
    pub scheduled: u64,
    /// Failed jobs waiting for their next attempt.
    pub retrying: u64,
    /// Dead jobs kept for inspection.
    pub dead: u64,
    /// Registered worker processes.
    pub processes: u64,
    /// Queues not listed in `queues` (past [`QUEUES_LISTED`]: the shallowest are left out).
    pub queues_omitted: u64,
    /// Jobs being worked now, in every queue.
    pub running: u64,
}

/// One queue's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueStats {
    /// Its name.
    pub name: String,
    /// Jobs waiting in it.
    pub depth: u64,
    /// Seconds the oldest waiting job has waited.
    pub latency: f64,
    /// Its jobs being worked now.
    pub running: u64,
    /// False when jobs wait in it and no live process works it (a typo'd queue name).
    pub served: bool,
}

/// `stats.lua` returns every queue as five flat values: name, depth, latency ms, running, served.
fn queue_stats(flat: &[String]) -> Result<Vec<QueueStats>, QueueError> {
    let number = |s: &str| {
        s.parse::<u64>().map_err(|_| QueueError::UnexpectedReply {
            script: "stats",
            reply: format!("a count of {s:?}"),
        })
    };
    flat.chunks_exact(5)
        .map(|c| {
            Ok(QueueStats {
                name: c[0].clone(),
                depth: number(&c[1])?,
                latency: number(&c[2])? as f64 / 1000.0,
                running: number(&c[3])?,
                served: c[4] == "1",
            })
        })
        .collect()
}

impl Queue {
    /// A snapshot of the queues (at most [`QUEUES_LISTED`]); `always` are listed even when empty.
    pub async fn stats(&self, always: &[String]) -> Result<Stats, QueueError> {
        let mut conn = self.redis.connection()?;
        let (scheduled, retrying, dead, processes, flat, queues_omitted, running): (
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
            u64,
            u64,
        ) = scripts::STATS
            .key(self.keys.queues())
            .key(self.keys.processes())
            .key(self.keys.scheduled())
            .key(self.keys.retry())
            .key(self.keys.dead())
            .arg(self.keys.base())
            .arg(QUEUES_LISTED)
            .arg(QUEUES_SCANNED)
            .arg(always)
            .invoke_async(&mut conn)
            .await?;
        Ok(Stats {
            queues: queue_stats(&flat)?,
            scheduled,
            retrying,
            dead,
            processes,
            queues_omitted,
            running,
        })
    }

    /// Redis's memory use, limit and eviction policy (`INFO memory`). On a cluster, the sum over
    /// its primaries (replicas hold copies of the same data, so they are left out).
    pub async fn memory(&self) -> Result<RedisMemory, QueueError> {
        let mut conn = self.redis.connection()?;
        let replies = conn
            .on_each_primary(redis::cmd("INFO").arg("memory"))
            .await?;
        let nodes = replies
            .into_iter()
            .map(|reply| redis::from_redis_value::<String>(reply).map_err(redis::RedisError::from))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RedisMemory::total(
            nodes.iter().map(|info| RedisMemory::from_info(info)),
        ))
    }

    /// Whether Redis takes writes now: one small write that expires by itself. Out of memory
    /// under `noeviction` it fails with [`QueueError::Full`], which a PING would not show.
    pub async fn check_writable(&self) -> Result<(), QueueError> {
        let mut conn = self.redis.connection()?;
        let mut set = redis::cmd("SET");
        set.arg(self.keys.health()).arg(1).arg("PX").arg(10_000);
        let check = set.query_async::<()>(&mut conn);
        tokio::time::timeout(Duration::from_secs(1), check)
            .await
            .map_err(|_| QueueError::NoAnswer("write check timed out"))??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_numbers_read_four_values_per_queue() {
        let flat: Vec<String> = ["a", "3", "1500", "1", "1", "b", "0", "0", "0", "1"]
            .map(String::from)
            .to_vec();
        let queues = queue_stats(&flat).unwrap();
        assert_eq!(queues.len(), 2);
        assert_eq!(
            (queues[0].depth, queues[0].latency, queues[0].running),
            (3, 1.5, 1)
        );
        assert!(queues[0].served);
        let bad = ["a", "x", "0", "0", "1"].map(String::from);
        assert!(matches!(
            queue_stats(&bad),
            Err(QueueError::UnexpectedReply {
                script: "stats",
                ..
            })
        ));
    }
}
