//! `GET /processes` (every live worker process) and `GET /kinds` (the registered job kinds with
//! the defaults a job of theirs gets), for the dashboard and scripts.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState};
use crate::queue::spec::DEFAULT_QUEUE;

/// `GET /processes`: `{"processes": [...]}`, old and new dynos alike while they overlap.
pub(super) async fn processes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let processes = state.queue.processes().await?;
    Ok(HttpResponse::Ok().json(json!({ "processes": processes })))
}

/// `GET /kinds`: `{"kinds": [{"name", "queue", "timeout_ms", "max_attempts"}]}`, sorted by name.
pub(super) async fn kinds(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let config = &state.config;
    let kinds: Vec<_> = state
        .registry
        .kinds()
        .into_iter()
        .map(|name| {
            let options = state.registry.options(name).unwrap_or_default();
            json!({
                "name": name,
                "queue": options.queue.as_deref().unwrap_or(DEFAULT_QUEUE),
                "timeout_ms": options.timeout.unwrap_or(config.job_timeout).as_millis() as u64,
                "max_attempts": options.max_attempts.unwrap_or(config.max_attempts),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "kinds": kinds })))
}

/// `GET /stats/minutes`: processed and failed attempts per minute over the last hour, oldest
/// first, counted by every process.
pub(super) async fn minutes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let minutes = state.queue.minute_counts().await?;
    Ok(HttpResponse::Ok().json(json!({ "minutes": minutes })))
}
