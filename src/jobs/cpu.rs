//! `cpu`: `{"ms": n}` keeps a thread busy computing for n ms without yielding, as CPU-heavy work
//! (resizing an image, parsing a large file) does. It stands in for such work in load tests and
//! shows that busy jobs do not starve HTTP. It checks for cancellation between slices of work.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Handler, JobContext, JobError};

/// Arguments of `cpu`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CpuArgs {
    /// How long to compute, in ms.
    pub ms: u64,
}

/// Burns CPU.
pub(super) struct Cpu;

impl Handler for Cpu {
    type Args = CpuArgs;

    async fn run(&self, args: CpuArgs, ctx: JobContext) -> Result<Value, JobError> {
        let until = Instant::now() + Duration::from_millis(args.ms);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rounds: u64 = 0;
        while Instant::now() < until {
            if ctx.is_cancelled() {
                return Err(JobError::new("cancelled"));
            }
            for _ in 0..10_000 {
                // xorshift: cheap work the optimiser cannot remove, as `state` is returned.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
            }
            rounds += 1;
        }
        Ok(json!({ "rounds": rounds, "state": state }))
    }
}
