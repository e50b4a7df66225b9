//! The worker pool: fetches jobs into this process's in-flight list, runs at most
//! `WORKER_CONCURRENCY` at once, keeps the process's heartbeat, and drains on shutdown.
//!
//! Shutdown, as Sidekiq does it: stop fetching at once; let running jobs finish until the drain
//! deadline; then stop them and put them back at the front of their queues (not a failure); then
//! release whatever is still in flight and deregister. It is worse to lose a job than to run it twice.

mod backoff;
mod fetch_pace;
mod heartbeat;
mod outcome;
mod priority;
mod queue_policy;
mod runner;
mod running;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use backoff::{Backoff, Doubling};
pub use priority::{JOB_THREAD_NICE, lower_job_thread_priority};
pub use queue_policy::QueuePolicy;
pub use running::{JobStop, RunningJobs, StopReason};

use crate::jobs::Registry;
use crate::limiter::SharedLimits;
use crate::queue::{Fetched, Queue, QueueError, QueueEvent};
use crate::shutdown::Shutdown;
use crate::telemetry::Outage;
use fetch_pace::{GATHER_SLOTS, behind_a_backlog, gather_slots};

/// The pool's settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Jobs at once.
    pub concurrency: usize,
    /// Which queues, in which order.
    pub queues: QueuePolicy,
    /// Default time limit of one attempt.
    pub job_timeout: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// More for the heartbeat to say about this process (dyno, host, role, started_at), which
    /// `GET /processes` shows.
    pub describe: serde_json::Map<String, serde_json::Value>,
    /// How long an idle fetcher waits before looking again when no wake-up arrives
    /// (`WORKER_POLL_INTERVAL`): wake-ups make it matter only when a hint is lost.
    pub idle_poll: Duration,
    /// Whether a job's start gets its own `info` line (`JOB_LOG=all`); otherwise it is `debug`
    /// and a successful job costs one line, `job.finished`.
    pub log_started: bool,
}

/// What the pool's tasks share.
pub(crate) struct Worker {
    queue: Queue,
    registry: Arc<Registry>,
    settings: PoolSettings,
    process: String,
    running: RunningJobs,
    jobs_runtime: tokio::runtime::Handle,
    /// Set while this process's leases are void and not yet released (see `heartbeat`).
    fetch_paused: AtomicBool,
    /// Jobs this process's runners gave back to their queues (interrupted by the drain).
    requeued: AtomicU64,
    /// Shared rate and concurrency limits, checked before a job starts.
    limits: Arc<SharedLimits>,
    /// Ends an idle fetcher's wait: a queue got a job, or this process just registered.
    wake: Notify,
    /// Outcomes on their way to Redis. A runner gives its job slot back once the handler has
    /// returned and it holds one of these, so the next job is fetched while the outcome is
    /// written (with 50 slots a drain of no-op jobs otherwise spent most of each slot's time
    /// waiting for the ack's round trip); as many as there are slots, so what waits to be
    /// written stays bounded, and a drain waits for them all before it releases anything.
    writing: Arc<Semaphore>,
}

/// The worker pool of one process.
pub struct Pool {
    worker: Arc<Worker>,
}

impl Pool {
    /// A pool for `process` (a fresh id per boot), running handlers on `jobs_runtime`.
    pub fn new(
        queue: Queue,
        registry: Arc<Registry>,
        settings: PoolSettings,
        process: String,
        jobs_runtime: tokio::runtime::Handle,
    ) -> Pool {
        let limits = Arc::new(SharedLimits::new(
            queue.clone(),
            registry.clone(),
            process.clone(),
        ));
        let writing = Arc::new(Semaphore::new(settings.concurrency));
        Pool {
            worker: Arc::new(Worker {
                limits,
                queue,
                registry,
                settings,
                process,
                running: RunningJobs::default(),
                jobs_runtime,
                fetch_paused: AtomicBool::new(false),
                requeued: AtomicU64::new(0),
                wake: Notify::new(),
                writing,
            }),
        }
    }

    /// Works jobs until `shutdown`, then drains; returns when nothing is left in flight.
    pub async fn run(self, shutdown: Shutdown) {
        let worker = self.worker;
        let permits = Arc::new(Semaphore::new(worker.settings.concurrency));
        let heartbeat_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat::run(worker.clone(), heartbeat_stop.clone()));
        let events = worker.queue.subscribe(shutdown.clone());
        tokio::spawn(forward_events(worker.clone(), events));
        tokio::spawn(worker.limits.clone().watch_pauses(shutdown.clone()));
        tracing::info!(
            event = "worker.started",
            process = %worker.process,
            concurrency = worker.settings.concurrency,
            queues = %worker.settings.queues.names().join(",")
        );

        fetch_loop(&worker, &shutdown, &permits).await;
        drain(&worker, &shutdown, &permits).await;
        // The heartbeat stops before the release deregisters this process, so that it neither
        // registers it again nor mistakes the release for a reaper's.
        heartbeat_stop.cancel();
        if tokio::time::timeout(Duration::from_millis(300), heartbeat)
            .await
            .is_err()
        {
            tracing::warn!(event = "worker.heartbeat_stuck");
        }
        release(&worker, &shutdown).await;
    }
}

async fn forward_events(worker: Arc<Worker>, mut events: tokio::sync::mpsc::Receiver<QueueEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            QueueEvent::Ready(queue) => {
                // The queue's shard is worth a fetch again, even if it was just found empty.
                worker.queue.note_ready(&queue);
                worker.wake.notify_one();
            }
            QueueEvent::Resubscribed => {
                // Wake-ups may have been missed meanwhile.
                worker.queue.forget_empty();
                worker.wake.notify_one();
            }
            QueueEvent::Cancelled(id) => {
                if worker.running.stop(&id, StopReason::Cancelled) {
                    tracing::info!(event = "job.cancel_requested", job_id = %id);
                }
            }
        }
    }
}

/// Fetches while slots are free, never more jobs than free slots, until shutdown.
async fn fetch_loop(worker: &Arc<Worker>, shutdown: &Shutdown, permits: &Arc<Semaphore>) {
    let mut outage = Outage::new("worker.fetch_failed", "worker.fetch_recovered");
    let mut error_wait = Doubling::new(Duration::from_millis(200), Duration::from_secs(2));
    // When the last fetch came back with a job for every slot it had: the queues may hold more.
    let mut last_full: Option<tokio::time::Instant> = None;
    loop {
        let Some(Ok(first)) = shutdown
            .unless_stopped(permits.clone().acquire_owned())
            .await
        else {
            return;
        };
        let mut slots = vec![first];
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            slots.push(permit);
        }
        if behind_a_backlog(last_full, tokio::time::Instant::now()) {
            let enough = (worker.settings.concurrency / 2).max(1);
            let gathered = gather_slots(permits, &mut slots, enough, GATHER_SLOTS);
            if shutdown.unless_stopped(gathered).await.is_none() {
                return;
            }
        }
        if worker.fetch_paused.load(Ordering::SeqCst) {
            drop(slots);
            if !shutdown.sleep(Duration::from_millis(200)).await {
                return;
            }
            continue;
        }
        let fetched = fetch(worker, &mut slots).await;
        last_full =
            matches!(fetched, Ok(Fetch::Started { filled: true })).then(tokio::time::Instant::now);
        if matches!(fetched, Ok(Fetch::Started { .. } | Fetch::Empty)) && outage.recovered() {
            error_wait.reset();
        }
        let idle_wait = match fetched {
            Ok(Fetch::Started { .. }) => continue,
            Ok(Fetch::Empty) => worker.settings.idle_poll,
            Ok(Fetch::Unregistered) => Duration::from_millis(200),
            Err(e) => {
                outage.fail(&e);
                error_wait.next_wait()
            }
        };
        drop(slots);
        // A wake-up (a job was enqueued, this process registered) ends the wait early.
        let waited = tokio::time::timeout(idle_wait, worker.wake.notified());
        match shutdown.unless_stopped(waited).await {
            None => return,
            // A poll tick: every shard is tried again, whatever a wake-up said or did not.
            Some(Err(_)) => worker.queue.forget_empty(),
            Some(Ok(())) => {}
        }
    }
}

/// What one fetch did.
enum Fetch {
    /// Jobs came and their runners started: fetch again at once. `filled`: one came for every
    /// slot, so more may be waiting.
    Started { filled: bool },
    /// No queue had a job.
    Empty,
    /// This process is not registered yet (or was reaped): wait for the heartbeat.
    Unregistered,
}

/// Fetches at most one job per slot and starts a runner for each, handing it a slot.
async fn fetch(
    worker: &Arc<Worker>,
    slots: &mut Vec<OwnedSemaphorePermit>,
) -> Result<Fetch, QueueError> {
    let order = worker.settings.queues.fetch_order();
    // The fetch itself is not raced against shutdown: a job moved into the in-flight list is
    // either run here or released by the drain, never dropped halfway.
    match worker
        .queue
        .fetch(&worker.process, &order, slots.len())
        .await?
    {
        Fetched::Jobs(leases) if leases.is_empty() => Ok(Fetch::Empty),
        Fetched::Jobs(leases) | Fetched::More(leases) => {
            let filled = leases.len() >= slots.len();
            for (lease, permit) in leases.into_iter().zip(slots.drain(..)) {
                // The future is boxed: tokio moves a task's future by value as it spawns it and
                // again as it ends it, so a task of the future itself (1.2 KB) cost several
                // copies of it.
                tokio::spawn(Box::pin(runner::run(worker.clone(), lease, permit)));
            }
            Ok(Fetch::Started { filled })
        }
        Fetched::Unregistered => Ok(Fetch::Unregistered),
    }
}

/// Lets running jobs finish until the drain deadline, then interrupts them (their runners put
/// them back) and gives them until shortly before the exit deadline.
async fn drain(worker: &Worker, shutdown: &Shutdown, permits: &Semaphore) {
    let all = worker.settings.concurrency as u32;
    tracing::info!(
        event = "worker.draining",
        process = %worker.process,
        running = worker.running.len()
    );
    let finished = tokio::time::timeout_at(shutdown.drain_deadline(), permits.acquire_many(all))
        .await
        .is_ok();
    if !finished {
        let interrupted = worker.running.stop_all(StopReason::Interrupted);
        tracing::info!(event = "worker.interrupting", jobs = interrupted);
        let _ = tokio::time::timeout_at(shutdown.interrupted_deadline(), permits.acquire_many(all))
            .await;
    }
    // Every handler is done; their outcomes may still be on their way to Redis. A job released
    // before its outcome lands would run again.
    let _ = tokio::time::timeout_at(
        shutdown.interrupted_deadline(),
        worker.writing.acquire_many(all),
    )
    .await;
}

/// Puts back whatever this process still holds and deregisters it. The log line counts every
/// job given back during the drain: by its runner, or by this release.
async fn release(worker: &Worker, shutdown: &Shutdown) {
    let by_runners = worker.requeued.load(Ordering::Relaxed);
    if !worker.queue.redis().is_connected() {
        // Never connected, so nothing was fetched: there is nothing to put back.
        tracing::info!(event = "worker.stopped", process = %worker.process, requeued = by_runners);
        return;
    }
    let give_up = shutdown.release_deadline();
    loop {
        match tokio::time::timeout_at(give_up, worker.queue.release_process(&worker.process)).await
        {
            Ok(Ok(released)) => {
                let requeued = by_runners + released;
                tracing::info!(event = "worker.stopped", process = %worker.process, requeued);
                return;
            }
            Ok(Err(e)) if tokio::time::Instant::now() + Duration::from_millis(200) < give_up => {
                tracing::warn!(event = "worker.release_failed", error = %e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                tracing::error!(
                    event = "worker.release_failed",
                    process = %worker.process,
                    "could not reach Redis; another process will put this process's jobs back once its heartbeat expires"
                );
                return;
            }
        }
    }
}
