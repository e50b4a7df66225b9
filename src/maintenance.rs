//! Loops every process runs, whatever its role: promoting due scheduled jobs and retries onto
//! their queues, and reaping the in-flight jobs of processes whose heartbeat expired.
//!
//! Each pass is one atomic script, so any number of processes may run them at once: a due job is
//! moved by whichever gets there first, exactly once.

use std::time::Duration;

use rand::Rng;

use crate::queue::Queue;
use crate::shutdown::Shutdown;

/// The longest a promoter sleeps, so a job scheduled meanwhile is promoted within about this long.
const PROMOTE_MAX_WAIT: Duration = Duration::from_millis(500);
const PROMOTE_MIN_WAIT: Duration = Duration::from_millis(10);
/// How often to look for dead processes (with up to a second of jitter so processes spread out).
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Starts both loops; they end at shutdown.
pub fn spawn(queue: Queue, shutdown: Shutdown) {
    tokio::spawn(promote_loop(queue.clone(), shutdown.clone()));
    tokio::spawn(reap_loop(queue, shutdown));
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
                Duration::from_secs(1)
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
