//! After every step: the real queue and the model agree on every job, and the invariants hold.

use std::collections::HashMap;

use onedyno::queue::{JobRecord, JobStatus};

use super::model::{MJob, Model};
use super::ops::QUEUES;
use super::system::System;

/// Every check; the first disagreement is the error.
pub(crate) fn verify(
    sys: &System,
    model: &Model,
    records: &HashMap<String, JobRecord>,
) -> Result<(), String> {
    for (id, job) in &model.jobs {
        same_job(id, job, records.get(id))?;
    }
    one_place_each(sys, model)?;
    counters(sys, model)?;
    one_holder_per_lease(sys, records)
}

/// Status, attempts, failures and lease of one job; a deleted job is gone, nothing else is.
fn same_job(id: &str, job: &MJob, real: Option<&JobRecord>) -> Result<(), String> {
    let Some(real) = real else {
        return match job.deleted {
            true => Ok(()),
            false => Err(format!("job {id} disappeared (model: {job:?})")),
        };
    };
    if job.deleted {
        return Err(format!("deleted job {id} still reads as {real:?}"));
    }
    let seen = (
        real.status,
        real.attempts,
        real.failures,
        real.max_attempts,
        real.queue.as_str(),
        real.lease.as_deref(),
        real.progress.is_some(),
    );
    let expected = (
        job.status,
        job.attempts,
        job.failures,
        job.max_attempts,
        QUEUES[job.queue],
        job.lease.as_ref().map(|(_, t)| t.as_str()),
        job.progress,
    );
    if seen != expected {
        return Err(format!(
            "job {id}: real (status, attempts, failures, max, queue, lease, progress) = {seen:?}, \
             model = {expected:?}"
        ));
    }
    Ok(())
}

/// Ids the model expects a status's list to show, in the list's order where it has one.
fn expected_list(model: &Model, status: JobStatus) -> Vec<String> {
    let live = |j: &MJob| j.status == status && !j.deleted;
    let mut ids: Vec<(i64, String)> = model
        .jobs
        .iter()
        .filter(|(_, j)| live(j))
        .map(|(id, j)| (j.due, id.clone()))
        .collect();
    match status {
        // Next due first (ties by id, as a zset orders them).
        JobStatus::Scheduled | JobStatus::Retrying => ids.sort(),
        _ => ids.sort_by(|a, b| a.1.cmp(&b.1)),
    }
    ids.into_iter().map(|(_, id)| id).collect()
}

/// Every job is listed under its status, once, and under no other: queued jobs in the order
/// they will be fetched.
fn one_place_each(sys: &System, model: &Model) -> Result<(), String> {
    let mut seen: HashMap<String, JobStatus> = HashMap::new();
    let mut note = |id: &str, status: JobStatus| match seen.insert(id.to_string(), status) {
        Some(before) => Err(format!("job {id} listed as {before} and as {status}")),
        None => Ok(()),
    };
    for (q, name) in QUEUES.iter().enumerate() {
        let real: Vec<String> = sys
            .list(JobStatus::Queued, Some(name))
            .into_iter()
            .map(|j| j.id)
            .collect();
        let expected: Vec<String> = model.lists[q]
            .iter()
            .rev()
            .filter(|id| model.jobs[*id].status == JobStatus::Queued && !model.jobs[*id].deleted)
            .cloned()
            .collect();
        if real != expected {
            return Err(format!("queue {name}: real {real:?}, model {expected:?}"));
        }
        real.iter().try_for_each(|id| note(id, JobStatus::Queued))?;
    }
    for status in [
        JobStatus::Running,
        JobStatus::Scheduled,
        JobStatus::Retrying,
        JobStatus::Dead,
        JobStatus::Succeeded,
        JobStatus::Cancelled,
    ] {
        let mut real: Vec<String> = sys.list(status, None).into_iter().map(|j| j.id).collect();
        if !matches!(status, JobStatus::Scheduled | JobStatus::Retrying) {
            real.sort();
        }
        let expected = expected_list(model, status);
        if real != expected {
            return Err(format!("{status} list: real {real:?}, model {expected:?}"));
        }
        real.iter().try_for_each(|id| note(id, status))?;
    }
    Ok(())
}

/// `GET /queues`'s counters agree with the model.
fn counters(sys: &System, model: &Model) -> Result<(), String> {
    let count = |status| {
        model
            .jobs
            .values()
            .filter(|j| j.status == status && !j.deleted)
            .count() as u64
    };
    let expected = HashMap::from([
        ("scheduled", count(JobStatus::Scheduled)),
        ("retrying", count(JobStatus::Retrying)),
        ("dead", count(JobStatus::Dead)),
        (
            "processes",
            model.registered.iter().filter(|r| **r).count() as u64,
        ),
    ]);
    let real = sys.counters();
    match real == expected {
        true => Ok(()),
        false => Err(format!("counters: real {real:?}, model {expected:?}")),
    }
}

/// Of all the lease handles the processes hold, at most one is a job's current lease.
fn one_holder_per_lease(sys: &System, records: &HashMap<String, JobRecord>) -> Result<(), String> {
    for (id, record) in records {
        let Some(current) = &record.lease else {
            continue;
        };
        let count = sys
            .leases
            .iter()
            .flatten()
            .filter(|l| &l.job().id == id && l.token() == current)
            .count();
        if count > 1 {
            return Err(format!(
                "job {id}'s lease {current} is held by {count} handles"
            ));
        }
    }
    Ok(())
}
