//! Code the `chaos` and `soak` examples share: command-line flags, the processes they start
//! (a `redis-server` of their own and the release binary), what `/proc` says about them, and
//! (with `tests/chaos.rs`, which includes those two files by path) the chaos job mix and its
//! HTTP checks.

pub(crate) mod drive;
pub(crate) mod flags;
pub(crate) mod mix;
pub(crate) mod procs;
pub(crate) mod redis_server;
