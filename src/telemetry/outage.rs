//! Logging an outage once: a loop that retries a failing call says so when it starts failing and
//! when it recovers, not on every try.

use std::fmt;

use tracing::Level;

/// A loop's view of an outage of something it calls, so that it logs the first failure and the
/// recovery once each rather than a line per try (the Redis connection already logs every
/// reconnection attempt).
#[derive(Debug)]
pub struct Outage {
    failed: &'static str,
    recovered: Option<&'static str>,
    level: Level,
    down: bool,
}

impl Outage {
    /// Logs `event=<failed> error=...` at warn once per outage and `event=<recovered>` at info.
    pub fn new(failed: &'static str, recovered: &'static str) -> Outage {
        Outage {
            failed,
            recovered: Some(recovered),
            level: Level::WARN,
            down: false,
        }
    }

    /// Logs only the first failure, at debug: for loops whose outage others report already.
    pub fn quiet(failed: &'static str) -> Outage {
        Outage {
            failed,
            recovered: None,
            level: Level::DEBUG,
            down: false,
        }
    }

    /// A call failed: logged if it is the first failure since the last success.
    pub fn fail(&mut self, error: &dyn fmt::Display) {
        if std::mem::replace(&mut self.down, true) {
            return;
        }
        if self.level == Level::WARN {
            tracing::warn!(event = self.failed, error = %error);
        } else {
            tracing::debug!(event = self.failed, error = %error);
        }
    }

    /// A call succeeded: logged if it ends an outage. Returns whether it did.
    pub fn recovered(&mut self) -> bool {
        let was_down = std::mem::replace(&mut self.down, false);
        if let (true, Some(event)) = (was_down, self.recovered) {
            tracing::info!(event);
        }
        was_down
    }
}
