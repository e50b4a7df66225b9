//! Redis Cluster: whether to use it (`REDIS_CLUSTER`, or what the node says), the cluster client
//! seeded with the node `REDIS_URL` names, and the other nodes' addresses from `CLUSTER SLOTS`.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{ConnectionAddr, ConnectionInfo, Value};

use super::connection::tcp_settings;

/// Whether the Redis behind `REDIS_URL` is used as a cluster (`REDIS_CLUSTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterMode {
    /// Ask the node at connect time (`INFO cluster`); the default.
    #[default]
    Auto,
    /// Always the cluster client (for a cluster whose nodes refuse `INFO`).
    Yes,
    /// Always one plain connection, even to a node that has cluster mode enabled.
    No,
}

impl ClusterMode {
    /// Reads `auto`, `yes` or `no` (also `true`/`false`, `1`/`0`), case-insensitively.
    pub fn parse(value: &str) -> Option<ClusterMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(ClusterMode::Auto),
            "yes" | "true" | "1" => Some(ClusterMode::Yes),
            "no" | "false" | "0" => Some(ClusterMode::No),
            _ => None,
        }
    }
}

/// Whether an `INFO cluster` reply says cluster mode is on (`cluster_enabled:1`).
pub(super) fn cluster_enabled(info: &str) -> bool {
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .any(|(key, value)| key == "cluster_enabled" && value.trim() == "1")
}

/// The cluster client, seeded with the node `REDIS_URL` names: its password, username and TLS
/// mode (`#insecure` included) carry over to every node the cluster reports. Timeouts and
/// retries are those of the single connection, plus room for a MOVED redirect or a failover.
pub(super) fn cluster_client(seed: &ConnectionInfo) -> redis::RedisResult<ClusterClient> {
    ClusterClientBuilder::new([seed.clone()])
        .tcp_settings(tcp_settings())
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(3))
        .retries(3)
        .min_retry_wait(100)
        .max_retry_wait(1000)
        .build()
}

/// The seed's connection settings with another node's host and port (same TLS mode and
/// credentials), for a pub/sub connection when the seed node is gone.
pub(super) fn node_info(seed: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match seed.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    seed.clone().set_addr(addr)
}

/// Every node (primaries first, then replicas) in a `CLUSTER SLOTS` reply, once each. Each
/// entry of the reply is `[start, end, [host, port, id, ...], [replica host, port, ...]...]`.
pub(super) fn slot_nodes(reply: &Value) -> Vec<(String, u16)> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut primaries = Vec::new();
    let mut replicas = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        for (n, node) in fields.iter().skip(2).enumerate() {
            let list = if n == 0 {
                &mut primaries
            } else {
                &mut replicas
            };
            if let Some(address) = node_address(node) {
                list.push(address);
            }
        }
    }
    primaries.extend(replicas);
    let mut seen = std::collections::HashSet::new();
    primaries.retain(|address| seen.insert(address.clone()));
    primaries
}

fn node_address(node: &Value) -> Option<(String, u16)> {
    let Value::Array(parts) = node else {
        return None;
    };
    let host = match parts.first()? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let port = match parts.get(1)? {
        Value::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    // An empty host (or "?") means "the address you reached me on", which we cannot reuse here.
    (!host.is_empty() && host != "?").then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_read() {
        assert_eq!(ClusterMode::parse("auto"), Some(ClusterMode::Auto));
        assert_eq!(ClusterMode::parse(" YES "), Some(ClusterMode::Yes));
        assert_eq!(ClusterMode::parse("0"), Some(ClusterMode::No));
        assert_eq!(ClusterMode::parse("cluster"), None);
    }

    #[test]
    fn cluster_mode_is_read_from_info() {
        let on = "# Cluster\r\ncluster_enabled:1\r\n";
        let off = "# Cluster\r\ncluster_enabled:0\r\n";
        assert!(cluster_enabled(on));
        assert!(!cluster_enabled(off));
        assert!(!cluster_enabled(""));
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slot_nodes_lists_primaries_then_replicas_once() {
        let range = |start, end, nodes: Vec<Value>| {
            let mut fields = vec![Value::Int(start), Value::Int(end)];
            fields.extend(nodes);
            Value::Array(fields)
        };
        let reply = Value::Array(vec![
            range(0, 10, vec![node("a", 1), node("r", 4)]),
            range(11, 20, vec![node("b", 2)]),
            range(21, 30, vec![node("a", 1), node("?", 9)]),
        ]);
        let nodes = slot_nodes(&reply);
        let expected = [("a", 1), ("b", 2), ("r", 4)].map(|(h, p)| (h.to_string(), p));
        assert_eq!(nodes, expected);
        assert!(slot_nodes(&Value::Nil).is_empty());
    }

    #[test]
    fn another_node_keeps_the_seeds_tls_and_password() {
        let seed =
            redis::IntoConnectionInfo::into_connection_info("rediss://:pw@h:1#insecure").unwrap();
        let other = node_info(&seed, "10.0.0.2", 7001);
        match other.addr() {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => assert_eq!((host.as_str(), *port, *insecure), ("10.0.0.2", 7001, true)),
            addr => panic!("not TLS: {addr:?}"),
        }
        assert_eq!(other.redis_settings().password(), Some("pw"));
    }
}
