//! The HTTP API against a real Redis: enqueue to result, every error status with its JSON body,
//! and a process that keeps serving after bad input.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{App, Redis, assert_error};

#[test]
fn an_echo_job_is_accepted_then_succeeds_with_its_args_as_result() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    let (status, location, job) = app.enqueue(&json!({"kind": "echo", "args": {"hi": 1}}));
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/jobs/{id}").as_str()));
    assert_eq!(job["kind"], "echo");
    assert_eq!(job["queue"], "default");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["max_attempts"], 10);

    let done = app.wait_for_status(id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["result"], json!({"hi": 1}));
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["errors"], json!([]));
    for field in ["created_at", "run_at", "started_at", "finished_at"] {
        let at = done[field].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{field}: {done}"
        );
    }
    // The job was in Redis before the 202: the record is there, not in the process's memory.
    let mut conn = redis.conn();
    assert_eq!(
        support::job_field(&mut conn, id, "status").as_deref(),
        Some("succeeded")
    );
    let line = app.log_lines("event=job.finished").join("\n");
    assert!(
        line.contains(&format!("job_id={id}")) && line.contains("status=succeeded"),
        "{line}"
    );
    assert!(
        !app.log_lines("event=http.request method=POST path=/jobs status=202")
            .is_empty()
    );
}

/// The `202`'s job is built from what the request sent and what Redis decided (status, times),
/// not read back: it must be the record exactly as `GET /jobs/{id}` reads it.
#[test]
fn the_accepted_job_is_the_stored_record_as_a_get_reads_it() {
    let redis = Redis::start();
    let app = App::start_web_only(&redis.url());
    let bodies = [
        json!({"kind": "noop"}),
        json!({"kind": "echo", "args": {"b": [1, 2.5, null], "a": "x y"}, "queue": "mail",
               "max_attempts": 3, "timeout": 0.0025}),
        json!({"kind": "echo", "args": {}, "delay": 30}),
        json!({"kind": "echo", "run_at": "2020-01-01T00:00:00Z"}),
        json!({"kind": "echo", "run_at": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339()}),
    ];
    for body in bodies {
        let (status, _, accepted) = app.enqueue(&body);
        assert_eq!(status, StatusCode::ACCEPTED, "{body}: {accepted}");
        let id = accepted["id"].as_str().expect("id");
        assert_eq!(accepted, app.job(id), "{body}");
    }
    // Floats written with more digits than a double holds: the 202 shows the value the stored
    // text reads back as.
    let floats = r#"{"kind": "echo", "args": {"f": [0.1000000000000000055511151231257827,
        2.2250738585072011e-308, 9007199254740993, 1.00000000000000011102230246251565404,
        1.5777777777770001, 1014.5449131979983, 117.63331139400017, 98.88339545701953,
        0.9999999999999999, 17.922589369123898]}}"#;
    let res = app
        .http()
        .post(app.url("/jobs"))
        .header("content-type", "application/json")
        .body(floats)
        .send()
        .expect("POST /jobs");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // As text: parsing the bodies here could hide a difference in the last bit.
    let accepted = res.text().expect("body");
    let id = serde_json::from_str::<Value>(&accepted).expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let read = app
        .http()
        .get(app.url(&format!("/jobs/{id}")))
        .send()
        .and_then(|r| r.text())
        .expect("GET /jobs/{id}");
    assert_eq!(accepted, read);

    let (status, _, accepted) =
        app.enqueue_with(&json!({"kind": "echo"}), &[("Idempotency-Key", "k-1")]);
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let (again, _, repeated) =
        app.enqueue_with(&json!({"kind": "echo"}), &[("Idempotency-Key", "k-1")]);
    assert_eq!(again, StatusCode::OK, "{repeated}");
    assert_eq!(accepted, repeated);
    assert_eq!(accepted, app.job(accepted["id"].as_str().expect("id")));
}

#[test]
fn every_bad_request_gets_its_status_and_a_json_error_and_the_process_goes_on() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("MAX_BODY_BYTES", "1024")]);
    let http = app.http();
    let post = |body: &str, content_type: Option<&str>| {
        let mut req = http.post(app.url("/jobs")).body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.send().unwrap();
        let status = res.status();
        (status, res.json::<Value>().unwrap_or(Value::Null))
    };
    let json_type = Some("application/json");

    let (s, b) = post("{\"kind\": ", json_type);
    assert_error(s, &b, StatusCode::BAD_REQUEST, "malformed_json");
    let (s, b) = post("{\"kind\":\"echo\"}", Some("text/plain"));
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (s, b) = post("{\"kind\":\"echo\"}", None);
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let big = format!(
        "{{\"kind\":\"echo\",\"args\":{{\"x\":\"{}\"}}}}",
        "a".repeat(4096)
    );
    let (s, b) = post(&big, json_type);
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    for invalid in [
        json!({"kind": "no_such_kind"}),
        json!({"args": {}}),
        json!({"kind": "sleep", "args": {"ms": "soon"}}),
        json!({"kind": "echo", "queue": "bad queue!"}),
        json!({"kind": "echo", "delay": -1}),
        json!({"kind": "echo", "delay": 5, "run_at": "2030-01-01T00:00:00Z"}),
        json!({"kind": "echo", "run_at": "next tuesday"}),
        json!({"kind": "echo", "max_attempts": 0}),
        json!({"kind": "echo", "timeout": 0}),
        json!({"kind": "echo", "surprise": true}),
        json!(["not", "an", "object"]),
    ] {
        let (s, b) = post(&invalid.to_string(), json_type);
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    }
    let (s, b) = app.get("/jobs/0190a0a0-0000-7000-8000-000000000000");
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.get("/jobs/not-a-uuid");
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = app.get("/nowhere");
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let res = http.put(app.url("/jobs")).send().unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Every rejection was logged with its status and reason...
    assert!(!app.log_lines("status=413").is_empty());
    assert!(!app.log_lines("status=422").is_empty());
    // ...and the process still works.
    let id = app.enqueue_ok(&json!({"kind": "echo", "args": [1, 2]}));
    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(done["result"], json!([1, 2]));
    let (s, b) = app.get("/health");
    assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("ok")));
}

#[test]
fn redis_going_away_answers_503_with_retry_after_and_coming_back_heals() {
    let mut redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[]);
    redis.stop();
    let res = app
        .http()
        .post(app.url("/jobs"))
        .json(&json!({"kind": "noop"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let (s, _) = app.get("/health");
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    redis.start_again();
    let healed = support::eventually(Duration::from_secs(15), || {
        (app.get("/health").0 == StatusCode::OK).then_some(())
    });
    assert!(healed.is_some(), "never healthy again:\n{}", app.logs());
    // The worker registers again and works new jobs (the restarted Redis is empty).
    let id = support::eventually(Duration::from_secs(10), || {
        let (s, _, job) = app.enqueue(&json!({"kind": "echo", "args": {"back": true}}));
        (s == StatusCode::ACCEPTED).then(|| job["id"].as_str().unwrap().to_string())
    })
    .expect("enqueue after Redis restart");
    app.wait_for_status(&id, "succeeded", Duration::from_secs(15));
}
