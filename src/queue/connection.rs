//! The shared Redis connection, established in the background.
//!
//! The process binds its port before Redis is reachable (Heroku kills a web process that has not
//! bound in 60 s), so the connection is made by a background task that retries with capped
//! backoff. Until it succeeds every operation answers [`QueueError::Unavailable`]. Once made, the
//! `ConnectionManager` reconnects by itself after Redis restarts.
//!
//! This multiplexed connection only ever carries short commands and scripts: a blocking command
//! would stall everything queued behind it. Pub/sub gets a connection of its own.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::QueueError;
use crate::shutdown::Shutdown;

const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(250);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(3);

/// A handle to Redis, cheap to clone.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    manager: Arc<OnceLock<ConnectionManager>>,
}

impl RedisHandle {
    /// Parses the URL; connects nothing yet.
    pub fn open(url: &str) -> Result<RedisHandle, QueueError> {
        let client = redis::Client::open(url)
            .map_err(|e| QueueError::Redis(format!("bad Redis URL: {e}")))?;
        Ok(RedisHandle {
            client,
            manager: Arc::new(OnceLock::new()),
        })
    }

    /// The shared connection, or `Unavailable` while the first connection has not been made.
    pub fn connection(&self) -> Result<ConnectionManager, QueueError> {
        self.manager
            .get()
            .cloned()
            .ok_or_else(|| QueueError::Unavailable("not connected yet".into()))
    }

    /// Whether the first connection has been made (before it, nothing can have been fetched).
    pub fn is_connected(&self) -> bool {
        self.manager.get().is_some()
    }

    /// A new dedicated connection for pub/sub.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, QueueError> {
        let connect = self.client.get_async_pubsub();
        tokio::time::timeout(Duration::from_secs(3), connect)
            .await
            .map_err(|_| QueueError::Unavailable("pub/sub connect timed out".into()))?
            .map_err(QueueError::from)
    }

    /// Connects in the background, retrying with capped backoff until it succeeds or shutdown.
    pub fn spawn_connect(&self, shutdown: Shutdown) {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut delay = CONNECT_BACKOFF_MIN;
            let mut attempt = 1u32;
            loop {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(3)))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(100))
                    .set_max_delay(Duration::from_secs(1));
                let connect = ConnectionManager::new_with_config(handle.client.clone(), config);
                let result = tokio::select! {
                    r = connect => r,
                    _ = shutdown.requested() => return,
                };
                match result {
                    Ok(manager) => {
                        let _ = handle.manager.set(manager);
                        tracing::info!(event = "redis.connected", attempt);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(
                            event = "redis.connect_failed",
                            attempt,
                            retry_in_ms = delay.as_millis() as u64,
                            error = %e
                        );
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.requested() => return,
                }
                delay = (delay * 2).min(CONNECT_BACKOFF_MAX);
                attempt += 1;
            }
        });
    }

    /// PING with a short deadline: is Redis answering now?
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.connection()?;
        let ping = redis::cmd("PING");
        tokio::time::timeout(
            Duration::from_secs(1),
            ping.query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| QueueError::Unavailable("PING timed out".into()))??;
        Ok(())
    }
}
