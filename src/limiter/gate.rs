//! The runner's side of shared limits: may this job start now, and giving its slots back.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::SharedLimits;
use crate::queue::{DeferOutcome, Lease, LimitVerdict, Refusal};
use crate::worker::Doubling;

/// How long a job refused by a full concurrency limit waits before it asks again, at least;
/// up to twice as long with jitter, so waiting jobs do not ask all at once.
const CONCURRENCY_RECHECK: Duration = Duration::from_millis(250);
/// How long a job waits when its limits could not be checked (Redis away).
const CHECK_FAILED_WAIT: Duration = Duration::from_secs(1);

/// What the runner does with a fetched job.
#[derive(Debug)]
pub enum Gate {
    /// Run it; give back what it holds when its outcome is written.
    Start(Held),
    /// It waits in the scheduled set (or was cancelled meanwhile): nothing to run.
    Deferred,
}

/// The concurrency slots a running job holds.
#[derive(Debug, Default)]
pub struct Held {
    holder: String,
    keys: Vec<String>,
}

impl Held {
    /// Whether the job holds a slot of any shared concurrency limit.
    pub fn holds_any(&self) -> bool {
        !self.keys.is_empty()
    }
}

impl SharedLimits {
    /// Decides whether `lease`'s job may start. Jobs whose keys have no limit and no pause
    /// return at once, without a Redis call. A refused job is put back to wait without spending
    /// an attempt; `stop` ends the tries to put it back (the drain releases it instead). A
    /// concurrency slot taken lives at most `hold` unless given back.
    pub async fn gate(&self, lease: &Lease, hold: Duration, stop: &CancellationToken) -> Gate {
        // The common case, with no limit declared and no pause in force: nothing to compute.
        if self.registry.limits().is_empty() && self.lock_pauses().is_empty() {
            return Gate::Start(Held::default());
        }
        // Boxed: the checks' future is large, and every runner's future would carry its size
        // (the runner's whole future is moved when it is spawned, once per job).
        Box::pin(self.check_limits(lease, hold, stop)).await
    }

    /// [`gate`](Self::gate) for a job that may be limited or paused.
    async fn check_limits(&self, lease: &Lease, hold: Duration, stop: &CancellationToken) -> Gate {
        let job = lease.job();
        let checks = self.checks(&self.registry.limit_keys(&job.kind, &job.args));
        if checks.is_empty() {
            return Gate::Start(Held::default());
        }
        let holder = self.holder(&job.id);
        let wait = match self
            .queue
            .limit_acquire(Some(lease), &holder, hold, &checks)
            .await
        {
            Ok(LimitVerdict::Taken | LimitVerdict::Booked { .. }) => {
                let keys = checks
                    .into_iter()
                    .filter(|c| c.concurrency > 0)
                    .map(|c| c.key)
                    .collect();
                return Gate::Start(Held { holder, keys });
            }
            Ok(LimitVerdict::Refused { reason, key, wait }) => {
                let wait = wait_for(reason, wait, &mut rand::rng());
                tracing::debug!(
                    event = "job.throttled",
                    reason = reason.as_str(),
                    key = %key,
                    wait_ms = wait.as_millis() as u64
                );
                wait
            }
            Err(e) => {
                tracing::warn!(event = "limit.check_failed", error = %e);
                CHECK_FAILED_WAIT
            }
        };
        self.defer(lease, wait, stop).await;
        Gate::Deferred
    }

    /// Puts a job that never started back to wait, retrying while Redis is away.
    async fn defer(&self, lease: &Lease, wait: Duration, stop: &CancellationToken) {
        let mut retry = Doubling::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match lease.defer(wait, false).await {
                Ok(DeferOutcome::Deferred) => return self.nudge(wait),
                Ok(outcome) => {
                    tracing::info!(event = "job.throttled", outcome = ?outcome);
                    return;
                }
                Err(e) if e.is_transient() && !stop.is_cancelled() => {
                    tracing::warn!(event = "job.defer_failed", error = %e);
                    // A drain must not wait out the backoff: the next pass sees `stop`.
                    crate::shutdown::sleep_unless(stop, retry.next_wait()).await;
                }
                Err(e) => {
                    // Left in flight: the drain or the heartbeat puts it back.
                    tracing::warn!(event = "job.defer_failed", error = %e);
                    return;
                }
            }
        }
    }

    /// Promotes due jobs once `wait` is over, so a job that waited for its turn runs at its
    /// turn rather than at the promoter's next pass. Any process may get there first. Only
    /// short waits are nudged: the promoter's next pass, at most `PROMOTE_MAX_WAIT` away, sees a
    /// longer one in time, and a task per job sleeping out a long pause would grow with the jobs.
    pub fn nudge(&self, wait: Duration) {
        if wait > crate::maintenance::PROMOTE_MAX_WAIT {
            return;
        }
        let queue = self.queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait + Duration::from_millis(2)).await;
            if let Err(e) = queue.promote_due().await {
                tracing::debug!(event = "limit.nudge_failed", error = %e);
            }
        });
    }

    /// Gives back the slots a job held, once its outcome is written. A slot that cannot be
    /// given back (Redis away) frees itself when its hold ends.
    pub async fn release(&self, held: Held) {
        if held.keys.is_empty() {
            return;
        }
        // Boxed, as in `gate`: most jobs hold nothing.
        Box::pin(self.release_slots(held)).await
    }

    async fn release_slots(&self, held: Held) {
        for delay in [100, 400, 1600] {
            match self.queue.limit_release(&held.holder, &held.keys).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(event = "limit.release_failed", error = %e);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
        }
    }

    /// A handler said its service is throttling: pauses the job's key (its handler's key, like
    /// `http:<host>`, else `kind:<kind>`) for every process for `pause`.
    pub async fn throttled(&self, lease: &Lease, pause: Duration) {
        let job = lease.job();
        let key = self.registry.pause_key(&job.kind, &job.args);
        match self.pause(std::slice::from_ref(&key), pause).await {
            Ok(()) => tracing::info!(
                event = "limit.paused",
                key = %key,
                pause_ms = pause.as_millis() as u64
            ),
            Err(e) => tracing::warn!(event = "limit.pause_failed", key = %key, error = %e),
        }
    }
}

/// How long a refused job waits: its booked turn for a rate; a pause's end spread by up to a
/// tenth (at most a second) so paused jobs do not all come back at once; a short random wait
/// for a concurrency slot, whose end nobody knows.
pub(super) fn wait_for(reason: Refusal, wait: Duration, rng: &mut impl Rng) -> Duration {
    match reason {
        Refusal::Rate => wait.max(Duration::from_millis(1)),
        Refusal::Paused => {
            let spread = (wait / 10).min(Duration::from_secs(1));
            wait + spread.mul_f64(rng.random_range(0.0..1.0))
        }
        Refusal::Concurrency => CONCURRENCY_RECHECK.mul_f64(rng.random_range(1.0..2.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_refusal() {
        let mut rng = rand::rng();
        let ms = Duration::from_millis;
        assert_eq!(wait_for(Refusal::Rate, ms(150), &mut rng), ms(150));
        assert_eq!(wait_for(Refusal::Rate, ms(0), &mut rng), ms(1));
        for _ in 0..100 {
            let paused = wait_for(Refusal::Paused, ms(2000), &mut rng);
            assert!(paused >= ms(2000) && paused <= ms(2200), "{paused:?}");
            let long = wait_for(Refusal::Paused, ms(60_000), &mut rng);
            assert!(long <= ms(61_000), "{long:?}");
            let slot = wait_for(Refusal::Concurrency, ms(0), &mut rng);
            assert!(slot >= ms(250) && slot <= ms(500), "{slot:?}");
        }
    }
}
