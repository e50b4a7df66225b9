//! The `onedyno` binary: configuration, telemetry, the app, until the shutdown signal.

use std::process::ExitCode;
use std::time::Duration;

use onedyno::app::App;
use onedyno::config::Config;
use onedyno::shutdown::Shutdown;
use onedyno::{jobs, schedule, telemetry};

/// mimalloc instead of glibc's malloc: a request and a job allocate and free many small buffers
/// across threads, and glibc's arenas spent about a fifth of the process's CPU in malloc, free
/// and consolidation under load (`perf`, produce-and-consume case of the bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (15 in both its v2 and v3 headers; the
/// Rust bindings leave it out).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS at once instead of after mimalloc's default second. A batch
/// of 1,000 jobs frees ~1 MB of buffers; held for a second, four clients sending batches kept a
/// web process at 20-22 MiB instead of 15. It costs a page fault now and then: ~0.1 page faults
/// per drained job, under 1% of its CPU. A delay set in the environment is mimalloc's to read.
fn return_freed_memory_at_once(config: &Config) {
    if !config.allocator_purge_delay_set {
        // SAFETY: sets an integer option; mimalloc reads options at every purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

const USAGE: &str = "usage: onedyno [--help | --version]";

const HELP: &str = "\
onedyno: an HTTP API and Redis-backed job workers in one process.

usage: onedyno [--help | --version]

Without arguments it serves HTTP on $PORT and works jobs until SIGTERM, SIGINT or SIGHUP.
It is configured only by environment variables, among them:

  PORT, REDIS_URL, REDIS_TLS_URL, REDIS_CLUSTER, ROLE, WORKER_CONCURRENCY, WEB_CONCURRENCY,
  QUEUES,  SHUTDOWN_TIMEOUT, JOB_TIMEOUT, MAX_ATTEMPTS, RETRY_BACKOFF_BASE, RETRY_BACKOFF_MAX,
  JOB_RETENTION, JOB_RETENTION_MAX, DEAD_RETENTION, DEAD_MAX, API_TOKEN, REDIS_PREFIX,
  MAX_BODY_BYTES, REQUEST_TIMEOUT, DEMO_KINDS, SMTP_URL, MAIL_FROM, SCHEDULES,
  HTTP_ALLOW_NETWORKS, LIMITS, LOG_REQUESTS, METRICS_INTERVAL, WORKER_POLL_INTERVAL, JOB_LOG,
  RUST_LOG, LOG_FORMAT

See the Configuration section of the README for defaults and limits.
";

/// What the command line asks for.
enum Command {
    Run,
    Help,
    Version,
    Usage,
}

/// Any argument but `--help` or `--version` is refused: the process is configured only by its
/// environment, and a silently ignored flag would look like it took effect.
fn command(mut args: impl Iterator<Item = std::ffi::OsString>) -> Command {
    let first = args.next();
    if args.next().is_some() {
        return Command::Usage;
    }
    match first.as_ref().map(|a| a.to_str()) {
        None => Command::Run,
        Some(Some("--help" | "-h")) => Command::Help,
        Some(Some("--version" | "-V")) => Command::Version,
        Some(_) => Command::Usage,
    }
}

fn main() -> ExitCode {
    match command(std::env::args_os().skip(1)) {
        Command::Run => {
            let code = run();
            // The last lines (app.stopped) may still wait for their batch.
            telemetry::flush();
            code
        }
        Command::Help => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("onedyno {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Usage => {
            eprintln!("{USAGE}\nonedyno takes no other arguments; see onedyno --help");
            ExitCode::from(2)
        }
    }
}

fn run() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "at=error event=config.invalid error={}",
                telemetry::logfmt_value(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    return_freed_memory_at_once(&config);
    // A broken registry is a build mistake, reported like a bad setting and before anything runs.
    let registry = match jobs::registry(&config) {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!(
                "at=error event=registry.invalid error={}",
                telemetry::logfmt_value(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    // A schedule naming a kind that is not registered would never run: refused like a bad setting.
    let schedules = match schedule::schedules(&config, &registry) {
        Ok(schedules) => schedules,
        Err(e) => {
            eprintln!(
                "at=error event=config.invalid error={}",
                telemetry::logfmt_value(&format!("invalid SCHEDULES: {e}"))
            );
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_filter, config.log_format);
    for warning in config.warnings() {
        tracing::warn!(event = "config.warning", message = %warning);
    }
    if config.api_token.is_none() && config.serves_http() {
        tracing::warn!(
            event = "auth.loopback_only",
            "API_TOKEN is not set: only clients on this machine are served"
        );
    }
    // One thread: this runtime carries Redis I/O (each connection's driver is one task anyway),
    // the fetch loop, the runners and the batchers, all short steps between round trips. A second
    // thread only traded work back and forth: a drain of no-op jobs cost 17-20% more process CPU
    // per job, a thread switch per job, and 2 MiB more RSS. HTTP has actix's own threads, and
    // handlers the jobs runtime's (see `App::run_until_stopped`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("onedyno-main")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(event = "app.failed", error = %e);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = Shutdown::new(config.shutdown_timeout);
        shutdown.listen_for_signals()?;
        let app = App::build(config, registry)?.with_schedules(schedules);
        app.run_until_stopped(shutdown).await
    });
    runtime.shutdown_timeout(Duration::from_millis(50));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "app.failed", error = %e);
            ExitCode::FAILURE
        }
    }
}
