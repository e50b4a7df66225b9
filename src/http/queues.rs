//! `GET /queues`: depth, latency and running per queue; scheduled, retrying and dead counts.

use actix_web::{HttpResponse, web};

use super::{ApiError, AppState};

/// A snapshot of every queue (those this process works are always listed).
pub async fn queues(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.queue.stats(&state.config.queues.names()).await?;
    Ok(HttpResponse::Ok().json(stats))
}
