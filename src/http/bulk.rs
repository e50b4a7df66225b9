//! `POST /jobs` with a JSON array: up to [`BULK_MAX`] jobs stored all or none, one result per job
//! in the request's order. Each job may carry its own `idempotency_key`.

use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::body::parse_json;
use super::jobs::{MAX_IDEMPOTENCY_KEY, new_job};
use super::{ApiError, AppState};
use crate::queue::{BULK_MAX, BulkEnqueued, BulkItem, JobStatus, NewJob};

/// The answer to a batch: `{"jobs": [...]}`.
#[derive(Serialize)]
struct BulkReply<'a> {
    jobs: Vec<ItemReply<'a>>,
}

/// One job's result, in the order the jobs came.
#[derive(Serialize)]
struct ItemReply<'a> {
    id: &'a str,
    status: JobStatus,
    /// False when the job's `idempotency_key` answered with an earlier job.
    created: bool,
}

/// Checks every job, then stores them all in one script call: 202 with `{"jobs": [...]}`.
/// The first job that breaks a rule refuses the whole batch with 422, naming its index.
pub(super) async fn enqueue(
    state: &AppState,
    items: Vec<&RawValue>,
) -> Result<HttpResponse, ApiError> {
    if items.is_empty() {
        return Err(ApiError::Invalid("a batch needs at least one job".into()));
    }
    if items.len() > BULK_MAX {
        return Err(ApiError::Invalid(format!(
            "a batch holds at most {BULK_MAX} jobs; got {}",
            items.len()
        )));
    }
    // Room first: a batch that waits holds its body, not its jobs. A wait as long as a request
    // may take to arrive means Redis is stalled behind the batches before it.
    let room = tokio::time::timeout(
        state.config.request_timeout,
        state.queue.bulk_room(items.len()),
    )
    .await
    .map_err(|_| {
        ApiError::Unavailable("other batches are still being stored; try again shortly".into())
    })?;
    let mut jobs: Vec<NewJob> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let job = parse_json(item.get().as_bytes())
            .and_then(|item| item_job(state, item))
            .map_err(|e| match e {
                // Splitting the batch checks its syntax, not every value (a lone surrogate, a
                // number out of range): still malformed JSON (400), named by its index.
                ApiError::MalformedJson(m) => {
                    ApiError::MalformedJson(format!("jobs[{index}]: {m}"))
                }
                e => at(index, e),
            })?;
        jobs.push(job);
    }
    match state.queue.enqueue_many(room, jobs).await? {
        BulkEnqueued::KeyReused(index) => Err(at(
            index,
            ApiError::Invalid("its idempotency_key was used with a different request".into()),
        )),
        BulkEnqueued::Stored(stored) => {
            let created = stored.iter().filter(|item| item.created).count();
            tracing::info!(event = "jobs.enqueued", jobs = stored.len(), created);
            // Serialized as it stands: a `json!` value would build a map per job first.
            Ok(HttpResponse::Accepted().json(BulkReply {
                jobs: replies(&stored),
            }))
        }
    }
}

fn replies(stored: &[BulkItem]) -> Vec<ItemReply<'_>> {
    stored
        .iter()
        .map(|item| ItemReply {
            id: &item.id,
            status: item.status,
            created: item.created,
        })
        .collect()
}

/// One element of the batch: a job spec, plus an optional `idempotency_key` that is not part of
/// the request it fingerprints.
fn item_job(state: &AppState, mut item: Value) -> Result<NewJob, ApiError> {
    let Value::Object(fields) = &mut item else {
        return Err(ApiError::Invalid("expected a JSON object".into()));
    };
    let key = match fields.remove("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key))
            if !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(key)
        }
        Some(_) => {
            return Err(ApiError::Invalid(format!(
                "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )));
        }
    };
    new_job(state, item, key)
}

/// The error of the job at `index`, named so the client can find it.
fn at(index: usize, error: ApiError) -> ApiError {
    ApiError::Invalid(format!("jobs[{index}]: {error}"))
}
