//! The registry: job kinds by name, with their arguments type-checked at enqueue time.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::JobContext;
use super::handler::{Handler, JobError, KindOptions};
use crate::config::{Limit, check_limit_key};

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

/// Why the registry could not be built; the process refuses to start.
#[derive(Debug, Error, PartialEq)]
pub enum RegistryError {
    /// A name registered twice.
    #[error(transparent)]
    Duplicate(#[from] DuplicateKind),
    /// A kind could not set itself up (e.g. the `http` kind's client).
    #[error("job kind {kind:?} could not be set up: {reason}")]
    Setup {
        /// The kind.
        kind: String,
        /// What went wrong.
        reason: String,
    },
}

/// Why `kind` is unknown, in words a client can act on: a demo kind names the setting that
/// enables it.
pub fn unknown_kind_message(kind: &str) -> String {
    if super::DEMO_KINDS.contains(&kind) {
        format!("unknown job kind {kind:?}: demo kinds are registered only when DEMO_KINDS=true")
    } else if kind == super::email::EMAIL_KIND {
        format!("unknown job kind {kind:?}: it is registered only when SMTP_URL is set")
    } else {
        format!("unknown job kind {kind:?}")
    }
}

type Start = Box<
    dyn Fn(Value, JobContext) -> Result<BoxFuture<'static, Result<Value, JobError>>, String>
        + Send
        + Sync,
>;

type LimitKey = Box<dyn Fn(&Value) -> Option<String> + Send + Sync>;

struct Entry {
    check: fn(&Value) -> Result<(), String>,
    start: Start,
    options: KindOptions,
    limit_key: LimitKey,
}

/// Job kinds by name, and the shared limits their jobs count against.
#[derive(Default)]
pub struct Registry {
    kinds: BTreeMap<String, Entry>,
    limits: BTreeMap<String, Limit>,
}

/// A limit declared in code that `LIMITS` would refuse.
#[derive(Debug, Error, PartialEq)]
#[error("limit {key:?}: {reason}")]
pub struct InvalidLimit {
    /// The limit's key.
    pub key: String,
    /// Why it was refused.
    pub reason: String,
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
        let keyed = handler.clone();
        let limit_key: LimitKey = Box::new(move |args| keyed.limit_key(args));
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
                limit_key,
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

    /// Declares a shared limit in code (see the README's "Shared limits"): `key` is
    /// `kind:<name>` or `http:<host>`. An entry of `LIMITS` for the same key wins, so an operator
    /// can tune a limit without a deploy.
    pub fn limit(
        &mut self,
        key: impl Into<String>,
        limit: Limit,
    ) -> Result<&mut Registry, InvalidLimit> {
        let key = key.into();
        if let Err(reason) = check_limit_key(&key).and_then(|()| limit.check()) {
            return Err(InvalidLimit { key, reason });
        }
        self.limits.insert(key, limit);
        Ok(self)
    }

    /// Applies `LIMITS` (already checked by the configuration) over the limits declared in code.
    pub fn apply_limits(&mut self, limits: &BTreeMap<String, Limit>) {
        self.limits
            .extend(limits.iter().map(|(key, limit)| (key.clone(), *limit)));
    }

    /// Every declared limit, by key.
    pub fn limits(&self) -> &BTreeMap<String, Limit> {
        &self.limits
    }

    /// The limit keys a job of `kind` with `args` counts against: `kind:<kind>`, then its
    /// handler's [`Handler::limit_key`] (e.g. `http:<host>`), whether or not a limit is declared.
    pub fn limit_keys(&self, kind: &str, args: &Value) -> Vec<String> {
        let mut keys = vec![format!("kind:{kind}")];
        if let Some(key) = self.kinds.get(kind).and_then(|e| (e.limit_key)(args)) {
            keys.push(key);
        }
        keys
    }

    /// The key a throttled job of `kind` pauses: its handler's own key (one host of the `http`
    /// kind, not every host), else `kind:<kind>`.
    pub fn pause_key(&self, kind: &str, args: &Value) -> String {
        self.kinds
            .get(kind)
            .and_then(|e| (e.limit_key)(args))
            .unwrap_or_else(|| format!("kind:{kind}"))
    }

    /// The registered names, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// Refuses an empty kind name or one holding a control character, before anything runs.
    /// A fetch hands a batch's fields to the worker joined by a control character (see
    /// `queue/fetch.rs`): a job of such a kind would make every fetch that took it unreadable,
    /// and would sit in its queue's way until deleted.
    pub fn check_names(&self) -> Result<(), RegistryError> {
        match self
            .kinds
            .keys()
            .find(|kind| kind.is_empty() || kind.chars().any(char::is_control))
        {
            Some(kind) => Err(RegistryError::Setup {
                kind: kind.clone(),
                reason: "a kind's name must not be empty or hold control characters".into(),
            }),
            None => Ok(()),
        }
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
    fn kind_names_with_control_characters_are_refused() {
        let mut registry = Registry::new();
        registry
            .register("images.resize-v2", noop_handler())
            .unwrap();
        assert!(registry.check_names().is_ok());
        registry.register("bad\u{1f}kind", noop_handler()).unwrap();
        let err = registry.check_names().unwrap_err().to_string();
        assert!(err.contains("control characters"), "{err}");
        let mut empty = Registry::new();
        empty.register("", noop_handler()).unwrap();
        assert!(empty.check_names().is_err());
    }

    fn noop_handler() -> super::super::noop::Noop {
        super::super::noop::Noop
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
            vec![
                "cpu", "echo", "fail", "http", "noop", "probe", "sleep", "steps"
            ]
        );
    }

    #[test]
    fn demo_kinds_are_registered_only_when_asked_and_named_when_missing() {
        let registry = super::super::registry(&config(&[])).unwrap();
        assert_eq!(registry.kinds(), vec!["echo", "http", "noop", "probe"]);
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

    struct Webhook;

    impl Handler for Webhook {
        type Args = Value;

        fn limit_key(&self, args: &Value) -> Option<String> {
            args["host"].as_str().map(|h| format!("http:{h}"))
        }

        async fn run(&self, args: Value, _ctx: JobContext) -> Result<Value, JobError> {
            Ok(args)
        }
    }

    #[test]
    fn limits_come_from_code_and_limits_wins_and_jobs_name_their_keys() {
        use crate::config::Limit;
        use std::time::Duration;
        let mut registry = Registry::new();
        registry.register("hook", Webhook).unwrap();
        let second = Limit::rate(1, Duration::from_secs(1));
        registry.limit("http:api.example.com", second).unwrap();
        registry.limit("kind:hook", Limit::concurrency(3)).unwrap();
        let err = registry.limit("http:API", second).unwrap_err();
        assert_eq!(err.key, "http:API");
        assert!(registry.limit("kind:hook", Limit::default()).is_err());
        let configured = config(&[("LIMITS", r#"{"kind:hook": {"concurrency": 1}}"#)]);
        registry.apply_limits(&configured.limits);
        assert_eq!(registry.limits()["kind:hook"], Limit::concurrency(1));
        assert_eq!(registry.limits()["http:api.example.com"], second);
        let args = json!({"host": "api.example.com"});
        assert_eq!(
            registry.limit_keys("hook", &args),
            vec!["kind:hook".to_string(), "http:api.example.com".to_string()]
        );
        assert_eq!(registry.pause_key("hook", &args), "http:api.example.com");
        assert_eq!(registry.limit_keys("hook", &json!({})), vec!["kind:hook"]);
        assert_eq!(registry.pause_key("hook", &json!({})), "kind:hook");
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
