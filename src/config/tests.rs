//! The assembled configuration: defaults, redaction and the errors that name a variable.

use super::test_config as config;
use super::*;
use std::time::Duration;

#[test]
fn defaults_are_as_documented() {
    let c = config(&[]).unwrap();
    assert_eq!(c.port, 5000);
    assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
    assert_eq!(c.worker_concurrency, 10);
    assert_eq!(c.role, Role::All);
    assert_eq!(c.queues, QueuePolicy::Strict(vec!["default".into()]));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.job_timeout, Duration::from_secs(300));
    assert_eq!(c.max_attempts, 10);
    assert_eq!(c.retry_backoff_base, Duration::from_secs(15));
    assert_eq!(c.retry_backoff_max, Duration::from_secs(3600));
    assert_eq!(c.job_retention, Duration::from_secs(86_400));
    assert_eq!(c.dead_retention, Duration::from_secs(604_800));
    assert_eq!(c.dead_max, 10_000);
    assert_eq!(c.api_token, None);
    assert_eq!(c.redis_prefix, "onedyno");
    assert_eq!(c.max_body_bytes, 1_048_576);
    assert_eq!(c.log_format, LogFormat::Logfmt);
    assert_eq!(c.job_retention_max, 10_000);
    assert_eq!(c.request_timeout, Duration::from_secs(30));
    assert!(!c.demo_kinds);
    assert!(c.http_allow_networks.is_empty());
    assert_eq!(c.log_requests, LogRequests::Errors);
    assert_eq!(c.metrics_interval, Duration::from_secs(60));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn the_allocator_purge_delay_is_left_to_mimalloc_when_set_under_either_name() {
    assert!(!config(&[]).unwrap().allocator_purge_delay_set);
    for name in ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"] {
        assert!(
            config(&[(name, "1000")]).unwrap().allocator_purge_delay_set,
            "{name}"
        );
    }
    // Empty counts as unset, as for every variable.
    assert!(
        !config(&[("MIMALLOC_PURGE_DELAY", "")])
            .unwrap()
            .allocator_purge_delay_set
    );
}

#[test]
fn debug_hides_the_token_and_the_redis_password() {
    let c = config(&[
        ("API_TOKEN", "tok-s3cret"),
        ("REDIS_URL", "redis://user:hunter2@h:1"),
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(
        shown.contains("user:***@h:1") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    let err = config(&[("PORT", "eighty")]).unwrap_err().to_string();
    assert!(err.contains("PORT") && err.contains("eighty"), "{err}");
    let err = config(&[("SHUTDOWN_TIMEOUT", "-3")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SHUTDOWN_TIMEOUT") && err.contains("-3"),
        "{err}"
    );
    let err = config(&[("QUEUES", "a,b c")]).unwrap_err().to_string();
    assert!(err.contains("QUEUES") && err.contains("a,b c"), "{err}");
    let err = config(&[("LOG_FORMAT", "xml")]).unwrap_err().to_string();
    assert!(err.contains("LOG_FORMAT") && err.contains("xml"), "{err}");
    assert!(config(&[("MAX_ATTEMPTS", "0")]).is_err());
    assert!(config(&[("MAX_ATTEMPTS", "1001")]).is_err());
    let err = config(&[("RETRY_BACKOFF_BASE", "10"), ("RETRY_BACKOFF_MAX", "5")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RETRY_BACKOFF_MAX") && err.contains('5'),
        "{err}"
    );
    assert!(config(&[("QUEUES", "a:1,b")]).is_err());
    assert!(config(&[("QUEUES", "a:0")]).is_err());
    assert!(config(&[("REDIS_PREFIX", "a{b}")]).is_err());
    let err = config(&[("LOG_REQUESTS", "some")]).unwrap_err().to_string();
    assert!(
        err.contains("LOG_REQUESTS") && err.contains("some"),
        "{err}"
    );
    assert!(config(&[("METRICS_INTERVAL", "0.5")]).is_err());
    assert!(config(&[("METRICS_INTERVAL", "3601")]).is_err());
    assert_eq!(
        config(&[("LOG_REQUESTS", "all")]).unwrap().log_requests,
        LogRequests::All
    );
}
