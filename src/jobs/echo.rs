//! `echo`: the result is the arguments.

use serde_json::Value;

use super::{Handler, JobContext, JobError};

/// Returns its arguments.
pub(super) struct Echo;

impl Handler for Echo {
    type Args = Value;

    async fn run(&self, args: Value, _ctx: JobContext) -> Result<Value, JobError> {
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jobs::TestContext;

    #[tokio::test]
    async fn returns_its_arguments_and_saves_nothing() {
        let test = TestContext::new();
        let args = json!({ "hello": ["world", 1] });
        assert_eq!(Echo.run(args.clone(), test.context()).await.unwrap(), args);
        assert_eq!(test.saved(), crate::jobs::Saved::default());
    }
}
