//! Fetching: leasing ready jobs to a process, one `fetch.lua` call per shard of the queues it
//! works (see `shards.rs` for the shards it skips while they are empty).

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::JobRecord;
use super::keys::Shard;
use super::lease::Lease;
use super::reply::{parse, tagged, unexpected};
use super::{Queue, scripts};

/// What `fetch` found.
#[derive(Debug)]
pub enum Fetched {
    /// This process has no live heartbeat; it must register before it may fetch.
    Unregistered,
    /// The jobs now leased to this process (possibly none).
    Jobs(Vec<Lease>),
    /// The fetch skipped so many ids of jobs no longer waiting that it stopped early: fetch
    /// again at once (no wake-up would come for the ids behind them).
    More(Vec<Lease>),
}

/// `fetch.lua`'s reply, before the records are read one by one.
enum FetchReply {
    Unregistered,
    /// The jobs, and whether ids were left unlooked-at when the call hit its budget.
    Jobs(Vec<Vec<String>>, bool),
}

/// `fetch.lua`: `{'unregistered', {}}`, or `{'ok'|'more', jobs}` with the jobs in one flat list:
/// per job, how many field/value pairs follow, then the pairs.
impl FromRedisValue for FetchReply {
    fn from_redis_value(v: Value) -> Result<FetchReply, ParsingError> {
        let (tag, [jobs]) = tagged(v)?;
        let more = match tag.as_str() {
            "unregistered" => return Ok(FetchReply::Unregistered),
            "ok" => false,
            "more" => true,
            _ => return Err(unexpected(&tag)),
        };
        let flat: Vec<Value> = FromRedisValue::from_redis_value(jobs)?;
        let mut items = flat.into_iter();
        let mut found = Vec::new();
        while let Some(count) = items.next() {
            let pairs = usize::from_redis_value(count)?;
            let fields = items
                .by_ref()
                .take(2 * pairs)
                .map(String::from_redis_value)
                .collect::<Result<Vec<String>, _>>()?;
            if fields.len() != 2 * pairs {
                return Err("a job cut short".into());
            }
            found.push(fields);
        }
        Ok(FetchReply::Jobs(found, more))
    }
}

impl Queue {
    /// Leases up to `count` ready jobs to `process`, trying `queues` in order: one call per
    /// shard (the queues of one shard together, in their order), shards in the order of their
    /// first queue, the legacy shard last. A shard found empty a moment ago is skipped until a
    /// wake-up names one of its queues (see `shards.rs`), so a busy process makes one call per
    /// batch, as on a single slot.
    pub async fn fetch(
        &self,
        process: &str,
        queues: &[String],
        count: usize,
    ) -> Result<Fetched, QueueError> {
        let mut leases = Vec::new();
        let mut more = false;
        for (shard, names) in self.fetch_groups(queues) {
            if leases.len() >= count {
                break;
            }
            if self.skips(&shard) {
                continue;
            }
            let wakes = self.wakes_seen();
            match self
                .fetch_shard(&shard, process, &names, count - leases.len())
                .await?
            {
                ShardFetch::Unregistered if leases.is_empty() => return Ok(Fetched::Unregistered),
                ShardFetch::Unregistered => break,
                ShardFetch::Jobs(found, stopped_early) => {
                    if found.is_empty() && !stopped_early {
                        self.mark_empty(&shard, wakes);
                    }
                    more |= stopped_early;
                    leases.extend(found);
                }
            }
        }
        Ok(if more {
            Fetched::More(leases)
        } else {
            Fetched::Jobs(leases)
        })
    }

    /// `queues` grouped by shard, in fetch order; the legacy shard (every queue) last.
    fn fetch_groups(&self, queues: &[String]) -> Vec<(Shard, Vec<String>)> {
        let mut groups: Vec<(Shard, Vec<String>)> = Vec::new();
        for name in queues {
            let shard = self.keys.for_queue(name);
            match groups.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, names)) => names.push(name.clone()),
                None => groups.push((shard, vec![name.clone()])),
            }
        }
        groups.push((self.keys.legacy().clone(), queues.to_vec()));
        groups
    }

    /// One `fetch.lua` call on one shard.
    async fn fetch_shard(
        &self,
        shard: &Shard,
        process: &str,
        queues: &[String],
        count: usize,
    ) -> Result<ShardFetch, QueueError> {
        let mut conn = self.redis.connection()?;
        let inflight = shard.inflight(process);
        let reply: Value = scripts::FETCH
            .key(&inflight)
            .key(shard.heartbeat(process))
            .arg(shard.base())
            .arg(process)
            .arg(count)
            .arg(queues)
            .invoke_async(&mut conn)
            .await?;
        let (jobs, more) = match parse("fetch", reply)? {
            FetchReply::Unregistered => return Ok(ShardFetch::Unregistered),
            FetchReply::Jobs(jobs, more) => (jobs, more),
        };
        let mut leases = Vec::with_capacity(jobs.len());
        for fields in jobs {
            // A record that cannot be read stays in flight (the heartbeat puts it back) rather
            // than failing the whole batch.
            let job = match JobRecord::from_fields(fields) {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(event = "job.unreadable", error = %e);
                    continue;
                }
            };
            let Some(token) = job.lease.clone() else {
                tracing::error!(event = "job.unreadable", job_id = %job.id, error = "no lease");
                continue;
            };
            leases.push(Lease::new(job, token, inflight.clone(), self.clone()));
        }
        Ok(ShardFetch::Jobs(leases, more))
    }
}

/// What one shard's fetch found.
enum ShardFetch {
    /// This process is not registered in the shard.
    Unregistered,
    /// Its jobs, and whether the call stopped at its budget with ids still to look at.
    Jobs(Vec<Lease>, bool),
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::{arr, s};
    use super::*;

    #[test]
    fn fetch_replies_read_as_unregistered_or_jobs() {
        let r: FetchReply = parse("fetch", arr(vec![s("unregistered"), arr(vec![])])).unwrap();
        assert!(matches!(r, FetchReply::Unregistered));
        let flat = vec![
            Value::Int(2),
            s("id"),
            s("a"),
            s("n"),
            Value::Int(1),
            Value::Int(1),
            s("id"),
            s("b"),
        ];
        let r: FetchReply = parse("fetch", arr(vec![s("ok"), arr(flat.clone())])).unwrap();
        assert!(
            matches!(&r, FetchReply::Jobs(jobs, false) if jobs.len() == 2 && jobs[0] == ["id", "a", "n", "1"] && jobs[1] == ["id", "b"]),
            "{:?}",
            match r {
                FetchReply::Jobs(jobs, _) => jobs,
                FetchReply::Unregistered => vec![],
            }
        );
        let r: FetchReply = parse("fetch", arr(vec![s("more"), arr(vec![])])).unwrap();
        assert!(matches!(r, FetchReply::Jobs(jobs, true) if jobs.is_empty()));
        let cut = parse::<FetchReply>("fetch", arr(vec![s("ok"), arr(flat[..4].to_vec())]));
        assert!(cut.is_err());
        let e = parse::<FetchReply>("fetch", arr(vec![s("busy"), arr(vec![])])).err();
        assert!(
            matches!(
                e,
                Some(QueueError::UnexpectedReply {
                    script: "fetch",
                    ..
                })
            ),
            "{e:?}"
        );
    }
}
