//! The dashboard in a real browser: Debian's headless chromium, driven over the DevTools
//! protocol, against two real onedyno processes and a real Redis. Screenshots at 390 and 1280 px
//! go to `target/dashboard-screenshots/`.

mod browser;
#[path = "dashboard/api.rs"]
mod dashboard_api;
mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use browser::Browser;
use dashboard_api::{
    OVERVIEW_JS, TOKEN, WAIT, api, check_headers_and_weigh_the_page, confirm, enqueue,
    expected_overview, get, open, screenshots, wait_status,
};
use support::{App, FAST_BACKOFF, Redis, eventually};

#[test]
fn the_dashboard_shows_and_steers_the_queue_in_a_real_browser() {
    let Some(chromium) = browser::chromium() else {
        eprintln!(
            "SKIPPED: the dashboard browser test needs Debian's chromium at /usr/bin/chromium \
             (apt-get install chromium; .ci/run installs it)"
        );
        return;
    };
    let redis = Redis::start();
    let env = [("API_TOKEN", TOKEN), FAST_BACKOFF[0], FAST_BACKOFF[1]];
    let app = App::start_ready(&redis.url(), &env);
    let _other = App::start_ready(&redis.url(), &env);
    check_headers_and_weigh_the_page(&app);
    let mut browser = Browser::launch(&chromium, &screenshots(), 1280);

    // Without a token the API answers 401, and the page asks for one.
    browser.goto(&app.url("/"));
    browser.wait_for(
        "the token prompt",
        "!document.getElementById('auth').hidden && /needs the API token/.test(document.getElementById('auth-msg').textContent)",
        WAIT,
    );
    browser.screenshot("token-prompt-1280");
    browser.fill("#token", TOKEN);
    browser.click("#token-save");
    browser.wait_for(
        "the overview after the token",
        "document.getElementById('auth').hidden && document.querySelector('#c-processes .n').textContent === '2'",
        WAIT,
    );

    // A dead job, two scheduled ones and a queue no process works.
    let dead = enqueue(
        &app,
        json!({"kind": "fail", "args": {"message": "boom", "permanent": true}}),
    );
    wait_status(&app, &dead, "dead");
    for _ in 0..2 {
        enqueue(
            &app,
            json!({"kind": "sleep", "args": {"ms": 10}, "delay": 3600}),
        );
    }
    enqueue(&app, json!({"kind": "noop", "queue": "typo-queue"}));
    let mut last = (Value::Null, Value::Null);
    let same = eventually(Duration::from_secs(25), || {
        last = (browser.eval(OVERVIEW_JS), expected_overview(&app));
        (last.0 == last.1).then_some(())
    });
    assert!(
        same.is_some(),
        "the overview never matched the API:\npage {}\napi  {}",
        last.0,
        last.1
    );
    assert_eq!(last.1["queues"]["typo-queue"][2], false, "{}", last.1);
    browser.screenshot("overview-1280");

    let steps = run_enqueue_from_the_form(&app, &mut browser);
    retry_and_delete_a_dead_job(&app, &mut browser, &dead);
    retry_all_dead(&app, &mut browser);
    cancel_a_running_job(&app, &mut browser);

    open(&mut browser, "#/processes");
    let api_ids: Vec<Value> = get(&app, "/processes")["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(api_ids.len(), 2, "{api_ids:?}");
    let shown = browser.wait_for(
        "two processes",
        "(() => { const ids = [...document.querySelectorAll('#processes-body tr[data-id]')].map(r => r.dataset.id); return ids.length === 2 ? ids : null; })()",
        WAIT,
    );
    let mut shown: Vec<Value> = shown.as_array().expect("ids").clone();
    let mut expected = api_ids.clone();
    shown.sort_by_key(|v| v.to_string());
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(shown, expected);

    page_and_filter_a_list(&app, &mut browser);
    take_screenshots(&mut browser, &steps);
    survive_a_redis_outage(&mut browser, redis);
    let problems = browser.problems();
    assert!(
        problems.is_empty(),
        "the page reported errors: {problems:#?}"
    );
}

/// Returns the new job's id.
fn run_enqueue_from_the_form(app: &App, browser: &mut Browser) -> String {
    open(browser, "#/enqueue");
    browser.wait_for(
        "the kind picker",
        "[...document.querySelectorAll('#eq-kind option')].some(o => o.value === 'steps')",
        WAIT,
    );
    browser.fill("#eq-kind", "steps");
    browser.fill("#eq-args", r#"{"steps": 15, "step_ms": 400}"#);
    browser.fill("#eq-max-attempts", "2");
    browser.fill("#eq-timeout", "60");
    browser.fill("#eq-idempotency", "dashboard-form-1");
    browser.screenshot("enqueue-1280");
    browser.click("#eq-submit");
    let hash = browser.wait_for(
        "the new job's page",
        "location.hash.startsWith('#/jobs/') && location.hash",
        WAIT,
    );
    let id = hash.as_str().unwrap_or_default()["#/jobs/".len()..].to_string();
    let job = get(app, &format!("/jobs/{id}"));
    assert_eq!(
        (&job["kind"], &job["max_attempts"], &job["timeout"]),
        (&json!("steps"), &json!(2), &json!(60.0)),
        "{job}"
    );
    // The form sent the Idempotency-Key: the same request with it names the same job.
    let (status, again) = {
        let res = app
            .http()
            .post(app.url("/jobs"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "dashboard-form-1")
            .json(&json!({"kind": "steps", "args": {"steps": 15, "step_ms": 400}, "max_attempts": 2, "timeout": 60}))
            .send()
            .expect("POST /jobs");
        (res.status(), res.json::<Value>().unwrap_or(Value::Null))
    };
    assert_eq!((status, &again["id"]), (StatusCode::OK, &json!(id)));

    // The progress bar moves while it runs.
    let bar = "(() => { const b = document.getElementById('job-progress-bar'); return !document.getElementById('job-progress').hidden && b.value > 0 ? b.value : 0; })()";
    let first = browser
        .wait_for("progress", bar, WAIT)
        .as_f64()
        .unwrap_or(0.0);
    browser.screenshot("job-running-1280");
    browser.wait_for(
        "the progress bar to move",
        &format!("{bar} > {first}"),
        WAIT,
    );
    browser.wait_for(
        "the job to succeed",
        "document.getElementById('job-status').textContent === 'succeeded' && !document.getElementById('job-result-section').hidden",
        WAIT,
    );
    id
}

fn retry_and_delete_a_dead_job(app: &App, browser: &mut Browser, dead: &str) {
    open(browser, &format!("#/jobs/{dead}"));
    browser.wait_for(
        "the dead job's page",
        "document.getElementById('job-status').textContent === 'dead' && !document.getElementById('job-retry').hidden",
        WAIT,
    );
    browser.click("#job-retry");
    confirm(browser);
    browser.wait_for(
        "the retry's outcome",
        "/queued again/.test(document.getElementById('flash').textContent)",
        WAIT,
    );
    // It fails again (permanently): two attempts, two errors, each with its time, on the page.
    let job = eventually(WAIT, || {
        let job = get(app, &format!("/jobs/{dead}"));
        (job["status"] == "dead" && job["attempts"] == 2).then_some(job)
    })
    .expect("the retried job ran and died again");
    assert_eq!(job["errors"].as_array().map(Vec::len), Some(2), "{job}");
    browser.wait_for(
        "both errors on the page",
        "document.querySelectorAll('#job-errors li').length === 2",
        WAIT,
    );
    browser.screenshot("job-dead-1280");
    browser.click("#job-delete");
    confirm(browser);
    browser.wait_for(
        "the dead list after the delete",
        "location.hash === '#/jobs?status=dead' && /deleted/.test(document.getElementById('flash').textContent)",
        WAIT,
    );
    let (status, _) = api(app, Method::GET, &format!("/jobs/{dead}"), None);
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn cancel_a_running_job(app: &App, browser: &mut Browser) {
    let id = enqueue(app, json!({"kind": "sleep", "args": {"ms": 60000}}));
    wait_status(app, &id, "running");
    open(browser, &format!("#/jobs/{id}"));
    browser.wait_for(
        "the running job's page",
        "document.getElementById('job-status').textContent === 'running' && !document.getElementById('job-cancel').hidden",
        WAIT,
    );
    browser.click("#job-cancel");
    confirm(browser);
    browser.wait_for(
        "the cancelled badge",
        "document.getElementById('job-status').textContent === 'cancelled'",
        WAIT,
    );
    assert_eq!(get(app, &format!("/jobs/{id}"))["status"], "cancelled");
}

/// Every page at 1280 and at 390 px, each once it shows data.
fn take_screenshots(browser: &mut Browser, job: &str) {
    let job_hash = format!("#/jobs/{job}");
    let pages = [
        (
            "job",
            job_hash.as_str(),
            "document.getElementById('job-status').textContent === 'succeeded'",
        ),
        (
            "overview",
            "#/",
            "document.querySelector('#queues-body tr[data-queue]')",
        ),
        (
            "scheduled",
            "#/jobs?status=scheduled",
            "document.querySelectorAll('#jobs-body tr[data-id]').length === 2",
        ),
        (
            "cancelled",
            "#/jobs?status=cancelled",
            "document.querySelector('#jobs-body tr[data-id]')",
        ),
        (
            "processes",
            "#/processes",
            "document.querySelectorAll('#processes-body tr[data-id]').length === 2",
        ),
        (
            "enqueue",
            "#/enqueue",
            "document.querySelector('#eq-kind option')",
        ),
    ];
    for width in [1280, 390] {
        browser.viewport(width, 900);
        for (name, hash, ready) in pages {
            open(browser, hash);
            browser.wait_for(name, ready, WAIT);
            browser.screenshot(&format!("{name}-{width}"));
        }
    }
    browser.viewport(1280, 900);
}

/// Redis stops: a banner says so and the last numbers stay; it comes back: the banner goes.
fn survive_a_redis_outage(browser: &mut Browser, mut redis: Redis) {
    open(browser, "#/");
    browser.wait_for(
        "the overview",
        "document.querySelector('#c-scheduled .n').textContent === '2'",
        WAIT,
    );
    redis.stop();
    browser.wait_for(
        "the outage banner",
        "!document.getElementById('banner').hidden && /Redis is unavailable/.test(document.getElementById('banner').textContent)",
        WAIT,
    );
    assert_eq!(
        browser.text("#c-scheduled .n"),
        json!("2"),
        "the last data stays"
    );
    browser.screenshot("redis-down-1280");
    redis.start_again();
    browser.wait_for(
        "the banner to go",
        "document.getElementById('banner').hidden",
        Duration::from_secs(30),
    );
}

fn retry_all_dead(app: &App, browser: &mut Browser) {
    let ids: Vec<String> = (0..2)
        .map(|_| {
            enqueue(
                app,
                json!({"kind": "fail", "args": {"message": "again", "permanent": true}}),
            )
        })
        .collect();
    for id in &ids {
        wait_status(app, id, "dead");
    }
    open(browser, "#/jobs?status=dead");
    browser.wait_for(
        "two dead jobs listed",
        "document.querySelectorAll('#jobs-body tr[data-id]').length === 2 && !document.getElementById('retry-all').hidden",
        WAIT,
    );
    browser.screenshot("dead-1280");
    browser.click("#retry-all");
    confirm(browser);
    browser.wait_for(
        "the bulk retry's outcome",
        "/Retried 2 dead jobs\\./.test(document.getElementById('flash').textContent)",
        WAIT,
    );
    for id in &ids {
        let ran_again = eventually(WAIT, || {
            let job = get(app, &format!("/jobs/{id}"));
            (job["status"] == "dead" && job["attempts"] == 2).then_some(())
        });
        assert!(ran_again.is_some(), "job {id} was not retried");
    }
}

/// The two scheduled jobs, one a page, are the API's two; the queue filter finds the typo'd queue.
fn page_and_filter_a_list(app: &App, browser: &mut Browser) {
    let rows = "(() => { const ids = [...document.querySelectorAll('#jobs-body tr[data-id]')].map(r => r.dataset.id); return ids.length ? ids : null; })()";
    open(browser, "#/jobs?status=scheduled&limit=1");
    let first = browser.wait_for("the first page", rows, WAIT);
    let first_text = first.to_string();
    browser.click("#page-next");
    let second = browser.wait_for(
        "the second page",
        &format!(
            "(() => {{ const r = {rows}; return location.hash.includes('cursor=') && r && JSON.stringify(r) !== {} ? r : null; }})()",
            json!(first.to_string())
        ),
        WAIT,
    );
    let mut shown: Vec<Value> = [first, second]
        .iter()
        .flat_map(|page| page.as_array().expect("ids").clone())
        .collect();
    let mut expected: Vec<Value> = get(app, "/jobs?status=scheduled")["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    shown.sort_by_key(|v| v.to_string());
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(shown, expected);
    browser.click("#page-prev");
    browser.wait_for(
        "the first page again",
        &format!(
            "(() => {{ const r = {rows}; return !location.hash.includes('cursor=') && r && JSON.stringify(r) === {}; }})()",
            json!(first_text)
        ),
        WAIT,
    );

    open(browser, "#/jobs?status=queued");
    browser.fill("#f-queue", "typo-queue");
    browser.click("#filter-form button[type=submit]");
    let queues = browser.wait_for(
        "the queue filter",
        "(() => { const q = [...document.querySelectorAll('#jobs-body tr[data-id] .c-queue')].map(td => td.textContent); return location.hash.includes('queue=typo-queue') && q.length ? q : null; })()",
        WAIT,
    );
    assert_eq!(queues, json!(["typo-queue"]));
}
