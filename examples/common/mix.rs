//! The chaos runs' job mix: what each job is (quick, slow, failing once, checkpointing), the
//! body it is enqueued with, and what its finished record must look like.
//!
//! Shared by `tests/chaos.rs` and `examples/chaos` (through `#[path]`), so the suite and the
//! long run judge a job by the same rules. Needs the demo kinds (`DEMO_KINDS=true`).

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// Steps of a checkpointing job, and how long each takes.
const STEPS: u64 = 5;
const STEP_MS: u64 = 60;

/// The kinds of job a chaos run mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mix {
    /// `echo`: done at once; its result must equal its args.
    Quick,
    /// `sleep` for 100 to 400 ms: likely to be running when a process dies.
    Slow,
    /// `fail` with `times: 1`: its first start fails (or is interrupted), a later one succeeds.
    FailOnce,
    /// `steps`: five checkpointed steps; a later start resumes from the last checkpoint.
    Steps,
}

/// One planned job: its kind, and the body of its entry in a `POST /jobs` batch.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// What kind of job it is.
    pub(crate) mix: Mix,
    /// The batch entry, with an idempotency key, so a batch whose answer was lost (its process
    /// killed mid-request) can be sent again without making the jobs twice.
    pub(crate) body: Value,
}

/// Plans job `i` of a run: 40% quick, 30% slow, 15% failing once, 15% checkpointing.
pub(crate) fn plan(rng: &mut StdRng, run: u64, i: usize) -> Planned {
    let roll = rng.random_range(0..100);
    let key = format!("chaos-{run}-{i}");
    let (mix, kind, args) = match roll {
        0..40 => (Mix::Quick, "echo", json!({ "i": i })),
        40..70 => (
            Mix::Slow,
            "sleep",
            json!({ "ms": rng.random_range(100..400) }),
        ),
        70..85 => (Mix::FailOnce, "fail", json!({ "times": 1 })),
        _ => (
            Mix::Steps,
            "steps",
            json!({ "steps": STEPS, "step_ms": STEP_MS }),
        ),
    };
    let body = json!({ "kind": kind, "args": args, "idempotency_key": key });
    Planned { mix, body }
}

/// What a finished job's record says about the run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Starts that neither succeeded nor failed: cut short by a kill, a drain or a lost reply.
    pub(crate) interrupted: u64,
    /// Failed starts caused by Redis being away (a checkpoint that could not be saved).
    pub(crate) redis_failures: u64,
}

/// Checks a job's record (`GET /jobs/{id}`) against its kind: it succeeded, with the result its
/// kind gives, and every start is accounted for (one success, the failures its kind allows,
/// the rest interrupted). `redis_restarted` allows the failures a Redis outage causes.
pub(crate) fn judge(
    planned: &Planned,
    job: &Value,
    redis_restarted: bool,
) -> Result<Verdict, String> {
    if job["status"] != "succeeded" {
        return Err(format!("not succeeded: {job}"));
    }
    let attempts = job["attempts"]
        .as_u64()
        .ok_or(format!("no attempts: {job}"))?;
    let errors: Vec<&Value> = job["errors"]
        .as_array()
        .map_or(Vec::new(), |e| e.iter().collect());
    let redis_failures =
        judge_errors(planned.mix, &errors, redis_restarted).map_err(|e| format!("{e}: {job}"))?;
    judge_result(planned, job, attempts).map_err(|e| format!("{e}: {job}"))?;
    let accounted = 1 + errors.len() as u64;
    let interrupted = attempts.checked_sub(accounted).ok_or(format!(
        "{attempts} attempts for {accounted} finished starts: {job}"
    ))?;
    Ok(Verdict {
        interrupted,
        redis_failures,
    })
}

/// The failed starts a kind may have; returns how many came from a Redis outage.
fn judge_errors(mix: Mix, errors: &[&Value], redis_restarted: bool) -> Result<u64, String> {
    let message = |e: &Value| e["message"].as_str().unwrap_or_default().to_string();
    let from_redis = |e: &&&Value| redis_restarted && message(e).starts_with("could not save");
    match mix {
        Mix::FailOnce => match errors {
            [] => Ok(0),
            [only] if only["attempt"] == 1 => Ok(0),
            _ => Err("a fail-once job failed other than on its first start".into()),
        },
        Mix::Steps if errors.iter().all(|e| from_redis(&e)) => Ok(errors.len() as u64),
        _ if errors.is_empty() => Ok(0),
        _ => Err("unexpected failed attempts".into()),
    }
}

/// The result each kind must have produced.
fn judge_result(planned: &Planned, job: &Value, attempts: u64) -> Result<(), String> {
    let result = &job["result"];
    let ok = match planned.mix {
        Mix::Quick => *result == planned.body["args"],
        Mix::Slow => result["slept_ms"] == planned.body["args"]["ms"],
        Mix::FailOnce => attempts >= 2 && result["succeeded_on_attempt"] == attempts,
        Mix::Steps => {
            let resumed = result["resumed_from"].as_u64().unwrap_or(u64::MAX);
            result["completed"] == STEPS && resumed <= STEPS && (attempts > 1 || resumed == 0)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("wrong result for {:?}", planned.mix))
    }
}
