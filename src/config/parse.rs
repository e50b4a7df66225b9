//! Helpers that turn one raw variable into a checked value, naming the variable on failure.

use std::time::Duration;

use super::{ConfigError, LogFormat, LogRequests, Role, WORKER_CONCURRENCY_LIMIT};
use crate::queue::ClusterMode;
use crate::queue::spec::valid_queue_name;
use crate::worker::QueuePolicy;

pub(super) fn invalid(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Seconds from `min` to `max` (fractions allowed), or `default` when unset.
pub(super) fn bounded_seconds(
    var: &'static str,
    value: Option<f64>,
    default: f64,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    let secs = value.unwrap_or(default);
    // Debug keeps `1e19` short, where Display would spell out twenty digits.
    let shown = format!("{secs:?}");
    let reason = if secs.is_nan() || secs < min.min(0.0) {
        "expected a non-negative number of seconds".to_string()
    } else if secs < min {
        format!("must be at least {min} seconds")
    } else if secs > max {
        format!("must be at most {max} seconds")
    } else {
        return Duration::try_from_secs_f64(secs).map_err(|e| invalid(var, &shown, &e.to_string()));
    };
    Err(invalid(var, &shown, &reason))
}

/// A whole number from `min` to `max`, or `default` when unset.
pub(super) fn bounded_int<T: Copy + PartialOrd + std::fmt::Display>(
    var: &'static str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let n = value.unwrap_or(default);
    if n < min || n > max {
        return Err(invalid(
            var,
            &n.to_string(),
            &format!("must be from {min} to {max}"),
        ));
    }
    Ok(n)
}

/// `true`/`false`/`1`/`0`; anything else is a typo worth stopping for.
pub(super) fn parse_bool(
    var: &'static str,
    value: Option<&str>,
    default: bool,
) -> Result<bool, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(invalid(
            var,
            value.unwrap_or_default(),
            "expected true, false, 1 or 0",
        )),
    }
}

/// Parses `QUEUES`: `a,b,c` (strict priority) or `a:5,b:3,c:1` (weighted).
pub(super) fn parse_queues(value: &str) -> Result<QueuePolicy, ConfigError> {
    let mut strict = Vec::new();
    let mut weighted = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.split_once(':') {
            Some((name, weight)) => {
                let weight: u32 =
                    weight
                        .trim()
                        .parse()
                        .ok()
                        .filter(|w| *w > 0)
                        .ok_or_else(|| {
                            invalid("QUEUES", value, "a weight must be a whole number above 0")
                        })?;
                (name.trim(), Some(weight))
            }
            None => (part, None),
        };
        if !valid_queue_name(name) {
            return Err(invalid(
                "QUEUES",
                value,
                "queue names are 1-64 of A-Z a-z 0-9 _ - .",
            ));
        }
        if strict.iter().any(|n| n == name) {
            return Err(invalid("QUEUES", value, "a queue is named twice"));
        }
        strict.push(name.to_string());
        weighted.push((name.to_string(), weight));
    }
    if strict.is_empty() {
        return Err(invalid("QUEUES", value, "name at least one queue"));
    }
    let with_weight = weighted.iter().filter(|(_, w)| w.is_some()).count();
    if with_weight == 0 {
        Ok(QueuePolicy::Strict(strict))
    } else if with_weight == weighted.len() {
        Ok(QueuePolicy::Weighted(
            weighted
                .into_iter()
                .map(|(n, w)| (n, w.unwrap_or(1)))
                .collect(),
        ))
    } else {
        Err(invalid(
            "QUEUES",
            value,
            "give every queue a weight, or none",
        ))
    }
}

pub(super) fn parse_redis_prefix(prefix: Option<String>) -> Result<String, ConfigError> {
    let prefix = prefix.unwrap_or_else(|| "onedyno".to_string());
    if prefix.contains(['{', '}']) || prefix.chars().any(char::is_whitespace) {
        return Err(invalid(
            "REDIS_PREFIX",
            &prefix,
            "must not contain braces or spaces (it becomes a hash tag)",
        ));
    }
    Ok(prefix)
}

/// The role, and the worker count it implies (none for a web-only process).
pub(super) fn parse_role(
    role: Option<&str>,
    workers: Option<usize>,
) -> Result<(Role, usize), ConfigError> {
    let workers = bounded_int(
        "WORKER_CONCURRENCY",
        workers,
        10,
        0,
        WORKER_CONCURRENCY_LIMIT,
    )?;
    let role = match role.map(str::trim) {
        None | Some("all") | Some("web+worker") if workers == 0 => Role::Web,
        None | Some("all") | Some("web+worker") => Role::All,
        Some("web") => Role::Web,
        Some("worker") => Role::Worker,
        Some(other) => return Err(invalid("ROLE", other, "expected all, web or worker")),
    };
    if role == Role::Worker && workers == 0 {
        return Err(invalid(
            "WORKER_CONCURRENCY",
            "0",
            "ROLE=worker needs at least one worker",
        ));
    }
    Ok((role, if role == Role::Web { 0 } else { workers }))
}

pub(super) fn parse_log_format(value: Option<&str>) -> Result<LogFormat, ConfigError> {
    match value.map(str::trim) {
        None | Some("logfmt") => Ok(LogFormat::Logfmt),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid("LOG_FORMAT", other, "expected logfmt or json")),
    }
}

pub(super) fn parse_log_requests(value: Option<&str>) -> Result<LogRequests, ConfigError> {
    match value.map(str::trim) {
        None | Some("errors") => Ok(LogRequests::Errors),
        Some("all") => Ok(LogRequests::All),
        Some(other) => Err(invalid("LOG_REQUESTS", other, "expected all or errors")),
    }
}

/// `REDIS_CLUSTER`: `auto` (the default: ask the node), `yes` or `no`.
pub(super) fn parse_redis_cluster(value: Option<&str>) -> Result<ClusterMode, ConfigError> {
    match value {
        None => Ok(ClusterMode::Auto),
        Some(raw) => ClusterMode::parse(raw)
            .ok_or_else(|| invalid("REDIS_CLUSTER", raw, "expected auto, yes or no")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_config as config;
    use super::super::{MAX_BODY_BYTES_LIMIT, Role};
    use super::*;
    use std::time::Duration;

    #[test]
    fn queues_parse_strict_and_weighted() {
        let c = config(&[("QUEUES", "critical, default ,low")]).unwrap();
        assert_eq!(
            c.queues,
            QueuePolicy::Strict(vec!["critical".into(), "default".into(), "low".into()])
        );
        let c = config(&[("QUEUES", "critical:5,default:3,low:1")]).unwrap();
        assert_eq!(
            c.queues,
            QueuePolicy::Weighted(vec![
                ("critical".into(), 5),
                ("default".into(), 3),
                ("low".into(), 1)
            ])
        );
    }

    #[test]
    fn redis_cluster_is_auto_yes_or_no() {
        assert_eq!(config(&[]).unwrap().redis_cluster, ClusterMode::Auto);
        let c = config(&[("REDIS_CLUSTER", "yes")]).unwrap();
        assert_eq!(c.redis_cluster, ClusterMode::Yes);
        let c = config(&[("REDIS_CLUSTER", "No")]).unwrap();
        assert_eq!(c.redis_cluster, ClusterMode::No);
        let err = config(&[("REDIS_CLUSTER", "sharded")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REDIS_CLUSTER") && err.contains("sharded"),
            "{err}"
        );
    }

    #[test]
    fn demo_kinds_is_a_strict_boolean() {
        for (value, expected) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            assert_eq!(
                config(&[("DEMO_KINDS", value)]).unwrap().demo_kinds,
                expected
            );
        }
        let err = config(&[("DEMO_KINDS", "yes")]).unwrap_err().to_string();
        assert!(err.contains("DEMO_KINDS") && err.contains("yes"), "{err}");
    }

    #[test]
    fn max_body_bytes_has_a_ceiling() {
        assert_eq!(
            config(&[("MAX_BODY_BYTES", "16777216")])
                .unwrap()
                .max_body_bytes,
            MAX_BODY_BYTES_LIMIT
        );
        let err = config(&[("MAX_BODY_BYTES", "16777217")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MAX_BODY_BYTES") && err.contains("16777217"),
            "{err}"
        );
        assert!(config(&[("MAX_BODY_BYTES", "255")]).is_err());
    }

    #[test]
    fn counts_have_maxima() {
        for (var, ok, over) in [
            ("WORKER_CONCURRENCY", "1000", "1001"),
            ("WEB_CONCURRENCY", "64", "65"),
            ("DEAD_MAX", "10000000", "10000001"),
            ("JOB_RETENTION_MAX", "10000000", "10000001"),
        ] {
            assert!(config(&[(var, ok)]).is_ok(), "{var}={ok}");
            let err = config(&[(var, over)]).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(over), "{err}");
        }
        assert!(config(&[("JOB_RETENTION_MAX", "0")]).is_err());
        assert!(config(&[("WEB_CONCURRENCY", "0")]).is_err());
        assert_eq!(config(&[("DEAD_MAX", "0")]).unwrap().dead_max, 0);
        assert_eq!(
            config(&[("JOB_RETENTION_MAX", "5")])
                .unwrap()
                .job_retention_max,
            5
        );
        assert_eq!(
            config(&[("REQUEST_TIMEOUT", "2.5")])
                .unwrap()
                .request_timeout,
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn roles_follow_concurrency_and_role() {
        assert_eq!(
            config(&[("WORKER_CONCURRENCY", "0")]).unwrap().role,
            Role::Web
        );
        let w = config(&[("ROLE", "worker")]).unwrap();
        assert!(w.runs_workers() && !w.serves_http());
        assert!(config(&[("ROLE", "worker"), ("WORKER_CONCURRENCY", "0")]).is_err());
        assert!(config(&[("ROLE", "cook")]).is_err());
    }
}
