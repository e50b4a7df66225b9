//! One case: every step runs against the real queue, then the model, and the two must agree on
//! the step's answer and on the whole state after it.

use super::checks::verify;
use super::model::Model;
use super::ops::{BULK_MAX, Op, PROCESSES};
use super::outcome::{Outcome, label};
use super::system::System;

/// Runs `ops` on a fresh Redis (processes registered first); the error names the step.
pub(crate) fn run_case(sys: &mut System, ops: &[Op]) -> Result<(), String> {
    sys.reset();
    let mut model = Model {
        keep: sys.keep,
        ..Model::default()
    };
    let setup = (0..PROCESSES).map(|process| Op::Register { process });
    for (i, op) in setup.chain(ops.iter().cloned()).enumerate() {
        step(sys, &mut model, i, &op).map_err(|e| format!("step {i} ({op:?}): {e}"))?;
    }
    Ok(())
}

fn step(sys: &mut System, model: &mut Model, i: usize, op: &Op) -> Result<(), String> {
    let before = sys.now_ms();
    let new_id = model_id(i);
    let Some((real, apply)) = run_real(sys, model, op, &new_id)? else {
        return Ok(());
    };
    let mut ids = model.order.clone();
    ids.extend(batch_ids(&new_id));
    ids.push(new_id);
    let facts = sys.facts(&ids, before);
    let expected = apply(model, &facts);
    if real != expected {
        return Err(format!("real answered {real:?}, model {expected:?}"));
    }
    *sys.tally.entry(label(&real)).or_default() += 1;
    verify(sys, model, &facts.records)
}

/// The ids a batch of step `step_id` may use.
fn batch_ids(step_id: &str) -> Vec<String> {
    // The step's id with its last group (the item) counted up from 1.
    let step_part = &step_id[..step_id.len() - 12];
    (0..BULK_MAX)
        .map(|k| format!("{step_part}{:012x}", k + 1))
        .collect()
}

/// The id of step `step`'s job: a UUIDv8 naming the shard of [`super::ops::QUEUES`], as the API
/// would make, ordered like the steps (its batch's ids follow it: see [`batch_ids`]).
fn model_id(step: usize) -> String {
    format!(
        "00000000-{step:04x}-8{:03x}-8000-000000000000",
        super::ops::SHARD
    )
}

/// What the model does for a step, once the real answer and clock are known.
type Apply = Box<dyn FnOnce(&mut Model, &super::outcome::Facts) -> Outcome>;

/// Runs `op` on the real queue; `None` when the step has nothing to act on.
fn run_real(
    sys: &mut System,
    model: &mut Model,
    op: &Op,
    new_id: &str,
) -> Result<Option<(Outcome, Apply)>, String> {
    let id = new_id.to_string();
    Ok(Some(match *op {
        Op::Enqueue {
            queue,
            delay_ms,
            idem,
            max_attempts,
        } => (
            sys.enqueue(&id, queue, delay_ms, idem, max_attempts),
            Box::new(move |m: &mut Model, f: &_| {
                m.enqueue(&id, queue, delay_ms.is_some(), idem, max_attempts, f)
            }),
        ),
        Op::EnqueueBulk { ref jobs } => {
            let (ids, jobs) = (batch_ids(&id)[..jobs.len()].to_vec(), jobs.clone());
            (
                sys.enqueue_bulk(&ids, &jobs),
                Box::new(move |m: &mut Model, f: &_| m.enqueue_bulk(&ids, &jobs, f)),
            )
        }
        Op::Fetch { process, count } => (
            sys.fetch(process, count),
            Box::new(move |m: &mut Model, _: &_| m.fetch(process, count)),
        ),
        Op::Ack { lease } | Op::Requeue { lease } | Op::Save { lease } | Op::Fail { lease, .. } => {
            return lease_write(sys, model, op, lease);
        }
        Op::AckMany { process, count } => {
            let Some(real) = sys.ack_many(process, count) else {
                return Ok(None);
            };
            (
                real,
                Box::new(move |m: &mut Model, _: &_| m.ack_many(process, count)),
            )
        }
        Op::Cancel { job } | Op::Retry { job } | Op::DeleteDead { job } => {
            let Some(id) = model.pick_job(job) else {
                return Ok(None);
            };
            job_write(sys, op, id)
        }
        _ => lifecycle(sys, model, op),
    }))
}

/// Process lifecycle and upkeep: heartbeats, deaths, reaping, shutdowns, promotion, bulk retry.
fn lifecycle(sys: &mut System, model: &mut Model, op: &Op) -> (Outcome, Apply) {
    match *op {
        Op::RetryDead => (
            sys.retry_dead(),
            Box::new(|m: &mut Model, _: &_| m.retry_dead()),
        ),
        Op::Register { process } => (
            sys.register(process),
            Box::new(move |m: &mut Model, _: &_| m.beat(process, true)),
        ),
        Op::Beat { process } => (
            sys.beat(process),
            Box::new(move |m: &mut Model, _: &_| m.beat(process, false)),
        ),
        Op::Die { process } => die(sys, model, process),
        Op::Reap => (sys.reap(), Box::new(|m: &mut Model, _: &_| m.reap())),
        Op::Shutdown { process } => (
            sys.shutdown(process),
            Box::new(move |m: &mut Model, _: &_| {
                let n = m.release(process);
                Outcome::Released(vec![(format!("p{process}"), n)])
            }),
        ),
        Op::Promote => (
            sys.promote(),
            Box::new(|m: &mut Model, f: &_| m.promote(f, false)),
        ),
        Op::WaitDue => (
            sys.wait_due_and_promote(),
            Box::new(|m: &mut Model, f: &_| m.promote(f, true)),
        ),
        _ => unreachable!("not a lifecycle step: {op:?}"),
    }
}

/// Ack, fail or requeue with one of the processes' lease handles (possibly a stale one), by
/// the process that holds it.
fn lease_write(
    sys: &mut System,
    model: &mut Model,
    op: &Op,
    lease: u8,
) -> Result<Option<(Outcome, Apply)>, String> {
    let ((process, real), mirror) = match (sys.take_lease(lease), model.take_lease(lease)) {
        (None, None) => return Ok(None),
        (Some(real), Some(mirror)) => (real, mirror),
        (real, mirror) => {
            return Err(format!(
                "lease handles differ: real {real:?}, model {mirror:?}"
            ));
        }
    };
    let (held_by, mirror) = mirror;
    if (process, real.job().id.as_str(), real.token()) != (held_by, &mirror.0, &mirror.1) {
        return Err(format!(
            "lease handles differ: real p{process} {real:?}, model p{held_by} {mirror:?}"
        ));
    }
    let (id, token) = mirror;
    let done: (Outcome, Apply) = match *op {
        Op::Ack { .. } => (
            sys.ack(&real),
            Box::new(move |m: &mut Model, _: &_| m.ack(process, &id, &token)),
        ),
        Op::Fail { retry_ms, .. } => (
            sys.fail(&real, retry_ms),
            Box::new(move |m: &mut Model, f: &_| {
                m.fail(process, &id, &token, retry_ms.is_some(), f)
            }),
        ),
        Op::Save { .. } => (
            sys.save(process, real),
            Box::new(move |m: &mut Model, _: &_| m.save(process, &id, &token)),
        ),
        _ => (
            sys.requeue(&real),
            Box::new(move |m: &mut Model, _: &_| m.requeue(process, &id, &token)),
        ),
    };
    Ok(Some(done))
}

/// Cancel, retry or delete job `id` through the API.
fn job_write(sys: &mut System, op: &Op, id: String) -> (Outcome, Apply) {
    match op {
        Op::Cancel { .. } => (
            sys.cancel(&id),
            Box::new(move |m: &mut Model, _: &_| m.cancel(&id)),
        ),
        Op::Retry { .. } => (
            sys.retry(&id),
            Box::new(move |m: &mut Model, _: &_| m.retry(&id)),
        ),
        _ => (
            sys.delete_dead(&id),
            Box::new(move |m: &mut Model, _: &_| m.delete_dead(&id)),
        ),
    }
}

/// A process dies: should another one be dead and not yet reaped, the reaper runs first, so
/// that one reap never releases two processes (the order it walks them in is Redis's).
fn die(sys: &mut System, model: &mut Model, process: usize) -> (Outcome, Apply) {
    let unreaped = (0..PROCESSES).any(|p| p != process && model.registered[p] && !model.alive[p]);
    let reaped = if unreaped {
        sys.reap()
    } else {
        Outcome::Released(vec![])
    };
    sys.die(process);
    (
        reaped,
        Box::new(move |m: &mut Model, _: &_| {
            let reaped = match unreaped {
                true => m.reap(),
                false => Outcome::Released(vec![]),
            };
            m.registered[process] = true;
            m.alive[process] = false;
            reaped
        }),
    )
}
