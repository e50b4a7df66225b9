//! Settings that tune the worker's pace and its log volume: `WORKER_POLL_INTERVAL` and `JOB_LOG`.

use std::time::Duration;

use super::ConfigError;
use super::parse::{bounded_seconds, invalid};

/// Which job transitions get an `info` line (`JOB_LOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLog {
    /// One line per attempt, `job.finished` (with duration and status); `job.started` is `debug`.
    Finished,
    /// `job.started` too, at `info`: two lines per attempt.
    All,
}

/// Parses `JOB_LOG`: `finished` (the default) or `all`.
pub(super) fn parse_job_log(value: Option<&str>) -> Result<JobLog, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("finished") => Ok(JobLog::Finished),
        Some("all") => Ok(JobLog::All),
        Some(_) => Err(invalid(
            "JOB_LOG",
            value.unwrap_or_default(),
            "expected finished or all",
        )),
    }
}

/// Parses `WORKER_POLL_INTERVAL`: seconds an idle worker waits before looking at its queues
/// again when no wake-up came (a lost pub/sub hint). 1 s by default, from 10 ms to 60 s.
pub(super) fn parse_poll_interval(value: Option<f64>) -> Result<Duration, ConfigError> {
    bounded_seconds("WORKER_POLL_INTERVAL", value, 1.0, 0.01, 60.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_log_defaults_to_one_line_per_job() {
        assert_eq!(parse_job_log(None).unwrap(), JobLog::Finished);
        assert_eq!(parse_job_log(Some(" ALL ")).unwrap(), JobLog::All);
        let err = parse_job_log(Some("verbose")).unwrap_err().to_string();
        assert!(err.contains("JOB_LOG"), "{err}");
    }

    #[test]
    fn poll_interval_is_bounded() {
        assert_eq!(parse_poll_interval(None).unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse_poll_interval(Some(0.05)).unwrap(),
            Duration::from_millis(50)
        );
        for bad in [0.0, 61.0, f64::NAN] {
            let err = parse_poll_interval(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("WORKER_POLL_INTERVAL"), "{bad}: {err}");
        }
    }
}
