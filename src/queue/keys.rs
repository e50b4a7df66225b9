//! Key names, for the queue's Rust code and for tests that look into Redis. Every key starts with
//! `{prefix}:`, a hash tag, so that all of one deployment's keys live in one Redis Cluster slot
//! and every script may touch any of them. Scripts build the keys they are not passed from
//! [`Keys::base`] with the same names, spelled once in `scripts/prelude.lua`.

/// The key namespace of one deployment (`REDIS_PREFIX`).
#[derive(Clone, Debug)]
pub struct Keys {
    base: String,
}

impl Keys {
    /// Keys under `{prefix}:`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            base: format!("{{{prefix}}}:"),
        }
    }

    /// `{prefix}:`, passed to scripts that build job and queue keys themselves.
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

    /// The id of the job an `Idempotency-Key` created.
    pub fn idem(&self, key: &str) -> String {
        format!("{}idem:{key}", self.base)
    }

    /// Succeeded and cancelled job ids, newest first.
    pub fn finished(&self) -> String {
        format!("{}finished", self.base)
    }

    /// Job ids of one finished `status` by finish time (only `cancelled` has one: succeeded
    /// jobs list from [`Keys::finished`]).
    pub fn done(&self, status: &str) -> String {
        format!("{}done:{status}", self.base)
    }

    /// The processed and failed counts of one minute (minutes since the epoch).
    pub fn minute(&self, minute: i64) -> String {
        format!("{}minute:{minute}", self.base)
    }

    /// The set of queue names jobs have been sent to.
    pub fn queues(&self) -> String {
        format!("{}queues", self.base)
    }

    /// A process's in-flight list.
    pub fn inflight(&self, process: &str) -> String {
        format!("{}inflight:{process}", self.base)
    }

    /// A process's heartbeat (string with a TTL).
    pub fn heartbeat(&self, process: &str) -> String {
        format!("{}process:{process}", self.base)
    }

    /// The set of registered processes.
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

    /// A periodic job's state (hash): the latest tick handled, its last job, since when it exists.
    pub fn schedule(&self, name: &str) -> String {
        format!("{}schedule:{name}", self.base)
    }

    /// The key `/health` writes to learn whether Redis takes writes.
    pub fn health(&self) -> String {
        format!("{}health", self.base)
    }

    /// The pub/sub channel that says a queue has a ready job.
    pub fn wake_channel(&self) -> String {
        format!("{}wake", self.base)
    }

    /// Shared limits' pauses: limit key by the ms the pause ends.
    pub fn limit_pauses(&self) -> String {
        format!("{}limit_pauses", self.base)
    }

    /// A shared limit's rate state: when its next start is due (GCRA's theoretical arrival time).
    pub fn limit_rate(&self, key: &str) -> String {
        format!("{}limit:rate:{key}", self.base)
    }

    /// A shared limit's holders (zset by expiry): who runs under it now.
    pub fn limit_running(&self, key: &str) -> String {
        format!("{}limit:running:{key}", self.base)
    }

    /// The pub/sub channel that says a running job was cancelled.
    pub fn cancel_channel(&self) -> String {
        format!("{}cancel", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_prefix_hash_tag() {
        let k = Keys::new("app");
        for key in [
            k.job("1"),
            k.queue("q"),
            k.idem("i"),
            k.finished(),
            k.done("cancelled"),
            k.minute(1),
            k.queues(),
            k.inflight("p"),
            k.heartbeat("p"),
            k.processes(),
            k.scheduled(),
            k.retry(),
            k.dead(),
            k.health(),
            k.schedule("s"),
            k.wake_channel(),
            k.cancel_channel(),
            k.limit_pauses(),
            k.limit_rate("kind:x"),
            k.limit_running("http:h:1"),
        ] {
            assert!(key.starts_with("{app}:"), "{key}");
        }
        assert_eq!(k.job("x"), format!("{}job:x", k.base()));
    }
}
