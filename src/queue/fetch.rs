//! Fetching: leasing ready jobs to a process, one `fetch.lua` call per shard of the queues it
//! works (see `shards.rs` for the shards it skips while they are empty).

use std::sync::Arc;

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::{JobRecord, args_or_empty, int_field, json_field, timeout_of};
use super::keys::Shard;
use super::lease::Lease;
use super::reply::{parse, tagged, unexpected};
use super::status::JobStatus;
use super::{Queue, scripts};

/// What `fetch` found.
#[derive(Debug)]
pub enum Fetched {
    /// This process has no live heartbeat; it must register before it may fetch.
    Unregistered,
    /// The jobs now leased to this process (possibly none), each behind an `Arc` from the
    /// start: a runner and its job's context share it, and a lease (half a KB) is not copied as
    /// it passes from the reply to the runner.
    Jobs(Vec<Arc<Lease>>),
    /// The fetch skipped so many ids of jobs no longer waiting that it stopped early: fetch
    /// again at once (no wake-up would come for the ids behind them).
    More(Vec<Arc<Lease>>),
}

/// `fetch.lua`'s reply, before the records are read one by one.
enum FetchReply {
    Unregistered,
    /// The jobs, whether ids were left unlooked-at when the call hit its budget, and when the
    /// jobs started (Redis's time, ms).
    Jobs(Vec<LeasedJob>, bool, i64),
}

/// Fields a job takes in `fetch.lua`'s reply.
const PER_JOB: usize = 9;
/// What separates the fields in `fetch.lua`'s reply: a byte no field can hold (see the script).
const FIELD_SEPARATOR: u8 = 0x1f;

/// One job of `fetch.lua`'s reply, by position: what a runner needs of its record.
#[derive(Debug, PartialEq)]
struct LeasedJob {
    id: String,
    /// As fetch.lua wrote it into the lease: read on its own, so a bad one fails its job only.
    attempt: String,
    kind: Option<String>,
    queue: Option<String>,
    args: Option<String>,
    failures: Option<String>,
    max_attempts: Option<String>,
    timeout_ms: Option<String>,
    checkpoint: Option<String>,
}

impl LeasedJob {
    /// The token fetch.lua leased this attempt under.
    fn lease(&self, process: &str) -> String {
        format!("{process}:{}", self.attempt)
    }

    /// The job as its runner sees it, leased under `lease` since `started_at`. The fields the
    /// reply leaves out (result, errors, times) are not a runner's business.
    fn record(self, lease: String, started_at: i64) -> Result<JobRecord, QueueError> {
        let id = self.id;
        let corrupt = |field: &str| QueueError::unreadable(&id, field);
        let json = |v: Option<String>, field: &str| json_field(&id, v, field);
        let int = |v: Option<String>, field: &str| int_field(&id, v, field);
        let attempts = self.attempt.parse().map_err(|_| corrupt("attempts"))?;
        Ok(JobRecord {
            kind: self.kind.ok_or_else(|| corrupt("kind"))?,
            queue: self.queue.ok_or_else(|| corrupt("queue"))?,
            args: args_or_empty(json(self.args, "args")?),
            status: JobStatus::Running,
            attempts,
            failures: int(self.failures, "failures")?.unwrap_or(0) as u32,
            max_attempts: int(self.max_attempts, "max_attempts")?.unwrap_or(1) as u32,
            timeout: timeout_of(int(self.timeout_ms, "timeout_ms")?),
            errors: Vec::new(),
            result: None,
            progress: None,
            checkpoint: json(self.checkpoint, "checkpoint")?,
            created_at: 0,
            run_at: None,
            started_at: Some(started_at),
            finished_at: None,
            enqueued_at: None,
            lease: Some(lease),
            id,
        })
    }
}

/// `fetch.lua`: `{'unregistered', 0, ''}`, or `{'ok'|'more', now, jobs}` with the jobs in one
/// string, [`PER_JOB`] fields each, separated by [`FIELD_SEPARATOR`], empty where absent.
impl FromRedisValue for FetchReply {
    fn from_redis_value(v: Value) -> Result<FetchReply, ParsingError> {
        let (tag, [now, jobs]) = tagged(v)?;
        let more = match tag.as_str() {
            "unregistered" => return Ok(FetchReply::Unregistered),
            "ok" => false,
            "more" => true,
            _ => return Err(unexpected(&tag)),
        };
        let now = i64::from_redis_value(now)?;
        let packed = String::from_redis_value(jobs)?;
        if packed.is_empty() {
            return Ok(FetchReply::Jobs(Vec::new(), more, now));
        }
        let fields = split_fields(&packed);
        let jobs = fields.chunks_exact(PER_JOB);
        if !jobs.remainder().is_empty() {
            return Err("a job cut short".into());
        }
        let present = |field: &str| (!field.is_empty()).then(|| field.to_string());
        let mut found = Vec::with_capacity(jobs.len());
        for job in jobs {
            let [
                id,
                attempt,
                kind,
                queue,
                args,
                failures,
                max_attempts,
                timeout_ms,
                checkpoint,
            ] = job
            else {
                return Err("a job cut short".into());
            };
            if id.is_empty() || attempt.is_empty() {
                return Err("a job without its id or attempt".into());
            }
            found.push(LeasedJob {
                id: id.to_string(),
                attempt: attempt.to_string(),
                kind: present(kind),
                queue: present(queue),
                args: present(args),
                failures: present(failures),
                max_attempts: present(max_attempts),
                timeout_ms: present(timeout_ms),
                checkpoint: present(checkpoint),
            });
        }
        Ok(FetchReply::Jobs(found, more, now))
    }
}

/// The fields of a packed reply, empty ones included. By byte: `str::split` with a char was
/// several times the cost (it searched for the char anew at every field). The separator is
/// ASCII, so each piece starts and ends on a character boundary.
fn split_fields(packed: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    // memchr looks at many bytes an instruction; a loop by byte was 2% of the fetching thread's.
    for at in memchr::memchr_iter(FIELD_SEPARATOR, packed.as_bytes()) {
        fields.push(&packed[start..at]);
        start = at + 1;
    }
    fields.push(&packed[start..]);
    fields
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
            let want = count - leases.len();
            match self.fetch_shard(&shard, process, &names, want).await? {
                ShardFetch::Unregistered if leases.is_empty() => return Ok(Fetched::Unregistered),
                ShardFetch::Unregistered => break,
                ShardFetch::Jobs(found, taken, stopped_early) => {
                    // Fewer than asked for, and not for want of budget: the script emptied every
                    // list it looked at, so a fetch there now would find nothing either. Without
                    // this, a worker that keeps up with its producers made two calls a job (one
                    // that took it, one that found nothing) instead of waiting for a wake-up.
                    if taken < want && !stopped_early {
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
        let (jobs, more, started_at) = match parse("fetch", reply)? {
            FetchReply::Unregistered => return Ok(ShardFetch::Unregistered),
            FetchReply::Jobs(jobs, more, started_at) => (jobs, more, started_at),
        };
        let taken = jobs.len();
        let mut leases = Vec::with_capacity(taken);
        for leased in jobs {
            // A record that cannot be read stays in flight (the heartbeat puts it back) rather
            // than failing the whole batch.
            let token = leased.lease(process);
            let job = match leased.record(token.clone(), started_at) {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(event = "job.unreadable", error = %e);
                    continue;
                }
            };
            leases.push(Arc::new(Lease::new(
                job,
                token,
                inflight.clone(),
                self.clone(),
            )));
        }
        Ok(ShardFetch::Jobs(leases, taken, more))
    }
}

/// What one shard's fetch found.
enum ShardFetch {
    /// This process is not registered in the shard.
    Unregistered,
    /// Its jobs, how many the script took (an unreadable one is not among the jobs), and
    /// whether the call stopped at its budget with ids still to look at.
    Jobs(Vec<Arc<Lease>>, usize, bool),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::reply::build::{arr, s};
    use super::*;

    /// A reply's jobs as fetch.lua packs them: absent fields empty, all joined by the separator.
    fn packed(fields: &[Option<&str>]) -> Value {
        let fields: Vec<&str> = fields.iter().map(|f| f.unwrap_or("")).collect();
        s(&fields.join(&char::from(FIELD_SEPARATOR).to_string()))
    }

    fn reply(tag: &str, fields: &[Option<&str>]) -> Result<FetchReply, QueueError> {
        parse("fetch", arr(vec![s(tag), Value::Int(7), packed(fields)]))
    }

    #[test]
    fn packed_fields_split_at_every_separator_and_keep_empty_ones() {
        assert_eq!(split_fields("a\u{1f}\u{1f}é☃\u{1f}"), ["a", "", "é☃", ""]);
        assert_eq!(split_fields("x"), ["x"]);
    }

    #[test]
    fn fetch_replies_read_as_unregistered_or_jobs() {
        let r = reply("unregistered", &[]).unwrap();
        assert!(matches!(r, FetchReply::Unregistered));
        let full = [
            Some("a"),
            Some("2"),
            Some("echo"),
            Some("mail"),
            Some(r#"{"x":1}"#),
            Some("1"),
            Some("5"),
            Some("1500"),
            Some(r#"{"page":3}"#),
        ];
        let bare = [Some("b"), Some("1"), Some("noop"), Some("default")]
            .into_iter()
            .chain([None; 5]);
        let both: Vec<Option<&str>> = full.into_iter().chain(bare).collect();
        let FetchReply::Jobs(jobs, false, 7) = reply("ok", &both).unwrap() else {
            panic!("not two jobs");
        };
        let [a, b]: [LeasedJob; 2] = jobs.try_into().expect("two jobs");
        assert_eq!(a.lease("p1"), "p1:2", "fetch.lua's lease");
        let a = a.record("p1:2".into(), 7).unwrap();
        assert_eq!(
            (a.id.as_str(), a.kind.as_str(), a.queue.as_str()),
            ("a", "echo", "mail")
        );
        assert_eq!(a.args, serde_json::json!({"x": 1}));
        assert_eq!((a.attempts, a.failures, a.max_attempts), (2, 1, 5));
        assert_eq!(a.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(a.checkpoint, Some(serde_json::json!({"page": 3})));
        assert_eq!((a.status, a.started_at), (JobStatus::Running, Some(7)));
        assert_eq!(a.lease.as_deref(), Some("p1:2"));
        let b = b.record("p1:1".into(), 7).unwrap();
        assert_eq!(b.args, serde_json::json!({}));
        assert_eq!((b.attempts, b.failures, b.max_attempts), (1, 0, 1));
        assert_eq!((b.timeout, b.checkpoint), (None, None));

        let r = reply("more", &[]).unwrap();
        assert!(matches!(r, FetchReply::Jobs(jobs, true, 7) if jobs.is_empty()));
        assert!(reply("ok", &both[..12]).is_err(), "a job cut short");
        let mut no_id = both.clone();
        no_id[9] = None;
        assert!(reply("ok", &no_id).is_err(), "a job without its id");
        let e = reply("busy", &[]).err();
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
        // A record without its kind, or with args that are not JSON, is unreadable.
        let mut no_kind = both[9..].to_vec();
        no_kind[2] = None;
        let FetchReply::Jobs(mut jobs, ..) = reply("ok", &no_kind).unwrap() else {
            panic!()
        };
        assert!(jobs.pop().unwrap().record("p1:1".into(), 7).is_err());
        // An attempt that is no count fails its own job, not the reply.
        let mut bad_attempt = both[9..].to_vec();
        bad_attempt[1] = Some("many");
        let FetchReply::Jobs(mut jobs, ..) = reply("ok", &bad_attempt).unwrap() else {
            panic!()
        };
        let job = jobs.pop().unwrap();
        assert_eq!(job.lease("p1"), "p1:many");
        assert!(job.record("p1:many".into(), 7).is_err());
    }
}
