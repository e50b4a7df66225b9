//! Job kinds: the [`Handler`] trait, the [`Registry`], and the built-in kinds.
//!
//! Adding a kind is one file here (a struct implementing [`Handler`] with typed `Args`) and one
//! line in [`registry`].

mod cpu;
mod echo;
mod fail;
mod handler;
mod noop;
mod registry;
mod sleep;
mod steps;

pub use handler::{Handler, JobContext, JobError, Retry};
pub use registry::{KindError, Registry};

/// The registry this binary runs with: the built-in kinds, and yours.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register("noop", noop::Noop)
        .register("echo", echo::Echo)
        .register("sleep", sleep::Sleep)
        .register("fail", fail::Fail)
        .register("steps", steps::Steps)
        .register("cpu", cpu::Cpu);
    registry
}
