//! Helpers of the dashboard test: API calls with the token, the overview the API's numbers call
//! for, the security headers of the page's files, and steps in the page.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{App, eventually};

/// The API token both processes are started with.
pub(crate) const TOKEN: &str = "dashboard-test-token";
/// How long the page or the API gets to show a change.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// An API call with the token; returns status and JSON body.
pub(crate) fn api(
    app: &App,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http().request(method, app.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().expect("API call");
    let status = res.status();
    (status, res.json().unwrap_or(Value::Null))
}

/// A GET that must succeed; its JSON body.
pub(crate) fn get(app: &App, path: &str) -> Value {
    let (status, body) = api(app, Method::GET, path, None);
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// Enqueues a job that must be accepted; its id.
pub(crate) fn enqueue(app: &App, body: Value) -> String {
    let (status, job) = api(app, Method::POST, "/jobs", Some(body));
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"].as_str().expect("id").to_string()
}

/// Waits until the job has `status`.
pub(crate) fn wait_status(app: &App, id: &str, status: &str) -> Value {
    eventually(WAIT, || {
        let job = get(app, &format!("/jobs/{id}"));
        (job["status"] == status).then_some(job)
    })
    .unwrap_or_else(|| panic!("job {id} never became {status}"))
}

/// The overview as the page shows it, in the API's terms.
pub(crate) const OVERVIEW_JS: &str = r#"(() => {
  const n = id => document.querySelector('#' + id + ' .n').textContent;
  const queues = {};
  document.querySelectorAll('#queues-body tr[data-queue]').forEach(tr => {
    queues[tr.dataset.queue] = [tr.querySelector('.c-depth').textContent,
      tr.querySelector('.c-running').textContent, tr.querySelector('.c-served').textContent === 'yes'];
  });
  return {running: n('c-running'), scheduled: n('c-scheduled'), retrying: n('c-retrying'),
    dead: n('c-dead'), processes: n('c-processes'), queues,
    processed: document.getElementById('chart').dataset.processed || null,
    failed: document.getElementById('chart').dataset.failed || null};
})()"#;

/// The overview the API's answers call for.
pub(crate) fn expected_overview(app: &App) -> Value {
    let stats = get(app, "/queues");
    let counts = &stats["counts"];
    let count = |name: &str| counts[name].as_u64().or(stats[name].as_u64()).unwrap_or(0);
    let mut queues = serde_json::Map::new();
    for q in stats["queues"].as_array().expect("queues") {
        queues.insert(
            q["name"].as_str().expect("name").to_string(),
            json!([
                q["depth"].to_string(),
                q["running"].to_string(),
                q["served"] != false
            ]),
        );
    }
    let minutes = get(app, "/stats/minutes");
    let total = |field: &str| {
        minutes["minutes"]
            .as_array()
            .expect("minutes")
            .iter()
            .map(|m| m[field].as_u64().unwrap_or(0))
            .sum::<u64>()
            .to_string()
    };
    json!({"running": count("running").to_string(), "scheduled": count("scheduled").to_string(),
        "retrying": count("retrying").to_string(), "dead": count("dead").to_string(),
        "processes": stats["processes"].to_string(), "queues": queues,
        "processed": total("processed"), "failed": total("failed")})
}

/// The page and every asset it loads carry the security headers; prints the first load's weight.
pub(crate) fn check_headers_and_weigh_the_page(app: &App) {
    let page = app.http().get(app.url("/")).send().expect("GET /");
    let mut paths = vec!["/".to_string()];
    let html = {
        check_security_headers(&page, "/");
        page.text().expect("page text")
    };
    paths.extend(
        html.split('"')
            .filter(|part| part.starts_with("/assets/"))
            .map(str::to_string),
    );
    assert!(paths.len() >= 3, "no assets in {html}");
    let mut bytes = html.len();
    for path in &paths[1..] {
        let res = app.http().get(app.url(path)).send().expect("GET asset");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        check_security_headers(&res, path);
        bytes += res.bytes().expect("asset body").len();
    }
    eprintln!(
        "dashboard first load: {bytes} bytes in {} files (html, css, js; uncompressed)",
        paths.len()
    );
}

fn check_security_headers(res: &reqwest::blocking::Response, path: &str) {
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no {name}"))
            .to_string()
    };
    assert_eq!(
        header("content-security-policy"),
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        "{path}"
    );
    assert_eq!(header("x-frame-options"), "DENY", "{path}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
}

pub(crate) fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("dashboard-screenshots")
}

/// Goes to a page of the dashboard by its hash.
pub(crate) fn open(browser: &mut Browser, hash: &str) {
    browser.eval(&format!("location.hash = {}", json!(hash)));
}

/// Answers the open confirmation dialog with yes.
pub(crate) fn confirm(browser: &mut Browser) {
    browser.wait_for(
        "the confirmation dialog",
        "document.getElementById('confirm').open",
        WAIT,
    );
    browser.click("#confirm-yes");
}
