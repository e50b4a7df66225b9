//! Queue storage: the only code that knows Redis keys.
//!
//! # Data model
//! Keys live in shards (see `keys.rs` and the README's "Key layout and Redis Cluster"): a
//! queue's keys start with its shard's hash tag `{prefix:sXXX}:` (`XXX`: FNV-1a of the queue's
//! name mod 4096, hex), what is not per job with the deployment's `{prefix}:`. A job id (UUIDv8
//! laid out like v7) carries its queue's shard, so its record's key follows from the id.
//!
//! Per shard:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `job:{id}` | hash | the record, one field each (see [The job hash](#the-job-hash)); JSON values as text |
//! | `queue:{name}` | list | ids ready to run; new ones are pushed on the left, workers take from the right, an interrupted job goes back on the right (first); a cancelled job's id stays until a fetch skips it |
//! | `queues` | set | the shard's queue names with waiting jobs or a live process working them (for `GET /queues`; others are pruned) |
//! | `inflight:{process}` | list | ids a process holds; a job is always in exactly one queue or one in-flight list |
//! | `process:{process}` | string, TTL | the process's registration in the shard (its heartbeat's info and TTL); its expiry means the process is gone |
//! | `processes` | set | processes registered in the shard, which the shard's reaper walks |
//! | `scheduled` | zset | delayed jobs by due time (ms) |
//! | `retry` | zset | failed jobs by the time of their next attempt |
//! | `dead` | zset | dead jobs by time of death, trimmed by age and count |
//! | `finished` | list | succeeded and cancelled job ids, newest first, at most `JOB_RETENTION_MAX`: a job pushed out is deleted |
//! | `done:cancelled` | zset | cancelled ids by finish time, for their list (succeeded jobs list from `finished`); a running job is listed when it is cancelled, before its owner finishes it; an id leaves it when it leaves `finished` or passes its retention |
//! | `minute:{n}` | hash, TTL 65 min | attempts finished (`processed`) and failed (`failed`) in minute `n` since the epoch |
//! | `idem:{queue}:{key}` | string, TTL 24 h | the id of the job an `Idempotency-Key` created (a key's scope is its queue) |
//! | `schedule:{name}` | hash | a periodic job enqueueing to one of the shard's queues: `signature` and `since` (when it was first seen with that pattern), `tick` (the latest tick handled: fired, skipped or missed), `last_tick last_run_at last_job_id` of the last one that fired |
//!
//! The deployment's (`{prefix}:`):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `shards` | set | numbers of the shards that may hold keys (listings and maintenance walk them) |
//! | `process:{process}` | string, TTL | the process's heartbeat, with its info (`GET /processes`) |
//! | `processes` | set | registered processes |
//! | `health` | string, TTL 10 s | written by `/health` to learn whether Redis takes writes |
//! | `limit_pauses` | zset | shared limit keys paused by a throttling service, by the ms the pause ends |
//! | `limit:rate:{key}` | string, TTL | a shared limit's next start (GCRA), expiring once it is past |
//! | `limit:running:{key}` | zset | a concurrency limit's holders (`{process}\|{job id}`) by expiry |
//! | `limit:ticket:{id}` | string, TTL | the rate-limit turn booked for a job waiting behind a shared limit |
//!
//! `{prefix}:` is also the legacy shard: releases before shards kept every key of the per-shard
//! table under it (with UUIDv7 ids), and it is served like any shard, so what they left runs in
//! place. Its `process:` and `processes` are the deployment's: every process registers there.
//!
//! Pub/sub channels `{prefix}:wake` (a push found a queue's list empty: see `wake` in
//! `prelude.lua`; the message names the queue, so a process knows which shard to fetch from) and
//! `{prefix}:cancel` (a running job was cancelled) carry hints only: every process also polls, so
//! a lost message delays work but never loses it.
//!
//! A script is passed its shard's base and touches keys of that shard only (one Redis Cluster
//! slot), which is why it may touch keys it is not passed in KEYS (a job's hash, another queue's
//! list of the same shard) and still run atomically; `KEYS[1]` is always a key of the shard, so a
//! cluster client routes the call. The scripts spell every key name once, in
//! `scripts/prelude.lua`.
//!
//! ## The job hash
//! The hot fields have one-letter names, so a record stays a small listpack (see
//! `scripts/prelude.lua`): `k` kind, `q` queue, `a` args, `s` status, `n` attempts, `x` failures,
//! `m` max_attempts, `T` timeout_ms, `c` created_at, `r` run_at, `e` enqueued_at, `t` started_at,
//! `f` finished_at, `L` lease, `o` owner, `R` result. Two times are kept as small offsets, which
//! listpack stores in 2-4 bytes instead of 10: `C` (instead of `c`) is `created_at` less the ms
//! the job's id carries, and a succeeded job keeps `d`, its duration, instead of `f`
//! (`finished_at` is `started_at + d`). Below they go by their long names. The key
//! names the job (no `id` field); a field that would hold nothing new is left out: `attempts`
//! and `failures` until they count one, `run_at` when it is `created_at`, `args` when `{}`,
//! `result` when `null`, `enqueued_at` once an attempt's outcome is written (a running job keeps
//! it: one write less per fetch, and nothing shows it). Records written with the long names
//! (and an `id`) are renamed in place by the first script that touches them.
//! - `kind queue args max_attempts timeout_ms created_at`: what the job was enqueued with.
//! - `status`: `scheduled queued running retrying succeeded dead cancelled`, the one state the
//!   API shows; the keys the job is listed under follow from it.
//! - `attempts`: fetches so far, counted up by each fetch (a requeue still counts one, a job put
//!   back by a shared limit before it started does not: `defer.lua` takes it back);
//!   `failures`: failed attempts since the job was last retried through the API, which
//!   `max_attempts` bounds.
//! - `lease`: `{process}:{attempt}`, written by the fetch that leased the job and deleted when
//!   its outcome is written. Every write a worker makes for the job names the lease, and the
//!   script compares it first, so a process that lost its lease (it stalled past its heartbeat
//!   and was reaped, and the job was fetched again) writes nothing.
//! - `owner`: the process holding the job, set and cleared with `lease`; the heartbeat and the
//!   release of a process only touch jobs whose owner they are.
//! - `cancel`: `1` once the job is cancelled through the API. A running job keeps running until
//!   its owner notices (pub/sub, or its next heartbeat); whatever outcome it then writes, the job
//!   finishes as cancelled. Cleared by a retry.
//! - `w`: `1` while the id of a job cancelled as it waited still stands in its queue list (a
//!   fetch that passes the id deletes it). A retry then lets the job wait there again instead of
//!   pushing its id a second time, so a job is never listed, counted or queued twice.
//! - `checkpoint`: JSON a running job saved for its next attempt to resume from; `progress`:
//!   JSON shown by `GET /jobs/{id}`; `result`: the handler's JSON result.
//! - `err_seq` and `err:{n}`: each failed attempt writes one entry `{attempt, at, message}` to
//!   `err:{n}`, `n` counted up in `err_seq`; only the last [`ERRORS_KEPT`] are kept, so a failure
//!   costs the same whatever came before it.
//! - `idem_key` and `idem_fp`: the `Idempotency-Key` that created the job and a hash of the
//!   request that came with it, so a repeated key tells the same request from a different one
//!   and a finished job lives at least as long as its key.
//! - `schedule` and `schedule_tick`: the periodic job and the tick (ms) that enqueued it, if any.
//! - `created_at run_at enqueued_at started_at finished_at`: times in ms since the epoch, read
//!   from Redis's clock (a `C` offset too: it is Redis's time less the id's).
//!
//! Every change of state is one Lua script (see `scripts/`), and every write a worker makes for a
//! job it fetched checks the job's `lease` in the same script. Scripts read the clock from Redis
//! (`TIME`), so dynos with skewed clocks agree on due times.
//!
//! ## Layout
//! This file holds [`Queue`] itself; its operations are split by caller: `jobs.rs` (the HTTP
//! API's operations on one job), `lease.rs` (a runner's writes under its lease),
//! `fetch.rs` (leasing jobs, shard by shard), `processes.rs` (heartbeat, release and the
//! maintenance loops' upkeep) and `stats.rs` (snapshots and health); `schedules.rs` fires periodic jobs' ticks and reads
//! their state. `keys.rs` names keys and shards, `ids.rs` makes job ids that carry their shard,
//! and `shards.rs` keeps what a process knows of the shards (known, lately empty).
//! `reply.rs` reads script replies as the outcome types.

mod ack_batch;
mod bulk;
mod cluster;
mod connection;
mod enqueue_batch;
mod error;
mod events;
mod fetch;
mod ids;
mod job;
mod jobs;
mod keys;
mod lease;
mod limit_store;
mod limits;
mod list_merge;
mod lists;
mod manage;
mod memory;
mod overview;
mod processes;
mod pubsub_connect;
mod redis_connection;
mod reply;
mod schedules;
mod scripts;
mod shards;
pub mod spec;
mod stats;
mod status;
mod summary;

use std::sync::Arc;
use std::time::Duration;

pub use bulk::{BULK_MAX, BULK_ROOM, BulkEnqueued, BulkItem, BulkRoom};
pub use cluster::ClusterMode;
pub use connection::RedisHandle;
pub use error::QueueError;
pub use events::QueueEvent;
pub use fetch::Fetched;
pub use ids::{millis_of, new_job_id, shard_of};
pub use job::{AttemptError, JobRecord, JobStatus};
pub use jobs::{Cancelled, Enqueued, IDEMPOTENCY_TTL, NewJob, Retried, RunAt};
pub use keys::{Keys, SHARDS, Shard, shard_number};
pub use lease::{FailOutcome, Lease, NextAttempt, RequeueOutcome, StateField};
pub use limit_store::{DeferOutcome, LimitCheck, LimitState, LimitVerdict, Refusal};
pub use limits::{
    CHECKPOINT_MAX_BYTES, ERROR_MAX_BYTES, ERRORS_KEPT, PROGRESS_MAX_BYTES, RESULT_MAX_BYTES,
    SUMMARY_ERROR_MAX_BYTES, TooLarge, json_within, truncate,
};
pub use lists::{JobPage, ListCursor, ListRequest};
pub use manage::{BulkRetried, Deleted, RETRY_BATCH};
pub use memory::RedisMemory;
pub use overview::{MINUTES_SHOWN, MinuteCount, ProcessInfo};
pub use processes::{Beat, HeldJob, Registration};
pub use redis_connection::RedisConnection;
pub use schedules::{ScheduleState, Tick, TickOutcome};
pub use stats::{QUEUES_LISTED, QueueStats, Stats};
pub use summary::JobSummary;

/// Retention and limits the scripts apply.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long a succeeded or cancelled job stays readable.
    pub job: Duration,
    /// How many succeeded or cancelled jobs are kept at most.
    pub job_max: u64,
    /// How long a dead job is kept.
    pub dead: Duration,
    /// How many dead jobs are kept at most.
    pub dead_max: u64,
}

/// The job queue in Redis. Cheap to clone (one reference count): every fetched job's lease
/// carries one.
#[derive(Clone)]
pub struct Queue(Arc<QueueParts>);

/// What a [`Queue`] shares among its clones.
pub struct QueueParts {
    redis: RedisHandle,
    keys: Keys,
    retention: Arc<Retention>,
    /// Runners' acks on their way to Redis together (see `ack_batch.rs`).
    acks: ack_batch::AckSender,
    /// Requests' new jobs on their way to Redis together (see `enqueue_batch.rs`).
    enqueues: enqueue_batch::EnqueueSender,
    /// Shards announced in the known-shards set, and those a fetch found empty lately.
    shards: Arc<shards::ShardBook>,
    /// Jobs of batches being stored now, at most [`BULK_ROOM`] (see `bulk.rs`).
    bulk_room: Arc<tokio::sync::Semaphore>,
}

impl std::ops::Deref for Queue {
    type Target = QueueParts;

    fn deref(&self) -> &QueueParts {
        &self.0
    }
}

/// A duration as the whole milliseconds scripts take.
fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Queue {
    /// A queue in `redis` under `prefix`.
    pub fn new(redis: RedisHandle, prefix: &str, retention: Retention) -> Queue {
        Queue(Arc::new(QueueParts {
            redis,
            keys: Keys::new(prefix),
            retention: Arc::new(retention),
            acks: Default::default(),
            enqueues: Default::default(),
            shards: Default::default(),
            bulk_room: Queue::new_bulk_room(),
        }))
    }

    /// Starts the tasks that carry coalesced enqueues and acks to Redis (`enqueue_batch.rs`,
    /// `ack_batch.rs`) on the calling runtime. The app calls it on its main runtime, beside the
    /// Redis connection's task: started lazily instead, the enqueue batcher would live on the
    /// actix thread of the first request, every other thread's enqueues would wait on that
    /// thread's event loop, and it would stop with that thread at shutdown. Calling it again does
    /// nothing.
    pub fn start_batchers(&self) {
        self.enqueue_sender();
        self.ack_sender();
    }

    /// The key names (for tests and tools that look into Redis).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A new job id for a job sent to `queue`: it names the queue's shard (see `ids.rs`).
    pub fn job_id_for(queue: &str) -> String {
        new_job_id(shard_number(queue))
    }

    /// The Redis handle (for health checks and the connection task).
    pub fn redis(&self) -> &RedisHandle {
        &self.redis
    }

    /// Listens to the wake and cancel channels on a connection of its own (see [`QueueEvent`]).
    pub fn subscribe(
        &self,
        shutdown: crate::shutdown::Shutdown,
    ) -> tokio::sync::mpsc::Receiver<QueueEvent> {
        events::subscribe(self.redis.clone(), self.keys.clone(), shutdown)
    }
}
