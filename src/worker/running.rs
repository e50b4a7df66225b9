//! The jobs this process is running, by id, with the means to stop each one and say why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a running job was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `DELETE /jobs/{id}`: finish it as cancelled.
    Cancelled,
    /// Its time limit passed: a failed attempt.
    TimedOut,
    /// Shutdown reached its drain deadline: put it back, not a failure.
    Interrupted,
    /// This process lost its registration: the lease is void, write nothing.
    LeaseLost,
}

/// One job's stop switch. The first reason given wins.
#[derive(Debug)]
pub struct JobStop {
    lease: String,
    token: CancellationToken,
    reason: OnceLock<StopReason>,
}

impl JobStop {
    /// Tells the job to stop (its context's token fires).
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Why it was stopped, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// The token handed to the job's context.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// The running jobs of this process, by id. Ids are made by this app, and the hasher is seeded
/// per process, so a fast hash does.
type ById = HashMap<String, Arc<JobStop>, foldhash::fast::RandomState>;

/// The running jobs of this process.
#[derive(Debug, Default)]
pub struct RunningJobs {
    jobs: Mutex<ById>,
}

impl RunningJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, ById> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a job that starts now under `lease`.
    pub fn insert(&self, id: &str, lease: &str) -> Arc<JobStop> {
        let stop = Arc::new(JobStop {
            lease: lease.to_string(),
            token: CancellationToken::new(),
            reason: OnceLock::new(),
        });
        self.lock().insert(id.to_string(), stop.clone());
        stop
    }

    /// Forgets a job that ended, unless a newer run of the same job took its place meanwhile.
    pub fn remove(&self, id: &str, stop: &Arc<JobStop>) {
        let mut jobs = self.lock();
        // One lookup in the usual case; a newer run's entry goes back under its own key.
        if let Some((key, current)) = jobs.remove_entry(id)
            && !Arc::ptr_eq(&current, stop)
        {
            jobs.insert(key, current);
        }
    }

    /// Whether a runner here holds `id` under `lease`.
    pub fn holds(&self, id: &str, lease: &str) -> bool {
        self.lock().get(id).is_some_and(|stop| stop.lease == lease)
    }

    /// Stops one job, if it runs here. Returns whether it did.
    pub fn stop(&self, id: &str, reason: StopReason) -> bool {
        match self.lock().get(id) {
            Some(stop) => {
                stop.stop(reason);
                true
            }
            None => false,
        }
    }

    /// Stops every job; returns how many.
    pub fn stop_all(&self, reason: StopReason) -> usize {
        let jobs = self.lock();
        for stop in jobs.values() {
            stop.stop(reason);
        }
        jobs.len()
    }

    /// How many jobs run now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let running = RunningJobs::default();
        let stop = running.insert("a", "p:1");
        assert!(running.holds("a", "p:1") && !running.holds("a", "p:2"));
        assert!(running.stop("a", StopReason::Interrupted));
        assert!(!running.stop("b", StopReason::Cancelled));
        running.stop_all(StopReason::LeaseLost);
        assert_eq!(stop.reason(), Some(StopReason::Interrupted));
        assert!(stop.token().is_cancelled());
        let newer = running.insert("a", "p:2");
        running.remove("a", &stop);
        assert!(
            running.holds("a", "p:2"),
            "an older run must not remove a newer one"
        );
        running.remove("a", &newer);
        assert!(running.is_empty());
    }
}
