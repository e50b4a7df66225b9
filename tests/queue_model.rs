//! The queue as a state machine, tested against a model: random sequences of enqueues (delayed
//! or not, with idempotency keys), fetches by three processes, acks, failures with and without
//! retry, requeues, cancels, retries (one job, or every dead job), deletes, heartbeats, deaths
//! and reaping, shutdowns and promotion run against a real `redis-server` through the public
//! `Queue` API, and against the in-memory model of `queue_model/model.rs`. After every step both
//! give the same answer and agree on every job's status, attempts, failures and lease, and the
//! invariants hold: each job is listed in exactly one place, a lease is held by at most one
//! handle, nothing accepted disappears (retention outlasts the test).
//!
//! `PROPTEST_CASES` sets the number of cases (default 128), `QUEUE_MODEL_STEPS` the most steps
//! in one (default 40). A failure is shrunk to a short sequence and printed; such sequences
//! are kept below as plain regression tests.

mod support;

#[path = "queue_model/bulk.rs"]
mod bulk;
#[path = "queue_model/case.rs"]
mod case;
#[path = "queue_model/checks.rs"]
mod checks;
#[path = "queue_model/model.rs"]
mod model;
#[path = "queue_model/model_api.rs"]
mod model_api;
#[path = "queue_model/model_processes.rs"]
mod model_processes;
#[path = "queue_model/ops.rs"]
mod ops;
#[path = "queue_model/outcome.rs"]
mod outcome;
#[path = "queue_model/retention.rs"]
mod retention;
#[path = "queue_model/system.rs"]
mod system;

use std::time::Instant;

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use case::run_case;
use ops::Op;
use retention::Keep;
use system::System;

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `PROPTEST_CASES` cases (or `default_cases`) against a queue keeping at most `keep`.
fn agrees_with_model(keep: Keep, default_cases: u32) {
    let cases = env_number("PROPTEST_CASES", default_cases);
    let steps = env_number("QUEUE_MODEL_STEPS", 40) as usize;
    let config = Config {
        cases,
        // Failures become regression tests below, not files next to the source.
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    // The runner wants a `Fn`; the cases run one after another.
    let sys = std::cell::RefCell::new(System::start(keep));
    let began = Instant::now();
    let result = TestRunner::new(config).run(&ops::ops(steps), |ops| {
        run_case(&mut sys.borrow_mut(), &ops).map_err(TestCaseError::fail)
    });
    eprintln!(
        "queue model ({keep:?}): {cases} cases of up to {steps} steps in {:.1?}",
        began.elapsed()
    );
    match result {
        Ok(()) => eprintln!("steps that agreed, by outcome: {:#?}", sys.borrow().tally),
        Err(TestError::Fail(why, ops)) => panic!("{why}\nshrunk sequence: {ops:#?}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_queue_agrees_with_its_model_over_random_operation_sequences() {
    agrees_with_model(Keep::default(), 128);
}

/// Retention bounds low enough that cases push finished and dead jobs out.
#[test]
fn the_queue_agrees_with_its_model_when_retention_deletes_jobs() {
    let keep = Keep {
        finished: 3,
        dead: 2,
    };
    agrees_with_model(keep, 64);
}

/// Runs one fixed sequence (a shrunk failure, kept).
fn replay(ops: &[Op]) {
    let mut sys = System::start(Keep::default());
    if let Err(why) = run_case(&mut sys, ops) {
        panic!("{why}");
    }
}

/// Found by the model: a job cancelled while it waited and then retried had its id twice in
/// its queue list (the old one stays until a fetch passes it, and the retry pushed another), so
/// `GET /jobs?status=queued` listed it twice and the queue's depth counted it twice.
#[test]
fn a_job_cancelled_as_it_waits_then_retried_waits_in_its_queue_once() {
    replay(&[
        Op::Enqueue {
            queue: 0,
            delay_ms: None,
            idem: None,
            max_attempts: 1,
        },
        Op::Cancel { job: 0 },
        Op::Retry { job: 0 },
    ]);
}

/// The same job, cancelled and retried again after a fetch passed its old id: it is pushed anew.
#[test]
fn a_cancelled_job_whose_old_id_was_passed_is_queued_anew_on_retry() {
    replay(&[
        Op::Enqueue {
            queue: 0,
            delay_ms: None,
            idem: None,
            max_attempts: 1,
        },
        Op::Cancel { job: 0 },
        Op::Fetch {
            process: 0,
            count: 1,
        },
        Op::Retry { job: 0 },
        Op::Cancel { job: 0 },
        Op::Retry { job: 0 },
        Op::Fetch {
            process: 2,
            count: 2,
        },
        Op::Ack { lease: 0 },
    ]);
}

/// Found by the model: a running job cancelled through the API showed as `cancelled` in
/// `GET /jobs/{id}` but in no list (no longer `running`, not yet in the cancelled index) until
/// its owner wrote the outcome: for a dead owner, until the reaper came.
#[test]
fn a_running_job_is_listed_as_cancelled_as_soon_as_it_is_cancelled() {
    replay(&[
        Op::Enqueue {
            queue: 0,
            delay_ms: None,
            idem: None,
            max_attempts: 1,
        },
        Op::Fetch {
            process: 0,
            count: 1,
        },
        Op::Cancel { job: 0 },
        Op::Die { process: 0 },
        Op::Reap,
    ]);
}

/// A process reaped while it ran a job writes nothing with its old lease; the job runs again.
#[test]
fn a_reaped_process_writes_nothing_and_its_job_runs_again_elsewhere() {
    replay(&[
        Op::Enqueue {
            queue: 0,
            delay_ms: None,
            idem: None,
            max_attempts: 2,
        },
        Op::Fetch {
            process: 0,
            count: 1,
        },
        Op::Die { process: 0 },
        Op::Reap,
        Op::Fetch {
            process: 1,
            count: 1,
        },
        // Handles in order: p0's (stale since the reap), then p1's.
        Op::Fail {
            lease: 0,
            retry_ms: None,
        },
        Op::Requeue { lease: 1 },
        Op::Fetch {
            process: 1,
            count: 1,
        },
        Op::Ack { lease: 0 },
    ]);
}

#[test]
fn the_models_queues_share_the_shard_its_ids_name() {
    for queue in ops::QUEUES {
        assert_eq!(onedyno::queue::shard_number(queue), ops::SHARD);
    }
}
