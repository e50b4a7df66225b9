//! `GET /health`: 200 while Redis answers; 503 while it does not, or while the process drains.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// Liveness and Redis status. Public (no token), and answers even while Redis is away.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.shutdown.is_requested() {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(json!({ "status": "draining" }));
    }
    match state.queue.redis().ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok", "redis": "ok" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(json!({ "status": "unavailable", "redis": e.to_string() })),
    }
}
