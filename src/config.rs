//! Configuration: the only code that reads the environment.
//!
//! Every variable is read once at start-up with `envy`. A value that does not parse, parses to
//! something unusable, or lies outside its documented limits is a [`ConfigError`] that names the
//! variable and the value it got (secrets redacted), so `heroku logs` says exactly what to fix.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::worker::QueuePolicy;

/// A start-up configuration error; the process prints it and exits non-zero.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A variable is present but its value cannot be used.
    #[error("invalid {var}={value:?}: {reason}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// The value it had.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A secret variable's value cannot be used; the message names the problem, never the value.
    #[error("invalid {var}=<redacted>: {reason}")]
    Redacted {
        /// The environment variable.
        var: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `envy` refused a value (wrong type); its message names the variable and the value.
    #[error("invalid configuration: {0}")]
    Env(String),
}

/// Whether this process serves HTTP, works jobs, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP and workers in one process (the default).
    All,
    /// HTTP only, as `WORKER_CONCURRENCY=0` asks.
    Web,
    /// Workers only, no listener (`ROLE=worker`), for a `worker:` Procfile line.
    Worker,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` lines for `heroku logs --tail`.
    Logfmt,
    /// One JSON object per line, for machine drains.
    Json,
}

/// The most failed attempts a job may be allowed (`MAX_ATTEMPTS` and a job's `max_attempts`).
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// The largest `MAX_BODY_BYTES`: a body is held in memory whole, so a huge limit is a memory hazard.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// Heroku sends SIGKILL this long after SIGTERM; a longer `SHUTDOWN_TIMEOUT` is cut short there.
pub const HEROKU_KILL_AFTER: Duration = Duration::from_secs(30);

/// The most jobs one process runs at once (`WORKER_CONCURRENCY`).
const WORKER_CONCURRENCY_LIMIT: usize = 1000;
/// The most HTTP worker threads (`WEB_CONCURRENCY`).
const WEB_CONCURRENCY_LIMIT: usize = 64;
/// The most jobs kept of one kind of retention (`JOB_RETENTION_MAX`, `DEAD_MAX`).
const COUNT_LIMIT: u64 = 10_000_000;

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// True when `name` is usable as a queue name: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The process configuration, read once from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP port (`PORT`).
    pub port: u16,
    /// Redis URL; `REDIS_TLS_URL` wins over `REDIS_URL`, and `rediss://` accepts self-signed certificates.
    /// It may hold a password: show it only through [`redact_url`].
    pub redis_url: String,
    /// Jobs run at once by this process (`WORKER_CONCURRENCY`).
    pub worker_concurrency: usize,
    /// HTTP worker threads (`WEB_CONCURRENCY`).
    pub web_concurrency: usize,
    /// Which parts run here.
    pub role: Role,
    /// Queues this process works (`QUEUES`).
    pub queues: QueuePolicy,
    /// From the shutdown signal to exit (`SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// Default time limit of one attempt (`JOB_TIMEOUT`).
    pub job_timeout: Duration,
    /// Default failed attempts before a job is dead (`MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Backoff before the first retry (`RETRY_BACKOFF_BASE`).
    pub retry_backoff_base: Duration,
    /// Longest backoff (`RETRY_BACKOFF_MAX`).
    pub retry_backoff_max: Duration,
    /// How long a succeeded or cancelled job stays readable (`JOB_RETENTION`).
    pub job_retention: Duration,
    /// The most succeeded or cancelled jobs kept (`JOB_RETENTION_MAX`).
    pub job_retention_max: u64,
    /// How long a dead job is kept (`DEAD_RETENTION`).
    pub dead_retention: Duration,
    /// How many dead jobs are kept at most (`DEAD_MAX`).
    pub dead_max: u64,
    /// Bearer token every route but `/health` requires (`API_TOKEN`, trimmed); unset = loopback
    /// clients only.
    pub api_token: Option<String>,
    /// Key namespace (`REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Request body limit (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Time a client has to send its request head and body (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// Whether the demo kinds `sleep`, `fail`, `steps` and `cpu` are registered (`DEMO_KINDS`).
    pub demo_kinds: bool,
    /// Log filter (`RUST_LOG`).
    pub log_filter: String,
    /// Log format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Heroku's dyno name (`DYNO`), used only to make process ids readable.
    pub dyno: Option<String>,
    /// Usable but doubtful settings, for `main` to log once telemetry is up.
    warnings: Vec<String>,
}

/// The raw environment as envy sees it; every field optional so defaults live in one place.
#[derive(Debug, Deserialize, Default)]
struct RawEnv {
    port: Option<u16>,
    redis_url: Option<String>,
    redis_tls_url: Option<String>,
    worker_concurrency: Option<usize>,
    web_concurrency: Option<usize>,
    role: Option<String>,
    queues: Option<String>,
    shutdown_timeout: Option<f64>,
    job_timeout: Option<f64>,
    max_attempts: Option<u32>,
    retry_backoff_base: Option<f64>,
    retry_backoff_max: Option<f64>,
    job_retention: Option<f64>,
    job_retention_max: Option<u64>,
    dead_retention: Option<f64>,
    dead_max: Option<u64>,
    api_token: Option<String>,
    redis_prefix: Option<String>,
    max_body_bytes: Option<usize>,
    request_timeout: Option<f64>,
    demo_kinds: Option<String>,
    rust_log: Option<String>,
    log_format: Option<String>,
    dyno: Option<String>,
}

/// The settings that are lengths of time.
struct Timings {
    shutdown_timeout: Duration,
    job_timeout: Duration,
    retry_backoff_base: Duration,
    retry_backoff_max: Duration,
    job_retention: Duration,
    dead_retention: Duration,
    request_timeout: Duration,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Reads configuration from `(name, value)` pairs, as if they were the environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // Heroku and shells often leave a variable set but empty; treat that as unset.
        let vars = vars.into_iter().filter(|(_, v)| !v.trim().is_empty());
        let raw: RawEnv = envy::from_iter(vars).map_err(|e| ConfigError::Env(e.to_string()))?;
        Config::from_raw(raw)
    }

    fn from_raw(raw: RawEnv) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let (role, worker_concurrency) = parse_role(raw.role.as_deref(), raw.worker_concurrency)?;
        let timings = parse_timings(&raw, &mut warnings)?;
        let redis_url = parse_redis_url(raw.redis_tls_url, raw.redis_url)?;
        let default_web = std::thread::available_parallelism().map_or(2, |n| n.get());
        let web_concurrency = bounded_int(
            "WEB_CONCURRENCY",
            raw.web_concurrency,
            default_web.min(WEB_CONCURRENCY_LIMIT),
            1,
            WEB_CONCURRENCY_LIMIT,
        )?;
        let max_attempts =
            bounded_int("MAX_ATTEMPTS", raw.max_attempts, 10, 1, MAX_ATTEMPTS_LIMIT)?;
        let redis_prefix = parse_redis_prefix(raw.redis_prefix)?;
        let max_body_bytes = bounded_int(
            "MAX_BODY_BYTES",
            raw.max_body_bytes,
            1_048_576,
            256,
            MAX_BODY_BYTES_LIMIT,
        )?;
        let log_format = parse_log_format(raw.log_format.as_deref())?;
        let queues = parse_queues(raw.queues.as_deref().unwrap_or("default"))?;
        Ok(Config {
            port: raw.port.unwrap_or(5000),
            redis_url,
            worker_concurrency,
            web_concurrency,
            role,
            queues,
            shutdown_timeout: timings.shutdown_timeout,
            job_timeout: timings.job_timeout,
            max_attempts,
            retry_backoff_base: timings.retry_backoff_base,
            retry_backoff_max: timings.retry_backoff_max,
            job_retention: timings.job_retention,
            job_retention_max: bounded_int(
                "JOB_RETENTION_MAX",
                raw.job_retention_max,
                10_000,
                1,
                COUNT_LIMIT,
            )?,
            dead_retention: timings.dead_retention,
            dead_max: bounded_int("DEAD_MAX", raw.dead_max, 10_000, 0, COUNT_LIMIT)?,
            api_token: parse_api_token(raw.api_token, &mut warnings)?,
            redis_prefix,
            max_body_bytes,
            request_timeout: timings.request_timeout,
            demo_kinds: parse_bool("DEMO_KINDS", raw.demo_kinds.as_deref(), false)?,
            log_filter: raw.rust_log.unwrap_or_else(|| "info".to_string()),
            log_format,
            dyno: raw.dyno,
            warnings,
        })
    }

    /// Whether this process runs the HTTP server.
    pub fn serves_http(&self) -> bool {
        self.role != Role::Worker
    }

    /// Whether this process works jobs.
    pub fn runs_workers(&self) -> bool {
        self.role != Role::Web && self.worker_concurrency > 0
    }

    /// Settings that were accepted but deserve a warning, to log once logging is set up.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn parse_timings(raw: &RawEnv, warnings: &mut Vec<String>) -> Result<Timings, ConfigError> {
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

/// The role, and the worker count it implies (none for a web-only process).
fn parse_role(role: Option<&str>, workers: Option<usize>) -> Result<(Role, usize), ConfigError> {
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

/// The Redis URL the client opens, checked whole now so a typo stops start-up, not a later connect.
fn parse_redis_url(tls: Option<String>, plain: Option<String>) -> Result<String, ConfigError> {
    let (var, url) = match (tls, plain) {
        (Some(url), _) => ("REDIS_TLS_URL", url),
        (None, Some(url)) => ("REDIS_URL", url),
        (None, None) => ("REDIS_URL", "redis://127.0.0.1:6379".to_string()),
    };
    let url = redis_url_for_client(&url).map_err(|e| match e {
        ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid { var, value, reason },
        other => other,
    })?;
    redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(|e| invalid(var, &redact_url(&url), &e.to_string()))?;
    Ok(url)
}

fn parse_redis_prefix(prefix: Option<String>) -> Result<String, ConfigError> {
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

fn parse_log_format(value: Option<&str>) -> Result<LogFormat, ConfigError> {
    match value.map(str::trim) {
        None | Some("logfmt") => Ok(LogFormat::Logfmt),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid("LOG_FORMAT", other, "expected logfmt or json")),
    }
}

/// `true`/`false`/`1`/`0`; anything else is a typo worth stopping for.
fn parse_bool(var: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
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

/// Trims `API_TOKEN` (a pasted token often brings a newline) and refuses one a client could not
/// send in a header. Errors never show the token.
fn parse_api_token(
    token: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let trimmed = token.trim();
    if trimmed.len() != token.len() {
        warnings.push("API_TOKEN had surrounding whitespace; it was trimmed".to_string());
    }
    let reason = if !trimmed.is_ascii() {
        Some("must be ASCII")
    } else if trimmed.bytes().any(|b| b.is_ascii_control()) {
        Some("must not contain control characters")
    } else if trimmed.bytes().any(|b| b == b' ') {
        Some("must not contain whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::Redacted {
            var: "API_TOKEN",
            reason,
        }),
        None => Ok(Some(trimmed.to_string())),
    }
}

fn invalid(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Seconds from `min` to `max` (fractions allowed), or `default` when unset.
fn bounded_seconds(
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
fn bounded_int<T: Copy + PartialOrd + std::fmt::Display>(
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

/// `url` with any password replaced by `***`, fit for logs and error messages.
///
/// `user:password@` becomes `user:***@`, a lone `secret@` becomes `***@` (Redis takes it as the
/// password on some servers), and a `pass=`/`password=` query value (unix sockets) becomes `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => rest.to_string(),
    };
    format!("{scheme}{}", redact_query_password(&rest))
}

fn redact_query_password(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == "pass" || key == "password" => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Parses `QUEUES`: `a,b,c` (strict priority) or `a:5,b:3,c:1` (weighted).
fn parse_queues(value: &str) -> Result<QueuePolicy, ConfigError> {
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

/// Turns a configured Redis URL into the one the client opens.
///
/// Heroku Redis serves TLS with a self-signed certificate, so a `rediss://` URL without a fragment
/// gets `#insecure` (encrypted, not verified), which is what Heroku documents for its add-on. A URL
/// that already has a fragment is left as the user wrote it.
pub fn redis_url_for_client(url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(invalid(
            "REDIS_URL",
            &redact_url(url),
            "expected redis://host:port or rediss://host:port",
        ));
    };
    match scheme {
        "redis" | "redis+unix" | "unix" => Ok(url.to_string()),
        "rediss" if url.contains('#') => Ok(url.to_string()),
        "rediss" => Ok(format!("{url}#insecure")),
        _ => Err(invalid(
            "REDIS_URL",
            &redact_url(url),
            "the scheme must be redis:// or rediss://",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

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
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
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
    fn api_token_is_trimmed_with_a_warning() {
        let c = config(&[("API_TOKEN", " abc-123\n")]).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("abc-123"));
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].contains("API_TOKEN"), "{:?}", c.warnings());
        assert!(!c.warnings()[0].contains("abc-123"), "{:?}", c.warnings());
        let c = config(&[("API_TOKEN", "abc-123")]).unwrap();
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn unusable_api_tokens_are_refused_without_showing_them() {
        for (token, problem) in [
            ("s3cret tok", "whitespace"),
            ("s3cret\ttok", "control"),
            ("s3cret\u{7f}tok", "control"),
            ("s3cretétok", "ASCII"),
        ] {
            let err = config(&[("API_TOKEN", token)]).unwrap_err().to_string();
            assert!(
                err.contains("API_TOKEN=<redacted>") && err.contains(problem),
                "{token:?}: {err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn redis_url_errors_hide_the_password() {
        let err = config(&[("REDIS_URL", "redis://:pw@host:notaport")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("REDIS_URL") && err.contains("host"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        let err = config(&[("REDIS_TLS_URL", "http://user:hunter2@host:1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REDIS_TLS_URL") && err.contains("user:***@host"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(config(&[("REDIS_URL", "redis://:pw@host:6379/notadb")]).is_err());
    }

    #[test]
    fn redact_url_hides_every_form_of_password() {
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(
            redact_url("rediss://u:p@ss@h:1#insecure"),
            "rediss://u:***@h:1#insecure"
        );
        assert_eq!(redact_url("redis://secret@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("pw@h:1"), "***@h:1");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?db=1&pass=secret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
    }

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
    fn tls_url_wins_and_accepts_self_signed_certificates() {
        let c = config(&[
            ("REDIS_URL", "redis://h:1"),
            ("REDIS_TLS_URL", "rediss://:pw@h:2"),
        ])
        .unwrap();
        assert_eq!(c.redis_url, "rediss://:pw@h:2#insecure");
        let c = config(&[("REDIS_URL", "rediss://h:2")]).unwrap();
        assert_eq!(c.redis_url, "rediss://h:2#insecure");
    }

    #[test]
    fn redis_urls_are_checked() {
        assert_eq!(
            redis_url_for_client("redis://h:1/0").unwrap(),
            "redis://h:1/0"
        );
        assert_eq!(
            redis_url_for_client("rediss://h:1/#insecure").unwrap(),
            "rediss://h:1/#insecure"
        );
        let err = redis_url_for_client("http://h:1").unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("http://h:1"),
            "{err}"
        );
        assert!(redis_url_for_client("h:1").is_err());
        // The rewritten URL must be one the redis client accepts, with TLS verification off.
        let info = redis::IntoConnectionInfo::into_connection_info(
            redis_url_for_client("rediss://:pw@example.com:6380")
                .unwrap()
                .as_str(),
        )
        .unwrap();
        match info.addr() {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                assert_eq!(
                    (host.as_str(), *port, *insecure),
                    ("example.com", 6380, true)
                );
            }
            other => panic!("expected TLS, got {other:?}"),
        }
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

    #[test]
    fn fractional_seconds_are_allowed() {
        let c = config(&[("RETRY_BACKOFF_BASE", "0.25"), ("RETRY_BACKOFF_MAX", "2")]).unwrap();
        assert_eq!(c.retry_backoff_base, Duration::from_millis(250));
        assert_eq!(c.retry_backoff_max, Duration::from_secs(2));
    }

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
    fn queue_names_are_restricted() {
        assert!(valid_queue_name("default"));
        assert!(valid_queue_name("mail-2.low_x"));
        assert!(!valid_queue_name(""));
        assert!(!valid_queue_name("a b"));
        assert!(!valid_queue_name("a}b"));
        assert!(!valid_queue_name(&"q".repeat(65)));
    }
}
