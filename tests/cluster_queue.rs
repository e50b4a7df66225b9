//! The queue on a 3-primary Redis Cluster: enqueue, fetch, ack, retry, promotion, idempotency,
//! cancel, dead and retried, recovery after SIGKILL, and a primary's failover, with queues whose
//! keys live on different shards. The same operations have their single-Redis tests elsewhere;
//! here they run through the cluster client and the per-queue key layout.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::cluster::RedisCluster;
use support::{App, SIGKILL, keys};

const WITHIN: Duration = Duration::from_secs(30);

/// Quick retries, so a failed attempt comes back within the test's patience.
const FAST_RETRIES: [(&str, &str); 2] =
    [("RETRY_BACKOFF_BASE", "0.05"), ("RETRY_BACKOFF_MAX", "1")];

/// The primary (its port) that owns `queue`'s keys.
fn owner(cluster: &RedisCluster, queue: &str) -> u16 {
    cluster.node_of_key(&keys().queue(queue))
}

/// Three queue names whose keys live on at least two (here: three, when names allow) primaries.
fn spread_queues(cluster: &RedisCluster) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut picked = Vec::new();
    for i in 0..200 {
        let name = format!("q{i}");
        if seen.insert(owner(cluster, &name)) {
            picked.push(name);
        }
        if picked.len() == 3 {
            break;
        }
    }
    assert!(picked.len() >= 2, "no two queues on two shards: {picked:?}");
    picked
}

#[test]
fn queue_operations_run_on_a_cluster_with_queues_on_different_shards() {
    let cluster = RedisCluster::start(3, 0);
    let queues = spread_queues(&cluster);
    let list = queues.join(",");
    // Each process is pointed at a different node: any node will do.
    let urls = cluster.node_urls();
    let web = App::start_web_only(&urls[1]);
    let worker = App::start_ready(
        &urls[2],
        &[
            &[("QUEUES", list.as_str()), ("DEMO_KINDS", "true")][..],
            &FAST_RETRIES[..],
        ]
        .concat(),
    );

    // Enqueue, fetch, ack on every queue; the job records live on the queues' own shards.
    let echoes: Vec<(String, String)> = queues
        .iter()
        .map(|q| {
            (
                q.clone(),
                web.enqueue_ok(&json!({"kind": "echo", "queue": q, "args": {"q": q}})),
            )
        })
        .collect();
    let mut nodes = BTreeSet::new();
    for (q, id) in &echoes {
        let job = web.wait_for_status(id, "succeeded", WITHIN);
        assert_eq!(job["queue"], json!(q), "{job}");
        let node = cluster.node_of_key(&keys().job(id));
        assert_eq!(
            node,
            owner(&cluster, q),
            "a job's record lives with its queue"
        );
        nodes.insert(node);
    }
    assert!(nodes.len() >= 2, "keys on one shard only: {nodes:?}");

    let q = queues[0].as_str();
    // A failed attempt is retried (the retry set promotes it) and then succeeds.
    let flaky = web
        .enqueue_ok(&json!({"kind": "fail", "queue": q, "args": {"times": 1}, "max_attempts": 3}));
    let job = web.wait_for_status(&flaky, "succeeded", WITHIN);
    assert_eq!(job["attempts"], 2, "{job}");

    // A delayed job is promoted when due.
    let later = web.enqueue_ok(&json!({"kind": "echo", "queue": queues[1], "delay": 0.5}));
    assert_eq!(web.job(&later)["status"], "scheduled");
    web.wait_for_status(&later, "succeeded", WITHIN);

    // The same Idempotency-Key names the same job.
    let body = json!({"kind": "echo", "queue": q, "args": {"once": true}});
    let key = [("Idempotency-Key", "cluster-once")];
    let (first, _, created) = web.enqueue_with(&body, &key);
    let (again, _, repeated) = web.enqueue_with(&body, &key);
    assert_eq!((first, again), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(created["id"], repeated["id"]);

    // Cancel a scheduled job and a running one.
    let far = web.enqueue_ok(&json!({"kind": "echo", "queue": q, "delay": 600}));
    assert_eq!(web.cancel(&far).0, StatusCode::OK);
    web.wait_for_status(&far, "cancelled", WITHIN);
    let long = web.enqueue_ok(&json!({"kind": "sleep", "queue": q, "args": {"ms": 60000}}));
    web.wait_for_status(&long, "running", WITHIN);
    assert_eq!(web.cancel(&long).0, StatusCode::OK);
    web.wait_for_status(&long, "cancelled", WITHIN);

    // Dead after its only attempt, listed dead, retried from there, then it succeeds.
    let doomed = web.enqueue_ok(&json!({"kind": "fail", "queue": queues[2 % queues.len()], "args": {"times": 1}, "max_attempts": 1}));
    web.wait_for_status(&doomed, "dead", WITHIN);
    assert!(web.list_ids("dead").contains(&doomed));
    assert_eq!(web.retry(&doomed).0, StatusCode::ACCEPTED);
    web.wait_for_status(&doomed, "succeeded", WITHIN);
    drop(worker);
}

#[test]
fn the_jobs_of_a_process_killed_on_a_cluster_run_again_on_a_live_one() {
    let cluster = RedisCluster::start(3, 0);
    let queues = spread_queues(&cluster);
    let list = queues.join(",");
    let env = [
        ("QUEUES", list.as_str()),
        ("WORKER_CONCURRENCY", "4"),
        ("DEMO_KINDS", "true"),
    ];
    let mut doomed = App::start_ready(&cluster.url(), &env);
    let ids: Vec<String> = queues
        .iter()
        .map(|q| doomed.enqueue_ok(&json!({"kind": "sleep", "queue": q, "args": {"ms": 2000}})))
        .collect();
    for id in &ids {
        doomed.wait_for_status(id, "running", WITHIN);
    }
    let survivor = App::start_ready(&cluster.node_urls()[1], &env);
    doomed.signal(SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).expect("SIGKILL");
    for id in &ids {
        let job = survivor.wait_for_status(id, "succeeded", Duration::from_secs(45));
        assert_eq!(job["attempts"], 2, "{job}");
    }
    let (_, stats) = survivor.get("/queues");
    for q in &queues {
        let row = stats["queues"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == json!(q)));
        if let Some(row) = row {
            assert_eq!(row["running"], 0, "{stats}");
        }
    }
}

#[test]
fn a_manual_failover_of_a_primary_loses_no_accepted_job() {
    let mut cluster = RedisCluster::start(3, 1);
    let queue = "failover";
    let primary = owner(&cluster, queue);
    let replica = cluster.replica_of(primary);
    let env = [
        ("QUEUES", queue),
        ("DEMO_KINDS", "true"),
        ("WORKER_CONCURRENCY", "8"),
    ];
    let worker = App::start_ready(&cluster.url(), &env);
    let mut ids = Vec::new();
    for i in 0..300 {
        if i == 150 {
            // CLUSTER FAILOVER (not FORCE or TAKEOVER): the replica catches up with its primary's
            // replication stream before it takes over, so no acknowledged write is lost.
            cluster.failover(replica);
        }
        let body = json!({"kind": "sleep", "queue": queue, "args": {"ms": 5}});
        // During the switch a request may fail with 503; what was accepted must not be lost.
        let (status, _, job) = worker.enqueue(&body);
        if status == StatusCode::ACCEPTED {
            ids.push(job["id"].as_str().expect("id").to_string());
        }
    }
    assert!(
        ids.len() >= 250,
        "most enqueues are accepted: {}",
        ids.len()
    );
    assert_eq!(
        owner(&cluster, queue),
        replica,
        "the replica owns the queue now"
    );
    for id in &ids {
        worker.wait_for_status(id, "succeeded", Duration::from_secs(60));
    }
}
