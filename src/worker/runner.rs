//! The runner: one attempt of one job, from start to a written outcome.
//!
//! The handler runs as its own task on the jobs runtime, so a panic is a failed attempt rather than
//! a dead worker, and a handler that hogs its thread cannot stall HTTP, heartbeats or this runner.
//! A timeout, a cancellation or the drain deadline fires the job's token, waits a short grace for
//! the handler to return, then aborts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Worker;
use super::outcome::write_outcome;
use super::running::{JobStop, StopReason};
use crate::jobs::{JobContext, KindError, Retry};
use crate::limiter::Gate;
use crate::queue::{ERROR_MAX_BYTES, Lease, RESULT_MAX_BYTES, json_within, truncate};
use crate::shutdown::unless_cancelled;
use crate::telemetry::panic_message;

/// How long a stopped handler may take to return before it is aborted.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// How an attempt ended.
pub(super) enum Outcome {
    /// The handler's result, as the JSON text to store.
    Succeeded(String),
    Failed {
        message: String,
        retry: Retry,
    },
    /// Give the job back untouched (drain deadline), or finish a cancelled one.
    Release,
    /// The lease is void; write nothing.
    Abandon,
}

/// Runs `lease`'s job and writes its outcome. The job's slot (`permit`) is held until the
/// handler is done, and a place among the outcomes being written from then until the outcome is
/// written. Everything the attempt logs, the handler included, is inside its `job` span.
pub(super) async fn run(worker: Arc<Worker>, lease: Arc<Lease>, permit: OwnedSemaphorePermit) {
    let mut permit = Some(permit);
    let job = lease.job();
    // Strings as `&str`, not `%`: recorded as they are rather than through `fmt`, which was 7%
    // of the instructions of the thread that runs the runners (callgrind, a drain).
    let span = tracing::info_span!(
        "job",
        job_id = job.id.as_str(),
        kind = job.kind.as_str(),
        queue = job.queue.as_str(),
        attempt = job.attempts
    );
    async {
        let stop = worker.running.insert(&job.id, lease.token());
        // Shared limits first: a job that may not start yet waits in Redis, not in this slot.
        if let Gate::Start(held) = worker
            .limits
            .gate(&lease, hold(&worker, &lease), stop.token())
            .await
        {
            let started = Instant::now();
            if worker.settings.log_started {
                tracing::info!(event = "job.started");
            } else {
                tracing::debug!(event = "job.started");
            }
            let outcome = bounded(attempt(&worker, &lease, &stop).await);
            // The handler is done: its slot goes back for the next job as soon as the outcome
            // has a place among those being written (see `Worker::writing`). A job holding a
            // shared concurrency limit keeps its slot until the limit is given back, or the next
            // job of that limit would be fetched only to find it taken.
            let writing = if held.holds_any() {
                None
            } else {
                let writing = worker.writing.clone().acquire_owned().await;
                drop(permit.take());
                Some(writing)
            };
            write_outcome(&worker, &lease, &stop, outcome, started).await;
            worker.limits.release(held).await;
            drop(writing);
        }
        worker.running.remove(&job.id, &stop);
    }
    .instrument(span)
    .await;
    drop(permit);
}

/// How long a job's limit slots live at most: past its timeout and grace it cannot be running.
fn hold(worker: &Worker, lease: &Lease) -> Duration {
    let timeout = lease.job().timeout.unwrap_or(worker.settings.job_timeout);
    timeout + STOP_GRACE + Duration::from_secs(30)
}

async fn attempt(worker: &Worker, lease: &Arc<Lease>, stop: &JobStop) -> Outcome {
    let job = lease.job();
    let ctx = JobContext::new(lease.clone(), stop.token().clone())
        .with_limits(worker.limits.clone(), hold(worker, lease));
    let future = match worker.registry.start(&job.kind, job.args.clone(), ctx) {
        Ok(future) => future,
        // Another release of the app may know this kind (a deploy in progress): retry later.
        Err(e @ KindError::Unknown(_)) => {
            return Outcome::Failed {
                message: e.to_string(),
                retry: Retry::Backoff,
            };
        }
        Err(e @ KindError::InvalidArgs { .. }) => {
            return Outcome::Failed {
                message: e.to_string(),
                retry: Retry::Never,
            };
        }
    };
    let timeout = job.timeout.unwrap_or(worker.settings.job_timeout);
    let mut handle = worker
        .jobs_runtime
        .spawn(future.instrument(tracing::Span::current()));
    let joined =
        match unless_cancelled(stop.token(), tokio::time::timeout(timeout, &mut handle)).await {
            Some(Ok(joined)) => Some(joined),
            Some(Err(_elapsed)) => {
                stop.stop(StopReason::TimedOut);
                None
            }
            None => None,
        };
    let reason = stop.reason();
    let joined = match (joined, reason) {
        (Some(joined), _) => Some(joined),
        (None, Some(StopReason::LeaseLost)) => None,
        (None, _) => tokio::time::timeout(STOP_GRACE, &mut handle).await.ok(),
    };
    handle.abort();
    // A handler that returned a value succeeded, whenever it was told to stop; one that failed
    // or did not return after being told to stop ended because of that, not on its own.
    match (joined, reason) {
        (Some(Ok(Ok(value))), _) => return succeeded(value),
        (Some(joined), None) => return joined_outcome(joined),
        _ => {}
    }
    match reason {
        Some(StopReason::TimedOut) => Outcome::Failed {
            message: format!("timed out after {}s", timeout.as_secs_f64()),
            retry: Retry::Backoff,
        },
        Some(StopReason::LeaseLost) => Outcome::Abandon,
        Some(StopReason::Cancelled | StopReason::Interrupted) | None => Outcome::Release,
    }
}

/// The handler's result becomes JSON text within [`RESULT_MAX_BYTES`], and its error message is
/// cut to [`ERROR_MAX_BYTES`] (what is stored is what is logged). A result over the limit fails
/// the attempt for good: running it again would produce the same.
fn bounded(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Failed { message, retry } if message.len() > ERROR_MAX_BYTES => Outcome::Failed {
            message: truncate(&message, ERROR_MAX_BYTES).into_owned(),
            retry,
        },
        other => other,
    }
}

fn succeeded(value: Value) -> Outcome {
    match json_within("result", &value, RESULT_MAX_BYTES) {
        Ok(text) => Outcome::Succeeded(text),
        Err(too_large) => Outcome::Failed {
            message: format!("{too_large}; store large results elsewhere and return a reference"),
            retry: Retry::Never,
        },
    }
}

fn joined_outcome(
    joined: Result<Result<Value, crate::jobs::JobError>, tokio::task::JoinError>,
) -> Outcome {
    match joined {
        Ok(Ok(value)) => succeeded(value),
        Ok(Err(e)) => Outcome::Failed {
            message: e.message().to_string(),
            retry: e.retry(),
        },
        Err(e) if e.is_panic() => Outcome::Failed {
            message: format!("panicked: {}", panic_message(e.into_panic().as_ref())),
            retry: Retry::Backoff,
        },
        Err(_) => Outcome::Release,
    }
}
