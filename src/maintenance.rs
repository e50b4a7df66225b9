//! Loops every process runs, whatever its role: promoting due scheduled jobs and retries onto
//! their queues, reaping the in-flight jobs of processes whose heartbeat expired, pruning queue
//! names nobody uses any more, and the metrics line (with a look at Redis's memory policy once
//! connected).
//!
//! Each pass is one atomic script, so any number of processes may run them at once: a due job is
//! moved by whichever gets there first, exactly once.

use std::time::Duration;

use rand::Rng;

use crate::queue::{Queue, RedisMemory};
use crate::shutdown::Shutdown;
use crate::telemetry::{Outage, l2met, metrics};

/// The longest a promoter sleeps, so a job scheduled meanwhile is promoted within about this long.
pub(crate) const PROMOTE_MAX_WAIT: Duration = Duration::from_millis(500);
const PROMOTE_MIN_WAIT: Duration = Duration::from_millis(10);
/// How often to look for dead processes (with up to a second of jitter so processes spread out).
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// The metrics line's settings.
#[derive(Debug, Clone)]
pub struct MetricsLine {
    /// How often it is logged (`METRICS_INTERVAL`).
    pub interval: Duration,
    /// Its `source=` (the dyno's name).
    pub source: String,
}

/// Starts the loops; they end at shutdown. `queues` are always included in the metric line.
pub fn spawn(queue: Queue, queues: Vec<String>, line: MetricsLine, shutdown: Shutdown) {
    tokio::spawn(promote_loop(queue.clone(), shutdown.clone()));
    tokio::spawn(reap_loop(queue.clone(), shutdown.clone()));
    tokio::spawn(check_memory_policy(queue.clone(), shutdown.clone()));
    tokio::spawn(metrics_loop(queue, queues, line, shutdown));
}

/// Once Redis answers, says whether its memory settings can lose jobs: with an evicting policy
/// Redis deletes keys when full (jobs would vanish); `noeviction` refuses writes instead, which
/// onedyno answers with 503 and a client can retry.
async fn check_memory_policy(queue: Queue, shutdown: Shutdown) {
    loop {
        match queue.memory().await {
            Ok(memory) => {
                log_memory_policy(&memory);
                return;
            }
            // Some managed Redis services refuse INFO: say so once and stop asking, rather
            // than asking every second for the life of the process.
            Err(e) if !e.is_transient() => {
                tracing::info!(event = "redis.memory_unknown", error = %e);
                return;
            }
            Err(_) => {
                if !shutdown.sleep(Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}

fn log_memory_policy(memory: &RedisMemory) {
    if memory.may_evict() {
        tracing::warn!(
            event = "redis.evicting_policy",
            policy = %memory.policy,
            max_bytes = memory.max_bytes,
            "Redis deletes keys when full, so jobs can vanish: set maxmemory-policy noeviction"
        );
    } else {
        tracing::info!(
            event = "redis.memory",
            policy = %memory.policy,
            used_bytes = memory.used_bytes,
            max_bytes = memory.max_bytes
        );
    }
}

/// Logs `event=metrics source=web.1 count#jobs.succeeded=... sample#queue.default.depth=12 ...`
/// every `line.interval`, for Heroku's log-based metrics (l2met) and for anyone reading
/// `heroku logs --tail` (see `telemetry::l2met`).
async fn metrics_loop(queue: Queue, queues: Vec<String>, line: MetricsLine, shutdown: Shutdown) {
    loop {
        if !shutdown.sleep(line.interval).await {
            return;
        }
        let stats = queue.stats(&queues).await.ok();
        let memory = match stats {
            Some(_) => queue.memory().await.ok(),
            None => None,
        };
        let (counts, durations) = metrics::take_window();
        let window = l2met::Window {
            source: &line.source,
            counts,
            durations,
            stats: stats.as_ref(),
            redis: memory.as_ref(),
            rss: metrics::resident_memory_bytes(),
        };
        tracing::info!(event = "metrics", l2met = %l2met::line(&window));
    }
}

async fn promote_loop(queue: Queue, shutdown: Shutdown) {
    // Redis being away is already logged by the connection; say it once here, at debug.
    let mut outage = Outage::quiet("scheduler.promote_failed");
    loop {
        let wait = match queue.promote_due().await {
            Ok((moved, next_due)) => {
                outage.recovered();
                if moved > 0 {
                    tracing::debug!(event = "scheduler.promoted", jobs = moved);
                }
                next_due
                    .unwrap_or(PROMOTE_MAX_WAIT)
                    .clamp(PROMOTE_MIN_WAIT, PROMOTE_MAX_WAIT)
            }
            Err(e) => {
                outage.fail(&e);
                Duration::from_millis(250)
            }
        };
        if !shutdown.sleep(wait).await {
            return;
        }
    }
}

async fn reap_loop(queue: Queue, shutdown: Shutdown) {
    loop {
        let jitter = Duration::from_millis(rand::rng().random_range(0..1000));
        if !shutdown.sleep(REAP_INTERVAL + jitter).await {
            return;
        }
        match queue.reap_expired_processes().await {
            Ok(released) => {
                for (process, jobs) in released {
                    tracing::warn!(event = "reaper.released", process = %process, jobs);
                }
            }
            Err(e) => tracing::debug!(event = "reaper.failed", error = %e),
        }
        match queue.prune_queue_names().await {
            Ok(0) => {}
            Ok(names) => tracing::debug!(event = "queues.pruned", names),
            Err(e) => tracing::debug!(event = "queues.prune_failed", error = %e),
        }
    }
}
