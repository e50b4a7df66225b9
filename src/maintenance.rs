//! Loops every process runs, whatever its role: promoting due scheduled jobs and retries onto
//! their queues, reaping the in-flight jobs of processes whose heartbeat expired, pruning queue
//! names nobody uses any more, and the metrics line (with a look at Redis's memory policy once
//! connected).
//!
//! Each pass is one atomic script, so any number of processes may run them at once: a due job is
//! moved by whichever gets there first, exactly once.

use std::time::Duration;

use rand::Rng;

use crate::queue::{Queue, RedisMemory, Stats};
use crate::shutdown::Shutdown;
use crate::telemetry::Outage;

/// The longest a promoter sleeps, so a job scheduled meanwhile is promoted within about this long.
const PROMOTE_MAX_WAIT: Duration = Duration::from_millis(500);
const PROMOTE_MIN_WAIT: Duration = Duration::from_millis(10);
/// How often to look for dead processes (with up to a second of jitter so processes spread out).
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// How often the l2met metric line is logged.
const METRICS_INTERVAL: Duration = Duration::from_secs(60);

/// Starts the loops; they end at shutdown. `queues` are always included in the metric line.
pub fn spawn(queue: Queue, queues: Vec<String>, shutdown: Shutdown) {
    tokio::spawn(promote_loop(queue.clone(), shutdown.clone()));
    tokio::spawn(reap_loop(queue.clone(), shutdown.clone()));
    tokio::spawn(check_memory_policy(queue.clone(), shutdown.clone()));
    tokio::spawn(metrics_loop(queue, queues, shutdown));
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

/// Logs `event=metrics sample#queue.default.depth=12 ...` once a minute, for Heroku's
/// log-based metrics (l2met) and for anyone reading `heroku logs --tail`.
async fn metrics_loop(queue: Queue, queues: Vec<String>, shutdown: Shutdown) {
    loop {
        if !shutdown.sleep(METRICS_INTERVAL).await {
            return;
        }
        if let Ok(stats) = queue.stats(&queues).await {
            let memory = queue.memory().await.ok();
            tracing::info!(event = "metrics", l2met = %l2met_samples(&stats, memory.as_ref()));
        }
    }
}

/// Bounded however many queues exist: `stats` lists at most `QUEUES_LISTED` of them.
fn l2met_samples(stats: &Stats, memory: Option<&RedisMemory>) -> String {
    let mut line = String::new();
    let mut running = 0;
    for q in &stats.queues {
        running += q.running;
        line.push_str(&format!(
            "sample#queue.{0}.depth={1} sample#queue.{0}.latency={2:.3}s sample#queue.{0}.running={3} ",
            q.name, q.depth, q.latency, q.running
        ));
    }
    line.push_str(&format!(
        "sample#jobs.running={running} sample#jobs.scheduled={} sample#jobs.retrying={} sample#jobs.dead={} sample#processes={}",
        stats.scheduled, stats.retrying, stats.dead, stats.processes
    ));
    if stats.queues_omitted > 0 {
        line.push_str(&format!(" sample#queues.omitted={}", stats.queues_omitted));
    }
    if let Some(m) = memory {
        line.push_str(&format!(" sample#redis.memory={}bytes", m.used_bytes));
        if m.max_bytes > 0 {
            line.push_str(&format!(" sample#redis.memory_max={}bytes", m.max_bytes));
        }
    }
    line
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueStats;

    #[test]
    fn metrics_follow_the_l2met_convention() {
        let stats = Stats {
            queues: vec![QueueStats {
                name: "default".into(),
                depth: 12,
                latency: 1.5,
                running: 3,
                served: true,
            }],
            scheduled: 4,
            retrying: 1,
            dead: 2,
            processes: 2,
            queues_omitted: 0,
            running: 3,
        };
        assert_eq!(
            l2met_samples(&stats, None),
            "sample#queue.default.depth=12 sample#queue.default.latency=1.500s \
             sample#queue.default.running=3 sample#jobs.running=3 sample#jobs.scheduled=4 \
             sample#jobs.retrying=1 sample#jobs.dead=2 sample#processes=2"
        );
        let memory = RedisMemory {
            used_bytes: 1000,
            max_bytes: 25_000_000,
            policy: "noeviction".into(),
        };
        let stats = Stats {
            queues_omitted: 7,
            ..stats
        };
        assert!(l2met_samples(&stats, Some(&memory)).ends_with(
            "sample#processes=2 sample#queues.omitted=7 sample#redis.memory=1000bytes \
             sample#redis.memory_max=25000000bytes"
        ));
    }
}
