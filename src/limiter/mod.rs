//! Shared limits at work: rate and concurrency limits that hold across every process on the
//! same Redis, and pauses a throttling service asks for.
//!
//! A job counts against `kind:<kind>` and its handler's key (`http:<host>`). Before it starts,
//! the runner asks [`gate`]: keys with no limit declared and no pause known here cost nothing
//! (no Redis call); the others are decided at once by one script, which takes all of them or
//! none. A job refused goes back to the scheduled set to wait, holding no worker and spending
//! no attempt, and a nudge promotes it when its wait is over. Handlers that make many calls in
//! one job wait on a named [`Limiter`] (see [`crate::JobContext::limiter`]).
//!
//! Pauses are learned from Redis every [`PAUSE_POLL`] (and at once in the process that sets
//! one), so a pause set elsewhere reaches this process's jobs within about that long.

mod gate;
mod handle;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use gate::{Gate, Held};
pub use handle::{LimitPermit, Limiter};
pub use status::{LimitStatus, status};

use crate::config::Limit;
use crate::jobs::Registry;
use crate::queue::{LimitCheck, Queue, QueueError};
use crate::shutdown::Shutdown;

/// How often each process reads the pauses in force.
pub const PAUSE_POLL: Duration = Duration::from_secs(1);

/// One process's view of the shared limits: the declared ones (from the registry, `LIMITS`
/// included) and the pauses in force.
pub struct SharedLimits {
    queue: Queue,
    registry: Arc<Registry>,
    process: String,
    /// Pauses by key, as local deadlines.
    pauses: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("limits", self.registry.limits())
            .field("process", &self.process)
            .finish()
    }
}

impl SharedLimits {
    /// The limits `registry` declares, enforced in `queue`'s Redis on behalf of `process`.
    pub fn new(queue: Queue, registry: Arc<Registry>, process: String) -> SharedLimits {
        SharedLimits {
            queue,
            registry,
            process,
            pauses: Mutex::new(HashMap::new()),
        }
    }

    /// The registry the limits and the jobs' keys come from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The checks `keys` need: those with a limit declared or a pause known here.
    pub fn checks(&self, keys: &[String]) -> Vec<LimitCheck> {
        let pauses = self.lock_pauses();
        let now = Instant::now();
        let limits = self.registry.limits();
        keys.iter()
            .filter_map(|key| {
                let paused = pauses.get(key).is_some_and(|until| *until > now);
                match limits.get(key) {
                    Some(limit) => Some(check(key, limit)),
                    None if paused => Some(check(key, &Limit::default())),
                    None => None,
                }
            })
            .collect()
    }

    /// Pauses `keys` for every process for `pause`, and here at once.
    pub async fn pause(&self, keys: &[String], pause: Duration) -> Result<(), QueueError> {
        self.queue.limit_pause(keys, pause).await?;
        let until = Instant::now() + pause;
        let mut pauses = self.lock_pauses();
        for key in keys {
            let entry = pauses.entry(key.clone()).or_insert(until);
            *entry = (*entry).max(until);
        }
        Ok(())
    }

    /// Reads the pauses in force from Redis every [`PAUSE_POLL`] until `shutdown`.
    pub async fn watch_pauses(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            if let Ok(state) = self.queue.limit_state(&[]).await {
                let now = Instant::now();
                let fresh = state.pauses.into_iter().map(|(key, until_ms)| {
                    let left = u64::try_from(until_ms - state.now_ms).unwrap_or(0);
                    (key, now + Duration::from_millis(left))
                });
                *self.lock_pauses() = fresh.collect();
            }
            if !shutdown.sleep(PAUSE_POLL).await {
                return;
            }
        }
    }

    /// A limiter for work outside a job (a script, a loop of your own): its slots are held by
    /// `<process>|<owner>|<n>` and, like a job's, free themselves when this process's heartbeat
    /// is gone or `hold` is over. A process that runs no workers keeps no heartbeat, so its
    /// concurrency slots count only until the limit is full. Waits end when `cancel` fires.
    pub fn limiter(
        self: &Arc<Self>,
        key: &str,
        owner: &str,
        hold: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Limiter {
        Limiter::shared(key, cancel, self.clone(), owner, hold)
    }

    /// The holder name of job `id` in this process.
    fn holder(&self, id: &str) -> String {
        format!("{}|{id}", self.process)
    }

    fn lock_pauses(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.pauses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `limit` in the units `limit_acquire.lua` counts in.
fn check(key: &str, limit: &Limit) -> LimitCheck {
    LimitCheck {
        key: key.to_string(),
        interval_ms: limit
            .rate
            .map_or(0.0, |rate| rate.interval().as_secs_f64() * 1000.0),
        concurrency: limit.concurrency.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{RedisHandle, Retention};

    fn limits(declared: &[(&str, Limit)]) -> SharedLimits {
        let mut registry = Registry::new();
        for (key, limit) in declared {
            registry.limit(*key, *limit).unwrap();
        }
        let redis = RedisHandle::open("redis://127.0.0.1:1").unwrap();
        let retention = Retention {
            job: Duration::from_secs(1),
            job_max: 1,
            dead: Duration::from_secs(1),
            dead_max: 1,
        };
        let queue = Queue::new(redis, "t", retention);
        SharedLimits::new(queue, Arc::new(registry), "p".into())
    }

    #[test]
    fn only_keys_with_a_limit_or_a_pause_are_checked() {
        let shared = limits(&[
            ("kind:a", Limit::rate(5, Duration::from_secs(1))),
            ("http:h", Limit::concurrency(2)),
        ]);
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(shared.checks(&keys(&["kind:noop"])).is_empty());
        let checks = shared.checks(&keys(&["kind:a", "http:h", "http:other"]));
        assert_eq!(checks.len(), 2);
        assert_eq!((checks[0].interval_ms, checks[0].concurrency), (200.0, 0));
        assert_eq!((checks[1].interval_ms, checks[1].concurrency), (0.0, 2));
        shared
            .lock_pauses()
            .insert("http:other".into(), Instant::now() + Duration::from_secs(5));
        shared
            .lock_pauses()
            .insert("kind:noop".into(), Instant::now() - Duration::from_secs(1));
        let checks = shared.checks(&keys(&["kind:noop", "http:other"]));
        assert_eq!(checks.len(), 1, "an ended pause costs nothing");
        assert_eq!(checks[0].key, "http:other");
        assert_eq!((checks[0].interval_ms, checks[0].concurrency), (0.0, 0));
    }
}
