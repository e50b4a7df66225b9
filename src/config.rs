//! Configuration: the only code that reads the environment.
//!
//! Every variable of DESIGN section 3 is read once at start-up with `envy`. A value that does not
//! parse, or parses to something unusable, is a [`ConfigError`] that names the variable and the
//! value it got, so `heroku logs` says exactly what to fix.

use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

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

/// How the worker pool chooses among its queues.
#[derive(Debug, Clone, PartialEq)]
pub enum QueuePolicy {
    /// Always the first non-empty queue in the order given.
    Strict(Vec<String>),
    /// Queues are tried in an order drawn at random, each weighted, so no queue starves.
    Weighted(Vec<(String, u32)>),
}

impl QueuePolicy {
    /// The queue names, in the configured order.
    pub fn names(&self) -> Vec<String> {
        match self {
            QueuePolicy::Strict(names) => names.clone(),
            QueuePolicy::Weighted(pairs) => pairs.iter().map(|(n, _)| n.clone()).collect(),
        }
    }

    /// The order in which to try the queues for one fetch.
    pub fn fetch_order(&self) -> Vec<String> {
        match self {
            QueuePolicy::Strict(names) => names.clone(),
            QueuePolicy::Weighted(pairs) => weighted_order(pairs, &mut rand::rng()),
        }
    }
}

/// Draws queues one by one without replacement, each with probability proportional to its weight
/// (Sidekiq's weighted mode): a queue of weight 5 comes first five times as often as one of weight 1,
/// and every queue comes somewhere, so a busy heavy queue cannot starve a light one.
fn weighted_order(pairs: &[(String, u32)], rng: &mut impl rand::Rng) -> Vec<String> {
    let mut left: Vec<&(String, u32)> = pairs.iter().collect();
    let mut order = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = rng.random_range(0..total.max(1));
        let mut index = 0;
        for (i, (_, w)) in left.iter().enumerate() {
            if pick < u64::from(*w) {
                index = i;
                break;
            }
            pick -= u64::from(*w);
        }
        order.push(left.remove(index).0.clone());
    }
    order
}

/// The most failed attempts a job may be allowed (`MAX_ATTEMPTS` and a job's `max_attempts`).
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;

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
    /// How many succeeded or cancelled jobs are kept at most (`JOB_RETENTION_MAX`).
    pub job_retention_max: u64,
    /// How long a dead job is kept (`DEAD_RETENTION`).
    pub dead_retention: Duration,
    /// How many dead jobs are kept at most (`DEAD_MAX`).
    pub dead_max: u64,
    /// Bearer token every route but `/health` requires (`API_TOKEN`); unset = loopback clients only.
    pub api_token: Option<String>,
    /// Key namespace (`REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Request body limit (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Log filter (`RUST_LOG`).
    pub log_filter: String,
    /// Log format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Heroku's dyno name (`DYNO`), used only to make process ids readable.
    pub dyno: Option<String>,
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
    rust_log: Option<String>,
    log_format: Option<String>,
    dyno: Option<String>,
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
        let worker_concurrency = raw.worker_concurrency.unwrap_or(10);
        let role = match raw.role.as_deref().map(str::trim) {
            None | Some("all") | Some("web+worker") => {
                if worker_concurrency == 0 {
                    Role::Web
                } else {
                    Role::All
                }
            }
            Some("web") => Role::Web,
            Some("worker") => Role::Worker,
            Some(other) => {
                return Err(invalid("ROLE", other, "expected all, web or worker"));
            }
        };
        if role == Role::Worker && worker_concurrency == 0 {
            return Err(invalid(
                "WORKER_CONCURRENCY",
                "0",
                "ROLE=worker needs at least one worker",
            ));
        }
        let redis_url = raw
            .redis_tls_url
            .or(raw.redis_url)
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
        let redis_url = redis_url_for_client(&redis_url)?;
        let web_concurrency = match raw.web_concurrency {
            Some(0) => return Err(invalid("WEB_CONCURRENCY", "0", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let shutdown_timeout = seconds("SHUTDOWN_TIMEOUT", raw.shutdown_timeout, 10.0)?;
        if shutdown_timeout < Duration::from_secs(1) {
            return Err(invalid(
                "SHUTDOWN_TIMEOUT",
                &format!("{}", shutdown_timeout.as_secs_f64()),
                "must be at least 1 second",
            ));
        }
        let retry_backoff_base = seconds("RETRY_BACKOFF_BASE", raw.retry_backoff_base, 15.0)?;
        let retry_backoff_max = seconds("RETRY_BACKOFF_MAX", raw.retry_backoff_max, 3600.0)?;
        let max_attempts = raw.max_attempts.unwrap_or(10);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(invalid(
                "MAX_ATTEMPTS",
                &max_attempts.to_string(),
                &format!("must be from 1 to {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        if retry_backoff_max < retry_backoff_base {
            return Err(invalid(
                "RETRY_BACKOFF_MAX",
                &retry_backoff_max.as_secs_f64().to_string(),
                "must not be less than RETRY_BACKOFF_BASE",
            ));
        }
        let redis_prefix = raw.redis_prefix.unwrap_or_else(|| "onedyno".to_string());
        if redis_prefix.contains(['{', '}']) || redis_prefix.chars().any(char::is_whitespace) {
            return Err(invalid(
                "REDIS_PREFIX",
                &redis_prefix,
                "must not contain braces or spaces (it becomes a hash tag)",
            ));
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(1_048_576);
        if max_body_bytes < 256 {
            return Err(invalid(
                "MAX_BODY_BYTES",
                &max_body_bytes.to_string(),
                "must be at least 256",
            ));
        }
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("logfmt") => LogFormat::Logfmt,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "expected logfmt or json")),
        };
        let queues = parse_queues(raw.queues.as_deref().unwrap_or("default"))?;
        let job_timeout = seconds("JOB_TIMEOUT", raw.job_timeout, 300.0)?;
        if job_timeout.is_zero() {
            return Err(invalid("JOB_TIMEOUT", "0", "must be more than 0"));
        }
        Ok(Config {
            port: raw.port.unwrap_or(5000),
            redis_url,
            worker_concurrency: if role == Role::Web {
                0
            } else {
                worker_concurrency
            },
            web_concurrency,
            role,
            queues,
            shutdown_timeout,
            job_timeout,
            max_attempts,
            retry_backoff_base,
            retry_backoff_max,
            job_retention: seconds("JOB_RETENTION", raw.job_retention, 86_400.0)?,
            job_retention_max: raw.job_retention_max.unwrap_or(10_000),
            dead_retention: seconds("DEAD_RETENTION", raw.dead_retention, 604_800.0)?,
            dead_max: raw.dead_max.unwrap_or(10_000),
            api_token: raw.api_token,
            redis_prefix,
            max_body_bytes,
            log_filter: raw.rust_log.unwrap_or_else(|| "info".to_string()),
            log_format,
            dyno: raw.dyno,
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
}

fn invalid(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn seconds(var: &'static str, value: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let secs = value.unwrap_or(default);
    Duration::try_from_secs_f64(secs).map_err(|_| {
        invalid(
            var,
            &secs.to_string(),
            "expected a non-negative number of seconds",
        )
    })
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
            url,
            "expected redis://host:port or rediss://host:port",
        ));
    };
    match scheme {
        "redis" | "redis+unix" | "unix" => Ok(url.to_string()),
        "rediss" if url.contains('#') => Ok(url.to_string()),
        "rediss" => Ok(format!("{url}#insecure")),
        _ => Err(invalid(
            "REDIS_URL",
            url,
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
    fn defaults_match_the_design() {
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
    fn weighted_order_follows_the_weights_and_starves_nobody() {
        use rand::SeedableRng;
        let pairs = vec![("a".to_string(), 3), ("b".to_string(), 1)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut a_first = 0;
        for _ in 0..4000 {
            let order = weighted_order(&pairs, &mut rng);
            assert_eq!(order.len(), 2);
            if order[0] == "a" {
                a_first += 1;
            }
        }
        // Expect 3000 of 4000; a wide band keeps the test about the rule, not the draw.
        assert!((2700..3300).contains(&a_first), "a first {a_first} times");
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
