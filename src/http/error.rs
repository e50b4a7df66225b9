//! `ApiError`: every HTTP error, mapped to its status and JSON body in this one place.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use thiserror::Error;

use crate::queue::QueueError;
use crate::queue::spec::SpecError;

/// The cause of an internal error, kept for the log.
pub(super) type Source = Box<dyn std::error::Error + Send + Sync>;

/// Seconds a client is told to wait when Redis is unavailable.
const RETRY_AFTER_SECS: &str = "2";

/// An error answered as `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Error)]
pub enum ApiError {
    /// 400: the body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 400: a header is unusable.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong token, or a non-loopback client while no token is configured.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: loopback-only mode and a `Host` that is not this machine (a DNS-rebinding guard).
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405, with the methods the resource does allow.
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// The `Allow` header's value.
        allow: &'static str,
    },
    /// 408: the body did not arrive within `REQUEST_TIMEOUT`.
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout {
        /// The timeout, in seconds.
        secs: u64,
    },
    /// 409: the job is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit (`MAX_BODY_BYTES`).
        limit: usize,
    },
    /// 415.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422: well-formed JSON that says something invalid.
    #[error("{0}")]
    Invalid(String),
    /// 422: a job spec that breaks one of its rules.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// 503: Redis cannot take the request now.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or a misbehaving server. The client sees only "internal error"; the log gets
    /// `message` and the whole source chain.
    #[error("{message}")]
    Internal {
        /// What the server was doing.
        message: &'static str,
        /// Why it failed.
        #[source]
        source: Source,
    },
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Invalid(_) | ApiError::Spec(_) => "invalid",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal { .. } => "internal",
        }
    }

    /// A 500 that keeps its cause for the log.
    pub fn internal(message: &'static str, source: impl Into<Source>) -> ApiError {
        ApiError::Internal {
            message,
            source: source.into(),
        }
    }
}

/// `error` and its sources, outermost first, joined with `: ` for one log field.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::Full { .. } => {
                ApiError::Unavailable("Redis is out of memory; try again later".into())
            }
            e if e.is_unavailable() => {
                ApiError::Unavailable("Redis is unavailable; try again shortly".into())
            }
            other => ApiError::internal("the queue failed", other),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) | ApiError::Spec(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The detail of an internal error goes to the log, not to the client.
        let message = match self {
            ApiError::Internal { .. } => {
                tracing::error!(event = "http.internal_error", error = %chain(self));
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            ));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        // The rest of a stalled or oversized body may still be on its way; closing is the only way
        // to stop reading it without leaving the connection out of step.
        if matches!(
            self,
            ApiError::RequestTimeout { .. } | ApiError::PayloadTooLarge { .. }
        ) {
            response.force_close();
        }
        response.json(json!({ "error": { "code": self.code(), "message": message } }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause_and_hides_it_from_the_client() {
        let cause = QueueError::UnreadableRecord {
            id: "x".into(),
            field: "kind".into(),
        };
        let error = ApiError::from(cause);
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let logged = chain(&error);
        assert!(
            logged.contains("the queue failed") && logged.contains("job x: bad kind"),
            "{logged}"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn spec_errors_are_422_with_their_own_message() {
        let error = ApiError::from(SpecError::DelayAndRunAt);
        assert_eq!(error.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            (error.code(), error.to_string().as_str()),
            ("invalid", "give delay or run_at, not both")
        );
    }
}
