//! The live picture the dashboard draws: the processes registered now, and the per-minute
//! counts of finished and failed attempts that every process's outcome scripts keep.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;

use super::error::QueueError;
use super::keys::Shard;
use super::{Queue, scripts};

/// How many minutes `GET /stats/minutes` shows (the counters live a little longer).
pub const MINUTES_SHOWN: usize = 60;

/// A live worker process, as its heartbeat describes it.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// Its id (a fresh one per boot).
    pub id: String,
    /// Heroku's dyno name, if any.
    pub dyno: Option<String>,
    /// The host it runs on.
    pub host: Option<String>,
    /// Its OS process id.
    pub pid: Option<u64>,
    /// `all` or `worker`.
    pub role: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: Option<String>,
    /// The queues it works, in its order.
    pub queues: Vec<String>,
    /// Jobs it runs at once at most.
    pub concurrency: Option<u64>,
    /// Jobs it holds now.
    pub busy: u64,
    /// When its heartbeat was last renewed.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

impl ProcessInfo {
    /// One entry of `processes.lua`'s reply; `now` is Redis's clock in ms.
    fn from_reply(now: i64, (id, info, ttl_left, busy): (String, String, i64, u64)) -> Self {
        let info: Json = serde_json::from_str(&info).unwrap_or(Json::Null);
        let text = |k: &str| info.get(k).and_then(Json::as_str).map(str::to_string);
        let int = |k: &str| info.get(k).and_then(Json::as_u64);
        // The heartbeat was renewed `lifetime - ttl_left` ago.
        let last_heartbeat_at = int("heartbeat_ttl_ms")
            .map(|lifetime| now - (lifetime as i64 - ttl_left.max(0)))
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let queues = info
            .get("queues")
            .and_then(Json::as_array)
            .map(|q| {
                q.iter()
                    .filter_map(Json::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        ProcessInfo {
            dyno: text("dyno"),
            host: text("host"),
            pid: int("pid"),
            role: text("role"),
            started_at: text("started_at"),
            queues,
            concurrency: int("concurrency"),
            busy,
            last_heartbeat_at,
            id,
        }
    }
}

/// One minute's counts.
#[derive(Debug, Clone, Serialize)]
pub struct MinuteCount {
    /// The minute's start.
    pub at: DateTime<Utc>,
    /// Attempts that finished in it, whatever their outcome.
    pub processed: u64,
    /// Attempts that failed in it (retrying or dead).
    pub failed: u64,
}

impl Queue {
    /// Every live registered process, by id. Its info and heartbeat come from the legacy shard
    /// (every process registers there); its jobs in flight are counted in every known shard.
    pub async fn processes(&self) -> Result<Vec<ProcessInfo>, QueueError> {
        let mut list: Vec<ProcessInfo> = Vec::new();
        let mut busy_elsewhere: Vec<(String, u64)> = Vec::new();
        for shard in self.known_shards(&[]).await? {
            let (now, rows) = self.shard_processes(&shard).await?;
            if shard == *self.keys.legacy() {
                list = rows
                    .into_iter()
                    .map(|row| ProcessInfo::from_reply(now, row))
                    .collect();
            } else {
                busy_elsewhere.extend(rows.into_iter().map(|(id, _, _, busy)| (id, busy)));
            }
        }
        for (id, busy) in busy_elsewhere {
            if let Some(p) = list.iter_mut().find(|p| p.id == id) {
                p.busy += busy;
            }
        }
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    /// `processes.lua` on one shard: `(now, rows)`.
    async fn shard_processes(&self, shard: &Shard) -> Result<ProcessRows, QueueError> {
        let mut conn = self.redis.connection()?;
        Ok(scripts::PROCESSES
            .key(shard.processes())
            .arg(shard.base())
            .invoke_async(&mut conn)
            .await?)
    }

    /// The last [`MINUTES_SHOWN`] minutes' counts, oldest first, summed over every known shard.
    pub async fn minute_counts(&self) -> Result<Vec<MinuteCount>, QueueError> {
        let mut sum: Vec<i64> = Vec::new();
        for shard in self.known_shards(&[]).await? {
            let mut conn = self.redis.connection()?;
            let flat: Vec<i64> = scripts::MINUTES
                .key(shard.queues())
                .arg(shard.base())
                .arg(MINUTES_SHOWN)
                .invoke_async(&mut conn)
                .await?;
            add_minutes(&mut sum, &flat);
        }
        Ok(minutes(&sum))
    }
}

/// `processes.lua`'s reply: Redis's time, and `(id, info, heartbeat ms left, jobs in flight)`.
type ProcessRows = (i64, Vec<(String, String, i64, u64)>);

/// Adds one shard's `minutes.lua` reply to `sum` (same layout: the current minute, then counts).
/// Shards read a moment apart may disagree on the current minute: counts are added by minute,
/// and those outside the first reply's window are left out.
fn add_minutes(sum: &mut Vec<i64>, flat: &[i64]) {
    let (Some(&current), Some(&first)) = (flat.first(), sum.first()) else {
        sum.extend_from_slice(flat);
        return;
    };
    let shift = current - first;
    let len = (sum.len() - 1) / 2;
    for (i, pair) in flat[1..].chunks_exact(2).enumerate() {
        let j = i as i64 + shift;
        if (0..len as i64).contains(&j) {
            let j = j as usize;
            sum[1 + 2 * j] += pair[0];
            sum[2 + 2 * j] += pair[1];
        }
    }
}

/// `minutes.lua`'s reply: the current minute, then processed and failed per minute.
fn minutes(flat: &[i64]) -> Vec<MinuteCount> {
    let Some((&current, counts)) = flat.split_first() else {
        return Vec::new();
    };
    let first = current - (counts.len() / 2) as i64 + 1;
    counts
        .chunks_exact(2)
        .enumerate()
        .filter_map(|(i, c)| {
            let at = DateTime::<Utc>::from_timestamp((first + i as i64) * 60, 0)?;
            Some(MinuteCount {
                at,
                processed: c[0].max(0) as u64,
                failed: c[1].max(0) as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_read_oldest_first_from_the_current_one() {
        let list = minutes(&[29_000_000, 5, 1, 7, 0]);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].at.timestamp(), (29_000_000 - 1) * 60);
        assert_eq!((list[1].processed, list[1].failed), (7, 0));
    }

    #[test]
    fn minutes_of_two_shards_add_up_by_minute() {
        let mut sum = Vec::new();
        add_minutes(&mut sum, &[100, 1, 0, 2, 1]);
        add_minutes(&mut sum, &[100, 3, 1, 4, 0]);
        assert_eq!(sum, [100, 4, 1, 6, 1]);
        // Read a minute later: its older minute is the first reply's newer one.
        add_minutes(&mut sum, &[101, 10, 0, 20, 0]);
        assert_eq!(sum, [100, 4, 1, 16, 1]);
    }

    #[test]
    fn a_process_reads_its_heartbeat_info() {
        let info = r#"{"dyno":"web.1","pid":42,"queues":["a","b"],"concurrency":5,"heartbeat_ttl_ms":15000}"#;
        let p = ProcessInfo::from_reply(100_000, ("p1".into(), info.into(), 14_000, 2));
        assert_eq!(p.dyno.as_deref(), Some("web.1"));
        assert_eq!(p.queues, ["a", "b"]);
        assert_eq!((p.pid, p.concurrency, p.busy), (Some(42), Some(5), 2));
        assert_eq!(p.last_heartbeat_at.unwrap().timestamp_millis(), 99_000);
    }
}
