//! The one shutdown signal and the drain deadline.
//!
//! Only this module listens for SIGTERM, SIGINT and SIGHUP (actix's own handling is disabled).
//! SIGHUP drains like SIGTERM: with no terminal to hang up, it only ever means "stop", and its
//! default action would kill the process without a drain. The first signal cancels one
//! [`Shutdown`] token that is passed to everything else; later signals are logged and ignored,
//! because Heroku may repeat SIGTERM and a second one must not cut the drain short. The deadline
//! is measured from the first signal, so every component agrees on how long is left.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Time kept back at the end of the shutdown window to put unfinished jobs back and deregister
/// (at most a quarter of the window).
const REQUEUE_RESERVE: Duration = Duration::from_secs(2);
/// Time kept back after the final release, for the process to stop (at most a tenth of the window).
const EXIT_RESERVE: Duration = Duration::from_millis(600);

/// The shutdown signal, cloned into every part of the process.
#[derive(Clone, Debug)]
pub struct Shutdown {
    token: CancellationToken,
    started: Arc<OnceLock<Instant>>,
    timeout: Duration,
}

impl Shutdown {
    /// A shutdown signal that fires on [`Shutdown::trigger`]; `timeout` is `SHUTDOWN_TIMEOUT`.
    pub fn new(timeout: Duration) -> Shutdown {
        Shutdown {
            token: CancellationToken::new(),
            started: Arc::new(OnceLock::new()),
            timeout,
        }
    }

    /// Starts the shutdown (once; later calls change nothing). Returns true the first time.
    pub fn trigger(&self) -> bool {
        let first = self.started.set(Instant::now()).is_ok();
        self.token.cancel();
        first
    }

    /// Completes when shutdown has begun.
    pub async fn requested(&self) {
        self.token.cancelled().await;
    }

    /// Whether shutdown has begun.
    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Sleeps for `duration`; false when shutdown began first (the caller should stop).
    pub async fn sleep(&self, duration: Duration) -> bool {
        sleep_unless(&self.token, duration).await
    }

    /// Runs `future` unless shutdown begins first, in which case it is dropped and this is `None`.
    pub async fn unless_stopped<F: Future>(&self, future: F) -> Option<F::Output> {
        unless_cancelled(&self.token, future).await
    }

    fn started(&self) -> Instant {
        *self.started.get_or_init(Instant::now)
    }

    /// Until when running jobs may go on before they are cancelled and put back.
    pub fn drain_deadline(&self) -> Instant {
        let reserve = REQUEUE_RESERVE.min(self.timeout / 4);
        self.started() + self.timeout - reserve
    }

    /// Until when interrupted jobs may take to stop and put themselves back.
    pub fn interrupted_deadline(&self) -> Instant {
        let release = self.release_deadline();
        release - (release - self.drain_deadline()) / 2
    }

    /// The moment by which the final release (putting back what is left, deregistering) must end.
    pub fn release_deadline(&self) -> Instant {
        self.exit_deadline() - EXIT_RESERVE.min(self.timeout / 10)
    }

    /// The moment by which the process must have exited.
    pub fn exit_deadline(&self) -> Instant {
        self.started() + self.timeout - Duration::from_millis(100).min(self.timeout / 10)
    }

    /// Listens for SIGTERM, SIGINT and SIGHUP and triggers this shutdown on the first one.
    ///
    /// Also arms a last-resort watchdog: should anything hang, the process still exits by the
    /// deadline, because Heroku's SIGKILL would come soon after and lose more.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            while let Some(signal) = signals.next().await {
                let name = match signal {
                    SIGTERM => "SIGTERM",
                    SIGHUP => "SIGHUP",
                    _ => "SIGINT",
                };
                if shutdown.trigger() {
                    tracing::info!(
                        event = "shutdown.started",
                        signal = name,
                        timeout_s = shutdown.timeout.as_secs_f64()
                    );
                    shutdown.arm_watchdog();
                } else {
                    tracing::info!(event = "shutdown.signal_ignored", signal = name);
                }
            }
        });
        Ok(())
    }

    fn arm_watchdog(&self) {
        let deadline = self.exit_deadline().into_std();
        std::thread::spawn(move || {
            std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
            tracing::error!(
                event = "shutdown.forced",
                "drain did not finish in time; exiting"
            );
            crate::telemetry::flush_unless_busy();
            std::process::exit(1);
        });
    }
}

/// Runs `future` unless `token` is cancelled first, in which case it is dropped and this is
/// `None`. Cancellation wins a tie, so a loop never starts more work once told to stop.
pub async fn unless_cancelled<F: Future>(
    token: &CancellationToken,
    future: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = token.cancelled() => None,
        output = future => Some(output),
    }
}

/// Sleeps for `duration`; false when `token` was cancelled first.
pub async fn sleep_unless(token: &CancellationToken, duration: Duration) -> bool {
    unless_cancelled(token, tokio::time::sleep(duration))
        .await
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn short_windows_keep_the_same_order() {
        let shutdown = Shutdown::new(Duration::from_secs(1));
        shutdown.trigger();
        assert!(shutdown.drain_deadline() < shutdown.interrupted_deadline());
        assert!(shutdown.interrupted_deadline() < shutdown.release_deadline());
        assert!(shutdown.release_deadline() < shutdown.exit_deadline());
    }

    #[tokio::test]
    async fn deadlines_leave_room_to_requeue() {
        let shutdown = Shutdown::new(Duration::from_secs(10));
        assert!(!shutdown.is_requested());
        assert!(shutdown.trigger());
        assert!(!shutdown.trigger(), "a second trigger is not a new start");
        shutdown.requested().await;
        let now = Instant::now();
        let drain = shutdown.drain_deadline() - now;
        let interrupted = shutdown.interrupted_deadline() - now;
        let release = shutdown.release_deadline() - now;
        let exit = shutdown.exit_deadline() - now;
        assert!(drain <= Duration::from_secs(8) && drain > Duration::from_millis(7900));
        assert!(drain < interrupted && interrupted < release && release < exit);
        assert!(release <= Duration::from_millis(9300), "{release:?}");
        assert!(exit < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn sleeps_and_futures_end_early_at_shutdown() {
        let shutdown = Shutdown::new(Duration::from_secs(10));
        assert!(shutdown.sleep(Duration::from_millis(5)).await);
        assert_eq!(shutdown.unless_stopped(async { 7 }).await, Some(7));
        let later = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.trigger();
        });
        assert!(!shutdown.sleep(Duration::from_secs(60)).await);
        assert_eq!(shutdown.unless_stopped(async { 7 }).await, None);
    }
}
