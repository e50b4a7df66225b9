//! Unit tests of what a response means: results, the body cap, statuses and `Retry-After`.

use reqwest::header::HeaderValue;

use super::*;
use crate::jobs::Retry;
use crate::queue::RESULT_MAX_BYTES;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn a_json_response_is_returned_as_json_and_text_as_text() {
    let h = notable_headers(&headers(&[
        ("content-type", "application/json; charset=utf-8"),
        ("x-other", "dropped"),
    ]));
    let result = success(StatusCode::CREATED, &h, br#"{"id": 7}"#, false);
    assert_eq!(
        result,
        json!({"status": 201, "headers": {"content-type": "application/json; charset=utf-8"},
               "body": {"id": 7}, "body_truncated": false})
    );
    let h = notable_headers(&headers(&[("content-type", "application/problem+json")]));
    assert_eq!(
        success(StatusCode::OK, &h, b"[1]", false)["body"],
        json!([1])
    );
    let h = notable_headers(&headers(&[("content-type", "text/plain")]));
    assert_eq!(
        success(StatusCode::OK, &h, b"{\"a\":1}", false)["body"],
        "{\"a\":1}"
    );
    let h = notable_headers(&headers(&[("content-type", "application/json")]));
    assert_eq!(
        success(StatusCode::OK, &h, b"{oops", false)["body"],
        "{oops"
    );
    assert_eq!(
        success(StatusCode::NO_CONTENT, &Map::new(), b"", false)["body"],
        ""
    );
}

#[test]
fn the_worst_body_still_fits_the_result_limit() {
    let long = "v\"".repeat(400);
    let mut pairs = Vec::new();
    for name in NOTABLE_HEADERS {
        pairs.push((name, long.as_str()));
    }
    let h = notable_headers(&headers(&pairs));
    assert_eq!(h.len(), NOTABLE_HEADERS.len());
    for body in [
        vec![1u8; BODY_MAX_BYTES],
        vec![b'"'; BODY_MAX_BYTES],
        "é".repeat(BODY_MAX_BYTES / 2).into_bytes(),
    ] {
        let result = success(StatusCode::OK, &h, &body, true);
        let size = result.to_string().len();
        assert!(size < RESULT_MAX_BYTES, "{size}");
        assert_eq!(result["body_truncated"], true);
        let stored = result["body"].to_string().len();
        assert!(
            stored <= BODY_MAX_BYTES && stored > BODY_MAX_BYTES - 8,
            "{stored}"
        );
    }
}

#[test]
fn a_cut_body_is_text_and_ends_on_a_whole_character() {
    let h = notable_headers(&headers(&[("content-type", "application/json")]));
    let body = "{\"é\": \"ééé".as_bytes();
    let cut = &body[..body.len() - 1];
    let result = success(StatusCode::OK, &h, cut, true);
    assert_eq!(result["body"], "{\"é\": \"éé");
    assert_eq!(result["body_truncated"], true);
}

#[test]
fn statuses_map_to_retries_throttles_and_permanent_failures() {
    let none = HeaderMap::new();
    let after = headers(&[("retry-after", "7")]);
    for (status, h, retry) in [
        (429, &after, Retry::Throttled(Duration::from_secs(7))),
        (429, &none, Retry::Throttled(DEFAULT_THROTTLE)),
        (503, &after, Retry::Throttled(Duration::from_secs(7))),
        (503, &none, Retry::Backoff),
        (500, &none, Retry::Backoff),
        (502, &after, Retry::After(Duration::from_secs(7))),
        (408, &none, Retry::Backoff),
        (425, &after, Retry::After(Duration::from_secs(7))),
        (404, &after, Retry::Never),
        (400, &none, Retry::Never),
        (410, &none, Retry::Never),
        (304, &none, Retry::Never),
    ] {
        let err = failure(StatusCode::from_u16(status).unwrap(), h, b"");
        assert_eq!(err.retry(), retry, "{status}");
        assert!(
            err.message().starts_with(&format!("HTTP {status}")),
            "{err}"
        );
    }
}

#[test]
fn a_failure_quotes_a_short_excerpt_of_the_body() {
    let body = format!("  no such hook {}", "x".repeat(1000));
    let err = failure(StatusCode::NOT_FOUND, &HeaderMap::new(), body.as_bytes());
    assert!(
        err.message()
            .starts_with("HTTP 404 Not Found: no such hook xxx"),
        "{err}"
    );
    assert!(err.message().len() < 260, "{}", err.message().len());
}

#[test]
fn retry_after_takes_seconds_or_a_date_within_bounds() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    let at = |value: &str| retry_after(&headers(&[("retry-after", value)]), now);
    assert_eq!(at("120"), Some(Duration::from_secs(120)));
    assert_eq!(at(" 3 "), Some(Duration::from_secs(3)));
    assert_eq!(at("0"), Some(RETRY_AFTER_MIN));
    assert_eq!(at("99999999999999999999999"), Some(RETRY_AFTER_MAX));
    assert_eq!(
        at("Sun, 06 Nov 1994 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(RETRY_AFTER_MIN));
    assert_eq!(at("-5"), None);
    assert_eq!(at("soon"), None);
    assert_eq!(at(""), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn stored_size_counts_escapes() {
    assert_eq!(cut_to_stored_size("abc", 5), ("abc", false));
    assert_eq!(cut_to_stored_size("abcd", 5), ("abc", true));
    assert_eq!(cut_to_stored_size("a\"b", 5), ("a\"", true));
    assert_eq!(cut_to_stored_size("a\"b", 4), ("a", true));
    assert_eq!(cut_to_stored_size("\u{1}", 8), ("\u{1}", false));
    assert_eq!(cut_to_stored_size("\u{1}", 7), ("", true));
}
