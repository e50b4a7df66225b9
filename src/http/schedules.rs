//! `GET /schedules`: each periodic job, its next tick and what its last tick did.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{ApiError, AppState};

fn rfc3339(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

fn from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

/// The schedules in the order they were configured. `next_run_at` is the next tick (UTC);
/// `last_run_at`, `last_job_id` and `last_status` are null until a tick fired, and
/// `last_status` is null again once that job's record has expired.
pub(super) async fn schedules(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let queues: Vec<String> = state
        .schedules
        .iter()
        .map(|s| crate::schedule::job_queue(s, &state.registry))
        .collect();
    let named: Vec<(&str, &str)> = state
        .schedules
        .iter()
        .zip(&queues)
        .map(|(s, q)| (s.name(), q.as_str()))
        .collect();
    let stored = state.queue.schedule_states(&named).await?;
    let now = Utc::now();
    let list: Vec<Value> = state
        .schedules
        .iter()
        .zip(stored)
        .map(|(schedule, last)| {
            json!({
                "name": schedule.name(),
                "cron": schedule.cron(),
                "timezone": schedule.timezone_name(),
                "kind": schedule.kind(),
                "queue": crate::schedule::job_queue(schedule, &state.registry),
                "missed": schedule.missed_policy().as_str(),
                "overlap": schedule.allows_overlap(),
                "next_run_at": rfc3339(schedule.next_tick(now)),
                "last_tick": rfc3339(from_ms(last.last_tick)),
                "last_run_at": rfc3339(from_ms(last.last_run_at)),
                "last_job_id": last.last_job_id,
                "last_status": last.last_status,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "schedules": list })))
}
