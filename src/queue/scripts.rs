//! The Lua scripts, one file each under `scripts/`, each with the shared prelude prepended.
//!
//! `redis::Script` runs them with EVALSHA and loads them again after a Redis restart (NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

const PRELUDE: &str = include_str!("scripts/prelude.lua");

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(&format!("{PRELUDE}\n{}", include_str!($file))));
    };
}

script!(ENQUEUE, "scripts/enqueue.lua");
script!(ENQUEUE_BULK, "scripts/enqueue_bulk.lua");
script!(FETCH, "scripts/fetch.lua");
script!(ACK, "scripts/ack.lua");
script!(ACK_MANY, "scripts/ack_many.lua");
script!(FAIL, "scripts/fail.lua");
script!(REQUEUE, "scripts/requeue.lua");
script!(RELEASE, "scripts/release.lua");
script!(HEARTBEAT, "scripts/heartbeat.lua");
script!(PROMOTE, "scripts/promote.lua");
script!(CANCEL, "scripts/cancel.lua");
script!(RETRY, "scripts/retry.lua");
script!(SAVE_STATE, "scripts/save_state.lua");
script!(STATS, "scripts/stats.lua");
script!(SUMMARIES, "scripts/summaries.lua");
script!(PRUNE_QUEUES, "scripts/prune_queues.lua");
script!(SCHEDULE_REGISTER, "scripts/schedule_register.lua");
script!(SCHEDULE_FIRE, "scripts/schedule_fire.lua");
script!(SCHEDULE_STATE, "scripts/schedule_state.lua");
script!(DEFER, "scripts/defer.lua");
script!(LIMIT_ACQUIRE, "scripts/limit_acquire.lua");
script!(LIMIT_RELEASE, "scripts/limit_release.lua");
script!(LIMIT_PAUSE, "scripts/limit_pause.lua");
script!(LIMIT_STATE, "scripts/limit_state.lua");
script!(DELETE, "scripts/delete.lua");
script!(RETRY_DEAD, "scripts/retry_dead.lua");
script!(PROCESSES, "scripts/processes.lua");
script!(MINUTES, "scripts/minutes.lua");
