//! Helpers the `http` kind's integration tests share: the app with fast retries and an
//! allow-list, enqueueing an `http` job, and reading a job's errors.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{App, Redis};

/// How long a test waits for a job to reach a status.
pub const WAIT: Duration = Duration::from_secs(15);

/// The app with fast retries and, when given, `HTTP_ALLOW_NETWORKS`.
pub fn app(redis: &Redis, allow: Option<&str>) -> App {
    let mut env = crate::support::FAST_BACKOFF.to_vec();
    if let Some(allow) = allow {
        env.push(("HTTP_ALLOW_NETWORKS", allow));
    }
    App::start_ready(&redis.url(), &env)
}

/// Enqueues an `http` job with `args` and job fields `extra`; returns its id.
pub fn enqueue(app: &App, args: Value, extra: Value) -> String {
    let mut job = json!({"kind": "http", "args": args});
    if let (Some(job), Some(extra)) = (job.as_object_mut(), extra.as_object()) {
        job.extend(extra.clone());
    }
    app.enqueue_ok(&job)
}

/// The messages of a job's failed attempts, oldest first.
pub fn error_messages(job: &Value) -> Vec<String> {
    job["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}
