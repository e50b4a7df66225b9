//! Key names, for the queue's Rust code and for tests that look into Redis.
//!
//! Keys live in shards: a shard is a hash tag, so all of one shard's keys sit in one Redis
//! Cluster slot and a script run on a shard may touch any key of it. A queue's shard is
//! `{prefix:sXXX}` (`XXX` = a hash of the queue's name mod [`SHARDS`], three hex digits), so
//! different queues land on different slots. The deployment's own tag `{prefix}` holds what is
//! not per job (limits, `health`, the set of known shards) and is also the *legacy* shard: the
//! layout every key had before queues had shards of their own, still served in place (see
//! `README.md`, "Key layout and Redis Cluster"). Scripts build the keys they are not passed from
//! [`Shard::base`] with the same names, spelled once in `scripts/prelude.lua`.

use super::ids;

/// How many shards queues are spread over (the shard number has 12 bits, carried in job ids).
pub const SHARDS: u16 = 4096;

/// The keys of one shard: a queue's (or the legacy shard's) jobs, lists and sets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    base: String,
}

impl Shard {
    /// `{prefix:sXXX}:` (or `{prefix}:` for the legacy shard), passed to scripts as their base.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The job record (hash).
    pub fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.base)
    }

    /// A queue's list of ready job ids.
    pub fn queue(&self, name: &str) -> String {
        format!("{}queue:{name}", self.base)
    }

    /// The id of the job an `Idempotency-Key` created (scoped to the shard of the job's queue).
    pub fn idem(&self, key: &str) -> String {
        format!("{}idem:{key}", self.base)
    }

    /// Succeeded and cancelled job ids, newest first.
    pub fn finished(&self) -> String {
        format!("{}finished", self.base)
    }

    /// Job ids of one finished `status` by finish time (only `cancelled` has one).
    pub fn done(&self, status: &str) -> String {
        format!("{}done:{status}", self.base)
    }

    /// The processed and failed counts of one minute (minutes since the epoch).
    pub fn minute(&self, minute: i64) -> String {
        format!("{}minute:{minute}", self.base)
    }

    /// The set of this shard's queue names.
    pub fn queues(&self) -> String {
        format!("{}queues", self.base)
    }

    /// A process's in-flight list in this shard.
    pub fn inflight(&self, process: &str) -> String {
        format!("{}inflight:{process}", self.base)
    }

    /// A process's registration in this shard (string with the heartbeat's TTL).
    pub fn heartbeat(&self, process: &str) -> String {
        format!("{}process:{process}", self.base)
    }

    /// The processes registered in this shard, which its reaper walks.
    pub fn processes(&self) -> String {
        format!("{}processes", self.base)
    }

    /// Delayed jobs, by due time.
    pub fn scheduled(&self) -> String {
        format!("{}scheduled", self.base)
    }

    /// Failed jobs waiting for their next attempt, by due time.
    pub fn retry(&self) -> String {
        format!("{}retry", self.base)
    }

    /// Dead jobs, by time of death.
    pub fn dead(&self) -> String {
        format!("{}dead", self.base)
    }

    /// A periodic job's state (hash), in the shard of the queue it enqueues to.
    pub fn schedule(&self, name: &str) -> String {
        format!("{}schedule:{name}", self.base)
    }
}

/// The key namespace of one deployment (`REDIS_PREFIX`).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    global: Shard,
}

impl Keys {
    /// Keys under `{prefix}` and `{prefix:sXXX}`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            global: Shard {
                base: format!("{{{prefix}}}:"),
            },
        }
    }

    /// `{prefix}:`, the deployment's own tag (and the legacy shard's base).
    pub fn base(&self) -> &str {
        self.global.base()
    }

    /// The legacy shard: keys written before queues had shards of their own.
    pub fn legacy(&self) -> &Shard {
        &self.global
    }

    /// Shard number `n` (taken mod [`SHARDS`]).
    pub fn shard(&self, n: u16) -> Shard {
        Shard {
            base: format!("{{{}:s{:03x}}}:", self.prefix, n % SHARDS),
        }
    }

    /// The shard of a queue's keys.
    pub fn for_queue(&self, queue: &str) -> Shard {
        self.shard(shard_number(queue))
    }

    /// The shard of a job's record, read from its id (ids without a shard are legacy ones).
    pub fn for_job(&self, id: &str) -> Shard {
        match ids::shard_of(id) {
            Some(n) => self.shard(n),
            None => self.global.clone(),
        }
    }

    /// The shard number a `base` names, or `None` for the legacy shard (or another prefix).
    pub fn number_of(&self, shard: &Shard) -> Option<u16> {
        let head = format!("{{{}:s", self.prefix);
        let hex = shard.base.strip_prefix(&head)?.strip_suffix("}:")?;
        u16::from_str_radix(hex, 16).ok()
    }

    /// A job record (hash), in the shard its id names.
    pub fn job(&self, id: &str) -> String {
        self.for_job(id).job(id)
    }

    /// A queue's list of ready job ids, in its shard.
    pub fn queue(&self, name: &str) -> String {
        self.for_queue(name).queue(name)
    }

    /// The shards that may hold keys (set of shard numbers), so listings know where to look.
    pub fn shards(&self) -> String {
        format!("{}shards", self.global.base)
    }

    /// A process's heartbeat, with its info (string with a TTL).
    pub fn heartbeat(&self, process: &str) -> String {
        self.global.heartbeat(process)
    }

    /// The set of registered processes (for `GET /processes`).
    pub fn processes(&self) -> String {
        self.global.processes()
    }

    /// The key `/health` writes to learn whether Redis takes writes.
    pub fn health(&self) -> String {
        format!("{}health", self.global.base)
    }

    /// The pub/sub channel that says a queue has a ready job (the message names the queue).
    pub fn wake_channel(&self) -> String {
        format!("{}wake", self.global.base)
    }

    /// The pub/sub channel that says a running job was cancelled.
    pub fn cancel_channel(&self) -> String {
        format!("{}cancel", self.global.base)
    }

    /// Shared limits' pauses: limit key by the ms the pause ends.
    pub fn limit_pauses(&self) -> String {
        format!("{}limit_pauses", self.global.base)
    }

    /// A shared limit's rate state: when its next start is due (GCRA's theoretical arrival time).
    pub fn limit_rate(&self, key: &str) -> String {
        format!("{}limit:rate:{key}", self.global.base)
    }

    /// A shared limit's holders (zset by expiry): who runs under it now.
    pub fn limit_running(&self, key: &str) -> String {
        format!("{}limit:running:{key}", self.global.base)
    }

    /// The rate-limit turn booked for a job waiting behind a shared limit (ms, with a TTL).
    pub fn limit_ticket(&self, id: &str) -> String {
        format!("{}limit:ticket:{id}", self.global.base)
    }
}

/// A queue's shard number: FNV-1a (32 bits) of its name, mod [`SHARDS`]. Stable across
/// processes and versions: changing it would strand every queued job.
pub fn shard_number(queue: &str) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in queue.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % u32::from(SHARDS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_and_its_jobs_share_one_tag() {
        let k = Keys::new("app");
        let shard = k.for_queue("emails");
        let id = ids::new_job_id(shard_number("emails"));
        assert_eq!(k.for_job(&id), shard);
        assert!(k.job(&id).starts_with(shard.base()));
        assert!(k.queue("emails").starts_with(shard.base()));
        assert!(shard.base().starts_with("{app:s") && shard.base().ends_with("}:"));
        assert_eq!(k.number_of(&shard), Some(shard_number("emails")));
        assert_eq!(k.number_of(k.legacy()), None);
    }

    #[test]
    fn the_shard_hash_is_fnv1a_mod_4096() {
        // FNV-1a 32 of "" is its offset basis, of "a" 0xe40c292c (published test vectors).
        assert_eq!(shard_number(""), (0x811c_9dc5_u32 % 4096) as u16);
        assert_eq!(shard_number("a"), (0xe40c_292c_u32 % 4096) as u16);
        assert_ne!(shard_number("default"), shard_number("critical"));
        assert_eq!(Keys::new("p").shard(0x1ab).base(), "{p:s1ab}:");
    }

    #[test]
    fn legacy_ids_and_global_keys_use_the_deployment_tag() {
        let k = Keys::new("app");
        let v7 = uuid::Uuid::now_v7().to_string();
        assert_eq!(k.job(&v7), format!("{{app}}:job:{v7}"));
        assert_eq!(k.job("not-a-uuid"), "{app}:job:not-a-uuid");
        for key in [
            k.shards(),
            k.heartbeat("p"),
            k.processes(),
            k.health(),
            k.wake_channel(),
            k.cancel_channel(),
            k.limit_pauses(),
            k.limit_rate("kind:x"),
            k.limit_running("http:h:1"),
            k.limit_ticket("j"),
        ] {
            assert!(key.starts_with("{app}:"), "{key}");
        }
    }
}
