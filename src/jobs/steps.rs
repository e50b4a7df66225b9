//! `steps`: `{"steps": n, "step_ms": m}` does n steps of m ms, with a checkpoint after each, and
//! resumes from the last checkpoint on a later attempt. Result: `{"completed": n, "resumed_from": k}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Handler, JobContext, JobError};

/// Arguments of `steps`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepsArgs {
    /// How many steps.
    pub steps: u32,
    /// How long each step takes, in ms.
    pub step_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    completed: u32,
}

/// A long job that survives interruptions.
pub(super) struct Steps;

impl Handler for Steps {
    type Args = StepsArgs;

    async fn run(&self, args: StepsArgs, ctx: JobContext) -> Result<Value, JobError> {
        let resumed_from = ctx
            .checkpoint::<Checkpoint>()
            .map_or(0, |c| c.completed.min(args.steps));
        for step in resumed_from..args.steps {
            ctx.sleep(Duration::from_millis(args.step_ms))
                .await
                .map_err(|_| JobError::new(format!("interrupted after {step} steps")))?;
            let done = Checkpoint {
                completed: step + 1,
            };
            ctx.save_checkpoint(&done).await?;
            ctx.progress(&json!({ "completed": step + 1, "steps": args.steps }))
                .await?;
        }
        Ok(json!({ "completed": args.steps, "resumed_from": resumed_from }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::TestContext;

    #[tokio::test]
    async fn resumes_from_its_checkpoint_and_reports_progress() {
        let test = TestContext::new()
            .attempt(2)
            .with_checkpoint(&json!({ "completed": 2 }));
        let args = StepsArgs {
            steps: 4,
            step_ms: 1,
        };
        let result = Steps.run(args, test.context()).await.unwrap();
        assert_eq!(result, json!({ "completed": 4, "resumed_from": 2 }));
        let saved = test.saved();
        assert_eq!(
            saved.progress,
            vec![
                json!({ "completed": 3, "steps": 4 }),
                json!({ "completed": 4, "steps": 4 })
            ]
        );
        assert_eq!(saved.checkpoint, Some(json!({ "completed": 4 })));
    }

    #[tokio::test]
    async fn stops_when_cancelled_keeping_what_it_did() {
        let test = TestContext::new();
        test.cancel();
        let args = StepsArgs {
            steps: 3,
            step_ms: 60_000,
        };
        let err = Steps.run(args, test.context()).await.unwrap_err();
        assert_eq!(err.message(), "interrupted after 0 steps");
        assert_eq!(test.saved().checkpoint, None);
    }
}
