//! The `http` kind's arguments, checked when the job is enqueued (a bad URL, method, header or
//! timeout is a 422 then, not a dead job later), and its shared-limit key.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

/// A request's own `timeout` when the job leaves it out.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest request `timeout` accepted; the job's own timeout still cuts an attempt short.
pub(crate) const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// The methods a job may use; CONNECT and TRACE have no business in a webhook.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers the client owns: a job setting them would break the request's framing or connection.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// One request, as a job describes it.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawArgs")]
pub(crate) struct HttpArgs {
    pub(crate) url: Url,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Body>,
    pub(crate) timeout: Duration,
}

/// What a request sends.
#[derive(Debug, PartialEq)]
pub(crate) enum Body {
    /// Any JSON but a string: sent as JSON (`content-type: application/json` unless the job's
    /// headers say otherwise).
    Json(Value),
    /// A string: sent as is.
    Text(String),
}

/// The arguments as they arrive; unknown fields are refused so a typo (`header`) is a 422.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgs {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    timeout: Option<f64>,
}

impl TryFrom<RawArgs> for HttpArgs {
    type Error = String;

    fn try_from(raw: RawArgs) -> Result<HttpArgs, String> {
        Ok(HttpArgs {
            url: parse_url(&raw.url)?,
            method: parse_method(raw.method.as_deref())?,
            headers: parse_headers(raw.headers)?,
            body: raw.body.map(|body| match body {
                Value::String(text) => Body::Text(text),
                json => Body::Json(json),
            }),
            timeout: parse_timeout(raw.timeout)?,
        })
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("url {text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url {text:?} must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {text:?} has no host"));
    }
    Ok(url)
}

fn parse_method(method: Option<&str>) -> Result<Method, String> {
    let Some(method) = method else {
        return Ok(Method::GET);
    };
    let upper = method.to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "method {method:?} must be one of {}",
            METHODS.join(", ")
        ));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|e| e.to_string())
}

fn parse_headers(headers: BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(format!(
                "header {name:?} is set by the client and may not be given"
            ));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("header {name:?} has a value that is not valid in HTTP"))?;
        map.insert(header, value);
    }
    Ok(map)
}

fn parse_timeout(timeout: Option<f64>) -> Result<Duration, String> {
    match timeout {
        None => Ok(DEFAULT_TIMEOUT),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS => {
            Ok(Duration::from_secs_f64(secs))
        }
        Some(secs) => Err(format!(
            "timeout {secs} must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds"
        )),
    }
}

/// `http:<host>` (with `:<port>` when it is not the scheme's default) of the job's URL, read from
/// the raw args, so every job against one host shares a limit; `None` when the URL is unusable.
pub(crate) fn limit_key(args: &Value) -> Option<String> {
    let url = Url::parse(args.get("url")?.as_str()?).ok()?;
    let host = url.host_str()?;
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("http:{host}:{port}"),
        None => format!("http:{host}"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(value: Value) -> Result<HttpArgs, String> {
        HttpArgs::deserialize(value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_get_no_body_and_thirty_seconds() {
        let a = args(json!({"url": "https://api.example.com/v1?x=1"})).unwrap();
        assert_eq!(a.url.as_str(), "https://api.example.com/v1?x=1");
        assert_eq!(a.method, Method::GET);
        assert!(a.headers.is_empty());
        assert_eq!(a.body, None);
        assert_eq!(a.timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_field_is_read() {
        let a = args(json!({
            "url": "http://example.com/hook", "method": "post",
            "headers": {"X-Token": "abc", "Content-Type": "text/plain"},
            "body": {"n": 1}, "timeout": 2.5
        }))
        .unwrap();
        assert_eq!(a.method, Method::POST);
        assert_eq!(a.headers["x-token"], "abc");
        assert_eq!(a.body, Some(Body::Json(json!({"n": 1}))));
        assert_eq!(a.timeout, Duration::from_millis(2500));
        let a = args(json!({"url": "http://e.com", "body": "raw text"})).unwrap();
        assert_eq!(a.body, Some(Body::Text("raw text".into())));
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        for (value, needle) in [
            (json!({}), "missing field `url`"),
            (
                json!({"url": "ftp://example.com/"}),
                "must be http or https",
            ),
            (
                json!({"url": "file:///etc/passwd"}),
                "must be http or https",
            ),
            (json!({"url": "not a url"}), "is not a URL"),
            (
                json!({"url": "http://e.com", "method": "TRACE"}),
                "method \"TRACE\"",
            ),
            (
                json!({"url": "http://e.com", "headers": {"bad name": "x"}}),
                "header name",
            ),
            (
                json!({"url": "http://e.com", "headers": {"x": "a\nb"}}),
                "not valid in HTTP",
            ),
            (
                json!({"url": "http://e.com", "headers": {"Host": "x"}}),
                "\"Host\" is set by",
            ),
            (
                json!({"url": "http://e.com", "headers": {"x": 1}}),
                "expected a string",
            ),
            (
                json!({"url": "http://e.com", "timeout": 0}),
                "timeout 0 must be",
            ),
            (
                json!({"url": "http://e.com", "timeout": 3601}),
                "at most 3600",
            ),
            (
                json!({"url": "http://e.com", "header": {}}),
                "unknown field `header`",
            ),
        ] {
            let err = args(value.clone()).unwrap_err();
            assert!(err.contains(needle), "{value}: {err}");
        }
    }

    #[test]
    fn the_limit_key_is_the_host_with_a_port_only_when_it_is_not_the_default() {
        for (url, key) in [
            ("https://API.Example.com/x", Some("http:api.example.com")),
            (
                "https://api.example.com:443/x",
                Some("http:api.example.com"),
            ),
            ("http://api.example.com:80/x", Some("http:api.example.com")),
            (
                "http://api.example.com:8080/x",
                Some("http:api.example.com:8080"),
            ),
            (
                "https://api.example.com:80/x",
                Some("http:api.example.com:80"),
            ),
            ("http://example.com./", Some("http:example.com")),
            ("http://[::1]:9000/", Some("http:[::1]:9000")),
            ("http://2130706433/", Some("http:127.0.0.1")),
            ("nonsense", None),
        ] {
            assert_eq!(limit_key(&json!({"url": url})).as_deref(), key, "{url}");
        }
        assert_eq!(limit_key(&json!({"url": 5})), None);
        assert_eq!(limit_key(&json!({})), None);
    }
}
