//! `sleep`: `{"ms": n}` waits n ms, returning early (as a failure) when cancelled.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Handler, JobContext, JobError};

/// Arguments of `sleep`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SleepArgs {
    /// How long to sleep, in ms.
    pub ms: u64,
}

/// Sleeps.
pub(super) struct Sleep;

impl Handler for Sleep {
    type Args = SleepArgs;

    async fn run(&self, args: SleepArgs, ctx: JobContext) -> Result<Value, JobError> {
        ctx.sleep(Duration::from_millis(args.ms)).await?;
        Ok(json!({ "slept_ms": args.ms }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::jobs::TestContext;

    #[tokio::test]
    async fn sleeps_as_asked() {
        let test = TestContext::new();
        let result = Sleep.run(SleepArgs { ms: 5 }, test.context()).await;
        assert_eq!(result.unwrap(), json!({ "slept_ms": 5 }));
    }

    #[tokio::test]
    async fn returns_early_when_cancelled() {
        let test = TestContext::new();
        let ctx = test.context();
        let started = Instant::now();
        let sleeping = tokio::spawn(async move { Sleep.run(SleepArgs { ms: 60_000 }, ctx).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        test.cancel();
        let err = sleeping.await.unwrap().unwrap_err();
        assert_eq!(err.message(), "cancelled");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
