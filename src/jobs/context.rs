//! The context a job runs with: who it is, whether it should stop, and where its progress and
//! checkpoints go. A running job saves them through its lease; a [`TestContext`] keeps them in
//! memory, so a kind's unit test needs no Redis.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::JobError;
use crate::limiter::{Limiter, SharedLimits};
use crate::queue::{Lease, StateField, json_within};
use crate::shutdown::sleep_unless;
use crate::worker::Doubling;

/// What a running job knows about itself, and how it talks back.
#[derive(Clone)]
pub struct JobContext {
    job: Arc<JobFacts>,
    sink: StateSink,
    cancel: CancellationToken,
    /// Shared limits, with how long a slot taken in this job lives at most.
    limits: Option<(Arc<SharedLimits>, Duration)>,
}

/// The parts of the job record a handler may read.
struct JobFacts {
    id: String,
    queue: String,
    attempt: u32,
    checkpoint: Option<Value>,
}

/// Where progress and checkpoints go.
#[derive(Clone)]
enum StateSink {
    /// Into the job's record, checked against the lease.
    Lease(Arc<Lease>),
    /// Into memory, for tests.
    Memory(Arc<Mutex<Saved>>),
}

/// What a job saved through a [`TestContext`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// Every progress report, oldest first.
    pub progress: Vec<Value>,
    /// The latest checkpoint.
    pub checkpoint: Option<Value>,
    /// The keys of every [`JobContext::limiter`] acquired, in order.
    pub acquired: Vec<String>,
}

impl JobContext {
    pub(crate) fn new(lease: Arc<Lease>, cancel: CancellationToken) -> JobContext {
        let job = lease.job();
        let facts = JobFacts {
            id: job.id.clone(),
            queue: job.queue.clone(),
            attempt: job.attempts,
            checkpoint: job.checkpoint.clone(),
        };
        JobContext {
            job: Arc::new(facts),
            sink: StateSink::Lease(lease),
            cancel,
            limits: None,
        }
    }

    /// This context with the process's shared limits, a slot taken through
    /// [`JobContext::limiter`] living at most `hold` unless given back.
    pub(crate) fn with_limits(mut self, limits: Arc<SharedLimits>, hold: Duration) -> JobContext {
        self.limits = Some((limits, hold));
        self
    }

    /// The shared limit `key` (`http:<host>`, `kind:<name>`), to wait on before each call a job
    /// makes to a limited service: see [`Limiter::acquire`]. It holds across every process,
    /// and its waits end when the job is cancelled.
    pub fn limiter(&self, key: &str) -> Limiter {
        let cancel = self.cancel.clone();
        match (&self.limits, &self.sink) {
            (Some((shared, hold)), _) => {
                Limiter::shared(key, cancel, shared.clone(), &self.job.id, *hold)
            }
            (None, StateSink::Memory(saved)) => {
                let saved = saved.clone();
                Limiter::local(
                    key,
                    cancel,
                    Arc::new(move |k| lock(&saved).acquired.push(k.to_string())),
                )
            }
            // A context without limits (none are wired) waits for nothing.
            (None, StateSink::Lease(_)) => Limiter::local(key, cancel, Arc::new(|_| {})),
        }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.job.id
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.job.queue
    }

    /// Which start this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.job.attempt
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
        let saved = self.job.checkpoint.clone()?;
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
        let lease = match &self.sink {
            StateSink::Lease(lease) => lease,
            StateSink::Memory(saved) => {
                let mut saved = lock(saved);
                match field {
                    StateField::Progress => saved.progress.push(value),
                    StateField::Checkpoint => saved.checkpoint = Some(value),
                }
                return Ok(());
            }
        };
        // A save through a Redis restart or failover waits it out, as outcome writes do, rather
        // than failing the attempt: the work done so far would otherwise be lost with it.
        let give_up = tokio::time::Instant::now() + SAVE_RETRY_FOR;
        let mut wait = Doubling::new(SAVE_RETRY_FIRST, SAVE_RETRY_MAX);
        loop {
            let e = match lease.save(field, &text).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    return Err(JobError::new(
                        "lease lost: another process owns this job now",
                    ));
                }
                Err(e) => e,
            };
            let failed = || JobError::new(format!("could not save {field:?}: {e}"));
            let delay = wait.next_wait();
            if !e.is_transient() || tokio::time::Instant::now() + delay >= give_up {
                return Err(failed());
            }
            tracing::warn!(
                event = "job.save_retrying",
                job_id = %self.job.id,
                field = ?field,
                retry_in_ms = delay.as_millis() as u64,
                error = %e
            );
            if !sleep_unless(&self.cancel, delay).await {
                return Err(failed());
            }
        }
    }
}

/// The first wait before a failed save is tried again; it doubles up to [`SAVE_RETRY_MAX`].
const SAVE_RETRY_FIRST: Duration = Duration::from_millis(100);
const SAVE_RETRY_MAX: Duration = Duration::from_secs(2);
/// How long a save keeps trying before the attempt fails with its error.
const SAVE_RETRY_FOR: Duration = Duration::from_secs(10);

fn lock(saved: &Mutex<Saved>) -> MutexGuard<'_, Saved> {
    saved
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A [`JobContext`] for unit tests of a kind: no Redis, progress and checkpoints kept in memory,
/// cancelled when the test says so.
///
/// ```
/// use onedyno::jobs::TestContext;
///
/// # tokio_test_block(async {
/// let test = TestContext::new().attempt(2).with_checkpoint(&serde_json::json!({"done": 3}));
/// let ctx = test.context();
/// assert_eq!(ctx.attempt(), 2);
/// ctx.progress(&50).await.unwrap();
/// assert_eq!(test.saved().progress, vec![serde_json::json!(50)]);
/// test.cancel();
/// assert!(ctx.is_cancelled());
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub struct TestContext {
    id: String,
    queue: String,
    attempt: u32,
    checkpoint: Option<Value>,
    saved: Arc<Mutex<Saved>>,
    cancel: CancellationToken,
}

impl Default for TestContext {
    fn default() -> TestContext {
        TestContext::new()
    }
}

impl TestContext {
    /// The first attempt of job `test-job` from queue `default`, with no checkpoint.
    pub fn new() -> TestContext {
        TestContext {
            id: "test-job".to_string(),
            queue: "default".to_string(),
            attempt: 1,
            checkpoint: None,
            saved: Arc::default(),
            cancel: CancellationToken::new(),
        }
    }

    /// Makes this the `attempt`th start.
    pub fn attempt(mut self, attempt: u32) -> TestContext {
        self.attempt = attempt;
        self
    }

    /// Makes the job come from `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> TestContext {
        self.queue = queue.into();
        self
    }

    /// Starts the job with the checkpoint an earlier attempt saved. A state that does not
    /// serialise leaves none.
    pub fn with_checkpoint<T: Serialize>(mut self, state: &T) -> TestContext {
        self.checkpoint = serde_json::to_value(state).ok();
        self
    }

    /// The context to pass to the handler's `run` (as often as needed: all share this state).
    pub fn context(&self) -> JobContext {
        JobContext {
            job: Arc::new(JobFacts {
                id: self.id.clone(),
                queue: self.queue.clone(),
                attempt: self.attempt,
                checkpoint: self.checkpoint.clone(),
            }),
            sink: StateSink::Memory(self.saved.clone()),
            cancel: self.cancel.clone(),
            limits: None,
        }
    }

    /// Cancels the job, as a shutdown, a timeout or `DELETE /jobs/{id}` would.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// What the job saved so far.
    pub fn saved(&self) -> Saved {
        lock(&self.saved).clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::queue::{CHECKPOINT_MAX_BYTES, PROGRESS_MAX_BYTES};

    #[tokio::test]
    async fn oversized_progress_and_checkpoints_are_refused_for_good() {
        let test = TestContext::new();
        let ctx = test.context();
        let big = "x".repeat(PROGRESS_MAX_BYTES);
        let err = ctx.progress(&big).await.unwrap_err();
        assert_eq!(err.retry(), crate::jobs::Retry::Never, "{err}");
        let big = "x".repeat(CHECKPOINT_MAX_BYTES);
        let err = ctx.save_checkpoint(&big).await.unwrap_err();
        assert_eq!(err.retry(), crate::jobs::Retry::Never, "{err}");
        assert_eq!(test.saved(), Saved::default(), "nothing refused is kept");
        ctx.progress(&json!({"done": 1})).await.unwrap();
        ctx.save_checkpoint(&json!({"at": 1})).await.unwrap();
        assert_eq!(test.saved().progress, vec![json!({"done": 1})]);
        assert_eq!(test.saved().checkpoint, Some(json!({"at": 1})));
    }

    #[tokio::test]
    async fn a_test_context_records_the_limiters_a_handler_acquired() {
        let test = TestContext::new();
        let ctx = test.context();
        let api = ctx.limiter("http:api.example.com");
        assert_eq!(api.key(), "http:api.example.com");
        api.acquire().await.unwrap();
        ctx.limiter("kind:report").acquire().await.unwrap();
        api.pause(Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            test.saved().acquired,
            vec![
                "http:api.example.com".to_string(),
                "kind:report".to_string()
            ]
        );
    }

    #[tokio::test]
    async fn a_test_context_says_who_the_job_is_and_can_be_cancelled() {
        let test = TestContext::new()
            .attempt(3)
            .queue("low")
            .with_checkpoint(&json!({"at": 2}));
        let ctx = test.context();
        assert_eq!(
            (ctx.id(), ctx.queue(), ctx.attempt()),
            ("test-job", "low", 3)
        );
        assert_eq!(ctx.checkpoint::<Value>(), Some(json!({"at": 2})));
        assert!(!ctx.is_cancelled());
        test.cancel();
        assert!(ctx.is_cancelled());
        assert!(ctx.sleep(Duration::from_secs(60)).await.is_err());
    }
}
