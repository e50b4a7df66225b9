//! Job threads yield the CPU to the web.
//!
//! Handlers run on a runtime of their own, but on a 2-core dyno its threads still take turns with
//! actix's threads and the runtime that talks to Redis: 50 CPU-bound jobs made `GET /health`'s p99
//! about 9x its idle figure. A higher nice value on the job threads only lets the kernel's
//! scheduler prefer the others when both are runnable; when the web is idle the jobs still get
//! every core.

/// The nice value job threads run at (the process starts at 0; higher is lower priority).
pub const JOB_THREAD_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`JOB_THREAD_NICE`]. Meant for the jobs runtime's
/// `on_thread_start`. Raising one's own nice value needs no privilege; should it fail anyway, the
/// thread runs at the normal priority, which is what it did before.
pub fn lower_job_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux, nice() changes the calling thread only (each thread is its own task).
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
    fn a_job_thread_runs_at_the_job_nice_value_and_others_do_not() {
        let before = std::thread::spawn(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .join()
            .unwrap();
        let after = std::thread::spawn(|| {
            lower_job_thread_priority();
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        })
        .join()
        .unwrap();
        let untouched = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(after, (before + JOB_THREAD_NICE).min(19));
        assert_eq!(untouched, before);
    }
}
