//! The shared Redis connection, established in the background.
//!
//! The process binds its port before Redis is reachable (Heroku kills a web process that has not
//! bound in 60 s), so the connection is made by a background task that retries with capped
//! backoff. Until it succeeds every operation answers [`QueueError::Unavailable`]. Once made, the
//! `ConnectionManager` reconnects by itself after Redis restarts.
//!
//! This multiplexed connection only ever carries short commands and scripts: a blocking command
//! would stall everything queued behind it. Pub/sub gets a connection of its own.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;

use super::error::QueueError;
use crate::config::redact_url;
use crate::shutdown::Shutdown;

const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(250);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(3);
/// How often the connection is checked once made.
const SUPERVISE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a PING may take before it counts as unanswered.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// PINGs in a row that time out before the connection is replaced.
const UNRESPONSIVE_PINGS: u32 = 3;

/// A handle to Redis, cheap to clone.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    manager: Arc<RwLock<Option<ConnectionManager>>>,
    /// Turns true once the first connection is made, so the worker starts at that moment
    /// instead of at its next retry.
    connected: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Keepalive probes and a user timeout make the kernel notice a peer that vanished without a
/// word (a failover, a lost host), which otherwise takes it about 15 minutes of retransmissions.
fn tcp_settings() -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(Duration::from_secs(10));
    settings
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(3)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
}

impl RedisHandle {
    /// Parses the URL; connects nothing yet.
    pub fn open(url: &str) -> Result<RedisHandle, QueueError> {
        let info = url
            .into_connection_info()
            .map_err(|source| QueueError::BadUrl {
                url: redact_url(url),
                source,
            })?
            .set_tcp_settings(tcp_settings());
        let client = redis::Client::open(info).map_err(|source| QueueError::BadUrl {
            url: redact_url(url),
            source,
        })?;
        Ok(RedisHandle {
            client,
            manager: Arc::new(RwLock::new(None)),
            connected: Arc::new(tokio::sync::watch::Sender::new(false)),
        })
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.manager
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, manager: ConnectionManager) {
        *self
            .manager
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(manager);
        self.connected.send_replace(true);
    }

    /// Returns once the first connection has been made.
    pub async fn connected(&self) {
        let mut made = self.connected.subscribe();
        // The sender lives as long as this handle, so the wait ends only by the value turning true.
        let _ = made.wait_for(|made| *made).await;
    }

    /// The shared connection, or `Unavailable` while the first connection has not been made.
    pub fn connection(&self) -> Result<ConnectionManager, QueueError> {
        self.current()
            .ok_or_else(|| QueueError::NoAnswer("not connected yet"))
    }

    /// Whether the first connection has been made (before it, nothing can have been fetched).
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// A new dedicated connection for pub/sub.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, QueueError> {
        let connect = self.client.get_async_pubsub();
        tokio::time::timeout(Duration::from_secs(3), connect)
            .await
            .map_err(|_| QueueError::NoAnswer("pub/sub connect timed out"))?
            .map_err(QueueError::from)
    }

    /// Connects in the background, retrying with capped backoff until it succeeds (or shutdown),
    /// then watches the connection and replaces it when it stops answering.
    pub fn spawn_connect(&self, shutdown: Shutdown) {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut delay = CONNECT_BACKOFF_MIN;
            let mut attempt = 1u32;
            loop {
                let connect =
                    ConnectionManager::new_with_config(handle.client.clone(), manager_config());
                let result = tokio::select! {
                    r = connect => r,
                    _ = shutdown.requested() => return,
                };
                match result {
                    Ok(manager) => {
                        handle.replace(manager);
                        tracing::info!(event = "redis.connected", attempt);
                        break;
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
            handle.supervise().await;
        });
    }

    /// The connection manager reconnects after errors, but not when a connection merely stops
    /// answering (requests time out, no error arrives). Then it is replaced here. Runs until the
    /// process exits, as the drain still needs Redis after the shutdown signal.
    async fn supervise(&self) {
        let mut unanswered = 0;
        loop {
            tokio::time::sleep(SUPERVISE_INTERVAL).await;
            // Only silence counts: an error reply or a refused connection is the manager's to
            // handle, and it does.
            let silent = match self.connection() {
                Ok(mut conn) => {
                    let ping = redis::cmd("PING");
                    tokio::time::timeout(PING_TIMEOUT, ping.query_async::<String>(&mut conn))
                        .await
                        .is_err()
                }
                Err(_) => false,
            };
            unanswered = if silent { unanswered + 1 } else { 0 };
            if unanswered < UNRESPONSIVE_PINGS {
                continue;
            }
            let connect = ConnectionManager::new_with_config(self.client.clone(), manager_config());
            match tokio::time::timeout(Duration::from_secs(5), connect).await {
                Ok(Ok(manager)) => {
                    self.replace(manager);
                    unanswered = 0;
                    tracing::warn!(event = "redis.reconnected", reason = "unresponsive");
                }
                Ok(Err(e)) => tracing::warn!(event = "redis.connect_failed", error = %e),
                Err(_) => tracing::warn!(event = "redis.connect_failed", error = "timed out"),
            }
        }
    }

    /// PING with a short deadline: is Redis answering now?
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.connection()?;
        let ping = redis::cmd("PING");
        tokio::time::timeout(PING_TIMEOUT, ping.query_async::<String>(&mut conn))
            .await
            .map_err(|_| QueueError::NoAnswer("PING timed out"))??;
        Ok(())
    }
}
