//! Removing and retrying for good: `DELETE /jobs/{id}` (a dead job is deleted, a waiting or
//! running one cancelled) and `POST /jobs/retry?status=dead` (many at once).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::jobs::{cancel, job_id, not_found};
use super::request_log::request_id;
use super::{ApiError, AppState};
use crate::queue::{Deleted, JobStatus};

/// `DELETE /jobs/{id}`: a dead job is deleted (`{"id", "deleted": true}`); a queued, scheduled,
/// retrying or running one is cancelled as before; a succeeded or cancelled one is a 409.
pub(super) async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = job_id(&id)?;
    match state.queue.delete_dead(&job).await? {
        Deleted::Deleted => {
            tracing::info!(event = "job.deleted", job_id = %job, request_id = %request_id(&req));
            Ok(HttpResponse::Ok().json(json!({ "id": job, "deleted": true })))
        }
        Deleted::Missing => Err(not_found(&job)),
        Deleted::NotDead(status @ (JobStatus::Succeeded | JobStatus::Cancelled)) => {
            Err(ApiError::Conflict(format!(
                "job {job} is already {status}; only dead jobs are deleted"
            )))
        }
        Deleted::NotDead(_) => cancel(state, req, id).await,
    }
}

/// Query of `POST /jobs/retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryQuery {
    status: JobStatus,
    queue: Option<String>,
    kind: Option<String>,
}

/// `POST /jobs/retry?status=dead[&queue=&kind=]`: queues up to 1000 dead jobs again, oldest
/// first; `{"retried", "remaining"}` (call again while `remaining` is above zero).
pub(super) async fn retry_many(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<RetryQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.status != JobStatus::Dead {
        return Err(ApiError::Invalid(
            "only status=dead can be retried in bulk".into(),
        ));
    }
    let queue = query.queue.as_deref().filter(|q| !q.is_empty());
    let kind = query.kind.as_deref().filter(|k| !k.is_empty());
    let done = state.queue.retry_dead(queue, kind).await?;
    tracing::info!(
        event = "jobs.retried",
        retried = done.retried,
        remaining = done.remaining,
        queue,
        kind,
        request_id = %request_id(&req)
    );
    Ok(HttpResponse::Ok().json(done))
}
