//! One log line per request: `event=http.request method path status duration_ms request_id`,
//! and the request counted in `onedyno_http_requests_total` under its route template.
//!
//! With `LOG_REQUESTS=errors` (the default) a successful GET or HEAD is logged at debug: Heroku's
//! router already writes a line for every request, and a dashboard polling every few seconds
//! would otherwise drown the log. Whatever changes something, and every 4xx or 5xx, is at info
//! (5xx at warn), with the request id that ties it to the router's line.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};

use super::AppState;
use crate::config::LogRequests;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, kept in the request's extensions for handlers' own log lines.
#[derive(Debug, Clone)]
pub(super) struct RequestId(String);

/// The job a request made, named on its line.
#[derive(Debug, Clone)]
struct CreatedJob(String);

/// Notes that `req` made job `id`, so the request's line names it.
pub(super) fn created_job(req: &HttpRequest, id: &str) {
    req.extensions_mut().insert(CreatedJob(id.to_string()));
}

/// The id of `req` (empty outside the logging middleware).
pub(super) fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

/// Logs the request once it is answered, with Heroku's `X-Request-ID` (or a new one), and echoes
/// the id in the response.
pub(super) async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_string();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    // The template (`/jobs/{id}`) keeps the metric's label set bounded whatever paths arrive.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let log_all = req
        .app_data::<web::Data<AppState>>()
        .is_none_or(|s| s.config.log_requests == LogRequests::All);
    let quiet_method = matches!(*req.method(), Method::GET | Method::HEAD);
    let result = next.call(req).await;
    let (status, error, job_id) = match &result {
        Ok(res) => (
            res.status().as_u16(),
            res.response().error().map(|e| e.to_string()),
            res.request()
                .extensions()
                .get::<CreatedJob>()
                .map(|job| job.0.clone()),
        ),
        Err(e) => (
            e.as_response_error().status_code().as_u16(),
            Some(e.to_string()),
            None,
        ),
    };
    crate::telemetry::metrics::http_request(&route, status);
    let duration_ms = started.elapsed().as_millis() as u64;
    // tracing's level is part of each call site, so the one line is written through a macro.
    macro_rules! request_line {
        ($level:ident) => {
            tracing::$level!(
                event = "http.request",
                method,
                path,
                status,
                duration_ms,
                request_id,
                job_id,
                error
            )
        };
    }
    if status >= 500 {
        request_line!(warn);
    } else if log_all || status >= 400 || !quiet_method {
        request_line!(info);
    } else {
        request_line!(debug);
    }
    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert(REQUEST_ID, value);
        }
        res
    })
}
