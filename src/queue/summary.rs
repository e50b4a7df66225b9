//! Job summaries: what a list shows of each job, bounded in size whatever the job holds.

use serde::Serialize;

use super::error::QueueError;
use super::job::{AttemptError, JobStatus, ms_as_rfc3339, opt_ms_as_rfc3339, parse_error};
use super::limits::{SUMMARY_ERROR_MAX_BYTES, truncate};

/// A job as a list shows it: no args, result or history (`GET /jobs/{id}` has those), and its
/// last error cut to [`SUMMARY_ERROR_MAX_BYTES`].
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// Its id.
    pub id: String,
    /// The handler's name.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// How many times a worker has started it.
    pub attempts: u32,
    /// Failed attempts allowed.
    pub max_attempts: u32,
    /// Created.
    #[serde(serialize_with = "ms_as_rfc3339")]
    pub created_at: i64,
    /// When it was (or is) due.
    #[serde(serialize_with = "opt_ms_as_rfc3339")]
    pub run_at: Option<i64>,
    /// When the latest attempt started.
    #[serde(serialize_with = "opt_ms_as_rfc3339")]
    pub started_at: Option<i64>,
    /// When it reached a final status.
    #[serde(serialize_with = "opt_ms_as_rfc3339")]
    pub finished_at: Option<i64>,
    /// The most recent failed attempt, its message cut short.
    pub last_error: Option<AttemptError>,
    /// What a running job last reported (bounded by `PROGRESS_MAX_BYTES`), or null.
    pub progress: Option<serde_json::Value>,
}

impl JobSummary {
    /// Reads one entry of `summaries.lua`'s reply: ten fields (nil where unset), then the last
    /// error entry or nil, then the progress (JSON) or nil.
    pub(super) fn from_reply(mut fields: Vec<Option<String>>) -> Result<JobSummary, QueueError> {
        let progress = if fields.len() == 12 {
            fields.pop().flatten()
        } else {
            None
        };
        let [
            id,
            kind,
            queue,
            status,
            attempts,
            max_attempts,
            created,
            run,
            started,
            finished,
            last,
        ]: [Option<String>; 11] =
            fields
                .try_into()
                .map_err(|f: Vec<_>| QueueError::UnexpectedReply {
                    script: "summaries",
                    reply: format!("a summary of {} fields", f.len()),
                })?;
        let id = id.ok_or_else(|| QueueError::unreadable("", "id"))?;
        let corrupt = |field: &str| QueueError::unreadable(&id, field);
        let int = |v: Option<String>, field: &str| -> Result<Option<i64>, QueueError> {
            v.map(|s| s.parse::<i64>().map_err(|_| corrupt(field)))
                .transpose()
        };
        let last_error = last
            .map(|entry| parse_error(&entry).ok_or_else(|| corrupt("last error")))
            .transpose()?
            .map(|mut e| {
                e.message = truncate(&e.message, SUMMARY_ERROR_MAX_BYTES).into_owned();
                e
            });
        Ok(JobSummary {
            kind: kind.ok_or_else(|| corrupt("kind"))?,
            queue: queue.ok_or_else(|| corrupt("queue"))?,
            status: status
                .as_deref()
                .and_then(JobStatus::parse)
                .ok_or_else(|| corrupt("status"))?,
            attempts: int(attempts, "attempts")?.unwrap_or(0) as u32,
            max_attempts: int(max_attempts, "max_attempts")?.unwrap_or(1) as u32,
            created_at: int(created, "created_at")?.unwrap_or(0),
            run_at: int(run, "run_at")?,
            started_at: int(started, "started_at")?,
            finished_at: int(finished, "finished_at")?,
            last_error,
            progress: progress
                .map(|p| serde_json::from_str(&p).map_err(|_| corrupt("progress")))
                .transpose()?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(last: Option<String>) -> Vec<Option<String>> {
        let mut f: Vec<Option<String>> = [
            "j1",
            "fail",
            "default",
            "dead",
            "3",
            "3",
            "1700000000000",
            "1700000000000",
        ]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect();
        f.extend([None, Some("1700000001000".to_string()), last]);
        f
    }

    #[test]
    fn a_summary_cuts_the_last_error_and_shows_times() {
        let entry = serde_json::json!({"attempt": 3, "at": 1.7e12, "message": "x".repeat(5000)});
        let s = JobSummary::from_reply(reply(Some(entry.to_string()))).unwrap();
        let e = s.last_error.as_ref().unwrap();
        assert!(e.message.len() <= SUMMARY_ERROR_MAX_BYTES && e.message.starts_with("xxx"));
        assert_eq!(e.attempt, 3);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["finished_at"], "2023-11-14T22:13:21.000Z");
        assert_eq!(json["started_at"], serde_json::Value::Null);
        assert_eq!(json["status"], "dead");
        assert!(json.get("args").is_none() && json.get("errors").is_none());
    }

    #[test]
    fn a_short_or_broken_reply_is_an_error() {
        assert!(JobSummary::from_reply(vec![Some("j1".into())]).is_err());
        assert!(JobSummary::from_reply(reply(Some("nope".into()))).is_err());
        assert!(
            JobSummary::from_reply(reply(None))
                .unwrap()
                .last_error
                .is_none()
        );
    }
}
