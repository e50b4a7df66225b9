//! The settings that are lengths of time, and how they bound each other.

use std::time::Duration;

use super::parse::{bounded_seconds, invalid};
use super::{ConfigError, HEROKU_KILL_AFTER, RawEnv};

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// The settings that are lengths of time.
pub(super) struct Timings {
    pub(super) shutdown_timeout: Duration,
    pub(super) job_timeout: Duration,
    pub(super) retry_backoff_base: Duration,
    pub(super) retry_backoff_max: Duration,
    pub(super) job_retention: Duration,
    pub(super) dead_retention: Duration,
    pub(super) request_timeout: Duration,
}

pub(super) fn parse_timings(
    raw: &RawEnv,
    warnings: &mut Vec<String>,
) -> Result<Timings, ConfigError> {
    let shutdown_timeout =
        bounded_seconds("SHUTDOWN_TIMEOUT", raw.shutdown_timeout, 10.0, 1.0, HOUR)?;
    if shutdown_timeout > HEROKU_KILL_AFTER {
        let (secs, kill) = (shutdown_timeout.as_secs_f64(), HEROKU_KILL_AFTER.as_secs());
        warnings.push(format!(
            "SHUTDOWN_TIMEOUT={secs} is above {kill} s: Heroku sends SIGKILL {kill} s after \
             SIGTERM, cutting the drain short"
        ));
    }
    let retry_backoff_base = bounded_seconds(
        "RETRY_BACKOFF_BASE",
        raw.retry_backoff_base,
        15.0,
        0.0,
        30.0 * DAY,
    )?;
    let retry_backoff_max = bounded_seconds(
        "RETRY_BACKOFF_MAX",
        raw.retry_backoff_max,
        HOUR,
        0.0,
        30.0 * DAY,
    )?;
    if retry_backoff_max < retry_backoff_base {
        return Err(invalid(
            "RETRY_BACKOFF_MAX",
            &retry_backoff_max.as_secs_f64().to_string(),
            "must not be less than RETRY_BACKOFF_BASE",
        ));
    }
    let job_timeout = bounded_seconds("JOB_TIMEOUT", raw.job_timeout, 300.0, 0.0, 7.0 * DAY)?;
    if job_timeout.is_zero() {
        return Err(invalid("JOB_TIMEOUT", "0", "must be more than 0"));
    }
    Ok(Timings {
        shutdown_timeout,
        job_timeout,
        retry_backoff_base,
        retry_backoff_max,
        job_retention: bounded_seconds("JOB_RETENTION", raw.job_retention, DAY, 0.0, 365.0 * DAY)?,
        dead_retention: bounded_seconds(
            "DEAD_RETENTION",
            raw.dead_retention,
            7.0 * DAY,
            0.0,
            365.0 * DAY,
        )?,
        request_timeout: bounded_seconds(
            "REQUEST_TIMEOUT",
            raw.request_timeout,
            30.0,
            1.0,
            5.0 * MINUTE,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_config as config;
    use super::*;

    #[test]
    fn absurd_durations_are_refused_naming_the_variable() {
        for var in [
            "SHUTDOWN_TIMEOUT",
            "JOB_TIMEOUT",
            "RETRY_BACKOFF_BASE",
            "RETRY_BACKOFF_MAX",
            "JOB_RETENTION",
            "DEAD_RETENTION",
            "REQUEST_TIMEOUT",
        ] {
            for value in ["1e19", "1e16", "NaN", "inf", "-inf"] {
                let err = config(&[(var, value)]).unwrap_err().to_string();
                assert!(err.contains(var), "{var}={value}: {err}");
            }
        }
        for (var, max) in [
            ("SHUTDOWN_TIMEOUT", 3600.0),
            ("JOB_TIMEOUT", 7.0 * DAY),
            ("RETRY_BACKOFF_MAX", 30.0 * DAY),
            ("JOB_RETENTION", 365.0 * DAY),
            ("DEAD_RETENTION", 365.0 * DAY),
            ("REQUEST_TIMEOUT", 300.0),
        ] {
            assert!(config(&[(var, &max.to_string())]).is_ok(), "{var}={max}");
            let over = (max + 1.0).to_string();
            let err = config(&[(var, &over)]).unwrap_err().to_string();
            assert!(err.contains("at most"), "{var}={over}: {err}");
        }
        let c = config(&[
            ("RETRY_BACKOFF_BASE", "2592000"),
            ("RETRY_BACKOFF_MAX", "2592000"),
        ]);
        assert_eq!(
            c.unwrap().retry_backoff_base,
            Duration::from_secs(2_592_000)
        );
        assert!(config(&[("REQUEST_TIMEOUT", "0.5")]).is_err());
    }

    #[test]
    fn a_shutdown_timeout_past_herokus_kill_warns() {
        assert!(
            config(&[("SHUTDOWN_TIMEOUT", "30")])
                .unwrap()
                .warnings()
                .is_empty()
        );
        let c = config(&[("SHUTDOWN_TIMEOUT", "45")]).unwrap();
        assert_eq!(c.shutdown_timeout, Duration::from_secs(45));
        assert!(
            c.warnings().len() == 1 && c.warnings()[0].contains("SHUTDOWN_TIMEOUT=45"),
            "{:?}",
            c.warnings()
        );
    }

    #[test]
    fn fractional_seconds_are_allowed() {
        let c = config(&[("RETRY_BACKOFF_BASE", "0.25"), ("RETRY_BACKOFF_MAX", "2")]).unwrap();
        assert_eq!(c.retry_backoff_base, Duration::from_millis(250));
        assert_eq!(c.retry_backoff_max, Duration::from_secs(2));
    }
}
