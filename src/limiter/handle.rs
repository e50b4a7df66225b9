//! A named limiter a handler waits on, for a job that makes many calls to a limited service:
//!
//! ```no_run
//! # use onedyno::{JobContext, JobError};
//! # async fn run(ctx: JobContext, pages: Vec<String>) -> Result<(), JobError> {
//! let twitter = ctx.limiter("http:api.twitter.com");
//! for page in pages {
//!     let _permit = twitter.acquire().await?; // waits for its turn, across every process
//!     // ... call the API; on a 429: twitter.pause(retry_after).await?
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::SharedLimits;
use super::gate::wait_for;
use crate::jobs::JobError;
use crate::queue::LimitVerdict;
use crate::shutdown::sleep_unless;
use crate::worker::Doubling;

/// Tells one permit's holder from another's within a process.
static NEXT_PERMIT: AtomicU64 = AtomicU64::new(1);

/// Records the keys a [`crate::jobs::TestContext`]'s handler acquired.
pub(crate) type AcquireLog = Arc<dyn Fn(&str) + Send + Sync>;

/// A shared limit by key, as a running job sees it (from [`crate::JobContext::limiter`]).
pub struct Limiter {
    key: String,
    cancel: CancellationToken,
    inner: Inner,
}

enum Inner {
    /// In Redis, for every process: holders are `<process>|<job id>|<n>`.
    Shared {
        shared: Arc<SharedLimits>,
        holder: String,
        hold: Duration,
    },
    /// In a unit test: acquisitions are recorded and never wait.
    Local(AcquireLog),
}

impl Limiter {
    pub(crate) fn shared(
        key: &str,
        cancel: CancellationToken,
        shared: Arc<SharedLimits>,
        job_id: &str,
        hold: Duration,
    ) -> Limiter {
        let holder = shared.holder(job_id);
        Limiter {
            key: key.to_string(),
            cancel,
            inner: Inner::Shared {
                shared,
                holder,
                hold,
            },
        }
    }

    pub(crate) fn local(key: &str, cancel: CancellationToken, log: AcquireLog) -> Limiter {
        Limiter {
            key: key.to_string(),
            cancel,
            inner: Inner::Local(log),
        }
    }

    /// The limit's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Waits until this job may make one call under the limit: a pause in force ends, a
    /// concurrency slot is free, its turn of the rate comes. The permit holds the concurrency
    /// slot (if the limit has one) until it is dropped. Errs when the job is cancelled while
    /// waiting. A key with no limit declared and no pause in force returns at once.
    ///
    /// A job that already counts against this key (it is its `kind:` or handler key) and
    /// acquires it here takes a second concurrency slot: with a concurrency of 1 it would wait
    /// for itself until its timeout.
    pub async fn acquire(&self) -> Result<LimitPermit, JobError> {
        let (shared, holder, hold) = match &self.inner {
            Inner::Local(log) => {
                log(&self.key);
                return Ok(LimitPermit { held: None });
            }
            Inner::Shared {
                shared,
                holder,
                hold,
            } => (shared, holder, *hold),
        };
        let holder = format!("{holder}|{}", NEXT_PERMIT.fetch_add(1, Ordering::Relaxed));
        let mut failures = Doubling::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let checks = shared.checks(std::slice::from_ref(&self.key));
            let Some(check) = checks.first() else {
                return Ok(LimitPermit { held: None });
            };
            let held =
                (check.concurrency > 0).then(|| (shared.clone(), holder.clone(), self.key.clone()));
            let wait = match shared
                .queue
                .limit_acquire(None, &holder, hold, &checks)
                .await
            {
                Ok(LimitVerdict::Taken) => return Ok(LimitPermit { held }),
                Ok(LimitVerdict::Booked { wait }) => {
                    // The slot is this job's: dropping the permit on cancellation frees it.
                    let permit = LimitPermit { held };
                    self.sleep(wait).await?;
                    return Ok(permit);
                }
                Ok(LimitVerdict::Refused { reason, wait, .. }) => {
                    wait_for(reason, wait, &mut rand::rng())
                }
                Err(e) if e.is_transient() => failures.next_wait(),
                Err(e) => return Err(JobError::new(format!("limit {}: {e}", self.key))),
            };
            self.sleep(wait).await?;
        }
    }

    /// Pauses this key for every process for `pause` (a 429's `Retry-After`), so that other
    /// jobs wait too; this job's own next [`Limiter::acquire`] waits for it as well.
    pub async fn pause(&self, pause: Duration) -> Result<(), JobError> {
        match &self.inner {
            Inner::Local(_) => Ok(()),
            Inner::Shared { shared, .. } => shared
                .pause(std::slice::from_ref(&self.key), pause)
                .await
                .map_err(|e| JobError::new(format!("limit {}: {e}", self.key))),
        }
    }

    async fn sleep(&self, wait: Duration) -> Result<(), JobError> {
        if sleep_unless(&self.cancel, wait).await {
            Ok(())
        } else {
            Err(JobError::new("cancelled"))
        }
    }
}

/// A call's place under a limit; the concurrency slot (if any) is given back when it drops.
pub struct LimitPermit {
    held: Option<(Arc<SharedLimits>, String, String)>,
}

impl LimitPermit {
    /// Gives the slot back now, and waits for Redis to have it.
    pub async fn release(mut self) {
        if let Some((shared, holder, key)) = self.held.take() {
            release(shared, holder, key).await;
        }
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        if let Some((shared, holder, key)) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(release(shared, holder, key));
        }
    }
}

/// A slot that cannot be given back (Redis away) frees itself when its hold ends.
async fn release(shared: Arc<SharedLimits>, holder: String, key: String) {
    if let Err(e) = shared.queue.limit_release(&holder, &[key]).await {
        tracing::warn!(event = "limit.release_failed", error = %e);
    }
}
