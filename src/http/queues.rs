//! `GET /queues`: depth, latency and running per queue; scheduled, retrying and dead counts;
//! Redis's memory use against its limit.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState};

/// A snapshot of the queues (those this process works are always listed, then the deepest
/// others up to a bound; `queues_omitted` counts the rest). `redis` is null when `INFO` fails.
pub(super) async fn queues(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.queue.stats(&state.config.queues.names()).await?;
    let memory = state.queue.memory().await.ok();
    let mut body = serde_json::to_value(stats)
        .map_err(|e| ApiError::internal("encoding the queue stats", e))?;
    body["redis"] = json!(memory);
    body["counts"] = json!({
        "running": body["running"],
        "scheduled": body["scheduled"],
        "retrying": body["retrying"],
        "dead": body["dead"],
    });
    Ok(HttpResponse::Ok().json(body))
}
