//! The heartbeat: this process's registration, renewed well before it expires, and the
//! housekeeping that rides on it.
//!
//! The heartbeat key's expiry is how other processes learn this one is gone. If this process
//! cannot renew it for most of its lifetime, others may already be running its jobs again, so it
//! stops them here: two live processes must never run the same job at once. The deadline is
//! raced against the renewal itself, so a renewal that hangs cannot postpone it.
//!
//! Each beat also reports the jobs this process holds in Redis. One held under a lease no runner
//! here owns (a fetch whose reply was lost, a runner that could not write its outcome) is put
//! back once two beats in a row have seen it, so it cannot sit in flight until the next restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::running::StopReason;
use crate::queue::{HeldJob, Registration, RequeueOutcome};

/// How often the heartbeat is renewed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a heartbeat lives: a killed process's jobs are released by the next reaper pass after this.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// How soon to try again after a failed renewal.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// When this long has passed since the last renewal was sent, the leases are treated as lost.
const LEASE_SAFETY: Duration = Duration::from_secs(12);

pub(super) async fn run(worker: Arc<Worker>, stop: CancellationToken) {
    let info = json!({
        "process": worker.process,
        "concurrency": worker.settings.concurrency,
        "queues": worker.settings.queues.names(),
        "pid": std::process::id(),
    });
    let mut registered = false;
    // When the last successful renewal was sent: its TTL runs from about then.
    let mut last_renewal = Instant::now();
    let mut leases_void = false;
    let mut failing = false;
    let mut unowned_before: HashSet<(String, String)> = HashSet::new();
    loop {
        if leases_void {
            // The stopped jobs still sit in this process's in-flight list under void leases: put
            // them back and start over with a fresh registration. Fetching stays paused until then.
            let released = tokio::select! {
                r = worker.queue.release_process(&worker.process) => r,
                _ = stop.cancelled() => return,
            };
            match released {
                Ok(requeued) => {
                    tracing::info!(event = "worker.released", process = %worker.process, requeued);
                    leases_void = false;
                    registered = false;
                    unowned_before.clear();
                    worker.fetch_paused.store(false, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(event = "worker.release_failed", error = %e);
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_INTERVAL) => continue,
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
        let lease_deadline = last_renewal + LEASE_SAFETY;
        let sent = Instant::now();
        let registration = if registered {
            Registration::Renewal
        } else {
            Registration::First
        };
        let beat = tokio::select! {
            r = worker.queue.heartbeat(&worker.process, HEARTBEAT_TTL, &info, registration) => Some(r),
            _ = tokio::time::sleep_until(lease_deadline), if registered => None,
            _ = stop.cancelled() => return,
        };
        let wait = match beat {
            Some(Ok(beat)) if beat.reaped => {
                let stopped = worker.running.stop_all(StopReason::LeaseLost);
                tracing::warn!(event = "worker.reaped", process = %worker.process, stopped);
                registered = false;
                unowned_before.clear();
                RETRY_INTERVAL
            }
            Some(Ok(beat)) => {
                if !registered {
                    tracing::info!(event = "worker.registered", process = %worker.process);
                }
                if failing {
                    tracing::info!(event = "worker.heartbeat_recovered");
                    failing = false;
                }
                registered = true;
                last_renewal = sent;
                for id in beat.cancelled {
                    if worker.running.stop(&id, StopReason::Cancelled) {
                        tracing::info!(event = "job.cancel_requested", job_id = %id);
                    }
                }
                unowned_before = put_back_unowned(&worker, beat.held, &unowned_before).await;
                HEARTBEAT_INTERVAL
            }
            failed => {
                if let Some(Err(e)) = failed {
                    // Once per outage: the connection task already logs every reconnection attempt.
                    if !failing {
                        tracing::warn!(event = "worker.heartbeat_failed", error = %e);
                        failing = true;
                    }
                }
                if registered && Instant::now() >= lease_deadline {
                    worker.fetch_paused.store(true, Ordering::SeqCst);
                    let stopped = worker.running.stop_all(StopReason::LeaseLost);
                    tracing::warn!(event = "worker.leases_lost", stopped);
                    leases_void = true;
                }
                RETRY_INTERVAL
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Puts back the jobs held in Redis under a lease no runner here owns, if the previous beat saw
/// them too; returns those seen unowned for the first time.
async fn put_back_unowned(
    worker: &Worker,
    held: Vec<HeldJob>,
    unowned_before: &HashSet<(String, String)>,
) -> HashSet<(String, String)> {
    let mut unowned_now = HashSet::new();
    for HeldJob { id, lease } in held {
        if worker.running.holds(&id, &lease) {
            continue;
        }
        let entry = (id, lease);
        if !unowned_before.contains(&entry) {
            unowned_now.insert(entry);
            continue;
        }
        let (id, lease) = entry;
        match worker
            .queue
            .requeue_held(&worker.process, &id, &lease)
            .await
        {
            Ok(RequeueOutcome::LeaseLost) => {}
            Ok(outcome) => {
                tracing::warn!(event = "job.unowned_requeued", job_id = %id, outcome = ?outcome);
            }
            Err(e) => {
                tracing::warn!(event = "job.unowned_requeue_failed", job_id = %id, error = %e)
            }
        }
    }
    unowned_now
}
