//! The `onedyno` binary: configuration, telemetry, the app, until the shutdown signal.

use std::process::ExitCode;
use std::time::Duration;

use onedyno::app::App;
use onedyno::config::Config;
use onedyno::shutdown::Shutdown;
use onedyno::{jobs, telemetry};

fn main() -> ExitCode {
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
        let registry = jobs::registry(config.demo_kinds);
        let app = App::build(config, registry)?;
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
