//! Job kinds: the [`Handler`] trait, the [`Registry`], and the built-in kinds.
//!
//! Adding a kind is one file here (a struct implementing [`Handler`] with typed `Args`, and unit
//! tests run with a [`TestContext`]) and one line in [`registry`].

mod context;
mod cpu;
mod echo;
mod email;
mod fail;
mod handler;
mod http;
mod noop;
mod probe;
mod registry;
mod sleep;
mod steps;

pub use context::{JobContext, Saved, TestContext};
pub use handler::{Handler, JobError, KindOptions, Retry};
pub use registry::{
    DuplicateKind, InvalidLimit, KindError, Registry, RegistryError, unknown_kind_message,
};

/// Kinds for demos, load tests and the test suite, registered only with `DEMO_KINDS=true`: a
/// public app should not let any token holder park workers or burn CPU on request.
pub const DEMO_KINDS: [&str; 4] = ["sleep", "fail", "steps", "cpu"];

/// The registry this binary runs with: the built-in kinds (configured from `config`), the demo
/// kinds when `DEMO_KINDS` is on, `email` when `SMTP_URL` is set, and yours. A name registered
/// twice, or a kind that cannot set itself up, is an error, so the process refuses to start
/// rather than run without it.
pub fn registry(config: &crate::config::Config) -> Result<Registry, RegistryError> {
    let mut registry = Registry::new();
    let http =
        http::Http::new(config.http_allow_networks.clone()).map_err(|e| RegistryError::Setup {
            kind: "http".into(),
            reason: e.to_string(),
        })?;
    registry
        .register("noop", noop::Noop)?
        .register("echo", echo::Echo)?
        .register("http", http)?
        .register("probe", probe::Probe)?;
    if config.demo_kinds {
        registry
            .register("sleep", sleep::Sleep)?
            .register("fail", fail::Fail)?
            .register("steps", steps::Steps)?
            .register("cpu", cpu::Cpu)?;
    }
    email::register(&mut registry, &config.mail)?;
    registry.apply_limits(&config.limits);
    registry.check_names()?;
    Ok(registry)
}
