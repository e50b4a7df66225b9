//! Writing an attempt's outcome: the ack, failure, deferral or requeue under the job's lease,
//! retried while Redis is unreachable, then the attempt's `job.finished` line and its metrics.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Worker;
use super::backoff::Doubling;
use super::runner::Outcome;
use super::running::{JobStop, StopReason};
use crate::jobs::Retry;
use crate::queue::{DeferOutcome, FailOutcome, Lease, NextAttempt, QueueError, RequeueOutcome};

/// The longest wait before a retry, whatever a handler asks: the same bound as a new job's
/// `delay`, which keeps due times representable.
const MAX_RETRY_DELAY: Duration = crate::queue::spec::MAX_DELAY;

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

/// Writes the outcome, retrying while Redis is unreachable. An outcome that is never written
/// leaves the job in flight; the heartbeat puts it back (at least once, never lost).
pub(super) async fn write_outcome(
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
