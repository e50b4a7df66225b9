//! What Redis and the queues look like as a whole: the queue snapshot for `GET /queues` and the
//! metrics line, Redis's memory for the telemetry, and the write check behind `GET /health`.

use std::time::Duration;

use super::error::QueueError;
use super::keys::Shard;
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

/// Adds `part`'s queues to `all`: a name seen in two shards (its own and the legacy one, during
/// an upgrade) counts both.
fn merge_queues(all: &mut Vec<QueueStats>, part: Vec<QueueStats>) {
    for q in part {
        match all.iter_mut().find(|a| a.name == q.name) {
            Some(a) => {
                a.depth += q.depth;
                a.running += q.running;
                a.latency = a.latency.max(q.latency);
                a.served |= q.served;
            }
            None => all.push(q),
        }
    }
}

/// Orders merged queues as one shard's script does (`always` first, in their order, then the
/// deepest, by name on a tie) and keeps [`QUEUES_LISTED`]; returns how many were left out.
fn order_queues(queues: &mut Vec<QueueStats>, always: &[String]) -> u64 {
    let rank = |q: &QueueStats| always.iter().position(|a| *a == q.name);
    queues.sort_by(|a, b| match (rank(a), rank(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.depth.cmp(&a.depth).then_with(|| a.name.cmp(&b.name)),
    });
    let keep = QUEUES_LISTED.max(always.len());
    let omitted = queues.len().saturating_sub(keep);
    queues.truncate(keep);
    omitted as u64
}

impl Queue {
    /// One snapshot of the queues and sets: the union of every known shard's (see
    /// `stats.lua`); `always` (the queues this process works) are listed first.
    pub async fn stats(&self, always: &[String]) -> Result<Stats, QueueError> {
        let mut total = Stats {
            queues: Vec::new(),
            scheduled: 0,
            retrying: 0,
            dead: 0,
            processes: 0,
            queues_omitted: 0,
            running: 0,
        };
        for shard in self.known_shards(always).await? {
            let mine: Vec<&String> = always
                .iter()
                .filter(|q| self.keys.for_queue(q) == shard)
                .collect();
            let part = self.shard_stats(&shard, &mine).await?;
            total.scheduled += part.scheduled;
            total.retrying += part.retrying;
            total.dead += part.dead;
            total.running += part.running;
            total.queues_omitted += part.queues_omitted;
            if shard == *self.keys.legacy() {
                // The legacy shard's set of processes is every registered process.
                total.processes = part.processes;
            }
            merge_queues(&mut total.queues, part.queues);
        }
        total.queues_omitted += order_queues(&mut total.queues, always);
        Ok(total)
    }

    /// `stats.lua` on one shard.
    async fn shard_stats(&self, shard: &Shard, always: &[&String]) -> Result<Stats, QueueError> {
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
            .key(shard.queues())
            .key(shard.processes())
            .key(shard.scheduled())
            .key(shard.retry())
            .key(shard.dead())
            .arg(shard.base())
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

    fn queue(name: &str, depth: u64, running: u64) -> QueueStats {
        QueueStats {
            name: name.into(),
            depth,
            latency: depth as f64,
            running,
            served: false,
        }
    }

    #[test]
    fn shards_queues_merge_by_name_and_list_the_served_first_then_the_deepest() {
        let mut all = vec![queue("a", 1, 0), queue("b", 5, 1)];
        // "a" in the legacy shard too (an upgrade), and "c" in a shard of its own.
        merge_queues(&mut all, vec![queue("a", 2, 1), queue("c", 9, 0)]);
        let always = ["b".to_string()];
        assert_eq!(order_queues(&mut all, &always), 0);
        let names: Vec<&str> = all.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
        assert_eq!((all[2].depth, all[2].running, all[2].latency), (3, 1, 2.0));
        let mut many: Vec<QueueStats> = (0..QUEUES_LISTED + 3)
            .map(|i| queue(&format!("q{i:03}"), 1, 0))
            .collect();
        assert_eq!(order_queues(&mut many, &[]), 3);
        assert_eq!(many.len(), QUEUES_LISTED);
    }

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
