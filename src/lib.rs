//! onedyno: one process that serves HTTP and works Redis-backed background jobs.
//!
//! Data flows one way: [`http`] accepts a job and stores it through [`queue`]; the [`worker`] pool
//! fetches it under a lease, runs the [`jobs`] handler registered for its kind, and writes the
//! outcome back through its lease. [`shutdown`] is the one cancellation signal threaded through
//! all of it; [`app`] wires the parts and owns the stop order; [`config`] is the only reader of
//! the environment and [`telemetry`] the only writer of logs' format; [`maintenance`] runs the
//! loops every process shares (promoting due jobs, reaping dead processes).
//!
//! To add a job kind, implement [`Handler`] in a file under `src/jobs/` and add one line to
//! [`jobs::registry`]. To run a kind periodically, add a [`schedule::Schedule`] in
//! [`schedule::schedules`] (or set `SCHEDULES`); every process runs the [`schedule`]r.

pub mod app;
pub mod config;
pub mod http;
pub mod jobs;
pub mod limiter;
pub mod maintenance;
pub mod queue;
pub mod schedule;
pub mod shutdown;
pub mod telemetry;
pub mod worker;

pub use jobs::{Handler, JobContext, JobError, Registry};
