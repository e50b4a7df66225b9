//! `sleep`: `{"ms": n}` waits n ms, returning early (as a failure) when cancelled.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Handler, JobContext, JobError};

/// Arguments of `sleep`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    /// How long to sleep, in ms.
    pub ms: u64,
}

/// Sleeps.
pub struct Sleep;

impl Handler for Sleep {
    type Args = SleepArgs;

    async fn run(&self, args: SleepArgs, ctx: JobContext) -> Result<Value, JobError> {
        ctx.sleep(Duration::from_millis(args.ms)).await?;
        Ok(json!({ "slept_ms": args.ms }))
    }
}
