//! `noop`: succeeds at once (benchmarks measure the queue with it).

use serde::de::IgnoredAny;
use serde_json::Value;

use super::{Handler, JobContext, JobError};

/// Does nothing, successfully.
pub(super) struct Noop;

impl Handler for Noop {
    type Args = IgnoredAny;

    async fn run(&self, _args: IgnoredAny, _ctx: JobContext) -> Result<Value, JobError> {
        Ok(Value::Null)
    }
}
