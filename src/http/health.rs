//! `GET /health`: 200 while Redis takes writes; 503 while it does not (unreachable, or out of
//! memory and refusing writes, when no job could be accepted), or while the process drains.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::queue::QueueError;

/// Liveness and Redis status. Public (no token), and answers even while Redis is away. The
/// reason is a fixed phrase: Redis's own error text stays in the log, not on a public page.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.shutdown.is_requested() {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(json!({ "status": "draining" }));
    }
    match state.queue.check_writable().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok", "redis": "ok" })),
        Err(e) => {
            let reason = match e {
                QueueError::Full(_) => "redis is out of memory and refuses writes",
                QueueError::Unavailable(_) => "redis is unreachable",
                QueueError::Redis(_) | QueueError::Corrupt(_) => "redis refused the health check",
            };
            tracing::warn!(event = "health.unavailable", reason, error = %e);
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "2"))
                .json(json!({ "status": "unavailable", "redis": reason }))
        }
    }
}
