//! The shared connection every queue operation uses: one plain Redis, or a Redis Cluster.
//!
//! Both kinds are multiplexed, reconnect by themselves and are cheap to clone, and both implement
//! [`redis::aio::ConnectionLike`], so `script.invoke_async(&mut conn)` and
//! `cmd.query_async(&mut conn)` read the same for either. On a cluster, a command or script goes
//! to the node owning its first key's slot (following MOVED after a resharding or failover).

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to a plain Redis or to a Redis Cluster.
#[derive(Clone)]
pub enum RedisConnection {
    /// One Redis server (or a primary behind a failover proxy).
    Single(ConnectionManager),
    /// A Redis Cluster: commands are routed by slot.
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConnection::Cluster(_))
    }

    /// Runs a node-level command (one that names no key, such as `INFO`) on every primary and
    /// returns each reply; a plain Redis is its own one primary. Routed explicitly, since the
    /// cluster client would otherwise pick a node at random or answer a map of replies.
    pub async fn on_each_primary(&mut self, cmd: &Cmd) -> redis::RedisResult<Vec<Value>> {
        match self {
            RedisConnection::Single(conn) => Ok(vec![cmd.query_async(conn).await?]),
            RedisConnection::Cluster(conn) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let replies = conn.route_command(cmd.clone(), routing).await?;
                per_node_replies(replies)
            }
        }
    }
}

/// A multi-node reply without a response policy is a map of node address to that node's reply.
fn per_node_replies(replies: Value) -> redis::RedisResult<Vec<Value>> {
    match replies {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(_, reply)| match reply {
                Value::ServerError(e) => Err(e.into()),
                reply => Ok(reply),
            })
            .collect(),
        other => Ok(vec![other]),
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nodes_reply_is_taken_from_the_map() {
        let map = Value::Map(vec![
            (
                Value::BulkString(b"a:1".to_vec()),
                Value::BulkString(b"x".to_vec()),
            ),
            (
                Value::BulkString(b"b:2".to_vec()),
                Value::BulkString(b"y".to_vec()),
            ),
        ]);
        let replies = per_node_replies(map).unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(per_node_replies(Value::Okay).unwrap(), vec![Value::Okay]);
    }
}
