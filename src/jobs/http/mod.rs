//! `http`: one HTTP request per job, for webhooks and third-party APIs, through one shared
//! pooled client and the SSRF guard.
//!
//! A 2xx is the result; 408, 425, 5xx and network errors retry; 429 (and 503 with `Retry-After`)
//! throttle the host without spending an attempt; other statuses, refused addresses and bad
//! redirects are permanent.

mod args;
mod client;
mod guard;
mod response;

use std::sync::Arc;

use ipnet::IpNet;
use serde_json::Value;

use super::{Handler, JobContext, JobError};
use args::{Body, HttpArgs};
use guard::Guard;
pub(crate) use response::BODY_MAX_BYTES;

/// The `http` kind: holds the one client every job shares.
pub(crate) struct Http {
    client: reqwest::Client,
    guard: Arc<Guard>,
}

/// The shared client could not be built (its TLS set-up failed).
#[derive(Debug, thiserror::Error)]
#[error("the http kind's client could not be built: {0}")]
pub(crate) struct ClientError(String);

/// How many bytes of a failed response's body are read for the error's excerpt.
const EXCERPT_READ_BYTES: usize = 1024;

impl Http {
    /// The kind, allowing `allow` (`HTTP_ALLOW_NETWORKS`) past the guard.
    pub(crate) fn new(allow: Vec<IpNet>) -> Result<Http, ClientError> {
        let guard = Arc::new(Guard::new(allow));
        let client = client::build(guard.clone()).map_err(|e| ClientError(response::chain(&e)))?;
        Ok(Http { client, guard })
    }

    async fn call(&self, args: HttpArgs) -> Result<Value, JobError> {
        // reqwest connects to an IP-literal host without asking the resolver, so check it here.
        self.guard
            .check_url(&args.url)
            .map_err(|blocked| JobError::permanent(blocked.to_string()))?;
        let timeout = args.timeout;
        let request = self
            .client
            .request(args.method, args.url)
            .headers(args.headers)
            .timeout(timeout);
        let request = match args.body {
            Some(Body::Json(json)) => request.json(&json),
            Some(Body::Text(text)) => request.body(text),
            None => request,
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| response::send_error(e, timeout))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            // The excerpt is a courtesy: a body that fails to arrive leaves it empty.
            let (body, _) = response::read_capped(&mut response, EXCERPT_READ_BYTES)
                .await
                .unwrap_or_default();
            return Err(response::failure(status, &headers, &body));
        }
        let headers = response::notable_headers(response.headers());
        let (body, cut) = response::read_capped(&mut response, BODY_MAX_BYTES)
            .await
            .map_err(|e| response::send_error(e, timeout))?;
        Ok(response::success(status, &headers, &body, cut))
    }
}

impl Handler for Http {
    type Args = HttpArgs;

    fn limit_key(&self, args: &Value) -> Option<String> {
        args::limit_key(args)
    }

    async fn run(&self, args: HttpArgs, ctx: JobContext) -> Result<Value, JobError> {
        tokio::select! {
            biased;
            () = ctx.cancelled() => Err(JobError::new("cancelled")),
            outcome = self.call(args) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::jobs::{Retry, TestContext};

    fn args(value: Value) -> HttpArgs {
        HttpArgs::deserialize(value).unwrap()
    }

    #[tokio::test]
    async fn a_refused_literal_fails_for_good_before_any_connection() {
        let http = Http::new(Vec::new()).unwrap();
        for url in [
            "http://127.0.0.1:1/",
            "http://[fd00:ec2::254]/",
            "http://0x7f.1/",
        ] {
            let err = http
                .run(args(json!({"url": url})), TestContext::new().context())
                .await
                .unwrap_err();
            assert_eq!(err.retry(), Retry::Never, "{url}: {err}");
            assert!(err.message().starts_with("blocked address"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_cancelled_job_returns_at_once() {
        let http = Http::new(vec!["10.0.0.0/8".parse().unwrap()]).unwrap();
        let test = TestContext::new();
        test.cancel();
        // 10.255.255.1 does not answer: only the cancellation can end this.
        let args = args(json!({"url": "http://10.255.255.1/", "timeout": 3600}));
        let err = http.run(args, test.context()).await.unwrap_err();
        assert_eq!(err.message(), "cancelled");
    }

    #[test]
    fn the_limit_key_comes_from_the_raw_args() {
        let http = Http::new(Vec::new()).unwrap();
        let key = http.limit_key(&json!({"url": "https://API.example.com:8443/x"}));
        assert_eq!(key.as_deref(), Some("http:api.example.com:8443"));
        assert_eq!(http.limit_key(&json!({"url": "nope"})), None);
    }
}
