//! Talking to a Redis Cluster: the binary pointed at any node of a 3-primary cluster on loopback
//! finds out it is a cluster, routes every command to the node owning its slot, hears pub/sub
//! wake-ups published on another node, and reads Redis's memory from every primary. Against a
//! plain Redis, `REDIS_CLUSTER=no` (or the default detection) keeps the single connection. A
//! `rediss://` URL's TLS mode and a URL's password carry over to every node, and a primary's
//! failover (`CLUSTER FAILOVER` on its replica) is followed without a restart.

mod support;

use std::time::Duration;

use redis::Commands;
use reqwest::StatusCode;
use serde_json::json;
use support::cluster::RedisCluster;
use support::{App, Redis, eventually};

/// `WORKER_POLL_INTERVAL=60`: a job that starts within [`WITHIN`] was started by a wake-up.
const POLL: (&str, &str) = ("WORKER_POLL_INTERVAL", "60");
/// Far below the poll interval, far above any wake-up on a loaded machine.
const WITHIN: Duration = Duration::from_secs(20);

fn default_queue() -> String {
    support::keys().queue("default")
}

/// Whether the process logged its connection as the given kind.
fn connected_as(app: &App, cluster: bool) -> bool {
    app.wait_for_log("event=redis.connected", Duration::from_secs(10));
    let kind = format!("cluster={cluster}");
    app.log_lines("event=redis.connected")
        .iter()
        .any(|line| line.contains(&kind))
}

/// Waits until the default queue is empty, so the next job lands while the worker idles.
fn wait_queue_empty(conn: &mut redis::cluster::ClusterConnection) {
    let empty = eventually(Duration::from_secs(10), || {
        (conn.llen::<_, usize>(default_queue()).ok()? == 0).then_some(())
    });
    assert!(empty.is_some(), "the default queue never emptied");
}

#[test]
fn a_process_pointed_at_a_node_without_the_queues_slot_runs_jobs() {
    let cluster = RedisCluster::start(3, 0);
    let url = cluster.url_of_primary_without(&default_queue());
    let app = App::start_ready(&url, &[]);
    assert!(connected_as(&app, true), "{}", app.logs());
    let (status, _, body) = app.enqueue(&json!({"kind": "echo", "args": {"n": 1}}));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("id");
    let job = app.wait_for_status(id, "succeeded", WITHIN);
    assert_eq!(job["result"], json!({"n": 1}), "{job}");
    let mut conn = cluster.conn();
    let stored: bool = conn.exists(support::job_key(id)).expect("EXISTS");
    assert!(stored, "the job's record is not in the cluster");
}

#[test]
fn a_rediss_url_reaches_every_node_of_a_tls_cluster() {
    let cluster = RedisCluster::start_tls(3, 0);
    // rediss:// without a fragment, as on Heroku: the app adds #insecure, and it must carry over
    // to the node that owns the queue's slot, which is not the one named here.
    let url = cluster.url_of_primary_without(&default_queue());
    assert!(url.starts_with("rediss://"), "{url}");
    let app = App::start_ready(&url, &[]);
    assert!(connected_as(&app, true), "{}", app.logs());
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"tls": true}}));
    let job = app.wait_for_status(&id, "succeeded", WITHIN);
    assert_eq!(job["result"], json!({"tls": true}), "{job}");
}

#[test]
fn the_urls_password_is_used_on_every_node() {
    let cluster = RedisCluster::start_with_password(3, 0, "s3cret-pw");
    let url = cluster.url_of_primary_without(&default_queue());
    assert!(url.contains(":s3cret-pw@"), "{url}");
    let app = App::start_ready(&url, &[]);
    assert!(connected_as(&app, true), "{}", app.logs());
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": 1}}));
    app.wait_for_status(&id, "succeeded", WITHIN);
    assert!(!app.logs().contains("s3cret-pw"), "{}", app.logs());
}

#[test]
fn jobs_keep_running_after_the_queues_primary_fails_over() {
    let mut cluster = RedisCluster::start(3, 1);
    let app = App::start_ready(&cluster.url(), &[]);
    let before = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": 0}}));
    app.wait_for_status(&before, "succeeded", WITHIN);
    let owner = cluster.node_of_key(&default_queue());
    let replica = cluster.replica_of(owner);
    cluster.failover(replica);
    assert_eq!(cluster.node_of_key(&default_queue()), replica);
    // The connection learns the new owner from MOVED; nothing is restarted.
    for n in 1..4 {
        let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": n}}));
        app.wait_for_status(&id, "succeeded", WITHIN);
    }
    assert_eq!(app.job(&before)["status"], "succeeded");
}

#[test]
fn a_killed_primary_answers_503_until_its_replica_takes_over() {
    let mut cluster = RedisCluster::start(3, 1);
    let app = App::start_ready(&cluster.url(), &[]);
    let owner = cluster.node_of_key(&default_queue());
    let replica = cluster.replica_of(owner);
    let before = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": 0}}));
    app.wait_for_status(&before, "succeeded", WITHIN);
    cluster.kill_node(owner);
    // Until the replica is elected every answer is 202 or 503 (never a 500), then 202 again.
    let accepted = eventually(Duration::from_secs(60), || {
        let (status, _, body) = app.enqueue(&json!({"kind": "echo", "args": {"n": 1}}));
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {body}"
        );
        body["id"].as_str().map(str::to_string)
    });
    let id = accepted.expect("never accepted after the failover");
    cluster.wait_promoted(replica);
    app.wait_for_status(&id, "succeeded", WITHIN);
    assert_eq!(app.job(&before)["status"], "succeeded");
}

#[test]
fn a_process_started_before_the_cluster_forms_connects_once_it_has() {
    let cluster = RedisCluster::start_unformed(3);
    let app = App::start(&cluster.url(), &[]);
    // The nodes answer, but serve no slot yet: the connection is retried with backoff.
    app.wait_for_log("event=redis.connect_failed", WITHIN);
    assert_eq!(app.get("/health").0, StatusCode::SERVICE_UNAVAILABLE);
    cluster.form(0);
    app.wait_for_log("event=worker.registered", WITHIN);
    assert!(connected_as(&app, true), "{}", app.logs());
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": 1}}));
    app.wait_for_status(&id, "succeeded", WITHIN);
}

#[test]
fn queues_report_the_memory_of_every_primary_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let app = App::start_ready(&cluster.url(), &[]);
    let primaries = cluster.primaries();
    let node_used: u64 = primaries
        .iter()
        .map(|port| {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .and_then(|c| c.get_connection())
                .expect("connect to a primary");
            let info: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
            onedyno::queue::RedisMemory::from_info(&info).used_bytes
        })
        .min()
        .expect("primaries");
    let (status, body) = app.get("/queues");
    assert_eq!(status, StatusCode::OK, "{body}");
    let used = body["redis"]["used_bytes"].as_u64().expect("redis memory");
    // Three primaries' worth: more than twice the smallest node's own use.
    assert!(used > 2 * node_used, "used {used}, one node {node_used}");
}

#[test]
fn a_worker_on_one_node_is_woken_by_a_job_enqueued_through_another() {
    let cluster = RedisCluster::start(3, 0);
    let urls = cluster.node_urls();
    let worker = App::spawn(&urls[0], &[("ROLE", "worker"), POLL]);
    worker.wait_for_log("event=worker.registered", Duration::from_secs(10));
    assert!(connected_as(&worker, true), "{}", worker.logs());
    let web = App::start_web_only(&urls[1]);
    let mut conn = cluster.conn();
    for n in 0..3 {
        wait_queue_empty(&mut conn);
        let id = web.enqueue_ok(&json!({"kind": "echo", "args": {"n": n}}));
        web.wait_for_status(&id, "succeeded", WITHIN);
    }
}

#[test]
fn pub_sub_moves_to_another_node_when_its_node_dies() {
    let mut cluster = RedisCluster::start(3, 1);
    let replica = cluster.replicas()[0];
    let seed = cluster.node_url(replica);
    let app = App::start_ready(&seed, &[POLL]);
    assert!(connected_as(&app, true), "{}", app.logs());
    let mut conn = cluster.conn();
    let first = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": 0}}));
    app.wait_for_status(&first, "succeeded", WITHIN);
    // Losing a replica leaves every slot served, so only the subscription has to move.
    cluster.kill_node(replica);
    app.wait_for_log("event=redis.pubsub_node", WITHIN);
    for n in 1..3 {
        wait_queue_empty(&mut conn);
        let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": n}}));
        app.wait_for_status(&id, "succeeded", WITHIN);
    }
}

#[test]
fn a_plain_redis_keeps_the_single_connection() {
    let redis = Redis::start();
    for env in [vec![("REDIS_CLUSTER", "no")], vec![]] {
        let app = App::start_ready(&redis.url(), &env);
        assert!(connected_as(&app, false), "{env:?}:\n{}", app.logs());
        let id = app.enqueue_ok(&json!({"kind": "echo", "args": {"n": 1}}));
        app.wait_for_status(&id, "succeeded", WITHIN);
        let (status, body) = app.get("/queues");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["redis"]["used_bytes"].as_u64() > Some(0), "{body}");
    }
}
