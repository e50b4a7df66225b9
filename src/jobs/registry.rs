//! The registry: job kinds by name, with their arguments type-checked at enqueue time.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::JobContext;
use super::handler::{Handler, JobError, KindOptions};

/// Why a job cannot be started or accepted.
#[derive(Debug, Error, PartialEq)]
pub enum KindError {
    /// No handler is registered under this name.
    #[error("{}", unknown_kind_message(.0))]
    Unknown(String),
    /// The arguments do not fit the handler's `Args`.
    #[error("invalid args for {kind:?}: {reason}")]
    InvalidArgs {
        /// The kind.
        kind: String,
        /// What serde said.
        reason: String,
    },
}

/// A kind registered twice: a start-up error, as a typo in the registry would otherwise replace
/// a handler without a word.
#[derive(Debug, Error, PartialEq)]
#[error("job kind {0:?} is registered twice")]
pub struct DuplicateKind(pub String);

/// Why `kind` is unknown, in words a client can act on: a demo kind names the setting that
/// enables it.
pub fn unknown_kind_message(kind: &str) -> String {
    if super::DEMO_KINDS.contains(&kind) {
        format!("unknown job kind {kind:?}: demo kinds are registered only when DEMO_KINDS=true")
    } else {
        format!("unknown job kind {kind:?}")
    }
}

type Start = Box<
    dyn Fn(Value, JobContext) -> Result<BoxFuture<'static, Result<Value, JobError>>, String>
        + Send
        + Sync,
>;

struct Entry {
    check: fn(&Value) -> Result<(), String>,
    start: Start,
    options: KindOptions,
}

/// Job kinds by name.
#[derive(Default)]
pub struct Registry {
    kinds: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

fn check_args<A: serde::de::DeserializeOwned>(args: &Value) -> Result<(), String> {
    A::deserialize(args).map(|_| ()).map_err(|e| e.to_string())
}

impl Registry {
    /// An empty registry (see [`super::registry`] for one with the built-in kinds).
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `handler` under `kind`, with its [`Handler::options`]. A name already taken is
    /// refused, and the registry keeps the first handler.
    pub fn register<H: Handler>(
        &mut self,
        kind: impl Into<String>,
        handler: H,
    ) -> Result<&mut Registry, DuplicateKind> {
        let kind = kind.into();
        if self.kinds.contains_key(&kind) {
            return Err(DuplicateKind(kind));
        }
        let handler = Arc::new(handler);
        let start: Start = Box::new(move |args, ctx| {
            let args = H::Args::deserialize(args).map_err(|e| e.to_string())?;
            let handler = handler.clone();
            Ok(Box::pin(async move { handler.run(args, ctx).await }))
        });
        self.kinds.insert(
            kind,
            Entry {
                check: check_args::<H::Args>,
                start,
                options: H::options(),
            },
        );
        Ok(self)
    }

    /// `kind`'s defaults for what an enqueue request leaves out, if the kind is registered.
    pub fn options(&self, kind: &str) -> Option<KindOptions> {
        self.kinds.get(kind).map(|entry| entry.options.clone())
    }

    /// Checks that `kind` exists and `args` fit it.
    pub fn validate(&self, kind: &str, args: &Value) -> Result<(), KindError> {
        let entry = self
            .kinds
            .get(kind)
            .ok_or_else(|| KindError::Unknown(kind.to_string()))?;
        (entry.check)(args).map_err(|reason| KindError::InvalidArgs {
            kind: kind.to_string(),
            reason,
        })
    }

    /// Builds the future of one attempt.
    pub fn start(
        &self,
        kind: &str,
        args: Value,
        ctx: JobContext,
    ) -> Result<BoxFuture<'static, Result<Value, JobError>>, KindError> {
        let entry = self
            .kinds
            .get(kind)
            .ok_or_else(|| KindError::Unknown(kind.to_string()))?;
        (entry.start)(args, ctx).map_err(|reason| KindError::InvalidArgs {
            kind: kind.to_string(),
            reason,
        })
    }

    /// The registered names, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(vars: &[(&str, &str)]) -> crate::config::Config {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        crate::config::Config::from_vars(vars).unwrap()
    }

    #[test]
    fn args_are_checked_against_the_handler_type() {
        let registry = super::super::registry(&config(&[("DEMO_KINDS", "true")])).unwrap();
        assert_eq!(registry.validate("echo", &json!({"any": [1]})), Ok(()));
        assert_eq!(registry.validate("sleep", &json!({"ms": 5})), Ok(()));
        assert!(matches!(
            registry.validate("sleep", &json!({"ms": "soon"})),
            Err(KindError::InvalidArgs { .. })
        ));
        assert_eq!(
            registry.validate("nope", &json!({})),
            Err(KindError::Unknown("nope".into()))
        );
        assert_eq!(
            registry.kinds(),
            vec!["cpu", "echo", "fail", "noop", "probe", "sleep", "steps"]
        );
    }

    #[test]
    fn demo_kinds_are_registered_only_when_asked_and_named_when_missing() {
        let registry = super::super::registry(&config(&[])).unwrap();
        assert_eq!(registry.kinds(), vec!["echo", "noop", "probe"]);
        let err = registry
            .validate("sleep", &json!({"ms": 5}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sleep") && err.contains("DEMO_KINDS=true"),
            "{err}"
        );
        let err = registry
            .validate("nope", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("DEMO_KINDS"), "{err}");
    }

    struct Mail;

    impl Handler for Mail {
        type Args = Value;

        fn options() -> KindOptions {
            KindOptions {
                queue: Some("mail".into()),
                timeout: Some(std::time::Duration::from_secs(20)),
                max_attempts: None,
            }
        }

        async fn run(&self, args: Value, _ctx: JobContext) -> Result<Value, JobError> {
            Ok(args)
        }
    }

    #[test]
    fn kinds_bring_their_options_and_names_are_taken_once() {
        let mut registry = Registry::new();
        registry.register("mail", Mail).unwrap();
        registry.register("echo", super::super::echo::Echo).unwrap();
        let mail = registry.options("mail").unwrap();
        assert_eq!(mail.queue.as_deref(), Some("mail"));
        assert_eq!(mail.timeout, Some(std::time::Duration::from_secs(20)));
        assert_eq!(mail.max_attempts, None);
        assert_eq!(registry.options("echo"), Some(KindOptions::default()));
        assert_eq!(registry.options("nope"), None);
        let err = registry.register("mail", Mail).unwrap_err();
        assert_eq!(err, DuplicateKind("mail".into()));
        assert!(
            err.to_string().contains("\"mail\" is registered twice"),
            "{err}"
        );
        assert_eq!(
            registry.options("mail"),
            Some(mail),
            "the first handler stays"
        );
    }
}
