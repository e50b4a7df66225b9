//! The `Handler` trait users implement, the context a job runs with, and its error type.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::JobContext;

/// A job kind: typed arguments in, a JSON result out; optionally, its own defaults.
///
/// ```
/// use onedyno::jobs::KindOptions;
/// use onedyno::{Handler, JobContext, JobError};
/// use serde::Deserialize;
/// use serde_json::{Value, json};
///
/// #[derive(Deserialize)]
/// pub struct WelcomeArgs { pub email: String }
///
/// pub struct Welcome;
///
/// impl Handler for Welcome {
///     type Args = WelcomeArgs;
///     fn options() -> KindOptions {
///         KindOptions { queue: Some("mail".into()), ..KindOptions::default() }
///     }
///     async fn run(&self, args: WelcomeArgs, ctx: JobContext) -> Result<Value, JobError> {
///         if ctx.is_cancelled() { return Err(JobError::new("cancelled")); }
///         Ok(json!({ "sent_to": args.email }))
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The arguments, deserialised from the job's `args` (checked when the job is enqueued).
    type Args: DeserializeOwned + Send + 'static;

    /// This kind's defaults for what an enqueue request leaves out (like Sidekiq's
    /// `sidekiq_options`); none by default, so the process-wide settings apply.
    fn options() -> KindOptions
    where
        Self: Sized,
    {
        KindOptions::default()
    }

    /// The shared limit this job also counts against besides `kind:<name>`, read from its raw
    /// args before it starts (the `http` kind answers `http:<host>`); none by default.
    fn limit_key(&self, _args: &Value) -> Option<String> {
        None
    }

    /// Runs one attempt. Return early (with an error) when `ctx` is cancelled.
    fn run(
        &self,
        args: Self::Args,
        ctx: JobContext,
    ) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// A kind's defaults for a job whose enqueue request leaves the field out. A request's own value
/// wins, and a field left `None` here falls back to the process-wide setting (`JOB_TIMEOUT`,
/// `MAX_ATTEMPTS`) or the `default` queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindOptions {
    /// The queue its jobs go to.
    pub queue: Option<String>,
    /// The time limit of one attempt.
    pub timeout: Option<Duration>,
    /// Failed attempts allowed before a job is dead.
    pub max_attempts: Option<u32>,
}

/// What a handler returns when an attempt fails, and how the job goes on.
pub struct JobError {
    message: String,
    next: Retry,
}

/// How a failed job goes on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Exponential backoff with jitter, until `max_attempts`.
    Backoff,
    /// After this long (e.g. what a 429's `Retry-After` said), until `max_attempts`.
    After(Duration),
    /// Never: the job is dead now (bad input, a permanent refusal).
    Never,
    /// The outside service asked to wait (a 429 or 503 with `Retry-After`): the job goes back
    /// after this long without spending an attempt, and its limit keys pause for every process
    /// until then.
    Throttled(Duration),
}

impl JobError {
    /// A failure retried with backoff.
    pub fn new(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            next: Retry::Backoff,
        }
    }

    /// A failure that retrying cannot fix: the job goes straight to the dead set.
    pub fn permanent(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            next: Retry::Never,
        }
    }

    /// A failure to retry after `delay` rather than the usual backoff.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> JobError {
        JobError {
            message: message.into(),
            next: Retry::After(delay),
        }
    }

    /// The outside service is throttling: wait `delay`, which is not a failed attempt (see
    /// [`Retry::Throttled`]).
    pub fn throttled(message: impl Into<String>, delay: Duration) -> JobError {
        JobError {
            message: message.into(),
            next: Retry::Throttled(delay),
        }
    }

    /// The message recorded in the job's `errors`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How the job goes on.
    pub fn retry(&self) -> Retry {
        self.next
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobError({:?}, {:?})", self.message, self.next)
    }
}

// Like anyhow: any error converts with `?`, which is why JobError itself is not std::error::Error.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> JobError {
        JobError::new(e.to_string())
    }
}
