//! Property tests of the HTTP input layer against the real binary (one app for the whole test):
//! any bytes as a body to the POST routes, any Content-Type and Idempotency-Key, any bytes in a
//! header value (sent raw), any job id in the path, any query string. Whatever comes in, the
//! answer is never a 5xx and never a dropped connection, every error has the JSON error shape
//! `{"error": {"code", "message"}}`, and the process stays up without a panic.
//!
//! `HTTP_PROPS_CASES` sets the cases per property (default 128; four properties).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use support::{App, Redis, raw_exchange};

/// How many answers of each status each property saw (printed at the end).
static SEEN: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

fn seen(property: &str, status: u16) {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    *seen.entry(format!("{property} {status}")).or_default() += 1;
}

/// What one request answered: status, Content-Type and body.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

/// The property every answer must have; `what` names the request in the failure.
fn well_formed(answer: &Answer, what: &str) -> Result<(), TestCaseError> {
    let Answer {
        status,
        content_type,
        body,
    } = answer;
    if *status >= 500 {
        return Err(TestCaseError::fail(format!("{what}: {status} {body}")));
    }
    if *status < 400 {
        return Ok(());
    }
    let json = content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/json"));
    let error: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = error["error"]["code"].as_str().unwrap_or_default();
    let message = error["error"]["message"].as_str().unwrap_or_default();
    if !json || code.is_empty() || message.is_empty() {
        return Err(TestCaseError::fail(format!(
            "{what}: {status} without the JSON error shape ({content_type:?}): {body:?}"
        )));
    }
    Ok(())
}

/// Percent-encodes everything but the unreserved characters, so any text is one path segment
/// or one query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one request through reqwest; a transport error (a dropped connection) fails the case.
fn send(
    app: &App,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Result<Answer, TestCaseError> {
    let mut req = app.http().request(method.clone(), app.url(path));
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    let res = req
        .send()
        .map_err(|e| TestCaseError::fail(format!("{method} {path}: no answer: {e}")))?;
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = res.text().unwrap_or_default();
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Something close to a job spec: known and unknown fields with values of any type.
fn job_like() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("kind".to_string()),
        Just("args".to_string()),
        Just("queue".to_string()),
        Just("delay".to_string()),
        Just("run_at".to_string()),
        Just("max_attempts".to_string()),
        Just("timeout".to_string()),
        Just("idempotency_key".to_string()),
        "[a-z_]{1,10}",
    ];
    let value = prop_oneof![
        3 => json_value(),
        1 => prop_oneof![Just(json!("noop")), Just(json!("echo")), Just(json!("sleep"))],
        1 => prop_oneof![Just(json!(1e308)), Just(json!(-1)), Just(json!(u64::MAX))],
        1 => prop_oneof![Just(json!("2026-13-40T99:00:00Z")), Just(json!("9999-12-31T23:59:59Z"))],
    ];
    prop::collection::btree_map(field, value, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A job spec whose fields are each valid or wild: many are stored, many refused.
fn nearly_valid_job() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        3 => Just(json!("noop")),
        1 => Just(json!("echo")),
        1 => json_value(),
    ];
    let number = prop_oneof![
        (0..5u32).prop_map(|n| json!(n)),
        Just(json!(0.001)),
        json_value(),
    ];
    let text = prop_oneof![
        Just(json!("q-props")),
        ".{0,300}".prop_map(Value::from),
        json_value()
    ];
    let fields = (
        kind,
        prop::option::weighted(0.3, json_value()),
        prop::option::weighted(0.3, text.clone()),
        prop::option::weighted(0.2, number.clone()),
        prop::option::weighted(0.2, number.clone()),
        prop::option::weighted(0.2, number),
        prop::option::weighted(0.2, text),
    );
    fields.prop_map(|(kind, args, queue, delay, attempts, timeout, run_at)| {
        let mut job = serde_json::Map::new();
        job.insert("kind".into(), kind);
        let optional = [
            ("args", args),
            ("queue", queue),
            ("delay", delay),
            ("max_attempts", attempts),
            ("timeout", timeout),
            ("run_at", run_at),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                job.insert(name.into(), value);
            }
        }
        Value::Object(job)
    })
}

/// A body: random bytes, any JSON, a job-like object, or a batch of them.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => job_like().prop_map(|v| v.to_string().into_bytes()),
        3 => nearly_valid_job().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(nearly_valid_job(), 0..4).prop_map(|v| Value::from(v).to_string().into_bytes()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => Just(Some("application/json".to_string())),
        1 => Just(Some("application/json; charset=latin1".to_string())),
        1 => Just(Some("text/plain".to_string())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

/// A POST route: create jobs, retry many, or retry one (of any id).
fn post_route() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("/jobs".to_string()),
        1 => Just("/jobs/retry?status=dead".to_string()),
        1 => ".{0,20}".prop_map(|id| format!("/jobs/{}/retry", encode(&id))),
    ]
}

/// A POST: route, body, Content-Type and Idempotency-Key.
type PostInput = (String, Vec<u8>, Option<String>, Option<String>);
/// A query: which route, and its key/value pairs.
type QueryInput = (u8, Vec<(String, String)>);

fn posts(app: &App, config: Config) -> Result<(), TestError<PostInput>> {
    let strategy = (
        post_route(),
        body(),
        content_type(),
        prop::option::of("[ -~]{0,70}"),
    );
    TestRunner::new(config).run(&strategy, |(route, body, ctype, idem)| {
        let mut headers = Vec::new();
        headers.extend(ctype.map(|t| ("content-type", t)));
        headers.extend(idem.map(|k| ("idempotency-key", k)));
        let answer = send(app, Method::POST, &route, &headers, Some(body.clone()))?;
        seen("POST", answer.status);
        well_formed(
            &answer,
            &format!("POST {route} {:?}", String::from_utf8_lossy(&body)),
        )
    })
}

/// Any id, in any of the routes that take one, with any method they answer.
fn ids(app: &App, config: Config) -> Result<(), TestError<(String, u8)>> {
    let id = prop_oneof![
        ".{0,40}",
        "[0-9a-fA-F-]{30,40}",
        Just("urn:uuid:01a2093d-4427-71a7-9024-56d756f518d7".to_string()),
        Just("{01A2093D-4427-71A7-9024-56D756F518D7}".to_string()),
    ];
    TestRunner::new(config).run(&(id, 0..5u8), |(id, how)| {
        let path = format!("/jobs/{}", encode(&id));
        let (method, path) = match how {
            0 => (Method::GET, path),
            1 => (Method::DELETE, path),
            2 => (Method::HEAD, path),
            3 => (Method::PUT, path),
            _ => (Method::POST, format!("{path}/retry")),
        };
        let answer = send(app, method.clone(), &path, &[], None)?;
        seen("ids", answer.status);
        // A HEAD answer has no body to check.
        if method == Method::HEAD {
            return match answer.status {
                s if s >= 500 => Err(TestCaseError::fail(format!("HEAD {path}: {s}"))),
                _ => Ok(()),
            };
        }
        well_formed(&answer, &format!("{method} {path}"))
    })
}

/// Any query on the routes that read one.
fn queries(app: &App, config: Config) -> Result<(), TestError<QueryInput>> {
    let key = prop_oneof![
        Just("status".to_string()),
        Just("queue".to_string()),
        Just("kind".to_string()),
        Just("limit".to_string()),
        Just("cursor".to_string()),
        ".{0,6}",
    ];
    let value = prop_oneof![
        Just("dead".to_string()),
        Just("queued".to_string()),
        "-?[0-9]{1,22}",
        "[0-9]{1,20}:.{0,8}",
        ".{0,20}",
    ];
    let pairs = prop::collection::vec((key, value), 0..5);
    TestRunner::new(config).run(&(0..4u8, pairs), |(route, pairs)| {
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let query = query.join("&");
        let (method, path) = match route {
            0 | 1 => (Method::GET, format!("/jobs?{query}")),
            2 => (Method::POST, format!("/jobs/retry?{query}")),
            _ => (Method::GET, format!("/stats/minutes?{query}")),
        };
        let answer = send(app, method.clone(), &path, &[], None)?;
        seen("queries", answer.status);
        well_formed(&answer, &format!("{method} {path}"))
    })
}

/// A raw POST /jobs whose `name` header carries `value` as-is (any bytes but CR and LF).
fn raw_request(port: u16, name: &str, value: &[u8]) -> Vec<u8> {
    let body = br#"{"kind":"noop"}"#;
    let mut req = format!(
        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    if name != "content-type" {
        req.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    req.extend_from_slice(format!("{name}: ").as_bytes());
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n\r\n");
    req.extend_from_slice(body);
    req
}

/// A byte HTTP forbids in a header value (controls but tab, and DEL).
fn unparsable(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn raw_headers(app: &App, config: Config) -> Result<(), TestError<(String, Vec<u8>)>> {
    let name = prop_oneof![
        Just("content-type".to_string()),
        Just("idempotency-key".to_string()),
        Just("authorization".to_string()),
        Just("accept".to_string()),
        Just("x-request-id".to_string()),
    ];
    let byte = prop_oneof![
        6 => 0x20..=0x7eu8,
        2 => 0x80..=0xffu8,
        1 => Just(b'\t'),
    ];
    // Now and then one byte HTTP forbids (a control or DEL, never CR or LF), anywhere.
    let bad = prop_oneof![0x00..0x0au8, 0x0b..0x0du8, 0x0e..0x20u8, Just(0x7fu8)];
    let value = (
        prop::collection::vec(byte, 0..60),
        prop::option::weighted(0.25, (bad, any::<prop::sample::Index>())),
    )
        .prop_map(|(mut value, bad)| {
            if let Some((b, at)) = bad {
                value.insert(at.index(value.len() + 1), b);
            }
            value
        });
    let port = app.port();
    TestRunner::new(config).run(&(name, value), |(name, value)| {
        let res = raw_exchange(
            port,
            &raw_request(port, &name, &value),
            Duration::from_secs(10),
        );
        let what = format!("{name}: {:?}", String::from_utf8_lossy(&value));
        let status = res
            .status()
            .ok_or_else(|| TestCaseError::fail(format!("{what}: no answer: {res:?}")))?;
        seen("raw headers", status);
        if value.iter().any(|b| unparsable(*b)) {
            // Documented (README, Errors): the HTTP parser answers a header it cannot read
            // itself, 400 with an empty body, and closes the connection; the API never sees it.
            return match (status, res.body().is_empty(), res.closed) {
                (400, true, true) => Ok(()),
                _ => Err(TestCaseError::fail(format!("{what}: {res:?}"))),
            };
        }
        let answer = Answer {
            status,
            content_type: res.header("content-type"),
            body: res.body().to_string(),
        };
        well_formed(&answer, &what)
    })
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..Config::default()
    }
}

/// Panics with the shrunk input of a failed property.
fn passed<T: std::fmt::Debug>(name: &str, result: Result<(), TestError<T>>) {
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => panic!("{name}: {why}\nshrunk input: {input:?}"),
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn no_input_gets_a_5xx_a_dropped_connection_or_an_error_without_the_json_shape() {
    let cases = std::env::var("HTTP_PROPS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let redis = Redis::start();
    let mut app = App::start_ready(&redis.url(), &[("WEB_CONCURRENCY", "2")]);
    let began = Instant::now();
    passed("POST bodies and headers", posts(&app, config(cases)));
    passed("ids", ids(&app, config(cases)));
    passed("queries", queries(&app, config(cases)));
    passed("raw header bytes", raw_headers(&app, config(cases)));
    eprintln!(
        "http props: 4 properties x {cases} cases in {:.1?}",
        began.elapsed()
    );
    eprintln!(
        "answers by property and status: {:#?}",
        SEEN.lock().unwrap()
    );
    assert!(app.wait_exit(Duration::ZERO).is_none(), "the app exited");
    let (status, health) = app.get("/health");
    assert_eq!(status.as_u16(), 200, "{health}");
    let panics = app.log_lines("panicked");
    assert!(panics.is_empty(), "{panics:?}");
}
