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

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::running::StopReason;
use crate::queue::{Beat, HeldJob, QueueError, Registration, RequeueOutcome};
use crate::shutdown::{sleep_unless, unless_cancelled};
use crate::telemetry::Outage;

/// How often the heartbeat is renewed.
pub(super) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a heartbeat lives: a killed process's jobs are released by the next reaper pass after this.
pub(super) const HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// How soon to try again after a failed renewal.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// When this long has passed since the last renewal was sent, the leases are treated as lost.
const LEASE_SAFETY: Duration = Duration::from_secs(12);

/// Keeps the heartbeat until `stop`.
pub(super) async fn run(worker: Arc<Worker>, stop: CancellationToken) {
    let mut heartbeat = Heartbeat::new(worker);
    loop {
        if heartbeat.leases_void {
            match unless_cancelled(&stop, heartbeat.release_void_leases()).await {
                None => return,
                Some(true) => {}
                Some(false) => {
                    if !sleep_unless(&stop, RETRY_INTERVAL).await {
                        return;
                    }
                    continue;
                }
            }
        }
        if !heartbeat.registered {
            // Register the moment Redis answers, not at the next retry: the fetcher waits for it.
            let connected = heartbeat.worker.queue.redis().connected();
            if unless_cancelled(&stop, connected).await.is_none() {
                return;
            }
        }
        let sent = Instant::now();
        let Some(beat) = unless_cancelled(&stop, heartbeat.beat()).await else {
            return;
        };
        let wait = heartbeat.handle(beat, sent).await;
        if !sleep_unless(&stop, wait).await {
            return;
        }
    }
}

/// The heartbeat's state between beats.
struct Heartbeat {
    worker: Arc<Worker>,
    /// What the heartbeat key says about this process.
    info: Value,
    registered: bool,
    /// When the last successful renewal was sent: its TTL runs from about then.
    last_renewal: Instant,
    /// The running jobs were stopped because the registration may have expired; their leases
    /// still sit in the in-flight list and fetching is paused until they are released.
    leases_void: bool,
    outage: Outage,
    /// Held jobs no runner here owned at the previous beat.
    unowned_before: HashSet<(String, String)>,
}

impl Heartbeat {
    fn new(worker: Arc<Worker>) -> Heartbeat {
        let mut info = json!({
            "process": worker.process,
            "concurrency": worker.settings.concurrency,
            "queues": worker.settings.queues.names(),
            "pid": std::process::id(),
            "heartbeat_ttl_ms": HEARTBEAT_TTL.as_millis() as u64,
        });
        if let Some(fields) = info.as_object_mut() {
            fields.extend(worker.settings.describe.clone());
        }
        Heartbeat {
            worker,
            info,
            registered: false,
            last_renewal: Instant::now(),
            leases_void: false,
            outage: Outage::new("worker.heartbeat_failed", "worker.heartbeat_recovered"),
            unowned_before: HashSet::new(),
        }
    }

    /// Puts back the jobs stopped under void leases, so that a fresh registration starts clean
    /// and fetching resumes. Returns false when Redis did not take it (try again later).
    async fn release_void_leases(&mut self) -> bool {
        let worker = &self.worker;
        match worker.queue.release_process(&worker.process).await {
            Ok(requeued) => {
                tracing::info!(event = "worker.released", process = %worker.process, requeued);
                self.leases_void = false;
                self.registered = false;
                self.unowned_before.clear();
                worker.fetch_paused.store(false, Ordering::SeqCst);
                true
            }
            Err(e) => {
                tracing::warn!(event = "worker.release_failed", error = %e);
                false
            }
        }
    }

    /// One renewal, raced against the lease deadline while registered (`None` if the deadline
    /// came first).
    async fn beat(&self) -> Option<Result<Beat, QueueError>> {
        let worker = &self.worker;
        let registration = if self.registered {
            Registration::Renewal
        } else {
            Registration::First
        };
        let renewal =
            worker
                .queue
                .heartbeat(&worker.process, HEARTBEAT_TTL, &self.info, registration);
        if !self.registered {
            return Some(renewal.await);
        }
        tokio::time::timeout_at(self.last_renewal + LEASE_SAFETY, renewal)
            .await
            .ok()
    }

    /// Acts on what a beat sent at `sent` learned; returns how long to wait for the next one.
    async fn handle(&mut self, beat: Option<Result<Beat, QueueError>>, sent: Instant) -> Duration {
        match beat {
            Some(Ok(beat)) if beat.reaped => {
                let stopped = self.worker.running.stop_all(StopReason::LeaseLost);
                tracing::warn!(event = "worker.reaped", process = %self.worker.process, stopped);
                self.registered = false;
                self.unowned_before.clear();
                RETRY_INTERVAL
            }
            Some(Ok(beat)) => {
                self.renewed(beat, sent).await;
                HEARTBEAT_INTERVAL
            }
            Some(Err(e)) => {
                self.outage.fail(&e);
                self.void_leases_if_expired();
                RETRY_INTERVAL
            }
            None => {
                self.void_leases_if_expired();
                RETRY_INTERVAL
            }
        }
    }

    async fn renewed(&mut self, beat: Beat, sent: Instant) {
        let worker = &self.worker;
        if !self.registered {
            tracing::info!(event = "worker.registered", process = %worker.process);
            // The fetcher may be waiting out an `Unregistered` reply: a full queue starts now.
            worker.wake.notify_one();
        }
        self.outage.recovered();
        self.registered = true;
        self.last_renewal = sent;
        for id in beat.cancelled {
            if worker.running.stop(&id, StopReason::Cancelled) {
                tracing::info!(event = "job.cancel_requested", job_id = %id);
            }
        }
        self.unowned_before = put_back_unowned(worker, beat.held, &self.unowned_before).await;
    }

    /// Once the registration may have expired, others may run this process's jobs: stop them
    /// and fetch nothing until they are released.
    fn void_leases_if_expired(&mut self) {
        if self.registered && Instant::now() >= self.last_renewal + LEASE_SAFETY {
            self.worker.fetch_paused.store(true, Ordering::SeqCst);
            let stopped = self.worker.running.stop_all(StopReason::LeaseLost);
            tracing::warn!(event = "worker.leases_lost", stopped);
            self.leases_void = true;
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
