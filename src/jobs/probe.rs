//! `probe`: succeeds at once with the wall-clock time its handler started, in ns since the Unix
//! epoch, so a client on the same machine measures enqueue-to-start latency below a
//! millisecond (the record's timestamps are whole milliseconds). `cargo run --example bench`
//! uses it.

use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{Handler, JobContext, JobError};

/// Reports when it started.
pub(super) struct Probe;

impl Handler for Probe {
    type Args = IgnoredAny;

    async fn run(&self, _args: IgnoredAny, _ctx: JobContext) -> Result<Value, JobError> {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(json!({ "started_unix_ns": started }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::TestContext;

    #[tokio::test]
    async fn reports_a_start_time_near_now() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let test = TestContext::new();
        let out = Probe.run(IgnoredAny, test.context()).await.unwrap();
        let started = out["started_unix_ns"].as_u64().unwrap();
        assert!(started >= before, "{out}");
    }
}
