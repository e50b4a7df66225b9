//! One log line per request: `event=http.request method path status duration_ms request_id`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, kept in the request's extensions for handlers' own log lines.
#[derive(Debug, Clone)]
pub(super) struct RequestId(String);

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
    let result = next.call(req).await;
    let (status, error) = match &result {
        Ok(res) => (
            res.status().as_u16(),
            res.response().error().map(|e| e.to_string()),
        ),
        Err(e) => (
            e.as_response_error().status_code().as_u16(),
            Some(e.to_string()),
        ),
    };
    tracing::info!(
        event = "http.request",
        method,
        path,
        status,
        duration_ms = started.elapsed().as_millis() as u64,
        request_id,
        error
    );
    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            res.headers_mut().insert(REQUEST_ID, value);
        }
        res
    })
}
