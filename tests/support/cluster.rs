//! A Redis Cluster of the test's own on loopback: `redis-server --cluster-enabled yes` processes
//! joined by `redis-cli --cluster create`, each node in a temp dir of its own, all killed on drop.
//!
//! Every wait here is bounded, so a cluster that never forms fails the test instead of hanging it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};

use super::{eventually, free_port};

/// How long a node may stay silent before the others mark it failed (and promote its replica).
const NODE_TIMEOUT_MS: &str = "3000";
/// Bound on forming the cluster, or on a failover settling.
const SETTLE: Duration = Duration::from_secs(30);

/// A self-signed certificate every node serves (and trusts, for the bus and replication).
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tls {
    fn make() -> Tls {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=redis.example.com", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl must be installed");
        assert!(made.status.success(), "openssl failed");
        Tls {
            cert,
            key,
            _dir: dir,
        }
    }

    /// The server options: TLS only, on the client port, the bus and replication.
    fn server_args(&self, port: u16) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> =
            ["--port", "0", "--tls-port"].map(Into::into).to_vec();
        args.push(port.to_string().into());
        for (flag, file) in [
            ("--tls-cert-file", &self.cert),
            ("--tls-key-file", &self.key),
            ("--tls-ca-cert-file", &self.cert),
        ] {
            args.push(flag.into());
            args.push(file.into());
        }
        for flag in ["--tls-cluster", "--tls-replication"] {
            args.extend([flag.into(), "yes".into()]);
        }
        args.extend(["--tls-auth-clients".into(), "no".into()]);
        args
    }
}

/// How clients reach the nodes: TLS or not, a password or not (the same on every node).
#[derive(Clone, Default)]
struct Security {
    tls: Option<Arc<Tls>>,
    password: Option<String>,
}

impl Security {
    /// The options for `redis-server`: the port (TLS only, when TLS), the password (also for
    /// replicas to authenticate to their primaries).
    fn server_args(&self, port: u16) -> Vec<std::ffi::OsString> {
        let mut args = match &self.tls {
            Some(tls) => tls.server_args(port),
            None => vec!["--port".into(), port.to_string().into()],
        };
        if let Some(password) = &self.password {
            for flag in ["--requirepass", "--masterauth"] {
                args.extend([flag.into(), password.into()]);
            }
        }
        args
    }

    /// The options `redis-cli` needs to talk to the nodes.
    fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.tls.is_some() {
            args.extend(["--tls".to_string(), "--insecure".to_string()]);
        }
        if let Some(password) = &self.password {
            args.extend([
                "-a".to_string(),
                password.clone(),
                "--no-auth-warning".to_string(),
            ]);
        }
        args
    }

    /// `redis[s]://[:password@]127.0.0.1:port`, as a user writes it (no `#insecure`: the app
    /// adds it for a `rediss://` URL).
    fn url(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = self
            .password
            .as_ref()
            .map_or(String::new(), |p| format!(":{p}@"));
        format!("{scheme}://{auth}127.0.0.1:{port}")
    }
}

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    security: Security,
}

impl Node {
    /// Starts a cluster-enabled server on a free port (its bus on another free port).
    fn start(security: &Security) -> Node {
        for _ in 0..5 {
            let mut node = Node {
                port: free_port(),
                child: None,
                dir: tempfile::tempdir().expect("tempdir"),
                security: security.clone(),
            };
            if node.spawn() {
                return node;
            }
        }
        panic!("could not start a cluster-enabled redis-server");
    }

    fn spawn(&mut self) -> bool {
        let dir = self.dir.path();
        let child = Command::new("redis-server")
            .args(self.security.server_args(self.port))
            // The bus port is chosen too: port + 10000 may be taken or past 65535.
            .args(["--cluster-port", &free_port().to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(dir.join("nodes.conf"))
            .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
            .args(["--appendonly", "yes"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let up = eventually(Duration::from_secs(5), || {
            redis::cmd("PING")
                .query::<String>(&mut self.conn().ok()?)
                .ok()
        })
        .is_some();
        if !up {
            self.stop();
        }
        up
    }

    /// The URL a user would give for this node.
    fn url(&self) -> String {
        self.security.url(self.port)
    }

    /// The URL the tests' own clients use (a TLS node's certificate is not verified).
    fn client_url(&self) -> String {
        let fragment = if self.security.tls.is_some() {
            "#insecure"
        } else {
            ""
        };
        format!("{}{fragment}", self.url())
    }

    /// A plain connection to this node alone.
    fn conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.client_url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `master` or `slave`, as `ROLE` says.
    fn role(&self) -> Option<String> {
        let mut conn = self.conn().ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
        redis::from_redis_value_ref(role.first()?).ok()
    }

    /// For a replica, its primary's port (`ROLE`: `slave`, host, port, ...).
    fn primary_port(&self) -> Option<u16> {
        let mut conn = self.conn().ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
        redis::from_redis_value_ref(role.get(2)?).ok()
    }

    /// Whether this node says the cluster is whole (`cluster_state:ok`).
    fn sees_cluster_ok(&self) -> bool {
        let Ok(mut conn) = self.conn() else {
            return false;
        };
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut conn)
            .is_ok_and(|info| info.contains("cluster_state:ok"))
    }
}

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
        let total = primaries * (1 + replicas_per);
        let cluster = RedisCluster {
            nodes: (0..total).map(|_| Node::start(&security)).collect(),
            security,
        };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(cluster.security.cli_args())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_per.to_string()])
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_settled();
        assert_eq!(cluster.primaries().len(), primaries, "primaries");
        cluster
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
        let node = self.node_mut(replica);
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

/// Whether a replica's `INFO replication` says its link to the primary is up.
fn replica_link_up(node: &Node) -> Option<bool> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut node.conn().ok()?)
        .ok()?;
    Some(info.contains("master_link_status:up"))
}

/// `CLUSTER SLOTS` as (first slot, last slot, primary's port), sorted. Each entry of the reply
/// is `[start, end, [host, port, id, ...], replicas...]`.
fn slot_ranges(conn: &mut redis::Connection) -> Option<Vec<(i64, i64, u16)>> {
    let reply: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(conn).ok()?;
    let mut ranges = Vec::new();
    for range in reply {
        let start: i64 = redis::from_redis_value_ref(range.first()?).ok()?;
        let end: i64 = redis::from_redis_value_ref(range.get(1)?).ok()?;
        let primary: Vec<redis::Value> = redis::from_redis_value_ref(range.get(2)?).ok()?;
        let port: u16 = redis::from_redis_value_ref(primary.get(1)?).ok()?;
        ranges.push((start, end, port));
    }
    ranges.sort();
    Some(ranges)
}
