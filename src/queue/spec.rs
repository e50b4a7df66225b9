//! The job spec: what a client may ask for in a new job, and the one place it is checked.
//!
//! [`JobSpec::parse`] turns a request and the configured defaults into a [`NewJob`] or a
//! [`SpecError`]. It does no I/O, so every rule can be tested without HTTP or Redis; whether the
//! kind exists and its `args` fit is the registry's business, not this module's.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use super::{NewJob, RunAt};

/// The most failed attempts a job may be allowed (`MAX_ATTEMPTS` and a job's `max_attempts`).
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// The longest `delay` accepted, the furthest `run_at`, and the longest wait before a retry: a
/// year and a day, so "same time next year" fits.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// The longest per-job `timeout` accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest per-job `timeout` accepted: the job record keeps whole milliseconds, and anything
/// shorter would be stored as 0 and kill the job at once.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// The queue a job goes to when it names none.
pub const DEFAULT_QUEUE: &str = "default";

/// True when `name` is usable as a queue name: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Why a job spec was refused; each message is what the client is told.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The JSON does not have the spec's shape (a missing `kind`, an unknown field, a wrong type).
    #[error("{0}")]
    Shape(#[from] serde_json::Error),
    /// The queue name is not usable.
    #[error("queue must be 1 to 64 of A-Z a-z 0-9 _ - .")]
    Queue,
    /// Both `delay` and `run_at` were given.
    #[error("give delay or run_at, not both")]
    DelayAndRunAt,
    /// A number of seconds is negative, not finite, or above its maximum.
    #[error("{field} must be a number of seconds from 0 to {max_secs}")]
    Seconds {
        /// The field (`delay` or `timeout`).
        field: &'static str,
        /// Its maximum, in whole seconds.
        max_secs: u64,
    },
    /// `run_at` is further away than [`MAX_DELAY`].
    #[error("run_at is more than a year away")]
    RunAtTooFar,
    /// `max_attempts` (given or defaulted) is out of range.
    #[error("max_attempts must be from 1 to {MAX_ATTEMPTS_LIMIT}")]
    MaxAttempts,
    /// `timeout` is below [`MIN_TIMEOUT`].
    #[error("timeout must be at least 0.001 s")]
    TimeoutTooShort,
}

/// What a job gets when its spec does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDefaults {
    /// Failed attempts allowed (`MAX_ATTEMPTS`, or the kind's own).
    pub max_attempts: u32,
    /// The queue when the request names none (the kind's own, else `default`).
    pub queue: Option<String>,
    /// The time limit when the request gives none (the kind's own, else `JOB_TIMEOUT` at run time).
    pub timeout: Option<Duration>,
}

/// The body of `POST /jobs`. Unknown fields are refused, so a typo is an error, not a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The handler's name.
    pub kind: String,
    /// The handler's arguments (`{}` when absent).
    #[serde(default = "empty_object")]
    pub args: Value,
    /// The queue (`default` when absent).
    pub queue: Option<String>,
    /// Seconds to wait before the job is due.
    pub delay: Option<f64>,
    /// When the job is due.
    pub run_at: Option<DateTime<FixedOffset>>,
    /// Failed attempts allowed.
    pub max_attempts: Option<u32>,
    /// Seconds one attempt may run.
    pub timeout: Option<f64>,
}

fn empty_object() -> Value {
    json!({})
}

impl JobSpec {
    /// Reads a spec from a JSON body.
    pub fn from_json(body: Value) -> Result<JobSpec, SpecError> {
        Ok(serde_json::from_value(body)?)
    }

    /// Checks the spec and fills in the defaults. `now_ms` (ms since the epoch) bounds `run_at`;
    /// `idempotency` is the key and the request's fingerprint, stored with the job.
    pub fn parse(
        self,
        defaults: &JobDefaults,
        now_ms: i64,
        idempotency: Option<(String, String)>,
    ) -> Result<NewJob, SpecError> {
        let queue = self
            .queue
            .or_else(|| defaults.queue.clone())
            .unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        if !valid_queue_name(&queue) {
            return Err(SpecError::Queue);
        }
        let when = run_at(self.delay, self.run_at, now_ms)?;
        let max_attempts = self.max_attempts.unwrap_or(defaults.max_attempts);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(SpecError::MaxAttempts);
        }
        let timeout = self
            .timeout
            .map(|t| seconds("timeout", t, MAX_TIMEOUT))
            .transpose()?;
        if timeout.is_some_and(|t| t < MIN_TIMEOUT) {
            return Err(SpecError::TimeoutTooShort);
        }
        let timeout = timeout.or(defaults.timeout);
        Ok(NewJob {
            id: super::Queue::job_id_for(&queue),
            kind: self.kind,
            queue,
            args: self.args,
            max_attempts,
            timeout,
            when,
            idempotency,
        })
    }
}

fn run_at(
    delay: Option<f64>,
    at: Option<DateTime<FixedOffset>>,
    now_ms: i64,
) -> Result<RunAt, SpecError> {
    match (delay, at) {
        (Some(_), Some(_)) => Err(SpecError::DelayAndRunAt),
        (Some(delay), None) => Ok(RunAt::After(seconds("delay", delay, MAX_DELAY)?)),
        (None, Some(at)) => {
            let at = at.timestamp_millis();
            let latest = now_ms.saturating_add(MAX_DELAY.as_millis() as i64);
            if at > latest {
                return Err(SpecError::RunAtTooFar);
            }
            Ok(RunAt::At(at))
        }
        (None, None) => Ok(RunAt::Now),
    }
}

fn seconds(field: &'static str, value: f64, max: Duration) -> Result<Duration, SpecError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| *d <= max)
        .ok_or(SpecError::Seconds {
            field,
            max_secs: max.as_secs(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const DEFAULTS: JobDefaults = JobDefaults {
        max_attempts: 10,
        queue: None,
        timeout: None,
    };

    fn spec(body: Value) -> Result<NewJob, SpecError> {
        JobSpec::from_json(body)?.parse(&DEFAULTS, NOW, None)
    }

    fn message(body: Value) -> String {
        spec(body).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_what_the_spec_leaves_out() {
        let job = spec(json!({"kind": "echo"})).unwrap();
        assert_eq!(job.kind, "echo");
        assert_eq!(job.queue, "default");
        assert_eq!(job.args, json!({}));
        assert_eq!(job.max_attempts, 10);
        assert_eq!(job.timeout, None);
        assert!(matches!(job.when, RunAt::Now));
        assert!(uuid::Uuid::parse_str(&job.id).is_ok());
    }

    #[test]
    fn a_full_spec_is_kept() {
        let job = spec(json!({
            "kind": "sleep", "args": {"ms": 5}, "queue": "low", "delay": 1.5,
            "max_attempts": 3, "timeout": 0.25
        }))
        .unwrap();
        assert_eq!(
            (job.queue.as_str(), job.max_attempts, job.timeout),
            ("low", 3, Some(Duration::from_millis(250)))
        );
        assert!(matches!(job.when, RunAt::After(d) if d == Duration::from_millis(1500)));
        let job = spec(json!({"kind": "x", "run_at": "2027-01-15T08:00:00Z"})).unwrap();
        // NOW is that instant.
        assert!(matches!(job.when, RunAt::At(ms) if ms == NOW));
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert!(message(json!({"kind": "x", "queu": "a"})).contains("unknown field `queu`"));
        assert!(message(json!({"args": {}})).contains("missing field `kind`"));
        assert!(matches!(spec(json!({"kind": 1})), Err(SpecError::Shape(_))));
    }

    #[test]
    fn each_rule_says_what_is_wrong() {
        for (body, expected) in [
            (
                json!({"kind": "x", "queue": "a b"}),
                "queue must be 1 to 64 of A-Z a-z 0-9 _ - .",
            ),
            (
                json!({"kind": "x", "delay": 1, "run_at": "2027-01-01T00:00:00Z"}),
                "give delay or run_at, not both",
            ),
            (
                json!({"kind": "x", "delay": -1}),
                "delay must be a number of seconds from 0 to 31622400",
            ),
            (
                json!({"kind": "x", "delay": 31_622_401}),
                "delay must be a number of seconds from 0 to 31622400",
            ),
            (
                json!({"kind": "x", "run_at": "2099-01-01T00:00:00Z"}),
                "run_at is more than a year away",
            ),
            (
                json!({"kind": "x", "max_attempts": 0}),
                "max_attempts must be from 1 to 1000",
            ),
            (
                json!({"kind": "x", "max_attempts": 1001}),
                "max_attempts must be from 1 to 1000",
            ),
            (
                json!({"kind": "x", "timeout": 604_801}),
                "timeout must be a number of seconds from 0 to 604800",
            ),
            (
                json!({"kind": "x", "timeout": 0.0005}),
                "timeout must be at least 0.001 s",
            ),
        ] {
            assert_eq!(message(body.clone()), expected, "{body}");
        }
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(spec(json!({"kind": "x", "delay": 31_622_400})).is_ok());
        assert!(spec(json!({"kind": "x", "timeout": 604_800})).is_ok());
        assert!(spec(json!({"kind": "x", "timeout": 0.001})).is_ok());
        assert!(spec(json!({"kind": "x", "max_attempts": 1000})).is_ok());
        // A past run_at is simply due now.
        assert!(spec(json!({"kind": "x", "run_at": "2000-01-01T00:00:00Z"})).is_ok());
    }

    #[test]
    fn a_configured_default_out_of_range_is_refused() {
        let defaults = JobDefaults {
            max_attempts: 0,
            ..DEFAULTS
        };
        let err = JobSpec::from_json(json!({"kind": "x"}))
            .unwrap()
            .parse(&defaults, NOW, None)
            .unwrap_err();
        assert!(matches!(err, SpecError::MaxAttempts));
    }

    #[test]
    fn queue_names_are_restricted() {
        assert!(valid_queue_name("default"));
        assert!(valid_queue_name("mail-2.low_x"));
        assert!(!valid_queue_name(""));
        assert!(!valid_queue_name("a b"));
        assert!(!valid_queue_name("a}b"));
        assert!(!valid_queue_name(&"q".repeat(65)));
    }

    #[test]
    fn a_kinds_own_defaults_fill_what_the_request_leaves_out() {
        let defaults = JobDefaults {
            max_attempts: 3,
            queue: Some("mail".into()),
            timeout: Some(Duration::from_secs(20)),
        };
        let job = JobSpec::from_json(json!({"kind": "x"}))
            .unwrap()
            .parse(&defaults, NOW, None)
            .unwrap();
        assert_eq!(
            (job.queue.as_str(), job.max_attempts, job.timeout),
            ("mail", 3, Some(Duration::from_secs(20)))
        );
        let job =
            JobSpec::from_json(json!({"kind": "x", "queue": "q", "timeout": 1, "max_attempts": 1}))
                .unwrap()
                .parse(&defaults, NOW, None)
                .unwrap();
        assert_eq!(
            (job.queue.as_str(), job.max_attempts, job.timeout),
            ("q", 1, Some(Duration::from_secs(1)))
        );
    }
}
