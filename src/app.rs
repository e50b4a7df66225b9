//! The application: binds the listener, starts the HTTP server, the worker pool and the
//! maintenance loops, and owns the stop order.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{HttpServer, web};
use thiserror::Error;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::jobs::Registry;
use crate::maintenance;
use crate::queue::{Queue, QueueError, RedisHandle, Retention};
use crate::schedule::{self, Schedules};
use crate::shutdown::Shutdown;
use crate::worker::{Backoff, Pool, PoolSettings};

/// Longer than Heroku's router idle timeout (55 s at the router, 90 s for keep-alive), so the
/// router, not this process, closes idle connections.
const KEEP_ALIVE: Duration = Duration::from_secs(95);

/// Why the application could not start.
#[derive(Debug, Error)]
pub enum AppError {
    /// The port could not be bound, or a runtime not started.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The Redis URL is unusable.
    #[error("{0}")]
    Queue(#[from] QueueError),
}

/// A built application, its port bound, ready to run.
pub struct App {
    config: Arc<Config>,
    registry: Arc<Registry>,
    queue: Queue,
    listener: Option<TcpListener>,
    process: String,
    schedules: Arc<Schedules>,
}

impl App {
    /// Binds `0.0.0.0:$PORT` (unless the role is worker-only) and prepares the queue. Connects
    /// to nothing yet: the port is bound whether or not Redis is up.
    pub fn build(config: Config, registry: Registry) -> Result<App, AppError> {
        let listener = if config.serves_http() {
            let listener = TcpListener::bind(("0.0.0.0", config.port))?;
            listener.set_nonblocking(true)?;
            Some(listener)
        } else {
            None
        };
        let redis = RedisHandle::open_with(&config.redis_url, config.redis_cluster)?;
        let queue = Queue::new(
            redis,
            &config.redis_prefix,
            Retention {
                job: config.job_retention,
                job_max: config.job_retention_max,
                dead: config.dead_retention,
                dead_max: config.dead_max,
            },
        );
        // A fresh identity per boot: during a restart Heroku runs the old and new web.1 side by side.
        let boot = uuid::Uuid::now_v7().simple().to_string();
        let process = format!(
            "{}-{}",
            config.dyno.as_deref().unwrap_or("local"),
            &boot[boot.len() - 12..]
        );
        Ok(App {
            config: Arc::new(config),
            registry: Arc::new(registry),
            queue,
            listener,
            process,
            schedules: Arc::new(Schedules::new()),
        })
    }

    /// Runs `schedules` (already checked against the registry) in this process's scheduler and
    /// shows them in `GET /schedules`.
    pub fn with_schedules(mut self, schedules: Schedules) -> App {
        self.schedules = Arc::new(schedules);
        self
    }

    /// Starts what every process runs beside HTTP and the workers: the Redis connection, the
    /// maintenance loops with the metrics line, and the scheduler.
    fn spawn_loops(&self, shutdown: &Shutdown) {
        let config = &self.config;
        self.queue.redis().spawn_connect(shutdown.clone());
        let line = maintenance::MetricsLine {
            interval: config.metrics_interval,
            source: config.dyno.clone().unwrap_or_else(|| self.process.clone()),
        };
        maintenance::spawn(
            self.queue.clone(),
            config.queues.names(),
            line,
            shutdown.clone(),
        );
        schedule::spawn(
            self.queue.clone(),
            &self.schedules,
            &self.registry,
            config.max_attempts,
            shutdown.clone(),
        );
    }

    /// Runs until `shutdown`, then stops HTTP and drains the workers at once, and returns when
    /// both are done (always before `SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(mut self, shutdown: Shutdown) -> Result<(), AppError> {
        let config = self.config.clone();
        self.queue.start_batchers();
        self.spawn_loops(&shutdown);

        // Handlers run on a runtime of their own, at a lower priority: a job that hogs its
        // threads cannot delay HTTP (actix's own threads), heartbeats, or the writes that record
        // outcomes.
        let jobs_runtime = if config.runs_workers() {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .thread_name("onedyno-job")
                    .on_thread_start(crate::worker::lower_job_thread_priority)
                    .enable_all()
                    .build()?,
            )
        } else {
            None
        };
        let pool = jobs_runtime
            .as_ref()
            .map(|rt| tokio::spawn(self.pool(rt.handle().clone()).run(shutdown.clone())));
        // The port actually bound, which differs from `PORT` when that is 0 (tests ask for any).
        let port = self
            .listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "none".to_string(), |a| a.port().to_string());
        let server = match self.listener.take() {
            Some(listener) => Some(self.serve(listener, &shutdown)?),
            None => None,
        };
        tracing::info!(
            event = "app.started",
            process = %self.process,
            port = %port,
            workers = config.worker_concurrency,
            http_threads = if server.is_some() { config.web_concurrency } else { 0 }
        );

        shutdown.requested().await;
        let http_stopped = async {
            if let Some(handle) = server {
                // Requests in progress may finish, but not past the release deadline: after it
                // the process exits, and any connection still open goes with it.
                let _ =
                    tokio::time::timeout_at(shutdown.release_deadline(), handle.stop(true)).await;
            }
        };
        let workers_drained = async {
            if let Some(pool) = pool {
                let _ = pool.await;
            }
        };
        tokio::join!(http_stopped, workers_drained);
        if let Some(rt) = jobs_runtime {
            rt.shutdown_background();
        }
        tracing::info!(event = "app.stopped", process = %self.process);
        Ok(())
    }

    /// The worker pool, running handlers on `jobs_runtime`.
    fn pool(&self, jobs_runtime: tokio::runtime::Handle) -> Pool {
        let config = &self.config;
        Pool::new(
            self.queue.clone(),
            self.registry.clone(),
            PoolSettings {
                concurrency: config.worker_concurrency,
                queues: config.queues.clone(),
                job_timeout: config.job_timeout,
                backoff: Backoff {
                    base: config.retry_backoff_base,
                    max: config.retry_backoff_max,
                },
                describe: describe_process(config),
                idle_poll: config.worker_poll_interval,
                log_started: config.job_log == crate::config::JobLog::All,
            },
            self.process.clone(),
            jobs_runtime,
        )
    }

    /// Starts the HTTP server on `listener`; the handle stops it.
    fn serve(&self, listener: TcpListener, shutdown: &Shutdown) -> Result<ServerHandle, AppError> {
        let config = self.config.clone();
        let state = web::Data::new(AppState {
            queue: self.queue.clone(),
            registry: self.registry.clone(),
            config: config.clone(),
            shutdown: shutdown.clone(),
            schedules: self.schedules.clone(),
        });
        let grace = config.shutdown_timeout.as_secs().saturating_sub(2).max(1);
        let server = HttpServer::new(move || http::app(state.clone()))
            .workers(config.web_concurrency)
            .keep_alive(KEEP_ALIVE)
            // A client that never finishes its request head gets actix's own 408 and the
            // connection closed, instead of holding it for good.
            .client_request_timeout(config.request_timeout)
            .disable_signals()
            .shutdown_timeout(grace)
            .listen(listener)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(handle)
    }
}

/// What `GET /processes` shows of this process beside what the worker knows itself.
fn describe_process(config: &Config) -> serde_json::Map<String, serde_json::Value> {
    let role = match config.role {
        crate::config::Role::Worker => "worker",
        crate::config::Role::Web => "web",
        crate::config::Role::All => "all",
    };
    // Linux's own name for the host; Heroku's dynos run Linux.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut fields = serde_json::Map::new();
    fields.insert("dyno".into(), config.dyno.clone().into());
    fields.insert("host".into(), host.into());
    fields.insert("role".into(), role.into());
    fields.insert("started_at".into(), started_at.into());
    fields
}
