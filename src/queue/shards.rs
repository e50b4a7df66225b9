//! What a process knows of the shards: which ones may hold keys (the known-shards set, which
//! listings and the maintenance loops walk), and which ones a fetch lately found empty (skipped
//! until a wake-up names one of their queues, or a moment has passed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Queue;
use super::error::QueueError;
use super::keys::{SHARDS, Shard};

/// How long a process trusts its own note that a shard is in the known-shards set before it
/// writes it again (the set may have been emptied, Redis restarted without persistence).
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(60);
/// How long a shard found empty is skipped without a wake-up: a lost pub/sub message, or a push
/// that found only stale ids in a list (which wakes nobody), delays its jobs this long at most.
const EMPTY_FOR: Duration = Duration::from_secs(1);

/// A process's notes on the shards (see the module's doc).
#[derive(Default)]
pub(super) struct ShardBook {
    announced: Mutex<HashMap<u16, Instant>>,
    empty: Mutex<Empty>,
}

/// Shards a fetch found empty, and a count of wake-ups so that a fetch which raced one does
/// not mark its shard empty after the fact.
#[derive(Default)]
struct Empty {
    since: HashMap<Shard, Instant>,
    wakes: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Queue {
    /// Every shard that may hold keys: the legacy shard first, then the shards in the
    /// known-shards set and those of `queues`, by number.
    pub(super) async fn known_shards(&self, queues: &[String]) -> Result<Vec<Shard>, QueueError> {
        let mut conn = self.redis.connection()?;
        let listed: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.shards())
            .query_async(&mut conn)
            .await?;
        let mut numbers: Vec<u16> = listed
            .iter()
            .filter_map(|n| n.parse().ok())
            .filter(|n| *n < SHARDS)
            .collect();
        numbers.extend(queues.iter().map(|q| super::shard_number(q)));
        numbers.sort_unstable();
        numbers.dedup();
        let mut shards = vec![self.keys.legacy().clone()];
        shards.extend(numbers.into_iter().map(|n| self.keys.shard(n)));
        Ok(shards)
    }

    /// Adds the shards of `queues` to the known-shards set, unless this process did lately.
    pub(super) async fn announce(&self, queues: &[&str]) -> Result<(), QueueError> {
        let fresh: Vec<u16> = {
            let mut announced = lock(&self.shards.announced);
            let now = Instant::now();
            let mut fresh: Vec<u16> = queues.iter().map(|q| super::shard_number(q)).collect();
            fresh.sort_unstable();
            fresh.dedup();
            fresh.retain(|n| {
                announced
                    .get(n)
                    .is_none_or(|at| now.duration_since(*at) >= ANNOUNCE_AGAIN)
            });
            for n in &fresh {
                announced.insert(*n, now);
            }
            fresh
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.connection()?;
        let added = redis::cmd("SADD")
            .arg(self.keys.shards())
            .arg(&fresh)
            .query_async::<()>(&mut conn)
            .await;
        if added.is_err() {
            let mut announced = lock(&self.shards.announced);
            for n in &fresh {
                announced.remove(n);
            }
        }
        Ok(added?)
    }

    /// A wake-up named `queue`: its shard (and the legacy shard, where an older process may
    /// have pushed it) is worth a fetch again.
    pub fn note_ready(&self, queue: &str) {
        let mut empty = lock(&self.shards.empty);
        empty.wakes += 1;
        empty.since.remove(&self.keys.for_queue(queue));
        empty.since.remove(self.keys.legacy());
    }

    /// Every shard is worth a fetch again (a poll tick, or pub/sub came back).
    pub fn forget_empty(&self) {
        let mut empty = lock(&self.shards.empty);
        empty.wakes += 1;
        empty.since.clear();
    }

    /// The count of wake-ups so far, taken before a fetch (see [`Queue::mark_empty`]).
    pub(super) fn wakes_seen(&self) -> u64 {
        lock(&self.shards.empty).wakes
    }

    /// Whether a fetch should skip `shard`: it was found empty a moment ago, with no wake since.
    pub(super) fn skips(&self, shard: &Shard) -> bool {
        lock(&self.shards.empty)
            .since
            .get(shard)
            .is_some_and(|at| at.elapsed() < EMPTY_FOR)
    }

    /// Notes that a fetch found `shard` empty, unless a wake-up came since `wakes` was taken.
    pub(super) fn mark_empty(&self, shard: &Shard, wakes: u64) {
        let mut empty = lock(&self.shards.empty);
        if empty.wakes == wakes {
            empty.since.insert(shard.clone(), Instant::now());
        }
    }
}
