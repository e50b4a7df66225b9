//! `fail`: fails on purpose, to exercise retries and the dead set.
//!
//! `{"times": n}` fails the first n attempts, then succeeds; without `times` it always fails.
//! `message` sets the error; `permanent: true` asks not to be retried; `retry_after` (seconds)
//! asks for that delay instead of the backoff. `throttle` (seconds) makes the first attempt say
//! the service is throttling (like a 429 with `Retry-After`), pausing the kind's shared limit key
//! for every process, and the next attempt succeed.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Handler, JobContext, JobError};

/// Arguments of `fail`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FailArgs {
    /// Attempts that fail before one succeeds; none = every attempt fails.
    pub times: Option<u32>,
    /// The error message.
    pub message: Option<String>,
    /// Fail without retries.
    #[serde(default)]
    pub permanent: bool,
    /// Retry after this many seconds instead of the backoff.
    pub retry_after: Option<f64>,
    /// Throttled for this many seconds on the first attempt, then succeeds.
    pub throttle: Option<f64>,
}

/// Fails as told.
pub(super) struct Fail;

impl Handler for Fail {
    type Args = FailArgs;

    async fn run(&self, args: FailArgs, ctx: JobContext) -> Result<Value, JobError> {
        if let Some(pause) = args
            .throttle
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
        {
            if ctx.attempt() == 1 {
                return Err(JobError::throttled("throttled on purpose", pause));
            }
            return Ok(json!({ "succeeded_on_attempt": ctx.attempt() }));
        }
        if args.times.is_some_and(|n| ctx.attempt() > n) {
            return Ok(json!({ "succeeded_on_attempt": ctx.attempt() }));
        }
        let message = args
            .message
            .unwrap_or_else(|| format!("failed on purpose (attempt {})", ctx.attempt()));
        if args.permanent {
            return Err(JobError::permanent(message));
        }
        match args
            .retry_after
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
        {
            Some(delay) => Err(JobError::retry_after(message, delay)),
            None => Err(JobError::new(message)),
        }
    }
}
