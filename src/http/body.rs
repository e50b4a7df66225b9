//! Reading a JSON request body: 415 unless it says JSON, 413 past `MAX_BODY_BYTES`, 400 unless it parses.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::ApiError;

/// Reads a JSON body's bytes, never holding more than `limit` of them, and giving up with 408
/// when it has not all arrived within `timeout`; [`parse_json`] reads them (a batch of jobs is
/// parsed one job at a time).
pub(super) async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError> {
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // An unparseable length never gets here: actix answers 400 before any handler runs.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    read_limited(payload, declared, limit, timeout).await
}

/// Parses JSON text, as a 400 when it is not.
pub(super) fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Collects a body of at most `limit` bytes within `timeout`. Memory grows with the bytes that
/// actually arrive, never with what the client declared: a lying `Content-Length` costs nothing.
async fn read_limited<S>(
    mut payload: S,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("could not read body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::RequestTimeout {
            secs: timeout.as_secs().max(1),
        })?
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Serialises JSON with object keys sorted, so two requests that mean the same compare equal.
pub(super) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use serde_json::json;

    #[test]
    fn canonical_form_ignores_key_order_and_spacing() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}}"#)
                .unwrap();
        let b = json!({"a": {"x": null, "y": [1, {"c": 3, "d": 2}]}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&b),
            r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        assert_ne!(canonical(&json!({"a": 1})), canonical(&json!({"a": "1"})));
    }

    fn chunks(
        parts: Vec<&'static [u8]>,
    ) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p))))
    }

    #[tokio::test]
    async fn a_declared_length_is_not_an_allocation() {
        let body = read_limited(
            chunks(vec![b"{}"]),
            Some(16_000_000),
            16_777_216,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(body, b"{}");
        assert!(body.capacity() < 1024, "capacity {}", body.capacity());
    }

    #[tokio::test]
    async fn too_large_is_refused_by_declaration_or_by_what_arrives() {
        let declared = read_limited(
            chunks(vec![]),
            Some(999_999_999_999),
            1024,
            Duration::from_secs(5),
        );
        assert!(matches!(
            declared.await,
            Err(ApiError::PayloadTooLarge { limit: 1024 })
        ));
        let arrived = read_limited(
            chunks(vec![&[b'a'; 600], &[b'a'; 600]]),
            None,
            1024,
            Duration::from_secs(5),
        );
        assert!(matches!(
            arrived.await,
            Err(ApiError::PayloadTooLarge { limit: 1024 })
        ));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled = chunks(vec![b"{\"kind\""]).chain(futures_util::stream::pending());
        let result = read_limited(stalled, Some(100), 1024, Duration::from_millis(50)).await;
        assert!(
            matches!(result, Err(ApiError::RequestTimeout { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |ct: &str| {
            TestRequest::default()
                .insert_header((header::CONTENT_TYPE, ct))
                .to_http_request()
        };
        assert!(is_json(&with("application/json")));
        assert!(is_json(&with("application/json; charset=utf-8")));
        assert!(is_json(&with("Application/JSON")));
        assert!(is_json(&with("application/vnd.api+json")));
        assert!(!is_json(&with("text/plain")));
        assert!(!is_json(&with("application/x-www-form-urlencoded")));
        assert!(!is_json(&TestRequest::default().to_http_request()));
    }
}
