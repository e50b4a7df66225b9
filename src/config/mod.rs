//! Configuration: the only code that reads the environment.
//!
//! Every variable is read once at start-up with `envy`. A value that does not parse, parses to
//! something unusable, or lies outside its documented limits is a [`ConfigError`] that names the
//! variable and the value it got (secrets redacted), so `heroku logs` says exactly what to fix.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

mod http;
mod limits;
mod mail;
mod parse;
mod schedules;
mod secrets;
mod timings;
mod worker_tuning;

pub use crate::worker::QueuePolicy;
pub use limits::{CONCURRENCY_LIMIT, Limit, Rate, check_limit_key};
pub use mail::{MailSettings, SMTP_TIMEOUT, SmtpSettings};
pub use secrets::{redact_url, redis_url_for_client};

use crate::queue::spec::MAX_ATTEMPTS_LIMIT;
use mail::parse_mail;
use parse::{
    bounded_int, bounded_seconds, parse_bool, parse_log_format, parse_log_requests, parse_queues,
    parse_redis_cluster, parse_redis_prefix, parse_role,
};
use schedules::parse_schedules;
use secrets::{parse_api_token, parse_redis_url};
use timings::parse_timings;
pub use worker_tuning::JobLog;
use worker_tuning::{parse_job_log, parse_poll_interval};

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
    /// An entry of `SCHEDULES` is unusable; the message names the entry and the field.
    #[error("invalid SCHEDULES: {0}")]
    Schedule(crate::schedule::ScheduleError),
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

/// Which answered requests get an `http.request` line at info (`LOG_REQUESTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRequests {
    /// Every request.
    All,
    /// Requests that change something (any method but GET and HEAD) and every 4xx or 5xx; a
    /// successful GET or HEAD (dashboard polling, health checks) is logged at debug, since
    /// Heroku's router already logs a line for each request.
    Errors,
}

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

/// The process configuration, read once from the environment. Its `Debug` hides `API_TOKEN` and
/// any Redis password, so the whole value can be logged.
#[derive(Clone)]
pub struct Config {
    /// HTTP port (`PORT`).
    pub port: u16,
    /// Redis URL; `REDIS_TLS_URL` wins over `REDIS_URL`, and `rediss://` accepts self-signed certificates.
    /// It may hold a password: show it only through [`redact_url`].
    pub redis_url: String,
    /// Whether that Redis is used as a cluster (`REDIS_CLUSTER`): asked at connect time by default.
    pub redis_cluster: crate::queue::ClusterMode,
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
    /// The `email` kind's SMTP server and default sender (`SMTP_URL`, `MAIL_FROM`).
    pub mail: MailSettings,
    /// Periodic jobs (`SCHEDULES`).
    pub schedules: Vec<crate::schedule::Schedule>,
    /// Networks the `http` kind may reach past its SSRF guard (`HTTP_ALLOW_NETWORKS`).
    pub http_allow_networks: Vec<ipnet::IpNet>,
    /// Shared rate and concurrency limits by key (`LIMITS`).
    pub limits: std::collections::BTreeMap<String, Limit>,
    /// Which requests are logged at info (`LOG_REQUESTS`).
    pub log_requests: LogRequests,
    /// How often the l2met metrics line is logged (`METRICS_INTERVAL`).
    pub metrics_interval: Duration,
    /// How long an idle worker waits for a wake-up before looking again (`WORKER_POLL_INTERVAL`).
    pub worker_poll_interval: std::time::Duration,
    /// Which job transitions are logged at `info` (`JOB_LOG`).
    pub job_log: JobLog,
    /// Whether the allocator's purge delay is set in the environment (`MIMALLOC_PURGE_DELAY`, or
    /// its old name `MIMALLOC_RESET_DELAY`): mimalloc reads it itself, and `main` leaves it be.
    pub allocator_purge_delay_set: bool,
    /// Usable but doubtful settings, for `main` to log once telemetry is up.
    warnings: Vec<String>,
}

/// The raw environment as envy sees it; every field optional so defaults live in one place.
#[derive(Debug, Deserialize, Default)]
struct RawEnv {
    port: Option<u16>,
    redis_url: Option<String>,
    redis_tls_url: Option<String>,
    redis_cluster: Option<String>,
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
    smtp_url: Option<String>,
    mail_from: Option<String>,
    schedules: Option<String>,
    http_allow_networks: Option<String>,
    limits: Option<String>,
    log_requests: Option<String>,
    metrics_interval: Option<f64>,
    worker_poll_interval: Option<f64>,
    job_log: Option<String>,
    mimalloc_purge_delay: Option<String>,
    mimalloc_reset_delay: Option<String>,
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
        let web_concurrency = parse_web_concurrency(raw.web_concurrency)?;
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
        let mail = parse_mail(raw.smtp_url, raw.mail_from, &mut warnings)?;
        let http_allow_networks =
            http::parse_allow_networks(raw.http_allow_networks.as_deref(), &mut warnings)?;
        Ok(Config {
            port: raw.port.unwrap_or(5000),
            redis_url,
            redis_cluster: parse_redis_cluster(raw.redis_cluster.as_deref())?,
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
            mail,
            schedules: parse_schedules(raw.schedules.as_deref())?,
            http_allow_networks,
            limits: limits::parse_limits(raw.limits.as_deref())?,
            log_requests: parse_log_requests(raw.log_requests.as_deref())?,
            metrics_interval: parse_metrics_interval(raw.metrics_interval)?,
            worker_poll_interval: parse_poll_interval(raw.worker_poll_interval)?,
            job_log: parse_job_log(raw.job_log.as_deref())?,
            allocator_purge_delay_set: raw.mimalloc_purge_delay.is_some()
                || raw.mimalloc_reset_delay.is_some(),
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

/// One web worker per core unless `WEB_CONCURRENCY` says otherwise.
fn parse_web_concurrency(raw: Option<usize>) -> Result<usize, ConfigError> {
    let default_web = std::thread::available_parallelism().map_or(2, |n| n.get());
    bounded_int(
        "WEB_CONCURRENCY",
        raw,
        default_web.min(WEB_CONCURRENCY_LIMIT),
        1,
        WEB_CONCURRENCY_LIMIT,
    )
}

/// Seconds between two l2met lines: a minute, as Heroku's log-based metrics aggregate per minute.
fn parse_metrics_interval(raw: Option<f64>) -> Result<Duration, ConfigError> {
    bounded_seconds("METRICS_INTERVAL", raw, 60.0, 1.0, 3600.0)
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_cluster", &self.redis_cluster)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("web_concurrency", &self.web_concurrency)
            .field("role", &self.role)
            .field("queues", &self.queues)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("job_timeout", &self.job_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff_base", &self.retry_backoff_base)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("job_retention", &self.job_retention)
            .field("job_retention_max", &self.job_retention_max)
            .field("dead_retention", &self.dead_retention)
            .field("dead_max", &self.dead_max)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("demo_kinds", &self.demo_kinds)
            .field("log_filter", &self.log_filter)
            .field("log_format", &self.log_format)
            .field("dyno", &self.dyno)
            .field("mail", &self.mail)
            .field("schedules", &self.schedules.len())
            .field("http_allow_networks", &self.http_allow_networks)
            .field("limits", &self.limits)
            .field("log_requests", &self.log_requests)
            .field("metrics_interval", &self.metrics_interval)
            .field("worker_poll_interval", &self.worker_poll_interval)
            .field("job_log", &self.job_log)
            .field("allocator_purge_delay_set", &self.allocator_purge_delay_set)
            .field("warnings", &self.warnings)
            .finish()
    }
}

#[cfg(test)]
fn test_config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[cfg(test)]
mod tests;
