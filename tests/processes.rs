//! `GET /processes` against real binaries: two processes (as during a restart, or a web and a
//! worker dyno) are both listed with what their heartbeats say.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis, eventually};

fn processes(app: &App) -> Vec<Value> {
    let (code, body) = app.get("/processes");
    assert_eq!(code, StatusCode::OK, "{body}");
    body["processes"].as_array().expect("processes").clone()
}

#[test]
fn two_processes_are_listed_with_their_fields() {
    let redis = Redis::start();
    let web = App::start_ready(
        &redis.url(),
        &[("DYNO", "web.1"), ("WORKER_CONCURRENCY", "3")],
    );
    let worker = App::spawn(
        &redis.url(),
        &[
            ("DYNO", "worker.1"),
            ("ROLE", "worker"),
            ("QUEUES", "slow,default"),
            ("WORKER_CONCURRENCY", "2"),
        ],
    );
    worker.wait_for_log("event=worker.registered", Duration::from_secs(10));
    let id = web.enqueue_ok(&json!({"kind": "sleep", "args": {"ms": 20000}, "queue": "slow"}));
    web.wait_for_status(&id, "running", Duration::from_secs(10));

    let list = eventually(Duration::from_secs(10), || {
        let list = processes(&web);
        // busy is read live from the in-flight lists.
        (list.len() == 2 && list.iter().any(|p| p["busy"] == 1)).then_some(list)
    })
    .unwrap_or_else(|| panic!("{:?}", processes(&web)));
    let by_dyno = |dyno: &str| {
        list.iter()
            .find(|p| p["dyno"] == dyno)
            .cloned()
            .unwrap_or_else(|| panic!("no {dyno} in {list:?}"))
    };
    let (w, k) = (by_dyno("web.1"), by_dyno("worker.1"));
    assert_eq!(w["pid"], web.pid(), "{w}");
    assert_eq!(k["pid"], worker.pid(), "{k}");
    assert_eq!((&w["role"], &k["role"]), (&json!("all"), &json!("worker")));
    assert_eq!(
        (&w["concurrency"], &k["concurrency"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(w["queues"], json!(["default"]));
    assert_eq!(k["queues"], json!(["slow", "default"]));
    assert_eq!((&w["busy"], &k["busy"]), (&json!(0), &json!(1)));
    for p in [&w, &k] {
        assert!(
            p["id"]
                .as_str()
                .unwrap()
                .starts_with(p["dyno"].as_str().unwrap()),
            "{p}"
        );
        assert!(!p["host"].as_str().unwrap_or("").is_empty(), "{p}");
        let started =
            chrono::DateTime::parse_from_rfc3339(p["started_at"].as_str().unwrap()).unwrap();
        let beat =
            chrono::DateTime::parse_from_rfc3339(p["last_heartbeat_at"].as_str().unwrap()).unwrap();
        let age = chrono::Utc::now().signed_duration_since(beat);
        assert!(
            beat >= started - chrono::Duration::seconds(1) && age.num_seconds() < 10,
            "{p}"
        );
    }
    drop(worker);
}
