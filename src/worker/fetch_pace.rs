//! Fetch pacing: while a backlog stands, a fetch takes along the slots freed in the next moment,
//! so one round trip brings jobs for many slots instead of one or two.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Whether a fetch gathers slots first: only while a backlog stands, that is the last fetch
/// came back with a job for every slot it had, a moment ago (within [`GATHER_SLOTS`]). A job
/// enqueued into an idle worker, or into one whose jobs run for longer than that, starts at once.
pub(super) fn behind_a_backlog(
    last_full: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
) -> bool {
    last_full.is_some_and(|at| now.duration_since(at) < GATHER_SLOTS)
}

/// With jobs waiting, a fetch for one or two slots costs a round trip each (on loopback ~25 us of
/// this process's CPU and as much of Redis's, whatever the batch): so the slots freed in the next
/// moment are taken along until there are `enough` (half of them), waiting at most `wait`
/// ([`GATHER_SLOTS`]; see [`behind_a_backlog`] for when).
pub(super) async fn gather_slots(
    permits: &Arc<Semaphore>,
    slots: &mut Vec<OwnedSemaphorePermit>,
    enough: usize,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while slots.len() < enough {
        match tokio::time::timeout_at(deadline, permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => slots.push(permit),
            _ => return,
        }
    }
}

/// The longest a fetch waits for more slots while a backlog stands (see [`gather_slots`]);
/// tokio's timer rounds it up to the next millisecond tick.
pub(super) const GATHER_SLOTS: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fetch_behind_a_backlog_takes_the_slots_freed_within_the_wait() {
        let permits = Arc::new(Semaphore::new(8));
        let held: Vec<_> = (0..8)
            .map(|_| permits.clone().try_acquire_owned().unwrap())
            .collect();
        let mut held = held.into_iter();
        let mut slots = vec![held.next().unwrap()];
        // Runners finish one after another while the fetch waits.
        let releasing: Vec<_> = held.by_ref().take(5).collect();
        tokio::spawn(async move {
            for permit in releasing {
                tokio::task::yield_now().await;
                drop(permit);
            }
        });
        let start = tokio::time::Instant::now();
        gather_slots(&permits, &mut slots, 4, Duration::from_millis(1)).await;
        assert_eq!(slots.len(), 4, "enough, then it goes");
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "without waiting out the wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_waits_no_longer_than_the_wait_for_slots_that_do_not_free_up() {
        let permits = Arc::new(Semaphore::new(8));
        let mut slots: Vec<_> = (0..2)
            .map(|_| permits.clone().try_acquire_owned().unwrap())
            .collect();
        let _busy: Vec<_> = (0..6)
            .map(|_| permits.clone().try_acquire_owned().unwrap())
            .collect();
        let start = tokio::time::Instant::now();
        gather_slots(&permits, &mut slots, 4, Duration::from_millis(1)).await;
        assert_eq!(slots.len(), 2, "went with what it had");
        assert_eq!(start.elapsed(), Duration::from_millis(1));
        // Enough already: no wait at all.
        let start = tokio::time::Instant::now();
        gather_slots(&permits, &mut slots, 2, Duration::from_millis(1)).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_fetch_right_behind_a_full_one_gathers_slots() {
        let now = tokio::time::Instant::now();
        assert!(
            !behind_a_backlog(None, now),
            "idle, or the last fetch was not full"
        );
        assert!(behind_a_backlog(Some(now), now));
        assert!(behind_a_backlog(
            Some(now - Duration::from_micros(500)),
            now
        ));
        assert!(
            !behind_a_backlog(Some(now - Duration::from_millis(5)), now),
            "jobs that ran a while free their slots one by one: each is fetched for at once"
        );
    }
}
