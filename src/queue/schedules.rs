//! Periodic jobs' storage: registering schedules, firing one tick at most once across every
//! process, and reading their state for `GET /schedules`. The scheduler in `crate::schedule`
//! decides when to ask; the scripts decide, atomically, whether a tick fires.

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::keys::Shard;
use super::reply::{parse, tagged, unexpected};
use super::{Queue, ms, scripts};

/// One tick of one schedule, and the job it enqueues if it fires.
#[derive(Debug, Clone)]
pub struct Tick<'a> {
    /// The schedule's name.
    pub schedule: &'a str,
    /// The tick, in ms since the epoch.
    pub at_ms: i64,
    /// How late the tick may fire and still be on time (later, the missed policy decides).
    pub grace: std::time::Duration,
    /// Whether a missed tick is caught up once (`missed: "one"`).
    pub catch_up: bool,
    /// Whether the tick may fire while the previous tick's job is unfinished.
    pub overlap: bool,
    /// The new job's id.
    pub job_id: &'a str,
    /// The job's kind.
    pub kind: &'a str,
    /// The job's queue.
    pub queue: &'a str,
    /// The job's arguments, as JSON text.
    pub args: &'a str,
    /// The job's failed attempts allowed.
    pub max_attempts: u32,
    /// The job's own time limit, if any.
    pub timeout: Option<std::time::Duration>,
}

/// What became of a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// This call enqueued the tick's job; `caught_up` when the tick had been missed.
    Fired {
        /// The job's id.
        job_id: String,
        /// Redis's time when it was stored (ms).
        at_ms: i64,
        /// Whether it caught up a missed tick.
        caught_up: bool,
    },
    /// Another process (or an earlier call) handled this tick already.
    Done,
    /// Redis's clock has not reached the tick yet (its time in ms).
    Early(i64),
    /// The tick was missed and is not run: `new` (the schedule did not exist then) or `skip`.
    Missed(String),
    /// Overlap is off and the previous tick's job (id, status) is unfinished.
    Skipped(String, String),
}

/// `schedule_fire.lua`: `{tag, now, a, b}`.
impl FromRedisValue for TickOutcome {
    fn from_redis_value(v: Value) -> Result<TickOutcome, ParsingError> {
        let (tag, [now, a, b]) = tagged(v)?;
        let now = i64::from_redis_value(now)?;
        let a = String::from_redis_value(a)?;
        let b = String::from_redis_value(b)?;
        match tag.as_str() {
            "fired" => Ok(TickOutcome::Fired {
                job_id: a,
                at_ms: now,
                caught_up: b == "1",
            }),
            "done" => Ok(TickOutcome::Done),
            "early" => Ok(TickOutcome::Early(now)),
            "missed" => Ok(TickOutcome::Missed(a)),
            "skipped" => Ok(TickOutcome::Skipped(a, b)),
            _ => Err(unexpected(&tag)),
        }
    }
}

/// A schedule's last run as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// When the last tick's job was enqueued (ms).
    pub last_run_at: Option<i64>,
    /// The last tick's job.
    pub last_job_id: Option<String>,
    /// That job's status now (none once its record expired).
    pub last_status: Option<String>,
    /// The tick that job was for (ms).
    pub last_tick: Option<i64>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl ScheduleState {
    fn from_reply(fields: [String; 4]) -> Result<ScheduleState, QueueError> {
        let [run_at, job_id, status, tick] = fields;
        let int = |s: String, field: &str| {
            non_empty(s)
                .map(|s| s.parse::<i64>())
                .transpose()
                .map_err(|_| QueueError::UnexpectedReply {
                    script: "schedule_state",
                    reply: format!("{field} is not a number"),
                })
        };
        Ok(ScheduleState {
            last_run_at: int(run_at, "last_run_at")?,
            last_job_id: non_empty(job_id),
            last_status: non_empty(status),
            last_tick: int(tick, "last_tick")?,
        })
    }
}

impl Queue {
    /// Redis's clock in ms since the epoch: the one clock every process agrees on.
    pub async fn clock_ms(&self) -> Result<i64, QueueError> {
        let mut conn = self.redis.connection()?;
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Notes since when each schedule exists (`(name, signature, queue)`; see
    /// `schedule_register.lua`); returns Redis's time. A schedule's state lives in the shard of
    /// the queue it enqueues to, so that firing a tick and enqueueing its job are one step:
    /// one call per shard.
    pub async fn register_schedules(
        &self,
        schedules: &[(String, String, String)],
    ) -> Result<i64, QueueError> {
        if schedules.is_empty() {
            return self.clock_ms().await;
        }
        let queues: Vec<&str> = schedules.iter().map(|(_, _, q)| q.as_str()).collect();
        self.announce(&queues).await?;
        let mut now = 0;
        for (shard, group) in by_shard(self, schedules, |(_, _, q)| q.as_str()) {
            let mut conn = self.redis.connection()?;
            let mut invocation = scripts::SCHEDULE_REGISTER.prepare_invoke();
            invocation.arg(shard.base());
            for (name, signature, _) in group {
                invocation
                    .key(shard.schedule(name))
                    .arg(name)
                    .arg(signature);
            }
            now = invocation.invoke_async(&mut conn).await?;
        }
        Ok(now)
    }

    /// Fires `tick` unless it was handled already (see [`TickOutcome`]).
    pub async fn fire_tick(&self, tick: &Tick<'_>) -> Result<TickOutcome, QueueError> {
        let mut conn = self.redis.connection()?;
        let shard = self.keys.for_queue(tick.queue);
        let reply: Value = scripts::SCHEDULE_FIRE
            .key(shard.schedule(tick.schedule))
            .arg(shard.base())
            .arg(tick.schedule)
            .arg(tick.at_ms)
            .arg(ms(tick.grace))
            .arg(if tick.catch_up { "one" } else { "skip" })
            .arg(if tick.overlap { "1" } else { "0" })
            .arg(tick.job_id)
            .arg(tick.kind)
            .arg(tick.queue)
            .arg(tick.args)
            .arg(tick.max_attempts)
            .arg(tick.timeout.map(|t| ms(t).to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await?;
        parse("schedule_fire", reply)
    }

    /// The stored state of the schedules `names`, in their order.
    pub async fn schedule_states(
        &self,
        schedules: &[(&str, &str)],
    ) -> Result<Vec<ScheduleState>, QueueError> {
        let mut states = vec![ScheduleState::default(); schedules.len()];
        let indexed: Vec<(usize, &str, &str)> = schedules
            .iter()
            .enumerate()
            .map(|(i, (name, queue))| (i, *name, *queue))
            .collect();
        for (shard, group) in by_shard(self, &indexed, |(_, _, q)| *q) {
            let mut conn = self.redis.connection()?;
            let mut invocation = scripts::SCHEDULE_STATE.prepare_invoke();
            invocation.arg(shard.base());
            for (_, name, _) in &group {
                invocation.key(shard.schedule(name));
            }
            let reply: Value = invocation.invoke_async(&mut conn).await?;
            let rows: Vec<[String; 4]> = parse("schedule_state", reply)?;
            for ((i, _, _), row) in group.iter().zip(rows) {
                states[*i] = ScheduleState::from_reply(row)?;
            }
        }
        Ok(states)
    }
}

/// `items` grouped by the shard of the queue `queue_of` reads from each, in first-seen order.
fn by_shard<'a, T>(
    queue: &Queue,
    items: &'a [T],
    queue_of: impl Fn(&T) -> &str,
) -> Vec<(Shard, Vec<&'a T>)> {
    let mut groups: Vec<(Shard, Vec<&'a T>)> = Vec::new();
    for item in items {
        let shard = queue.keys.for_queue(queue_of(item));
        match groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, group)) => group.push(item),
            None => groups.push((shard, vec![item])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::{arr, s};
    use super::*;

    fn reply(tag: &str, a: &str, b: &str) -> Value {
        arr(vec![s(tag), Value::Int(1_700_000_000_000), s(a), s(b)])
    }

    #[test]
    fn fire_replies_read_as_outcomes() {
        let fired: TickOutcome = parse("schedule_fire", reply("fired", "j1", "1")).unwrap();
        assert_eq!(
            fired,
            TickOutcome::Fired {
                job_id: "j1".into(),
                at_ms: 1_700_000_000_000,
                caught_up: true
            }
        );
        let done: TickOutcome = parse("schedule_fire", reply("done", "", "")).unwrap();
        assert_eq!(done, TickOutcome::Done);
        let early: TickOutcome = parse("schedule_fire", reply("early", "", "")).unwrap();
        assert_eq!(early, TickOutcome::Early(1_700_000_000_000));
        let missed: TickOutcome = parse("schedule_fire", reply("missed", "new", "")).unwrap();
        assert_eq!(missed, TickOutcome::Missed("new".into()));
        let skipped: TickOutcome =
            parse("schedule_fire", reply("skipped", "j0", "running")).unwrap();
        assert_eq!(skipped, TickOutcome::Skipped("j0".into(), "running".into()));
        assert!(parse::<TickOutcome>("schedule_fire", reply("fire", "", "")).is_err());
    }

    #[test]
    fn state_rows_read_empty_fields_as_absent() {
        let state = ScheduleState::from_reply(["".into(), "".into(), "".into(), "".into()]);
        assert_eq!(state.unwrap(), ScheduleState::default());
        let state =
            ScheduleState::from_reply(["5".into(), "j".into(), "queued".into(), "4".into()])
                .unwrap();
        assert_eq!(state.last_run_at, Some(5));
        assert_eq!(state.last_status.as_deref(), Some("queued"));
        assert!(ScheduleState::from_reply(["x".into(), "".into(), "".into(), "".into()]).is_err());
    }
}
