//! `/jobs`: enqueue, read, cancel and retry (lists are in `lists.rs`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use serde_json::value::RawValue;

use super::body::{canonical, parse_json, read_json};
use super::request_log::{created_job, request_id};
use super::{ApiError, AppState};
use crate::config::JobLog;
use crate::queue::spec::{JobDefaults, JobSpec};
use crate::queue::{Cancelled, Enqueued, NewJob, Retried};

/// The longest `Idempotency-Key`.
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 255;

pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_string()))
}

fn location(id: &str) -> (header::HeaderName, String) {
    (header::LOCATION, format!("/jobs/{id}"))
}

/// `POST /jobs`: 202 once the job is stored in Redis; 200 for a repeated `Idempotency-Key`.
pub(super) async fn enqueue(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(
        &req,
        payload,
        state.config.max_body_bytes,
        state.config.request_timeout,
    )
    .await?;
    if body.trim_ascii_start().starts_with(b"[") {
        // A batch is split into its jobs' JSON texts, each parsed only when its turn comes: a
        // tree of every job's JSON at once costs ~700 B a job (a map node each), ~0.7 MB for
        // 1,000 jobs, held while the batch is stored.
        let items: Vec<&RawValue> = parse_json(&body)?;
        if req.headers().contains_key("idempotency-key") {
            return Err(ApiError::Invalid(
                "a batch takes no Idempotency-Key header; give each job its own idempotency_key"
                    .into(),
            ));
        }
        return super::bulk::enqueue(&state, items).await;
    }
    let body = parse_json(&body)?;
    let job = new_job(&state, body, idempotency_key(&req)?)?;
    let enqueued = state.queue.enqueue(job).await?;
    respond(enqueued, &req, state.config.job_log == JobLog::All)
}

/// Checks one job's JSON and fills in its defaults; `idempotency` is its key, if it has one.
pub(super) fn new_job(
    state: &AppState,
    body: serde_json::Value,
    idempotency: Option<String>,
) -> Result<NewJob, ApiError> {
    let fingerprint = idempotency.as_ref().map(|_| canonical(&body));
    let spec = JobSpec::from_json(body)?;
    // The registry is checked before the spec's own rules, so a wrong kind is the error a client
    // sees first.
    state
        .registry
        .validate(&spec.kind, &spec.args)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    // A kind's own options come between the request's fields and the process's settings.
    let kind = state.registry.options(&spec.kind).unwrap_or_default();
    let defaults = JobDefaults {
        max_attempts: kind.max_attempts.unwrap_or(state.config.max_attempts),
        queue: kind.queue,
        timeout: kind.timeout,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    Ok(spec.parse(&defaults, now_ms, idempotency.zip(fingerprint))?)
}

/// The answer to `POST /jobs` for what the queue did. The request's own line names the job it
/// made (see `request_log`), so `job.enqueued` is an `info` line of its own only with
/// `JOB_LOG=all`: one line per `POST`, not two.
fn respond(
    enqueued: Enqueued,
    req: &HttpRequest,
    log_enqueued: bool,
) -> Result<HttpResponse, ApiError> {
    match enqueued {
        Enqueued::Created(job) => {
            macro_rules! enqueued_line {
                ($level:ident) => {
                    tracing::$level!(
                        event = "job.enqueued",
                        job_id = %job.id,
                        kind = %job.kind,
                        queue = %job.queue,
                        status = %job.status,
                        request_id = %request_id(req)
                    )
                };
            }
            if log_enqueued {
                enqueued_line!(info);
            } else {
                enqueued_line!(debug);
            }
            created_job(req, &job.id);
            Ok(HttpResponse::Accepted()
                .insert_header(location(&job.id))
                .json(job))
        }
        Enqueued::Existing(job) => Ok(HttpResponse::Ok()
            .insert_header(location(&job.id))
            .json(job)),
        Enqueued::KeyReused => Err(ApiError::Invalid(
            "this Idempotency-Key was used with a different request".into(),
        )),
    }
}

/// Ids are UUIDs, stored in the lower-case hyphenated form; any other spelling of the same UUID
/// (upper case, braces, `urn:uuid:`, no hyphens) names the same job. Anything else cannot name a
/// job (and never reaches Redis).
pub(super) fn job_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|uuid| uuid.hyphenated().to_string())
        .map_err(|_| not_found(id))
}

pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}

/// `GET /jobs/{id}`.
pub(super) async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    let job = state.queue.get(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(job))
}

/// `DELETE /jobs/{id}`: cancel.
pub(super) async fn cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    match state.queue.cancel(&id).await? {
        Cancelled::Missing => Err(not_found(&id)),
        Cancelled::Finished(job) => Err(ApiError::Conflict(format!(
            "job {id} is already {}",
            job.status
        ))),
        Cancelled::Cancelled(job) => {
            tracing::info!(event = "job.cancelled", job_id = %job.id, kind = %job.kind, queue = %job.queue,
                request_id = %request_id(&req));
            Ok(HttpResponse::Ok().json(job))
        }
    }
}

/// `POST /jobs/{id}/retry`: run a dead or cancelled job again.
pub(super) async fn retry(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&id)?;
    match state.queue.retry(&id).await? {
        Retried::Missing => Err(not_found(&id)),
        Retried::Conflict(job) => Err(ApiError::Conflict(format!(
            "only dead or cancelled jobs can be retried; job {id} is {}{}",
            job.status,
            if job.lease.is_some() {
                " and still stopping"
            } else {
                ""
            }
        ))),
        Retried::Queued(job) => {
            tracing::info!(event = "job.retried", job_id = %job.id, kind = %job.kind, queue = %job.queue,
                request_id = %request_id(&req));
            Ok(HttpResponse::Accepted()
                .insert_header(location(&job.id))
                .json(job))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_uuid_names_the_same_job() {
        let id = "0190a0a0-abcd-7000-8000-00000000beef";
        for spelling in [
            id,
            "0190A0A0-ABCD-7000-8000-00000000BEEF",
            "{0190a0a0-abcd-7000-8000-00000000beef}",
            "urn:uuid:0190a0a0-abcd-7000-8000-00000000beef",
            "0190a0a0abcd7000800000000000beef",
        ] {
            assert_eq!(job_id(spelling).unwrap(), id, "{spelling}");
        }
        assert!(matches!(job_id("not-a-uuid"), Err(ApiError::NotFound(_))));
    }
}
