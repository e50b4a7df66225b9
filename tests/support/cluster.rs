//! A Redis Cluster of the test's own on loopback: `redis-server --cluster-enabled yes` processes
//! joined by `redis-cli --cluster create`, each node in a temp dir of its own, all killed on drop.
//!
//! Every wait here is bounded, so a cluster that never forms fails the test instead of hanging it.

mod node;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};

use super::eventually;
use node::{Node, Security, Tls, replica_link_up, slot_ranges};

/// Bound on forming the cluster, or on a failover settling.
const SETTLE: Duration = Duration::from_secs(30);

/// A Redis Cluster on loopback.
pub struct RedisCluster {
    nodes: Vec<Node>,
    security: Security,
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas_per` replicas each, and waits until every node
    /// says the cluster is ok (and every replica has synced with its primary).
    pub fn start(primaries: usize, replicas_per: usize) -> RedisCluster {
        RedisCluster::start_with(primaries, replicas_per, Security::default())
    }

    /// [`RedisCluster::start`] with every node speaking TLS only (clients, bus, replication),
    /// under one self-signed certificate.
    pub fn start_tls(primaries: usize, replicas_per: usize) -> RedisCluster {
        let tls = Some(Arc::new(Tls::make()));
        let security = Security {
            tls,
            password: None,
        };
        RedisCluster::start_with(primaries, replicas_per, security)
    }

    /// [`RedisCluster::start`] with every node requiring `password` (`requirepass`, and
    /// `masterauth` for replication).
    pub fn start_with_password(
        primaries: usize,
        replicas_per: usize,
        password: &str,
    ) -> RedisCluster {
        let security = Security {
            tls: None,
            password: Some(password.to_string()),
        };
        RedisCluster::start_with(primaries, replicas_per, security)
    }

    fn start_with(primaries: usize, replicas_per: usize, security: Security) -> RedisCluster {
        let cluster = RedisCluster::unformed(primaries * (1 + replicas_per), security);
        cluster.form(replicas_per);
        assert_eq!(cluster.primaries().len(), primaries, "primaries");
        cluster
    }

    /// `nodes` cluster-enabled servers that know nothing of each other yet (no slots served):
    /// [`RedisCluster::form`] joins them.
    pub fn start_unformed(nodes: usize) -> RedisCluster {
        RedisCluster::unformed(nodes, Security::default())
    }

    fn unformed(nodes: usize, security: Security) -> RedisCluster {
        RedisCluster {
            nodes: (0..nodes).map(|_| Node::start(&security)).collect(),
            security,
        }
    }

    /// Joins the nodes with `redis-cli --cluster create` (`replicas_per` replicas per primary)
    /// and waits until the cluster has settled.
    pub fn form(&self, replicas_per: usize) {
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(self.security.cli_args())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_per.to_string()])
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed");
        assert!(created.success(), "redis-cli --cluster create failed");
        self.wait_settled();
    }

    /// Waits until every running node says `cluster_state:ok` and agrees on the primaries, and
    /// every running replica's link to its primary is up.
    fn wait_settled(&self) {
        let settled = eventually(SETTLE, || {
            let running = || self.nodes.iter().filter(|n| n.is_running());
            let ok = running().all(|n| n.sees_cluster_ok());
            let synced = running()
                .filter(|n| n.role().as_deref() == Some("slave"))
                .all(|n| replica_link_up(n).unwrap_or(false));
            (ok && synced && self.slot_owners_agree()).then_some(())
        });
        assert!(settled.is_some(), "the cluster never settled");
    }

    /// Whether every running node reports the same primary for every slot range.
    fn slot_owners_agree(&self) -> bool {
        let views: Vec<Option<Vec<(i64, i64, u16)>>> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| slot_ranges(&mut n.conn().ok()?))
            .collect();
        views.iter().all(|v| v.is_some() && *v == views[0])
    }

    /// The URL of one node (the first one started, whatever its role).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// Every node's URL, primaries and replicas alike.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The ports of the running primaries.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes_with_role("master")
    }

    /// The ports of the running replicas.
    pub fn replicas(&self) -> Vec<u16> {
        self.nodes_with_role("slave")
    }

    fn nodes_with_role(&self, role: &str) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && n.role().as_deref() == Some(role))
            .map(|n| n.port)
            .collect()
    }

    /// The port of a running replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        self.replicas()
            .into_iter()
            .find(|port| self.node_ref(*port).primary_port() == Some(primary))
            .unwrap_or_else(|| panic!("no replica of {primary}"))
    }

    /// A cluster client seeded with every node, for tests to look at keys.
    pub fn client(&self) -> ClusterClient {
        let urls: Vec<String> = self.nodes.iter().map(Node::client_url).collect();
        ClusterClient::new(urls).expect("cluster client")
    }

    /// A synchronous cluster connection (commands routed by slot).
    pub fn conn(&self) -> ClusterConnection {
        self.client()
            .get_connection()
            .expect("connect to test cluster")
    }

    /// The port of the primary that owns `key`'s slot (`CLUSTER KEYSLOT`, then `CLUSTER SLOTS`).
    pub fn node_of_key(&self, key: &str) -> u16 {
        let node = self.nodes.iter().find(|n| n.is_running()).expect("a node");
        let mut conn = node.conn().expect("connect to a node");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        slot_ranges(&mut conn)
            .expect("CLUSTER SLOTS")
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, port)| port)
            .unwrap_or_else(|| panic!("no node owns slot {slot}"))
    }

    /// The URL of a primary that does not own `key`'s slot.
    pub fn url_of_primary_without(&self, key: &str) -> String {
        let owner = self.node_of_key(key);
        let port = self
            .primaries()
            .into_iter()
            .find(|p| *p != owner)
            .expect("another primary");
        self.node_ref(port).url()
    }

    /// Kills the node on `port` (SIGKILL: no goodbye, nothing saved past its AOF).
    pub fn kill_node(&mut self, port: u16) {
        self.node_mut(port).stop();
    }

    /// Promotes the replica on `port` with `CLUSTER FAILOVER` (its primary agreeing), and waits
    /// until it is a primary and the cluster has settled again.
    pub fn failover(&mut self, replica: u16) {
        let node = self.node_mut(replica);
        let mut conn = node.conn().expect("connect to the replica");
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut conn)
            .expect("CLUSTER FAILOVER");
        self.wait_promoted(replica);
    }

    /// Waits until the replica on `port` is a primary (after [`RedisCluster::failover`], or after
    /// its primary was killed and the cluster elected it) and the cluster has settled again.
    pub fn wait_promoted(&self, replica: u16) {
        let node = self.node_ref(replica);
        let promoted = eventually(SETTLE, || (node.role()? == "master").then_some(()));
        assert!(promoted.is_some(), "replica {replica} was never promoted");
        self.wait_settled();
    }

    fn node_ref(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The URL of the node on `port`.
    pub fn node_url(&self, port: u16) -> String {
        self.node_ref(port).url()
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }
}
