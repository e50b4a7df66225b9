//! `GET /health`: 200 while Redis answers; 503 while it does not, or while the process drains.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// Why the process is not healthy. The body carries only this short, fixed reason: `/health` is
/// public, and Redis's own error text (`NOAUTH ...`, host names) is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhealthy {
    /// Shutting down.
    Draining,
    /// Redis does not answer a PING.
    RedisUnreachable,
}

impl Unhealthy {
    /// The `status` field of the body.
    fn status(self) -> &'static str {
        match self {
            Unhealthy::Draining => "draining",
            Unhealthy::RedisUnreachable => "unavailable",
        }
    }

    /// The `reason` field of the body.
    fn reason(self) -> &'static str {
        match self {
            Unhealthy::Draining => "shutting down",
            Unhealthy::RedisUnreachable => "redis unreachable",
        }
    }

    fn response(self) -> HttpResponse {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(json!({ "status": self.status(), "reason": self.reason() }))
    }
}

/// Liveness and Redis status. Public (no token), and answers even while Redis is away.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.shutdown.is_requested() {
        return Unhealthy::Draining.response();
    }
    match state.queue.redis().ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok", "redis": "ok" })),
        Err(e) => {
            tracing::warn!(event = "health.unhealthy", reason = Unhealthy::RedisUnreachable.reason(), error = %e);
            Unhealthy::RedisUnreachable.response()
        }
    }
}
