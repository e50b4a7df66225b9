//! One node of a test cluster: a cluster-enabled `redis-server` in a temp dir of its own, how
//! clients reach it (TLS, a password), and what the cluster's readiness checks ask it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::super::{eventually, free_port};

/// How long a node may stay silent before the others mark it failed (and promote its replica).
const NODE_TIMEOUT_MS: &str = "3000";

/// A self-signed certificate every node serves (and trusts, for the bus and replication).
pub(super) struct Tls {
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tls {
    pub(super) fn make() -> Tls {
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
pub(super) struct Security {
    pub(super) tls: Option<Arc<Tls>>,
    pub(super) password: Option<String>,
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
    pub(super) fn cli_args(&self) -> Vec<String> {
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
    pub(super) fn url(&self, port: u16) -> String {
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
pub(super) struct Node {
    pub(super) port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    security: Security,
}

impl Node {
    /// Starts a cluster-enabled server on a free port (its bus on another free port).
    pub(super) fn start(security: &Security) -> Node {
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
    pub(super) fn url(&self) -> String {
        self.security.url(self.port)
    }

    /// The URL the tests' own clients use (a TLS node's certificate is not verified).
    pub(super) fn client_url(&self) -> String {
        let fragment = if self.security.tls.is_some() {
            "#insecure"
        } else {
            ""
        };
        format!("{}{fragment}", self.url())
    }

    /// A plain connection to this node alone.
    pub(super) fn conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.client_url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    pub(super) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(super) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `master` or `slave`, as `ROLE` says.
    pub(super) fn role(&self) -> Option<String> {
        let mut conn = self.conn().ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
        redis::from_redis_value_ref(role.first()?).ok()
    }

    /// For a replica, its primary's port (`ROLE`: `slave`, host, port, ...).
    pub(super) fn primary_port(&self) -> Option<u16> {
        let mut conn = self.conn().ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
        redis::from_redis_value_ref(role.get(2)?).ok()
    }

    /// Whether this node says the cluster is whole (`cluster_state:ok`).
    pub(super) fn sees_cluster_ok(&self) -> bool {
        let Ok(mut conn) = self.conn() else {
            return false;
        };
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut conn)
            .is_ok_and(|info| info.contains("cluster_state:ok"))
    }
}

/// Whether a replica's `INFO replication` says its link to the primary is up.
pub(super) fn replica_link_up(node: &Node) -> Option<bool> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut node.conn().ok()?)
        .ok()?;
    Some(info.contains("master_link_status:up"))
}

/// `CLUSTER SLOTS` as (first slot, last slot, primary's port), sorted. Each entry of the reply
/// is `[start, end, [host, port, id, ...], replicas...]`.
pub(super) fn slot_ranges(conn: &mut redis::Connection) -> Option<Vec<(i64, i64, u16)>> {
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
