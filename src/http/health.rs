//! `GET /health`: 200 while Redis takes writes; 503 while it does not (unreachable, or out of
//! memory and refusing writes, when no job could be accepted), or while the process drains.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::queue::QueueError;

/// Why the process is not healthy. The body carries only this short, fixed reason: `/health` is
/// public, and Redis's own error text (`NOAUTH ...`, host names) is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unhealthy {
    /// Shutting down.
    Draining,
    /// Redis does not answer.
    RedisUnreachable,
    /// Redis answers but refuses writes: it is out of memory (`noeviction`).
    RedisFull,
    /// Redis refused the check for another reason (a misconfigured server, a missing password).
    RedisRefused,
}

impl Unhealthy {
    fn from_error(e: &QueueError) -> Unhealthy {
        match e {
            QueueError::Full { .. } => Unhealthy::RedisFull,
            e if e.is_unavailable() => Unhealthy::RedisUnreachable,
            _ => Unhealthy::RedisRefused,
        }
    }

    /// The `status` field of the body.
    fn status(self) -> &'static str {
        match self {
            Unhealthy::Draining => "draining",
            _ => "unavailable",
        }
    }

    /// The `reason` field of the body.
    fn reason(self) -> &'static str {
        match self {
            Unhealthy::Draining => "shutting down",
            Unhealthy::RedisUnreachable => "redis unreachable",
            Unhealthy::RedisFull => "redis out of memory",
            Unhealthy::RedisRefused => "redis refused the check",
        }
    }

    fn response(self) -> HttpResponse {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(json!({ "status": self.status(), "reason": self.reason() }))
    }
}

/// Liveness and Redis status. Public (no token), and answers even while Redis is away. The check
/// is a small write, so a Redis that answers PING but refuses writes (full) counts as down.
pub(super) async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.shutdown.is_requested() {
        return Unhealthy::Draining.response();
    }
    match state.queue.check_writable().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok", "redis": "ok" })),
        Err(e) => {
            let unhealthy = Unhealthy::from_error(&e);
            tracing::warn!(event = "health.unhealthy", reason = unhealthy.reason(), error = %e);
            unhealthy.response()
        }
    }
}
