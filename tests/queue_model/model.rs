//! The queue's documented semantics (README, `src/queue/mod.rs`), in memory.
//!
//! Queue lists are kept literally, ids of jobs that stopped waiting included ("a cancelled
//! job's id stays until a fetch skips it"): front = left, where new jobs are pushed; back =
//! right, where workers take and an interrupted job goes back. The clock is Redis's: due times
//! and times of death come from [`Facts`], and a promotion decides by the window of time the
//! step took.

use std::collections::{BTreeMap, HashMap, VecDeque};

use onedyno::queue::{FailOutcome, JobStatus, RequeueOutcome};

use super::ops::{PROCESSES, QUEUES, queues_of};
use super::outcome::{Facts, Outcome, process_name};
use super::retention::Keep;

/// A job as the model knows it.
#[derive(Debug, Clone)]
pub(crate) struct MJob {
    pub(crate) queue: usize,
    pub(crate) max_attempts: u32,
    pub(crate) status: JobStatus,
    pub(crate) attempts: u32,
    pub(crate) failures: u32,
    /// Cancelled through the API (cleared by a retry).
    pub(crate) cancel: bool,
    /// The process and token holding it.
    pub(crate) lease: Option<(usize, String)>,
    /// Due time of a scheduled job or a retry.
    pub(crate) due: i64,
    /// Time of death of a dead job.
    pub(crate) dead_at: i64,
    /// Deleted through the API, or pushed out by retention: gone for good.
    pub(crate) deleted: bool,
    /// Progress was saved once (it stays, whatever follows).
    pub(crate) progress: bool,
}

/// The whole model.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) jobs: BTreeMap<String, MJob>,
    /// Ids in creation order (deleted ones too: steps may still name them).
    pub(crate) order: Vec<String>,
    pub(crate) lists: [VecDeque<String>; 2],
    /// Each process's in-flight list, front = left (a fetch pushes left).
    pub(crate) inflight: [VecDeque<String>; PROCESSES],
    pub(crate) registered: [bool; PROCESSES],
    /// The heartbeat key exists.
    pub(crate) alive: [bool; PROCESSES],
    /// (queue, idempotency key) -> (job id, request variant that created it): a key is scoped
    /// to its queue.
    pub(crate) idem: HashMap<(usize, u8), (String, bool)>,
    /// The leases handed to each process, as the harness keeps them: `(id, token)`.
    pub(crate) leases: [Vec<(String, String)>; PROCESSES],
    /// Succeeded and cancelled ids, newest first.
    pub(crate) finished: VecDeque<String>,
    /// The retention's count bounds.
    pub(crate) keep: Keep,
}

impl Model {
    /// The id a `job` choice names, if any job was made.
    pub(crate) fn pick_job(&self, job: u8) -> Option<String> {
        (!self.order.is_empty()).then(|| self.order[job as usize % self.order.len()].clone())
    }

    /// Takes the lease handle a `lease` choice names, of all the processes' handles in order,
    /// with the process that holds it.
    pub(crate) fn take_lease(&mut self, lease: u8) -> Option<(usize, (String, String))> {
        let (p, i) = pick_handle(self.leases.iter().map(Vec::len), lease)?;
        Some((p, self.leases[p].remove(i)))
    }

    pub(crate) fn job(&mut self, id: &str) -> &mut MJob {
        self.jobs.get_mut(id).expect("model job")
    }

    /// Whether `token` is still the lease of job `id`.
    fn holds(&self, id: &str, token: &str) -> bool {
        self.jobs
            .get(id)
            .is_some_and(|j| j.lease.as_ref().is_some_and(|(_, t)| t == token))
    }

    pub(crate) fn enqueue(
        &mut self,
        id: &str,
        queue: usize,
        scheduled: bool,
        idem: Option<(u8, bool)>,
        max_attempts: u32,
        facts: &Facts,
    ) -> Outcome {
        if let Some((key, variant)) = idem {
            if let Some((existing, first)) = self.idem.get(&(queue, key)).cloned()
                && !self.jobs[&existing].deleted
            {
                return if first == variant {
                    Outcome::Existing(existing)
                } else {
                    Outcome::KeyReused
                };
            }
            self.idem.insert((queue, key), (id.to_string(), variant));
        }
        let status = if scheduled {
            JobStatus::Scheduled
        } else {
            self.lists[queue].push_front(id.to_string());
            JobStatus::Queued
        };
        let due = if scheduled { facts.run_at(id) } else { 0 };
        self.jobs.insert(
            id.to_string(),
            MJob {
                queue,
                max_attempts,
                status,
                attempts: 0,
                failures: 0,
                cancel: false,
                lease: None,
                due,
                dead_at: 0,
                deleted: false,
                progress: false,
            },
        );
        self.order.push(id.to_string());
        Outcome::Created {
            id: id.to_string(),
            status,
        }
    }

    pub(crate) fn fetch(&mut self, p: usize, count: usize) -> Outcome {
        if !self.alive[p] {
            return Outcome::Unregistered;
        }
        let mut got = Vec::new();
        while got.len() < count {
            let taken = queues_of(p).iter().find_map(|name| {
                let q = QUEUES.iter().position(|n| n == name).expect("queue");
                self.lists[q].pop_back()
            });
            let Some(id) = taken else { break };
            let job = self.job(&id);
            if job.status != JobStatus::Queued {
                continue;
            }
            job.attempts += 1;
            let token = format!("{}:{}", process_name(p), job.attempts);
            job.status = JobStatus::Running;
            job.lease = Some((p, token.clone()));
            self.inflight[p].push_front(id.clone());
            got.push((id, token));
        }
        self.leases[p].extend(got.iter().cloned());
        Outcome::Fetched(got)
    }

    /// Drops `id` from process `p`'s in-flight list (LREM 1: the leftmost).
    fn leave_inflight(&mut self, p: usize, id: &str) {
        if let Some(i) = self.inflight[p].iter().position(|x| x == id) {
            self.inflight[p].remove(i);
        }
    }

    /// A leased job that succeeds or is cancelled (cancelled wins over `status`).
    pub(crate) fn finish(&mut self, id: &str, status: JobStatus) {
        let job = self.job(id);
        job.status = if job.cancel {
            JobStatus::Cancelled
        } else {
            status
        };
        job.lease = None;
        self.index_finished(id);
    }

    /// Saves progress if `token` still holds the job; the handle goes back to process `p`.
    pub(crate) fn save(&mut self, p: usize, id: &str, token: &str) -> Outcome {
        self.leases[p].push((id.to_string(), token.to_string()));
        let saved = self.holds(id, token);
        if saved {
            self.job(id).progress = true;
        }
        Outcome::Saved(saved)
    }

    /// Process `p`'s first `count` handles acked, in order.
    pub(crate) fn ack_many(&mut self, p: usize, count: usize) -> Outcome {
        let n = count.min(self.leases[p].len());
        let handles: Vec<(String, String)> = self.leases[p].drain(..n).collect();
        let written = handles
            .iter()
            .map(|(id, token)| self.ack(p, id, token) == Outcome::Acked(true))
            .collect();
        Outcome::AckedMany(written)
    }

    pub(crate) fn ack(&mut self, p: usize, id: &str, token: &str) -> Outcome {
        if !self.holds(id, token) {
            return Outcome::Acked(false);
        }
        self.leave_inflight(p, id);
        self.finish(id, JobStatus::Succeeded);
        Outcome::Acked(true)
    }

    pub(crate) fn fail(
        &mut self,
        p: usize,
        id: &str,
        token: &str,
        retry: bool,
        facts: &Facts,
    ) -> Outcome {
        if !self.holds(id, token) {
            return Outcome::Failed(FailOutcome::LeaseLost);
        }
        self.leave_inflight(p, id);
        let job = self.job(id);
        job.failures += 1;
        job.lease = None;
        let outcome = if job.cancel {
            job.status = JobStatus::Cancelled;
            FailOutcome::Cancelled
        } else if !retry || job.failures >= job.max_attempts {
            job.status = JobStatus::Dead;
            job.dead_at = facts.finished_at(id);
            FailOutcome::Dead
        } else {
            job.status = JobStatus::Retrying;
            job.due = facts.run_at(id);
            FailOutcome::Retrying
        };
        match outcome {
            FailOutcome::Cancelled => self.index_finished(id),
            FailOutcome::Dead => self.trim_dead(),
            _ => {}
        }
        Outcome::Failed(outcome)
    }

    pub(crate) fn requeue(&mut self, p: usize, id: &str, token: &str) -> Outcome {
        if !self.holds(id, token) {
            return Outcome::Requeued(RequeueOutcome::LeaseLost);
        }
        self.leave_inflight(p, id);
        if self.jobs[id].cancel {
            self.finish(id, JobStatus::Cancelled);
            return Outcome::Requeued(RequeueOutcome::Cancelled);
        }
        self.make_ready(id, true);
        Outcome::Requeued(RequeueOutcome::Queued)
    }

    /// Queued again: at the back (taken next) when interrupted, else at the front.
    pub(crate) fn make_ready(&mut self, id: &str, interrupted: bool) {
        let job = self.job(id);
        job.status = JobStatus::Queued;
        job.lease = None;
        let q = job.queue;
        if interrupted {
            self.lists[q].push_back(id.to_string());
        } else {
            self.lists[q].push_front(id.to_string());
        }
    }
}

/// Which process and which of its handles a `lease` choice names, given how many handles each
/// process has.
pub(crate) fn pick_handle(
    counts: impl Iterator<Item = usize>,
    lease: u8,
) -> Option<(usize, usize)> {
    let counts: Vec<usize> = counts.collect();
    let total: usize = counts.iter().sum();
    let mut i = (total > 0).then(|| lease as usize % total)?;
    for (p, n) in counts.into_iter().enumerate() {
        if i < n {
            return Some((p, i));
        }
        i -= n;
    }
    None
}
