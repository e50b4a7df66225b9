//! Periodic jobs against a real Redis and real processes: three processes fire each tick of a
//! schedule once; after every process was down, `missed: "one"` catches up once and `"skip"`
//! waits; `overlap: false` skips ticks while the last job runs; bad `SCHEDULES` entries stop the
//! process naming entry and field; `GET /schedules` shows each schedule, and a new schedule
//! does not catch up a tick from before it existed.

mod support;

use std::collections::HashMap;
use std::thread::sleep;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::{App, Redis, SIGTERM};

/// A job a schedule enqueued, as stored in Redis.
#[derive(Debug, Clone)]
struct Fired {
    tick: i64,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

/// The jobs `schedule` enqueued, by tick.
fn fired(conn: &mut redis::Connection, schedule: &str) -> Vec<Fired> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(support::in_every_shard("job:*"))
        .query(conn)
        .expect("KEYS");
    let mut jobs: Vec<Fired> = keys
        .iter()
        .filter_map(|key| {
            let f: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query(conn).ok()?;
            (f.get("schedule")? == schedule).then(|| {
                // Stored as enqueue.lua stores a job: one-letter names, nothing empty.
                for long in [
                    "id", "kind", "queue", "status", "attempts", "failures", "run_at",
                ] {
                    assert!(!f.contains_key(long), "{long} in {f:?}");
                }
                assert_ne!(f.get("a").map(String::as_str), Some("{}"), "{f:?}");
                let int = |name: &str| f.get(name).and_then(|v| v.parse().ok());
                Fired {
                    tick: int("schedule_tick").expect("schedule_tick"),
                    created_at: int("c").expect("created_at"),
                    started_at: int("t"),
                    // A succeeded job keeps its duration ('d'), a dead one its finish time.
                    finished_at: int("f").or_else(|| Some(int("t")? + int("d")?)),
                }
            })
        })
        .collect();
    jobs.sort_by_key(|j| j.tick);
    jobs
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Sleeps until the wall clock is `offset` ms past a multiple of `period` ms, and at least
/// `after` ms since the epoch; returns that time.
fn wait_for_phase(period: i64, offset: i64, after: i64) -> i64 {
    loop {
        let now = now_ms();
        let phase = now.rem_euclid(period);
        if now >= after && (offset..offset + 300).contains(&phase) {
            return now;
        }
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_processes_fire_each_tick_once() {
    let redis = Redis::start();
    let env = [(
        "SCHEDULES",
        r#"[{"name":"every-second","cron":"* * * * * *","kind":"noop"}]"#,
    )];
    let mut apps: Vec<App> = (0..3).map(|_| App::start(&redis.url(), &env)).collect();
    for app in &apps {
        app.wait_for_log("event=schedule.started", Duration::from_secs(10));
    }
    let all_up = now_ms();
    sleep(Duration::from_secs(10));
    for app in &mut apps {
        app.kill();
    }
    let jobs = fired(&mut redis.conn(), "every-second");
    let ticks: Vec<i64> = jobs.iter().map(|j| j.tick).collect();
    assert!(ticks.len() >= 9, "{} ticks fired: {ticks:?}", ticks.len());
    for pair in ticks.windows(2) {
        assert_ne!(pair[0], pair[1], "tick {} fired twice", pair[0]);
        assert_eq!(pair[1] - pair[0], 1000, "a tick was missed: {ticks:?}");
    }
    // Every process logged only the ticks it fired, and together exactly the jobs stored.
    let per_process: Vec<usize> = apps
        .iter()
        .map(|a| a.log_lines("event=schedule.fired").len())
        .collect();
    assert_eq!(
        per_process.iter().sum::<usize>(),
        jobs.len(),
        "{per_process:?}"
    );
    let late = |from: i64| {
        let mut late: Vec<i64> = jobs
            .iter()
            .filter(|j| j.tick >= from)
            .map(|j| j.created_at - j.tick)
            .collect();
        late.sort_unstable();
        assert!(
            late.first().is_some_and(|l| *l >= 0),
            "early tick: {late:?}"
        );
        format!(
            "{} ticks: p50 {} ms, max {} ms",
            late.len(),
            late[late.len() / 2],
            late[late.len() - 1]
        )
    };
    eprintln!(
        "tick accuracy, 3 processes: all ticks {}; once all three ran {}; fired per process {per_process:?}",
        late(0),
        late(all_up)
    );
}

/// Waits until each of `schedules` has fired `tick`.
fn wait_for_tick(conn: &mut redis::Connection, schedules: &[&str], tick: i64, app: &App) {
    let fired_all = support::eventually(Duration::from_secs(8), || {
        schedules
            .iter()
            .all(|s| fired(conn, s).iter().any(|j| j.tick == tick))
            .then_some(())
    });
    assert!(
        fired_all.is_some(),
        "tick {tick} did not fire\n{}",
        app.logs()
    );
}

#[test]
fn after_all_processes_were_down_one_catches_up_once_and_skip_waits() {
    const PERIOD: i64 = 6000;
    let redis = Redis::start();
    let env = [(
        "SCHEDULES",
        r#"[{"name":"catch-up","cron":"*/6 * * * * *","kind":"noop","missed":"one"},
            {"name":"skipper","cron":"*/6 * * * * *","kind":"noop","missed":"skip"}]"#,
    )];
    let mut first = App::start(&redis.url(), &env);
    first.wait_for_log("event=schedule.started", Duration::from_secs(10));
    first.signal(SIGTERM);
    first.wait_exit(Duration::from_secs(10)).expect("no exit");
    let stopped = now_ms();
    let mut conn = redis.conn();
    let before = (
        fired(&mut conn, "catch-up").len(),
        fired(&mut conn, "skipper").len(),
    );

    // Down across at least two ticks, back half a period (3 s grace) past the latest of them.
    let restart = wait_for_phase(PERIOD, 3300, stopped + 2 * PERIOD);
    let latest_missed = restart - restart.rem_euclid(PERIOD);
    let second = App::start(&redis.url(), &env);
    second.wait_for_log("name=catch-up", Duration::from_secs(5));
    second.wait_for_log("name=skipper", Duration::from_secs(5));

    let caught_up = fired(&mut conn, "catch-up");
    assert_eq!(
        caught_up.len(),
        before.0 + 1,
        "one job, not one per tick: {caught_up:?}"
    );
    let job = caught_up.last().unwrap();
    assert_eq!(job.tick, latest_missed, "{job:?}");
    assert!(job.created_at - job.tick > 3000, "{job:?}");
    let line = &second.log_lines("event=schedule.fired")[0];
    assert!(
        line.contains("name=catch-up") && line.contains("caught_up=true"),
        "{line}"
    );
    assert_eq!(fired(&mut conn, "skipper").len(), before.1);
    let missed = second.log_lines("event=schedule.missed");
    assert!(
        missed
            .iter()
            .any(|l| l.contains("name=skipper") && l.contains("reason=skip")),
        "{missed:?}"
    );

    // Both run the next tick as usual.
    wait_for_tick(
        &mut conn,
        &["catch-up", "skipper"],
        latest_missed + PERIOD,
        &second,
    );
    assert_eq!(fired(&mut conn, "skipper").len(), before.1 + 1);
}

#[test]
fn without_overlap_a_tick_is_skipped_while_the_last_job_runs() {
    let redis = Redis::start();
    let env = [(
        "SCHEDULES",
        r#"[{"name":"solo","cron":"* * * * * *","kind":"sleep","args":{"ms":2200},"overlap":false},
            {"name":"pile","cron":"* * * * * *","kind":"sleep","args":{"ms":2200}}]"#,
    )];
    let apps: Vec<App> = (0..2)
        .map(|_| App::start_ready(&redis.url(), &env))
        .collect();
    let mut conn = redis.conn();
    let enough = support::eventually(Duration::from_secs(15), || {
        let solo = fired(&mut conn, "solo");
        (solo.len() >= 3).then_some(solo)
    });
    let solo = enough.unwrap_or_else(|| panic!("solo fired too few\n{}", apps[0].logs()));
    for pair in solo.windows(2) {
        let finished = pair[0].finished_at.expect("the earlier job finished");
        assert!(
            pair[1].created_at >= finished,
            "a job started while the previous one ran: {pair:?}"
        );
        assert!(pair[1].tick - pair[0].tick >= 2000, "{pair:?}");
    }
    let skipped: Vec<String> = apps
        .iter()
        .flat_map(|a| a.log_lines("event=schedule.skipped"))
        .collect();
    assert!(skipped.len() >= 2, "{skipped:?}");
    assert!(
        skipped.iter().all(|l| l.contains("name=solo")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .all(|l| l.contains("previous_status=running") || l.contains("previous_status=queued")),
        "{skipped:?}"
    );
    // With overlap (the default) the same job piles up: one per tick, several running at once.
    let pile = fired(&mut conn, "pile");
    let overlapping = pile
        .windows(2)
        .any(|p| match (p[0].finished_at, p[1].started_at) {
            (Some(end), Some(start)) => start < end,
            (None, Some(_)) => true,
            _ => false,
        });
    assert!(pile.len() >= 4 && overlapping, "{pile:?}");
}

#[test]
fn a_bad_entry_stops_the_process_with_code_2_naming_entry_and_field() {
    let redis = Redis::start();
    let ok = r#"{"name":"a","cron":"* * * * *","kind":"noop"}"#;
    // (the second entry, DEMO_KINDS, what the error line must say), one case a line.
    #[rustfmt::skip]
    let cases = [
        (r#"{"name":"n","cron":"0 3 * *","kind":"noop"}"#, "true", r#"#2 "n": cron"#),
        (r#"{"name":"n","cron":"* * * * *","kind":"noop","timezone":"Europe/Nowhere"}"#, "true", r#"#2 "n": timezone"#),
        (r#"{"name":"n","cron":"0 * * * *","kind":"report"}"#, "true", r#""n": kind"#),
        (r#"{"name":"n","cron":"0 * * * *","kind":"sleep","args":{"ms":1}}"#, "", "DEMO_KINDS"),
        (r#"{"name":"n","cron":"0 * * * *","kind":"sleep","args":{"ms":"x"}}"#, "true", r#""n": args"#),
        (r#"{"name":"a","cron":"0 * * * *","kind":"noop"}"#, "true", r#"#2 "a": name"#),
        (r#"{"name":"n","cron":"* * * * *","kind":"noop","missed":"all"}"#, "true", r#"#2 "n": missed"#),
    ];
    for (entry, demo, needle) in cases {
        let schedules = format!("[{ok},{entry}]");
        let env = [("SCHEDULES", schedules.as_str()), ("DEMO_KINDS", demo)];
        let mut app = App::spawn(&redis.url(), &env);
        let status = app.wait_exit(Duration::from_secs(10)).expect("no exit");
        assert_eq!(status.code(), Some(2), "{schedules}\n{}", app.logs());
        app.wait_for_log("invalid SCHEDULES", Duration::from_secs(5));
        let line = app.log_lines("invalid SCHEDULES").join("\n");
        let needle = needle.replace('"', "\\\"");
        assert!(line.contains(&needle), "{needle} not in {line:?}");
    }
}

#[test]
fn get_schedules_shows_each_schedule_and_its_last_run() {
    let redis = Redis::start();
    let env = [
        ("API_TOKEN", "s3cret-token"),
        (
            "SCHEDULES",
            r#"[{"name":"tick","cron":"* * * * * *","kind":"noop"},
                {"name":"new-year","cron":"0 0 1 1 *","kind":"echo","args":{"hi":1},
                 "queue":"low","timezone":"Europe/Berlin","overlap":false}]"#,
        ),
    ];
    let app = App::start_ready(&redis.url(), &env);
    let (status, body) = app.get("/schedules");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let get = || -> Value {
        let res = app
            .http()
            .get(app.url("/schedules"))
            .bearer_auth("s3cret-token")
            .send()
            .expect("GET /schedules");
        assert_eq!(res.status(), StatusCode::OK);
        res.json().expect("JSON")
    };
    let body = support::eventually(Duration::from_secs(10), || {
        let body = get();
        (body["schedules"][0]["last_status"] == "succeeded").then_some(body)
    })
    .unwrap_or_else(get);
    let [tick, new_year] = body["schedules"].as_array().expect("list").as_slice() else {
        panic!("{body}")
    };
    let keys = "name cron timezone kind queue next_run_at last_run_at last_job_id last_status";
    for key in keys.split(' ') {
        assert!(
            tick.get(key).is_some() && new_year.get(key).is_some(),
            "{key}: {body}"
        );
    }
    assert_eq!(
        (
            &tick["name"],
            &tick["cron"],
            &tick["timezone"],
            &tick["kind"],
            &tick["queue"]
        ),
        (
            &"tick".into(),
            &"* * * * * *".into(),
            &"UTC".into(),
            &"noop".into(),
            &"default".into()
        )
    );
    assert_eq!(tick["last_status"], "succeeded", "{body}");
    let job = app
        .http()
        .get(app.url(&format!("/jobs/{}", tick["last_job_id"].as_str().unwrap())))
        .bearer_auth("s3cret-token")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(job["kind"], "noop", "{job}");
    let last_run = support::ms(&tick["last_run_at"]);
    let next_run = support::ms(&tick["next_run_at"]);
    assert!(next_run > last_run && next_run - last_run <= 3000, "{tick}");

    // New, it does not catch up this year's tick although its policy is "one".
    let missed = app.log_lines("name=new-year");
    assert!(
        missed.len() == 1
            && missed[0].contains("event=schedule.missed")
            && missed[0].contains("reason=new"),
        "{missed:?}"
    );
    assert_eq!(
        (&new_year["missed"], &new_year["overlap"]),
        (&"one".into(), &false.into())
    );
    assert_eq!(new_year["queue"], "low");
    assert_eq!(new_year["timezone"], "Europe/Berlin");
    assert_eq!(
        (
            &new_year["last_run_at"],
            &new_year["last_job_id"],
            &new_year["last_status"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let next = chrono::DateTime::parse_from_rfc3339(new_year["next_run_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(
        next.format("%m-%d %H:%M:%S").to_string(),
        "01-01 00:00:00",
        "{new_year}"
    );
    assert!(next.timestamp_millis() > now_ms());
    assert!(next.timestamp_millis() - now_ms() <= 366 * 24 * 3600 * 1000);
}
