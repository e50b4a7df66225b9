//! What a response (or a failed request) means for the job: the result of a 2xx, a retry, a
//! throttle, or a permanent failure.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::client::RedirectRefused;
use super::guard::Blocked;
use crate::jobs::JobError;
use crate::queue::truncate;

/// The most bytes of a response body kept in the result, measured as stored (JSON-escaped), so
/// the whole result stays under [`crate::queue::RESULT_MAX_BYTES`] (64 KiB) with its headers.
pub(crate) const BODY_MAX_BYTES: usize = 56 * 1024;
/// Response headers copied into the result; others are left out to keep it small.
const NOTABLE_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "location",
    "etag",
    "last-modified",
    "retry-after",
    "x-request-id",
    "x-ratelimit-remaining",
];
/// The most bytes of one header value kept in the result.
const HEADER_VALUE_MAX_BYTES: usize = 256;
/// The most bytes of a failed response's body quoted in the job's error.
const EXCERPT_MAX_BYTES: usize = 200;
/// How long a 429 without `Retry-After` waits.
pub(crate) const DEFAULT_THROTTLE: Duration = Duration::from_secs(10);
/// The shortest and longest waits a `Retry-After` may ask for.
const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// Reads the body chunk by chunk until `max` bytes; says whether more was left unread (the
/// connection is then dropped rather than drained, so a huge body costs nothing more).
pub(crate) async fn read_capped(
    response: &mut Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The result of a 2xx: `{"status", "headers", "body", "body_truncated"}`.
pub(crate) fn success(
    status: StatusCode,
    headers: &Map<String, Value>,
    body: &[u8],
    cut: bool,
) -> Value {
    let content_type = headers.get("content-type").and_then(Value::as_str);
    let (body, cut) = body_value(content_type, body, cut);
    json!({
        "status": status.as_u16(),
        "headers": headers,
        "body": body,
        "body_truncated": cut,
    })
}

/// The headers of note, each value cut to [`HEADER_VALUE_MAX_BYTES`].
pub(crate) fn notable_headers(headers: &HeaderMap) -> Map<String, Value> {
    NOTABLE_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            let value = truncate(value, HEADER_VALUE_MAX_BYTES).into_owned();
            Some((name.to_string(), Value::String(value)))
        })
        .collect()
}

fn is_json(content_type: Option<&str>) -> bool {
    let Some(mime) = content_type.and_then(|t| t.split(';').next()) else {
        return false;
    };
    let mime = mime.trim().to_ascii_lowercase();
    mime == "application/json" || mime.ends_with("+json")
}

/// The body as JSON when it is whole, says it is JSON and parses; else as text cut to
/// [`BODY_MAX_BYTES`] as stored. The flag says whether anything was cut.
fn body_value(content_type: Option<&str>, body: &[u8], cut: bool) -> (Value, bool) {
    if !cut
        && is_json(content_type)
        && let Ok(value) = serde_json::from_slice::<Value>(body)
        && value.to_string().len() <= BODY_MAX_BYTES
    {
        return (value, false);
    }
    let text = utf8_prefix(body, cut);
    let (text, shortened) = cut_to_stored_size(&text, BODY_MAX_BYTES);
    (Value::String(text.to_string()), cut || shortened)
}

/// The body as text. When the body was cut, a character split by the cut is dropped rather than
/// shown as a replacement character; other invalid UTF-8 is replaced.
fn utf8_prefix(body: &[u8], cut: bool) -> String {
    if cut
        && let Err(e) = std::str::from_utf8(body)
        && e.error_len().is_none()
    {
        return String::from_utf8_lossy(&body[..e.valid_up_to()]).into_owned();
    }
    String::from_utf8_lossy(body).into_owned()
}

/// The longest prefix of `text` whose JSON string form (quotes and escapes included) is at most
/// `max` bytes, and whether it is shorter than `text`.
fn cut_to_stored_size(text: &str, max: usize) -> (&str, bool) {
    let mut size = 2;
    for (at, c) in text.char_indices() {
        size += match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if size > max {
            return (&text[..at], true);
        }
    }
    (text, false)
}

/// The error of a non-2xx response: 429 (and 503 with `Retry-After`) throttles, 408, 425 and 5xx
/// retry (after `Retry-After` when given), anything else is permanent.
pub(crate) fn failure(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> JobError {
    let excerpt = String::from_utf8_lossy(body);
    let excerpt = truncate(excerpt.trim(), EXCERPT_MAX_BYTES);
    let message = if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    };
    let wait = retry_after(headers, SystemTime::now());
    match (status.as_u16(), wait) {
        (429, wait) => JobError::throttled(message, wait.unwrap_or(DEFAULT_THROTTLE)),
        (503, Some(wait)) => JobError::throttled(message, wait),
        (408 | 425 | 500..=599, Some(wait)) => JobError::retry_after(message, wait),
        (408 | 425 | 500..=599, None) => JobError::new(message),
        _ => JobError::permanent(message),
    }
}

/// The wait a `Retry-After` header asks for (seconds, or an HTTP date), within 1 s and 24 h.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at: SystemTime = chrono::DateTime::parse_from_rfc2822(value).ok()?.into();
        at.duration_since(now).unwrap_or_default()
    };
    Some(wait.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX))
}

/// The error of a request that got no response: refused by the guard or the redirect policy
/// (permanent), a bad request (permanent), or a network failure or timeout (retried).
pub(crate) fn send_error(error: reqwest::Error, timeout: Duration) -> JobError {
    if let Some(blocked) = find_source::<Blocked>(&error) {
        return JobError::permanent(blocked.to_string());
    }
    if let Some(refused) = find_source::<RedirectRefused>(&error) {
        return JobError::permanent(refused.to_string());
    }
    let error = error.without_url();
    if error.is_timeout() {
        return JobError::new(format!(
            "no complete response within the {}s timeout",
            timeout.as_secs_f64()
        ));
    }
    let message = chain(&error);
    if error.is_builder() || error.is_redirect() {
        JobError::permanent(message)
    } else {
        JobError::new(message)
    }
}

/// The first error of type `T` in `error`'s source chain.
fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// An error and its causes on one line (reqwest's own message alone says only "error sending
/// request"); the URL is left out, as its query may hold a secret and errors are logged.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        next = cause.source();
    }
    message
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
