//! The Lua scripts, one file each under `scripts/`, each with the definitions of the shared
//! prelude it uses prepended.
//!
//! `redis::Script` runs them with EVALSHA and loads them again after a Redis restart (NOSCRIPT).

use std::collections::HashSet;
use std::sync::LazyLock;

use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind, ToRedisArgs};

const PRELUDE: &str = include_str!("scripts/prelude.lua");

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(&assemble(PRELUDE, include_str!($file))));
    };
}

script!(ENQUEUE, "scripts/enqueue.lua");
script!(ENQUEUE_BULK, "scripts/enqueue_bulk.lua");
script!(FETCH, "scripts/fetch.lua");
script!(ACK, "scripts/ack.lua");
script!(ACK_MANY, "scripts/ack_many.lua");
script!(FAIL, "scripts/fail.lua");
script!(REQUEUE, "scripts/requeue.lua");
script!(RELEASE, "scripts/release.lua");
script!(HEARTBEAT, "scripts/heartbeat.lua");
script!(PROMOTE, "scripts/promote.lua");
script!(CANCEL, "scripts/cancel.lua");
script!(RETRY, "scripts/retry.lua");
script!(SAVE_STATE, "scripts/save_state.lua");
script!(STATS, "scripts/stats.lua");
script!(SUMMARIES, "scripts/summaries.lua");
script!(PRUNE_QUEUES, "scripts/prune_queues.lua");
script!(SCHEDULE_REGISTER, "scripts/schedule_register.lua");
script!(SCHEDULE_FIRE, "scripts/schedule_fire.lua");
script!(SCHEDULE_STATE, "scripts/schedule_state.lua");
script!(DEFER, "scripts/defer.lua");
script!(LIMIT_ACQUIRE, "scripts/limit_acquire.lua");
script!(LIMIT_RELEASE, "scripts/limit_release.lua");
script!(LIMIT_PAUSE, "scripts/limit_pause.lua");
script!(LIMIT_STATE, "scripts/limit_state.lua");
script!(DELETE, "scripts/delete.lua");
script!(RETRY_DEAD, "scripts/retry_dead.lua");
script!(PROCESSES, "scripts/processes.lua");
script!(MINUTES, "scripts/minutes.lua");

/// One top-level definition of the prelude: its name and its text, comment included.
struct Definition<'a> {
    name: &'a str,
    text: String,
}

/// The name a prelude line defines (`local function NAME` or `local NAME =`), if it starts one.
fn defines(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("local ")?;
    let rest = rest.strip_prefix("function ").unwrap_or(rest);
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The prelude's definitions, in order. The comment lines directly above a definition belong to
/// it; the file's header (before the first definition and its comment) belongs to none.
fn definitions(prelude: &str) -> Vec<Definition<'_>> {
    let mut found: Vec<Definition> = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in prelude.lines() {
        if let Some(name) = defines(line) {
            let mut text = comment.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
            found.push(Definition { name, text });
            comment.clear();
        } else if line.starts_with("--") {
            comment.push(line);
        } else {
            // A blank line or code: pending comment lines were not a definition's.
            if let Some(last) = found.last_mut() {
                for pending in comment.drain(..) {
                    last.text.push('\n');
                    last.text.push_str(pending);
                }
                last.text.push('\n');
                last.text.push_str(line);
            }
            comment.clear();
        }
    }
    found
}

/// The Lua identifiers in the code of `text`: comments and string literals left out (no script
/// or prelude line has `--` inside a string, nor a string over two lines).
fn identifiers(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for line in text.lines() {
        let code = line.split("--").next().unwrap_or("");
        let mut quote = None;
        let mut start = None;
        for (i, c) in code.char_indices() {
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                }
                continue;
            }
            let word_char = c.is_ascii_alphanumeric() || c == '_';
            match (start, word_char) {
                (None, true) => start = Some(i),
                (Some(s), false) => {
                    words.push(&code[s..i]);
                    start = None;
                }
                _ => {}
            }
            if c == '\'' || c == '"' {
                quote = Some(c);
            }
        }
        if let Some(s) = start {
            words.push(&code[s..]);
        }
    }
    words.retain(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
    words
}

/// `body` behind the prelude's definitions it uses, directly or through another, in the
/// prelude's order (each is defined before the ones that call it). A script runs its whole text
/// at every call, and every function it defines is a closure made anew for the garbage
/// collector: a script with only what it calls costs Redis less time per call.
fn assemble(prelude: &str, body: &str) -> String {
    let definitions = definitions(prelude);
    let mut wanted: HashSet<&str> = identifiers(body).into_iter().collect();
    let mut kept = vec![false; definitions.len()];
    // Later definitions only call earlier ones: one pass from the end finds every one needed.
    for (i, definition) in definitions.iter().enumerate().rev() {
        if wanted.contains(definition.name) {
            kept[i] = true;
            wanted.extend(identifiers(&definition.text));
        }
    }
    let mut script = String::new();
    for (definition, _) in definitions.iter().zip(&kept).filter(|(_, k)| **k) {
        script.push_str(&definition.text);
        script.push('\n');
    }
    script.push_str(body);
    script
}

/// A script call built straight into the `EVALSHA` command that is sent: `redis::Script`'s own
/// invocation keeps each argument in a buffer of its own and copies them all into a command
/// again, which for a 1,000-job batch (9,000 arguments) is ~0.4 MB more held during the call.
pub(crate) struct ScriptCall {
    script: &'static Script,
    cmd: Cmd,
}

impl ScriptCall {
    /// A call of `script` with these keys and room for `args` arguments of `bytes` bytes in all;
    /// arguments follow with [`ScriptCall::arg`].
    pub(crate) fn with_capacity(
        script: &'static Script,
        keys: &[&str],
        args: usize,
        bytes: usize,
    ) -> ScriptCall {
        let key_bytes: usize = keys.iter().map(|k| k.len()).sum();
        let mut cmd = Cmd::with_capacity(3 + keys.len() + args, 64 + key_bytes + bytes);
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(keys.len())
            .arg(keys);
        ScriptCall { script, cmd }
    }

    /// Appends an argument (or several, for a slice or a vector).
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut ScriptCall {
        self.cmd.arg(arg);
        self
    }

    /// Runs the call, loading the script first when Redis does not have it (after a restart).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        con: &mut impl redis::aio::ConnectionLike,
    ) -> RedisResult<T> {
        match self.cmd.query_async(con).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(con).await?;
                self.cmd.query_async(con).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPTS: [&str; 28] = [
        include_str!("scripts/enqueue.lua"),
        include_str!("scripts/enqueue_bulk.lua"),
        include_str!("scripts/fetch.lua"),
        include_str!("scripts/ack.lua"),
        include_str!("scripts/ack_many.lua"),
        include_str!("scripts/fail.lua"),
        include_str!("scripts/requeue.lua"),
        include_str!("scripts/release.lua"),
        include_str!("scripts/heartbeat.lua"),
        include_str!("scripts/promote.lua"),
        include_str!("scripts/cancel.lua"),
        include_str!("scripts/retry.lua"),
        include_str!("scripts/save_state.lua"),
        include_str!("scripts/stats.lua"),
        include_str!("scripts/summaries.lua"),
        include_str!("scripts/prune_queues.lua"),
        include_str!("scripts/schedule_register.lua"),
        include_str!("scripts/schedule_fire.lua"),
        include_str!("scripts/schedule_state.lua"),
        include_str!("scripts/defer.lua"),
        include_str!("scripts/limit_acquire.lua"),
        include_str!("scripts/limit_release.lua"),
        include_str!("scripts/limit_pause.lua"),
        include_str!("scripts/limit_state.lua"),
        include_str!("scripts/delete.lua"),
        include_str!("scripts/retry_dead.lua"),
        include_str!("scripts/processes.lua"),
        include_str!("scripts/minutes.lua"),
    ];

    #[test]
    fn the_prelude_splits_into_named_definitions_with_their_comments() {
        let found = definitions(PRELUDE);
        let names: Vec<&str> = found.iter().map(|d| d.name).collect();
        assert_eq!(names.first(), Some(&"now_ms"));
        assert!(names.contains(&"ack_jobs") && names.contains(&"upgrade"));
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "a name defined twice: {names:?}");
        // Every line of the prelude but the header is in exactly one definition.
        let kept: usize = found.iter().map(|d| d.text.split('\n').count()).sum();
        let header = PRELUDE.lines().take_while(|l| defines(l).is_none()).count();
        let header_comment = PRELUDE
            .lines()
            .take(header)
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .take_while(|l| l.starts_with("--"))
            .count();
        assert_eq!(kept + header - header_comment, PRELUDE.lines().count());
        let wake = found.iter().find(|d| d.name == "wake").unwrap();
        assert!(
            wake.text.starts_with("-- Tells idle workers"),
            "{}",
            wake.text
        );
    }

    #[test]
    fn a_script_carries_what_it_calls_and_what_that_calls_and_nothing_else() {
        let fetch = assemble(PRELUDE, include_str!("scripts/fetch.lua"));
        for needed in ["now_ms", "queue_key", "job_key", "local function upgrade("] {
            assert!(fetch.contains(needed), "fetch lacks {needed}");
        }
        assert!(!fetch.contains("local function ack_jobs"));
        assert!(!fetch.contains("local function make_ready"));
        let ack = assemble(PRELUDE, include_str!("scripts/ack.lua"));
        // ack_jobs -> index_finished_many -> finished_key: called only through another.
        for needed in [
            "local function ack_jobs",
            "local function finished_key",
            "count_minutes",
        ] {
            assert!(ack.contains(needed), "ack lacks {needed}");
        }
    }

    #[test]
    fn every_prelude_name_a_script_mentions_is_defined_in_it_before_use() {
        let names: Vec<&str> = definitions(PRELUDE).iter().map(|d| d.name).collect();
        for body in SCRIPTS {
            let script = assemble(PRELUDE, body);
            let defined: Vec<&str> = script.lines().filter_map(defines).collect();
            for used in identifiers(&script)
                .into_iter()
                .filter(|w| names.contains(w))
            {
                assert!(
                    defined.contains(&used),
                    "{used} is used but not defined in:\n{script}"
                );
            }
            // In the prelude's order, so each helper exists before anything that calls it.
            let order: Vec<usize> = defined
                .iter()
                .filter_map(|d| names.iter().position(|n| n == d))
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{defined:?}");
        }
    }
}
