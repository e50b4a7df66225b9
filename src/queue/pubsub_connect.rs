//! The dedicated pub/sub connection, to a plain Redis or to one node of a cluster.
//!
//! A classic `PUBLISH` on a cluster reaches every node (primaries and replicas alike), so one
//! subscription on any single node hears every hint. It is made to the node `REDIS_URL` names;
//! when that node is gone, to the first other node `CLUSTER SLOTS` lists that accepts it.

use std::time::Duration;

use redis::aio::PubSub;

use super::cluster::{node_info, slot_nodes};
use super::connection::RedisHandle;
use super::error::QueueError;
use super::redis_connection::RedisConnection;

/// How long one node gets to accept the pub/sub connection.
const PUBSUB_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl RedisHandle {
    /// A new dedicated connection for pub/sub.
    pub async fn pubsub(&self) -> Result<PubSub, QueueError> {
        let seed = pubsub_to(&self.client).await;
        let Ok(RedisConnection::Cluster(mut cluster)) = self.connection() else {
            return seed;
        };
        let Err(seed_error) = seed else {
            return seed;
        };
        let slots: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut cluster)
            .await?;
        let seed_info = self.client.get_connection_info();
        for (host, port) in slot_nodes(&slots) {
            let Ok(client) = redis::Client::open(node_info(seed_info, &host, port)) else {
                continue;
            };
            match pubsub_to(&client).await {
                Ok(pubsub) => {
                    tracing::info!(event = "redis.pubsub_node", host = %host, port);
                    return Ok(pubsub);
                }
                Err(e) => {
                    tracing::debug!(event = "redis.pubsub_node_refused", host = %host, port, error = %e)
                }
            }
        }
        Err(seed_error)
    }
}

async fn pubsub_to(client: &redis::Client) -> Result<PubSub, QueueError> {
    tokio::time::timeout(PUBSUB_CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| QueueError::NoAnswer("pub/sub connect timed out"))?
        .map_err(QueueError::from)
}
