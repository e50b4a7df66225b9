//! `echo`: the result is the arguments.

use serde_json::Value;

use super::{Handler, JobContext, JobError};

/// Returns its arguments.
pub struct Echo;

impl Handler for Echo {
    type Args = Value;

    async fn run(&self, args: Value, _ctx: JobContext) -> Result<Value, JobError> {
        Ok(args)
    }
}
