//! The shared Redis connection, established in the background.
//!
//! The process binds its port before Redis is reachable (Heroku kills a web process that has not
//! bound in 60 s), so the connection is made by a background task that retries with capped
//! backoff. Until it succeeds every operation answers [`QueueError::Unavailable`]. Once made, the
//! connection reconnects by itself after Redis restarts.
//!
//! At that first connect the node `REDIS_URL` names says whether it is part of a Redis Cluster
//! (`INFO cluster`), unless `REDIS_CLUSTER` decides; the kind then stays for the process's life.
//!
//! This multiplexed connection only ever carries short commands and scripts: a blocking command
//! would stall everything queued behind it. Pub/sub gets a connection of its own.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::{ErrorKind, IntoConnectionInfo, RedisError};

use super::cluster::{ClusterMode, cluster_client, cluster_enabled, slot_nodes};
use super::error::QueueError;
use super::redis_connection::RedisConnection;
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
    /// The node `REDIS_URL` names (on a cluster, the seed and the first pub/sub node).
    pub(super) client: redis::Client,
    /// Whether to use it as a cluster, as configured; with `Auto` the first connection decides,
    /// and reconnects keep that kind.
    mode: ClusterMode,
    shared: Arc<RwLock<Option<RedisConnection>>>,
    /// Turns true once the first connection is made, so the worker starts at that moment
    /// instead of at its next retry.
    connected: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Keepalive probes and a user timeout make the kernel notice a peer that vanished without a
/// word (a failover, a lost host), which otherwise takes it about 15 minutes of retransmissions.
pub(super) fn tcp_settings() -> TcpSettings {
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
    /// Parses the URL; connects nothing yet. Whether it is a cluster is asked at connect time.
    pub fn open(url: &str) -> Result<RedisHandle, QueueError> {
        RedisHandle::open_with(url, ClusterMode::Auto)
    }

    /// Parses the URL, to be used as a cluster or not as `mode` says; connects nothing yet.
    pub fn open_with(url: &str, mode: ClusterMode) -> Result<RedisHandle, QueueError> {
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
            mode,
            shared: Arc::new(RwLock::new(None)),
            connected: Arc::new(tokio::sync::watch::Sender::new(false)),
        })
    }

    fn current(&self) -> Option<RedisConnection> {
        self.shared
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, conn: RedisConnection) {
        *self
            .shared
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(conn);
        self.connected.send_replace(true);
    }

    /// Returns once the first connection has been made.
    pub async fn connected(&self) {
        let mut made = self.connected.subscribe();
        // The sender lives as long as this handle, so the wait ends only by the value turning true.
        let _ = made.wait_for(|made| *made).await;
    }

    /// The shared connection, or `Unavailable` while the first connection has not been made.
    pub fn connection(&self) -> Result<RedisConnection, QueueError> {
        self.current()
            .ok_or_else(|| QueueError::NoAnswer("not connected yet"))
    }

    /// Whether the first connection has been made (before it, nothing can have been fetched).
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// Connects in the background, retrying with capped backoff until it succeeds (or shutdown),
    /// then watches the connection and replaces it when it stops answering.
    pub fn spawn_connect(&self, shutdown: Shutdown) {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut delay = CONNECT_BACKOFF_MIN;
            let mut attempt = 1u32;
            let settled = loop {
                let result = tokio::select! {
                    r = handle.connect(handle.mode) => r,
                    _ = shutdown.requested() => return,
                };
                match result {
                    Ok(conn) => {
                        let cluster = conn.is_cluster();
                        handle.replace(conn);
                        tracing::info!(event = "redis.connected", attempt, cluster);
                        break if cluster {
                            ClusterMode::Yes
                        } else {
                            ClusterMode::No
                        };
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
            };
            handle.supervise(settled).await;
        });
    }

    /// One connection of the kind `mode` asks for; `Auto` asks the node (`INFO cluster`).
    async fn connect(&self, mode: ClusterMode) -> Result<RedisConnection, RedisError> {
        if mode == ClusterMode::Yes {
            return self.connect_cluster().await;
        }
        let mut manager =
            ConnectionManager::new_with_config(self.client.clone(), manager_config()).await?;
        if mode == ClusterMode::Auto && self.is_cluster_node(&mut manager).await? {
            return self.connect_cluster().await;
        }
        Ok(RedisConnection::Single(manager))
    }

    /// The cluster connection, once the cluster serves slots: nodes that have not been joined
    /// yet (or a cluster being created) count as not reachable, so the connect is retried and
    /// `redis.connected` means something.
    async fn connect_cluster(&self) -> Result<RedisConnection, RedisError> {
        let client = cluster_client(self.client.get_connection_info())?;
        let mut conn = client.get_async_connection().await?;
        let slots: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        if slot_nodes(&slots).is_empty() {
            return Err(RedisError::from((
                ErrorKind::ClusterConnectionNotFound,
                "the cluster serves no slots yet",
            )));
        }
        Ok(RedisConnection::Cluster(conn))
    }

    /// Whether the node says it runs in cluster mode. A node that refuses `INFO` (some managed
    /// services rename it) is taken as a plain Redis: `REDIS_CLUSTER=yes` is there for a
    /// cluster that does so.
    async fn is_cluster_node(&self, manager: &mut ConnectionManager) -> Result<bool, RedisError> {
        let info = redis::cmd("INFO")
            .arg("cluster")
            .query_async::<String>(manager)
            .await;
        match info {
            Ok(info) => Ok(cluster_enabled(&info)),
            Err(e) if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
                tracing::info!(event = "redis.cluster_unknown", cluster = false, error = %e);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The connection reconnects after errors, but not when a connection merely stops
    /// answering (requests time out, no error arrives). Then it is replaced here, by one of the
    /// kind the first connection settled on. Runs until the process exits, as the drain still
    /// needs Redis after the shutdown signal.
    async fn supervise(&self, mode: ClusterMode) {
        let mut unanswered = 0;
        loop {
            tokio::time::sleep(SUPERVISE_INTERVAL).await;
            // Only silence counts: an error reply or a refused connection is the connection's to
            // handle, and it does.
            let silent = self.ping_goes_unanswered().await;
            unanswered = if silent { unanswered + 1 } else { 0 };
            if unanswered < UNRESPONSIVE_PINGS {
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(5), self.connect(mode)).await {
                Ok(Ok(conn)) => {
                    self.replace(conn);
                    unanswered = 0;
                    tracing::warn!(event = "redis.reconnected", reason = "unresponsive");
                }
                Ok(Err(e)) => tracing::warn!(event = "redis.connect_failed", error = %e),
                Err(_) => tracing::warn!(event = "redis.connect_failed", error = "timed out"),
            }
        }
    }

    /// Whether a PING gets no reply in time (an error reply or no connection yet is an answer).
    async fn ping_goes_unanswered(&self) -> bool {
        let Ok(mut conn) = self.connection() else {
            return false;
        };
        let ping = redis::cmd("PING");
        tokio::time::timeout(PING_TIMEOUT, ping.query_async::<String>(&mut conn))
            .await
            .is_err()
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
