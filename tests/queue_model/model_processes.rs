//! Worker processes in the model: heartbeats, and releasing a process's jobs (its shutdown, or
//! the reaper after its heartbeat expired).

use onedyno::queue::JobStatus;

use super::model::Model;
use super::ops::PROCESSES;
use super::outcome::{Outcome, process_name};

impl Model {
    /// Puts back what process `p` holds and deregisters it; returns how many were queued.
    pub(crate) fn release(&mut self, p: usize) -> u64 {
        let mut n = 0;
        for id in std::mem::take(&mut self.inflight[p]) {
            let job = self.job(&id);
            if job.lease.as_ref().is_none_or(|(owner, _)| *owner != p) {
                continue;
            }
            if job.cancel {
                self.finish(&id, JobStatus::Cancelled);
            } else {
                self.make_ready(&id, true);
                n += 1;
            }
        }
        self.registered[p] = false;
        self.alive[p] = false;
        n
    }

    /// The reaper: every registered process whose heartbeat expired.
    pub(crate) fn reap(&mut self) -> Outcome {
        let mut out = Vec::new();
        for p in 0..PROCESSES {
            if self.registered[p] && !self.alive[p] {
                out.push((process_name(p), self.release(p)));
            }
        }
        Outcome::Released(out)
    }

    /// A heartbeat; `first` registers, otherwise it renews only a registered process.
    pub(crate) fn beat(&mut self, p: usize, first: bool) -> Outcome {
        if !first && !self.registered[p] {
            return Outcome::Beat {
                reaped: true,
                cancelled: vec![],
                held: vec![],
            };
        }
        self.registered[p] = true;
        self.alive[p] = true;
        let mut cancelled = Vec::new();
        let mut held = Vec::new();
        for id in &self.inflight[p] {
            let job = &self.jobs[id];
            if job.cancel {
                cancelled.push(id.clone());
            }
            if let Some((owner, token)) = &job.lease
                && *owner == p
            {
                held.push((id.clone(), token.clone()));
            }
        }
        Outcome::Beat {
            reaped: false,
            cancelled,
            held,
        }
    }
}
