//! The Redis side of shared limits (`src/limiter/` decides when to ask): deciding a job's keys
//! at once, giving back concurrency slots, pausing keys, reading their state, and putting a
//! job back to wait without spending an attempt. Every one is a single script, so the limits
//! hold across every process on the same Redis.

use std::time::Duration;

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::lease::Lease;
use super::reply::{parse, unexpected};
use super::{Queue, ms, scripts};

/// One key to decide, with its limit in the units the script counts in.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitCheck {
    /// The limit key (`kind:<name>`, `http:<host>`).
    pub key: String,
    /// Spacing between starts in ms (fractions allowed); 0 for no rate.
    pub interval_ms: f64,
    /// Most holders at once; 0 for no bound.
    pub concurrency: u32,
}

/// Why a limit said "not yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key is paused (a throttling service asked to wait).
    Paused,
    /// As many as allowed hold the key now.
    Concurrency,
    /// The key's next start is later; the job's slot is booked.
    Rate,
}

impl Refusal {
    /// As logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Paused => "paused",
            Refusal::Concurrency => "concurrency",
            Refusal::Rate => "rate",
        }
    }
}

/// What `limit_acquire.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitVerdict {
    /// Every key was taken: start now.
    Taken,
    /// Every key was taken for a start after `wait` (a waiting handler's booked slot).
    Booked {
        /// How long until the slot.
        wait: Duration,
    },
    /// Nothing was taken.
    Refused {
        /// Why.
        reason: Refusal,
        /// The key that refused.
        key: String,
        /// How long to wait before asking again (zero when unknown: a concurrency slot).
        wait: Duration,
    },
}

impl FromRedisValue for LimitVerdict {
    fn from_redis_value(v: Value) -> Result<LimitVerdict, ParsingError> {
        let (verdict, wait, key): (String, u64, String) = FromRedisValue::from_redis_value(v)?;
        let wait = Duration::from_millis(wait);
        let refused = |reason| LimitVerdict::Refused {
            reason,
            key: key.clone(),
            wait,
        };
        match verdict.as_str() {
            "ok" => Ok(LimitVerdict::Taken),
            "booked" => Ok(LimitVerdict::Booked { wait }),
            "paused" => Ok(refused(Refusal::Paused)),
            "concurrency" => Ok(refused(Refusal::Concurrency)),
            "rate" => Ok(refused(Refusal::Rate)),
            _ => Err(unexpected(&verdict)),
        }
    }
}

/// The outcome of putting a job back to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferOutcome {
    /// It waits in the scheduled set.
    Deferred,
    /// It had been cancelled; it is finished as cancelled.
    Cancelled,
    /// The lease was no longer ours; nothing was written.
    LeaseLost,
}

impl FromRedisValue for DeferOutcome {
    fn from_redis_value(v: Value) -> Result<DeferOutcome, ParsingError> {
        let tag = String::from_redis_value(v)?;
        match tag.as_str() {
            "deferred" => Ok(DeferOutcome::Deferred),
            "cancelled" => Ok(DeferOutcome::Cancelled),
            "lost" => Ok(DeferOutcome::LeaseLost),
            _ => Err(unexpected(&tag)),
        }
    }
}

/// Limits as Redis sees them now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitState {
    /// Redis's clock, ms since the epoch.
    pub now_ms: i64,
    /// Per key asked about: holders now, and the ms its pause ends (0 when not paused).
    pub keys: Vec<(String, u64, i64)>,
    /// Every pause in force: key and the ms it ends.
    pub pauses: Vec<(String, i64)>,
}

impl FromRedisValue for LimitState {
    fn from_redis_value(v: Value) -> Result<LimitState, ParsingError> {
        let (now_ms, flat, pauses): (i64, Vec<Value>, Vec<(String, f64)>) =
            FromRedisValue::from_redis_value(v)?;
        let mut keys = Vec::with_capacity(flat.len() / 3);
        let mut values = flat.into_iter();
        while let (Some(key), Some(running), Some(until)) =
            (values.next(), values.next(), values.next())
        {
            keys.push((
                String::from_redis_value(key)?,
                u64::from_redis_value(running)?,
                i64::from_redis_value(until)?,
            ));
        }
        let pauses = pauses.into_iter().map(|(k, u)| (k, u as i64)).collect();
        Ok(LimitState {
            now_ms,
            keys,
            pauses,
        })
    }
}

impl Queue {
    /// Decides `checks` at once for `holder`: for a fetched job (`job: Some(lease)`) a rate
    /// wait books its slot and refuses it, and a start is written to the job as its
    /// `started_at`; for a waiting handler (`None`) it books and takes.
    /// A concurrency slot taken lives at most `hold` unless given back.
    pub async fn limit_acquire(
        &self,
        job: Option<&Lease>,
        holder: &str,
        hold: Duration,
        checks: &[LimitCheck],
    ) -> Result<LimitVerdict, QueueError> {
        let mut conn = self.redis.connection()?;
        let pauses = self.keys.limit_pauses();
        let (ticket_key, mode) = match job {
            Some(lease) => (self.keys.limit_ticket(&lease.job().id), "job"),
            None => (pauses.clone(), "wait"),
        };
        let mut call = scripts::LIMIT_ACQUIRE.key(&pauses);
        call.key(ticket_key)
            .arg(self.keys.base())
            .arg(mode)
            .arg(holder)
            .arg(ms(hold).max(1));
        for check in checks {
            call.arg(&check.key)
                .arg(format!("{:.3}", check.interval_ms))
                .arg(check.concurrency);
        }
        let reply: Value = call.invoke_async(&mut conn).await?;
        let started_at = match &reply {
            Value::Array(parts) => parts.get(1).cloned(),
            _ => None,
        };
        let verdict: LimitVerdict = parse("limit_acquire", reply)?;
        if let (Some(lease), LimitVerdict::Taken, Some(now)) = (job, &verdict, started_at) {
            // The job's record is in its own shard, apart from the limit keys: its start is
            // written under its lease in a second step (a lost lease writes nothing). The slots
            // are taken by now, so a failed write only leaves the fetch's start time in place.
            let saved = match i64::from_redis_value(now) {
                Ok(now) => lease.save_started(now).await.map(|_| ()),
                Err(e) => Err(QueueError::UnexpectedReply {
                    script: "limit_acquire",
                    reply: e.to_string(),
                }),
            };
            if let Err(e) = saved {
                tracing::warn!(event = "job.start_not_saved", job_id = %lease.job().id, error = %e);
            }
        }
        Ok(verdict)
    }

    /// Gives back `holder`'s concurrency slots under `keys`.
    pub async fn limit_release(&self, holder: &str, keys: &[String]) -> Result<(), QueueError> {
        let mut conn = self.redis.connection()?;
        let mut call = scripts::LIMIT_RELEASE.key(self.keys.limit_pauses());
        call.arg(self.keys.base()).arg(holder).arg(keys);
        let _freed: i64 = call.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Pauses `keys` for every process for `pause`; returns when it ends (ms, Redis's clock).
    pub async fn limit_pause(&self, keys: &[String], pause: Duration) -> Result<i64, QueueError> {
        let mut conn = self.redis.connection()?;
        let mut call = scripts::LIMIT_PAUSE.key(self.keys.limit_pauses());
        call.arg(self.keys.base()).arg(ms(pause)).arg(keys);
        Ok(call.invoke_async(&mut conn).await?)
    }

    /// The holders and pause of each of `keys`, and every pause in force.
    pub async fn limit_state(&self, keys: &[String]) -> Result<LimitState, QueueError> {
        let mut conn = self.redis.connection()?;
        let mut call = scripts::LIMIT_STATE.key(self.keys.limit_pauses());
        call.arg(self.keys.base()).arg(keys);
        let reply: Value = call.invoke_async(&mut conn).await?;
        parse("limit_state", reply)
    }

    /// Puts job `id`, held under `lease` in `inflight`, back to wait `delay` (see `defer.lua`).
    pub(super) async fn defer_lease(
        &self,
        id: &str,
        lease: &str,
        inflight: &str,
        delay: Duration,
        started: bool,
    ) -> Result<DeferOutcome, QueueError> {
        let mut conn = self.redis.connection()?;
        let shard = self.keys.for_job(id);
        let reply: Value = scripts::DEFER
            .key(shard.job(id))
            .key(inflight)
            .key(shard.scheduled())
            .arg(shard.base())
            .arg(lease)
            .arg(ms(delay))
            .arg(ms(self.retention.job))
            .arg(self.retention.job_max)
            .arg(if started { "0" } else { "1" })
            .invoke_async(&mut conn)
            .await?;
        parse("defer", reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::build::s;
    use super::*;

    fn verdict(tag: &str, wait: i64, key: &str) -> Value {
        Value::Array(vec![s(tag), Value::Int(wait), s(key)])
    }

    #[test]
    fn acquire_replies_read_as_verdicts() {
        let parsed = |v| parse::<LimitVerdict>("limit_acquire", v).unwrap();
        assert_eq!(parsed(verdict("ok", 0, "")), LimitVerdict::Taken);
        assert_eq!(
            parsed(verdict("booked", 200, "kind:a")),
            LimitVerdict::Booked {
                wait: Duration::from_millis(200)
            }
        );
        assert_eq!(
            parsed(verdict("rate", 150, "http:h")),
            LimitVerdict::Refused {
                reason: Refusal::Rate,
                key: "http:h".into(),
                wait: Duration::from_millis(150)
            }
        );
        assert!(parse::<LimitVerdict>("limit_acquire", verdict("maybe", 0, "")).is_err());
        for (tag, outcome) in [
            ("deferred", DeferOutcome::Deferred),
            ("cancelled", DeferOutcome::Cancelled),
            ("lost", DeferOutcome::LeaseLost),
        ] {
            assert_eq!(parse::<DeferOutcome>("defer", s(tag)).unwrap(), outcome);
        }
    }
}
