//! The `Handler` trait users implement, the context a job runs with, and its error type.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::queue::{Lease, StateField, json_within};
use crate::shutdown::sleep_unless;

/// A job kind: typed arguments in, a JSON result out.
///
/// ```
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
///     async fn run(&self, args: WelcomeArgs, ctx: JobContext) -> Result<Value, JobError> {
///         if ctx.is_cancelled() { return Err(JobError::new("cancelled")); }
///         Ok(json!({ "sent_to": args.email }))
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The arguments, deserialised from the job's `args` (checked when the job is enqueued).
    type Args: DeserializeOwned + Send + 'static;

    /// Runs one attempt. Return early (with an error) when `ctx` is cancelled.
    fn run(
        &self,
        args: Self::Args,
        ctx: JobContext,
    ) -> impl Future<Output = Result<Value, JobError>> + Send;
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

/// What a running job knows about itself, and how it talks back.
#[derive(Clone)]
pub struct JobContext {
    lease: Lease,
    cancel: CancellationToken,
}

impl JobContext {
    pub(crate) fn new(lease: Lease, cancel: CancellationToken) -> JobContext {
        JobContext { lease, cancel }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.lease.job().id
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.lease.job().queue
    }

    /// Which start this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.lease.job().attempts
    }

    /// True once the job should stop: shutdown, timeout or `DELETE /jobs/{id}`.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the job should stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The token behind [`JobContext::cancelled`], to hand to other tasks.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Sleeps, or returns an error as soon as the job is cancelled.
    pub async fn sleep(&self, duration: Duration) -> Result<(), JobError> {
        if sleep_unless(&self.cancel, duration).await {
            Ok(())
        } else {
            Err(JobError::new("cancelled"))
        }
    }

    /// The state the last attempt saved with [`JobContext::save_checkpoint`], if any.
    pub fn checkpoint<T: DeserializeOwned>(&self) -> Option<T> {
        let saved = self.lease.job().checkpoint.clone()?;
        serde_json::from_value(saved).ok()
    }

    /// Saves state for the next attempt, so a job interrupted by a deploy, a crash or a timeout
    /// resumes where it stopped. At most [`crate::queue::CHECKPOINT_MAX_BYTES`] as JSON; a larger
    /// state is refused with a permanent error.
    pub async fn save_checkpoint<T: Serialize>(&self, state: &T) -> Result<(), JobError> {
        self.save(StateField::Checkpoint, state).await
    }

    /// Reports progress (a number or small JSON), shown in `GET /jobs/{id}`. At most
    /// [`crate::queue::PROGRESS_MAX_BYTES`] as JSON; a larger report is refused with a permanent
    /// error.
    pub async fn progress<T: Serialize>(&self, progress: &T) -> Result<(), JobError> {
        self.save(StateField::Progress, progress).await
    }

    async fn save<T: Serialize>(&self, field: StateField, value: &T) -> Result<(), JobError> {
        let value = serde_json::to_value(value)?;
        let text = json_within(field.name(), &value, field.max_bytes())
            .map_err(|e| JobError::permanent(e.to_string()))?;
        match self.lease.save(field, &text).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::new(
                "lease lost: another process owns this job now",
            )),
            Err(e) => Err(JobError::new(format!("could not save {field:?}: {e}"))),
        }
    }
}
