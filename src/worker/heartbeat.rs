//! The heartbeat: this process's registration, renewed well before it expires.
//!
//! The heartbeat key's expiry is how other processes learn this one is gone. If this process
//! cannot renew it for most of its lifetime, others may already be running its jobs again, so it
//! stops them here: two live processes must never run the same job at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::running::StopReason;

/// How often the heartbeat is renewed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a heartbeat lives: a killed process's jobs are released by the next reaper pass after this.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// How soon to try again after a failed renewal.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// When this long has passed without a renewal, the leases are treated as lost.
const LEASE_SAFETY: Duration = Duration::from_secs(12);

pub(super) async fn run(worker: Arc<Worker>, stop: CancellationToken) {
    let info = json!({
        "process": worker.process,
        "concurrency": worker.settings.concurrency,
        "queues": worker.settings.queues.names(),
        "pid": std::process::id(),
    });
    let mut registered = false;
    let mut last_renewal = Instant::now();
    let mut leases_void = false;
    let mut failing = false;
    loop {
        if leases_void {
            // The stopped jobs still sit in this process's in-flight list under void leases: put
            // them back and start over with a fresh registration. Fetching stays paused until then.
            match worker.queue.release_process(&worker.process).await {
                Ok(requeued) => {
                    tracing::info!(event = "worker.released", process = %worker.process, requeued);
                    leases_void = false;
                    registered = false;
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
        let wait = match worker
            .queue
            .heartbeat(&worker.process, HEARTBEAT_TTL, &info, registered)
            .await
        {
            Ok(beat) if beat.reaped => {
                let stopped = worker.running.stop_all(StopReason::LeaseLost);
                tracing::warn!(event = "worker.reaped", process = %worker.process, stopped);
                registered = false;
                RETRY_INTERVAL
            }
            Ok(beat) => {
                if !registered {
                    tracing::info!(event = "worker.registered", process = %worker.process);
                }
                for id in beat.cancelled {
                    if worker.running.stop(&id, StopReason::Cancelled) {
                        tracing::info!(event = "job.cancel_requested", job_id = %id);
                    }
                }
                if failing {
                    tracing::info!(event = "worker.heartbeat_recovered");
                    failing = false;
                }
                registered = true;
                last_renewal = Instant::now();
                HEARTBEAT_INTERVAL
            }
            Err(e) => {
                // Once per outage: the connection task already logs every reconnection attempt.
                if !failing {
                    tracing::warn!(event = "worker.heartbeat_failed", error = %e);
                    failing = true;
                }
                if registered && !leases_void && last_renewal.elapsed() > LEASE_SAFETY {
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
