//! The API's operations on one job (cancel, retry, delete), retrying every dead job, and
//! promotion, in the model.

use onedyno::queue::{Deleted, JobStatus};

use super::model::Model;
use super::outcome::{Facts, Outcome};

/// The API's operations on one job, and promotion.
impl Model {
    pub(crate) fn cancel(&mut self, id: &str) -> Outcome {
        let job = self.job(id);
        if job.deleted {
            return Outcome::Steered("missing", None);
        }
        let status = job.status;
        match status {
            JobStatus::Succeeded | JobStatus::Dead => Outcome::Steered("finished", Some(status)),
            JobStatus::Cancelled => Outcome::Steered("ok", Some(status)),
            _ => {
                // A running job keeps its lease, and is finished when its owner writes.
                job.cancel = true;
                job.status = JobStatus::Cancelled;
                if status != JobStatus::Running {
                    self.index_finished(id);
                }
                Outcome::Steered("ok", Some(JobStatus::Cancelled))
            }
        }
    }

    pub(crate) fn retry(&mut self, id: &str) -> Outcome {
        let job = self.job(id);
        if job.deleted {
            return Outcome::Steered("missing", None);
        }
        let retryable = matches!(job.status, JobStatus::Dead | JobStatus::Cancelled);
        if !retryable || job.lease.is_some() {
            return Outcome::Steered("conflict", Some(job.status));
        }
        self.ready_again(id);
        Outcome::Steered("ok", Some(JobStatus::Queued))
    }

    /// Queued again with a fresh failure budget. A job cancelled as it waited whose id still
    /// stands in its queue list waits there again (a job is in its queue once).
    fn ready_again(&mut self, id: &str) {
        self.leave_finished(id);
        let job = self.job(id);
        job.failures = 0;
        job.cancel = false;
        let q = job.queue;
        if self.lists[q].iter().any(|x| x == id) {
            self.job(id).status = JobStatus::Queued;
            return;
        }
        self.make_ready(id, false);
    }

    /// Every dead job, oldest death first (ties by id, as a zset orders them).
    pub(crate) fn retry_dead(&mut self) -> Outcome {
        let mut dead: Vec<(i64, String)> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status == JobStatus::Dead && !j.deleted)
            .map(|(id, j)| (j.dead_at, id.clone()))
            .collect();
        dead.sort();
        for (_, id) in &dead {
            self.ready_again(id);
        }
        Outcome::RetriedDead(dead.len() as u64, 0)
    }

    pub(crate) fn delete_dead(&mut self, id: &str) -> Outcome {
        let job = self.job(id);
        if job.deleted {
            return Outcome::Deleted(Deleted::Missing);
        }
        if job.status != JobStatus::Dead {
            return Outcome::Deleted(Deleted::NotDead(job.status));
        }
        job.deleted = true;
        self.idem.retain(|_, (owner, _)| owner != id);
        Outcome::Deleted(Deleted::Deleted)
    }

    /// Moves due scheduled jobs, then due retries, to their queues. A job due inside the
    /// step's time window may have been due or not: the real system's choice is taken.
    pub(crate) fn promote(&mut self, facts: &Facts, everything_due: bool) -> Outcome {
        let mut moved = 0;
        for status in [JobStatus::Scheduled, JobStatus::Retrying] {
            let mut waiting: Vec<(i64, String)> = self
                .jobs
                .iter()
                .filter(|(_, j)| j.status == status && !j.deleted)
                .map(|(id, j)| (j.due, id.clone()))
                .collect();
            waiting.sort();
            for (due, id) in waiting {
                let due_now = everything_due
                    || due <= facts.before_ms
                    || (due <= facts.after_ms && facts.status(&id) == Some(JobStatus::Queued));
                if due_now {
                    self.make_ready(&id, false);
                    moved += 1;
                }
            }
        }
        Outcome::Promoted(moved)
    }
}
