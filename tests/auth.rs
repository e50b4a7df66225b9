//! Authentication: a bearer token when API_TOKEN is set; loopback clients only when it is not.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis};

#[test]
fn with_a_token_every_route_but_health_and_the_page_needs_it() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("API_TOKEN", "s3cret-token")]);
    let http = app.http();
    for (method, path) in [
        ("POST", "/jobs"),
        ("GET", "/jobs/0190a0a0-0000-7000-8000-000000000000"),
        ("DELETE", "/jobs/0190a0a0-0000-7000-8000-000000000000"),
        ("POST", "/jobs/0190a0a0-0000-7000-8000-000000000000/retry"),
        ("GET", "/jobs?status=dead"),
        ("GET", "/queues"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-toke"),
            Some("s3cret-token"),
        ] {
            let mut req = http.request(method.parse().unwrap(), app.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let res = req.json(&json!({"kind": "noop"})).send().unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            let body: Value = res.json().unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    let res = http
        .post(app.url("/jobs"))
        .header("authorization", "Bearer s3cret-token")
        .json(&json!({"kind": "noop"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = http
        .get(app.url("/queues"))
        .header("authorization", "Bearer s3cret-token")
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        http.get(app.url("/health")).send().unwrap().status(),
        StatusCode::OK
    );
    let page = http.get(app.url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(app.log_lines("event=auth.loopback_only").is_empty());
}

#[test]
fn without_a_token_loopback_clients_are_served_and_a_warning_is_logged() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    app.wait_for_log(
        "event=auth.loopback_only",
        std::time::Duration::from_secs(1),
    );
    let (status, _) = app.get("/queues");
    assert_eq!(status, StatusCode::OK);
    app.enqueue_ok(&json!({"kind": "noop"}));
}
