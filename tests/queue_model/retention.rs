//! The count bounds of retention in the model: `JOB_RETENTION_MAX` over finished jobs and
//! `DEAD_MAX` over dead ones. A job pushed out by either is gone for good, as documented; the
//! test's age bounds (an hour) never pass.

use onedyno::queue::JobStatus;

use super::model::Model;

/// The most finished (succeeded or cancelled) and dead jobs kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    pub(crate) finished: usize,
    pub(crate) dead: usize,
}

impl Default for Keep {
    /// Bounds no case reaches.
    fn default() -> Keep {
        Keep {
            finished: 10_000,
            dead: 10_000,
        }
    }
}

impl Model {
    /// A job that just succeeded or was cancelled goes first in the finished list; the oldest
    /// past the bound is deleted (unless it runs again: then only its entry goes).
    pub(crate) fn index_finished(&mut self, id: &str) {
        self.finished.push_front(id.to_string());
        while self.finished.len() > self.keep.finished {
            let Some(old) = self.finished.pop_back() else {
                break;
            };
            let job = self.job(&old);
            let done = matches!(job.status, JobStatus::Succeeded | JobStatus::Cancelled);
            if done && job.lease.is_none() {
                job.deleted = true;
            }
        }
    }

    /// A retried job leaves the finished list.
    pub(crate) fn leave_finished(&mut self, id: &str) {
        self.finished.retain(|x| x != id);
    }

    /// After a death: the oldest dead jobs past the bound are deleted (oldest death first, ties
    /// by id, as the dead set orders them).
    pub(crate) fn trim_dead(&mut self) {
        let mut dead: Vec<(i64, String)> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status == JobStatus::Dead && !j.deleted)
            .map(|(id, j)| (j.dead_at, id.clone()))
            .collect();
        dead.sort();
        let excess = dead.len().saturating_sub(self.keep.dead);
        for (_, id) in dead.into_iter().take(excess) {
            self.job(&id).deleted = true;
        }
    }
}
