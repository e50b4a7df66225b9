//! What one step answered, as the real queue and the model both spell it, and what the real
//! system tells the model about time.

use std::collections::HashMap;

use onedyno::queue::{Deleted, FailOutcome, JobRecord, JobStatus, RequeueOutcome};

/// The answer of one step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new job was stored (scheduled or queued).
    Created { id: String, status: JobStatus },
    /// The idempotency key named this job, with the same request.
    Existing(String),
    /// The idempotency key was used with another request.
    KeyReused,
    /// A batch stored: `(created, id, status)` per job, in order.
    Bulk(Vec<(bool, String, JobStatus)>),
    /// A batch refused (nothing stored): this job's key was used with another request.
    BulkKeyReused(usize),
    /// A fetch by a process without a live heartbeat.
    Unregistered,
    /// The `(id, lease)` pairs fetched, in order.
    Fetched(Vec<(String, String)>),
    /// An ack: whether it was written.
    Acked(bool),
    /// Acks sent together: whether each was written.
    AckedMany(Vec<bool>),
    /// A save of progress: whether it was written.
    Saved(bool),
    /// A failure's outcome.
    Failed(FailOutcome),
    /// A requeue's outcome.
    Requeued(RequeueOutcome),
    /// A cancel or retry: `missing`, `finished`/`conflict` or `ok`, and the status it showed.
    Steered(&'static str, Option<JobStatus>),
    /// A bulk retry of dead jobs: `(retried, remaining)`.
    RetriedDead(u64, u64),
    /// A delete of a dead job.
    Deleted(Deleted),
    /// A heartbeat: reaped, the cancelled ids and the `(id, lease)` pairs it holds.
    Beat {
        reaped: bool,
        cancelled: Vec<String>,
        held: Vec<(String, String)>,
    },
    /// Processes released and how many jobs each put back (sorted by process).
    Released(Vec<(String, u64)>),
    /// Jobs promoted.
    Promoted(u64),
}

/// What the real system says that the model cannot know: Redis's clock.
pub(crate) struct Facts {
    /// Every job's record read right after the step (for due times and times of death).
    pub(crate) records: HashMap<String, JobRecord>,
    /// Redis's time (ms) just before the step.
    pub(crate) before_ms: i64,
    /// Redis's time (ms) just after the step.
    pub(crate) after_ms: i64,
}

impl Facts {
    /// When job `id` is due, as the real record says.
    pub(crate) fn run_at(&self, id: &str) -> i64 {
        self.record(id).run_at.unwrap_or_default()
    }

    /// When job `id` died, as the real record says.
    pub(crate) fn finished_at(&self, id: &str) -> i64 {
        self.record(id).finished_at.unwrap_or_default()
    }

    /// The real status of `id` after the step.
    pub(crate) fn status(&self, id: &str) -> Option<JobStatus> {
        self.records.get(id).map(|r| r.status)
    }

    fn record(&self, id: &str) -> &JobRecord {
        self.records
            .get(id)
            .unwrap_or_else(|| panic!("job {id} is gone from Redis"))
    }
}

/// The name of process `p`.
pub(crate) fn process_name(p: usize) -> String {
    format!("p{p}")
}

/// A short name for what a step did, to count how often each kind of step did something.
pub(crate) fn label(out: &Outcome) -> String {
    match out {
        Outcome::Created { status, .. } => format!("created {status}"),
        Outcome::Fetched(jobs) if jobs.is_empty() => "fetched none".to_string(),
        Outcome::Fetched(_) => "fetched jobs".to_string(),
        Outcome::Released(by) if by.iter().any(|(_, n)| *n > 0) => "released jobs".to_string(),
        Outcome::Released(_) => "released none".to_string(),
        Outcome::Beat { reaped: true, .. } => "beat: was reaped".to_string(),
        Outcome::Beat { cancelled, .. } if !cancelled.is_empty() => "beat: told of a cancel".into(),
        Outcome::Beat { .. } => "beat".to_string(),
        Outcome::Promoted(0) => "promoted none".to_string(),
        Outcome::Promoted(_) => "promoted jobs".to_string(),
        Outcome::RetriedDead(0, _) => "retried no dead".to_string(),
        Outcome::RetriedDead(..) => "retried dead".to_string(),
        Outcome::Existing(_) => "existing".to_string(),
        Outcome::Bulk(items) if items.iter().all(|i| i.0) => "batch created".to_string(),
        Outcome::Bulk(_) => "batch with existing".to_string(),
        Outcome::AckedMany(acks) if acks.iter().filter(|a| **a).count() > 1 => {
            "acked together".to_string()
        }
        Outcome::AckedMany(_) => "acked together, one or none written".to_string(),
        Outcome::BulkKeyReused(_) => "batch key reused".to_string(),
        other => format!("{other:?}"),
    }
}
