//! Loops every process runs, whatever its role: promoting due scheduled jobs and retries onto
//! their queues, and reaping the in-flight jobs of processes whose heartbeat expired.
//!
//! Each pass is one atomic script, so any number of processes may run them at once: a due job is
//! moved by whichever gets there first, exactly once.

use std::time::Duration;

use rand::Rng;

use crate::queue::{Queue, Stats};
use crate::shutdown::Shutdown;

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
    tokio::spawn(metrics_loop(queue, queues, shutdown));
}

/// Logs `event=metrics sample#queue.default.depth=12 ...` once a minute, for Heroku's
/// log-based metrics (l2met) and for anyone reading `heroku logs --tail`.
async fn metrics_loop(queue: Queue, queues: Vec<String>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(METRICS_INTERVAL) => {}
            _ = shutdown.requested() => return,
        }
        if let Ok(stats) = queue.stats(&queues).await {
            tracing::info!(event = "metrics", l2met = %l2met_samples(&stats));
        }
    }
}

fn l2met_samples(stats: &Stats) -> String {
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
    line
}

async fn promote_loop(queue: Queue, shutdown: Shutdown) {
    let mut failing = false;
    loop {
        let wait = match queue.promote_due().await {
            Ok((moved, next_due)) => {
                failing = false;
                if moved > 0 {
                    tracing::debug!(event = "scheduler.promoted", jobs = moved);
                }
                next_due
                    .unwrap_or(PROMOTE_MAX_WAIT)
                    .clamp(PROMOTE_MIN_WAIT, PROMOTE_MAX_WAIT)
            }
            Err(e) => {
                // Redis being away is already logged by the connection; say it once here.
                if !failing {
                    tracing::debug!(event = "scheduler.promote_failed", error = %e);
                    failing = true;
                }
                Duration::from_millis(250)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.requested() => return,
        }
    }
}

async fn reap_loop(queue: Queue, shutdown: Shutdown) {
    loop {
        let jitter = Duration::from_millis(rand::rng().random_range(0..1000));
        tokio::select! {
            _ = tokio::time::sleep(REAP_INTERVAL + jitter) => {}
            _ = shutdown.requested() => return,
        }
        match queue.reap_expired_processes().await {
            Ok(released) => {
                for (process, jobs) in released {
                    tracing::warn!(event = "reaper.released", process = %process, jobs);
                }
            }
            Err(e) => tracing::debug!(event = "reaper.failed", error = %e),
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
            }],
            scheduled: 4,
            retrying: 1,
            dead: 2,
            processes: 2,
        };
        assert_eq!(
            l2met_samples(&stats),
            "sample#queue.default.depth=12 sample#queue.default.latency=1.500s \
             sample#queue.default.running=3 sample#jobs.running=3 sample#jobs.scheduled=4 \
             sample#jobs.retrying=1 sample#jobs.dead=2 sample#processes=2"
        );
    }
}
