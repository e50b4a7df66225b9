//! The job record as stored in its Redis hash, and as the API shows it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::error::QueueError;
pub use super::status::JobStatus;

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Which attempt failed (1-based).
    pub attempt: u32,
    /// When, in ms since the epoch (shown as RFC 3339).
    #[serde(serialize_with = "ms_as_rfc3339")]
    pub at: i64,
    /// What went wrong.
    pub message: String,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Sortable id (UUIDv7).
    pub id: String,
    /// The registered handler's name.
    pub kind: String,
    /// The queue it runs from.
    pub queue: String,
    /// The handler's arguments.
    pub args: Value,
    /// Where it is in its life.
    pub status: JobStatus,
    /// How many times a worker has started it.
    pub attempts: u32,
    /// Failed attempts counted against `max_attempts` (reset by a manual retry).
    #[serde(skip)]
    pub failures: u32,
    /// Failed attempts allowed before it is dead.
    pub max_attempts: u32,
    /// Its own time limit, when it has one.
    #[serde(serialize_with = "opt_duration_secs")]
    pub timeout: Option<Duration>,
    /// One entry per failed attempt (the most recent ones, oldest first).
    pub errors: Vec<AttemptError>,
    /// What the handler returned.
    pub result: Option<Value>,
    /// The latest progress the handler reported.
    pub progress: Option<Value>,
    /// State saved by the handler for the next attempt.
    #[serde(skip)]
    pub checkpoint: Option<Value>,
    /// Created (ms since the epoch).
    #[serde(serialize_with = "ms_as_rfc3339")]
    pub created_at: i64,
    /// When it was (or is) due to run.
    #[serde(serialize_with = "opt_ms_as_rfc3339")]
    pub run_at: Option<i64>,
    /// When the latest attempt started.
    #[serde(serialize_with = "opt_ms_as_rfc3339")]
    pub started_at: Option<i64>,
    /// When it reached a final status.
    #[serde(serialize_with = "opt_ms_as_rfc3339")]
    pub finished_at: Option<i64>,
    /// When it last became ready (for queue latency).
    #[serde(skip)]
    pub enqueued_at: Option<i64>,
    /// The current lease, while a worker holds it.
    #[serde(skip)]
    pub lease: Option<String>,
}

impl JobRecord {
    /// Reads a record from the flat field/value list HGETALL returns.
    pub fn from_fields(fields: Vec<String>) -> Result<JobRecord, QueueError> {
        let mut map: HashMap<String, String> = HashMap::with_capacity(fields.len() / 2);
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.insert(k, v);
        }
        JobRecord::from_map(map)
    }

    /// Reads a record from its hash fields: the one-letter names scripts write (see
    /// `scripts/prelude.lua`) or the long names of records written before them, and `id`.
    pub fn from_map(mut map: HashMap<String, String>) -> Result<JobRecord, QueueError> {
        let id = map
            .remove("id")
            .ok_or_else(|| QueueError::unreadable("", "id"))?;
        let created_offset = map.remove("C");
        let duration = map.remove("d");
        let mut take = |short: &str, long: &str| map.remove(short).or_else(|| map.remove(long));
        let status = take("s", "status");
        let kind = take("k", "kind");
        let queue = take("q", "queue");
        let args = take("a", "args");
        let attempts = take("n", "attempts");
        let failures = take("x", "failures");
        let max_attempts = take("m", "max_attempts");
        let timeout_ms = take("T", "timeout_ms");
        let result = take("R", "result");
        let created_at = take("c", "created_at");
        let run_at = take("r", "run_at");
        let started_at = take("t", "started_at");
        let finished_at = take("f", "finished_at");
        let enqueued_at = take("e", "enqueued_at");
        let lease = take("L", "lease");
        let corrupt = |field: &str| QueueError::unreadable(&id, field);
        let json = |v: Option<String>, field: &str| json_field(&id, v, field);
        let int = |v: Option<String>, field: &str| int_field(&id, v, field);
        let status = status
            .and_then(|s| JobStatus::parse(&s))
            .ok_or_else(|| corrupt("status"))?;
        let errors = read_errors(&mut map, &id)?;
        // Kept as offsets by the scripts (see `created_field` and `ack_jobs` in prelude.lua):
        // from the time the id carries, and from the start.
        let created_at = match (int(created_at, "created_at")?, int(created_offset, "C")?) {
            (Some(at), _) => at,
            (None, Some(offset)) => {
                super::ids::millis_of(&id).ok_or_else(|| corrupt("C"))? + offset
            }
            (None, None) => 0,
        };
        let started_at = int(started_at, "started_at")?;
        let finished_at = match (int(finished_at, "finished_at")?, int(duration, "d")?) {
            (Some(at), _) => Some(at),
            (None, Some(took)) => Some(started_at.ok_or_else(|| corrupt("d"))? + took),
            (None, None) => None,
        };
        Ok(JobRecord {
            kind: kind.ok_or_else(|| corrupt("kind"))?,
            queue: queue.ok_or_else(|| corrupt("queue"))?,
            // Absent args are `{}`: the default of a new job.
            args: args_or_empty(json(args, "args")?),
            status,
            attempts: int(attempts, "attempts")?.unwrap_or(0) as u32,
            failures: int(failures, "failures")?.unwrap_or(0) as u32,
            max_attempts: int(max_attempts, "max_attempts")?.unwrap_or(1) as u32,
            timeout: timeout_of(int(timeout_ms, "timeout_ms")?),
            errors,
            result: json(result, "result")?,
            progress: json(map.remove("progress"), "progress")?,
            checkpoint: json(map.remove("checkpoint"), "checkpoint")?,
            created_at,
            // A job due at once is stored without run_at: it was due when it was created.
            run_at: Some(int(run_at, "run_at")?.unwrap_or(created_at)),
            started_at,
            finished_at,
            enqueued_at: int(enqueued_at, "enqueued_at")?,
            lease,
            id,
        })
    }
}

/// A stored JSON field of job `id`, if present.
pub(super) fn json_field(
    id: &str,
    v: Option<String>,
    field: &str,
) -> Result<Option<Value>, QueueError> {
    v.map(|s| serde_json::from_str(&s).map_err(|_| QueueError::unreadable(id, field)))
        .transpose()
}

/// A stored integer field of job `id`, if present.
pub(super) fn int_field(
    id: &str,
    v: Option<String>,
    field: &str,
) -> Result<Option<i64>, QueueError> {
    v.map(|s| {
        s.parse::<i64>()
            .map_err(|_| QueueError::unreadable(id, field))
    })
    .transpose()
}

/// Absent args are `{}`: the default of a new job, which is stored without them.
pub(super) fn args_or_empty(args: Option<Value>) -> Value {
    args.unwrap_or_else(|| Value::Object(Default::default()))
}

/// A stored timeout (whole ms) as a duration.
pub(super) fn timeout_of(ms: Option<i64>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(ms.max(0) as u64))
}

/// The error entries, oldest first: one `err:{n}` field each, after the `errors` array that
/// records written before kept.
fn read_errors(
    map: &mut HashMap<String, String>,
    id: &str,
) -> Result<Vec<AttemptError>, QueueError> {
    let corrupt = |field: &str| QueueError::unreadable(id, field);
    let mut errors = match map.remove("errors") {
        Some(s) => parse_errors(&s).ok_or_else(|| corrupt("errors"))?,
        None => Vec::new(),
    };
    let mut numbered: Vec<(u64, AttemptError)> = Vec::new();
    for (field, entry) in map.iter() {
        if let Some(n) = field.strip_prefix("err:").and_then(|n| n.parse().ok()) {
            numbered.push((n, parse_error(entry).ok_or_else(|| corrupt(field))?));
        }
    }
    numbered.sort_by_key(|(n, _)| *n);
    errors.extend(numbered.into_iter().map(|(_, e)| e));
    Ok(errors)
}

/// Lua's cjson writes numbers as doubles (`1.7e12` style is possible); accept any JSON number.
fn error_from_value(v: &Value) -> Option<AttemptError> {
    Some(AttemptError {
        attempt: v.get("attempt")?.as_f64()? as u32,
        at: v.get("at")?.as_f64()? as i64,
        message: v.get("message")?.as_str()?.to_string(),
    })
}

/// One `err:<n>` entry, as `fail.lua` writes it.
pub(super) fn parse_error(s: &str) -> Option<AttemptError> {
    error_from_value(&serde_json::from_str(s).ok()?)
}

/// The `errors` array of records written before each error had a field of its own.
fn parse_errors(s: &str) -> Option<Vec<AttemptError>> {
    let values: Vec<Value> = serde_json::from_str(s).ok()?;
    values.iter().map(error_from_value).collect()
}

/// Formats ms since the epoch as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn ms_as_rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

pub(super) fn opt_ms_as_rfc3339<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

fn opt_duration_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect()
    }

    #[test]
    fn a_stored_hash_reads_back_and_shows_as_api_json() {
        let job = JobRecord::from_fields(fields(&[
            ("id", "j1"),
            ("kind", "echo"),
            ("queue", "default"),
            ("args", r#"{"a":1}"#),
            ("status", "retrying"),
            ("attempts", "2"),
            ("failures", "2"),
            ("max_attempts", "5"),
            ("errors", r#"[{"attempt":1,"at":1.7e12,"message":"boom"}]"#),
            ("created_at", "1700000000000"),
            ("run_at", "1700000000500"),
            ("lease", "p:2"),
        ]))
        .unwrap();
        assert_eq!(job.status, JobStatus::Retrying);
        assert_eq!(job.errors[0].at, 1_700_000_000_000);
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["created_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["errors"][0]["message"], "boom");
        assert_eq!(json["args"]["a"], 1);
        assert!(json.get("lease").is_none() && json.get("checkpoint").is_none());
        assert_eq!(json["finished_at"], Value::Null);
    }

    #[test]
    fn numbered_error_fields_read_back_in_order_after_a_legacy_array() {
        let job = JobRecord::from_fields(fields(&[
            ("id", "j1"),
            ("kind", "fail"),
            ("queue", "default"),
            ("status", "dead"),
            ("errors", r#"[{"attempt":1,"at":1,"message":"old"}]"#),
            ("err_seq", "11"),
            ("err:11", r#"{"attempt":12,"at":3,"message":"eleventh"}"#),
            ("err:9", r#"{"attempt":10,"at":2,"message":"ninth"}"#),
        ]))
        .unwrap();
        let messages: Vec<&str> = job.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["old", "ninth", "eleventh"]);
        let broken = fields(&[
            ("id", "j1"),
            ("kind", "fail"),
            ("queue", "default"),
            ("status", "dead"),
            ("err:1", "not json"),
        ]);
        assert!(JobRecord::from_fields(broken).is_err());
    }

    #[test]
    fn times_kept_as_offsets_read_back_whole() {
        // The id carries 1700000000000 ms (0x018bcfe56800).
        let job = JobRecord::from_fields(fields(&[
            ("id", "018bcfe5-6800-8001-8000-000000000000"),
            ("k", "noop"),
            ("q", "default"),
            ("s", "succeeded"),
            ("C", "3"),
            ("t", "1700000000010"),
            ("d", "25"),
        ]))
        .unwrap();
        assert_eq!(job.created_at, 1_700_000_000_003);
        assert_eq!(job.run_at, Some(1_700_000_000_003));
        assert_eq!(job.finished_at, Some(1_700_000_000_035));
        // A clock behind the id's: a negative offset.
        let job = JobRecord::from_fields(fields(&[
            ("id", "018bcfe5-6800-8001-8000-000000000000"),
            ("k", "noop"),
            ("q", "default"),
            ("s", "queued"),
            ("C", "-2"),
        ]))
        .unwrap();
        assert_eq!(job.created_at, 1_699_999_999_998);
        assert_eq!(job.finished_at, None);
        // An offset with nothing to add it to is a broken record.
        for broken in [("C", "3"), ("d", "3")] {
            let record = JobRecord::from_fields(fields(&[
                ("id", "x"),
                ("k", "noop"),
                ("q", "default"),
                ("s", "succeeded"),
                broken,
            ]));
            assert!(record.is_err(), "{broken:?}");
        }
    }

    #[test]
    fn a_broken_hash_is_an_error_not_a_panic() {
        assert!(JobRecord::from_fields(fields(&[("kind", "echo")])).is_err());
        assert!(JobRecord::from_fields(fields(&[("id", "x"), ("status", "weird")])).is_err());
    }
}
