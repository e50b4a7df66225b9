//! The key layout: each queue's keys share a hash tag of their own (so that on a Redis Cluster
//! different queues land on different slots), a job id names its queue's shard, and what an
//! earlier release wrote under the deployment's single tag `{prefix}` (the legacy shard) is
//! still fetched, promoted, reaped, listed and retried in place.

mod support;

use std::time::Duration;

use onedyno::queue::{shard_number, shard_of};
use redis::Commands;
use reqwest::StatusCode;
use serde_json::json;
use support::{App, Redis, exists, keys};

const WITHIN: Duration = Duration::from_secs(20);

/// The hash tag of a key: what stands between its first `{` and the next `}`.
fn tag(key: &str) -> &str {
    let open = key.find('{').expect("a hash tag");
    let close = key[open..].find('}').expect("a closed hash tag") + open;
    &key[open + 1..close]
}

#[test]
fn two_queues_keys_live_under_different_hash_tags() {
    let (alpha, beta) = ("alpha", "beta");
    assert_ne!(shard_number(alpha), shard_number(beta), "pick two shards");
    let redis = Redis::start();
    let web = App::start_web_only(&redis.url());
    let a = web.enqueue_ok(&json!({"kind": "echo", "queue": alpha}));
    let b = web.enqueue_ok(&json!({"kind": "echo", "queue": beta}));
    assert_eq!(shard_of(&a), Some(shard_number(alpha)), "{a}");
    assert_eq!(shard_of(&b), Some(shard_number(beta)), "{b}");

    let mut conn = redis.conn();
    let (sa, sb) = (keys().for_queue(alpha), keys().for_queue(beta));
    assert_ne!(tag(sa.base()), tag(sb.base()));
    assert!(exists(&mut conn, &sa.job(&a)) && exists(&mut conn, &sb.job(&b)));
    let listed: Vec<String> = conn.lrange(sa.queue(alpha), 0, -1).unwrap();
    assert_eq!(listed, std::slice::from_ref(&a));
    let listed: Vec<String> = conn.lrange(sb.queue(beta), 0, -1).unwrap();
    assert_eq!(listed, std::slice::from_ref(&b));
    // Every key is under the deployment's tag or a shard's; a queue's under its own.
    let all: Vec<String> = conn.keys("*").unwrap();
    for key in &all {
        let t = tag(key);
        assert!(t == "onedyno" || t.starts_with("onedyno:s"), "{key}");
        if key.contains(alpha) || key.contains(a.as_str()) {
            assert_eq!(t, tag(sa.base()), "{key}");
        }
        if key.contains(beta) || key.contains(b.as_str()) {
            assert_eq!(t, tag(sb.base()), "{key}");
        }
    }
    assert_eq!(web.job(&a)["status"], "queued");
    assert_eq!(web.job(&b)["queue"], beta);

    // One process works both shards (one fetch call per shard) and sees both in its listings.
    // A 60 s poll: a job that starts within WITHIN was fetched on a wake-up.
    let env = [("QUEUES", "alpha,beta"), ("WORKER_POLL_INTERVAL", "60")];
    let worker = App::start_ready(&redis.url(), &env);
    worker.wait_for_status(&a, "succeeded", WITHIN);
    worker.wait_for_status(&b, "succeeded", WITHIN);
    let succeeded = worker.list_ids("succeeded");
    assert!(
        succeeded.contains(&a) && succeeded.contains(&b),
        "{succeeded:?}"
    );
    let (code, queues) = worker.get("/queues");
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, [alpha, beta], "{queues}");
    // A wake-up names its queue: an idle worker fetches from the shard it names.
    support::wait_idle(&mut conn, beta);
    let c = web.enqueue_ok(&json!({"kind": "echo", "queue": beta}));
    worker.wait_for_status(&c, "succeeded", WITHIN);
}

/// Writes a job record as the release before this one did: one-letter fields, a UUIDv7 id,
/// under the deployment's single tag.
fn write_legacy_job(conn: &mut redis::Connection, id: &str, fields: &[(&str, &str)]) {
    let now = "1796000000000";
    let mut record = vec![("q", "default"), ("m", "3"), ("c", now)];
    record.extend_from_slice(fields);
    let _: () = conn
        .hset_multiple(keys().legacy().job(id), &record)
        .expect("HSET");
}

#[test]
fn jobs_an_older_release_left_are_served_in_place() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let all_keys = keys();
    let legacy = all_keys.legacy();
    assert_eq!(legacy.base(), "{onedyno}:");
    // Queued: fails once for good (dead), then succeeds when retried.
    let queued = "01900000-0000-7000-8000-0000000000a1";
    let args = r#"{"times":1,"permanent":true}"#;
    write_legacy_job(
        &mut conn,
        queued,
        &[("k", "fail"), ("a", args), ("s", "queued")],
    );
    let _: () = conn.lpush(legacy.queue("default"), queued).unwrap();
    let _: () = conn.sadd(legacy.queues(), "default").unwrap();
    // Scheduled, due already: the promoter moves it onto the legacy queue list.
    let scheduled = "01900000-0000-7000-8000-0000000000a2";
    write_legacy_job(&mut conn, scheduled, &[("k", "echo"), ("s", "scheduled")]);
    let _: () = conn.zadd(legacy.scheduled(), scheduled, 1_000_i64).unwrap();
    // Held by an old process that died: the reaper puts it back.
    let held = "01900000-0000-7000-8000-0000000000a3";
    let running = [("L", "old-process:1"), ("o", "old-process"), ("n", "1")];
    write_legacy_job(&mut conn, held, &[("k", "echo"), ("s", "running")]);
    let _: () = conn
        .hset_multiple(legacy.job(held), &running)
        .expect("HSET");
    let _: () = conn.lpush(legacy.inflight("old-process"), held).unwrap();
    let _: () = conn.sadd(legacy.processes(), "old-process").unwrap();

    let app = App::start_ready(&redis.url(), &[]);
    app.wait_for_status(queued, "dead", WITHIN);
    assert!(app.list_ids("dead").contains(&queued.to_string()));
    let score: Option<f64> = conn.zscore(legacy.dead(), queued).unwrap();
    assert!(score.is_some(), "dead in the legacy shard's dead set");
    let (code, body) = app.retry(queued);
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_for_status(queued, "succeeded", WITHIN);
    assert_eq!(done["attempts"], 2, "{done}");
    app.wait_for_status(scheduled, "succeeded", WITHIN);
    let done = app.wait_for_status(held, "succeeded", WITHIN);
    assert_eq!(done["attempts"], 2, "{done}");
    // Everything stayed where the old release put it: nothing was copied.
    for id in [queued, scheduled, held] {
        assert!(exists(&mut conn, &legacy.job(id)), "{id}");
        let copies: Vec<String> = conn.keys(format!("{{onedyno:s*}}:job:{id}")).unwrap();
        assert!(copies.is_empty(), "{copies:?}");
    }
    assert!(support::inflight_ids(&mut conn).is_empty());
}

/// Every page of `status` from `limit` at a time, following `next_cursor` to the end.
fn all_pages(app: &App, status: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut query = format!("&limit={limit}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let (code, body) = app.list(status, &query);
        assert_eq!(code, StatusCode::OK, "{body}");
        for job in body["jobs"].as_array().expect("jobs") {
            ids.push(job["id"].as_str().expect("id").to_string());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.replace(',', "%2C")),
            None => return ids,
        }
    }
    panic!("no last page");
}

#[test]
fn lists_merge_the_shards_in_the_status_order() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("QUEUES", "alpha,beta")]);
    // Dead one after the other, alternating between two queues' shards.
    let mut died = Vec::new();
    for i in 0..6 {
        let queue = if i % 2 == 0 { "alpha" } else { "beta" };
        let id = app.enqueue_ok(&json!({"kind": "fail", "queue": queue,
            "args": {"permanent": true}}));
        let job = app.wait_for_status(&id, "dead", WITHIN);
        died.push((job["finished_at"].as_str().unwrap().to_string(), id));
    }
    died.sort();
    let newest_first: Vec<String> = died.into_iter().rev().map(|(_, id)| id).collect();
    for limit in [1, 2, 4, 50] {
        assert_eq!(
            all_pages(&app, "dead", limit),
            newest_first,
            "limit {limit}"
        );
    }
}
