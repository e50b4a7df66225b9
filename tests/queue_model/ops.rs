//! The operations a case is made of, and the strategy that draws them.
//!
//! Job and lease choices are small numbers taken modulo what exists when the step runs, so a
//! shrunk sequence stays meaningful after steps before it are dropped.

use proptest::prelude::*;

/// Worker processes in a case.
pub(crate) const PROCESSES: usize = 3;
/// The most jobs in one batch.
pub(crate) const BULK_MAX: usize = 4;
/// Queue names, in the order `GET /jobs?status=queued` walks them.
/// Two queues in one shard (FNV-1a of either name mod 4096 is 3433, [`SHARD`]), so the model can
/// name its jobs with ids fixed in advance: a job id names its queue's shard.
pub(crate) const QUEUES: [&str; 2] = ["q418", "q502"];

/// The shard of both [`QUEUES`].
pub(crate) const SHARD: u16 = 3433;

/// The queues process `p` fetches from, in order: they overlap, so processes compete.
pub(crate) fn queues_of(process: usize) -> Vec<String> {
    let order: &[usize] = match process {
        0 => &[0, 1],
        1 => &[1, 0],
        _ => &[0],
    };
    order.iter().map(|&q| QUEUES[q].to_string()).collect()
}

/// One step of a case.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Stores a job; `delay_ms` makes it scheduled; `idem` is an idempotency key (0..3) sent
    /// with request `variant` (same key + other variant = a different request).
    Enqueue {
        queue: usize,
        delay_ms: Option<u64>,
        idem: Option<(u8, bool)>,
        max_attempts: u32,
    },
    /// Stores a batch in one call (`POST /jobs` with an array): all or nothing.
    EnqueueBulk { jobs: Vec<NewSpec> },
    /// Leases up to `count` jobs to a process.
    Fetch { process: usize, count: usize },
    /// Acks one of the leases the processes were given (stale or not), by the process that
    /// was given it.
    Ack { lease: u8 },
    /// A process acks its first `count` handles at the same time (batched by the queue).
    AckMany { process: usize, count: usize },
    /// Fails one: retry after `retry_ms`, or never.
    Fail { lease: u8, retry_ms: Option<u64> },
    /// Gives one back without a failure.
    Requeue { lease: u8 },
    /// Saves progress under one (the handle is kept).
    Save { lease: u8 },
    /// Cancels a job through the API.
    Cancel { job: u8 },
    /// Retries one dead or cancelled job through the API.
    Retry { job: u8 },
    /// Retries every dead job (`POST /jobs/retry?status=dead`).
    RetryDead,
    /// Deletes a dead job for good.
    DeleteDead { job: u8 },
    /// Registers a process (again), with a long heartbeat.
    Register { process: usize },
    /// Renews a process's heartbeat (a reaped one learns it was reaped).
    Beat { process: usize },
    /// The process stops beating: its heartbeat expires (it is reaped by a later `Reap`).
    Die { process: usize },
    /// The reaper releases every process whose heartbeat expired.
    Reap,
    /// A process shuts down and releases its own jobs.
    Shutdown { process: usize },
    /// Promotes whatever is due now (time has passed by however long the steps took).
    Promote,
    /// Waits until every scheduled job and retry is due, then promotes.
    WaitDue,
}

/// One job of a batch, drawn as a single enqueue's fields are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewSpec {
    pub(crate) queue: usize,
    pub(crate) delay_ms: Option<u64>,
    pub(crate) idem: Option<(u8, bool)>,
    pub(crate) max_attempts: u32,
}

fn process() -> impl Strategy<Value = usize> {
    0..PROCESSES
}

fn new_spec() -> impl Strategy<Value = NewSpec> {
    (
        0..QUEUES.len(),
        prop::option::weighted(0.3, 1..50u64),
        prop::option::weighted(0.3, (0..3u8, any::<bool>())),
        1..4u32,
    )
        .prop_map(|(queue, delay_ms, idem, max_attempts)| NewSpec {
            queue,
            delay_ms,
            idem,
            max_attempts,
        })
}

fn enqueue() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => new_spec().prop_map(|s| Op::Enqueue {
            queue: s.queue,
            delay_ms: s.delay_ms,
            idem: s.idem,
            max_attempts: s.max_attempts,
        }),
        1 => prop::collection::vec(new_spec(), 1..=BULK_MAX).prop_map(|jobs| Op::EnqueueBulk { jobs }),
    ]
}

fn worker_write() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(|lease| Op::Ack { lease }),
        (any::<u8>(), prop::option::weighted(0.7, 0..30u64))
            .prop_map(|(lease, retry_ms)| Op::Fail { lease, retry_ms }),
        any::<u8>().prop_map(|lease| Op::Requeue { lease }),
        any::<u8>().prop_map(|lease| Op::Save { lease }),
        (process(), 2..5usize).prop_map(|(process, count)| Op::AckMany { process, count }),
    ]
}

fn lifecycle() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => process().prop_map(|process| Op::Register { process }),
        1 => process().prop_map(|process| Op::Beat { process }),
        2 => process().prop_map(|process| Op::Die { process }),
        2 => Just(Op::Reap),
        1 => process().prop_map(|process| Op::Shutdown { process }),
    ]
}

fn api() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<u8>().prop_map(|job| Op::Cancel { job }),
        2 => any::<u8>().prop_map(|job| Op::Retry { job }),
        1 => Just(Op::RetryDead),
        1 => any::<u8>().prop_map(|job| Op::DeleteDead { job }),
    ]
}

/// One step, weighted so that jobs are made, run and finished in most cases.
pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => enqueue(),
        5 => (process(), 1..3usize).prop_map(|(process, count)| Op::Fetch { process, count }),
        7 => worker_write(),
        3 => api(),
        3 => lifecycle(),
        1 => Just(Op::Promote),
        1 => Just(Op::WaitDue),
    ]
}

/// A case: up to `max_len` steps.
pub(crate) fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=max_len)
}
