//! The runner: one attempt of one job, from start to a written outcome.
//!
//! The handler runs as its own task on the jobs runtime, so a panic is a failed attempt rather than
//! a dead worker, and a handler that hogs its thread cannot stall HTTP, heartbeats or this runner.
//! A timeout, a cancellation or the drain deadline fires the job's token, waits a short grace for
//! the handler to return, then aborts it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Worker;
use super::backoff::Doubling;
use super::running::{JobStop, StopReason};
use crate::jobs::{JobContext, KindError, Retry};
use crate::limiter::Gate;
use crate::queue::{
    DeferOutcome, ERROR_MAX_BYTES, FailOutcome, Lease, NextAttempt, QueueError, RESULT_MAX_BYTES,
    RequeueOutcome, json_within, truncate,
};
use crate::shutdown::unless_cancelled;
use crate::telemetry::panic_message;

/// How long a stopped handler may take to return before it is aborted.
const STOP_GRACE: Duration = Duration::from_millis(500);
/// The longest wait before a retry, whatever a handler asks: the same bound as a new job's
/// `delay`, which keeps due times representable.
const MAX_RETRY_DELAY: Duration = crate::queue::spec::MAX_DELAY;

/// How an attempt ended.
enum Outcome {
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

/// What was written for an attempt; logged as `status=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Succeeded,
    /// Failed, and will run again after this long.
    Retrying(Duration),
    Dead,
    Cancelled,
    /// Given back to the front of its queue, not counted as a failure.
    Requeued,
    /// The service throttled it: it waits this long, not counted as a failure.
    Throttled(Duration),
    /// The lease was void when the outcome arrived: nothing was written.
    LeaseLost,
}

impl Written {
    fn status(self) -> &'static str {
        match self {
            Written::Succeeded => "succeeded",
            Written::Retrying(_) => "retrying",
            Written::Dead => "dead",
            Written::Cancelled => "cancelled",
            Written::Requeued => "requeued",
            Written::Throttled(_) => "throttled",
            Written::LeaseLost => "lease_lost",
        }
    }
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

/// Writes the outcome, retrying while Redis is unreachable. An outcome that is never written
/// leaves the job in flight; the heartbeat puts it back (at least once, never lost).
async fn write_outcome(
    worker: &Worker,
    lease: &Lease,
    stop: &JobStop,
    outcome: Outcome,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_millis() as u64;
    // Decided once, so every try of the write asks for the same retry delay.
    let next = match &outcome {
        Outcome::Failed { retry, .. } => Some(next_attempt(worker, lease, *retry)),
        _ => None,
    };
    if let Outcome::Failed {
        retry: Retry::Throttled(pause),
        ..
    } = &outcome
    {
        // Boxed, as the failures in `write` are.
        let pause = (*pause).min(MAX_RETRY_DELAY);
        Box::pin(worker.limits.throttled(lease, pause)).await;
    }
    let mut wait = Doubling::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        if stop.reason() == Some(StopReason::LeaseLost) || matches!(outcome, Outcome::Abandon) {
            tracing::warn!(
                event = "job.abandoned",
                duration_ms,
                "lease lost; another process will run it"
            );
            return;
        }
        match write(lease, &outcome, next).await {
            Ok(written) => {
                if written == Written::Requeued {
                    worker.requeued.fetch_add(1, Ordering::Relaxed);
                }
                if let Written::Throttled(delay) = written {
                    worker.limits.nudge(delay);
                }
                log_finished(written, &outcome, duration_ms);
                crate::telemetry::metrics::job_finished(
                    &lease.job().queue,
                    &lease.job().kind,
                    written.status(),
                    elapsed,
                );
                return;
            }
            Err(e) if e.is_transient() => {
                let delay = wait.next_wait();
                tracing::warn!(
                    event = "job.outcome_unwritten",
                    retry_in_ms = delay.as_millis() as u64,
                    error = %e
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                tracing::error!(event = "job.outcome_unwritten", error = %e);
                return;
            }
        }
    }
}

fn log_finished(written: Written, outcome: &Outcome, duration_ms: u64) {
    let error = match outcome {
        Outcome::Failed { message, .. } => Some(message.as_str()),
        _ => None,
    };
    let retry_in_ms = match written {
        Written::Retrying(d) | Written::Throttled(d) => Some(d.as_millis() as u64),
        _ => None,
    };
    // A failed attempt is a warning, a dead job an error: what an alert on the log should see.
    match written {
        Written::Dead => tracing::error!(
            event = "job.finished",
            duration_ms,
            status = written.status(),
            error
        ),
        Written::Retrying(_) | Written::LeaseLost => tracing::warn!(
            event = "job.finished",
            duration_ms,
            status = written.status(),
            retry_in_ms,
            error
        ),
        _ => tracing::info!(
            event = "job.finished",
            duration_ms,
            status = written.status(),
            error
        ),
    }
}

/// When a failed job runs again, if ever.
fn next_attempt(worker: &Worker, lease: &Lease, retry: Retry) -> NextAttempt {
    match retry {
        Retry::Never => NextAttempt::Never,
        Retry::After(d) | Retry::Throttled(d) => NextAttempt::RetryAfter(d.min(MAX_RETRY_DELAY)),
        Retry::Backoff => NextAttempt::RetryAfter(
            worker
                .settings
                .backoff
                .delay(lease.job().failures + 1, &mut rand::rng())
                .min(MAX_RETRY_DELAY),
        ),
    }
}

/// One try at writing `outcome` through the lease.
async fn write(
    lease: &Lease,
    outcome: &Outcome,
    next: Option<NextAttempt>,
) -> Result<Written, QueueError> {
    match outcome {
        Outcome::Succeeded(value) => Ok(if lease.ack(value).await? {
            Written::Succeeded
        } else {
            Written::LeaseLost
        }),
        // Boxed: their futures are larger than an ack's, and every runner's future would carry
        // that size (a runner's whole future is moved when it is spawned, once per job).
        _ => Box::pin(write_other(lease, outcome, next)).await,
    }
}

/// [`write`] for an outcome other than success.
async fn write_other(
    lease: &Lease,
    outcome: &Outcome,
    next: Option<NextAttempt>,
) -> Result<Written, QueueError> {
    match (outcome, next) {
        // Not a failed attempt: the job waits out the pause, its failures untouched.
        (
            Outcome::Failed {
                retry: Retry::Throttled(_),
                ..
            },
            Some(NextAttempt::RetryAfter(delay)),
        ) => Ok(match lease.defer(delay, true).await? {
            DeferOutcome::Deferred => Written::Throttled(delay),
            DeferOutcome::Cancelled => Written::Cancelled,
            DeferOutcome::LeaseLost => Written::LeaseLost,
        }),
        (Outcome::Failed { message, .. }, Some(next)) => {
            Ok(match lease.fail(message, next).await? {
                FailOutcome::Retrying => Written::Retrying(match next {
                    NextAttempt::RetryAfter(d) => d,
                    NextAttempt::Never => Duration::ZERO,
                }),
                FailOutcome::Dead => Written::Dead,
                FailOutcome::Cancelled => Written::Cancelled,
                FailOutcome::LeaseLost => Written::LeaseLost,
            })
        }
        _ => Ok(match lease.requeue().await? {
            RequeueOutcome::Queued => Written::Requeued,
            RequeueOutcome::Cancelled => Written::Cancelled,
            RequeueOutcome::LeaseLost => Written::LeaseLost,
        }),
    }
}
