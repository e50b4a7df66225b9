//! Job threads yield the CPU to the web.
//!
//! Handlers run on a runtime of their own, but on a 2-core dyno its threads still take turns with
//! actix's threads and the runtime that talks to Redis: 50 CPU-bound jobs made `GET /health`'s p99
//! about 9x its idle figure. Job threads run under Linux's `SCHED_IDLE` policy: the kernel runs
//! them only when no ordinary thread of the dyno wants the core, and a request that wakes up takes
//! the core from a job at once. When the web is idle the jobs still get every core. Nice 10 (the
//! previous policy) only weighted the shares: a waking request still waited behind a job's slice
//! now and then, and the busy p99 stayed 3-8x the idle one.

/// The nice value job threads fall back to when `SCHED_IDLE` is refused (the process starts at 0;
/// higher is lower priority).
pub const JOB_THREAD_NICE: i32 = 10;

/// Puts the calling thread under `SCHED_IDLE`, or at nice [`JOB_THREAD_NICE`] should that be
/// refused. Meant for the jobs runtime's `on_thread_start`. Lowering one's own priority needs no
/// privilege; should both fail anyway, the thread runs at the normal priority.
pub fn lower_job_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // On Linux, pid 0 is the calling thread only (each thread is its own task).
        // SAFETY: `param` outlives the call, which only reads it.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return;
        }
        // SAFETY: nice() takes a plain integer and touches no memory of ours.
        let reached = unsafe {
            *libc::__errno_location() = 0;
            libc::nice(JOB_THREAD_NICE)
        };
        // -1 is also a valid result, so errno tells a failure.
        // SAFETY: reading this thread's errno.
        if reached == -1 && unsafe { *libc::__errno_location() } != 0 {
            tracing::debug!(event = "worker.nice_failed", nice = JOB_THREAD_NICE);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_job_thread_runs_under_sched_idle_and_others_do_not() {
        // SAFETY (each block): sched_getscheduler reads the calling thread's policy.
        let before = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) })
            .join()
            .unwrap();
        let after = std::thread::spawn(|| {
            lower_job_thread_priority();
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap();
        let untouched = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(before, libc::SCHED_OTHER);
        assert_eq!(after, libc::SCHED_IDLE);
        assert_eq!(untouched, before);
    }
}
